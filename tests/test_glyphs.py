"""glyphs-han: the shipped many-identity dataset reads by name everywhere, its two identity sets are disjoint, its
files match their recorded digests, and the renderer regenerates the same bytes from the same font packages."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from scoremix_ds.sources.glyphs import glyphs_dir
from scoremix_ds.sources.readers import READERS
from scoremix_ds.sources.openers import read_real_data

ROOT = Path(__file__).resolve().parent.parent


def _meta() -> dict:
    return json.loads((glyphs_dir() / "glyphs.json").read_text(encoding="utf-8"))


def test_two_disjoint_identity_sets_of_the_declared_shape():
    train, verify = read_real_data("glyphs-han-train"), read_real_data("glyphs-han-verify")
    assert train.images.shape == (48_000, 32, 32, 1) and train.images.dtype == np.uint8
    assert verify.images.shape == (9_600, 32, 32, 1)
    assert (train.num_classes, verify.num_classes) == (3_000, 600)
    assert np.bincount(train.labels).min() >= 12 and np.bincount(verify.labels).min() >= 12
    assert not set(train.class_names) & set(verify.class_names)  # open set: no character in both
    assert all(len(n) == 1 and 0x4E00 <= ord(n) < 0xA000 for n in train.class_names + verify.class_names)
    assert {"glyphs-han-train", "glyphs-han-verify"} <= set(READERS)


def test_subsets_and_every_reader_agree():
    from scoremix_ds.sources.source import SourceSpec
    from scoremix_ds.sources.openers import open_source

    sub = read_real_data("glyphs-han-train[0-199]")
    assert sub.num_classes == 200 and len(sub.labels) == 3_200
    src = open_source(SourceSpec("glyphs-han-train[0-199]"))  # what train / train-generator read
    assert len(src) == 3_200 and src.num_classes == 200 and src.info.class_names == sub.class_names
    image, label = src[17]
    assert image.shape == (32, 32, 1) and np.array_equal(image, sub.images[17]) and label == sub.labels[17]
    assert "scoremix-ds==" in src.info.commit


def test_a_plain_datasets_folder_with_class_names():
    import datasets

    verify = datasets.load_dataset(str(glyphs_dir()), "verify", split="test")
    assert verify.features["label"].names == list(read_real_data("glyphs-han-verify").class_names)
    row = verify[0]
    assert row["character"] == verify.features["label"].names[row["label"]] and row["image"].size == (32, 32)


def test_files_match_their_recorded_digests_and_the_card_lists_every_font():
    meta = _meta()
    for name, digest in meta["sha256"].items():
        assert hashlib.sha256((glyphs_dir() / "data" / name).read_bytes()).hexdigest() == digest
    card = (glyphs_dir() / "README.md").read_text(encoding="utf-8")
    assert len(meta["fonts"]) == meta["faces"] >= 40
    for font in meta["fonts"]:
        assert font["package"] != "unknown" and f"`{font['package']}`" in card


def _renderer():
    """tools/render_glyphs.py, the maintainer's renderer (not part of the package)."""
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import render_glyphs
    finally:
        sys.path.pop(0)
    return render_glyphs


def _installed_fonts_match(meta: dict) -> bool:
    if shutil.which("dpkg-query") is None:
        return False
    for font in meta["fonts"]:
        pkg, _, version = font["package"].partition("=")
        got = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", pkg], capture_output=True, text=True)
        if got.returncode or got.stdout.strip() != version or not Path(font["path"]).is_file():
            return False
    return True


@pytest.mark.slow
def test_renderer_regenerates_the_first_identities_byte_for_byte():
    meta = _meta()
    if not _installed_fonts_match(meta):
        pytest.skip("the font packages of glyphs.json are not installed at those versions (make glyph-fonts)")
    render_glyphs = _renderer()
    import dataclasses

    import pyarrow.parquet as pq

    cfg = dataclasses.replace(render_glyphs.RenderConfig(**meta["render_config"]), train_identities=3,
                              verify_identities=0)
    rows, faces, _ = render_glyphs.render(cfg)
    assert [dataclasses.asdict(f) for f in faces] == meta["fonts"]
    shipped = pq.read_table(glyphs_dir() / "data" / "train-00000-of-00001.parquet").slice(0, len(rows["train"]))
    assert [c["bytes"] for c in shipped.column("image").to_pylist()] == [r["image"]["bytes"] for r in rows["train"]]
    assert shipped.column("font").to_pylist() == [r["font"] for r in rows["train"]]


def test_notdef_and_empty_drawings_count_as_missing():
    r = _renderer()
    RenderConfig, align, is_missing = r.RenderConfig, r.align, r.is_missing
    notdef = np.zeros((30, 30), np.uint8)
    notdef[5:25, 5:25] = 255
    notdef[8:22, 8:22] = 0  # a hollow box
    assert is_missing(notdef.copy(), notdef) and is_missing(np.zeros_like(notdef), notdef)
    glyph = np.zeros((30, 30), np.uint8)
    glyph[2:6, 3:27] = 255
    assert not is_missing(glyph, notdef)
    out = align(glyph, RenderConfig(scale_jitter=0.0, shift_jitter=0), np.random.default_rng(0))
    ys, xs = np.nonzero(out)
    assert out.shape == (32, 32) and xs.max() - xs.min() + 1 == round(0.84 * 32)  # ink box scaled to 27 px, centred
    assert abs((xs.min() + xs.max()) / 2 - 15.5) <= 1 and set(np.unique(out)) <= set(range(0, 256, 17))
