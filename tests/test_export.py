"""`scoremix-ds export`: insightface train.rec / image folders, read back by a reader written here from the format's
description (not the project's own), resumed after a crash, and refused on a damaged or unfinished build."""

from __future__ import annotations

import collections
import json
import struct
from pathlib import Path

import datasets
import numpy as np
import pytest

from scoremix_ds.cli import main
from scoremix_ds.core.errors import ConfigError, DataError
from scoremix_ds.dataset import export as export_module
from scoremix_ds.dataset.export import ExportConfig, export_build
from scoremix_ds.dataset.recordio_writer import MAGIC_BYTES, frame, pack_payload
from scoremix_ds.synthesis.config import BuildConfig
from scoremix_ds.synthesis.runner import run_build


# --- an independent RecordIO reader, from the format's description -------------------------------------------------
# record: u32 magic 0xced7230a, u32 lrecord (cflag = top 3 bits, length = low 29), payload padded to 4 bytes;
# cflag 1/2/3 = first/middle/last part of a payload that held the magic word (re-inserted between parts);
# payload = IRHeader "<IfQQ" (flag, label, id, id2); flag > 0: `flag` float32 labels follow the header.

def read_record(blob: bytes, offset: int) -> bytes:
    parts = []
    while True:
        magic, lrec = struct.unpack_from("<II", blob, offset)
        assert magic == 0xCED7230A, f"no magic at {offset}"
        cflag, length = lrec >> 29, lrec & ((1 << 29) - 1)
        parts.append(blob[offset + 8: offset + 8 + length])
        offset += 8 + length + (-length % 4)
        if cflag in (0, 3):
            return struct.pack("<I", 0xCED7230A).join(parts)


def parse(payload: bytes):
    flag, label, _id, _id2 = struct.unpack_from("<IfQQ", payload)
    if flag:
        return tuple(struct.unpack_from(f"<{flag}f", payload, 24)), payload[24 + 4 * flag:]
    return label, payload[24:]


def read_rec(folder: Path) -> tuple[dict[int, object], dict[int, bytes]]:
    blob = (folder / "train.rec").read_bytes()
    index = dict(tuple(map(int, line.split("\t"))) for line in (folder / "train.idx").read_text().splitlines())
    labels, data = {}, {}
    for key, offset in index.items():
        labels[key], data[key] = parse(read_record(blob, offset))
    return labels, data


# --- fixtures -------------------------------------------------------------------------------------------------------

@pytest.fixture
def build_dir(tiny_generator_dir, tiny_discriminator_dir, tiny_real_data_dir, tmp_path) -> Path:
    config = BuildConfig(generator=str(tiny_generator_dir), discriminator=str(tiny_discriminator_dir),
                         real_data=str(tiny_real_data_dir), pairs=3, per_identity=2, steps=2, shard_size=1,
                         batch_size=4, out=str(tmp_path / "build"))
    run_build(config, progress=False)
    return tmp_path / "build"


def build_rows(build: Path, config: str) -> list[tuple[bytes, int]]:
    ds = datasets.load_dataset(str(build), config, split="train").cast_column("image", datasets.Image(decode=False))
    return [(row["image"]["bytes"], row["label"]) for row in ds]


# --- tests ----------------------------------------------------------------------------------------------------------

def test_frame_splits_a_payload_at_every_aligned_magic_word_and_a_reader_joins_it_back():
    payload = b"abcd" + MAGIC_BYTES + b"efgh" + MAGIC_BYTES + b"xy"  # two aligned magic words
    blob = frame(payload)
    assert blob.count(MAGIC_BYTES) == 3  # one per framed part: the two in-payload words are left out
    flags = [struct.unpack_from("<I", blob, i + 4)[0] >> 29 for i in (0, 12, 24)]
    assert flags == [1, 2, 3] and read_record(blob, 0) == payload
    assert frame(b"ab" + MAGIC_BYTES)[4:8] == struct.pack("<I", 6)  # unaligned: one record, padded to 8
    assert len(frame(b"ab" + MAGIC_BYTES)) == 16


def test_rec_export_is_what_arcface_torch_reads_with_labels_after_the_real_ones(build_dir, tmp_path):
    result = export_build(ExportConfig(build=str(build_dir), out=str(tmp_path / "rec"), configs=("mix", "repro"),
                                       label_offset=4), progress=False)
    labels, data = read_rec(tmp_path / "rec")
    mix, repro = build_rows(build_dir, "mix"), build_rows(build_dir, "repro")
    n = len(mix) + len(repro)
    a, b = (int(v) for v in labels[0])  # the header: images at keys 1..a-1, identity records at a..b-1
    assert (a, b) == (n + 1, n + 1 + result.identities) and result.images == n
    images = {k: (data[k], int(labels[k])) for k in range(1, a)}
    expected = [(img, label + 4) for img, label in mix] + repro  # mix after the 4 real classes; repro keeps its own
    assert collections.Counter(images.values()) == collections.Counter(expected)  # every image, as stored
    for key in range(a, b):  # each identity record names the contiguous key range of exactly its label's images
        first, end = (int(v) for v in labels[key])
        assert {images[k][1] for k in range(first, end)} == {images[first][1]}
        assert end - first == sum(1 for _, lab in expected if lab == images[first][1])
    assert (tmp_path / "rec" / "property").read_text() == f"{4 + 3},8,8\n"  # classes, height, width
    assert json.loads((tmp_path / "rec" / "export.json").read_text())["build_fingerprint"]


def test_the_projects_own_recordio_reader_reads_the_export(build_dir, tmp_path):
    from scoremix_ds.sources.openers import read_real_data

    export_build(ExportConfig(build=str(build_dir), out=str(tmp_path / "rec")), progress=False)
    data = read_real_data(str(tmp_path / "rec"))
    assert sorted(data.labels.tolist()) == sorted(label for _, label in build_rows(build_dir, "mix"))


def test_an_interrupted_export_resumes_to_the_same_bytes(build_dir, tmp_path, monkeypatch):
    whole = tmp_path / "whole"
    export_build(ExportConfig(build=str(build_dir), out=str(whole), configs=("mix", "repro"), label_offset=4),
                 progress=False)
    real_rows, calls = export_module._rows, []

    def crash_on_third_shard(path):
        calls.append(path)
        if len(calls) == 3:
            yield from []
            raise KeyboardInterrupt  # a kill in the middle of the third shard
        yield from real_rows(path)

    monkeypatch.setattr(export_module, "_rows", crash_on_third_shard)
    config = ExportConfig(build=str(build_dir), out=str(tmp_path / "part"), configs=("mix", "repro"), label_offset=4)
    with pytest.raises(KeyboardInterrupt):
        export_build(config, progress=False)
    assert len(json.loads((tmp_path / "part" / ".export-progress.json").read_text())["done"]) == 2
    monkeypatch.setattr(export_module, "_rows", real_rows)
    assert export_build(config, progress=False).resumed
    for name in ("train.rec", "train.idx", "property"):
        assert (tmp_path / "part" / name).read_bytes() == (whole / name).read_bytes()
    assert not (tmp_path / "part" / ".export-progress.json").exists()


def test_imagefolder_export_one_folder_per_identity(build_dir, tmp_path):
    export_build(ExportConfig(build=str(build_dir), out=str(tmp_path / "folder"), format="imagefolder",
                              label_offset=10), progress=False)
    files = sorted(p for p in (tmp_path / "folder").rglob("*.png"))
    got = collections.Counter((p.read_bytes(), int(p.parent.name)) for p in files)
    assert got == collections.Counter((img, label + 10) for img, label in build_rows(build_dir, "mix"))
    assert sorted({p.parent.name for p in files}) == ["000010", "000011", "000012"]  # sorted names = labels


def test_a_damaged_or_unfinished_build_is_refused_and_nothing_is_written(build_dir, tmp_path):
    shard = sorted((build_dir / "data" / "mix").glob("*.parquet"))[0]
    raw = bytearray(shard.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    shard.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=shard.name):
        export_build(ExportConfig(build=str(build_dir), out=str(tmp_path / "x")), progress=False)
    assert not (tmp_path / "x").exists()
    manifest = json.loads((build_dir / "manifest.json").read_text())
    (build_dir / "manifest.json").write_text(json.dumps({**manifest, "complete": False}))
    with pytest.raises(DataError, match="unfinished build"):
        export_build(ExportConfig(build=str(build_dir), out=str(tmp_path / "x")), progress=False)


def test_bad_export_settings_are_one_line_naming_the_flag(build_dir, tmp_path, capsys):
    with pytest.raises(ConfigError, match="label_offset"):
        ExportConfig(build="b", out="o", configs=("repro",), label_offset=3)
    rc = main(["export", str(build_dir), "--out", str(tmp_path / "o"), "--configs", "both", "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "must start at 4" in err[0] and "--label-offset" in err[0]
    assert not (tmp_path / "o").exists()
    rc = main(["export", str(build_dir), "--out", str(tmp_path / "o"), "--format", "lmdb"])
    assert rc == 2 and "--format" in capsys.readouterr().err


def test_pack_payload_vector_labels_carry_their_count_in_the_flag():
    label, rest = parse(pack_payload((3.0, 7.0), b"img"))
    assert label == (3.0, 7.0) and rest == b"img"
    assert parse(pack_payload(5, b"x")) == (5.0, b"x")
    assert np.float32(parse(pack_payload(2.5))[0]) == np.float32(2.5)
