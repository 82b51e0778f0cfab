"""``import-generator``: an NVlabs EDM2 snapshot (and optionally its autoguidance guide) as an EDM2 generator folder.

Owns: :class:`ImportConfig` and :func:`import_snapshot`. Every check runs before anything is written: the snapshot
and the guide are read as data (:func:`~.snapshot.read_edm2_snapshot`: nothing from them runs), each network is
rebuilt from its ``_init_kwargs`` (or, for a ``training-state-*.pt``, from its state dict's shapes) and loaded
strictly, the guide must match the network (resolution, channels, label count), the class names the label count.
Only then is ``out`` claimed; the folder (:mod:`.folder`) and its card are written into a temporary sibling folder
that is renamed to ``out`` at the end, so a failure leaves nothing behind.

The card records the source file's sha256, the snapshot's class name, the embedded source's sha256 and the
licences: EDM2's code is CC BY-NC-SA 4.0; the weights are the user's and may carry other terms (not guessed here).
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ...core.errors import DataError, ModelError
from .folder import VAE_DIR, write_edm2_folder
from .precond import EDM2Denoiser
from .shapes import infer_denoiser_kwargs
from .snapshot import EDM2Snapshot, read_edm2_snapshot

EDM2_CODE_LICENCE = "CC BY-NC-SA 4.0"
_DENOISER_ARGS = frozenset(inspect.signature(EDM2Denoiser.__init__).parameters) - {"self"}


@dataclass(frozen=True)
class ImportConfig:
    snapshot: str
    out: str
    guide: Optional[str] = None
    class_names: tuple[str, ...] = ()  # one per label; () = "0", "1", ...
    vae: Optional[str] = None  # a diffusers AutoencoderKL folder, for a latent-space snapshot (copied as vae/)
    channels_per_head: int = 64  # not stored in a training-state file's shapes
    guidance: float = 1.0  # the folder's default guidance w (autoguidance with the guide; 1 = none)


def _network(snap: EDM2Snapshot, field: str, channels_per_head: int) -> EDM2Denoiser:
    """The snapshot's network, rebuilt and strictly loaded (float32 holds every fp16 value exactly)."""
    if snap.init_kwargs is not None:
        kwargs = dict(snap.init_kwargs)
        unknown = sorted(set(kwargs) - _DENOISER_ARGS)
        if unknown:
            raise DataError(f"the EDM2 snapshot's constructor takes {', '.join(map(repr, unknown))}, which this "
                            "EDM2 implementation does not know", hint=f"check `{field}`", field=field)
    else:
        kwargs = infer_denoiser_kwargs(snap.state_dict, channels_per_head=channels_per_head)
    try:
        net = EDM2Denoiser(**kwargs)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise DataError(f"the EDM2 snapshot's constructor arguments do not build a network ({exc})",
                        hint=f"check `{field}`", field=field) from None
    try:
        net.load_state_dict({k: v.to(torch.float32) for k, v in snap.state_dict.items()}, strict=True)
    except RuntimeError as exc:
        first = " ".join(str(exc).split())[:160]
        raise DataError(f"the EDM2 snapshot's tensors do not fit its network ({first})", hint=f"check `{field}`",
                        field=field) from None
    if int(net.label_dim) < 1:
        raise ModelError("the EDM2 snapshot is unconditional (label_dim 0); ScoreMix mixes classes and needs a "
                         "class-conditional network", hint=f"check `{field}`", field=field)
    return net.eval().requires_grad_(False)


def _read(path: str, field: str, vae: Optional[str]) -> EDM2Snapshot:
    try:
        return read_edm2_snapshot(path, vae_available=vae is not None)
    except (DataError, ModelError) as exc:  # the reader names its file `snapshot`; the guide is another field
        if field != "snapshot" and exc.field == "snapshot":
            raise type(exc)(exc.message.replace("EDM2 snapshot", "EDM2 guide snapshot"),
                            hint=exc.hint or f"check `{field}`", field=field) from None
        raise


def _latent(config: ImportConfig, snap: EDM2Snapshot, net: EDM2Denoiser) -> dict:
    """A latent snapshot's decoding: the VAE folder checked, and the encoder's per-channel scale and bias (EDM2's
    final latents are raw VAE latents * scale + bias)."""
    if snap.encoder != "latent":
        raise ModelError("the EDM2 snapshot is pixel-space: it takes no VAE", hint="drop `vae`", field="vae")
    vae = Path(config.vae)
    cfg = vae / "config.json"
    try:
        vae_config = json.loads(cfg.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise ModelError(f"{vae} is not a diffusers VAE folder (no readable config.json)", hint="check `vae`",
                         field="vae") from None
    if not isinstance(vae_config, dict) or vae_config.get("_class_name") != "AutoencoderKL":
        raise ModelError(f"{vae} is not a diffusers AutoencoderKL folder", hint="check `vae`", field="vae")
    if not any(vae.glob("*.safetensors")):
        raise ModelError(f"the VAE in {vae} has no .safetensors weights (scoremix-ds loads safetensors only)",
                         hint="check `vae`", field="vae")
    channels = int(vae_config.get("latent_channels", 4))
    if channels != int(net.img_channels):
        raise ModelError(f"the VAE has {channels} latent channels, the EDM2 network {net.img_channels}",
                         hint="give `vae` the VAE the snapshot was trained with", field="vae")
    state = (snap.extra.get("encoder") or {}).get("state") or {}
    values = {}
    for key in ("scale", "bias"):
        value = np.asarray(state.get(key, np.nan), dtype=np.float64).reshape(-1)
        if value.size == 1:
            value = np.repeat(value, channels)
        if value.size != channels or not np.isfinite(value).all() or (key == "scale" and (value == 0).any()):
            raise DataError(f"the EDM2 snapshot's latent encoder has no usable per-channel {key}",
                            hint="check `snapshot`", field="snapshot")
        values[key] = [float(v) for v in value]
    factor = 2 ** max(len(vae_config.get("block_out_channels") or [0]) - 1, 0)  # the VAE's downsampling
    return {**values, "vae_name": str(state.get("vae_name", "")), "latent_channels": channels,
            "image_size": int(net.img_resolution) * factor, "image_channels": int(vae_config.get("in_channels", 3))}


def _copy_vae(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True)
    for path in src.iterdir():
        if path.is_file() and (path.suffix in (".json", ".safetensors") or path.name == "README.md"):
            shutil.copyfile(path, dst / path.name)


def _check_guide(net: EDM2Denoiser, guide: EDM2Denoiser) -> None:
    for what, a, b in (("resolution", net.img_resolution, guide.img_resolution),
                       ("channel count", net.img_channels, guide.img_channels),
                       ("label count", net.label_dim, guide.label_dim)):
        if int(a) != int(b):
            raise ModelError(f"the guide's {what} is {b}, the network's {a}: autoguidance needs the same",
                             hint="give `guide` a snapshot of the same data and classes", field="guide")


def _card(config: ImportConfig, snap: EDM2Snapshot, guide: Optional[EDM2Snapshot], names: list[str]) -> str:
    from ...core.card_text import card_safe

    rows = [("source file", Path(config.snapshot).name), ("source sha256", snap.file_sha256),
            ("snapshot class", snap.class_name), ("embedded source sha256", snap.source_sha256 or "none stored")]
    if guide is not None:
        rows += [("guide file", Path(config.guide).name), ("guide sha256", guide.file_sha256),
                 ("guide class", guide.class_name), ("guide embedded source sha256", guide.source_sha256 or "none stored")]
    table = "\n".join(f"| {k} | {card_safe(str(v))} |" for k, v in rows)
    return (
        "---\nlibrary_name: scoremix-ds\ntags:\n- edm2\n- scoremix\n---\n\n"
        "# EDM2 generator (imported)\n\n"
        "Imported with `scoremix-ds import-generator` from an NVlabs EDM2 snapshot, read as data: nothing from the "
        "file was executed or imported, and its embedded source code was only hashed.\n\n"
        f"| | |\n|---|---|\n{table}\n\n"
        f"Classes: {len(names)}. Sampler: `edm-heun` (see scoremix.json)."
        + (" Latent space: decoded by the VAE in `vae/` (copied from the folder given)." if snap.encoder == "latent"
           else "") + "\n\n"
        "## Licence\n\n"
        f"EDM2's code (NVlabs) is {EDM2_CODE_LICENCE}; this folder holds none of it (the network is scoremix-ds' own "
        "implementation). The weights are the user's: they may carry other terms, set by whoever trained them "
        "and by their training data. This card does not state them; check with the weights' owner.\n"
    )


def import_snapshot(config: ImportConfig) -> Path:
    """Write the generator folder ``config.out`` from ``config.snapshot`` (see the module docstring)."""
    from ...core.outputs import claim_folder

    if not config.guidance >= 0:
        raise ModelError(f"guidance must be >= 0, got {config.guidance}", field="guidance")
    if config.guidance != 1.0 and config.guide is None:
        raise ModelError("guidance other than 1 needs an autoguidance guide", hint="give `guide`, or `guidance` 1",
                         fields=("guidance", "guide"))
    snap = _read(config.snapshot, "snapshot", config.vae)
    net = _network(snap, "snapshot", config.channels_per_head)
    guide_snap = guide = None
    if config.guide is not None:
        guide_snap = _read(config.guide, "guide", config.vae)
        guide = _network(guide_snap, "guide", config.channels_per_head)
        _check_guide(net, guide)
    latent = _latent(config, snap, net) if snap.encoder == "latent" or config.vae is not None else None
    n = int(net.label_dim)
    names = [str(c) for c in config.class_names] or [str(i) for i in range(n)]
    if len(names) != n:
        raise ModelError(f"class_names lists {len(names)} name(s) for the snapshot's {n} labels",
                         hint=f"give {n} names, or none", field="class_names")
    if len(set(names)) != n:
        raise ModelError("class_names lists a name twice", hint="give each class one name", field="class_names")
    out = Path(config.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):  # checked before anything is written
        raise DataError(f"{out} exists and is not an empty folder; refusing to write into it",
                        hint="choose a new or empty folder", field="out")
    source = {"file": Path(config.snapshot).name, "sha256": snap.file_sha256, "class_name": snap.class_name,
              "source_sha256": snap.source_sha256, "encoder": snap.encoder}
    if guide_snap is not None:
        source["guide"] = {"file": Path(config.guide).name, "sha256": guide_snap.file_sha256,
                           "class_name": guide_snap.class_name, "source_sha256": guide_snap.source_sha256}
    extra = {"imported_from": source, "edm2_code_licence": EDM2_CODE_LICENCE, "licence": None,
             **({"latent": latent, "image_size": latent["image_size"],
                 "channels": latent["image_channels"]} if latent is not None else {})}
    claim_folder(out, "import-generator")
    tmp = out.parent / f".{out.name}.import-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        write_edm2_folder(tmp, net, names, architecture="edm2-imported", guide=guide, extra=extra,
                          sampler={"guidance": float(config.guidance)})
        if latent is not None:
            _copy_vae(Path(config.vae), tmp / VAE_DIR)
        (tmp / "README.md").write_text(_card(config, snap, guide_snap, names), encoding="utf-8")
        out.rmdir()
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
