"""Share of a demo build's wall time that is NOT a model forward (mixing, scheduler, PNG, parquet, card...).

Forward time is measured with forward hooks on the generator's denoiser and the discriminator; everything else in
``run_build`` is overhead. Prints the overhead fraction (target <= 0.10) and the whole command's wall time
including Python start-up and imports (target for the default build: under 120 s on 2 cores).

    python benchmarks/bench_build.py [--pairs 20 --per-identity 8] [--out DIR]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time

T_PROCESS = time.perf_counter()

import torch  # noqa: E402

from scoremix_ds.synthesis.config import BuildConfig  # noqa: E402
from scoremix_ds.synthesis.runner import run_build  # noqa: E402


class ForwardClock:
    """Sums wall time spent inside the forward of the given top-level module classes (not nested calls)."""

    def __init__(self, classes: tuple[type, ...]) -> None:
        self.classes = classes
        self.total = 0.0
        self.calls = 0
        self._depth = 0
        self._start = 0.0
        self._handles = []

    def __enter__(self) -> "ForwardClock":
        self._handles = [
            torch.nn.modules.module.register_module_forward_pre_hook(self._pre),
            torch.nn.modules.module.register_module_forward_hook(self._post),
        ]
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()

    def _pre(self, module, inputs) -> None:
        if isinstance(module, self.classes):
            if self._depth == 0:
                self._start = time.perf_counter()
            self._depth += 1

    def _post(self, module, inputs, output) -> None:
        if isinstance(module, self.classes):
            self._depth -= 1
            if self._depth == 0:
                self.total += time.perf_counter() - self._start
                self.calls += 1


def main() -> None:
    from diffusers import DiTTransformer2DModel, UNet2DModel

    from scoremix_ds.discriminators.loading import EmbeddingNet

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=BuildConfig.pairs)
    parser.add_argument("--per-identity", type=int, default=BuildConfig.per_identity)
    parser.add_argument("--generator", default="default")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    out = args.out or tempfile.mkdtemp(prefix="scoremix-bench-")
    shutil.rmtree(out, ignore_errors=True)

    config = BuildConfig(strategy="distant", generator=args.generator, pairs=args.pairs, per_identity=args.per_identity, out=out)
    with ForwardClock((UNet2DModel, DiTTransformer2DModel, EmbeddingNet)) as clock:
        start = time.perf_counter()
        result = run_build(config, progress=False)
        build_s = time.perf_counter() - start
    overhead = build_s - clock.total
    print(f"default build: {result.identities} identities, {sum(result.rows.values())} images, threads={torch.get_num_threads()}")
    print(f"run_build {build_s:.1f}s = model forwards {clock.total:.1f}s ({clock.calls} calls) + everything else {overhead:.1f}s")
    print(f"RATIO non-forward / build wall = {overhead / build_s:.3f}  (target <= 0.10)")
    print(f"whole command incl. start-up and imports: {time.perf_counter() - T_PROCESS:.1f}s  (target < 120 s)")
    if args.out is None:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
