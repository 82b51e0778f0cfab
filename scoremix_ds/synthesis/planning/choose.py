"""From models and real data to a mixing plan: class vectors in both spaces, the strategy's tuples, seeds.

``plan_build`` is what ``build`` runs; ``scoremix-ds plan`` runs the same code and writes the plan to a parquet file
(:mod:`scoremix_ds.synthesis.planning.parquet_file`), which ``build --plan FILE`` then builds as it is.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...sources.real_data import RealData
from ...dataset.manifest import file_sha256
from ...core.errors import ConfigError, DataError
from ...maths.mixing import validate_weights
from ...maths.pair_strategies import Strategy
from ...maths.selection import mean_pairwise_distance, select_tuples
from ...core.digest import model_digest
from ...discriminators.loading import load_discriminator
from ...discriminators.onnx_embedder import is_onnx_reference
from ...generators.loading import ClassConditionalGenerator
from ..config import BuildConfig
from ...core.refs import public_ref
from .mix_plan import MixPlan, label_names, make_plan
from .parquet_file import FORMAT, PlanFile, read_plan
from .real_stream import given_digest

logger = logging.getLogger(__name__)

# The config fields a plan file decides; a build with --plan takes them from the file.
PLAN_FIELDS = ("strategy", "classes", "pairs", "per_identity", "weights", "band", "max_uses", "seed")


@dataclass(frozen=True)
class Spaces:
    """Per-class vectors indexed by class id: discriminator centres (NaN rows for classes without images; None with
    no real data) and the generator's condition vectors, plus what identifies the discriminator and data. The
    generator's digest is computed only where a plan file needs it (:func:`plan_meta`, :func:`check_plan_models`)."""

    centres: np.ndarray | None  # None without real data, or when a plan file decides the tuples
    conditions: np.ndarray
    real: RealData | None
    discriminator_digest: str | None
    centres_key: str = ""  # discriminator + real-data digests (:mod:`scoremix_ds.synthesis.centres_cache`)
    centres_computed: bool = False  # embedded by this call (rather than read from a cache)


NO_REAL_DATA = "none: no --real-data was given, so there are no class centres and every embedding_distance is null"


def needs_real_data(strategy: Strategy) -> bool:
    """True for the strategies that pick classes by their discriminator class centres (distant, close, band, the
    embedding triplets); ``random`` and the condition-space strategies need no real data."""
    return strategy.space == "embedding"


def check_real_data(config: BuildConfig, what: str = "") -> None:
    """One line naming real_data when the strategy needs class centres and none were given. Checked once, before any
    model is loaded: by :func:`~scoremix_ds.synthesis.resolve.resolve_build` for a build, by ``make_plan_file`` for a
    plan."""
    if config.real_data is None and needs_real_data(config.strategy_spec):
        raise ConfigError(
            f"strategy '{config.strategy}' picks classes by their class centres in the discriminator's space, which "
            f"needs real images of the generator's classes{what}",
            hint="give `real_data` (the data the generator was trained on), or set `strategy` to random / "
                 "distant-condition / close-condition", fields=("real_data", "strategy"))


def candidate_classes(config: BuildConfig, gen: ClassConditionalGenerator) -> np.ndarray:
    if not config.classes:
        return np.arange(gen.num_classes)
    bad = [c for c in config.classes if c >= gen.num_classes]
    if bad:
        raise ConfigError(f"classes has id {bad[0]}, outside this generator's classes 0..{gen.num_classes - 1}",
                          hint="check `classes`", field="classes")
    return np.asarray(config.classes, dtype=np.int64)


def real_rows(config: BuildConfig, gen: ClassConditionalGenerator, real: RealData) -> np.ndarray:
    """The real rows whose classes give centres: all of them when the class counts agree, else (a mismatch solved
    by --classes) those of the candidate classes, which both the generator and the real data must have."""
    if real.num_classes == gen.num_classes:
        return np.arange(len(real.labels))
    if not config.classes:
        both = min(real.num_classes, gen.num_classes)
        # one undeclared row more than the data has classes: most likely the null class of label dropout
        null_row = gen.null_class is None and gen.num_classes == real.num_classes + 1
        raise DataError(
            f"real_data has {real.num_classes} classes but the generator has {gen.num_classes}",
            hint=(f"if row {gen.num_classes - 1} is the generator's null class (label dropout), give `null_class` "
                  f"{gen.num_classes - 1}; if it is a class, " if null_row else "")
                 + f"mix only classes both have (`classes` 0-{both - 1}), or give the generator's own training data "
                 f"as `real_data`", fields=("real_data", "classes", *(("null_class",) if null_row else ())))
    top = max(config.classes)
    if top >= real.num_classes:
        raise ConfigError(f"classes has id {top}, outside the real data's classes 0..{real.num_classes - 1} "
                          f"(the generator has {gen.num_classes})", hint="check `classes`", field="classes")
    return np.flatnonzero(np.isin(real.labels, np.asarray(config.classes)))


def class_spaces(config: BuildConfig, gen: ClassConditionalGenerator, caches: tuple = (), need_centres: bool = True,
                 group=None, device: str | None = None, progress: bool = False,
                 real_facts: dict | None = None) -> Spaces:
    """Both spaces' class vectors, computed by the ONE process that plans (``group`` is accepted for older callers
    and not used: no other process waits on this in a collective). The real set is opened once and read as a
    stream (:mod:`.real_stream`): its labels at open, its images a block at a time to digest them and, when no
    cache (``caches``, then the user cache, :mod:`scoremix_ds.synthesis.centres_cache`) holds the centres, to embed
    them on ``device`` (default ``config.device``). With ``need_centres=False`` (a plan file decides) nothing is
    embedded or hashed, and with ``real_facts`` (what the plan file recorded of the same real data) the real data
    is not opened at all; without real data (``random`` and the condition strategies) there are no centres."""
    from ...core.devices import resolve_device
    from ..centres_cache import cache_key, planning_centres, preprocessing
    from .real_stream import RealSet, open_real, stream_digest

    conditions = gen.condition_table().numpy().astype(np.float64)
    if config.real_data is None:  # random or a condition strategy (check_real_data), or a plan file's tuples
        return Spaces(None, conditions, None, None)
    if not need_centres and real_facts is not None:
        real = RealSet.from_facts(real_facts)
    else:
        real = open_real(config.real_data, config.real_data_revision, progress=progress)
    candidate_classes(config, gen)  # --classes outside the generator's classes: one line, before any embedding
    rows = real_rows(config, gen, real)
    disc = load_discriminator(config.discriminator, config.discriminator_revision)
    disc_digest = model_digest(disc)
    if not need_centres:
        return Spaces(None, conditions, real, disc_digest)
    # A class-count mismatch solved by --classes: only the candidate classes' rows (their labels fit both).
    dev = resolve_device(device or config.device)
    key = cache_key(disc_digest, stream_digest(real, rows, gen.num_classes, progress=progress),
                    preprocessing(disc, dev))
    centres, computed = planning_centres(disc, real, rows, gen.num_classes, key, [Path(c) for c in caches], dev,
                                         progress)
    return Spaces(centres, conditions, real, disc_digest, key, computed)


def class_names(gen: ClassConditionalGenerator, spaces: Spaces) -> tuple[str, ...]:
    """The generator's classes named after the real data's classes (see :func:`plan.label_names`)."""
    return label_names(tuple(spaces.real.class_names) if spaces.real else (), gen.class_names, gen.num_classes)


def choose_plan(config: BuildConfig, gen: ClassConditionalGenerator, spaces: Spaces) -> MixPlan:
    """The strategy's tuples over the candidate classes, with both spaces' distances and the seeds."""
    classes = candidate_classes(config, gen)
    strategy = config.strategy_spec
    size = strategy.size
    if len(classes) < max(2, size):
        raise ConfigError(f"mixing needs at least {max(2, size)} classes, got {len(classes)}", hint="give `classes` more ids",
                          field="classes")
    tuples = select_tuples(strategy, config.pairs, classes, spaces.centres, spaces.conditions, config.seed,
                           band=config.band, max_uses=config.max_uses)
    plan = make_plan(tuples, config.mix_weights, mean_pairwise_distance(tuples, spaces.centres),
                     mean_pairwise_distance(tuples, spaces.conditions), config.per_identity, config.seed)
    return dataclasses.replace(plan, class_names=class_names(gen, spaces))


def recorded_training(ref: str | None) -> dict[str, Any]:
    """What a local model folder (or the embedded default) records of its training data in ``scoremix.json``:
    ``{"real_data", "licence"}`` or {} when it records nothing (a Hub model is not fetched for this)."""
    from ...core.resources import default_model_dir

    if ref is not None and is_onnx_reference(ref):
        return {}
    folder = default_model_dir("discriminator") if ref in (None, "default") else Path(ref).expanduser()
    try:
        meta = json.loads((folder / "scoremix.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: meta[k] for k in ("real_data", "licence") if isinstance(meta, dict) and meta.get(k)}


def provenance(config: BuildConfig, gen: ClassConditionalGenerator, real: RealData | None) -> dict[str, Any]:
    """Where each input came from, as given: the real data (class centres and class names) with its licence, and
    what each model records of ITS training data (``None``: not recorded in the model folder). Without real data
    (``random`` / condition strategies) the real-data facts are None and ``embedding_distances`` says why."""
    disc = recorded_training(config.discriminator) if real else {}
    facts = {
        "real_data": public_ref(real.source) if real else None,
        "real_data_commit": real.commit if real else None,  # what a revision / folder resolved to (the card shows it)
        "licence": real.licence if real else None,
        "attribution": public_ref(real.attribution) if real else None,
        "generator": public_ref(config.generator),
        "generator_revision": config.generator_revision,
        "generator_training_data": public_ref(gen.metadata.get("real_data")),
        "generator_licence": gen.metadata.get("licence"),
        "discriminator": public_ref(config.discriminator) if real else None,
        "discriminator_revision": config.discriminator_revision if real else None,
        "discriminator_training_data": public_ref(disc.get("real_data")),
        "discriminator_licence": disc.get("licence"),
        "num_real_classes": int(real.num_classes) if real else None,
        "real_class_names": list(real.class_names) if real else None,
        "class_names": list(label_names(tuple(real.class_names) if real else (), gen.class_names, gen.num_classes)),
    }
    if real is None:
        facts["embedding_distances"] = NO_REAL_DATA
    clash = names_clash(gen, real)
    if clash is not None:  # the rows take the real data's names: say so, and keep the generator's beside them
        logger.warning("the generator names class %d '%s' but the real data names it '%s': rows use the real data's "
                       "names; the manifest records both", *clash)
        facts["generator_class_names"] = list(gen.metadata.get("class_names"))
    return facts


def names_clash(gen: ClassConditionalGenerator, real: RealData | None) -> tuple[int, str, str] | None:
    """The first class the generator's folder DECLARES a name for that the real data names otherwise."""
    declared = gen.metadata.get("class_names") if isinstance(gen.metadata, dict) else None
    if not declared or real is None:
        return None
    return next(((c, str(declared[c]), str(real.class_names[c]))
                 for c in range(min(len(declared), len(real.class_names))) if str(declared[c]) != str(real.class_names[c])),
                None)


def plan_meta(config: BuildConfig, gen: ClassConditionalGenerator, spaces: Spaces) -> dict[str, Any]:
    """What a plan file records besides its rows (no local absolute paths)."""
    return {
        "format": FORMAT,
        **{f: getattr(config, f) for f in PLAN_FIELDS},
        "weights": list(config.mix_weights),
        "generator": public_ref(config.generator),
        "generator_revision": config.generator_revision,
        "generator_digest": model_digest(gen),
        "discriminator": public_ref(config.discriminator),
        "discriminator_revision": config.discriminator_revision,
        "discriminator_digest": spaces.discriminator_digest,
        "real_data": public_ref(spaces.real.source) if spaces.real else None,
        # what the manifest records of the real data, so `build --plan` with the same --real-data never opens it
        "real_data_given": given_digest(config.real_data, config.real_data_revision) if spaces.real else None,
        "real_data_facts": spaces.real.facts() if spaces.real is not None and hasattr(spaces.real, "facts") else None,
        "class_names": list(class_names(gen, spaces)),
        **({} if spaces.real else {"embedding_distances": NO_REAL_DATA}),
    }


def with_plan(config: BuildConfig) -> BuildConfig:
    """For ``build --plan FILE``: the plan decides :data:`PLAN_FIELDS` (a flag that contradicts it is refused) and
    its bytes' sha256 enters the fingerprint. Without a plan, ``config`` is returned unchanged."""
    return resolve_plan(config)[0]


def resolve_plan(config: BuildConfig) -> tuple[BuildConfig, PlanFile | None]:
    """:func:`with_plan`, also returning the plan file as read (None without ``--plan``), so the build that follows
    never reads it again."""
    if not config.plan:
        if config.plan_sha256:  # a recipe (build.toml / manifest.json) of a build made from a plan file
            raise ConfigError(f"this recipe's build used a plan file (sha256 {config.plan_sha256[:12]}...) the recipe does "
                              "not name", hint="give that plan file as `plan`", field="plan")
        return config, None
    pf = read_plan(config.plan)
    sha = file_sha256(config.plan)
    if config.plan_sha256 not in (None, sha):
        raise ConfigError(f"plan file {config.plan} changed since this build started", hint="restore it, or build into a new output folder",
                          fields=("plan", "out"))
    sizes = {len(i.parents) for i in pf.plan.identities}
    if len(sizes) != 1:  # the sampler mixes one tuple size per batch
        raise DataError(f"plan file {config.plan} mixes tuples of {sorted(sizes)} classes",
                        hint="give every identity the same number of parents (one plan file per tuple size)")
    counts = {len(i.seeds) for i in pf.plan.identities}
    if len(counts) != 1:
        raise DataError(f"plan file {config.plan} gives identities different numbers of seeds", hint="give every identity the same number of seeds")
    from_plan = {f: pf.meta.get(f) for f in PLAN_FIELDS}
    try:
        from_plan.update(pairs=len(pf.plan.identities), per_identity=counts.pop(),
                         classes=tuple(int(c) for c in from_plan["classes"] or ()),
                         weights=tuple(float(w) for w in from_plan["weights"] or ()),
                         band=tuple(float(b) for b in from_plan["band"]) if from_plan["band"] else None)
        for f in ("strategy", "seed"):
            if not isinstance(from_plan[f], {"strategy": str, "seed": int}[f]):
                raise TypeError(f)
    except (TypeError, ValueError):
        raise DataError(f"plan file {config.plan} has metadata of the wrong types (fields {', '.join(PLAN_FIELDS)})",
                        hint="give as `plan` a file written by `scoremix-ds plan`", field="plan") from None
    defaults = BuildConfig()
    for f, value in from_plan.items():
        given = getattr(config, f)
        if given != getattr(defaults, f) and given != value:
            raise ConfigError(f"{f} {given} contradicts the plan file's {value}", hint=f"drop `{f}`: the plan decides it",
                              fields=(f, "plan"))
    for row, ident in enumerate(pf.plan.identities):
        try:
            validate_weights(ident.weights, len(ident.parents), config.allow_nonconvex)
        except ConfigError as exc:  # the weights come from the file, not from the command line: name the file and row
            raise DataError(f"plan file {config.plan}, row {row} (parents {list(ident.parents)}): {exc.message}",
                            hint="fix that row or write the plan again with `scoremix-ds plan`; `allow_nonconvex` "
                                 "accepts weights that are negative or do not sum to 1",
                            fields=("plan", "allow_nonconvex")) from None
    return dataclasses.replace(config, **from_plan, plan_sha256=sha), pf


def check_plan_models(meta: dict[str, Any], gen: ClassConditionalGenerator, spaces: Spaces, path: str) -> None:
    """Refuse a plan file made with other models (their content digests differ from this build's)."""
    for role in ("generator", "discriminator"):
        made = meta.get(f"{role}_digest")
        have = model_digest(gen) if role == "generator" else spaces.discriminator_digest
        if role == "discriminator" and (made is None or have is None):  # a plan (or build) without real data
            continue
        if made != have:
            raise ConfigError(
                f"plan file {path} was made with {role} {meta.get(role)!r} (digest {made}); this build's {role} has digest {have}",
                hint=f"build with the plan's --{role}, or make a new plan with `scoremix-ds plan`",
            )


def plan_build(config: BuildConfig, gen: ClassConditionalGenerator, progress: bool = False) -> tuple[MixPlan, dict]:
    """Class centres -> distances in both spaces -> tuples -> plan (or the plan file's). Returns the plan and
    provenance facts."""
    plan, provenance, _ = plan_and_spaces(config, gen, progress=progress)
    return plan, provenance


def plan_and_spaces(config: BuildConfig, gen: ClassConditionalGenerator, caches: tuple = (), group=None,
                    device: str | None = None, progress: bool = False,
                    plan_file: PlanFile | None = None) -> tuple[MixPlan, dict, Spaces]:
    """:func:`plan_build`, also returning the spaces (so a build can cache freshly computed centres). With a plan
    file no centres are computed: the file decides the tuples (``plan_file``: the file as :func:`resolve_plan` read
    it; read here when not given)."""
    pf = None
    if config.plan:
        pf = plan_file if plan_file is not None else read_plan(config.plan)
    facts = None
    if pf is not None and pf.meta.get("real_data_given") == given_digest(config.real_data, config.real_data_revision):
        facts = pf.meta.get("real_data_facts")  # the same real data the plan was made from: not opened again
    spaces = class_spaces(config, gen, caches, need_centres=not config.plan, group=group, device=device,
                          progress=progress, real_facts=facts)
    if pf is not None:
        check_plan_models(pf.meta, gen, spaces, config.plan)
        top = max(max(i.parents) for i in pf.plan.identities)
        if top >= gen.num_classes:
            raise DataError(f"plan file {config.plan} mixes class {top}; the generator has 0..{gen.num_classes - 1}",
                            hint="use the plan's `generator`",
                            fields=("generator", "plan"))
        plan = dataclasses.replace(pf.plan, class_names=class_names(gen, spaces))
    else:
        plan = choose_plan(config, gen, spaces)
    return plan, provenance(config, gen, spaces.real), spaces
