"""``scoremix-ds reproduce RECIPE``: the paper's strategy table from one recipe, with every stage cached.

- ``config.py``: the recipe (:class:`ReproduceConfig`; its sections are the trainers' and the builder's own configs).
- ``benchmarks.py``: benchmark spec strings (``.bin``, ``ijbb:``/``ijbc:``, ``tinyface:``) and their readers.
- ``cache.py``: ``run_stage``: ``stages/<name>-<fingerprint>/`` + ``done.json`` written last.
- ``stages.py``: generator, discriminator, plan, build, train, evaluate (one library call each).
- ``summary.py``: mean / std over seeds, Avg, arm comparisons (pure maths).
- ``report.py``: ``report.md``, ``report.json``, ``report.png``.
- ``pipeline.py``: :func:`run_reproduce`.
"""

from .config import ARM_BUILDS, ARMS, EvalSettings, ReproduceConfig, config_from_mapping, load_reproduce_config
from .experiment import ReproduceResult, run_reproduce

__all__ = ["ARMS", "ARM_BUILDS", "EvalSettings", "ReproduceConfig", "ReproduceResult", "config_from_mapping",
           "load_reproduce_config", "run_reproduce"]
