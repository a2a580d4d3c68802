"""``flexibert train`` (fine-tune one card on one task) and ``flexibert pretrain`` (MLM seed models)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from flexibert._common import FlexiBertError, parse_yaml

DataOpt = typer.Option(None, "--data", "--data-dir",
                       help="GLUE TSV directory (<TASK>/train.tsv), save_to_disk directory or HF hub id.")
TokOpt = typer.Option(None, "--tokenizer",
                      help="vocab.txt, tokenizer directory or hub id (default: WordPiece trained on the text).")
ThreadsOpt = typer.Option(None, "--threads", help="torch threads (default: all cores).")
CacheOpt = typer.Option(None, "--cache-dir", help="Cache for trained tokenizers and token ids (default ~/.cache/flexibert).")


def _cards(card: list[str] | None, seed_models: list[str] | None, all_seeds: bool = False) -> list:
    from flexibert.cli.space import parse_card
    from flexibert.space.seeds import SEED_CARDS, seed_card

    cards = [parse_card(c) for c in card or []] + [seed_card(s) for s in seed_models or []]
    if all_seeds:
        cards += list(SEED_CARDS.values())
    if not cards:
        raise FlexiBertError("no model card given: use --card JSON, --seed-model NAME or --seeds")
    return cards


SetOpt = typer.Option(None, "--set", help="KEY=VALUE recipe override, repeatable (epochs=2, lr=1e-4, batch_size=16).")


def parse_task(text: str):
    """A GLUE task name, or a user task ``{name, train, dev, text_columns, label_column, labels | regression}``
    given inline (JSON/YAML) or as a .yaml/.json file, whose paths resolve against that file's folder."""
    import yaml

    from flexibert.train.user_task import UserTask

    path = Path(text)
    if path.suffix in {".json", ".yaml", ".yml"}:
        if not path.is_file():
            raise FlexiBertError(f"task file not found: {path}")
        raw, base = path.read_text(), path.resolve().parent
    elif text.lstrip().startswith("{"):
        raw, base = text, Path.cwd()
    else:
        return text
    try:
        mapping = parse_yaml(raw)
    except yaml.YAMLError as e:
        raise FlexiBertError(f"malformed task: {str(e).splitlines()[0]}") from None
    return UserTask.from_mapping(mapping, base)


def recipe(sets: list[str] | None) -> dict:
    """``--set KEY=VALUE`` pairs as overrides, each value read as YAML."""
    from flexibert.cli.search import parse_overrides

    return dict(parse_overrides(sets or []))


def train(
    task: str = typer.Option(..., "--task", help="GLUE task (sst2, qnli, ...), or a user task: inline "
                             "{name, train, dev, text_columns, label_column} or a .yaml/.json file."),
    workdir: Path = typer.Option(..., "--workdir", "-o", help="New directory for the checkpoint and result.json."),
    card: Optional[str] = typer.Option(None, "--card", help="Model card: inline JSON/YAML or a file."),
    seed_model: Optional[str] = typer.Option(None, "--seed-model",
                                             help="bert-tiny, bert-mini, bert-l2-h256 or bert-l4-h128."),
    data: Optional[str] = DataOpt,
    init: Optional[Path] = typer.Option(None, "--init", help="FlexiBERT checkpoint to start from (weight transfer)."),
    profile: str = typer.Option("quick", help="quick, pretrained or paper."),
    set_: Optional[List[str]] = SetOpt,
    max_train_samples: Optional[int] = typer.Option(None, help="Train on a seeded subset of this size."),
    subset: str = typer.Option("random", help="How that subset is drawn: random, or whole-first (whole texts "
                               "before the parts of others)."),
    tokenizer: Optional[str] = TokOpt,
    seed: int = typer.Option(42),
    threads: Optional[int] = ThreadsOpt,
    cache_dir: Optional[Path] = CacheOpt,
) -> None:
    """Fine-tune one model card on one task and evaluate it on the dev split."""
    from flexibert.train.profiles import get_profile
    from flexibert.train.trial import TrialSpec, train_trial
    from flexibert.train.user_task import resolve_task

    cards = _cards([card] if card else None, [seed_model] if seed_model else None)
    if len(cards) != 1:
        raise FlexiBertError("give exactly one of --card and --seed-model")
    the_task, source = resolve_task(parse_task(task), data)
    prof = get_profile(profile, max_train_samples=max_train_samples, **recipe(set_))
    spec = TrialSpec(cards[0], the_task, prof, init=init, data=source, tokenizer=tokenizer, seed=seed,
                     num_threads=threads, cache_dir=cache_dir, subset=subset)
    r = train_trial(spec, workdir)
    typer.echo(json.dumps({"task": r.task, "metrics": r.metrics, "score": r.score, "steps": r.steps,
                           "wall_s": round(r.wall_s, 1), "tokens_per_s": round(r.tokens_per_s),
                           "overlap": r.overlap, "checkpoint": r.checkpoint}))

def pretrain(
    out: Path = typer.Option(..., "--out", "-o", help="Directory for one checkpoint per card."),
    card: Optional[List[str]] = typer.Option(None, "--card", help="Model card (repeatable): inline JSON or a file."),
    seed_model: Optional[List[str]] = typer.Option(None, "--seed-model", help="A seed card by name (repeatable)."),
    seeds: bool = typer.Option(False, "--seeds", help="The study's four seed cards."),
    task: Optional[str] = typer.Option(None, "--task", help="Corpus: this GLUE task's training text."),
    data: Optional[str] = DataOpt,
    text_file: Optional[List[Path]] = typer.Option(None, "--text-file", help="Corpus: plain-text files, one text per line."),
    dataset: Optional[str] = typer.Option(None, help="Corpus: a HF dataset (hub id or save_to_disk directory)."),
    column: str = typer.Option("text", help="The dataset's text column."),
    tokenizer: Optional[str] = TokOpt,
    set_: Optional[List[str]] = typer.Option(None, "--set", help="KEY=VALUE MLM setting, repeatable "
                                              "(epochs=1, max_steps=500, lr=1e-3, batch_size=64, max_seq_len=64)."),
    seed: int = typer.Option(42),
    threads: Optional[int] = ThreadsOpt,
    cache_dir: Optional[Path] = CacheOpt,
) -> None:
    """MLM-pretrain cards on a corpus (a task's training text, text files or a dataset)."""
    from flexibert.train import pretrain as P
    from flexibert.train.data import as_source, train_texts
    from flexibert.train.tasks import get_task
    from flexibert.train.tokenization import resolve_tokenizer

    cards = _cards(card, seed_model, seeds)
    given = [x for x in (task, text_file, dataset) if x]
    if len(given) != 1:
        raise FlexiBertError("give exactly one corpus: --task, --text-file or --dataset")
    if task:
        corpus = train_texts(as_source(data), get_task(task))
    elif text_file:
        corpus = P.file_corpus(text_file)
    else:
        corpus = P.dataset_corpus(dataset, column)
    spec = resolve_tokenizer(tokenizer, corpus, cache_dir)
    from flexibert._common import build_config

    config = build_config(P.MlmConfig, recipe(set_), "--set")
    for r in P.pretrain(cards, corpus, spec, out, config, seed=seed, num_threads=threads):
        typer.echo(json.dumps({"checkpoint": r.checkpoint, "steps": r.steps, "wall_s": round(r.wall_s, 1),
                               "final_loss": r.curve[-1]["loss"] if r.curve else None}))


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("pretrain")(pretrain)
