"""The main job, ``flexibert run``: import -> space -> tokenizer -> data -> seeds -> latency -> budget -> search ->
baseline -> confirm -> report, resumable by stage (:mod:`flexibert.run.stages`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from flexibert._common import FlexiBertError
from flexibert.run.config import RunConfig
from flexibert.run.confirm import confirm_stage
from flexibert.run.stages import Quiet, Reporter, Run, open_run, run_stages, spent


def import_stage(run: Run) -> dict[str, str]:
    """Card key -> checkpoint of each seed imported from a BERT-family checkpoint (import-bert only), first of
    all: a seed outside the space fails before anything is built. Each seed's card comes from its config."""
    from flexibert.model.checkpoint import load_config
    from flexibert.model.import_bert import import_bert

    c = run.config
    if c.seeds.route != "import-bert":
        return {}
    space = c.design_space
    paths: dict[str, str] = {}
    items = list(c.seeds.checkpoints.items())
    for i, (name, src) in enumerate(items):
        run.reporter.stage("importing seeds", i, len(items))
        target = run.dir / "seeds" / name
        if not (target / "config.json").exists():
            run.reporter.log(f"importing seed {name} from {src} ({c.run_positions} positions)")
            import_bert(src, target, position_embedding_type=c.run_positions, pooling=c.training.pooling)
        card = load_config(target).card
        try:
            space.validate(card)
        except FlexiBertError as e:
            raise FlexiBertError(f"seed {name} ({src}) is outside the space {c.space.file}: {e}") from None
        paths[card.key] = str(target.resolve())
    run.reporter.stage("importing seeds", len(items), len(items))
    return paths


def space_stage(run: Run) -> str:
    """The space library: graphs, WL kernel, Transformer2vec embedding and neighbours (reused when built)."""
    from flexibert.space.library import BuildParams, build_space

    c = run.config.space
    lib = build_space(run.config.design_space, run.dir / "space", BuildParams(dims=c.dims, k=c.k, sweep=tuple(c.sweep)))
    run.reporter.log(f"space: {lib.manifest['count']:,} models, m={c.dims}, "
                     f"|D - D_hat|_F = {lib.manifest.get('frobenius_error', float('nan')):.2f}")
    return str(lib.root.resolve())


def tokenizer_stage(run: Run) -> str:
    """The run's one tokenizer: the imported seeds' own, the embedding donor's, the configured one, or a
    WordPiece trained on the task's text."""
    from flexibert.train.data import train_texts
    from flexibert.train.tokenization import resolve_tokenizer

    c = run.config
    if c.tokenizer is None and c.seeds.route == "import-bert":
        return next(iter(run.done["import"].values()))
    if c.tokenizer is None and c.seeds.embeddings:
        from flexibert.model.import_bert import resolve_source

        return str(resolve_source(c.seeds.embeddings))  # rows of its embedding table are its token ids
    task, source = c.task_and_source
    return resolve_tokenizer(c.tokenizer, None if c.tokenizer else train_texts(source, task), run.dir / "tokenizer")


def data_stage(run: Run) -> dict[str, Any]:
    """What the data decides: the holdout (sized to the training split, and what drawing it leak-free drops),
    what dev shares with train, the sequence length (the texts' own 95th percentile, capped by the model's
    positions) and the vocabulary's size."""
    from flexibert.model.cost import ArchDims
    from flexibert.train.data import load_split
    from flexibert.train.encoding_cache import HOLDOUT_SEED
    from flexibert.train.holdout import plan_holdout, split_overlap
    from flexibert.train.lengths import data_seq_len
    from flexibert.train.tokenization import load_tokenizer

    c = run.config
    task, source = c.task_and_source
    tokenizer = load_tokenizer(run.done["tokenizer"])
    train = load_split(source, task, "train")
    holdout = c.holdout_size(len(train))
    if not 0 < holdout < len(train):
        raise FlexiBertError(f"a validation holdout of {holdout} needs more than {holdout} training examples; "
                             f"the task has {len(train)}")
    rows = list(zip(*train.texts))
    plan = plan_holdout(rows, holdout, HOLDOUT_SEED, c.training.holdout_split)
    overlap = {s: split_overlap(rows, list(zip(*load_split(source, task, s).texts))) for s in task.dev_splits}
    max_len = c.training.max_seq_len or data_seq_len(task, source, tokenizer, cap=ArchDims.max_position_embeddings)
    split = {"method": c.training.holdout_split, **plan.describe(), "dev_overlap": overlap}
    run.reporter.log(f"data: {len(train):,} training examples, {holdout:,} held out for validation "
                     f"({c.training.holdout_split}; {len(plan.dropped):,} sharing their text dropped), "
                     f"sequences of up to {max_len} tokens")
    for s, o in overlap.items():
        run.reporter.log(f"{s}: {o['exact']} of {o['dev']} duplicate a training example, {o['inside_train']} are "
                         f"inside one, {o['contains_train_half']} contain one at least half their length")
    return {"num_train": len(train), "holdout": holdout, "split": split, "max_seq_len": max_len,
            "vocab_size": len(tokenizer)}


def seeds_stage(run: Run) -> dict[str, str]:
    """Card key -> checkpoint of each seed: the imported ones, or the study's seed shapes in the space,
    MLM-pretrained on the task's text (mlm) or fresh but for word embeddings from ``seeds.embeddings``."""
    from flexibert.space.seeds import SEED_CARDS, card_name
    from flexibert.train.data import train_texts
    from flexibert.train.pretrain import MlmConfig, embedding_seeds, pretrain

    c, log = run.config, run.reporter.log
    if c.seeds.route == "import-bert":
        return run.done["import"]
    if c.seeds.route == "scratch" and not c.seeds.embeddings:
        return {}
    embeddings = None
    if c.seeds.embeddings:
        from flexibert.model.import_bert import resolve_source

        embeddings = resolve_source(c.seeds.embeddings)
    cards = [card for card in SEED_CARDS.values() if card in c.design_space]
    out, tokenizer = run.dir / "seeds", run.done["tokenizer"]
    todo = [card for card in cards if not (out / card_name(card) / "config.json").exists()]
    if todo and c.seeds.route == "scratch":
        log(f"seeding {len(todo)} model(s) with word embeddings from {c.seeds.embeddings}")
        embedding_seeds(todo, tokenizer, out, embeddings, c.run_positions, seed=c.seed)
    elif todo:
        task, source = c.task_and_source
        corpus = list(dict.fromkeys(train_texts(source, task)))[: c.seeds.max_samples or None]
        log(f"MLM-pretraining {len(todo)} seed model(s) on {len(corpus):,} sentences")
        mlm = MlmConfig(max_seq_len=c.seeds.max_seq_len, epochs=c.seeds.epochs, positions=c.run_positions)
        for i, card in enumerate(todo):  # one at a time: the bar moves, and a kill keeps the seeds done
            run.reporter.stage("MLM seeds", i, len(todo))
            pretrain([card], corpus, tokenizer, out, mlm, seed=c.seed, embeddings=embeddings)
        run.reporter.stage("MLM seeds", len(todo), len(todo))
    return {card.key: str((out / card_name(card)).resolve()) for card in cards}


def latency_stage(run: Run) -> str:
    """Measure latency for a sample of the space's cards on this machine and fit a model for the rest."""
    from flexibert.model.cost import ArchDims
    from flexibert.model.latency import LatencySetup, calibrate
    from flexibert.space.library import SpaceLibrary

    c = run.config
    path = run.dir / "latency.json"
    dims = ArchDims(vocab_size=run.done["data"]["vocab_size"], position_embedding_type=c.run_positions)
    run.reporter.stage("latency", 0, 1)
    model = calibrate(SpaceLibrary.open(run.done["space"]).cards, c.latency.sample,
                      LatencySetup(threads=run.threads(), dims=dims), seed=c.seed)
    model.save(path)
    run.reporter.stage("latency", 1, 1)
    err = model.held_out_error_
    run.reporter.log(f"latency: {c.latency.sample} cards measured; held-out relative error median {err.median:.1%}, "
                     f"max {err.max:.1%}")
    return str(path.resolve())


def budget_stage(run: Run) -> dict[str, Any]:
    """The run's budget in absolute terms: a latency ratio becomes milliseconds of the imported seed's own latency,
    measured on this machine at batch 1 (of the slowest seed, where several are imported)."""
    from flexibert.model.latency import checkpoint_latency

    budget = run.config.budget
    if budget.max_latency_ratio is None:
        return budget.to_dict()
    seed_ms = max(checkpoint_latency(path, run.threads(), batches=(1,))["batch_1"]
                  for path in run.done["seeds"].values())
    resolved = budget.resolved(seed_ms)
    run.reporter.log(f"budget: latency at most {resolved.max_latency_ms:.2f} ms (batch 1, sequence 128), "
                     f"{budget.max_latency_ratio:g}x the seed's measured {seed_ms:.2f} ms")
    return resolved.to_dict()


def search_stage(run: Run) -> dict[str, Any]:
    """Asynchronous active learning; a search killed half-way resumes from its database."""
    from flexibert.search.backends import TrialResources
    from flexibert.search.loop import run_search
    from flexibert.search.results import RunResults, record_outcome
    from flexibert.search.store import DB_NAME

    c = run.config.search
    resume = (run.search_dir / DB_NAME).exists()
    run.reporter.log(("resuming" if resume else "starting") + f" the search in {run.search_dir}")
    state = run_search(run.search_dir, None if resume else run.search_config(), resume=resume, workers=c.workers,
                       backend=c.backend, address=c.address, time_budget=c.time_budget_s,
                       on_progress=run.reporter.search, resources=TrialResources(c.cpus_per_trial, c.gpus_per_trial))
    if state.done == 0:
        failure = RunResults(run.dir).first_failure
        raise FlexiBertError(f"every trial failed; the first: {failure}" if failure else "no trial finished")
    if run.done["data"].get("split"):  # a run of schema 1 did not record it
        record_outcome(run.dir, data=run.done["data"]["split"])
    return {"reason": state.reason, "done": state.done}


def baseline_stage(run: Run) -> dict[str, Any] | None:
    """TF-IDF + logistic regression on the trials' own training part, scored on the same validation and dev."""
    from flexibert.search.results import record_outcome
    from flexibert.train.baseline import tfidf_baseline
    from flexibert.train.holdout import Holdout

    c = run.config
    if not c.confirm.baseline:
        return None
    task, source = c.task_and_source
    base = tfidf_baseline(task, source, Holdout(run.done["data"]["holdout"], c.training.holdout_split), seed=c.seed,
                          max_train_samples=c.confirm.max_train_samples, refit=c.confirm.refit,
                          subset=c.training.subset)
    run.reporter.log(f"baseline ({base['name']}): validation {base['validation']:.4f}, dev {base['dev']:.4f}")
    record_outcome(run.dir, baseline=base)
    return base


def report_stage(run: Run) -> str:
    from flexibert.report.run import write_run_report

    return str(write_run_report(run.dir).html)


STAGES = [("import", import_stage), ("space", space_stage), ("tokenizer", tokenizer_stage), ("data", data_stage),
          ("seeds", seeds_stage), ("latency", latency_stage),
          ("budget", budget_stage), ("search", search_stage), ("baseline", baseline_stage),
          ("confirm", confirm_stage), ("report", report_stage)]


def run_job(config_path: str | Path, out: str | Path | None = None, data_dir: str | Path | None = None,
            reporter: Reporter | None = None) -> dict[str, Any]:
    """Run (or resume) the main job; returns the summary that ``flexibert run`` prints as JSON."""
    from flexibert.search.results import RunResults

    t0 = time.perf_counter()
    config = RunConfig.from_yaml(config_path, data_dir)
    run = open_run(config, Path(out or Path("runs") / config.name), reporter or Quiet())
    run_stages(run, STAGES)
    results, wall = RunResults(run.dir), round(time.perf_counter() - t0, 1)
    cost = _cost(results, spent(run.dir), [name for name, _ in STAGES])
    return {**results.summary(), "wall_s": wall, "cost": cost, "report_html": run.done["report"]}


def _cost(results, ledger: dict[str, float], stages: list[str]) -> dict[str, Any] | None:
    """The whole run's time, every invocation summed, as a multiple of the reference's own confirmation (all its
    training seeds; its refit on the whole split when refitted), measured in the same run: a figure that holds on
    any machine. A run begun before stages were timed has no whole-run time, so no multiple."""
    runs = (results.reference or {}).get("runs") or []
    if not runs or not all(r.get("wall_s") for r in runs):
        return None
    fit = sum(r["wall_s"] for r in runs)
    total = round(sum(ledger.values()), 1) if all(name in ledger for name in stages) else None
    return {"reference_confirm_s": round(fit, 1), "run_s": total,
            "multiple": None if total is None else round(total / fit, 2)}
