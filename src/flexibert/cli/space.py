"""``flexibert space count|show|build``: inspect and build a design space library."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from flexibert._common import FlexiBertError, parse_yaml

DEFAULT_SPACE = Path("configs/spaces/flexibert-small.yaml")
console = Console()

space_app = typer.Typer(help="Count, show and build design spaces.", no_args_is_help=True)

SpaceOpt = typer.Option(DEFAULT_SPACE, "--space", help="Design-space YAML file.")
RuleOpt = typer.Option("monotone", "--rule", help="monotone (the study's: non-decreasing per-layer lists) or full.")


def _load(space: Path, rule: str):
    from flexibert.space.design_space import DesignSpace

    return DesignSpace.from_yaml(space, rule=rule)


def parse_card(text: str):
    """A card from inline JSON or a JSON/YAML file path."""
    import yaml

    from flexibert.space.design_space import ModelCard

    path = Path(text)
    try:
        raw = path.read_text() if path.suffix in {".json", ".yaml", ".yml"} else text
    except FileNotFoundError:
        raise FlexiBertError(f"model card file not found: {path}") from None
    try:
        data = parse_yaml(raw)
    except yaml.YAMLError as e:
        raise FlexiBertError(f"malformed model card: {str(e).splitlines()[0]}") from None
    return ModelCard.from_dict(data)


@space_app.command("count")
def count(space: Path = SpaceOpt, rule: str = RuleOpt) -> None:
    """Exact number of models, per layer count (no enumeration)."""
    ds = _load(space, rule)
    for layers in ds.layers:
        console.print(f"l={layers}: {ds.count(layers):,}")
    console.print(f"total: {ds.count():,}")


@space_app.command("show")
def show(
    space: Path = SpaceOpt,
    rule: str = RuleOpt,
    card: Optional[str] = typer.Option(None, "--card", help="A card (inline JSON or a file) to check and describe."),
    first: int = typer.Option(5, help="How many cards to list."),
) -> None:
    """The space's values and counts, a few cards, or one card's hash, size and cost."""
    from flexibert.model.cost import flops, param_count
    from flexibert.space.graphs import fingerprint

    ds = _load(space, rule)
    if card is not None:
        c = ds.validate(parse_card(card))
        console.print(f"card: {json.dumps(c.to_dict())}")
        console.print(f"hash: {fingerprint(c)}")
        console.print(f"parameters (embeddings + encoder): {param_count(c):,}")
        console.print(f"forward GFLOPs at sequence 128: {flops(c, 128) / 1e9:.3f}")
        return
    table = Table(title=f"{ds.name} ({ds.rule} rule): {ds.count():,} models")
    table.add_column("dimension")
    table.add_column("values")
    for key in ("layers", "heads", "hidden", "feed_forward", "similarity"):
        table.add_row(key, ", ".join(map(str, getattr(ds, key))))
    console.print(table)
    for i, c in enumerate(ds):
        if i >= first:
            break
        console.print(f"{i}: {json.dumps(c.to_dict())}  {fingerprint(c)}")


@space_app.command("build")
def build(
    space: Path = SpaceOpt,
    rule: str = RuleOpt,
    out: Path = typer.Option(Path("runs/spaces"), help="Base directory for space libraries."),
    dims: int = typer.Option(8, help="Embedding dimension m."),
    k: int = typer.Option(10, help="Neighbours per model."),
    seed: int = typer.Option(0, help="MDS seed."),
) -> None:
    """Enumerate, fingerprint, kernel, embed (Transformer2vec) and index a space; reuses a finished build."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from flexibert.space.library import BuildParams, build_space

    ds = _load(space, rule)
    params = BuildParams(dims=dims, k=k, seed=seed)
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(), console=console, transient=False,
    ) as progress:
        tasks: dict[str, int] = {}

        def stage(name: str, done: int, total: int) -> None:
            if name not in tasks:
                tasks[name] = progress.add_task(name, total=total)
            progress.update(tasks[name], completed=done, total=total)

        lib = build_space(ds, out, params, stage=stage)
    m = lib.manifest
    console.print(f"library: {lib.root}")
    console.print(f"models: {m['count']:,}  unique hashes: {m['unique_hashes']:,}  duplicates: {m['duplicates']}")
    if m.get("sweep"):
        console.print("Frobenius error |D - D_hat|_F by dimension: " + ", ".join(
            f"m={k_}: {v:.2f}" for k_, v in m["sweep"].items()))
    if "sample_rel_error" in m:
        console.print(f"relative error on sampled pairs: {m['sample_rel_error']:.4f}")


def register(app: typer.Typer) -> None:
    app.add_typer(space_app, name="space")
