"""Face-recognition benchmarks for a discriminator: what ``scoremix-ds eval`` runs.

- ``metrics.py``: ROC, AUC, EER, TAR@FAR and the insightface 10-fold accuracy (pure numpy).
- ``binfile.py``: a restricted reader of insightface verification ``.bin`` files that never unpickles.
- ``verification_pairs.py``: ``VerificationPairs`` from a ``.bin``, a ``datasets`` pair dataset or a labelled image set.
- ``ijb.py``: IJB-B/IJB-C 1:1 template verification from the release metadata (and 5-point face alignment).
- ``identification.py``: 1:N rank-k identification with gallery distractors (TinyFace-style).
- ``openset.py``: every genuine and impostor pair of unseen identities (TAR@FAR down to 1e-6) and rank-1.
- ``runner.py``: ``evaluate(model, benchmarks, flip_tta, batch_size)``: embeddings and protocols, each timed.
- ``loading.py``: benchmark images decoded (and IJB faces aligned) in DataLoader workers, ahead of the forwards.
- ``report.py``: results as JSON, a markdown table and a ROC plot.
"""

from .binfile import BinFile, read_bin
from .identification import IdentificationResult, identification
from .ijb import IJBMeta, IJBResult, ijb_verification, read_ijb_meta, template_features
from .metrics import DEFAULT_FARS, KFoldResult, Roc, TarAtFar, eer, kfold_accuracy, roc_auc, roc_curve, tar_at_far
from .verification_pairs import (
    VerificationPairs,
    load_pair_dataset,
    make_pairs_from_labels,
    pairs_from_bin,
    pairs_from_dataset,
    pairs_from_labels,
)
from .report import markdown_table, plot_roc, to_dict, write_report
from .openset import OpenSetResult, open_set
from .runner import (
    BenchmarkResult,
    EvalResult,
    HeldOutSet,
    IdentificationSet,
    IJBSet,
    OpenSetSet,
    evaluate,
    verification_metrics,
)

__all__ = [
    "DEFAULT_FARS",
    "BenchmarkResult",
    "BinFile",
    "EvalResult",
    "HeldOutSet",
    "IJBMeta",
    "IJBResult",
    "IJBSet",
    "IdentificationResult",
    "IdentificationSet",
    "KFoldResult",
    "OpenSetResult",
    "OpenSetSet",
    "Roc",
    "TarAtFar",
    "VerificationPairs",
    "eer",
    "evaluate",
    "identification",
    "ijb_verification",
    "kfold_accuracy",
    "load_pair_dataset",
    "make_pairs_from_labels",
    "open_set",
    "markdown_table",
    "pairs_from_bin",
    "pairs_from_dataset",
    "pairs_from_labels",
    "plot_roc",
    "read_bin",
    "read_ijb_meta",
    "roc_auc",
    "roc_curve",
    "tar_at_far",
    "template_features",
    "to_dict",
    "verification_metrics",
    "write_report",
]
