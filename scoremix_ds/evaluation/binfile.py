"""A restricted reader of insightface verification ``.bin`` files (lfw.bin, cfp_fp.bin, agedb_30.bin, ...).

Such a file is a pickle of ``(bins, issame_list)``: ``bins`` holds ``2 * len(issame_list)`` encoded images (pair i is
``bins[2i], bins[2i+1]``) and ``issame_list`` one bool per pair. It is NEVER unpickled. :func:`read_bin` walks the
opcodes with ``pickletools.genops`` on a small stack machine that builds only tuples, lists, bools, ints, strings
and bytes, and checks the result has exactly that structure. Nothing is imported, looked up or called.

A few writers need more than plain data, so a fixed table of names is recognised (as inert tokens, never
resolved) and ``REDUCE``/``BUILD`` are interpreted ONLY for these tokens with the exact argument shapes below,
re-done here with pure data operations:

- ``_codecs.encode(text, "latin1")``: how Python 3 writes ``bytes`` at protocol 2 -> ``text.encode("latin-1")``;
- numpy ``uint8`` arrays (insightface's ``cfp2pack.py``/``agedb2pack2.py`` store ``cv2.imencode`` output) written
  as ``_reconstruct(ndarray, (0,), b"b")`` + ``BUILD (1, shape, dtype, False, raw)`` (protocols 2-4) or
  ``_frombuffer(raw, dtype, shape, "C")`` (protocol 5) -> ``np.frombuffer``; numpy bools via ``scalar(dtype, b)``.
  ``dtype("u1"|"b1", False, True)`` is the only dtype accepted.

Any other global, opcode (``INST``, ``OBJ``, ``NEWOBJ``, ``PERSID``, dicts, out-of-band buffers...) or shape
raises :class:`~scoremix_ds.core.errors.DataError`.
"""

from __future__ import annotations

import io
import math
import pickletools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import DataError

_HINT = "check the benchmark (an insightface verification .bin)"  # errors using it name the field benchmark
_NP = ("numpy.core.multiarray", "numpy._core.multiarray")
_GLOBALS = {("_codecs", "encode"): "encode", ("numpy", "dtype"): "dtype", ("numpy", "ndarray"): "ndarray",
            **{(m, "_reconstruct"): "reconstruct" for m in _NP}, **{(m, "scalar"): "scalar" for m in _NP},
            **{(m, "_frombuffer"): "frombuffer" for m in ("numpy.core.numeric", "numpy._core.numeric")}}
_MARK = object()
_PUSH = {"MARK": _MARK, "NONE": None, "NEWTRUE": True, "NEWFALSE": False, "EMPTY_LIST": list, "EMPTY_TUPLE": tuple}
_VALUES = {"BININT", "BININT1", "BININT2", "SHORT_BINBYTES", "BINBYTES", "BINBYTES8", "BYTEARRAY8",
           "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8"}
_PY2_STR = {"SHORT_BINSTRING", "BINSTRING"}  # a Python 2 str: raw bytes (what pickle.load(encoding="bytes") gives)
_IGNORED = {"PROTO", "FRAME", "STOP"}


@dataclass(frozen=True)
class BinFile:
    """The content of a ``.bin``: encoded images (JPEG/PNG bytes) and one bool per pair."""

    blobs: tuple[bytes, ...]
    issame: np.ndarray

    @property
    def num_pairs(self) -> int:
        return len(self.issame)


class _Token:  # a recognised global, or a dtype / array under construction: inert data, never callable
    def __init__(self, kind: str, value=None) -> None:
        self.kind, self.value = kind, value


def _fail(path, why: str):
    raise DataError(f"{path} is not an insightface verification .bin: {why}", hint=_HINT, field="benchmark")


def _text(x) -> str | None:
    return x.decode("latin-1") if isinstance(x, (bytes, bytearray)) else x if isinstance(x, str) else None


def _dtype(token, path) -> str:
    if not (isinstance(token, _Token) and token.kind == "dtype-ready"):
        _fail(path, "an array without a uint8/bool dtype")
    return token.value


def _reduce(func, args, path):
    """The allowed calls, done as data operations."""
    kind = func.kind if isinstance(func, _Token) else None
    n = len(args) if isinstance(args, tuple) else -1
    if kind == "encode" and n == 2 and isinstance(args[0], str) and _text(args[1]) in ("latin1", "latin-1"):
        return args[0].encode("latin-1")
    if kind == "dtype" and n == 3 and _text(args[0]) in ("u1", "b1") and args[1:] in ((False, True), (0, 1)):
        return _Token("dtype", _text(args[0]))
    if kind == "reconstruct" and n == 3 and getattr(args[0], "kind", None) == "ndarray" and args[1] == (0,) \
            and _text(args[2]) == "b":
        return _Token("array")
    if kind == "scalar" and n == 2 and _dtype(args[0], path) == "b1" and args[1] in (b"\x00", b"\x01"):
        return args[1] == b"\x01"
    if kind == "frombuffer" and n == 4 and isinstance(args[0], (bytes, bytearray)) and _text(args[3]) == "C":
        return _array(bytes(args[0]), _dtype(args[1], path), args[2], path)
    _fail(path, f"a call it does not allow ({kind or type(func).__name__})")


def _build(obj, state, path):
    """BUILD sets state in place (memo entries share the object): a dtype becomes usable, an array gets its data."""
    if isinstance(obj, _Token) and obj.kind == "dtype" and isinstance(state, tuple) and len(state) == 8 \
            and _text(state[1]) == "|" and all(isinstance(s, (int, str, bytes, type(None))) for s in state):
        obj.kind = "dtype-ready"
        return obj
    if isinstance(obj, _Token) and obj.kind == "array" and isinstance(state, tuple) and len(state) == 5 \
            and state[0] == 1 and type(state[3]) in (bool, int) and not state[3] and isinstance(state[4], bytes):
        obj.kind, obj.value = "array-ready", _array(state[4], _dtype(state[2], path), state[1], path)
        return obj
    _fail(path, "a BUILD it does not allow")


def _array(raw: bytes, dtype: str, shape, path) -> np.ndarray:
    if not (isinstance(shape, tuple) and all(type(s) is int and s >= 0 for s in shape)) or len(raw) != math.prod(shape):
        _fail(path, "an array whose shape does not match its data")
    return np.frombuffer(raw, dtype=np.uint8 if dtype == "u1" else np.bool_).reshape(shape)


def _ready(x):
    """A finished numpy array token -> its array; anything else unchanged."""
    return x.value if isinstance(x, _Token) and x.kind == "array-ready" else x


def _pop_mark(stack: list, path) -> list:
    for i in range(len(stack) - 1, -1, -1):
        if stack[i] is _MARK:
            items = stack[i + 1 :]
            del stack[i:]
            return items
    _fail(path, "a MARK is missing")


def _interpret(data: bytes, path) -> object:
    """Run the restricted stack machine over the pickle opcodes; returns the single object it builds."""
    stack: list = []
    memo: dict[int, object] = {}
    for op, arg, _pos in pickletools.genops(io.BytesIO(data)):
        name = op.name
        if name in _IGNORED:
            continue
        if name in _PUSH:
            value = _PUSH[name]
            stack.append(value() if value in (list, tuple) else value)
        elif name in _VALUES:
            stack.append(arg)
        elif name in _PY2_STR:
            stack.append(arg.encode("latin-1"))  # genops decodes py2 strings as latin-1; this restores the bytes
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            k = int(name[-1])
            if len(stack) < k:
                _fail(path, "a truncated tuple")
            stack[-k:] = [tuple(stack[-k:])]
        elif name in ("TUPLE", "LIST"):
            items = _pop_mark(stack, path)
            stack.append(tuple(items) if name == "TUPLE" else items)
        elif name in ("APPEND", "APPENDS"):
            items = _pop_mark(stack, path) if name == "APPENDS" else [stack.pop()]
            if not stack or type(stack[-1]) is not list:
                _fail(path, "APPEND to something that is not a list")
            stack[-1].extend(items)
        elif name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
            memo[len(memo) if name == "MEMOIZE" else arg] = stack[-1]
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            if arg not in memo:
                _fail(path, f"a reference to unknown memo entry {arg}")
            stack.append(memo[arg])
        elif name in ("GLOBAL", "STACK_GLOBAL"):
            if name == "GLOBAL":
                module, _, attr = arg.partition(" ")
            else:
                attr, module = stack.pop(), stack.pop()
                if not (isinstance(module, str) and isinstance(attr, str)):
                    _fail(path, "a global whose name is not text")
            if (module, attr) not in _GLOBALS:
                _fail(path, f"it references {module}.{attr} (refused: a .bin holds only images and booleans)")
            stack.append(_Token(_GLOBALS[(module, attr)]))
        elif name == "REDUCE":
            args = stack.pop()
            stack[-1] = _reduce(stack[-1], args, path)
        elif name == "BUILD":
            state = stack.pop()
            stack[-1] = _build(stack[-1], state, path)
        else:
            _fail(path, f"pickle opcode {name} is not allowed")
    if len(stack) != 1:
        _fail(path, "it does not hold exactly one object")
    return stack[0]


def read_bin(path: str | Path) -> BinFile:
    """Read and validate a ``.bin`` without unpickling it (see the module docstring for what is accepted).

    Raises:
        DataError: missing file, anything but ``(list of encoded images, list of bools)``, or
            ``len(bins) != 2 * len(issame)``.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}", hint=_HINT, field="benchmark") from exc
    try:
        top = _interpret(data, path)
    except (ValueError, IndexError, KeyError, TypeError) as exc:  # truncated or malformed opcodes, stack underflow
        _fail(path, f"malformed pickle ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})")
    if not (isinstance(top, tuple) and len(top) == 2 and isinstance(top[0], (list, tuple))):
        _fail(path, "the top level is not a (bins, issame_list) pair")
    bins, flags = top[0], _ready(top[1])
    if isinstance(flags, np.ndarray) and flags.dtype == np.bool_ and flags.ndim == 1:
        flags = flags.tolist()
    if not (isinstance(flags, (list, tuple)) and all(type(f) is bool for f in flags)):
        _fail(path, "issame_list is not a list of booleans")
    blobs = []
    for i, b in enumerate(map(_ready, bins)):
        if isinstance(b, np.ndarray) and b.dtype == np.uint8 and b.ndim in (1, 2) and b.size == len(b):
            b = b.tobytes()
        if not isinstance(b, (bytes, bytearray)):
            _fail(path, f"bins[{i}] is a {type(b).__name__}, not encoded image bytes")
        blobs.append(bytes(b))
    if len(blobs) != 2 * len(flags):
        _fail(path, f"{len(blobs)} images for {len(flags)} pairs (expected {2 * len(flags)})")
    return BinFile(blobs=tuple(blobs), issame=np.asarray(flags, dtype=bool))
