"""scoremix-ds: build, version and share ScoreMix synthetic-identity datasets.

ScoreMix (Rahimi & Marcel, arXiv 2506.10226) mixes the class-conditioned scores of two identities at every
reverse diffusion step; the pairs are chosen far apart in a recognition network's embedding space.
"""

__version__ = "0.1.0"

# The public loading API, imported on first use (``import scoremix_ds`` stays light for the CLI):
#   ScoreMixPipeline   a generator folder as a diffusers pipeline (scoremix_ds/sampling/pipeline.py)
#   load_discriminator a recognition model (folder or Hub id) (scoremix_ds/discriminators/loading.py)
_LAZY = {
    "ScoreMixPipeline": ("scoremix_ds.sampling.pipeline", "ScoreMixPipeline"),
    "load_discriminator": ("scoremix_ds.discriminators.loading", "load_discriminator"),
    "embed_images": ("scoremix_ds.discriminators.loading", "embed_images"),
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'scoremix_ds' has no attribute {name!r}")


# ------------------------------------------------------------------------------------- diffusers registration

# Pipeline classes diffusers should resolve by a folder's ``model_index.json`` ``_class_name`` -> their module.
DIFFUSERS_PIPELINES = {"ScoreMixPipeline": "scoremix_ds.sampling.pipeline"}


# Modules whose ModelMixin classes a folder's ``model_index.json`` names as components (``[module, class]``, as
# diffusers' save_pretrained writes a class outside its libraries). Loading a LOCAL folder imports them; loading a HUB
# repository first checks each component's library against diffusers' ``LOADABLE_CLASSES`` (else it looks for a
# ``component/module.py`` file in the repository and refuses), so they are declared there: loaders of ModelMixin.
DIFFUSERS_COMPONENT_MODULES = ("scoremix_ds.generators.edm2.precond",)
_LOADING_UTILS = "diffusers.pipelines.pipeline_loading_utils"


def _register_component_modules(loading_utils) -> None:
    for module in DIFFUSERS_COMPONENT_MODULES:
        loading_utils.LOADABLE_CLASSES.setdefault(module, {"ModelMixin": ["save_pretrained", "from_pretrained"]})


def register_diffusers_pipelines() -> None:
    """Make ``diffusers.DiffusionPipeline.from_pretrained(folder)`` load a folder whose ``model_index.json`` names
    ``ScoreMixPipeline`` (a generator folder of this package), with no ``custom_pipeline`` / ``trust_remote_code``:
    no code is ever loaded from a folder or a Hub repository.

    diffusers resolves ``_class_name`` as an attribute of its own top-level module. This installs a *lazy*
    attribute there: the module's class gains a ``__getattr__`` that imports :mod:`scoremix_ds.sampling.pipeline`
    the first time diffusers asks for the name. ``import scoremix_ds`` calls it, and stays light: when diffusers
    (which imports torch) is not imported yet, an import hook waits for it and installs the attribute as soon as it
    is; nothing torch-heavy is imported here. Idempotent.
    """
    import sys

    module = sys.modules.get("diffusers")
    if module is not None:
        _install_lazy_pipelines(module)
    if sys.modules.get(_LOADING_UTILS) is not None:
        _register_component_modules(sys.modules[_LOADING_UTILS])
    if (module is None or sys.modules.get(_LOADING_UTILS) is None) and \
            not any(isinstance(f, _DiffusersImportHook) for f in sys.meta_path):
        sys.meta_path.insert(0, _DiffusersImportHook())


def _install_lazy_pipelines(module) -> None:
    """Give the ``diffusers`` module object a ``__getattr__`` for :data:`DIFFUSERS_PIPELINES` (a subclass of its own
    module class, so diffusers' lazy attributes work as before)."""
    base = type(module)
    if getattr(base, "_scoremix_pipelines", False):
        return

    def __getattr__(self, name: str):
        if name in DIFFUSERS_PIPELINES:
            import importlib

            value = getattr(importlib.import_module(DIFFUSERS_PIPELINES[name]), name)
            setattr(self, name, value)
            return value
        fallback = getattr(base, "__getattr__", None)
        if fallback is None:
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        return fallback(self, name)

    module.__class__ = type(base.__name__, (base,), {"__getattr__": __getattr__, "_scoremix_pipelines": True,
                                                     "__module__": base.__module__})


class _DiffusersImportHook:
    """A ``sys.meta_path`` finder that lets diffusers import as usual, then installs the lazy pipeline names (on
    ``diffusers``) and the component modules (on its pipeline loading utilities, when those are imported)."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in ("diffusers", _LOADING_UTILS):
            return None
        import sys

        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _RegisteringLoader(spec.loader)
                return spec
        return None


class _RegisteringLoader:
    """Wraps diffusers' loader: after its ``__init__`` runs (and replaces itself in ``sys.modules`` by its lazy
    module), install the pipeline names on whatever ``sys.modules["diffusers"]`` now is; after the loading utilities
    run, declare the component modules."""

    def __init__(self, loader) -> None:
        self._loader = loader

    def __getattr__(self, name: str):
        return getattr(self._loader, name)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        import sys

        self._loader.exec_module(module)
        if module.__name__ == _LOADING_UTILS:
            _register_component_modules(module)
        else:
            _install_lazy_pipelines(sys.modules.get("diffusers", module))


register_diffusers_pipelines()
