"""insightface RecordIO read without mxnet, checked against fixtures made by an independent writer in this file.

The writer follows dmlc-core's ``RecordIOWriter::WriteRecord`` (magic, lrecord, payload split where it contains the
magic word, zero padding to 4 bytes) and mxnet's ``recordio.pack`` (``IfQQ`` header, float labels after it when
``flag > 0``), using only ``struct``; the insightface layout (header record 0, identity records) follows
``MXFaceDataset`` / ``face2rec2.py``.
"""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import Image

from scoremix_ds.sources.recordio import MAGIC, InsightFaceRecords, RecordIOReader, read_index, unpack
from scoremix_ds.sources.source import SourceSpec
from scoremix_ds.sources.openers import open_source
from scoremix_ds.core.errors import DataError

_MAGIC = struct.pack("<I", MAGIC)


def write_record(fh, payload: bytes) -> None:
    """dmlc ``WriteRecord``: parts split at each 4-byte-aligned magic word (cflag 1, 2, ..., 3), padded to 4 bytes."""
    n, start = len(payload), 0
    for i in range(0, n - n % 4, 4):
        if payload[i:i + 4] == _MAGIC:
            fh.write(_MAGIC + struct.pack("<I", ((1 if start == 0 else 2) << 29) | (i - start)) + payload[start:i])
            start = i + 4
    fh.write(_MAGIC + struct.pack("<I", ((3 if start else 0) << 29) | (n - start)) + payload[start:])
    fh.write(b"\0" * (-n % 4))


def pack(label, image: bytes, key: int) -> bytes:
    """mxnet ``recordio.pack``: a number label in the header, or ``flag`` float32 labels right after it."""
    if isinstance(label, (int, float)):
        return struct.pack("<IfQQ", 0, float(label), key, 0) + image
    values = np.asarray(label, dtype="<f4")
    return struct.pack("<IfQQ", values.size, 0.0, key, 0) + values.tobytes() + image


def write_rec(folder, records: list[tuple[int, bytes]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "train.rec", "wb") as rec, open(folder / "train.idx", "w") as idx:
        for key, payload in records:
            idx.write(f"{key}\t{rec.tell()}\n")
            write_record(rec, payload)


def png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def face_images(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8) for _ in range(n)]


def insightface_rec(folder, classes: int = 3, per_class: int = 2, magic_id: bool = True):
    """Images at keys 1..N (label = class), header record 0 = (N+1, N+1+classes), identity records (first, end)."""
    images = face_images(classes * per_class)
    n = len(images)
    records = [(0, pack([n + 1, n + 1 + classes], b"", 0))]
    for i, img in enumerate(images):
        c = i // per_class
        label = [c, 0.5] if i == 1 else c  # one image stores its label as an array: label[0] is the class
        key = i + 1
        # image 2's id is the magic word itself: at payload byte 8 (aligned), so the writer splits it in two parts
        records.append((key, pack(label, png(img), MAGIC if (magic_id and i == 2) else key)))
    for c in range(classes):
        records.append((n + 1 + c, pack([1 + c * per_class, 1 + (c + 1) * per_class], b"", 0)))
    write_rec(folder, records)
    return images, [i // per_class for i in range(n)]


def test_round_trip_header_record_and_labels(tmp_path):
    images, labels = insightface_rec(tmp_path / "rec")
    records = InsightFaceRecords(tmp_path / "rec")
    assert records.header0 == (7, 10)
    assert records.keys.tolist() == [1, 2, 3, 4, 5, 6]  # identity records 7..9 are not images
    assert records.num_classes() == 3  # from the header's identity range (no property file)
    for i, (img, label) in enumerate(zip(images, labels)):
        header, data = records.record(i)
        assert header.identity == label
        np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(data))), img)
    assert records.record(1)[0].label == (0.0, 0.5) and records.record(1)[0].flag == 2
    (tmp_path / "rec" / "property").write_text("5,8,8")
    assert InsightFaceRecords(tmp_path / "rec").num_classes() == 5  # the property file wins, as in insightface


def test_multi_part_record_is_joined_exactly(tmp_path):
    payload = pack(2, png(face_images(1)[0]), MAGIC)
    assert payload[8:12] == _MAGIC
    write_rec(tmp_path, [(5, payload), (9, b"abc")])
    raw = (tmp_path / "train.rec").read_bytes()
    assert (struct.unpack_from("<I", raw, 4)[0] >> 29) == 1  # the writer really split it: first part has cflag 1
    reader = RecordIOReader(tmp_path / "train.rec", tmp_path / "train.idx")
    assert reader.read(5) == payload
    assert reader.read(9) == b"abc"
    header, rest = unpack(reader.read(5))
    assert (header.flag, header.label, header.id, header.id2) == (0, 2.0, MAGIC, 0)
    assert rest == payload[24:]  # the PNG after the 24-byte header


def test_no_header_record_means_every_key_is_an_image(tmp_path):
    imgs = face_images(3)
    write_rec(tmp_path, [(10 + i, pack(float(i), png(im), i)) for i, im in enumerate(imgs)])
    records = InsightFaceRecords(tmp_path / "train.rec")  # the .rec path works as well as its folder
    assert records.header0 is None and records.keys.tolist() == [10, 11, 12]
    assert records.num_classes() is None
    src = open_source(SourceSpec(str(tmp_path)))  # class count from the labels when nothing states it
    assert src.num_classes == 3 and [src[i][1] for i in range(3)] == [0, 1, 2]


def test_bad_magic_names_the_key(tmp_path):
    insightface_rec(tmp_path, magic_id=False)
    offsets = read_index(tmp_path / "train.idx")
    raw = bytearray((tmp_path / "train.rec").read_bytes())
    raw[offsets[4]:offsets[4] + 4] = b"\0\0\0\0"
    (tmp_path / "train.rec").write_bytes(bytes(raw))
    records = InsightFaceRecords(tmp_path)
    records.record(2)  # key 3: untouched
    with pytest.raises(DataError, match=r"record 4 .*bad magic number 0x00000000"):
        records.record(3)


def test_truncated_file_and_bad_index_are_refused(tmp_path):
    insightface_rec(tmp_path, magic_id=False)
    raw = (tmp_path / "train.rec").read_bytes()
    last = max(read_index(tmp_path / "train.idx").items(), key=lambda kv: kv[1])[0]
    (tmp_path / "train.rec").write_bytes(raw[:-6])
    with pytest.raises(DataError, match=f"record {last} is truncated"):
        RecordIOReader(tmp_path / "train.rec", tmp_path / "train.idx").read(last)
    (tmp_path / "train.idx").write_text("0\t0\n1 16\n")
    with pytest.raises(DataError, match="line 2 is not 'key<TAB>offset'"):
        read_index(tmp_path / "train.idx")


def test_recordio_source_decodes_and_handles_corrupt_images(tmp_path):
    images, labels = insightface_rec(tmp_path / "ok")
    src = open_source(SourceSpec(str(tmp_path / "ok")))
    assert (src.info.kind, len(src), src.num_classes, src.info.size, src.info.mode) == ("recordio", 6, 3, (8, 8), "RGB")
    assert src.info.commit is not None and str(tmp_path / "ok" / "train.rec") in src.provenance
    for i in range(6):
        img, label = src[i]
        np.testing.assert_array_equal(img, images[i])
        assert label == labels[i]

    good = face_images(3)
    write_rec(tmp_path / "bad", [(1, pack(0, png(good[0]), 1)), (2, pack(1, b"\x89PNG\r\n\x1a\nbroken", 2)),
                                 (3, pack(1, png(good[2]), 3))])
    src = open_source(SourceSpec(str(tmp_path / "bad")))
    with pytest.raises(DataError, match=r"record 2: the image does not decode") as err:
        src[1]
    assert err.value.hint and "skip_corrupt" in err.value.hint
    src = open_source(SourceSpec(str(tmp_path / "bad"), skip_corrupt=True))
    assert len(src) == 2 and src.info.skipped == 1
    np.testing.assert_array_equal(src[1][0], good[2])
