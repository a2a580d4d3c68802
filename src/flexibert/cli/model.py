"""``flexibert import-bert``: turn a Hugging Face BERT checkpoint into a FlexiBERT checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def import_bert(
    source: str = typer.Argument(
        ..., metavar="PATH_OR_HUB_ID", help="Local BERT checkpoint directory or hub id (safetensors weights)."
    ),
    out: Path = typer.Option(
        ..., "--out", help="New directory for the FlexiBERT checkpoint (must not exist or be empty)."
    ),
    positions: str = typer.Option(
        "absolute", "--positions", help="absolute (exact parity with the BERT) or relative_key (new, untrained tables)."
    ),
    head: str = typer.Option("auto", "--head", help="auto, base, sequence-classification or masked-lm."),
    pooling: Optional[str] = typer.Option(None, "--pooling",
                                help="cls or mean (default: the checkpoint's own; mean for sentence-transformers)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="List every mapped tensor too."),
) -> None:
    """Convert a BERT checkpoint and print which tensors mapped and which have no counterpart."""
    from flexibert.model.import_bert import import_bert as convert

    report = convert(source, out, head=head, position_embedding_type=positions, pooling=pooling)
    typer.echo(f"wrote {report.model_class} {report.card} to {report.out_dir} ({report.pooling} pooling)")
    typer.echo(f"mapped: {len(report.mapped)} tensors")
    if verbose:
        for src, dst in report.mapped:
            typer.echo(f"  {src} -> {dst}")
    typer.echo(f"unmapped BERT tensors (dropped): {len(report.unmapped_source)}")
    for name in report.unmapped_source:
        typer.echo(f"  {name}")
    typer.echo(f"unmapped FlexiBERT tensors (left at initialisation): {len(report.unmapped_target)}")
    for name in report.unmapped_target:
        typer.echo(f"  {name}")


def register(app: typer.Typer) -> None:
    app.command("import-bert")(import_bert)
