"""Evaluation maths against hand-computed cases and reference implementations (scikit-learn, scipy, and short
transcriptions of insightface's ``verification.py`` / ``eval_ijbc.py`` loops). Pure numpy, milliseconds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scoremix_ds.core.errors import DataError
from scoremix_ds.evaluation.identification import identification, probe_ranks
from scoremix_ds.evaluation.ijb import ijb_verification, read_ijb_meta, template_features, template_pair_scores
from scoremix_ds.evaluation.metrics import eer, kfold_accuracy, kfold_indices, roc_auc, roc_curve, tar_at_far

sk_metrics = pytest.importorskip("sklearn.metrics")


def _scores(n: int, seed: int, ties: bool = False):
    rng = np.random.default_rng(seed)
    issame = rng.random(n) < 0.4
    scores = rng.normal(0.0, 1.0, n) + 1.5 * issame
    return (np.round(scores, 1) if ties else scores), issame


@pytest.mark.parametrize("ties", [False, True])
def test_roc_curve_and_auc_match_sklearn(ties):
    scores, issame = _scores(500, seed=1, ties=ties)
    roc = roc_curve(scores, issame)
    fpr, tpr, thr = sk_metrics.roc_curve(issame, scores, drop_intermediate=False)
    np.testing.assert_allclose(roc.fpr, fpr)
    np.testing.assert_allclose(roc.tpr, tpr)
    np.testing.assert_allclose(roc.thresholds[1:], thr[1:])
    assert roc.thresholds[0] == np.inf and (roc.num_genuine, roc.num_impostor) == (issame.sum(), (~issame).sum())
    assert roc_auc(roc) == pytest.approx(sk_metrics.roc_auc_score(issame, scores), abs=1e-12)


def test_eer_known_answer():
    # genuine 0.9, 0.8, 0.7, 0.35; impostor 0.5, 0.1. ROC corners (0, .75) -> (.5, .75): FRR = .25 = FAR at FAR .25.
    roc = roc_curve(np.array([0.9, 0.8, 0.7, 0.35, 0.5, 0.1]), np.array([1, 1, 1, 1, 0, 0]))
    assert eer(roc) == pytest.approx(0.25)
    # an exact crossing at a ROC point: one error of each kind out of three
    roc = roc_curve(np.array([0.9, 0.8, 0.4, 0.6, 0.3, 0.2]), np.array([1, 1, 1, 0, 0, 0]))
    assert eer(roc) == pytest.approx(1 / 3)


def test_eer_matches_the_brentq_reference():
    optimize = pytest.importorskip("scipy.optimize")
    interpolate = pytest.importorskip("scipy.interpolate")
    scores, issame = _scores(800, seed=2)
    fpr, tpr, _ = sk_metrics.roc_curve(issame, scores)
    reference = optimize.brentq(lambda x: 1.0 - x - interpolate.interp1d(fpr, tpr)(x), 0.0, 1.0)
    assert eer(roc_curve(scores, issame)) == pytest.approx(reference, abs=1e-6)


def test_tar_at_far_hand_case_and_unresolvable_far():
    genuine = [0.9, 0.8, 0.6, 0.4]
    impostor = [0.7, 0.5, 0.3, 0.2, 0.1, 0.05, 0.0, -0.1, -0.2, -0.3]  # 10 impostors: FAR resolves down to 0.1
    roc = roc_curve(np.array(genuine + impostor), np.array([True] * 4 + [False] * 10))
    at_01, at_001 = tar_at_far(roc, fars=(0.1, 0.01))
    # accepting s >= 0.6 lets one impostor (0.7) through: FAR 0.1, TAR 3/4; s >= 0.5 would be FAR 0.2
    assert (at_01.tar, at_01.threshold, at_01.achieved_far, at_01.reason) == (0.75, 0.6, 0.1, None)
    assert at_001.tar is None and at_001.threshold is None and "needs >= 100 impostor pairs" in at_001.reason
    # insightface's nearest rule takes the FIRST point at FAR 0.1 (threshold 0.7): TAR 2/4
    (nearest,) = tar_at_far(roc, fars=(0.12,), rule="nearest")
    assert (nearest.tar, nearest.threshold) == (0.5, 0.7)


def test_nearest_rule_matches_insightface_eval_ijbc():
    scores, issame = _scores(20_000, seed=3)
    fpr, tpr, _ = sk_metrics.roc_curve(issame, scores)  # eval_ijbc.py: default drop_intermediate, argmin |fpr - far|
    fars = (1e-4, 1e-3, 1e-2, 1e-1)
    ours = tar_at_far(roc_curve(scores, issame), fars, rule="nearest")
    assert [t.tar for t in ours] == [tpr[np.argmin(np.abs(fpr - f))] for f in fars]
    assert ours[0].reason is None  # 12k impostors resolve 1e-4


def test_kfold_hand_computed_six_pairs():
    scores = np.array([0.9, 0.3, 0.6, 0.4, 0.7, 0.55])
    issame = np.array([True, False, True, False, False, True])
    # folds {0,1}, {2,3}, {4,5}; grid strict -> lenient like insightface's, "same" = score > t.
    # fold 1: train {2..5} best t=0.5 (3/4; 0.8 gives 2/4) -> test 0.9>0.5 T ok, 0.3 F ok: 1.0
    # fold 2: train {0,1,4,5}: t=0.8 and t=0.5 both 3/4, the first (0.8) wins -> test 0.6 T missed, 0.4 F ok: 0.5
    # fold 3: train {0..3} best t=0.5 (4/4) -> test 0.7 F wrongly accepted, 0.55 T ok: 0.5
    result = kfold_accuracy(scores, issame, num_folds=3, thresholds=np.array([0.8, 0.5, 0.2]))
    assert result.fold_thresholds == (0.5, 0.8, 0.5)
    assert result.fold_accuracies == (1.0, 0.5, 0.5)
    assert result.mean == pytest.approx(2 / 3) and result.std == pytest.approx(math.sqrt(1 / 18))


def test_kfold_folds_match_sklearn_kfold():
    model_selection = pytest.importorskip("sklearn.model_selection")
    for n in (6000, 6003, 14):
        ours = kfold_indices(n, 10)
        theirs = [test for _, test in model_selection.KFold(n_splits=10, shuffle=False).split(np.arange(n))]
        assert all(np.array_equal(a, b) for a, b in zip(ours, theirs, strict=True))


def test_kfold_default_grid_matches_insightface_distance_protocol():
    model_selection = pytest.importorskip("sklearn.model_selection")
    rng = np.random.default_rng(4)
    n, dim = 1000, 16
    issame = np.arange(n) % 2 == 0
    a = rng.normal(size=(n, dim))
    b = np.where(issame[:, None], a + rng.normal(scale=1.0, size=(n, dim)), rng.normal(size=(n, dim)))
    a, b = (x / np.linalg.norm(x, axis=1, keepdims=True) for x in (a, b))
    # insightface verification.py calculate_roc (accuracy part): squared L2 distance, "same" = dist < threshold
    thresholds, dist, accs = np.arange(0, 4, 0.01), np.sum(np.square(a - b), 1), []
    for train, test in model_selection.KFold(n_splits=10, shuffle=False).split(np.arange(n)):
        best = np.argmax([np.mean((dist[train] < t) == issame[train]) for t in thresholds])
        accs.append(np.mean((dist[test] < thresholds[best]) == issame[test]))
    ours = kfold_accuracy(np.sum(a * b, 1), issame)
    assert ours.mean == pytest.approx(np.mean(accs), abs=1e-12) and ours.std == pytest.approx(np.std(accs), abs=1e-12)
    assert 0.6 < ours.mean < 1.0


def test_metrics_refuse_bad_input():
    with pytest.raises(DataError, match="genuine and impostor"):
        roc_curve(np.array([0.1, 0.2]), np.array([True, True]))
    with pytest.raises(DataError, match="3 scores but 2"):
        roc_curve(np.array([0.1, 0.2, 0.3]), np.array([True, False]))
    with pytest.raises(DataError, match="NaN"):
        kfold_accuracy(np.array([0.1, np.nan]), np.array([True, False]), num_folds=2)


# ---- 1:N identification ----------------------------------------------------------------------------------------

def test_identification_ranks_by_hand():
    gallery = np.array([[1.0, 0.0], [0.0, 1.0], [0.8, 0.6], [-1.0, 0.0]])  # identities a, b, c, d
    probes = np.array([[0.9, 0.1], [0.6, 0.8], [0.0, -1.0]])  # a (rank 1), b (c at 0.96 beats b at 0.8: rank 2), e
    ranks = probe_ranks(probes, ["a", "b", "e"], gallery, ["a", "b", "c", "d"])
    assert ranks.tolist()[:2] == [1, 2] and ranks[2] == np.iinfo(np.int64).max
    # a distractor at (0.6, 0.8): below a for probe a (0.69 < 0.99); above b for probe b (1.0 > 0.8) -> rank 2
    result = identification(probes[:2], ["a", "b"], gallery[:2], ["a", "b"], distractor_emb=np.array([[0.6, 0.8]]),
                            ranks=(1, 2, 3))
    assert result.rank_accuracy == {1: 0.5, 2: 1.0, 3: 1.0}
    assert (result.num_gallery, result.num_distractors, result.probes_without_mate) == (3, 1, 0)


# ---- IJB template verification --------------------------------------------------------------------------------

def _write_ijb(root, faces, pairs, points=None):
    (root / "meta").mkdir(parents=True)
    (root / "meta" / "ijbc_face_tid_mid.txt").write_text("".join(f"{n} {t} {m}\n" for n, t, m in faces))
    (root / "meta" / "ijbc_template_pair_label.txt").write_text("".join(f"{a} {b} {y}\n" for a, b, y in pairs))
    if points is not None:
        rows = [f"{face[0]} " + " ".join(f"{v:.4f}" for v in lm.ravel()) + f" {score}\n"
                for face, (lm, score) in zip(faces, points)]
        (root / "meta" / "ijbc_name_5pts_score.txt").write_text("".join(rows))


def test_ijb_template_scores_by_hand(tmp_path):
    # template 1: media 10 = faces (1,0), (0,1); media 11 = (1,0)  -> mean (.5,.5) + (1,0) = (1.5,.5), /sqrt(2.5)
    # template 2: (3,4) -> (.6,.8); template 3: (0,-1)
    emb = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [3.0, 4.0], [0.0, -1.0]])
    faces = [("1.jpg", 1, 10), ("2.jpg", 1, 10), ("3.jpg", 1, 11), ("4.jpg", 2, 20), ("5.jpg", 3, 30)]
    points = [(np.zeros((5, 2)), s) for s in (0.5, 1.0, 1.0, 1.0, 1.0)]
    _write_ijb(tmp_path, faces, [(1, 2, 1), (1, 3, 0), (2, 3, 0)], points)
    meta = read_ijb_meta(tmp_path, "ijbc")
    unique, feats = template_features(emb, meta.templates, meta.medias)
    assert unique.tolist() == [1, 2, 3]
    scores = template_pair_scores(unique, feats, meta.pair_t1, meta.pair_t2)
    np.testing.assert_allclose(scores, [1.3 / math.sqrt(2.5), -0.5 / math.sqrt(2.5), -0.8])
    # with detector scores face 1 counts half: media 10 mean (.25,.5) + (1,0) = (1.25,.5)
    _, feats = template_features(emb, meta.templates, meta.medias, meta.face_scores)
    np.testing.assert_allclose(feats[0], np.array([1.25, 0.5]) / math.hypot(1.25, 0.5))
    result = ijb_verification(emb, meta, fars=(0.5,), rule="at_most")
    assert result.num_templates == 3 and result.auc == 1.0 and result.tar_at_far[0].tar == 1.0


def test_ijb_template_features_match_insightface_loop():
    rng = np.random.default_rng(5)
    templates, medias = rng.integers(0, 30, 400), rng.integers(0, 12, 400)
    emb = rng.normal(size=(400, 8))
    feats_norm = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    # eval_ijbc.py image2template_feature: per template, per media mean (single faces as is), summed, then normalised
    reference = []
    for t in np.unique(templates):
        f, m = feats_norm[templates == t], medias[templates == t]
        reference.append(np.sum([f[m == u].mean(0) for u in np.unique(m)], axis=0))
    reference = np.array(reference) / np.linalg.norm(reference, axis=1, keepdims=True)
    unique, feats = template_features(emb, templates, medias)
    assert np.array_equal(unique, np.unique(templates))
    np.testing.assert_allclose(feats, reference, atol=1e-12)


def test_ijb_refuses_pairs_of_unknown_templates(tmp_path):
    _write_ijb(tmp_path, [("1.jpg", 1, 1), ("2.jpg", 2, 2)], [(1, 7, 1), (1, 2, 0)])
    meta = read_ijb_meta(tmp_path, "ijbc")
    with pytest.raises(DataError, match="template 7 has no faces"):
        ijb_verification(np.eye(2), meta)
