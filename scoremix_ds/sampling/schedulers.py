"""diffusers schedulers looked up by name.

The scheduler's noise schedule and prediction type come from the model folder when it has a
``scheduler/scheduler_config.json`` (``Scheduler.from_config``, the diffusers idiom for swapping samplers);
otherwise the named scheduler's defaults are used, with ``prediction_type`` from the flag. ``edm-heun`` is EDM's
deterministic Heun sampler for EDM2 generators (:class:`~scoremix_ds.generators.edm2.generator.EDMHeunScheduler`,
its sigma_min / sigma_max / rho from the folder's scoremix.json unless the build or the pipeline call sets them;
:func:`check_edm_settings` refuses them for the diffusers schedulers).
"""

from __future__ import annotations

from typing import Any

from ..core.errors import ConfigError

# name -> (diffusers class name, extra config)
SCHEDULERS: dict[str, tuple[str, dict[str, Any]]] = {
    "ddim": ("DDIMScheduler", {}),
    "dpm++": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "euler": ("EulerDiscreteScheduler", {}),
    "heun": ("HeunDiscreteScheduler", {}),
}

# EDM's deterministic Heun sampler for EDM2 generators (sigma-parametrised; settings from the folder's scoremix.json)
EDM_SCHEDULERS = ("edm-heun",)
PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")


def check_scheduler_name(name: str) -> None:
    if name not in SCHEDULERS and name not in EDM_SCHEDULERS:
        raise ConfigError(f"unknown scheduler '{name}'",
                          hint=f"set scheduler to one of {', '.join([*SCHEDULERS, *EDM_SCHEDULERS])}",
                          field="scheduler")


def check_edm_settings(name: str, settings: dict[str, Any]) -> None:
    """sigma_min / sigma_max / rho set (not None) are the ``edm-heun`` sampler's: refused for any other scheduler."""
    given = tuple(k for k, v in settings.items() if v is not None)
    if given and name not in EDM_SCHEDULERS:
        raise ConfigError(f"{' / '.join(given)} set the edm-heun sampler's noise levels (EDM2 generators), not "
                          f"{name}'s", hint=f"leave {' / '.join(f'`{k}`' for k in given)} unset, or sample an EDM2 "
                          "generator with `scheduler` edm-heun", fields=(*given, "scheduler"))


def make_scheduler(name: str, base_config: dict[str, Any] | None = None, prediction_type: str | None = None,
                   edm_settings: dict[str, float] | None = None):
    """A fresh scheduler instance (schedulers carry per-run state, so build one per sampling call). ``edm_settings``:
    ``edm-heun``'s sigma_min / sigma_max / rho over ``base_config``'s (refused for the diffusers schedulers)."""
    import diffusers

    check_scheduler_name(name)
    if name in EDM_SCHEDULERS:
        from ..generators.edm2.generator import EDMHeunScheduler

        if prediction_type is not None:
            raise ConfigError(f"prediction_type {prediction_type} does not apply to {name} (EDM2 predicts the "
                              "denoised image)", hint="leave `prediction_type` unset", field="prediction_type")
        return EDMHeunScheduler.from_config({**(base_config or {}), **(edm_settings or {})})
    check_edm_settings(name, edm_settings or {})
    class_name, extra = SCHEDULERS[name]
    cls = getattr(diffusers, class_name)
    config = {k: v for k, v in (base_config or {}).items() if not k.startswith("_")}
    config.update(extra)
    if prediction_type is not None:
        if prediction_type not in PREDICTION_TYPES:
            raise ConfigError(f"unknown prediction type '{prediction_type}'",
                              hint=f"set prediction_type to one of {', '.join(PREDICTION_TYPES)}", field="prediction_type")
        config["prediction_type"] = prediction_type
    return cls.from_config(config)
