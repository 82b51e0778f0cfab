"""An EDM2 generator behind the project's one generator interface, and how it samples.

Owns: :class:`EDMHeunScheduler` (the ``edm-heun`` sampler's settings: sigma_min, sigma_max, rho; a plain value a
build copies per batch like a diffusers scheduler), :class:`EDM2Generator` (a
:class:`~scoremix_ds.generators.interface.ClassConditionalGenerator` whose denoiser is an
:class:`~.precond.EDM2Denoiser`, with the folder's autoguidance guide) and :func:`edm2_sample` (a batch of K-way
ScoreMix / AugGen condition mixes from given initial noise: Karras sigmas, Heun, one batched forward per network
per evaluation, :func:`~.sampler.mixed_denoiser`).

Conventions: class ``c`` is the one-hot label e_c (EDM2 multiplies it by sqrt(label_dim) itself); a generator
trained with label dropout declares ``null_class = num_classes``, which stands for EDM2's dropped label, the zero
vector (classifier-free guidance guides against it). Initial noise is standard normal (drawn per seed by the
caller) and scaled by sigma_max. The state is integrated in float64; the networks run in float32 (on CUDA the
network's own ``use_fp16`` applies), whatever dtype a caller asks the generator to be moved to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch

from ...core.errors import ConfigError, ModelError
from ..interface import ClassConditionalGenerator
from .sampler import heun_sample_steps, karras_sigmas, mixed_denoiser

SAMPLER_DEFAULTS: dict[str, Any] = {"scheduler": "edm-heun", "steps": 32, "sigma_min": 0.002, "sigma_max": 80.0,
                                    "rho": 7.0, "guidance": 1.0}


@dataclass(frozen=True)
class EDMHeunScheduler:
    """EDM's deterministic 2nd-order sampler, by its settings (the number of steps is the caller's)."""

    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0
    order: int = 2

    @classmethod
    def from_config(cls, config: Optional[dict]) -> "EDMHeunScheduler":
        config = config or {}
        return cls(**{k: float(config[k]) for k in ("sigma_min", "sigma_max", "rho") if config.get(k) is not None})

    def sigmas(self, num_steps: int) -> torch.Tensor:
        return karras_sigmas(num_steps, self.sigma_min, self.sigma_max, self.rho)


@dataclass
class EDM2Generator(ClassConditionalGenerator):
    """A loaded EDM2 folder: ``denoiser`` is D(x; sigma, y); ``guide`` the folder's autoguidance network (or None);
    ``scheduler_config`` the folder's sampler settings (see :data:`SAMPLER_DEFAULTS`)."""

    guide: Optional["EDM2Generator"] = None
    sampler: dict = field(default_factory=lambda: dict(SAMPLER_DEFAULTS))

    def to(self, device: str | torch.device, dtype: torch.dtype = torch.float32) -> "EDM2Generator":
        self.denoiser.to(device=device, dtype=torch.float32)  # EDM2 keeps float32 weights (fp16 is its own choice)
        if self.vae is not None:
            self.vae.to(device=device)
            if self.vae.dtype != dtype:
                self.vae.to(dtype=dtype)
        if self.guide is not None:
            self.guide.to(device, dtype)
        return self

    def labels(self, classes: torch.Tensor) -> torch.Tensor:
        """Class ids (any shape) -> one-hot label vectors (shape + (label_dim,)); the null class -> zeros."""
        dim = int(self.denoiser.label_dim)
        eye = torch.cat([torch.eye(dim, dtype=torch.float32), torch.zeros(1, dim)])
        return eye[classes.long().clamp(max=dim).cpu()]

    def predict(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """D(x; sigma = ``t``, y): ``labels`` are class ids ``(B,)`` or float label vectors ``(B, label_dim)``."""
        if labels.ndim == 1 and not labels.is_floating_point():
            labels = self.labels(labels)
        sigma = torch.as_tensor(t, device=x.device).reshape(-1).expand(x.shape[0])
        return self.denoiser(x, sigma, labels.to(x.device)).float()

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """Samples -> images in [-1, 1]: pixel space clipped; latent space (EDM2's final latents) mapped back to raw
        VAE latents, (x - bias) / scale per channel, and decoded by the VAE."""
        if self.vae is None:
            return x.clamp(-1, 1)
        latent = self.metadata["latent"]
        shape = (1, -1, 1, 1)
        scale = torch.tensor(latent["scale"], dtype=torch.float32, device=x.device).reshape(shape)
        bias = torch.tensor(latent["bias"], dtype=torch.float32, device=x.device).reshape(shape)
        z = (x.float() - bias) / scale
        return self.vae.decode(z.to(self.vae.dtype)).sample.float().clamp(-1, 1)

    def condition_table(self) -> torch.Tensor:
        """The label layer's (normalised) column per class, ``(num_classes, emb)``: the class-condition vectors."""
        from .unet import normalize

        weight = normalize(self.denoiser.unet.emb_label.weight.detach().float())
        return weight.t()[: self.num_classes].cpu()


def edm2_generator(net: torch.nn.Module, class_names: tuple[str, ...], null_class: Optional[int], sampler: dict, *,
                   guide_net: Optional[torch.nn.Module] = None, vae: Optional[torch.nn.Module] = None,
                   metadata: Optional[dict] = None, source: str = "", guide_source: str = "",
                   revision: Optional[str] = None) -> EDM2Generator:
    """The generator over loaded networks (``net``, its autoguidance ``guide_net``, a latent folder's ``vae``): what
    a folder (:func:`~.folder.load_edm2_folder`) and :class:`~scoremix_ds.sampling.pipeline.ScoreMixPipeline` both
    sample. ``sampler``: the folder's settings over :data:`SAMPLER_DEFAULTS`."""
    n = int(net.label_dim)
    shape = (int(net.img_channels), int(net.img_resolution), int(net.img_resolution))
    sampler = {**SAMPLER_DEFAULTS, **(sampler or {})}
    common = dict(kind="edm2", num_classes=n, null_class=null_class, class_names=tuple(class_names),
                  sample_shape=shape, scheduler_config=sampler, revision=revision, metadata=metadata or {},
                  sampler=sampler)
    guide = None if guide_net is None else EDM2Generator(denoiser=guide_net, source=guide_source, **common)
    return EDM2Generator(denoiser=net, vae=vae, source=source, guide=guide, **common)


def check_sampler(gen: ClassConditionalGenerator, scheduler: str) -> None:
    """EDM2 generators sample with ``edm-heun`` and only they do (refused when the models load)."""
    edm = scheduler == SAMPLER_DEFAULTS["scheduler"]
    if edm != (gen.kind == "edm2"):
        raise ModelError(f"scheduler {scheduler} does not sample " + ("an EDM2 generator" if gen.kind == "edm2" else
                         f"a {gen.kind} generator (edm-heun samples EDM2 generators only)"),
                         hint="set `scheduler` to " + ("edm-heun" if gen.kind == "edm2" else "ddim, dpm++, euler or heun"),
                         field="scheduler")


def check_guide(gen: ClassConditionalGenerator, weak: Optional[ClassConditionalGenerator],
                field: str = "weak_generator") -> None:
    """An EDM2 generator's autoguidance network is an EDM2 network with its sample shape and label count."""
    if gen.kind != "edm2" or weak is None:
        return
    if weak.kind != "edm2":
        raise ModelError(f"an EDM2 generator is autoguided by an EDM2 network, not a {weak.kind} one",
                         hint=f"check `{field}`", field=field)
    for what, a, b in (("sample shape", gen.sample_shape, weak.sample_shape),
                       ("label count", gen.num_classes, weak.num_classes)):
        if a != b:
            raise ModelError(f"the autoguidance guide's {what} is {b}, the generator's {a}",
                             hint=f"give `{field}` a network of the same data and classes", field=field)


def _network(gen: EDM2Generator) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    def run(x: torch.Tensor, sigma: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return gen.denoiser(x, sigma, labels)
    return run


def edm2_sample(gen: EDM2Generator, scheduler: EDMHeunScheduler, classes: torch.Tensor, weights: torch.Tensor,
                noise: torch.Tensor, num_steps: int, guidance: float = 1.0, weak: Optional[EDM2Generator] = None,
                schedule: Optional[Callable[[torch.Tensor, float], torch.Tensor]] = None,
                mixing: str = "score") -> torch.Tensor:
    """``(B, C, H, W)`` samples (float64, not decoded) for ``(B, K)`` ``classes`` mixed with ``weights`` from
    standard-normal ``noise``. ``guidance`` != 1: autoguidance with ``weak`` when given, else classifier-free
    against the zero label (needs ``gen.null_class``). ``schedule(weights, progress)`` varies the weights by step
    (progress = step / num_steps, shared by a step's two evaluations); ``mixing="condition"`` mixes the label
    vectors (AugGen) and runs one condition per sample."""
    b, k = classes.shape
    device = gen.device
    if guidance != 1.0 and weak is None and gen.null_class is None:
        raise ModelError("classifier-free guidance needs a null class, and this generator has none",
                         hint="use `guidance` 1, or give a `weak_generator` (or a folder with a guide)",
                         fields=("guidance", "weak_generator"))
    check_guide(gen, weak)
    onehot = gen.labels(classes).to(device)  # (B, K, L)
    weights = weights.to(device=device, dtype=torch.float32)
    sigmas = scheduler.sigmas(int(num_steps)).to(device)
    main = _network(gen)
    guide = None if guidance == 1.0 else (_network(weak) if weak is not None else main)

    def at_step(i: int):
        w = weights if schedule is None else schedule(weights, i / num_steps)
        if mixing == "condition":
            labels, wk = (w.unsqueeze(-1) * onehot).sum(dim=1, keepdim=True), torch.ones(b, 1, device=device)
        elif mixing == "score":
            labels, wk = onehot, w
        else:
            raise ConfigError(f"unknown mixing mode {mixing!r}", field="mixing")
        guide_labels = torch.zeros_like(labels) if guide is main else None
        return mixed_denoiser(main, labels, wk, guide=guide, guidance=guidance, guide_labels=guide_labels)

    return heun_sample_steps(at_step, noise.to(device), sigmas)
