"""Pair sources, the evaluation runner on every benchmark kind, and the report files (tiny CPU model, seconds)."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from fixtures.images import png_bytes, random_images
from scoremix_ds.core.errors import DataError
from scoremix_ds.evaluation.ijb import ARCFACE_LANDMARKS, align_face, ijb_verification, load_ijb_faces, read_ijb_meta
from scoremix_ds.evaluation.metrics import eer, roc_auc, roc_curve
from scoremix_ds.evaluation.verification_pairs import VerificationPairs, make_pairs_from_labels, pairs_from_dataset
from scoremix_ds.evaluation.report import markdown_table, to_dict, write_report
from scoremix_ds.evaluation.runner import HeldOutSet, IdentificationSet, IJBSet, _embed, evaluate
from scoremix_ds.discriminators.loading import SmallCNN, embed_images

pytestmark = pytest.mark.usefixtures("one_thread")  # bit-exact comparisons, and fair on a shared machine


@pytest.fixture
def model() -> SmallCNN:
    torch.manual_seed(0)
    return SmallCNN(in_channels=1, image_size=8, embedding_dim=16).eval()


def _pair_features():
    import datasets

    image = datasets.Image()
    return datasets.Features({"image_a": image, "image_b": image, "is_same": datasets.Value("bool")})


# ---- pairs ------------------------------------------------------------------------------------------------------

def test_make_pairs_from_labels_is_balanced_distinct_and_seeded():
    labels = np.repeat(np.arange(5), [3, 4, 5, 6, 2])  # 3+6+10+15+1 = 35 genuine pairs, 190-35 = 155 impostor
    a, b, same = make_pairs_from_labels(labels, 40, seed=0)
    assert same.sum() == 20 and (~same).sum() == 20
    assert np.array_equal(labels[a] == labels[b], same) and (a != b).all()
    assert len({(min(x, y), max(x, y)) for x, y in zip(a, b)}) == 40
    again = make_pairs_from_labels(labels, 40, seed=0)
    assert all(np.array_equal(x, y) for x, y in zip((a, b, same), again))
    assert not np.array_equal(make_pairs_from_labels(labels, 40, seed=1)[0], a)
    a, b, same = make_pairs_from_labels(labels, 70, seed=0)  # every genuine pair
    assert {(min(x, y), max(x, y)) for x, y, s in zip(a, b, same) if s} == {
        (i, j) for i in range(20) for j in range(i + 1, 20) if labels[i] == labels[j]}
    with pytest.raises(DataError, match="offers 35 genuine"):
        make_pairs_from_labels(labels, 72, seed=0)


def test_make_pairs_enumerates_scarce_impostors():
    labels = np.repeat([0, 1], 10)  # 90 genuine, 100 impostor pairs; 80 impostors is most of them
    a, b, same = make_pairs_from_labels(labels, 160, seed=3)
    imp = {(x, y) for x, y, s in zip(a, b, same) if not s}
    assert len(imp) == 80 and all(labels[x] != labels[y] for x, y in imp)


def test_verification_pairs_refuse_mismatched_counts():
    with pytest.raises(DataError, match="mismatched pair counts"):
        VerificationPairs(random_images(3), random_images(2), np.array([True, False, True]), "bad")


def test_pairs_from_datasets_image_and_index_columns():
    import datasets

    grey = random_images(6, seed=2, channels=1)
    pil = [Image.fromarray(g[..., 0], mode="L") for g in grey]
    feats = _pair_features()
    ds = datasets.Dataset.from_dict({"image_a": pil[:3], "image_b": pil[3:], "is_same": [True, False, True]},
                                    features=feats)
    pairs = pairs_from_dataset(ds, "toy")
    assert np.array_equal(pairs.images_a, grey[:3]) and np.array_equal(pairs.images_b, grey[3:])
    assert pairs.issame.tolist() == [True, False, True]
    images = datasets.Dataset.from_dict({"image": pil}, features=datasets.Features({"image": datasets.Image()}))
    index = datasets.Dataset.from_dict({"index_a": [0, 5], "index_b": [1, 2], "is_same": [0, 1]})
    pairs = pairs_from_dataset(index, "indexed", images=images)
    assert np.array_equal(pairs.images_a, grey[[0, 5]]) and pairs.issame.tolist() == [False, True]
    with pytest.raises(DataError, match="indexes outside the 6 images"):
        pairs_from_dataset(datasets.Dataset.from_dict({"index_a": [6], "index_b": [0], "is_same": [1]}), "x", images)
    with pytest.raises(DataError, match="needs image_a/image_b"):
        pairs_from_dataset(images, "no-pairs")
    odd = pil[:2] + [Image.fromarray(np.zeros((5, 5), np.uint8), mode="L")]
    bad = datasets.Dataset.from_dict({"image_a": pil[:3], "image_b": odd, "is_same": [1, 0, 1]}, features=feats)
    with pytest.raises(DataError, match="row 2 is"):
        pairs_from_dataset(bad, "odd")


# ---- runner ----------------------------------------------------------------------------------------------------

def test_flip_tta_sums_the_embeddings_of_the_flip(model):
    x = random_images(5, seed=4)
    expected = embed_images(model, x) + embed_images(model, np.ascontiguousarray(x[:, :, ::-1]))
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(_embed(model, x, True, 2, "cpu", embed_images), expected, atol=1e-6)
    np.testing.assert_allclose(_embed(model, x, False, 2, "cpu", embed_images), embed_images(model, x), atol=1e-6)


def _pairs_with_identical_genuines(n: int, seed: int):
    """Genuine pairs show the same image twice (cosine 1); impostors two random images: AUC 1, EER 0."""
    a = random_images(n, seed=seed)
    same = np.arange(n) % 2 == 0
    b = np.where(same[:, None, None, None], a, random_images(n, seed=seed + 100))
    return a, b, same


def test_evaluate_bin_dataset_and_held_out(model, tmp_path):
    import datasets

    a, b, same = _pairs_with_identical_genuines(20, seed=5)
    interleaved = np.stack([a, b], axis=1).reshape(-1, *a.shape[1:])
    bin_path = tmp_path / "toy.bin"
    bin_path.write_bytes(pickle.dumps(([png_bytes(im) for im in interleaved], same.tolist()), protocol=2))
    feats = _pair_features()
    columns = {"image_a": [Image.fromarray(x) for x in a], "image_b": [Image.fromarray(x) for x in b],
               "is_same": same.tolist()}
    ds = datasets.Dataset.from_dict(columns, features=feats)
    held = HeldOutSet(random_images(24, seed=6, channels=1), np.repeat(np.arange(4), 6), "held", num_pairs=30, seed=0)
    result = evaluate(model, [bin_path, ds, held], flip_tta=True, batch_size=7, num_folds=5, model_name="tiny")
    on_bin, on_ds, on_held = result.benchmarks
    assert (on_bin.name, on_bin.kind, on_held.name, result.model, result.flip_tta) == ("toy", "verification", "held",
                                                                                       "tiny", True)
    for r in (on_bin, on_ds):
        assert r.metrics.num_pairs == 20 and r.metrics.auc == 1.0 and r.metrics.eer == 0.0
        assert len(r.metrics.accuracy.fold_accuracies) == 5 and 0.5 <= r.metrics.accuracy.mean <= 1.0
        assert r.timing.images == 2 * 20 * 2 and r.timing.embed_s > 0 and r.timing.protocol_s > 0
    np.testing.assert_allclose(on_bin.metrics.roc.fpr, on_ds.metrics.roc.fpr)  # PNG is lossless: same pairs
    assert on_held.metrics.roc.num_genuine == 15 and on_held.metrics.roc.num_impostor == 15
    far_1e6 = on_bin.metrics.tar_at_far[0]
    assert far_1e6.far == 1e-6 and far_1e6.tar is None and "the benchmark has 10" in far_1e6.reason
    # the runner's numbers are those of the metric functions on the model's own scores
    pairs_emb = [_embed(model, x, True, 7, "cpu", embed_images) for x in (a, b)]
    roc = roc_curve(np.sum(pairs_emb[0] * pairs_emb[1], 1), same)
    assert on_ds.metrics.auc == roc_auc(roc) and on_ds.metrics.eer == eer(roc)


def test_evaluate_identification_and_ijb(model, tmp_path):
    gallery = random_images(6, seed=7)
    ident = IdentificationSet(gallery[:3], ["a", "b", "c"], gallery, ["a", "b", "c", "d", "e", "f"],
                              distractor_images=random_images(4, seed=8), name="tiny-ident", ranks=(1, 3))
    # an IJB folder: 6 faces pasted into 20x20 loose crops with their landmarks, 3 templates, 3 pairs
    (tmp_path / "ijb" / "meta").mkdir(parents=True)
    (tmp_path / "ijb" / "loose_crop").mkdir()
    faces, points = random_images(6, seed=9, size=16), []
    for i, face in enumerate(faces):
        canvas = np.zeros((20, 20, 3), np.uint8)
        canvas[3:19, 2:18] = face
        Image.fromarray(canvas).save(tmp_path / "ijb" / "loose_crop" / f"{i}.png")
        lm = ARCFACE_LANDMARKS * 16 / 112 + [2, 3]
        points.append(f"{i}.png " + " ".join(f"{v:.6f}" for v in lm.ravel()) + " 0.9\n")
    meta_dir = tmp_path / "ijb" / "meta"
    (meta_dir / "ijbc_face_tid_mid.txt").write_text("".join(f"{i}.png {1 + i // 2} {10 + i // 2}\n" for i in range(6)))
    (meta_dir / "ijbc_template_pair_label.txt").write_text("1 2 1\n1 3 0\n2 3 0\n")
    (meta_dir / "ijbc_name_5pts_score.txt").write_text("".join(points))
    meta = read_ijb_meta(tmp_path / "ijb", "ijbc")
    aligned = load_ijb_faces(tmp_path / "ijb", meta, np.arange(6), size=16)
    assert np.abs(aligned.astype(int) - faces).max() <= 1  # landmarks at the template: alignment is a pure shift
    result = evaluate(model, [ident, IJBSet(tmp_path / "ijb", "ijbc", image_size=16)], batch_size=4, fars=(0.5,),
                      load_workers=2)
    on_ident, on_ijb = result.benchmarks
    assert on_ident.metrics.rank_accuracy == {1: 1.0, 3: 1.0} and on_ident.metrics.num_distractors == 7
    reference = ijb_verification(embed_images(model, aligned), meta, fars=(0.5,))
    assert on_ijb.kind == "ijb" and on_ijb.metrics.num_templates == 3
    np.testing.assert_allclose(on_ijb.metrics.roc.thresholds[1:], reference.roc.thresholds[1:], atol=1e-6)
    assert on_ijb.timing.images == 6
    # read and aligned in 2 worker processes (2 chunks of 4 faces) or in this process (the CPU default): same
    inline = evaluate(model, [IJBSet(tmp_path / "ijb", "ijbc", image_size=16)], batch_size=4, fars=(0.5,),
                      load_workers=0).benchmarks[0]
    assert np.array_equal(inline.metrics.roc.thresholds, on_ijb.metrics.roc.thresholds)
    assert np.array_equal(inline.metrics.roc.tpr, on_ijb.metrics.roc.tpr)
    assert "| ijbc | 3 | — | " in markdown_table(result) and json.dumps(to_dict(result), allow_nan=False)


def test_align_face_undoes_a_2x_upscale():
    face = random_images(1, seed=10, size=112)[0]
    big = np.repeat(np.repeat(face, 2, axis=0), 2, axis=1)  # every pixel 2x2: landmarks at 2 * (p + 0.5) - 0.5
    assert np.array_equal(align_face(big, (ARCFACE_LANDMARKS + 0.5) * 2 - 0.5), face)


def test_evaluate_refuses_unknown_benchmarks(model, tmp_path):
    with pytest.raises(DataError, match="not a .bin"):
        evaluate(model, [tmp_path / "pairs.txt"])
    with pytest.raises(DataError, match="no benchmark"):
        evaluate(model, [])


# ---- report ----------------------------------------------------------------------------------------------------

def test_report_json_markdown_and_roc_png(model, tmp_path):
    a, b, same = _pairs_with_identical_genuines(20, seed=11)
    ident = IdentificationSet(a[:2], [0, 1], a[:4], [0, 1, 2, 3], name="ident")
    result = evaluate(model, [VerificationPairs(a, b, same, "toy"), ident], num_folds=5)
    paths = write_report(result, tmp_path / "report")

    def no_nan(token):
        raise AssertionError(f"non-strict JSON constant {token}")

    data = json.loads(paths["json"].read_text(), parse_constant=no_nan)
    assert data == json.loads(json.dumps(to_dict(result)))
    toy, ident_out = data["benchmarks"]
    assert toy["num_pairs"] == 20 and toy["auc"] == 1.0 and toy["accuracy"]["mean"] >= 0.5
    assert [t["far"] for t in toy["tar_at_far"]] == [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1]
    assert toy["tar_at_far"][0]["tar"] is None and toy["tar_at_far"][-1]["tar"] == 1.0  # 10 impostors: 1e-1 only
    assert ident_out["rank_accuracy"]["1"] == 1.0 and toy["timing"]["images"] == 40
    md = paths["markdown"].read_text()
    assert md == markdown_table(result)
    assert "| toy | 20 |" in md and "| 100.00 |" in md and "n/a" in md and "| ident | 2 | 4 | 2 |" in md
    png = paths["roc"].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_bin_decoded_in_workers_gives_the_decode_then_embed_results(model, tmp_path):
    """A .bin decoded chunk by chunk in worker processes, overlapping the forwards, scores every pair exactly as
    decoding the whole file and then embedding all A images and all B images did; a bad image in a later chunk is
    still named by its index in the file, with its hint."""
    from scoremix_ds.evaluation.verification_pairs import pairs_from_bin

    a, b, same = _pairs_with_identical_genuines(20, seed=12)
    interleaved = np.stack([a, b], axis=1).reshape(-1, *a.shape[1:])
    bin_path = tmp_path / "toy.bin"
    bin_path.write_bytes(pickle.dumps(([png_bytes(im) for im in interleaved], same.tolist()), protocol=2))
    pairs = pairs_from_bin(bin_path)
    ea, eb = (_embed(model, x, True, 3, "cpu", embed_images) for x in (pairs.images_a, pairs.images_b))
    before = roc_curve(np.sum(ea * eb, axis=1), pairs.issame)
    for workers in (0, 2):  # 7 chunks of 3 pairs
        got = evaluate(model, [bin_path], flip_tta=True, batch_size=3, num_folds=5, load_workers=workers).benchmarks[0]
        assert got.metrics.num_pairs == 20 and got.timing.images == 80 and got.timing.embed_s > 0
        for field in ("thresholds", "tpr", "fpr"):
            assert np.array_equal(getattr(got.metrics.roc, field), getattr(before, field))
        assert got.metrics.auc == roc_auc(before) and got.metrics.eer == eer(before)
    blobs = [png_bytes(im) for im in interleaved]
    bad = tmp_path / "bad.bin"
    bad.write_bytes(pickle.dumps((blobs[:9] + [b"not an image"] + blobs[10:], same.tolist()), protocol=2))
    with pytest.raises(DataError, match=r"bad: image 9 does not decode") as info:
        evaluate(model, [bad], batch_size=3, load_workers=2)
    assert info.value.hint
    small = tmp_path / "small.bin"
    odd = png_bytes(random_images(1, seed=13, size=12)[0])
    small.write_bytes(pickle.dumps((blobs[:8] + [odd] + blobs[9:], same.tolist()), protocol=2))
    with pytest.raises(DataError, match=r"small: image 8 is \(12, 12\), image 0 is \(8, 8\)"):
        evaluate(model, [small], batch_size=3, load_workers=2)
