"""Class-conditional diffusers denoisers behind one interface: predict for a batch of (x_t, t, class).

Supported folders (local, or a Hub id fetched with ``snapshot_download`` — safetensors and JSON only)::

    unet/ | transformer/   UNet2DModel with a class-embedding table, or DiTTransformer2DModel
    edm2/ [edm2_guide/]    or an EDM2 denoiser (and its autoguidance guide): :mod:`.edm2.folder`, loaded as an
                           :class:`~.edm2.generator.EDM2Generator` (sampled with ``edm-heun``)
    vae/                   optional AutoencoderKL: the denoiser then works in its latent space
    scheduler/             optional scheduler_config.json (betas, prediction type)
    model_index.json       optional (a diffusers pipeline, e.g. the DiTPipeline layout): id2label names the classes
    scoremix.json          optional: num_classes, null_class, class_names, provenance

A bare model folder (``config.json`` + safetensors at the top) is accepted too. Models without a discrete class
table, weights only in pickle form, or a missing null class when guidance is requested are refused.

A reference is ``PATH``, ``ORG/NAME`` or ``ORG/NAME@REVISION`` (:mod:`scoremix_ds.core.refs`; ``--generator-revision``
is an alias). The null class (the unconditional row used by classifier-free guidance) is, first found: the
``null_class`` argument (``--null-class``), then a ``null_class`` key in ``scoremix.json``, the denoiser's
``config.json``, ``scheduler_config.json`` or ``model_index.json``, then for a DiT the extra row its label table
has beyond ``num_embeds_ada_norm`` (diffusers' own layout). A null class that is the last row of the table leaves the
rows before it as the real classes.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from ..core.errors import ConfigError, ModelError
from ..core.hub_client import download_errors
from ..core.refs import could_be_hub_id, with_revision
from ..core.resources import default_model_dir
from .interface import ClassConditionalGenerator  # noqa: F401  (re-exported: callers import it from here)

logger = logging.getLogger(__name__)

DENOISER_FOLDERS = ("unet", "transformer")
SAFETENSORS_PATTERNS = ["*.json", "*.safetensors", "*.md"]


def resolve_generator_path(name_or_path: str | None, revision: str | None = None, flag: str = "generator") -> Path:
    """A local folder as is; ``None``/``default`` the embedded default; else a Hub id fetched (safetensors only)."""
    if name_or_path in (None, "", "default"):
        return default_model_dir("generator")
    path = Path(name_or_path)
    if path.exists():
        return path
    if not could_be_hub_id(name_or_path):
        raise ModelError(f"generator folder '{name_or_path}' does not exist", hint=f"check `{flag}`", field=flag)
    from huggingface_hub import snapshot_download

    with download_errors("generator", name_or_path, revision, flag):
        return Path(snapshot_download(name_or_path, revision=revision, allow_patterns=SAFETENSORS_PATTERNS))


def denoiser_sample_shape(config: dict) -> tuple[int, int, int]:
    """(C, H, W) the denoiser with this ``config.json`` integrates: an EDM2 network's ``img_channels`` /
    ``img_resolution``, a diffusers UNet's / DiT's ``in_channels`` / ``sample_size`` (latents for a latent model)."""
    if config.get("_class_name") == "EDM2Denoiser":
        channels, size = int(config.get("img_channels", 3)), int(config.get("img_resolution", 64))
    else:
        channels, size = int(config.get("in_channels", 3)), int(config.get("sample_size", 32))
    return channels, size, size


def local_image_shape(name_or_path: str | None) -> tuple[int, int, int] | None:
    """(height, width, channels) of the images a LOCAL generator folder makes: its denoiser's sample shape
    (:func:`denoiser_sample_shape`), decoded through its ``vae/`` when it has one (x 2^(VAE levels - 1), the VAE's
    ``out_channels``). None for a Hub id or a folder whose configs cannot be read (nothing is loaded)."""
    root = default_model_dir("generator") if name_or_path in (None, "", "default") else Path(name_or_path).expanduser()
    candidates = [root / "edm2", *(root / name for name in DENOISER_FOLDERS), root]
    folder = next((f for f in candidates if (f / "config.json").is_file()), None)
    if folder is None:
        return None
    try:
        channels, size, _ = denoiser_sample_shape(json.loads((folder / "config.json").read_text(encoding="utf-8")))
        vae_config = root / "vae" / "config.json"
        if vae_config.is_file():
            vae = json.loads(vae_config.read_text(encoding="utf-8"))
            size *= 2 ** (len(vae.get("block_out_channels", (64,))) - 1)
            channels = int(vae.get("out_channels", 3))
    except (OSError, ValueError, TypeError, AttributeError):
        return None
    return size, size, channels


def _denoiser_folder(root: Path, flag: str) -> Path:
    for name in DENOISER_FOLDERS:
        if (root / name / "config.json").is_file():
            return root / name
    if (root / "config.json").is_file():
        return root
    raise ModelError(f"'{root}' holds no diffusers denoiser (no unet/, transformer/ or config.json)", hint=f"check `{flag}`", field=flag)


def _require_safetensors(folder: Path, what: str, flag: str) -> None:
    if any(folder.glob("*.safetensors")):
        return
    if any(folder.glob("*.bin")) or any(folder.glob("*.pt")) or any(folder.glob("*.ckpt")):
        raise ModelError(
            f"{what} in '{folder}' has weights only in pickle form (.bin/.pt); scoremix-ds loads safetensors only",
            hint=f"convert it with save_pretrained(..., safe_serialization=True) and give that folder as `{flag}`", field=flag,
        )
    raise ModelError(f"{what} in '{folder}' has no .safetensors weights", hint=f"check `{flag}`", field=flag)


def _json_object(path: Path, flag: str) -> dict:
    """A JSON object from ``path``, or a one-line ModelError naming the file."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path} is not valid JSON ({str(exc).splitlines()[0][:80]})",
                         hint=f"restore that file, or check `{flag}`", field=flag) from None
    if not isinstance(value, dict):
        raise ModelError(f"{path} is not a JSON object", hint=f"restore that file, or check `{flag}`", field=flag)
    return value


def _check_meta(path: Path, meta: dict) -> None:
    """``scoremix.json``'s fields have the types the loader relies on (a hand-edited file is the usual cause)."""
    def fail(what: str):
        raise ModelError(f"{path}: {what}", hint="fix scoremix.json (num_classes: int, null_class: int or null, "
                         "class_names: one string per class)")

    for key in ("num_classes", "null_class"):
        if key in meta and meta[key] is not None and (not isinstance(meta[key], int) or isinstance(meta[key], bool)):
            fail(f"{key} must be an integer, got {meta[key]!r}")
    names = meta.get("class_names")
    if names is not None:
        if not isinstance(names, list) or not all(isinstance(n, (str, int)) for n in names):
            fail("class_names must be a list of strings")
        if isinstance(meta.get("num_classes"), int) and len(names) != meta["num_classes"]:
            fail(f"class_names lists {len(names)} name(s) for {meta['num_classes']} classes")


def _from_pretrained(cls, folder: Path, flag: str):
    try:
        return cls.from_pretrained(folder, use_safetensors=True)
    except ModelError:
        raise
    except Exception as exc:  # truncated safetensors, a config that does not fit the weights, missing files
        weights = sorted(p.name for p in folder.glob("*.safetensors"))
        where = folder / weights[0] if weights else folder
        raise ModelError(f"{where} cannot be loaded ({type(exc).__name__}: {str(exc).splitlines()[0][:100]})",
                         hint=f"re-download or re-save that model, or check `{flag}`", field=flag) from None


def _read_json(path: Path, flag: str) -> dict[str, Any]:
    """A JSON object from ``path`` ({} when the file is absent), or a one-line ModelError naming the file."""
    return _json_object(path, flag) if path.is_file() else {}


def declared_null_class(*configs: dict[str, Any]) -> int | None:
    """The first ``null_class`` any of ``configs`` declares (model, scheduler, pipeline index)."""
    for config in configs:
        if config.get("null_class") is not None:
            return config["null_class"]
    return None


def declared_class_names(meta: dict[str, Any], model: dict[str, Any], index: dict[str, Any], n: int) -> list[str]:
    """Class names from scoremix.json, the pipeline's / model's ``id2label`` (the DiTPipeline layout), else ids."""
    if meta.get("class_names"):
        return [str(v) for v in meta["class_names"]]
    for config in (index, model):
        id2label = config.get("id2label")
        if isinstance(id2label, dict) and all(str(i) in id2label for i in range(n)):
            return [str(id2label[str(i)]) for i in range(n)]
    return [str(i) for i in range(n)]


def load_generator(name_or_path: str | None = None, revision: str | None = None, null_class: int | None = None,
                   flag: str = "generator") -> ClassConditionalGenerator:
    """Load a class-conditional generator (see the module docstring for the accepted layouts, references and how
    the null class is found; ``null_class`` overrides what the folder declares). ``flag``: the option that named
    it (a config field), for the errors (``weak_generator`` for the autoguidance model)."""
    if name_or_path not in (None, "", "default"):
        name_or_path, revision = with_revision(name_or_path, revision, flag)
        if revision is not None and Path(name_or_path).expanduser().exists():
            raise ConfigError(f"{flag} {name_or_path} is a local folder: a revision only applies to Hub ids",
                              hint=f"drop the @{revision} of `{flag}` (or its `{flag}_revision` alias)",
                              fields=(flag, f"{flag}_revision"))
    return _load_generator(name_or_path, revision, null_class, flag)


def _load_generator(name_or_path: str | None, revision: str | None, null_class: int | None, flag: str
                    ) -> ClassConditionalGenerator:
    root = resolve_generator_path(name_or_path, revision, flag)
    from .edm2.folder import is_edm2_folder, is_edm2_network, load_edm2_folder, load_edm2_network

    if is_edm2_folder(root):
        meta = _read_json(root / "scoremix.json", flag)
        _check_meta(root / "scoremix.json", meta)
        return load_edm2_folder(root, meta, null_class=null_class, source=str(name_or_path or "default"),
                                revision=revision, flag=flag)
    if is_edm2_network(root):  # a bare EDM2 network, e.g. a folder's edm2_guide/ as the weak generator
        return load_edm2_network(root, null_class=null_class, source=str(name_or_path), revision=revision, flag=flag)
    folder = _denoiser_folder(root, flag)
    _require_safetensors(folder, "the denoiser", flag)
    config = _json_object(folder / "config.json", flag)
    class_name = config.get("_class_name", "")
    meta = _read_json(root / "scoremix.json", flag)
    _check_meta(root / "scoremix.json", meta)
    index = _read_json(root / "model_index.json", flag)
    scheduler_file = root / "scheduler" / "scheduler_config.json"
    scheduler_config = _read_json(scheduler_file, flag) if scheduler_file.is_file() else None

    from diffusers import DiTTransformer2DModel, UNet2DModel

    if class_name == "UNet2DModel":
        if config.get("num_class_embeds") is None or config.get("class_embed_type") is not None:
            raise ModelError(
                f"generator '{root}' is not class-conditional (UNet2DModel without a num_class_embeds table)",
                hint=f"`{flag}` needs a model trained with class labels (scoremix-ds train-generator)", field=flag,
            )
        denoiser = _from_pretrained(UNet2DModel, folder, flag)
        kind, table = "unet", int(config["num_class_embeds"])
    elif class_name == "DiTTransformer2DModel":
        if not config.get("num_embeds_ada_norm"):
            raise ModelError(f"generator '{root}' is not class-conditional (DiT without num_embeds_ada_norm)", hint=f"check `{flag}`", field=flag)
        denoiser = _from_pretrained(DiTTransformer2DModel, folder, flag)
        kind = "dit"
        table = denoiser.transformer_blocks[0].norm1.emb.class_embedder.embedding_table.num_embeddings
    else:
        raise ModelError(
            f"generator '{root}' is a {class_name or 'unknown model'}; supported: UNet2DModel with class embeddings, DiTTransformer2DModel",
            hint=f"check `{flag}`", field=flag,
        )
    denoiser.eval().requires_grad_(False)

    explicit = null_class is not None or "null_class" in meta  # scoremix.json's null_class: null means "none"
    declared = null_class if null_class is not None else (
        meta["null_class"] if "null_class" in meta else declared_null_class(config, scheduler_config or {}, index))
    if declared is not None and not isinstance(declared, int):
        raise ModelError(f"generator '{root}': null_class {declared!r} is not a class id",
                         hint="check `null_class` in scoremix.json / the model or scheduler config")
    if declared is not None and not 0 <= declared < table:
        raise ModelError(f"generator '{root}': null class {declared} is outside its label table 0..{table - 1}",
                         hint="check `null_class` (given, or in scoremix.json / the model config)", field="null_class")
    if kind == "dit":
        num_classes = int(meta.get("num_classes", config["num_embeds_ada_norm"]))
        null_class = declared if declared is not None or explicit else (num_classes if table > num_classes else None)
    else:
        null_class = declared
        default = table - 1 if declared is not None and declared == table - 1 else table
        num_classes = int(meta.get("num_classes", default))
    if num_classes < 1 or num_classes > table or (null_class is not None and not 0 <= null_class < table):
        raise ModelError(f"generator '{root}': scoremix.json class counts do not fit the model's table of {table}", hint="fix scoremix.json")
    if null_class is not None and null_class < num_classes:
        raise ModelError(f"generator '{root}': null class {null_class} is one of its {num_classes} real classes",
                         hint="check `null_class`: the null row comes after the real classes", field="null_class")

    vae = None
    channels, size, _ = denoiser_sample_shape(config)
    if (root / "vae" / "config.json").is_file():
        from diffusers import AutoencoderKL

        _require_safetensors(root / "vae", "the VAE", flag)
        vae = _from_pretrained(AutoencoderKL, root / "vae", flag).eval().requires_grad_(False)

    names = declared_class_names(meta, config, index, num_classes)
    if len(names) != num_classes:
        raise ModelError(f"{root / 'scoremix.json'}: class_names lists {len(names)} name(s) for {num_classes} classes",
                         hint="give one name per class in scoremix.json")
    return ClassConditionalGenerator(
        denoiser=denoiser,
        kind=kind,
        num_classes=num_classes,
        null_class=None if null_class is None else int(null_class),
        class_names=tuple(str(n) for n in names),
        sample_shape=(channels, size, size),
        scheduler_config=None if scheduler_config is None else {k: v for k, v in scheduler_config.items()
                                                                 if k != "null_class"},  # ours, not the scheduler's
        vae=vae,
        source=str(name_or_path or "default"),
        revision=revision,
        metadata=meta,
    )
