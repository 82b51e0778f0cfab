"""How recognisable the embedded default generator's digits are, by guidance and timestep spacing.

Each setting samples ``--n`` plain class-conditional digits (classes 0..9 in turn, the same seeds for every setting)
and classifies them by the nearest class centre of the embedded discriminator (centres of the 5,000 real digits).
Prints the accuracy of each setting and its ratio to g=1 with the folder's own scheduler config (the baseline).
This is what chose the build's default guidance (3) and the trainer's 'leading' timestep spacing.

    python benchmarks/quality_default.py [--n 100] [--steps 25]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from scoremix_ds.sources.readers import read_mnist_5k
from scoremix_ds.maths.image_tensors import to_uint8
from scoremix_ds.maths.centres import class_centres, l2_normalise
from scoremix_ds.discriminators.loading import embed_images, load_discriminator
from scoremix_ds.generators.loading import load_generator
from scoremix_ds.sampling.schedulers import make_scheduler
from scoremix_ds.sampling.scoremix import scoremix_sample


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--steps", type=int, default=25)
    args = parser.parse_args()
    gen, disc, real = load_generator(), load_discriminator(), read_mnist_5k()
    centres = l2_normalise(class_centres(embed_images(disc, real.images), real.labels, 10))
    classes = torch.arange(args.n).remainder(10)[:, None]
    settings = [("g=1 (baseline)", 1.0, {}), ("g=2", 2.0, {}), ("g=3 (build default)", 3.0, {}),
                ("g=1, trailing spacing", 1.0, {"timestep_spacing": "trailing"}),
                ("g=3, trailing spacing", 3.0, {"timestep_spacing": "trailing"})]
    base = None
    for name, guidance, override in settings:
        config = dict(gen.scheduler_config or {}, **override)
        x = scoremix_sample(gen, make_scheduler("ddim", config), classes, torch.ones(args.n, 1), list(range(args.n)),
                            args.steps, guidance)
        predicted = (embed_images(disc, to_uint8(x)) @ centres.T).argmax(axis=1)
        accuracy = float(np.mean(predicted == classes[:, 0].numpy()))
        base = accuracy if base is None else base
        print(f"{name:>24}: {accuracy:.2f} of {args.n} digits recognised  RATIO vs baseline {accuracy / base:.2f}")


if __name__ == "__main__":
    main()
