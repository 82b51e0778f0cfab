"""Safe stand-ins for the numpy values a pickle may hold (an EDM2 encoder's ``scale``/``bias`` arrays and
``np.float32`` scalars), for the restricted unpicklers of :mod:`.snapshot`.

Owns: :data:`NUMPY_GLOBALS` (the allow-list entries: ``numpy[._]core.multiarray._reconstruct`` / ``scalar``,
``numpy.dtype``, ``numpy.ndarray``) and :func:`plain` (stand-ins -> numpy values, recursively).

Facts relied on (numpy's own pickling, checked with numpy 2.x): an array pickles as
``_reconstruct(ndarray, (0,), b'b')`` then BUILD (version, shape, dtype, is_fortran, raw bytes); a dtype as
``dtype(code, align, copy)`` then BUILD (version, byte order, ...); a scalar as ``scalar(dtype, raw bytes)``. Only
boolean and numeric dtypes with raw-byte data are accepted (no object arrays): nothing is called but
``np.dtype(code)`` on a validated code and ``np.frombuffer``.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from ...core.errors import DataError

_CODE = re.compile(r"(?:[biufc]\d{1,2}|\?)")


def _corrupt(what: str) -> DataError:
    return DataError(f"corrupt EDM2 snapshot: {what}", field="snapshot")


class PickledDtype:
    def __init__(self, code: Any = "", align: Any = False, copy: Any = False) -> None:
        if not isinstance(code, str) or not _CODE.fullmatch(code):
            raise DataError(f"refused numpy dtype {code!r} in the EDM2 snapshot (only numeric dtypes are read)",
                            field="snapshot")
        self.code, self.order = code, "="

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) > 1 and state[1] in ("<", ">", "=", "|"):
            self.order = state[1]

    def numpy(self) -> np.dtype:
        dtype = np.dtype(self.code)
        return dtype.newbyteorder(self.order) if self.order in "<>" else dtype


class PickledArray:
    def __init__(self, *args: Any) -> None:
        self.value: np.ndarray | None = None

    def __setstate__(self, state: Any) -> None:
        if not (isinstance(state, tuple) and len(state) == 5 and isinstance(state[2], PickledDtype)
                and isinstance(state[4], (bytes, bytearray)) and isinstance(state[1], tuple)):
            raise _corrupt("a numpy array that is not plain numeric data")
        shape = tuple(int(n) for n in state[1])
        flat = np.frombuffer(bytes(state[4]), dtype=state[2].numpy())
        if flat.size != int(np.prod(shape)):
            raise _corrupt("a numpy array whose data does not match its shape")
        self.value = flat.reshape(shape, order="F" if state[3] else "C").copy()


def _scalar(dtype: Any, raw: Any) -> np.generic:
    if not isinstance(dtype, PickledDtype) or not isinstance(raw, (bytes, bytearray)):
        raise _corrupt("a numpy scalar that is not plain numeric data")
    values = np.frombuffer(bytes(raw), dtype=dtype.numpy())
    if values.size != 1:
        raise _corrupt("a numpy scalar of the wrong size")
    return values[0]


_NDARRAY = object()  # what ``numpy.ndarray`` stands for: only ever an argument of _reconstruct

NUMPY_GLOBALS = {("numpy", "dtype"): PickledDtype, ("numpy", "ndarray"): _NDARRAY}
for _core in ("numpy.core.multiarray", "numpy._core.multiarray"):
    NUMPY_GLOBALS[(_core, "_reconstruct")] = PickledArray
    NUMPY_GLOBALS[(_core, "scalar")] = _scalar


def plain(value: Any) -> Any:
    """``value`` with the stand-ins replaced by numpy arrays/dtypes, through dicts, lists and tuples."""
    if isinstance(value, PickledArray):
        return value.value
    if isinstance(value, PickledDtype):
        return value.numpy()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v) for v in value)
    return value
