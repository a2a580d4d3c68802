"""The ``flexibert`` command line: one typer app, one module per command group.

Every expected input problem surfaces as :class:`FlexiBertError`, and every usage error
(unknown command or option, missing or malformed value) as typer's exception; ``main``
prints either as one line and exits with code 2, never a traceback. typer >= 0.29 raises
its *vendored* click's exceptions, which all derive from ``typer.TyperException`` and not
from the ``click`` package's classes, so that is the class caught here.
"""

from __future__ import annotations

import os
import sys

import typer

from flexibert._common import FlexiBertError

app = typer.Typer(
    name="flexibert",
    help="Explore the design space of heterogeneous BERT-style encoders.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _register() -> None:
    from flexibert.cli import model, run, search, space, train

    for group in (space, model, train, search, run):
        group.register(app)


_register()


#: Process-wide settings for the workers a command starts: passive OpenMP waiting (``import flexibert``
#: sets it for this process, before torch loads), and a terminal that keeps to our own output, without
#: load reports or download progress bars.
PROCESS_ENV = {"OMP_WAIT_POLICY": "PASSIVE", "TRANSFORMERS_VERBOSITY": "error", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}


def main(argv: list[str] | None = None) -> None:
    for key, value in PROCESS_ENV.items():  # this process's transformers reads them when it loads, workers inherit them
        os.environ.setdefault(key, value)
    _quiet_transformers()
    try:
        rc = app(args=argv, standalone_mode=False)
    except FlexiBertError as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(2)
    except typer.TyperException as e:
        sys.exit(_usage_error(e))
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("aborted", err=True)
        sys.exit(130)
    sys.exit(rc if isinstance(rc, int) else 0)


def _quiet_transformers() -> None:
    """Quiet a ``transformers`` a caller loaded already: the environment acts only on a later load.

    Importing it here instead would cost every command, ``--help`` included, the torch start-up.
    """
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()


def _usage_error(e: typer.TyperException) -> int:
    """Print one line naming the problem and the help to read; the exit code (0 for a bare group)."""
    ctx = getattr(e, "ctx", None)
    command = ctx.command_path if ctx is not None else app.info.name
    if type(e).__name__ == "NoArgsIsHelpError":  # a group called without a command: show its help
        typer.echo(ctx.get_help() if ctx is not None else e.format_message())
        return 0
    message = " ".join(e.format_message().split())
    typer.echo(f"error: {message} (see '{command} --help')", err=True)
    return 2
