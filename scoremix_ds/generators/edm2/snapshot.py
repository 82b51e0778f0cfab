"""Reading NVlabs EDM2 ``network-snapshot-*.pkl`` and ``training-state-*.pt`` files without running anything
from them.

Owns: :func:`read_edm2_snapshot` and its :class:`EDM2Snapshot` result (the ``ema`` network's state dict, its
constructor kwargs, class name, encoder kind and the sha256 of the file and of the embedded source).

Facts relied on (issue 22, and torch's own pickling as checked against torch 2.x): the snapshot is ``pickle.dump``
of a dict with ``encoder``, ``dataset_kwargs``, ``loss_fn`` and ``ema``; each EDM2 module pickles as
``torch_utils.persistence._reconstruct_persistent_obj(meta)``, meta = {type, version, module_src, class_name,
state}, state holding ``_parameters``/``_buffers``/``_modules``, attributes and ``_init_args``/``_init_kwargs``;
``torch.nn.ModuleDict`` containers pickle as plain objects; ``dnnlib.util.EasyDict`` is a dict (the top level is
one); the latent encoder holds numpy arrays (read by :mod:`.pickled_numpy`); tensors pickle as
``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata])`` (parameters
wrapped by ``_rebuild_parameter``) over ``torch.storage._load_from_bytes(b)`` where ``b`` is torch's legacy format:
pickles of the magic number 0x1950a86a20f9469cfc6c, the protocol 1001 and a sys-info dict, then a pickle whose
persistent id is ('storage', torch.<T>Storage, key, location, numel, view_metadata), then the pickled list of
keys, then per key an int64 element count and the raw little-endian bytes.

Safety: every pickle (outer and legacy) goes through a ``pickle.Unpickler`` whose ``find_class`` maps the allow-list
below to plain-data constructors and refuses any other global in one line naming it; ``torch_utils``/``dnnlib`` are
never imported and ``module_src`` is only hashed, never executed. ``training-state-*.pt`` uses
``torch.load(weights_only=True)`` with ``dnnlib.util.EasyDict`` mapped to a dict.
"""

from __future__ import annotations

import collections
import hashlib
import io
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch

from ...core.errors import DataError, ModelError
from .pickled_numpy import NUMPY_GLOBALS, plain

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
_STORAGE_DTYPES = {"HalfStorage": torch.float16, "FloatStorage": torch.float32, "DoubleStorage": torch.float64,
                   "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
                   "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8,
                   "BoolStorage": torch.bool}
_PRECOND_POSITIONAL = ("img_resolution", "img_channels", "label_dim", "use_fp16", "sigma_data", "logvar_channels")
_ENCODERS = {"StandardRGBEncoder": "pixel", "StabilityVAEEncoder": "latent"}


@dataclass
class PersistentObject:
    """What ``_reconstruct_persistent_obj(meta)`` stands for, as data: nothing is constructed or run."""
    class_name: str
    module_src: str
    version: Any
    state: dict


class ModuleData:
    """A pickled ``torch.nn.ModuleDict``, as its state."""

    def __init__(self) -> None:
        self.state: dict = {}

    def __setstate__(self, state: Any) -> None:
        self.state = dict(state) if isinstance(state, dict) else {}


class PlainDict(dict):
    """``dnnlib.util.EasyDict`` read as a dict."""

    def __setstate__(self, state: Any) -> None:
        if state:
            self.update(state)


@dataclass(frozen=True)
class EDM2Snapshot:
    state_dict: dict
    init_kwargs: Optional[dict]
    class_name: str
    encoder: str
    file_sha256: str
    source_sha256: Optional[str]
    extra: dict = field(default_factory=dict)


def _refused(what: str) -> DataError:
    return DataError(f"refused {what} in the EDM2 snapshot (outside the allow-list; nothing from the file was run)",
                     field="snapshot")


def _reconstruct(meta: Any) -> PersistentObject:
    if not isinstance(meta, dict) or meta.get("type") != "class" or not isinstance(meta.get("state"), dict):
        raise DataError("not an EDM2 snapshot: a persistent object without a class state", field="snapshot")
    return PersistentObject(str(meta.get("class_name")), str(meta.get("module_src") or ""), meta.get("version"),
                            dict(meta["state"]))


def _rebuild_tensor(storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None):
    if not isinstance(storage, torch.Tensor) or storage.ndim != 1:
        raise DataError("not an EDM2 snapshot: a tensor over something that is not a storage", field="snapshot")
    size, stride, offset = tuple(int(s) for s in size), tuple(int(s) for s in stride), int(offset)
    last = offset + sum((n - 1) * s for n, s in zip(size, stride)) if all(size) else offset - 1
    if offset < 0 or any(s < 0 for s in stride) or last >= storage.numel():
        raise DataError("corrupt EDM2 snapshot: a tensor reaches past its storage", field="snapshot")
    return torch.as_strided(storage, size, stride, offset).clone()


def _rebuild_parameter(data, requires_grad=False, hooks=None, state=None):
    return data


_ALLOWED = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch.nn.modules.container", "ModuleDict"): ModuleData,
    ("dnnlib.util", "EasyDict"): PlainDict,
    ("builtins", "set"): set,
    **NUMPY_GLOBALS,
}


class _StorageRef:
    def __init__(self, dtype: torch.dtype, numel: int) -> None:
        self.dtype, self.numel, self.data = dtype, numel, None


class _LegacyUnpickler(pickle.Unpickler):
    """The pickles inside torch's legacy format: only ``torch.<T>Storage`` globals, storages as persistent ids."""

    def __init__(self, file, refs: dict) -> None:
        super().__init__(file)
        self.refs = refs

    def find_class(self, module: str, name: str):
        if module == "torch" and name in _STORAGE_DTYPES:
            return _STORAGE_DTYPES[name]
        raise _refused(f"global {module}.{name}")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage" and isinstance(pid[1], torch.dtype)
                and pid[5] is None):
            raise DataError("corrupt EDM2 snapshot: an unknown storage record in the tensor bytes", field="snapshot")
        ref = self.refs.setdefault(str(pid[2]), _StorageRef(pid[1], int(pid[4])))
        return ref


def _load_legacy_storage(data: bytes) -> torch.Tensor:
    """torch's legacy ``torch.save`` bytes of one storage -> a 1-D tensor, parsed here without ``torch.load``."""
    if not isinstance(data, (bytes, bytearray)):
        raise DataError("corrupt EDM2 snapshot: storage bytes expected", field="snapshot")
    f, refs = io.BytesIO(data), {}
    try:
        magic, proto, info = (_LegacyUnpickler(f, refs).load() for _ in range(3))
        if magic != LEGACY_MAGIC or proto != LEGACY_PROTOCOL or not isinstance(info, dict):
            raise DataError("corrupt EDM2 snapshot: storage bytes not in torch's legacy format", field="snapshot")
        if not info.get("little_endian", False):
            raise DataError("unsupported EDM2 snapshot: big-endian storages", field="snapshot")
        root, keys = _LegacyUnpickler(f, refs).load(), _LegacyUnpickler(f, refs).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
        raise DataError(f"corrupt EDM2 snapshot: unreadable storage bytes ({exc})", field="snapshot") from None
    for key in keys:
        ref = refs.get(str(key))
        head = f.read(8)
        if ref is None or len(head) != 8:
            raise DataError("corrupt EDM2 snapshot: truncated storage bytes", field="snapshot")
        numel = int.from_bytes(head, "little", signed=True)
        nbytes = numel * torch.empty(0, dtype=ref.dtype).element_size()
        raw = f.read(nbytes)
        if numel != ref.numel or len(raw) != nbytes:
            raise DataError("corrupt EDM2 snapshot: truncated storage bytes", field="snapshot")
        ref.data = torch.frombuffer(bytearray(raw), dtype=ref.dtype) if numel else torch.empty(0, dtype=ref.dtype)
    if not isinstance(root, _StorageRef) or root.data is None:
        raise DataError("corrupt EDM2 snapshot: storage bytes without their data", field="snapshot")
    return root.data


class _SnapshotUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) == ("torch.storage", "_load_from_bytes"):
            return _load_legacy_storage
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        raise _refused(f"global {module}.{name}")

    def persistent_load(self, pid):
        raise _refused("a persistent id")


def _collect(node: Any, prefix: str, out: dict) -> None:
    if not isinstance(node, (PersistentObject, ModuleData)):
        raise DataError(f"not an EDM2 snapshot: module {prefix.rstrip('.') or 'ema'} is a {type(node).__name__}",
                        field="snapshot")
    state = node.state
    skip = set(state.get("_non_persistent_buffers_set") or ())
    for group in ("_parameters", "_buffers"):
        for name, value in (state.get(group) or {}).items():
            if value is not None and name not in skip:
                if not isinstance(value, torch.Tensor):
                    raise DataError(f"not an EDM2 snapshot: {prefix}{name} is not a tensor", field="snapshot")
                out[prefix + name] = value
    for name, child in (state.get("_modules") or {}).items():
        if child is not None:
            _collect(child, f"{prefix}{name}.", out)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _encoder_kind(encoder: Any, vae_available: bool) -> str:
    if encoder is None:
        return "pixel"
    name = encoder.class_name.rsplit(".", 1)[-1] if isinstance(encoder, PersistentObject) else type(encoder).__name__
    kind = _ENCODERS.get(name)
    if kind is None:
        raise ModelError(f"unsupported EDM2 encoder {name!r} in the snapshot", field="snapshot")
    if kind == "latent" and not vae_available:
        raise ModelError("the EDM2 snapshot is latent-space (StabilityVAEEncoder): it needs a diffusers VAE folder",
                         field="vae")
    return kind


def _encoder_record(encoder: Any) -> dict:
    if not isinstance(encoder, PersistentObject):
        return {}
    return {"class_name": encoder.class_name, "state": plain(encoder.state)}


def _read_pickle(path: Path, vae_available: bool) -> EDM2Snapshot:
    try:
        with open(path, "rb") as f:
            data = _SnapshotUnpickler(f).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise DataError(f"{path.name} is not a readable EDM2 snapshot: truncated or corrupt ({exc})",
                        field="snapshot") from None
    ema = data.get("ema") if isinstance(data, dict) else None
    if not isinstance(ema, PersistentObject):
        raise DataError(f"{path.name} is not an EDM2 network snapshot (no 'ema' network)", field="snapshot")
    encoder = _encoder_kind(data.get("encoder"), vae_available)
    kwargs = dict(ema.state.get("_init_kwargs") or {})
    args = tuple(ema.state.get("_init_args") or ())
    if len(args) > len(_PRECOND_POSITIONAL):
        raise DataError(f"{path.name}: unexpected positional constructor arguments", field="snapshot")
    kwargs.update(zip(_PRECOND_POSITIONAL, args))
    state_dict: dict = {}
    _collect(ema, "", state_dict)
    return EDM2Snapshot(state_dict, kwargs, ema.class_name, encoder, _sha256_file(path),
                        hashlib.sha256(ema.module_src.encode("utf-8")).hexdigest(),
                        extra={"dataset_kwargs": plain(dict(data.get("dataset_kwargs") or {})),
                               "encoder": _encoder_record(data.get("encoder"))})


def _read_training_state(path: Path) -> EDM2Snapshot:
    try:
        with torch.serialization.safe_globals([(dict, "dnnlib.util.EasyDict")]):
            data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        named = re.search(r"GLOBAL ([\w.]+)", str(exc))
        detail = [line for line in str(exc).splitlines()[1:] if line.strip()][:1]
        raise _refused(f"global {named.group(1)}" if named else f"content ({' '.join(detail) or 'unreadable'})") \
            from None
    except (EOFError, RuntimeError, ValueError) as exc:
        raise DataError(f"{path.name} is not a readable EDM2 training state ({exc})", field="snapshot") from None
    net = data.get("net") if isinstance(data, dict) else None
    if not isinstance(net, dict) or not all(isinstance(v, torch.Tensor) for v in net.values()):
        raise DataError(f"{path.name} is not an EDM2 training state (no 'net' state dict)", field="snapshot")
    return EDM2Snapshot(dict(net), None, "training-state", "unknown", _sha256_file(path), None,
                        extra={"state": dict(data.get("state") or {})})


def read_edm2_snapshot(path: str | Path, vae_available: bool = False) -> EDM2Snapshot:
    """The EMA network of a ``network-snapshot-*.pkl`` (or the raw net of a ``training-state-*.pt``, whose init
    kwargs are not stored: ``init_kwargs`` is then None) read as data only."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no EDM2 snapshot at {path}", field="snapshot")
    if path.suffix == ".pt":
        return _read_training_state(path)
    return _read_pickle(path, vae_available)
