"""The typed build configuration. A recipe in ``builders/`` is a saved ``BuildConfig``; flags override it."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from ..core.errors import ConfigError
from ..core.fingerprints import config_fingerprint
from ..maths.mixing import WEIGHT_SCHEDULES, WeightSchedule, validate_weights
from ..maths.pair_strategies import Strategy, check_selection, get_strategy
from ..core.recipes import to_dict, without_added_fields
from ..sampling.batches import SamplingSettings
from ..sampling.scoremix import MIXING_MODES
from ..sampling.schedulers import PREDICTION_TYPES, check_scheduler_name
from ..core.validate import device_name, in_range, positive_count

DTYPES = ("auto", "float32", "bfloat16", "float16")  # auto: bfloat16 on CUDA, float32 elsewhere

# Fields that change where or how fast rows are made, never the rows themselves: left out of the fingerprint.
# ``plan`` is a path; the plan's CONTENT enters the fingerprint through ``plan_sha256``.
# A field added later, with the value older builds had: builds that do not set it keep their fingerprint.
# ``compute_dtype`` is not a field: it is what ``dtype`` resolves to on ``device`` (``compute_dtype()`` below), entered
# in the fingerprint only where ``dtype`` is "auto" (an explicit dtype already names it) and only when it is not
# float32, so every CPU/float32 fingerprint is what it was, while "auto" on CUDA (bfloat16) gets its own.
ADDED_FIELDS: dict[str, Any] = {"null_class": None, "compute_dtype": "float32", "sigma_min": None, "sigma_max": None,
                                "rho": None}
LAYOUT_FIELDS = frozenset({"out", "device", "batch_size", "shard_size", "shard", "num_shards", "plan", "compile"})


@dataclass(frozen=True)
class BuildConfig:
    strategy: str = "distant"
    generator: str = "default"  # local folder, Hub id, or "default" (the embedded MNIST generator)
    generator_revision: str | None = None
    discriminator: str = "default"  # chooses pairs by class-centre distance in its embedding space
    discriminator_revision: str | None = None
    weak_generator: str | None = None  # autoguidance: a weaker checkpoint of the same generator
    # The generator's training data; gives the class centres. None: mnist-5k for the embedded default generator;
    # for any other generator the strategies that need centres refuse to run without it (planning.choose.needs_real_data).
    real_data: str | None = None
    real_data_revision: str | None = None
    null_class: int | None = None  # the generator's unconditional row, when its folder does not declare one
    classes: tuple[int, ...] = ()  # candidate classes to mix; empty = all of the generator's classes
    pairs: int = 20  # number of new synthetic identities (one per distinct tuple: pairs, or triplets for *-triplets)
    per_identity: int = 8  # images per synthetic identity, one seed each
    weights: tuple[float, ...] = ()  # one per mixed class, convex unless allow_nonconvex; () = equal (0.5, 0.5 for pairs)
    band: tuple[float, float] | None = None  # strategy "band": percentile range (lo, hi) of the candidate distances
    max_uses: int | None = None  # the most identities one class may join (default: only the balancing cap)
    plan: str | None = None  # a plan file from `scoremix-ds plan`: its tuples, weights and seeds replace the choice
    plan_sha256: str | None = None  # set from the plan file's bytes when the build starts (never by hand)
    allow_nonconvex: bool = False
    mixing: str = "score"  # "score": ScoreMix; "condition": mix the class-condition vectors instead (AugGen baseline)
    weight_schedule: str = "constant"
    window_start: float = 0.0  # for weight_schedule="window": fraction of the trajectory where mixing starts
    window_end: float = 1.0
    scheduler: str = "ddim"
    prediction_type: str | None = None  # override the model folder's scheduler config
    steps: int = 25
    # edm-heun (EDM2 generators) only: its Karras noise levels; None: the generator folder's (scoremix.json sampler)
    sigma_min: float | None = None
    sigma_max: float | None = None
    rho: float | None = None
    # g: 1 = no guidance; else classifier-free with the null class, or autoguidance with weak_generator. The default
    # suits the embedded MNIST generator (90% of its digits recognised at g=3 vs 75% at g=1, docs/performance.md);
    # a generator trained without a null class needs --guidance 1.
    guidance: float = 3.0
    seed: int = 0
    repro: bool = True  # also sample each parent alone from the same seeds (the "repro" config)
    dtype: str = "auto"  # bfloat16 on CUDA (tensor cores), float32 elsewhere; or float32 / bfloat16 / float16
    device: str = "auto"  # the accelerator when present (scoremix_ds.core.devices.resolve_device)
    compile: bool = False  # torch.compile the denoiser (a speed choice like --device: not in the fingerprint)
    batch_size: int = 64
    shard_size: int = 16  # identities per work unit = per parquet shard; the unit of resume and distribution
    shard: int = 0  # job arrays: this part's index (--shard i) ...
    num_shards: int = 1  # ... of --num-shards n independent parts, joined later by `scoremix-ds merge`
    out: str = "scoremix-out"

    def __post_init__(self) -> None:
        if self.real_data is None and self.generator in ("default", "", None):
            object.__setattr__(self, "real_data", "mnist-5k")  # the embedded generator's own training data
        if self.null_class is not None and self.null_class < 0:
            raise ConfigError(f"null_class must be a class id >= 0, got {self.null_class}", hint="set null_class to a class id >= 0",
                              field="null_class")
        strategy = self.strategy_spec
        check_scheduler_name(self.scheduler)
        if self.weights:
            validate_weights(self.weights, strategy.size, self.allow_nonconvex)
        check_selection(strategy, self.pairs, self.band, self.max_uses)
        WeightSchedule(self.weight_schedule, self.window_start, self.window_end)
        for name in ("per_identity", "steps", "batch_size", "shard_size"):
            positive_count(name, getattr(self, name))
        if self.num_shards < 1 or not 0 <= self.shard < self.num_shards:
            raise ConfigError(f"shard {self.shard} is outside 0..{self.num_shards - 1} (num_shards {self.num_shards})",
                              hint="set shard in 0 .. num_shards - 1", fields=("shard", "num_shards"))
        device_name("device", self.device)
        in_range("guidance", self.guidance, lo=0.0, example="1 (none) or 3")
        for name, example in (("sigma_min", "0.002"), ("sigma_max", "80"), ("rho", "7")):
            in_range(name, getattr(self, name), lo=0.0, lo_open=True, optional=True, example=example)
        if self.sigma_min is not None and self.sigma_max is not None and not self.sigma_min < self.sigma_max:
            raise ConfigError(f"sigma_min {self.sigma_min:g} is not below sigma_max {self.sigma_max:g}",
                              hint="set `sigma_min` below `sigma_max`", fields=("sigma_min", "sigma_max"))
        if self.weight_schedule != "window" and (self.window_start, self.window_end) != (0.0, 1.0):
            raise ConfigError(f"window_start/window_end ({self.window_start}, {self.window_end}) apply only to "
                              f"weight_schedule 'window', not '{self.weight_schedule}'",
                              hint="set `weight_schedule` to window, or leave window_start/window_end unset",
                              fields=("window_start", "window_end", "weight_schedule"))
        if self.dtype not in DTYPES:
            raise ConfigError(f"unknown dtype '{self.dtype}'", hint=f"set dtype to one of {', '.join(DTYPES)}", field="dtype")
        if self.prediction_type is not None and self.prediction_type not in PREDICTION_TYPES:
            raise ConfigError(f"unknown prediction type '{self.prediction_type}'",
                              hint=f"set prediction_type to one of {', '.join(PREDICTION_TYPES)}", field="prediction_type")
        if any(c < 0 for c in self.classes):
            raise ConfigError(f"classes has a negative class id {min(self.classes)}", hint="class ids start at 0", field="classes")
        if len(set(self.classes)) != len(self.classes):
            raise ConfigError("classes lists a class twice", hint="give each class id once", field="classes")
        if self.mixing not in MIXING_MODES:
            raise ConfigError(f"unknown mixing mode '{self.mixing}'", hint=f"set mixing to one of {', '.join(MIXING_MODES)}",
                              field="mixing")
        if self.weight_schedule not in WEIGHT_SCHEDULES:
            raise ConfigError(f"unknown weight schedule '{self.weight_schedule}'",
                              hint=f"set weight_schedule to one of {', '.join(WEIGHT_SCHEDULES)}", field="weight_schedule")

    @cached_property
    def strategy_spec(self) -> Strategy:
        """The :class:`~scoremix_ds.maths.pair_strategies.Strategy` that ``strategy`` names, looked up once (when the
        config is made, which refuses an unknown name); every later use takes this object."""
        return get_strategy(self.strategy)

    @property
    def mix_weights(self) -> tuple[float, ...]:
        """The weights of every mix: as given, or equal over the strategy's K classes."""
        if self.weights:
            return tuple(float(w) for w in self.weights)
        k = self.strategy_spec.size
        return tuple(1.0 / k for _ in range(k))

    @property
    def schedule(self) -> WeightSchedule:
        return WeightSchedule(self.weight_schedule, self.window_start, self.window_end)

    @property
    def sampling(self) -> SamplingSettings:
        """How this build samples its rows and preview (the settings :mod:`scoremix_ds.sampling.batches` takes)."""
        return SamplingSettings(steps=self.steps, guidance=self.guidance, scheduler=self.scheduler,
                                prediction_type=self.prediction_type, schedule=self.schedule, mixing=self.mixing,
                                batch_size=self.batch_size, sigma_min=self.sigma_min, sigma_max=self.sigma_max,
                                rho=self.rho)

    def content_config(self) -> dict:
        """The fields that determine the rows (layout fields dropped)."""
        values = {k: v for k, v in to_dict(self).items() if k not in LAYOUT_FIELDS}
        return without_added_fields(values, ADDED_FIELDS)

    @property
    def compute_dtype(self) -> str:
        """The precision the build samples in: ``dtype`` resolved on ``device`` (see :func:`compute_dtype`)."""
        return compute_dtype(self.dtype, self.device)

    def fingerprint_payload(self) -> dict:
        """:meth:`content_config` plus the resolved precision where ``dtype`` is "auto" (see ``ADDED_FIELDS``)."""
        values = dict(self.content_config())
        if self.dtype == "auto":
            values["compute_dtype"] = self.compute_dtype
        return without_added_fields(values, ADDED_FIELDS)

    def fingerprint(self) -> str:
        """Stable hash of :meth:`content_config` and the resolved precision: two builds with the same fingerprint
        make the same rows."""
        return config_fingerprint(self.fingerprint_payload(), compact=True)


def compute_dtype(dtype: str, device: str) -> str:
    """``dtype`` resolved on ``device``, by name: "auto" is bfloat16 on CUDA (``device`` "auto" means CUDA when torch
    sees it), float32 elsewhere; an explicit dtype is itself. Never raises for an unavailable device (a recorded
    config may name one): ``cuda`` is CUDA whether or not it is present."""
    if dtype != "auto":
        return dtype
    from ..core.devices import names_cuda

    return "bfloat16" if names_cuda(device) else "float32"


def recorded_precision(config: dict, provenance: dict | None = None) -> str | None:
    """The precision a build recorded (its manifest's ``provenance`` since precision entered the fingerprint), else
    what its ``dtype`` names; None for an older "auto" build (unknown: its fingerprint still tells builds apart)."""
    found = (provenance or {}).get("compute_dtype")
    if found:
        return str(found)
    dtype = config.get("dtype", "auto")
    return dtype if dtype in DTYPES and dtype != "auto" else None

