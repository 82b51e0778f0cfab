"""IJB-B / IJB-C 1:1 template verification (the recipe of insightface's ``eval_ijbc.py``), from per-image embeddings.

The release (``IJB_release/IJBC``) has ``meta/ijbc_face_tid_mid.txt`` (``image template_id media_id`` per face),
``meta/ijbc_template_pair_label.txt`` (``template_1 template_2 label``), ``meta/ijbc_name_5pts_score.txt`` (``image``,
5 landmarks ``x1 y1 .. x5 y5`` and a face detector score) and the loose crops in ``loose_crop/``.

Template feature, with ``f_i`` the L2-normalised embedding of face ``i`` (optionally times its detector score)::

    media mean  m_(t,k) = mean of f_i over the faces of template t from media k
    template    T_t = normalise( sum_k m_(t,k) )        score(t1, t2) = <T_t1, T_t2>

Then TAR@FAR over all template pairs; ``rule="nearest"`` (insightface's ``argmin |fpr - far|``) is the default so
numbers compare with published tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import DataError
from .metrics import DEFAULT_FARS, Roc, TarAtFar, roc_auc, roc_curve, tar_at_far

_HINT = "check the benchmark (an IJB release folder)"  # errors using it name the field benchmark
# insightface's ``arcface_dst``: the five landmark positions (eyes, nose, mouth corners) of an aligned 112x112 face.
ARCFACE_LANDMARKS = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]]
)


@dataclass(frozen=True)
class IJBMeta:
    """The metadata of one IJB set; per-face arrays share the order of ``*_face_tid_mid.txt``."""

    name: str
    image_names: np.ndarray  # (N,) str
    templates: np.ndarray  # (N,) int64
    medias: np.ndarray  # (N,) int64
    pair_t1: np.ndarray  # (P,) int64
    pair_t2: np.ndarray  # (P,) int64
    pair_labels: np.ndarray  # (P,) bool
    face_scores: np.ndarray | None = None  # (N,) float, detector scores
    landmarks: np.ndarray | None = None  # (N, 5, 2) float, pixel coordinates in the loose crops


@dataclass(frozen=True)
class IJBResult:
    name: str
    num_templates: int
    roc: Roc
    auc: float
    tar_at_far: tuple[TarAtFar, ...]
    rule: str


def _meta_file(root: Path, name: str, suffix: str, required: bool = True) -> Path | None:
    for path in (root / "meta" / f"{name}_{suffix}", root / f"{name}_{suffix}"):
        if path.is_file():
            return path
    if required:
        raise DataError(f"{root} has no meta/{name}_{suffix}", hint=_HINT, field="benchmark")
    return None


def read_ijb_meta(root: str | Path, name: str = "ijbc") -> IJBMeta:
    """Read ``{name}_face_tid_mid.txt``, ``{name}_template_pair_label.txt`` and, if present, the landmark/score file."""
    root = Path(root)
    try:
        faces = np.loadtxt(_meta_file(root, name, "face_tid_mid.txt"), dtype=str, ndmin=2)
        pairs = np.loadtxt(_meta_file(root, name, "template_pair_label.txt"), dtype=np.int64, ndmin=2)
        extra = _meta_file(root, name, "name_5pts_score.txt", required=False)
        points = np.loadtxt(extra, dtype=str, ndmin=2) if extra else None
    except ValueError as exc:
        raise DataError(f"{root}: unreadable IJB metadata ({str(exc).splitlines()[0]})", hint=_HINT, field="benchmark") from exc
    if faces.shape[1] != 3 or pairs.shape[1] != 3 or (points is not None and points.shape[1] != 12):
        raise DataError(f"{root}: IJB metadata files have unexpected columns", hint=_HINT, field="benchmark")
    if not np.isin(pairs[:, 2], (0, 1)).all():
        raise DataError(f"{root}: template pair labels must be 0 or 1", hint=_HINT, field="benchmark")
    scores = landmarks = None
    if points is not None:
        if len(points) != len(faces) or (points[:, 0] != faces[:, 0]).any():
            raise DataError(f"{root}: {extra.name} does not list the faces of face_tid_mid in order", hint=_HINT, field="benchmark")
        landmarks = points[:, 1:11].astype(np.float64).reshape(-1, 5, 2)
        scores = points[:, 11].astype(np.float64)
    return IJBMeta(name=name, image_names=faces[:, 0], templates=faces[:, 1].astype(np.int64),
                   medias=faces[:, 2].astype(np.int64), pair_t1=pairs[:, 0], pair_t2=pairs[:, 1],
                   pair_labels=pairs[:, 2].astype(bool), face_scores=scores, landmarks=landmarks)


def template_features(
    embeddings: np.ndarray, templates: np.ndarray, medias: np.ndarray, face_scores: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(unique_templates, features)``: media-averaged then template-summed, unit-norm features (module docstring)."""
    f = np.asarray(embeddings, dtype=np.float64)
    templates, medias = np.asarray(templates).ravel(), np.asarray(medias).ravel()
    if not (len(f) == len(templates) == len(medias)):
        raise DataError(f"{len(f)} embeddings for {len(templates)} faces", hint=_HINT, field="benchmark")
    f = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
    if face_scores is not None:
        f = f * np.asarray(face_scores, dtype=np.float64)[:, None]
    order = np.lexsort((medias, templates))
    t, m = templates[order], medias[order]
    media_start = np.flatnonzero(np.r_[True, (t[1:] != t[:-1]) | (m[1:] != m[:-1])])
    counts = np.diff(np.r_[media_start, len(t)])
    media_means = np.add.reduceat(f[order], media_start, axis=0) / counts[:, None]
    media_template = t[media_start]
    template_start = np.flatnonzero(np.r_[True, media_template[1:] != media_template[:-1]])
    feats = np.add.reduceat(media_means, template_start, axis=0)
    feats /= np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)
    return media_template[template_start], feats


def template_pair_scores(
    unique_templates: np.ndarray, features: np.ndarray, t1: np.ndarray, t2: np.ndarray, chunk: int = 100_000
) -> np.ndarray:
    """Cosine ``<T_t1, T_t2>`` for every pair, ``chunk`` pairs at a time (IJB-C has 15.7M pairs)."""
    rows = []
    for t in (t1, t2):
        r = np.clip(np.searchsorted(unique_templates, t), 0, len(unique_templates) - 1)
        if (unique_templates[r] != t).any():
            raise DataError(f"template {int(t[np.argmax(unique_templates[r] != t)])} has no faces", hint=_HINT, field="benchmark")
        rows.append(r)
    scores = np.empty(len(t1), dtype=np.float64)
    for s in range(0, len(t1), chunk):
        a, b = features[rows[0][s : s + chunk]], features[rows[1][s : s + chunk]]
        scores[s : s + chunk] = np.einsum("ij,ij->i", a, b)
    return scores


def ijb_verification(
    embeddings: np.ndarray, meta: IJBMeta, fars: tuple[float, ...] = DEFAULT_FARS, use_face_scores: bool = False,
    rule: str = "nearest",
) -> IJBResult:
    """1:1 template verification of ``meta`` from one embedding per face (in ``meta``'s face order)."""
    if use_face_scores and meta.face_scores is None:
        raise DataError(f"{meta.name}: no {meta.name}_name_5pts_score.txt for face scores", hint=_HINT, field="benchmark")
    scores = meta.face_scores if use_face_scores else None
    unique, feats = template_features(embeddings, meta.templates, meta.medias, scores)
    roc = roc_curve(template_pair_scores(unique, feats, meta.pair_t1, meta.pair_t2), meta.pair_labels)
    return IJBResult(meta.name, len(unique), roc, roc_auc(roc), tar_at_far(roc, fars, rule), rule)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2x3 least-squares similarity ``x -> s R x + t`` taking points ``src`` to ``dst`` (Umeyama, 1991)."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    sc, dc = src - mu_s, dst - mu_d
    u, sig, vt = np.linalg.svd(dc.T @ sc / len(src))
    d = np.diag([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0])
    rot = u @ d @ vt
    scale = np.trace(np.diag(sig) @ d) / (sc**2).sum(1).mean()
    return np.c_[scale * rot, mu_d - scale * rot @ mu_s]


def align_face(image: np.ndarray, landmarks: np.ndarray, size: int = 112) -> np.ndarray:
    """Warp a uint8 HWC face so its 5 landmarks land on :data:`ARCFACE_LANDMARKS` (scaled to ``size``); bilinear.

    Landmarks use pixel-centre coordinates (pixel ``(0, 0)`` covers ``[-0.5, 0.5]``, as in OpenCV); PIL samples
    ``+0.5``-shifted coordinates, hence the shifts.
    """
    from PIL import Image

    m = similarity_transform(np.asarray(landmarks, float) + 0.5, ARCFACE_LANDMARKS * size / 112.0 + 0.5)
    inv = np.linalg.inv(m[:, :2])
    coeffs = np.c_[inv, -inv @ m[:, 2]].ravel()  # output (x, y) -> input position, what PIL's AFFINE takes
    squeeze = image.ndim == 3 and image.shape[2] == 1
    pil = Image.fromarray(image[..., 0] if squeeze else image)
    out = np.asarray(pil.transform((size, size), Image.Transform.AFFINE, tuple(coeffs), Image.Resampling.BILINEAR))
    return out[..., None] if squeeze or out.ndim == 2 else out


def load_ijb_faces(root: str | Path, meta: IJBMeta, indices: np.ndarray, size: int = 112) -> np.ndarray:
    """Aligned uint8 ``(len(indices), size, size, 3)`` faces read from ``root/loose_crop`` (needs the landmarks)."""
    from PIL import Image

    if meta.landmarks is None:
        raise DataError(f"{meta.name}: aligning the loose crops needs {meta.name}_name_5pts_score.txt", hint=_HINT, field="benchmark")
    out = np.empty((len(indices), size, size, 3), dtype=np.uint8)
    for k, i in enumerate(indices):
        path = Path(root) / "loose_crop" / str(meta.image_names[i])
        try:
            with Image.open(path) as img:
                out[k] = align_face(np.asarray(img.convert("RGB")), meta.landmarks[i], size)
        except OSError as exc:
            raise DataError(f"{meta.name}: cannot read face {path}: {exc}", hint=_HINT, field="benchmark") from exc
    return out
