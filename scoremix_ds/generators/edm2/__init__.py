"""EDM2 (Karras et al., CVPR 2024) for ScoreMix, written from the paper and issue 22's facts: the
magnitude-preserving UNet (:mod:`.unet`), EDM preconditioning (:mod:`.precond`), named presets (:mod:`.presets`),
the deterministic Heun sampler with ScoreMix mixing and guidance (:mod:`.sampler`), the code-free reader of
NVlabs snapshots (:mod:`.snapshot`, numpy values via :mod:`.pickled_numpy`) and constructor arguments recovered from
a state dict's shapes (:mod:`.shapes`); the generator folder (:mod:`.folder`), the loaded generator and its
``edm-heun`` sampling (:mod:`.generator`) and snapshot import (:mod:`.importer`). NVlabs' EDM2 code is
CC BY-NC-SA 4.0; none of it is copied here."""

# Names are imported from their module on first use: `sampling` needs only the sampler and the generator (torch),
# and importing the network modules would pull diffusers into every command's start-up.
_EXPORTS = {
    "is_edm2_folder": "folder", "load_edm2_folder": "folder", "write_edm2_folder": "folder",
    "EDM2Generator": "generator", "EDMHeunScheduler": "generator", "edm2_sample": "generator",
    "ImportConfig": "importer", "import_snapshot": "importer",
    "EDM2Denoiser": "precond", "precond_coefficients": "precond",
    "PRESETS": "presets", "EDM2Preset": "presets", "preset": "presets",
    "heun_sample": "sampler", "karras_sigmas": "sampler", "mixed_denoiser": "sampler",
    "infer_denoiser_kwargs": "shapes",
    "EDM2Snapshot": "snapshot", "read_edm2_snapshot": "snapshot",
    "EDM2UNet": "unet",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["EDM2Denoiser", "EDM2Generator", "EDM2Preset", "EDM2Snapshot", "EDM2UNet", "EDMHeunScheduler", "ImportConfig",
           "PRESETS", "edm2_sample", "heun_sample", "import_snapshot", "infer_denoiser_kwargs", "is_edm2_folder",
           "karras_sigmas", "load_edm2_folder", "mixed_denoiser", "precond_coefficients", "preset",
           "read_edm2_snapshot", "write_edm2_folder"]
