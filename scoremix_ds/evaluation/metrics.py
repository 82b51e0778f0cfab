"""Verification metrics on similarity scores (numpy and scikit-learn, no IO): ROC, AUC, EER, TAR@FAR and the 10-fold protocol.

Conventions: ``scores`` are similarities (higher = more alike, e.g. the cosine of two unit embeddings) and
``issame`` says which pairs are genuine (same identity). A ROC point at threshold ``t`` accepts ``score >= t``::

    TAR(t) = #{genuine: s >= t} / #genuine      FAR(t) = #{impostor: s >= t} / #impostor

>>> roc = roc_curve(np.array([0.9, 0.8, 0.3, 0.1]), np.array([True, False, True, False]))
>>> roc.fpr.tolist(), roc.tpr.tolist()
([0.0, 0.0, 0.5, 0.5, 1.0], [0.0, 0.5, 0.5, 1.0, 1.0])
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import auc as sklearn_auc
from sklearn.metrics import roc_curve as sklearn_roc_curve

from ..core.errors import DataError

DEFAULT_FARS: tuple[float, ...] = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
# insightface's grid is on the squared L2 distance of unit embeddings, d = 2 - 2*cos, np.arange(0, 4, 0.01), with
# "same" meaning d < t. The same grid on cosines is cos > 1 - t/2, listed from strict to lenient like theirs.
INSIGHTFACE_THRESHOLDS: np.ndarray = 1.0 - np.arange(0.0, 4.0, 0.01) / 2.0


@dataclass(frozen=True)
class Roc:
    """ROC points from strict to lenient: ``thresholds[0] = inf`` gives (0, 0); the last point is (1, 1)."""

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray
    num_genuine: int
    num_impostor: int


@dataclass(frozen=True)
class TarAtFar:
    """TAR at a target FAR; ``tar`` is None (with ``reason``) when too few impostor pairs resolve that FAR."""

    far: float
    tar: float | None
    threshold: float | None
    achieved_far: float | None
    reason: str | None = None


@dataclass(frozen=True)
class KFoldResult:
    """Accuracy of the k-fold protocol: mean and (population) std over folds, each fold's accuracy and threshold."""

    mean: float
    std: float
    fold_accuracies: tuple[float, ...]
    fold_thresholds: tuple[float, ...]


def _check(scores: np.ndarray, issame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64).ravel()
    issame = np.asarray(issame).ravel()
    if issame.dtype != bool:
        if not np.isin(issame, (0, 1)).all():
            raise DataError("pair labels must be booleans (same identity or not)", hint="check the benchmark labels")
        issame = issame.astype(bool)
    if scores.shape != issame.shape:
        raise DataError(f"{len(scores)} scores but {len(issame)} pair labels", hint="check the benchmark pair counts")
    if not np.isfinite(scores).all():
        raise DataError("similarity scores contain NaN or inf", hint="check the model's embeddings")
    return scores, issame


def roc_curve(scores: np.ndarray, issame: np.ndarray) -> Roc:
    """All ROC points, one per distinct score: ``sklearn.metrics.roc_curve(drop_intermediate=False)``.

    Raises:
        DataError: no genuine or no impostor pairs (the ROC is undefined), mismatched lengths, NaN scores.
    """
    scores, issame = _check(scores, issame)
    num_genuine = int(issame.sum())
    num_impostor = int(len(issame) - num_genuine)
    if num_genuine == 0 or num_impostor == 0:
        raise DataError(
            f"ROC needs genuine and impostor pairs; got {num_genuine} genuine, {num_impostor} impostor",
            hint="check the benchmark labels",
        )
    fpr, tpr, thresholds = sklearn_roc_curve(issame, scores, drop_intermediate=False)
    return Roc(fpr=fpr, tpr=tpr, thresholds=thresholds, num_genuine=num_genuine, num_impostor=num_impostor)


def roc_auc(roc: Roc) -> float:
    """Area under the ROC by the trapezoid rule: ``sum_i (fpr_i+1 - fpr_i) * (tpr_i+1 + tpr_i) / 2``."""
    return float(sklearn_auc(roc.fpr, roc.tpr))


def eer(roc: Roc) -> float:
    """Equal error rate: where FAR = FRR (= 1 - TAR), linearly interpolated along the ROC segment that crosses it.

    ``d = (1 - tpr) - fpr`` falls strictly from 1 to -1 along the curve; on the segment where it changes sign,
    ``a = d_i / (d_i - d_i+1)`` and ``EER = fpr_i + a * (fpr_i+1 - fpr_i)`` (equal to the interpolated FRR there).
    """
    d = (1.0 - roc.tpr) - roc.fpr
    i = int(np.argmax(d <= 0.0))  # first point past the crossing; i >= 1 because d[0] = 1
    a = d[i - 1] / (d[i - 1] - d[i])
    return float(roc.fpr[i - 1] + a * (roc.fpr[i] - roc.fpr[i - 1]))


def min_impostors_for(far: float) -> int:
    """Impostor pairs needed before FAR = ``far`` is a reachable, non-zero ROC point: ``ceil(1 / far)``."""
    return math.ceil(1.0 / far - 1e-9)


def _corners(roc: Roc) -> np.ndarray:
    """sklearn's ``drop_intermediate``: points after (0, 0) where the curve turns (second differences of counts)."""
    fps, tps = np.rint(roc.fpr[1:] * roc.num_impostor), np.rint(roc.tpr[1:] * roc.num_genuine)
    turn = (np.diff(fps, 2) != 0) | (np.diff(tps, 2) != 0)
    return np.r_[True, True, turn, True] if len(fps) > 1 else np.ones(len(roc.fpr), bool)


def tar_at_far(roc: Roc, fars: tuple[float, ...] = DEFAULT_FARS, rule: str = "at_most") -> tuple[TarAtFar, ...]:
    """TAR at each target FAR.

    ``rule="at_most"`` (default): the highest TAR among ROC points with FAR <= target (the operating point a user
    could pick). ``rule="nearest"``: insightface's ``eval_ijbc.py``, to compare with published IJB numbers: the first
    point minimising ``|fpr - far|`` on scikit-learn's default ROC, which keeps only the corners of the curve (it
    may overshoot the target, or land below a vertical step).

    A FAR below ``1 / num_impostor`` cannot be resolved: its entry has ``tar=None`` and the reason.
    """
    if rule not in ("at_most", "nearest"):
        raise DataError(f"unknown TAR@FAR rule '{rule}'", hint="use 'at_most' or 'nearest'")
    out = []
    for far in fars:
        if not 0.0 < far <= 1.0:
            raise DataError(f"FAR must be in (0, 1], got {far}", hint="pass FAR values in (0, 1], e.g. fars=(1e-4, 1e-3)")
        need = min_impostors_for(far)
        if roc.num_impostor < need:
            reason = f"FAR={far:g} needs >= {need} impostor pairs, the benchmark has {roc.num_impostor}"
            out.append(TarAtFar(far=far, tar=None, threshold=None, achieved_far=None, reason=reason))
            continue
        if rule == "at_most":
            i = int(np.flatnonzero(roc.fpr <= far * (1.0 + 1e-9))[-1])  # tpr is non-decreasing: the last one
        else:
            corners = np.flatnonzero(_corners(roc))
            i = int(corners[np.argmin(np.abs(roc.fpr[corners] - far))])
        threshold = float(roc.thresholds[i])
        out.append(TarAtFar(far=far, tar=float(roc.tpr[i]), threshold=threshold, achieved_far=float(roc.fpr[i])))
    return tuple(out)


def kfold_indices(num_pairs: int, num_folds: int) -> list[np.ndarray]:
    """Test indices of each fold: consecutive blocks, the first ``n % k`` one longer (sklearn ``KFold``, no shuffle)."""
    if not 2 <= num_folds <= num_pairs:
        raise DataError(f"{num_folds} folds need 2 <= folds <= {num_pairs} pairs",
                        hint="pass num_folds >= 2" if num_folds < 2 else f"use a benchmark of {num_folds} pairs or more")
    return np.array_split(np.arange(num_pairs), num_folds)


def kfold_accuracy(
    scores: np.ndarray, issame: np.ndarray, num_folds: int = 10, thresholds: np.ndarray | None = None
) -> KFoldResult:
    """The insightface verification protocol (``eval/verification.py``, ``calculate_roc``).

    For each fold: on the other ``k - 1`` folds pick the threshold of ``thresholds`` (default
    :data:`INSIGHTFACE_THRESHOLDS`) maximising ``accuracy = (TP + TN) / n`` with "same" meaning ``score > t``
    (ties go to the earliest threshold in the grid), then report the accuracy of that threshold on the fold.
    """
    scores, issame = _check(scores, issame)
    grid = INSIGHTFACE_THRESHOLDS if thresholds is None else np.asarray(thresholds, dtype=np.float64).ravel()
    if grid.size == 0:
        raise DataError("the threshold grid is empty", hint="pass thresholds")
    correct = (scores[None, :] > grid[:, None]) == issame[None, :]  # (num_thresholds, num_pairs)
    total = correct.sum(axis=1)
    accs, chosen = [], []
    for test in kfold_indices(len(scores), num_folds):
        in_test = correct[:, test].sum(axis=1)
        train_acc = (total - in_test) / (len(scores) - len(test))
        best = int(np.argmax(train_acc))
        chosen.append(float(grid[best]))
        accs.append(float(in_test[best] / len(test)))
    return KFoldResult(
        mean=float(np.mean(accs)), std=float(np.std(accs)), fold_accuracies=tuple(accs), fold_thresholds=tuple(chosen)
    )
