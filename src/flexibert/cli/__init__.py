"""The ``flexibert`` command line: one typer app, one module per command group.

Every expected input problem surfaces as :class:`FlexiBertError`; ``main`` prints
it as one line and exits with code 2, never a traceback.
"""

from __future__ import annotations

import os
import sys

import click
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


#: Process-wide settings, made before any command imports torch: spinning OpenMP threads stall
#: 10-20x when processes share cores (measured on a 2-core machine), and the terminal keeps to
#: our own output, without load reports or download progress bars.
PROCESS_ENV = {"OMP_WAIT_POLICY": "PASSIVE", "TRANSFORMERS_VERBOSITY": "error", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}


def main(argv: list[str] | None = None) -> None:
    for key, value in PROCESS_ENV.items():
        os.environ.setdefault(key, value)
    try:
        rc = app(args=argv, standalone_mode=False)
    except FlexiBertError as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(2)
    except click.exceptions.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        typer.echo("aborted", err=True)
        sys.exit(130)
    sys.exit(rc if isinstance(rc, int) else 0)
