"""The ``scoremix-ds`` Typer app: every command by its name, and the options every command takes.

Its own module so that :mod:`.boundary` can read the commands' flags (to name a library error's fields by them)
without importing the entry point that calls it.
"""

from __future__ import annotations

import typer

from . import analysis_cmd, build_cmd, eval_cmd, export_cmd, folder_cmd, hub_cmd, import_cmd, plan_cmd, reproduce_cmd, train_cmd
from .logsetup import setup_logging

app = typer.Typer(
    name="scoremix-ds",
    help="Build, version and share ScoreMix synthetic-identity datasets.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("build")(build_cmd.build)
app.command("plan")(plan_cmd.plan)
app.command("train")(train_cmd.train)
app.command("eval")(eval_cmd.eval_model)
app.command("train-generator")(train_cmd.train_generator)
app.command("train-discriminator")(train_cmd.train_discriminator)
app.command("status")(folder_cmd.status)
app.command("merge")(folder_cmd.merge)
app.command("export")(export_cmd.export)
app.command("export-discriminator")(export_cmd.export_discriminator)
app.command("push")(hub_cmd.push)
app.command("versions")(hub_cmd.versions)
app.command("align")(analysis_cmd.align)
app.command("audit")(analysis_cmd.audit)
app.command("reproduce")(reproduce_cmd.reproduce)
app.command("import-generator")(import_cmd.import_generator)



@app.callback()
def _options(
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="More log lines (-v: debug)."),
    quiet: int = typer.Option(0, "--quiet", "-q", count=True, help="Fewer log lines (-q: warnings only, -qq: errors)."),
) -> None:
    """Build, version and share ScoreMix synthetic-identity datasets."""
    setup_logging(verbose, quiet)
