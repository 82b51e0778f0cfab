"""Read insightface training sets (MXNet RecordIO ``train.rec`` + ``train.idx``) without mxnet.

Format (dmlc-core ``recordio.h`` / mxnet ``recordio.py``):

- ``train.idx``: text lines ``key<TAB>byte offset`` into ``train.rec``.
- A record at an offset: ``uint32 magic = 0xced7230a``, ``uint32 lrecord`` with ``cflag = lrecord >> 29`` and
  ``length = lrecord & (2**29 - 1)``, then ``length`` payload bytes padded with zeros to a multiple of 4.
  ``cflag`` 0 is a whole record; a payload that contains the magic word at a 4-byte-aligned position is written in
  parts (1 = first, 2 = middle, 3 = last), and the reader joins the parts with the magic word between them.
- A payload is an ``IRHeader`` (``struct "IfQQ"``, little-endian: flag, label, id, id2) followed by the encoded image;
  when ``flag > 0`` the label is the ``flag`` float32 values that follow the header, and ``label`` is unused.
- insightface datasets (``MXFaceDataset`` in ``recognition/arcface_torch/dataset.py``): record 0 is a header whose
  label is ``(a, b)``; the images are keys ``1 .. a-1`` and keys ``a .. b-1`` are one record per identity (whose
  label is that identity's ``(first, end)`` image-key range). Without such a header every key is an image.
  The image's identity is ``label`` (or ``label[0]`` when it is an array).

Nothing here unpickles or executes anything: the only parsing is ``struct`` and the image decoder.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import DataError

MAGIC = 0xCED7230A
_MAGIC_BYTES = struct.pack("<I", MAGIC)
_LENGTH_MASK = (1 << 29) - 1
IR_FORMAT = "<IfQQ"  # mxnet's "IfQQ" in native order; every platform mxnet ran on is little-endian
IR_SIZE = struct.calcsize(IR_FORMAT)  # 24 bytes
_HINT = "check the train.rec / train.idx pair given as the data"


@dataclass(frozen=True)
class IRHeader:
    """The header in front of every image payload. ``label`` is a float, or a tuple of floats when ``flag > 0``."""

    flag: int
    label: float | tuple[float, ...]
    id: int
    id2: int

    @property
    def identity(self) -> int:
        """The integer class of an image record: ``label`` or ``label[0]`` (as ``MXFaceDataset`` reads it)."""
        value = self.label[0] if isinstance(self.label, tuple) else self.label
        return int(value)


def unpack(payload: bytes, key: int | str = "?") -> tuple[IRHeader, bytes]:
    """Split a record payload into its :class:`IRHeader` and the bytes that follow (mxnet's ``recordio.unpack``)."""
    if len(payload) < IR_SIZE:
        raise DataError(f"record {key} is {len(payload)} bytes, shorter than its {IR_SIZE}-byte header", hint=_HINT)
    flag, label, id1, id2 = struct.unpack_from(IR_FORMAT, payload)
    rest = payload[IR_SIZE:]
    if flag > 0:
        if len(rest) < 4 * flag:
            raise DataError(f"record {key} announces {flag} float labels but holds {len(rest)} bytes", hint=_HINT)
        labels = tuple(float(v) for v in np.frombuffer(rest, dtype="<f4", count=flag))
        return IRHeader(flag, labels, id1, id2), rest[4 * flag:]
    return IRHeader(flag, float(label), id1, id2), rest


def read_index(path: Path) -> dict[int, int]:
    """``train.idx`` -> {key: byte offset}, in file order."""
    index: dict[int, int] = {}
    try:
        lines = path.read_text(encoding="ascii").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read the RecordIO index {path}: {exc}", hint=_HINT) from exc
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        parts = line.split("\t")
        try:
            key, offset = int(parts[0]), int(parts[1])
        except (IndexError, ValueError):
            raise DataError(f"{path} line {number} is not 'key<TAB>offset': {line[:60]!r}", hint=_HINT) from None
        if offset < 0:
            raise DataError(f"{path} line {number} has a negative offset", hint=_HINT)
        index[key] = offset
    if not index:
        raise DataError(f"the RecordIO index {path} is empty", hint=_HINT)
    return index


class RecordIOReader:
    """Random access to the records of a ``.rec`` file through its ``.idx`` (mxnet's ``MXIndexedRecordIO``, 'r').

    Reads use ``os.pread`` on a descriptor opened lazily in each process, so one reader can be shared with
    ``DataLoader`` workers (pickling drops the descriptor).
    """

    def __init__(self, rec_path: str | Path, idx_path: str | Path) -> None:
        self._fd: int | None = None
        self._pid = -1
        self.rec_path = Path(rec_path)
        self.idx_path = Path(idx_path)
        if not self.rec_path.is_file():
            raise DataError(f"no RecordIO file at {self.rec_path}", hint=_HINT)
        self.index = read_index(self.idx_path)
        self.keys = list(self.index)
        self._size = self.rec_path.stat().st_size

    def __len__(self) -> int:
        return len(self.keys)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_fd"], state["_pid"] = None, -1
        return state

    def __del__(self) -> None:
        self.close()

    def close(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = None

    def _read_at(self, offset: int, n: int, key: int) -> bytes:
        if self._fd is None or self._pid != os.getpid():
            self._fd, self._pid = os.open(self.rec_path, os.O_RDONLY), os.getpid()
        data = os.pread(self._fd, n, offset)
        if len(data) != n:
            raise DataError(f"record {key} is truncated at byte {offset} of {self.rec_path.name}", hint=_HINT)
        return data

    def read(self, key: int) -> bytes:
        """The payload of record ``key``, multi-part records joined (dmlc ``RecordIOReader::ReadRecord``)."""
        if key not in self.index:
            raise DataError(f"record {key} is not in {self.idx_path.name}", hint=_HINT)
        offset, parts = self.index[key], []
        while True:
            magic, lrecord = struct.unpack("<II", self._read_at(offset, 8, key))
            if magic != MAGIC:
                raise DataError(
                    f"record {key} of {self.rec_path.name} has a bad magic number {magic:#010x} at byte {offset}"
                    f" (expected {MAGIC:#010x}): the file is corrupt or the .idx does not belong to it", hint=_HINT,
                )
            cflag, length = lrecord >> 29, lrecord & _LENGTH_MASK
            if cflag > 3 or (not parts and cflag in (2, 3)) or (parts and cflag not in (2, 3)):
                raise DataError(f"record {key} has an invalid continuation flag {cflag} at byte {offset}", hint=_HINT)
            padded = (length + 3) & ~3
            if offset + 8 + padded > self._size:
                raise DataError(f"record {key} is truncated at byte {offset} of {self.rec_path.name}", hint=_HINT)
            parts.append(self._read_at(offset + 8, length, key) if length else b"")
            offset += 8 + padded
            if cflag in (0, 3):
                return _MAGIC_BYTES.join(parts)


class InsightFaceRecords:
    """The image records of an insightface ``train.rec`` as ``MXFaceDataset`` sees them.

    ``keys[i]`` is the record key of image ``i``; ``header0`` is ``(a, b)`` from record 0 when it is a header record
    (images ``1 .. a-1``, identity records ``a .. b-1``), else None and every key is an image.
    """

    def __init__(self, folder: str | Path) -> None:
        folder = Path(folder)
        rec, idx = (folder.with_suffix(".rec"), folder.with_suffix(".idx")) if folder.suffix == ".rec" else (
            folder / "train.rec", folder / "train.idx")
        if not idx.is_file():
            raise DataError(f"{rec} has no index file {idx.name} next to it", hint=_HINT)
        self.folder = rec.parent
        self.reader = RecordIOReader(rec, idx)
        self.header0: tuple[int, int] | None = None
        header = unpack(self.reader.read(0), 0)[0] if 0 in self.reader.index else None
        if header is not None and header.flag > 0:
            if len(header.label) < 2:
                raise DataError(f"header record 0 of {rec.name} holds {len(header.label)} values, expected 2",
                                hint=_HINT)
            a, b = int(header.label[0]), int(header.label[1])
            if not 1 <= a <= b:
                raise DataError(f"header record 0 of {rec.name} holds an invalid range ({a}, {b})", hint=_HINT)
            missing = next((k for k in range(1, a) if k not in self.reader.index), None)
            if missing is not None:
                raise DataError(f"header record 0 of {rec.name} announces images 1..{a - 1} but key {missing} is not "
                                f"in {idx.name}", hint=_HINT)
            self.header0 = (a, b)
            self.keys = np.arange(1, a, dtype=np.int64)
        else:
            self.keys = np.asarray(self.reader.keys, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.keys)

    def record(self, i: int) -> tuple[IRHeader, bytes]:
        """Header and encoded image bytes of image ``i``."""
        key = int(self.keys[i])
        return unpack(self.reader.read(key), key)

    def num_classes(self) -> int | None:
        """From the ``property`` file (``classes,height,width``) insightface ships, else the header's identity range."""
        prop = self.folder / "property"
        if prop.is_file():
            try:
                return int(prop.read_text(encoding="ascii").split(",")[0])
            except (ValueError, UnicodeDecodeError):
                raise DataError(f"{prop} is not 'classes,height,width'", hint=_HINT) from None
        if self.header0 is not None and self.header0[1] > self.header0[0]:
            return self.header0[1] - self.header0[0]
        return None
