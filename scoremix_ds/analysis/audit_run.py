"""``scoremix-ds audit DIR``: embed a finished build's synthetic images and real data, flag leaking identities,
and write ``audit.json``, ``audit.png`` and an audit section in the card (:mod:`scoremix_ds.analysis.audit`).

Only files of the audit are added or replaced (each atomically); shards are only read.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from ..core.outputs import atomic_write
from ..core.refs import public_ref
from ..dataset.card import write_build_card
from ..dataset.integrity import verified_build
from ..dataset.manifest import Manifest
from ..discriminators.loading import embed_images, load_discriminator
from ..sources.openers import read_real_data
from ..dataset.writer import decode_png
from ..core.errors import ConfigError, DataError
from .audit import audit_identities, real_reference, summarise
from ..core.plots import save_histograms

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AuditConfig:
    folder: str
    discriminator: str | None = None  # default: the build's own discriminator
    discriminator_revision: str | None = None
    real_data: str | None = None  # default: the build's real data
    real_data_revision: str | None = None
    threshold: float | None = None  # a cosine; None = per real class, its own images' `quantile` similarity
    quantile: float = 0.5
    update_card: bool = True
    batch_size: int = 256
    progress: bool = False  # bars with ETA while reading and embedding

    def __post_init__(self) -> None:
        if self.threshold is not None and not -1.0 <= self.threshold <= 1.0:
            raise ConfigError(f"threshold {self.threshold} is not a cosine", hint="set threshold in [-1, 1]", field="threshold")
        if not 0.0 < self.quantile < 1.0:
            raise ConfigError(f"quantile {self.quantile} is not in (0, 1)", hint="set quantile to e.g. 0.5", field="quantile")


@dataclass(frozen=True)
class AuditResult:
    summary: dict
    json_path: Path
    plot_path: Path

    def text(self) -> str:
        s = self.summary
        return (f"audited {s['identities']} identities: {s['flagged']} flagged as leaking ({100 * s['flagged_fraction']:.1f}%), "
                f"mean leak score {s['leak_score']['mean']:.3f} vs real own-centre median {s['real_own_similarity_median']:.3f}; "
                f"wrote {self.json_path} and {self.plot_path}")


def read_mix(folder: Path, manifest: Manifest) -> tuple[np.ndarray, np.ndarray, dict[int, tuple[int, ...]]]:
    """uint8 NHWC images, identity labels and each identity's parents from the ``mix`` shards."""
    images, labels, parents = [], [], {}
    for rel in manifest.shards.get("mix", {}):
        for n, row in enumerate(pq.read_table(folder / rel, columns=["image", "label", "parents"]).to_pylist()):
            try:
                images.append(decode_png(row["image"]["bytes"]))
            except Exception as exc:  # PIL: truncated / not an image / DecompressionBombError
                raise DataError(f"{folder / rel}, row {n}: the image does not decode ({type(exc).__name__})",
                                hint="re-sample that shard: delete it and re-run the same build command") from None
            labels.append(row["label"])
            parents[row["label"]] = tuple(row["parents"])
    if not images:
        raise DataError(f"{folder} has no mix rows to audit", hint="build it first with `scoremix-ds build --out DIR`")
    return np.stack(images), np.asarray(labels), parents


def run_audit(config: AuditConfig) -> AuditResult:
    folder = Path(config.folder)
    manifest = verified_build(folder, field="folder")  # complete, every shard as written: before anything is added
    disc_name = config.discriminator or manifest.config["discriminator"]
    disc_rev = config.discriminator_revision if config.discriminator else manifest.config.get("discriminator_revision")
    real_name = config.real_data or manifest.config["real_data"]
    real_rev = config.real_data_revision if config.real_data else manifest.config.get("real_data_revision")
    if real_name is None:
        raise ConfigError(f"{folder} was built without real data, and the audit compares identities with real class "
                          f"centres", hint="give `real_data` (the generator's training data)",
                          field="real_data")
    disc = load_discriminator(disc_name, disc_rev)
    real = read_real_data(real_name, real_rev, progress=config.progress)
    images, identity, parents = read_mix(folder, manifest)
    logger.info("embedding %d synthetic and %d real images", len(images), len(real.images))
    bar = (lambda what: what) if config.progress else (lambda what: False)
    from ..core.digest import model_digest
    from ..synthesis.centres_cache import cache_key, cached_tensors, data_digest, preprocessing

    key = cache_key(model_digest(disc), data_digest(real, real.num_classes), preprocessing(disc, "cpu")
                    + f":audit-reference:quantile={config.quantile}:batch={config.batch_size}")
    reference = cached_tensors(key, lambda: dict(zip(("centres", "ref"), real_reference(
        embed_images(disc, real.images, config.batch_size, progress=bar("embed real")), real.labels, real.num_classes,
        config.quantile))))
    centres, ref = reference["centres"], reference["ref"]
    audits = audit_identities(embed_images(disc, images, config.batch_size, progress=bar("embed synthetic")), identity,
                              parents, centres, ref, config.threshold)
    rule = (f"flag when the mean cosine of an identity's images to its nearest real class centre is >= {config.threshold}"
            if config.threshold is not None else
            f"flag when the mean cosine of an identity's images to its nearest real class centre reaches the "
            f"{config.quantile:g}-quantile of that real class's own images' cosine to it")
    summary = summarise(audits, ref, rule)
    summary.update(discriminator=public_ref(disc_name), real_data=public_ref(real.source))

    json_path = folder / "audit.json"
    atomic_write(json_path, json.dumps(summary, indent=2, sort_keys=True) + "\n")
    plot_path = folder / "audit.png"
    save_histograms(plot_path, [("synthetic identities: leak score", np.array([a.leak_score for a in audits])),
                          ("synthetic identities: consistency", np.array([a.consistency for a in audits if np.isfinite(a.consistency)])),
                          ("real classes: median own-centre cosine", ref[np.isfinite(ref)])],
                    xlabel="cosine similarity", title=f"identity-leakage audit: {summary['flagged']} of {len(audits)} flagged")
    if config.update_card:
        manifest.audit = {k: v for k, v in summary.items() if k != "per_identity"}
        write_build_card(folder, manifest)
        manifest.write(folder)
    return AuditResult(summary, json_path, plot_path)
