"""The EDM2 generator FOLDER every command reads, written and read here.

Layout::

    edm2/              the denoiser (EDM2Denoiser.save_pretrained: config.json + safetensors)
    edm2_guide/        optional: the autoguidance guide, same layout
    vae/               latent-space networks only: the diffusers AutoencoderKL; scoremix.json's ``latent`` holds
                       EDM2's per-channel scale and bias (final latents = raw VAE latents * scale + bias)
    scoremix.json      num_classes, class_names, null_class (or null), image_size, channels, architecture,
                       sigma_data, sampler {scheduler edm-heun, steps, sigma_min, sigma_max, rho, guidance}
    model_index.json   names ScoreMixPipeline and its components (as the diffusers UNet folders do), and the sampler
                       settings (and ``latent``) again, for a pipeline loaded without scoremix.json (a Hub copy)
    README.md          optional card (written by ``import-generator``)

Owns: :func:`write_edm2_folder`, :func:`is_edm2_folder` and :func:`load_edm2_folder` (safetensors only; returns an
:class:`~.generator.EDM2Generator` whose ``guide`` is the folder's guide), :func:`load_edm2_network` (a bare network
folder such as ``edm2_guide/``, given as a weak generator) and the build's look-ups of a local folder's sampler
settings and guide (:func:`local_folder_sampler`, :func:`local_folder_guide`). ``null_class``, when not null, is
``num_classes``: EDM2's dropped label, the zero vector.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional, Sequence

from ...core.errors import ModelError
from .generator import SAMPLER_DEFAULTS, EDM2Generator, edm2_generator
from .precond import EDM2Denoiser

EDM2_DIR, GUIDE_DIR, VAE_DIR = "edm2", "edm2_guide", "vae"
# model_index.json's [library, class] of the networks: the defining module, as diffusers' own save_pretrained names a
# class outside its libraries, so ``DiffusionPipeline.from_pretrained`` finds it (and its ModelMixin base) there.
DENOISER_COMPONENT = (EDM2Denoiser.__module__, EDM2Denoiser.__name__)


def is_edm2_folder(root: Path) -> bool:
    return (Path(root) / EDM2_DIR / "config.json").is_file()


def is_edm2_network(folder: Path) -> bool:
    """A bare EDM2 network folder (``config.json`` of an EDM2Denoiser), e.g. a generator folder's ``edm2_guide/``."""
    config = Path(folder) / "config.json"
    try:
        return config.is_file() and json.loads(config.read_text(encoding="utf-8")).get("_class_name") == "EDM2Denoiser"
    except (OSError, ValueError, AttributeError):
        return False


def folder_meta(net: EDM2Denoiser, class_names: Sequence[str], null_class: Optional[int], architecture: str,
                sampler: Optional[dict] = None, extra: Optional[dict] = None) -> dict[str, Any]:
    """The ``scoremix.json`` of a folder holding ``net``."""
    n = len(class_names)
    if n != int(net.label_dim):
        raise ModelError(f"{n} class name(s) for a network with {net.label_dim} labels", field="class_names")
    if null_class is not None and null_class != n:
        raise ModelError(f"an EDM2 null class is the zero label, id {n}, not {null_class}", field="null_class")
    return {"num_classes": n, "null_class": null_class, "class_names": [str(c) for c in class_names],
            "image_size": int(net.img_resolution), "channels": int(net.img_channels), "architecture": architecture,
            "sigma_data": float(net.sigma_data), "sampler": {**SAMPLER_DEFAULTS, **(sampler or {})}, **(extra or {})}


def write_edm2_folder(root: Path, net: EDM2Denoiser, class_names: Sequence[str], *, null_class: Optional[int] = None,
                      architecture: str = "edm2", guide: Optional[EDM2Denoiser] = None,
                      sampler: Optional[dict] = None, extra: Optional[dict] = None) -> Path:
    """Write the folder (into ``root``, which may exist and be empty)."""
    root = Path(root)
    meta = folder_meta(net, class_names, null_class, architecture, sampler, extra)
    root.mkdir(parents=True, exist_ok=True)
    net.save_pretrained(root / EDM2_DIR, safe_serialization=True)
    if guide is not None:
        guide.save_pretrained(root / GUIDE_DIR, safe_serialization=True)
    index = {"_class_name": "ScoreMixPipeline", "_diffusers_version": _diffusers_version(),
             EDM2_DIR: list(DENOISER_COMPONENT),
             GUIDE_DIR: list(DENOISER_COMPONENT) if guide is not None else [None, None],
             VAE_DIR: ["diffusers", "AutoencoderKL"] if "latent" in meta else [None, None],
             "id2label": {str(i): str(c) for i, c in enumerate(class_names)},
             "num_classes": meta["num_classes"], "null_class": null_class, "sampler": meta["sampler"],
             **({"latent": meta["latent"]} if "latent" in meta else {})}
    (root / "scoremix.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    (root / "model_index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return root


def _diffusers_version() -> str:
    import diffusers

    return diffusers.__version__


def _load_net(folder: Path, flag: str) -> EDM2Denoiser:
    if not any(folder.glob("*.safetensors")):
        pickled = any(folder.glob(p) for p in ("*.bin", "*.pt", "*.pkl", "*.ckpt"))
        raise ModelError(f"the EDM2 denoiser in '{folder}' has " + ("weights only in pickle form; scoremix-ds loads "
                         "safetensors only" if pickled else "no .safetensors weights"),
                         hint=f"import it with `scoremix-ds import-generator`, or check `{flag}`", field=flag)
    try:
        return EDM2Denoiser.from_pretrained(folder, use_safetensors=True).eval().requires_grad_(False)
    except Exception as exc:  # truncated safetensors, a config that does not fit the weights
        raise ModelError(f"{folder} cannot be loaded ({type(exc).__name__}: {str(exc).splitlines()[0][:100]})",
                         hint=f"re-import that folder, or check `{flag}`", field=flag) from None


def load_edm2_folder(root: Path, meta: dict, *, null_class: Optional[int] = None, source: str = "",
                     revision: Optional[str] = None, flag: str = "generator") -> EDM2Generator:
    """The generator in ``root`` (``meta``: its checked ``scoremix.json``); ``null_class`` overrides the folder's."""
    root = Path(root)
    net = _load_net(root / EDM2_DIR, flag)
    n = int(meta.get("num_classes", net.label_dim))
    if n != int(net.label_dim) or n < 1:
        raise ModelError(f"{root / 'scoremix.json'}: num_classes {n} does not fit the network's {net.label_dim} labels",
                         hint="fix scoremix.json", field=flag)
    null = null_class if null_class is not None else meta.get("null_class")
    if null is not None and null != n:
        raise ModelError(f"generator '{root}': an EDM2 null class is the zero label, id {n}, not {null}",
                         hint=f"set `null_class` to {n} or leave it unset", field="null_class")
    names = [str(c) for c in meta.get("class_names") or range(n)]
    sampler = {**SAMPLER_DEFAULTS, **(meta.get("sampler") or {})}
    shape = (int(net.img_channels), int(net.img_resolution), int(net.img_resolution))
    gnet = None
    if (root / GUIDE_DIR / "config.json").is_file():
        gnet = _load_net(root / GUIDE_DIR, flag)
        if (int(gnet.img_channels), int(gnet.img_resolution), int(gnet.img_resolution)) != shape \
                or int(gnet.label_dim) != n:
            raise ModelError(f"generator '{root}': its guide does not match the denoiser (resolution, channels or "
                             "label count)", hint=f"re-import the folder with a matching guide, or check `{flag}`",
                             field=flag)
    vae = _load_vae(root, meta, shape[0], flag)
    return edm2_generator(net, tuple(names), null, sampler, guide_net=gnet, vae=vae, metadata=meta, source=source,
                          guide_source=f"{source}/{GUIDE_DIR}", revision=revision)


def load_edm2_network(folder: Path, *, null_class: Optional[int] = None, source: str = "",
                      revision: Optional[str] = None, flag: str = "generator") -> EDM2Generator:
    """A bare EDM2 network folder as a generator (an autoguidance network given as ``weak_generator``): the class
    names and sampler of the generator folder it sits in when it is one's ``edm2_guide/``, else class ids."""
    folder = Path(folder)
    net = _load_net(folder, flag)
    parent = folder.parent
    meta: dict = {}
    if folder.name == GUIDE_DIR and (parent / "scoremix.json").is_file():
        try:
            meta = json.loads((parent / "scoremix.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            meta = {}
    n = int(net.label_dim)
    names = meta.get("class_names") if isinstance(meta.get("class_names"), list) else None
    null = null_class if null_class is not None else meta.get("null_class")
    if null is not None and null != n:
        raise ModelError(f"EDM2 network '{folder}': a null class is the zero label, id {n}, not {null}",
                         hint=f"set `null_class` to {n} or leave it unset", field="null_class")
    sampler = {**SAMPLER_DEFAULTS, **(meta.get("sampler") or {})}
    return edm2_generator(net, tuple(str(c) for c in (names if names and len(names) == n else range(n))), null,
                          sampler, source=source, revision=revision)


def local_folder_guide(reference: Optional[str]) -> Optional[str]:
    """``REFERENCE/edm2_guide`` when ``reference`` is a local EDM2 folder with a guide, else None."""
    if not reference or reference == "default":
        return None
    root = Path(reference).expanduser()
    return str(Path(reference) / GUIDE_DIR) if is_edm2_folder(root) and is_edm2_network(root / GUIDE_DIR) else None


def _load_vae(root: Path, meta: dict, channels: int, flag: str):
    """The folder's VAE (latent-space networks), with its latent scale/bias; None for a pixel-space folder."""
    latent = meta.get("latent")
    if not (root / VAE_DIR / "config.json").is_file():
        if latent is not None:
            raise ModelError(f"generator '{root}' is latent-space but has no {VAE_DIR}/ folder",
                             hint=f"re-import it with its VAE, or check `{flag}`", field=flag)
        return None
    ok = isinstance(latent, dict) and all(isinstance(latent.get(k), list) and len(latent[k]) == channels
                                          for k in ("scale", "bias"))
    if not ok:
        raise ModelError(f"{root / 'scoremix.json'}: a latent-space folder needs latent.scale and latent.bias, "
                         f"{channels} values each", hint="re-import the folder", field=flag)
    from diffusers import AutoencoderKL

    if not any((root / VAE_DIR).glob("*.safetensors")):
        raise ModelError(f"the VAE in '{root / VAE_DIR}' has no .safetensors weights", hint=f"check `{flag}`",
                         field=flag)
    try:
        vae = AutoencoderKL.from_pretrained(root / VAE_DIR, use_safetensors=True)
    except Exception as exc:
        raise ModelError(f"{root / VAE_DIR} cannot be loaded ({type(exc).__name__}: {str(exc).splitlines()[0][:100]})",
                         hint=f"re-import that folder, or check `{flag}`", field=flag) from None
    return vae.eval().requires_grad_(False)


def local_folder_sampler(reference: Optional[str]) -> Optional[dict]:
    """The sampler settings of ``reference`` when it is a local EDM2 folder (None otherwise: another kind of
    generator, or a Hub id, which is not fetched here)."""
    if not reference or reference == "default":
        return None
    root = Path(reference).expanduser()
    if not is_edm2_folder(root):
        return None
    try:
        meta = json.loads((root / "scoremix.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        meta = {}  # the loader reports a broken scoremix.json in one line when the build loads the folder
    sampler = meta.get("sampler") if isinstance(meta, dict) else None
    return {**SAMPLER_DEFAULTS, **(sampler if isinstance(sampler, dict) else {})}
