"""``flexibert train`` (fine-tune one card on one task) and ``flexibert pretrain`` (MLM seed models)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from flexibert._common import FlexiBertError

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


TrainFileOpt = typer.Option(None, "--train-file", help="Custom task: training CSV/TSV/JSONL.")
DevFileOpt = typer.Option(None, "--dev-file", help="Custom task: dev CSV/TSV/JSONL.")
TextColumnsOpt = typer.Option("text", "--text-columns", help="Custom task: one or two text columns, comma-separated.")
LabelColumnOpt = typer.Option("label", "--label-column", help="Custom task: the label column.")
LabelsOpt = typer.Option(None, "--labels", help="Custom task: labels, comma-separated (default: the train file's).")
RegressionOpt = typer.Option(False, "--regression", help="Custom task: the label is a number.")


def user_task(task: str, train_file: Path | None, dev_file: Path | None, text_columns: str, label_column: str,
              labels: str | None, regression: bool, holdout: int | None = None):
    """The custom task the flags describe, its files checked (with ``holdout``), or None when no file
    is given (a GLUE task)."""
    from flexibert.train.user_task import UserTask

    if train_file is None and dev_file is None:
        return None
    if train_file is None or dev_file is None:
        raise FlexiBertError("a custom task needs both --train-file and --dev-file")
    user = UserTask(task, str(train_file.resolve()), str(dev_file.resolve()),
                    tuple(c.strip() for c in text_columns.split(",") if c.strip()), label_column,
                    tuple(x.strip() for x in labels.split(",")) if labels else None, regression)
    user.check(holdout)
    return user


def _task_and_data(task: str, data: str | None, train_file: Path | None, dev_file: Path | None,
                   text_columns: str, label_column: str, labels: str | None, regression: bool):
    """A GLUE task with its source, or a custom task over the user's files."""
    from flexibert.train.data import as_source
    from flexibert.train.tasks import get_task

    user = user_task(task, train_file, dev_file, text_columns, label_column, labels, regression)
    return (user.task(), user.source()) if user else (get_task(task), as_source(data))


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train(
        task: str = typer.Option(..., "--task", help="GLUE task (sst2, qnli, ...) or a name for --train-file data."),
        workdir: Path = typer.Option(..., "--workdir", "-o", help="New directory for the checkpoint and result.json."),
        card: Optional[str] = typer.Option(None, "--card", help="Model card: inline JSON/YAML or a file."),
        seed_model: Optional[str] = typer.Option(None, "--seed-model",
                                                 help="bert-tiny, bert-mini, bert-l2-h256 or bert-l4-h128."),
        data: Optional[str] = DataOpt,
        train_file: Optional[Path] = TrainFileOpt,
        dev_file: Optional[Path] = DevFileOpt,
        text_columns: str = TextColumnsOpt,
        label_column: str = LabelColumnOpt,
        labels: Optional[str] = LabelsOpt,
        regression: bool = RegressionOpt,
        init: Optional[Path] = typer.Option(None, "--init", help="FlexiBERT checkpoint to start from (weight transfer)."),
        profile: str = typer.Option("quick", help="quick or paper."),
        max_train_samples: Optional[int] = typer.Option(None, help="Train on a seeded subset of this size."),
        epochs: Optional[float] = typer.Option(None),
        lr: Optional[float] = typer.Option(None),
        batch_size: Optional[int] = typer.Option(None),
        max_seq_len: Optional[int] = typer.Option(None),
        tokenizer: Optional[str] = TokOpt,
        seed: int = typer.Option(42),
        threads: Optional[int] = ThreadsOpt,
        cache_dir: Optional[Path] = CacheOpt,
    ) -> None:
        """Fine-tune one model card on one task and evaluate it on the dev split."""
        from flexibert.train.profiles import get_profile
        from flexibert.train.trial import TrialSpec, train_trial

        cards = _cards([card] if card else None, [seed_model] if seed_model else None)
        if len(cards) != 1:
            raise FlexiBertError("give exactly one of --card and --seed-model")
        the_task, source = _task_and_data(task, data, train_file, dev_file, text_columns, label_column, labels,
                                          regression)
        prof = get_profile(profile, max_train_samples=max_train_samples, epochs=epochs, lr=lr,
                           batch_size=batch_size, max_seq_len=max_seq_len)
        spec = TrialSpec(cards[0], the_task, prof, init=init, data=source, tokenizer=tokenizer, seed=seed,
                         num_threads=threads, cache_dir=cache_dir)
        r = train_trial(spec, workdir)
        typer.echo(json.dumps({"task": r.task, "metrics": r.metrics, "score": r.score, "steps": r.steps,
                               "wall_s": round(r.wall_s, 1), "tokens_per_s": round(r.tokens_per_s),
                               "overlap": r.overlap, "checkpoint": r.checkpoint}))

    @app.command("pretrain")
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
        epochs: float = typer.Option(1.0),
        max_steps: Optional[int] = typer.Option(None),
        lr: float = typer.Option(1e-3),
        batch_size: int = typer.Option(64),
        max_seq_len: int = typer.Option(64),
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
        config = P.MlmConfig(max_seq_len=max_seq_len, batch_size=batch_size, lr=lr, epochs=epochs, max_steps=max_steps)
        for r in P.pretrain(cards, corpus, spec, out, config, seed=seed, num_threads=threads):
            typer.echo(json.dumps({"checkpoint": r.checkpoint, "steps": r.steps, "wall_s": round(r.wall_s, 1),
                                   "final_loss": r.curve[-1]["loss"] if r.curve else None}))
