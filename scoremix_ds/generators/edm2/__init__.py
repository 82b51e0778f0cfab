"""EDM2 (Karras et al., CVPR 2024) for ScoreMix, written from the paper and issue 22's facts: the
magnitude-preserving UNet (:mod:`.unet`), EDM preconditioning (:mod:`.precond`), named presets (:mod:`.presets`),
the deterministic Heun sampler with ScoreMix mixing and guidance (:mod:`.sampler`), the code-free reader of
NVlabs snapshots (:mod:`.snapshot`, numpy values via :mod:`.pickled_numpy`) and constructor arguments recovered from
a state dict's shapes (:mod:`.shapes`); the generator folder (:mod:`.folder`), the loaded generator and its
``edm-heun`` sampling (:mod:`.generator`) and snapshot import (:mod:`.importer`). NVlabs' EDM2 code is
CC BY-NC-SA 4.0; none of it is copied here."""

from .folder import is_edm2_folder, load_edm2_folder, write_edm2_folder
from .generator import EDM2Generator, EDMHeunScheduler, edm2_sample
from .importer import ImportConfig, import_snapshot
from .precond import EDM2Denoiser, precond_coefficients
from .presets import PRESETS, EDM2Preset, preset
from .sampler import heun_sample, karras_sigmas, mixed_denoiser
from .shapes import infer_denoiser_kwargs
from .snapshot import EDM2Snapshot, read_edm2_snapshot
from .unet import EDM2UNet

__all__ = ["EDM2Denoiser", "EDM2Generator", "EDM2Preset", "EDM2Snapshot", "EDM2UNet", "EDMHeunScheduler", "ImportConfig",
           "PRESETS", "edm2_sample", "heun_sample", "import_snapshot", "infer_denoiser_kwargs", "is_edm2_folder",
           "karras_sigmas", "load_edm2_folder", "mixed_denoiser", "precond_coefficients", "preset",
           "read_edm2_snapshot", "write_edm2_folder"]
