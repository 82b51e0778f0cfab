"""``scoremix-ds eval``: a recognition model on verification / IJB benchmarks; JSON, a markdown table, a ROC plot."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..core.errors import ConfigError
from .options import BatchOpt, DeviceOpt, ProgressOpt, SeedOpt

DEFAULT_BENCHMARKS = ["mnist-5k-heldout"]
BENCHMARK_HELP = (
    "Repeatable. An insightface PATH.bin (LFW, CFP-FP, AgeDB-30, CALFW, CPLFW); heldout:NAME:PAIRS or just "
    "mnist-5k-heldout / NAME[7-9] (PAIRS balanced pairs, default 3000, drawn with --seed from labelled data); "
    "pairs:NAME:SPLIT, a pair dataset folder or ORG/NAME (columns image_a, image_b, is_same; split test by default); "
    "ijbb:ROOT / ijbc:ROOT (IJB release folder). A Hub NAME takes a revision as NAME@REV. "
    "Default, for the embedded default MODEL only: mnist-5k-heldout (any other model must name its benchmarks)."
)
MODEL_HELP = "'default' (the embedded MNIST discriminator), a saved model folder, a Hub id, 'sface' or an .onnx file."
TTA_HELP = "Also embed each image's horizontal flip and use the normalised sum (2x the forward passes)."
ModelArg = Annotated[str, typer.Argument(help=MODEL_HELP)]


def eval_model(
    model: ModelArg,
    benchmark: Annotated[Optional[list[str]], typer.Option("--benchmark", "-b", help=BENCHMARK_HELP)] = None,
    revision: Annotated[Optional[str], typer.Option(help="Hub revision of MODEL (benchmarks take NAME@REV).")] = None,
    flip_tta: Annotated[bool, typer.Option("--flip-tta/--no-flip-tta", help=TTA_HELP)] = False,
    batch_size: BatchOpt = None,
    device: DeviceOpt = None,
    seed: SeedOpt = None,
    out: Annotated[str, typer.Option("--out", help="Folder for results.json, results.md, roc.png.")] = "eval-report",
    progress: ProgressOpt = True,
) -> None:
    """Evaluate MODEL: 10-fold accuracy, ROC AUC, EER and TAR@FAR 1e-6..1e-1 per benchmark (IJB: TAR@FAR of
    templates), with embeddings/s and the protocol's own time; writes the report to --out. The results go into the
    `model-index` of MODEL/README.md when MODEL is a folder trained by `scoremix-ds train` (else --out/README.md)."""
    from ..evaluation.model_index import record_results
    from ..evaluation.report import markdown_table, to_dict, write_report
    from ..evaluation.runner import evaluate
    from ..evaluation.specs import benchmarks_from
    from ..discriminators.loading import embed_images, load_discriminator

    batch_size = 256 if batch_size is None else batch_size
    if batch_size <= 0:
        raise ConfigError(f"--batch-size must be a positive count, got {batch_size}", hint="e.g. --batch-size 256")
    if Path(out).exists() and not Path(out).is_dir():
        raise ConfigError(f"--out '{out}' is a file", hint="pass a folder to --out")
    from ..core.validate import device_name

    device_name("--device", device, available=True)
    check_revision(model, revision)
    if not benchmark and not is_default_model(model):
        if not _may_exist(model):
            load_discriminator(model, revision, flag="model")  # its one line: no such model (nothing downloaded)
        raise ConfigError(f"eval {model} needs --benchmark: the default, {DEFAULT_BENCHMARKS[0]} (MNIST digits), "
                          "applies to the embedded default model only",
                          hint="e.g. --benchmark lfw.bin, --benchmark heldout:NAME:3000 or --benchmark pairs:ORG/NAME")
    benchmarks = benchmarks_from(benchmark or DEFAULT_BENCHMARKS, seed=0 if seed is None else seed)
    net = load_discriminator(model, revision, flag="model")  # the loader's errors name the MODEL argument
    embed_fn = functools.partial(embed_images, progress="embed" if progress else False)  # a bar with ETA
    result = evaluate(net, benchmarks, flip_tta=flip_tta, batch_size=batch_size, device=device or "auto",
                      model_name=model if revision is None else f"{model}@{revision}", embed_fn=embed_fn)
    paths = write_report(result, out)
    card = record_results(model, revision, to_dict(result), out)  # model-index: the model's card, or --out's
    if card is not None:
        paths["card"] = card
    typer.echo(markdown_table(result))
    typer.echo("\n".join(f"wrote {path}" for path in paths.values()))


def is_default_model(model: str) -> bool:
    """MODEL is the embedded default discriminator (by name or by its folder): the one the MNIST default benchmark
    describes."""
    from ..core.resources import default_model_dir

    if model == "default":
        return True
    try:
        return Path(model).expanduser().resolve() == default_model_dir("discriminator").resolve()
    except (OSError, ValueError):
        return False


def check_revision(model: str, revision: str | None) -> None:
    """``MODEL@REV`` and ``--revision`` may both be given only when they agree (the loader's own message would name
    a ``model_revision`` setting that eval does not have)."""
    from ..core.refs import split_revision

    name, own = split_revision(model, "MODEL")
    if own is not None and revision is not None and own != revision:
        raise ConfigError(f"MODEL '{model}' names revision {own} but --revision says {revision}",
                          hint=f"give the revision once: MODEL {name}@REVISION, or MODEL {name} with --revision")


def _may_exist(model: str) -> bool:
    """MODEL names something that can be loaded without asking a loader: an existing path, a Hub id or a name."""
    from ..core.refs import could_be_hub_id, split_revision

    return (Path(model).expanduser().exists() or could_be_hub_id(split_revision(model, "MODEL")[0])
            or model == "sface")
