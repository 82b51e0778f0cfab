"""The ``scoremix-ds`` command line: a thin Typer layer over the library.

Each command parses flags, builds ONE typed config (recipe values overridden by the flags given), calls one library
function and prints its summary. Errors from the library become one line on stderr plus a hint, exit code 2;
``SCOREMIX_DEBUG=1`` shows the traceback.
"""

from __future__ import annotations

import os
import sys

import typer

from ..core.errors import ScoreMixError
from ..core.processes import set_argv
from . import analysis_cmd, boundary, build_cmd, eval_cmd, export_cmd, folder_cmd, hub_cmd, plan_cmd, reproduce_cmd, train_cmd
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


# What a Ctrl-C leaves behind, for the commands that keep partial work; any other command says only "interrupted".
INTERRUPTED = {
    "build": "interrupted; completed shards are kept and a re-run resumes",
    "reproduce": "interrupted; finished stages are kept and a re-run continues",
}


def interrupted_line(argv: list[str]) -> str:
    """The Ctrl-C line for the command ``argv`` runs (its first word that is not an option)."""
    command = next((a for a in argv if not a.startswith("-")), "")
    return INTERRUPTED.get(command, "interrupted")


@app.callback()
def _options(
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="More log lines (-v: debug)."),
    quiet: int = typer.Option(0, "--quiet", "-q", count=True, help="Fewer log lines (-q: warnings only, -qq: errors)."),
) -> None:
    """Build, version and share ScoreMix synthetic-identity datasets."""
    setup_logging(verbose, quiet)


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point."""
    argv = list(sys.argv[1:] if argv is None else argv)
    set_argv(argv)
    setup_logging()
    try:
        # Typer's non-standalone mode RETURNS the code of typer.Exit, and turns Ctrl-C into Exit(130).
        code = app(args=argv, standalone_mode=False)
    except KeyboardInterrupt:
        typer.echo(interrupted_line(argv), err=True)
        return 130
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        return 1
    except Exception as exc:  # noqa: BLE001 - the one boundary: user errors become one line, bugs keep a traceback
        # usage errors (Typer raises its own bundled copy of click's exception classes)
        if callable(getattr(exc, "show", None)) and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()
            return exc.exit_code
        error = boundary.as_user_error(exc, argv)
        if os.environ.get("SCOREMIX_DEBUG") or error is None:
            typer.echo(boundary.format_traceback(exc, argv).rstrip(), err=True)  # tokens redacted
            if error is None:
                typer.echo("error: unexpected failure (a bug in scoremix-ds, please report it with the traceback above)",
                           err=True)
                return 1
        typer.echo(boundary.error_line(error, argv), err=True)  # fields named by this command's flags
        return error.exit_code
    if code == 130:
        typer.echo(interrupted_line(argv), err=True)
    return code if isinstance(code, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
