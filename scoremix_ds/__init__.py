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
