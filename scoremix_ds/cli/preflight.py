"""What ``build``, ``train``, ``train-generator`` and ``reproduce`` check before their first forward pass, each in
one line naming the flag that fixes it (exit 2), with nothing written.

Each command's preflight composes the rules where they live, one home per rule:

* the device is present: :func:`scoremix_ds.core.validate.device_name` (``available=True``) for the trainers,
  :func:`scoremix_ds.core.devices.resolve_device` for ``build`` (the rule each resolves its device by);
* the output folder is usable and its disk has room for the estimated output: :mod:`scoremix_ds.core.preflight`
  (the estimates are documented there);
* a push asked for (``--push-to``) will be accepted: token, write access, the ``--tag`` absent (or already holding
  exactly what this run makes): :func:`scoremix_ds.hub.push.preflight`;
* every Hub input pinned to a revision (``ORG/NAME@REV``, ``--generator-revision``, ``--init-revision``...) names
  one that exists: :func:`check_revisions` (one metadata call each; nothing downloaded);
* the plan file agrees with the config: :func:`scoremix_ds.synthesis.resolve.resolve_build` (``build`` calls it
  before this); ``train``'s evaluation set has the pairs its protocol needs:
  :func:`scoremix_ds.training.recognition.check_val_benchmarks`, before the output folder is claimed.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

from ..core.preflight import check_free_disk, check_output_folder, image_bytes, training_bytes
from ..core.processes import is_main_process
from ..core.validate import device_name

logger = logging.getLogger(__name__)

DEFAULT_IMAGE = (112, 112, 3)  # the build estimate's image when the generator's folder is not local (a Hub id)


def folder_bytes(folder: str | Path) -> int:
    """Bytes already in ``folder`` (a resumed run needs only the rest); a file removed while it is counted (process
    0 of a launch clearing its temporaries) counts nothing."""
    root = Path(folder)
    if not root.is_dir():
        return 0
    total = 0
    for path in root.rglob("*"):
        try:
            total += path.stat().st_size if path.is_file() else 0
        except FileNotFoundError:
            continue
    return total


def _room(out: str | Path, needed: int, what: str) -> None:
    """``out`` usable (every process: each writes there) and, from process 0 only (one disk, one walk of the folder
    rather than one per GPU), room for what is still to be written."""
    check_output_folder(out)
    if is_main_process():
        check_free_disk(out, needed - folder_bytes(out), what)


# ---------------------------------------------------------------------------------------------------- the Hub


def weights_in(out: Path, repo_id: str) -> Callable[[object, str], bool]:
    """``same_content`` of a training's push: the tagged commit holds the very weights files ``out`` already holds
    (a re-run of a finished, pushed training: the push then makes no commit). Nothing trained yet: never."""
    local = {p.relative_to(out).as_posix(): p for p in sorted(out.rglob("*.safetensors"))
             if p.is_file() and "checkpoints" not in p.relative_to(out).parts} if out.is_dir() else {}

    def same(api, commit: str) -> bool:
        if not local:
            return False
        from ..dataset.manifest import file_sha256

        from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

        from ..core.hub_client import hub_errors

        with hub_errors(repo_id, f"reading the tagged commit {commit[:8]}", None, write=False):  # others: one line
            try:
                info = api.repo_info(repo_id, repo_type="model", revision=commit, files_metadata=True)
            except (RepositoryNotFoundError, RevisionNotFoundError):  # not there: not this model
                return False
        remote = {s.rfilename: s for s in info.siblings or []}
        return all(rel in remote and remote[rel].lfs is not None and remote[rel].lfs.sha256 == file_sha256(path)
                   for rel, path in local.items())

    return same


def check_push(push, repo_type: str, same_content: Callable | None = None, can_force: bool = True) -> None:
    """Token, write access and tag of a later push, from the process that pushes (rank 0 / the launcher);
    ``can_force``: whether the command has ``--force-tag`` (the tag refusal's hint names it only then)."""
    if push is None or not is_main_process():
        return
    from ..hub.push import preflight

    preflight(push, repo_type, same_content, can_force=can_force)


def check_revisions(refs) -> None:
    """Every Hub input pinned to a revision (``ORG/NAME@REV``, or a ``--x-revision``) names one that exists:
    ``refs`` holds ``(field, reference, revision, repo_type)``; local paths, built-in names and unpinned ids are the
    loaders' to check. An unreachable Hub is not refused here (a cached copy may still load). Asked by process 0
    only (64 ranks need not ask the Hub 64 times; the others would fail on the same input when they open it)."""
    if not is_main_process():
        return
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    from ..core.errors import ConfigError
    from ..core.hub_client import is_hub_failure, make_api, resolve_token
    from ..core.refs import could_be_hub_id, is_local_path, split_revision
    from ..sources.subsets import split_subset

    api = None
    for field, ref, revision, repo_type in refs:
        if not ref:
            continue
        # a class subset may follow the revision or precede it: ORG/NAME@REV[0-7] and ORG/NAME[0-7]@REV
        name, own = split_revision(split_subset(ref.partition("::")[0])[0], field)
        name = split_subset(name)[0]
        revision = own or revision
        if revision is None or is_local_path(name) or not could_be_hub_id(name):
            continue
        if api is None:
            api = make_api(resolve_token(None, required=False))
        try:
            api.repo_info(name, repo_type=repo_type, revision=revision)
        except RevisionNotFoundError:
            raise ConfigError(f"{field} {name}: revision {revision} not found", field=field,
                              hint=f"give a branch, tag or commit of {name} (`scoremix-ds versions {name}` lists "
                                   "a dataset's tags)") from None
        except RepositoryNotFoundError:
            raise ConfigError(f"{field} {name}@{revision}: repository {name} not found (or the token cannot see "
                              "it)", hint=f"check `{field}`", field=field) from None
        except Exception as exc:  # offline or unreachable: the loader decides (it may have a cached copy)
            if not is_hub_failure(exc):
                raise
            logger.info("cannot check revision %s of %s before the run (%s)", revision, name, type(exc).__name__)


# ---------------------------------------------------------------------------------------------------- commands


def preflight_build(resolved, push=None) -> None:
    """``build``: the device, ``--out`` and the room for its images (``images x H x W x C`` bytes, this part's
    share); the push is checked by the caller with the build's fingerprint (same build: the tag already holds it)."""
    from ..core.devices import resolve_device

    config = resolved.config
    resolve_device(config.device)  # the rule the build resolves its device by (auto, or one that exists here)
    check_revisions([("generator", config.generator, config.generator_revision, "model"),
                     ("discriminator", config.discriminator, config.discriminator_revision, "model"),
                     ("real_data", config.real_data, config.real_data_revision, "dataset")])
    if resolved.finished is not None:
        return  # nothing left to write
    images, (h, w, c) = build_images(config, resolved.plan_file), generator_image_shape(config.generator)
    _room(config.out, image_bytes(images, h, w, c), f"about {images:,} images of {h}x{w}x{c}")


def build_images(config, plan_file=None) -> int:
    """Images a build (this part of it) writes: identities x seeds x (1 + parents with ``repro``), the plan's counted
    by the build's own rule (:func:`scoremix_ds.synthesis.runner.unit_images`)."""
    if plan_file is not None:
        from ..synthesis.runner import unit_images

        plan = plan_file.plan
        images = unit_images(plan, range(len(plan.identities)), config.repro)
    else:
        images = config.pairs * config.per_identity * (1 + config.strategy_spec.size * config.repro)
    return -(-images // max(1, config.num_shards))


def recognition_parameters(config) -> int:
    """Parameters of ``config``'s backbone, counted on the meta device (0 for ``init`` / ``hf``: not known here)."""
    if config.init is not None or config.backbone == "hf":
        return 0
    import torch

    from ..discriminators.loading import build_backbone

    with torch.device("meta"):
        net = build_backbone(config.backbone, in_channels=config.channels, image_size=config.image_size,
                             embedding_dim=config.embedding_dim)
    return sum(p.numel() for p in net.parameters())


def generator_image_shape(generator: str | None) -> tuple[int, int, int]:
    """(height, width, channels) of a LOCAL generator folder's images (UNet, DiT or EDM2, decoded through its VAE
    when latent): :func:`scoremix_ds.generators.loading.local_image_shape`, the sample shape the loader uses;
    :data:`DEFAULT_IMAGE` for a Hub id or a folder this cannot read."""
    from ..generators.loading import local_image_shape

    return local_image_shape(generator) or DEFAULT_IMAGE


def preflight_recognition(config, push=None) -> None:
    """``train``: the device, ``--out`` and room for its checkpoints (the backbone's parameters, counted on the meta
    device; the Partial FC head depends on the data's classes and is not counted), and the push (its ``--tag``:
    absent, or already holding the weights ``--out`` holds)."""
    device_name("device", config.device, available=True)
    check_revisions([*(("real", r, None, "dataset") for r in config.real),
                     *(("synthetic", r, None, "dataset") for r in config.synthetic),
                     ("init", config.init, config.init_revision, "model")])
    parameters = recognition_parameters(config)
    _room(config.out, training_bytes(parameters, config.keep_checkpoints),
          f"{config.keep_checkpoints} checkpoints of a {parameters:,}-parameter {config.backbone}")
    if push is not None:  # train has no --force-tag
        check_push(push, "model", weights_in(Path(config.out), push.repo_id), can_force=False)


def preflight_generator(config, push=None) -> None:
    """``train-generator``: the device, ``--out`` and room for its checkpoints (the architecture's parameters on the
    meta device, weights + EMA + AdamW's two moments), and the push (its ``--tag`` as for ``train``)."""
    import torch

    from ..generators.architectures import get_architecture

    device_name("device", config.device, available=True)
    check_revisions([("real_data", config.real_data, config.real_data_revision, "dataset")])
    with torch.device("meta"):
        net = get_architecture(config.architecture).build(config.image_size, config.channels, 1,
                                                         config.architecture_params())
    parameters = sum(p.numel() for p in net.parameters())
    _room(config.out, training_bytes(parameters, config.keep_checkpoints, copies=4),
          f"{config.keep_checkpoints} checkpoints of a {parameters:,}-parameter {config.architecture}")
    if push is not None:  # train-generator has no --force-tag
        check_push(push, "model", weights_in(Path(config.out), push.repo_id), can_force=False)


def reproduce_images(config) -> int:
    """Images the reproduce builds write: each build arm's as ``build``'s estimate, with ``repro`` rows where
    :meth:`~scoremix_ds.reproduce.config.ReproduceConfig.builds_repro` (the rule the experiment builds by) says."""
    import dataclasses

    from ..reproduce.config import ARM_BUILDS

    return sum(build_images(dataclasses.replace(config.build, strategy=ARM_BUILDS[arm][0],
                                                repro=config.builds_repro(arm)))
               for arm in config.build_arms)


def preflight_reproduce(config, refuse: bool = True) -> list:
    """``reproduce``: every stage's device, and ``--out`` (the report folder; every stage's models and builds go
    under it) with room for the arms' trainings (arms x seeds, each as ``train``'s estimate) and builds
    (:func:`reproduce_images`, with the generator's image shape: a given local folder's, else the trained one's size).

    ``refuse=False`` (``reproduce --check``: the recipe is validated on a machine that may not be the one it runs on)
    raises nothing: each failed check's error is returned instead (none: an empty list)."""
    from ..core.errors import ScoreMixError

    notes: list[ScoreMixError] = []

    def check(rule, *args, **kwargs) -> None:
        try:
            rule(*args, **kwargs)
        except ScoreMixError as exc:
            if refuse:
                raise
            notes.append(exc)

    for section in ("generator_train", "discriminator_train", "build", "train", "eval"):
        stage = getattr(config, section, None)
        if stage is not None and getattr(stage, "device", None) not in (None, "auto"):
            check(device_name, "device", stage.device, available=True)
    trainings = len(config.arms) * len(config.seeds) * training_bytes(recognition_parameters(config.train),
                                                                      config.train.keep_checkpoints)
    if config.generator is not None:
        shape = generator_image_shape(config.generator)
    else:
        size = config.generator_train.image_size
        shape = (size, size, config.generator_train.channels)
    check(_room, config.out, trainings + image_bytes(reproduce_images(config), *shape),
          f"{len(config.arms) * len(config.seeds)} trainings and {len(config.build_arms)} builds")
    return notes


__all__ = ["build_images", "reproduce_images", "check_revisions", "folder_bytes", "recognition_parameters", "generator_image_shape", "preflight_build", "preflight_generator", "preflight_recognition",
           "preflight_reproduce", "weights_in"]
