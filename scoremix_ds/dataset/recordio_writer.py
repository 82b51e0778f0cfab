"""Writing insightface training sets: MXNet RecordIO ``train.rec`` + ``train.idx`` (no mxnet needed).

The format (dmlc-core ``recordio.h``; mxnet ``recordio.py``), as :mod:`scoremix_ds.sources.recordio` reads it:

- a record is ``uint32 magic = 0xced7230a``, ``uint32 lrecord = cflag << 29 | length``, then ``length`` payload bytes
  padded with zeros to a multiple of 4;
- a payload holding the magic word at a 4-byte-aligned offset is written in parts, the magic word itself left out:
  ``cflag`` 1 for the first part, 2 for a middle one, 3 for the last (0: a record in one part); a reader joins the
  parts with the magic word between them;
- an image payload is an ``IRHeader`` (``struct "<IfQQ"``: flag, label, id, id2) and the encoded image; with
  ``flag > 0`` the label is the ``flag`` float32 values that follow the header;
- ``train.idx`` is one ``key<TAB>offset`` line per record.

insightface's layout (what ``MXFaceDataset`` of ``arcface_torch`` reads): record 0 is a header whose label is
``(a, b)``; keys ``1 .. a-1`` are the images, keys ``a .. b-1`` one record per identity whose label is that identity's
``(first, end)`` image-key range. This module packs records (pure) and appends them to a file; which key each image
gets is the exporter's business (:mod:`.export`).
"""

from __future__ import annotations

import struct
from typing import BinaryIO, Sequence

MAGIC = 0xCED7230A
MAGIC_BYTES = struct.pack("<I", MAGIC)
IR_FORMAT = "<IfQQ"
MAX_LENGTH = (1 << 29) - 1


def pack_payload(label: float | Sequence[float], data: bytes = b"", id1: int = 0, id2: int = 0) -> bytes:
    """An ``IRHeader`` and ``data``: a scalar ``label`` (flag 0), or a vector (flag = its length, floats after)."""
    if isinstance(label, (int, float)):
        return struct.pack(IR_FORMAT, 0, float(label), id1, id2) + data
    values = [float(v) for v in label]
    return struct.pack(IR_FORMAT, len(values), 0.0, id1, id2) + struct.pack(f"<{len(values)}f", *values) + data


def _lrecord(cflag: int, length: int) -> bytes:
    if length > MAX_LENGTH:
        raise ValueError(f"a RecordIO part holds at most {MAX_LENGTH} bytes, got {length}")
    return struct.pack("<I", cflag << 29 | length)


def frame(payload: bytes) -> bytes:
    """The bytes of one record: its parts split at every aligned magic word, each part framed, the last padded."""
    out, start = [], 0
    for i in range(0, len(payload) - len(payload) % 4, 4):
        if payload[i:i + 4] == MAGIC_BYTES:
            out += [MAGIC_BYTES, _lrecord(1 if start == 0 else 2, i - start), payload[start:i]]
            start = i + 4
    tail = payload[start:]
    out += [MAGIC_BYTES, _lrecord(3 if start else 0, len(tail)), tail, b"\0" * (-len(tail) % 4)]
    return b"".join(out)


class RecordAppender:
    """Appends framed records to an open ``.rec`` file and remembers each key's offset."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle
        self.offsets: dict[int, int] = {}

    def append(self, key: int, payload: bytes) -> None:
        self.offsets[key] = self.handle.tell()
        self.handle.write(frame(payload))

    def index_text(self) -> str:
        """``train.idx``: one ``key<TAB>offset`` line per record, in key order."""
        return "".join(f"{k}\t{self.offsets[k]}\n" for k in sorted(self.offsets))
