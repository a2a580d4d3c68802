"""The main job: space -> embeddings -> tokenizer -> seeds -> active learning -> report, resumable by stage.

One YAML file configures a run (see ``configs/quickstart.yaml``). Each finished
stage is recorded in ``<run>/stages.json`` (written atomically), so rerunning the
same command after an interruption skips what is done; the search stage resumes
its own database, and seed pretraining skips seeds already saved.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from flexibert._common import FlexiBertError, build_config, read_yaml, write_json

if TYPE_CHECKING:
    from flexibert.search.config import SearchConfig

Log = Callable[[str], None]
SEED_ROUTES = ("mlm", "import-bert", "scratch")


@dataclass(frozen=True)
class SpaceSection:
    file: str = "configs/spaces/flexibert-small.yaml"
    rule: str = "monotone"
    dims: int = 8
    k: int = 10
    sweep: tuple[int, ...] = (2, 4, 8, 12)


@dataclass(frozen=True)
class SeedSection:
    route: str = "mlm"  # mlm: own MLM pretraining; import-bert: converted HF BERT checkpoints; scratch
    epochs: float = 1.0  # mlm
    max_samples: int | None = None  # mlm: sentences of the corpus used
    max_seq_len: int = 64  # mlm
    checkpoints: dict[str, str] = field(default_factory=dict)  # import-bert: seed name -> HF BERT dir or hub id
    # mlm, scratch: a BERT-family checkpoint (dir, hub id or package:NAME/dir) whose word embeddings, projected to
    # each seed's width, start the seeds; the run then uses its tokenizer
    embeddings: str | None = None


@dataclass(frozen=True)
class TrainingSection:
    profile: str = "quick"
    max_train_samples: int | None = None  # the search's proxy fidelity: a fixed subset of the training split
    holdout: int | None = None  # validation examples carved from train (None: a tenth of it, at most 1,000)
    pooling: str | None = None  # what classifiers read, cls or mean (None: the seeds' own; cls for MLM seeds)


@dataclass(frozen=True)
class SearchSection:
    acquisition: str = "ucb"
    workers: int = 2
    backend: str = "local"
    address: str | None = None
    budget: int = 12  # trials, seeds included
    time_budget_s: float | None = None
    cpus_per_trial: int | None = None  # default: this machine's cores split between the workers
    gpus_per_trial: float = 0


@dataclass(frozen=True)
class BudgetSection:
    """What the user can afford: candidates over any limit are never trained (seeds excepted)."""

    max_params: int | None = None
    max_flops: int | None = None  # forward FLOPs at sequence 128
    max_latency_ms: float | None = None  # batch 1, sequence 128, on this machine


@dataclass(frozen=True)
class LatencySection:
    """Latency is measured on this machine for ``sample`` cards and predicted for the rest."""

    sample: int = 12
    threads: int | None = None  # default: the search's CPUs per trial, else this machine's cores


@dataclass(frozen=True)
class ConfirmSection:
    """The top ``k`` models by proxy score are retrained from their initial weights on the whole training
    split (less the holdout) with the profile's epochs; the winner is chosen on validation."""

    k: int = 3
    max_train_samples: int | None = None  # None: the whole training split (full fidelity)


@dataclass(frozen=True)
class RunConfig:
    """A whole run. ``data`` is a GLUE-layout directory, a HF dataset spec, or null (``--data-dir``).

    ``task`` is a GLUE name or a user task ``{name, train, dev, text_columns, label_column, labels |
    regression}`` over CSV/TSV/JSONL files, its paths relative to the config file's folder.
    ``positions`` is the run's one position scheme (null: the seeds' own for import-bert, else relative_key).
    """

    name: str
    task: str | dict[str, Any]
    data: str | None = None
    tokenizer: str | None = None
    seed: int = 42
    positions: str | None = None
    space: SpaceSection = SpaceSection()
    seeds: SeedSection = SeedSection()
    training: TrainingSection = TrainingSection()
    search: SearchSection = SearchSection()
    budget: BudgetSection = BudgetSection()
    latency: LatencySection = LatencySection()
    confirm: ConfirmSection = ConfirmSection()

    @property
    def task_name(self) -> str:
        return self.task["name"] if isinstance(self.task, dict) else self.task

    def user_task(self):
        """The user task the config names, or None for a GLUE task."""
        from flexibert.train.user_task import UserTask

        return UserTask(**self.task) if isinstance(self.task, dict) else None

    def task_and_source(self):
        """``(Task, DataSource)`` of the run: the user's files, or a GLUE task on ``data``."""
        from flexibert.train.data import as_source
        from flexibert.train.tasks import get_task

        user = self.user_task()
        return (user.task(), user.source()) if user else (get_task(self.task), as_source(self.data))

    @property
    def run_positions(self) -> str:
        return self.positions or ("absolute" if self.seeds.route == "import-bert" else "relative_key")

    @classmethod
    def from_yaml(cls, path: str | Path, data_dir: str | Path | None = None) -> "RunConfig":
        raw = read_yaml(path, f"run config not found: {path}")
        if not isinstance(raw, dict):
            raise FlexiBertError(f"run config {path} must be a mapping")
        sections = {"space": SpaceSection, "seeds": SeedSection, "training": TrainingSection, "search": SearchSection,
                    "budget": BudgetSection, "latency": LatencySection, "confirm": ConfirmSection}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise FlexiBertError(f"run config {path}: unknown key(s) {unknown}; expected {sorted(known)}")
        for key in ("name", "task"):
            if not raw.get(key):
                raise FlexiBertError(f"run config {path}: '{key}' is required")
        values = {k: (build_config(sections[k], v, f"'{k}'") if k in sections else v) for k, v in raw.items()}
        if data_dir is not None:
            values["data"] = str(data_dir)
        if not isinstance(values["task"], str):
            from flexibert.train.user_task import UserTask

            holdout = values.get("training", TrainingSection()).holdout  # checked against the file now, not in a worker
            values["task"] = UserTask.from_mapping(values["task"], Path(path).parent, holdout=holdout).to_dict()
        config = cls(**values)
        if config.positions not in (None, "absolute", "relative_key"):
            raise FlexiBertError(f"run config: positions {config.positions!r} is not absolute or relative_key")
        if config.training.pooling not in (None, "cls", "mean"):
            raise FlexiBertError(f"run config: training.pooling {config.training.pooling!r} is not cls or mean")
        if config.confirm.k < 0:
            raise FlexiBertError(f"run config: confirm.k must be >= 0, got {config.confirm.k}")
        if config.seeds.route not in SEED_ROUTES:
            raise FlexiBertError(f"run config: seeds.route {config.seeds.route!r} is not one of {list(SEED_ROUTES)}")
        if config.seeds.embeddings and config.seeds.route == "import-bert":
            raise FlexiBertError("run config: seeds.embeddings is for the mlm and scratch routes; imported seeds "
                                 "bring their own")
        if config.seeds.route == "import-bert" and not config.seeds.checkpoints:
            raise FlexiBertError("run config: seeds.route import-bert needs seeds.checkpoints (name -> path)")
        return config

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Stages:
    """``stages.json``: what each finished stage produced."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / "stages.json"
        self.done: dict[str, Any] = json.loads(self.path.read_text()) if self.path.exists() else {}

    def mark(self, name: str, value: Any) -> None:
        self.done[name] = value
        write_json(self.path, self.done)


def _check_same_config(run_dir: Path, config: RunConfig) -> None:
    """A run directory belongs to one config: resuming with another one would mix results."""
    path = run_dir / "config.json"
    if path.exists():
        stored = json.loads(path.read_text())
        if stored != json.loads(json.dumps(config.to_dict())):
            raise FlexiBertError(f"run directory {run_dir} holds a run with a different config; use another --out")
    else:
        write_json(path, config.to_dict())


Progress = Callable[[str, int, int], None]  # (stage, done, total): a bar with an ETA in the CLI


def _no_progress(stage: str, done: int, total: int) -> None:
    return None


def _import_seeds(config: RunConfig, run_dir: Path, space, log: Log, progress: Progress) -> dict[str, str]:
    """Card key -> checkpoint of each seed imported from a BERT-family checkpoint (skipping those imported).

    Each seed's card comes from its checkpoint's config and must lie in the space.
    """
    from flexibert.model.checkpoint import load_config
    from flexibert.model.import_bert import import_bert

    paths: dict[str, str] = {}
    items = list(config.seeds.checkpoints.items())
    for i, (name, src) in enumerate(items):
        progress("importing seeds", i, len(items))
        target = run_dir / "seeds" / name
        if not (target / "config.json").exists():
            log(f"importing seed {name} from {src} ({config.run_positions} positions)")
            import_bert(src, target, position_embedding_type=config.run_positions, pooling=config.training.pooling)
        card = load_config(target).card
        try:
            space.validate(card)
        except FlexiBertError as e:
            raise FlexiBertError(f"seed {name} ({src}) is outside the space {config.space.file}: {e}") from None
        paths[card.key] = str(target.resolve())
    progress("importing seeds", len(items), len(items))
    return paths


def _new_seeds(config: RunConfig, run_dir: Path, tokenizer: str, space, log: Log,
               progress: Progress) -> dict[str, str]:
    """Card key -> checkpoint of the study's seed shapes in the space: MLM-pretrained on the task's text
    (route mlm), or fresh but for word embeddings from ``seeds.embeddings``; none for plain scratch."""
    from flexibert.space.seeds import SEED_CARDS, card_name
    from flexibert.train.data import train_texts
    from flexibert.train.pretrain import MlmConfig, embedding_seeds, pretrain

    if config.seeds.route == "scratch" and not config.seeds.embeddings:
        return {}
    embeddings = None
    if config.seeds.embeddings:
        from flexibert.model.import_bert import resolve_source

        embeddings = resolve_source(config.seeds.embeddings)
    cards = [card for card in SEED_CARDS.values() if card in space]
    out = run_dir / "seeds"
    todo = [card for card in cards if not (out / card_name(card) / "config.json").exists()]
    if todo and config.seeds.route == "scratch":
        log(f"seeding {len(todo)} model(s) with word embeddings from {config.seeds.embeddings}")
        embedding_seeds(todo, tokenizer, out, embeddings, config.run_positions, seed=config.seed)
    elif todo:
        task, source = config.task_and_source()
        corpus = list(dict.fromkeys(train_texts(source, task)))[: config.seeds.max_samples or None]
        log(f"MLM-pretraining {len(todo)} seed model(s) on {len(corpus):,} sentences")
        mlm = MlmConfig(max_seq_len=config.seeds.max_seq_len, epochs=config.seeds.epochs,
                        positions=config.run_positions)
        for i, card in enumerate(todo):  # one at a time: the bar moves, and a kill keeps the seeds done
            progress("MLM seeds", i, len(todo))
            pretrain([card], corpus, tokenizer, out, mlm, seed=config.seed, embeddings=embeddings)
        progress("MLM seeds", len(todo), len(todo))
    return {card.key: str((out / card_name(card)).resolve()) for card in cards}


def _holdout(config: RunConfig) -> int:
    """Validation examples carved from train: as configured, else a tenth of the split, at most 1,000."""
    if config.training.holdout is not None:
        return config.training.holdout
    from flexibert.train.data import load_split

    task, source = config.task_and_source()
    return max(1, min(1000, len(load_split(source, task, "train")) // 10))


def _search_config(config: RunConfig, library: Path, tokenizer: str, vocab_size: int, seed_paths: dict[str, str],
                   holdout: int, latency_model: str | None) -> SearchConfig:
    """The search stage's config: train every proposal, on the space library built above, from the seeds."""
    from flexibert.search.config import SearchConfig, TrainConfig

    user = config.user_task()
    budget = {k: v for k, v in dataclasses.asdict(config.budget).items() if v is not None}
    train = TrainConfig(
        space=str(Path(config.space.file).resolve()), rule=config.space.rule, library=str(library.resolve()),
        profile=config.training.profile, data=config.data, max_train_samples=config.training.max_train_samples,
        tokenizer=tokenizer, seed=config.seed, seed_checkpoints=seed_paths,
        user_task=user.to_dict() if user else None, positions=config.run_positions, pooling=config.training.pooling,
        holdout=holdout, vocab_size=vocab_size, limits=budget or None, latency_model=latency_model,
    )
    return SearchConfig(task=config.task_name, oracle=train, acquisition=config.search.acquisition,
                        budget=config.search.budget, seed=config.seed, k=config.space.k)


def _latency_model(config: RunConfig, run_dir: Path, lib, dims, log: Log, progress: Progress) -> str:
    """Measure latency for a sample of the space's cards on this machine and fit a model for the rest."""
    from flexibert.model.latency import LatencySetup, calibrate

    path = run_dir / "latency.json"
    if not path.exists():
        setup = LatencySetup(threads=_threads(config), dims=dims)
        progress("latency", 0, 1)
        model = calibrate(lib.cards, config.latency.sample, setup, seed=config.seed)
        model.save(path)
        progress("latency", 1, 1)
        err = model.held_out_error_
        log(f"latency: {config.latency.sample} cards measured; held-out relative error median {err.median:.1%}, "
            f"max {err.max:.1%}")
    return str(path.resolve())


def _threads(config: RunConfig) -> int:
    import os

    return config.latency.threads or config.search.cpus_per_trial or os.cpu_count() or 1


def _confirm(config: RunConfig, run_dir: Path, search_config: SearchConfig, log: Log,
             progress: Progress) -> list[dict[str, Any]]:
    """Retrain the top-k trials by proxy score from their initial weights at full fidelity; score each on
    validation (which picks the winner) and on dev (which is only reported). Finalists run one after
    another, each on all of this machine's cores."""
    import os

    from flexibert.search.loop import budget_mask, initial_checkpoint
    from flexibert.search.oracles import TrainOracle
    from flexibert.search.store import RunStore
    from flexibert.space.design_space import ModelCard
    from flexibert.train.trial import TrialResult, train_trial

    oracle = TrainOracle(search_config.task, search_config.oracle)
    task = config.task_and_source()[0]
    with RunStore(run_dir / "search", read_only=True) as store:
        done = sorted((t for t in store.trials("done") if t.value is not None), key=lambda t: -t.value)
        if search_config.oracle.limits:  # a seed over budget was trained for its children, never to win
            fits = budget_mask([ModelCard.from_dict(t.card) for t in done], search_config.oracle)
            done = [t for t, ok in zip(done, fits) if ok]
        finalists = done[: config.confirm.k]
        inits = [initial_checkpoint(store, search_config, t) for t in finalists]
    rows = []
    for i, (t, init) in enumerate(zip(finalists, inits)):
        progress("confirmation", i, len(finalists))
        workdir = (run_dir / "confirm" / f"{i + 1}-{t.card_hash[:8]}").resolve()
        finished = [d for d in sorted(workdir.glob("attempt-*")) if (d / "result.json").exists()]
        if finished:
            r = TrialResult.load(finished[-1] / "result.json")
        else:
            attempt = workdir / f"attempt-{len(list(workdir.glob('attempt-*'))) + 1}"
            log(f"confirming {i + 1}/{len(finalists)}: {json.dumps(t.card)} (proxy {t.value:.4f})")
            spec = oracle.spec(t.card, init, os.cpu_count(), config.confirm.max_train_samples,
                               full=config.confirm.max_train_samples is None)
            r = train_trial(spec, attempt)
        rows.append({"card": t.card, "proxy": t.value, "validation": r.score, "dev": task.score(r.metrics),
                     "dev_metrics": r.metrics, "num_train": r.num_train, "checkpoint": r.checkpoint})
    progress("confirmation", len(finalists), len(finalists))
    return rows


def run_pipeline(
    config_path: str | Path,
    out: str | Path | None = None,
    data_dir: str | Path | None = None,
    log: Log = print,
    on_progress: Callable | None = None,
    progress: Progress = _no_progress,
) -> dict[str, Any]:
    """Run (or resume) the main job; returns the summary that ``flexibert run`` prints as JSON."""
    from flexibert.search.backends import TrialResources
    from flexibert.space.design_space import DesignSpace
    from flexibert.space.library import BuildParams, build_space

    t0 = time.perf_counter()
    config = RunConfig.from_yaml(config_path, data_dir)
    resources = TrialResources(config.search.cpus_per_trial, config.search.gpus_per_trial)
    run_dir = Path(out or Path("runs") / config.name)
    run_dir.mkdir(parents=True, exist_ok=True)
    _check_same_config(run_dir, config)
    stages = Stages(run_dir)
    space = DesignSpace.from_yaml(config.space.file, rule=config.space.rule)
    if config.seeds.route == "import-bert" and "seeds" not in stages.done:  # a seed outside the space fails early
        stages.mark("seeds", _import_seeds(config, run_dir, space, log, progress))

    library_base = run_dir / "space"
    lib = build_space(
        space, library_base, BuildParams(dims=config.space.dims, k=config.space.k, sweep=tuple(config.space.sweep))
    )
    stages.mark("space", str(lib.root))
    log(f"space: {lib.manifest['count']:,} models, m={config.space.dims}, "
        f"|D - D_hat|_F = {lib.manifest.get('frobenius_error', float('nan')):.2f}")

    if "tokenizer" not in stages.done:
        from flexibert.train.data import train_texts
        from flexibert.train.tokenization import resolve_tokenizer

        if config.tokenizer is None and config.seeds.route == "import-bert":
            tok = next(iter(stages.done["seeds"].values()))  # the seeds' own vocabulary
        elif config.tokenizer is None and config.seeds.embeddings:
            from flexibert.model.import_bert import resolve_source

            tok = str(resolve_source(config.seeds.embeddings))  # rows of its embedding table are its token ids
        else:
            task, source = config.task_and_source()
            texts = None if config.tokenizer else train_texts(source, task)
            tok = resolve_tokenizer(config.tokenizer, texts, run_dir / "tokenizer")
        stages.mark("tokenizer", tok)
    tokenizer = stages.done["tokenizer"]
    if "seeds" not in stages.done:
        stages.mark("seeds", _new_seeds(config, run_dir, tokenizer, space, log, progress))
    seed_paths: dict[str, str] = stages.done["seeds"]

    from flexibert.search.loop import run_search
    from flexibert.search.store import DB_NAME
    from flexibert.train.tokenization import load_tokenizer

    search_dir = run_dir / "search"
    resume = (search_dir / DB_NAME).exists()
    search_config = None
    if not resume:
        from flexibert.model.cost import ArchDims

        vocab = len(load_tokenizer(tokenizer))
        dims = ArchDims(vocab_size=vocab, position_embedding_type=config.run_positions)
        latency = _latency_model(config, run_dir, lib, dims, log, progress)
        search_config = _search_config(config, lib.root, tokenizer, vocab, seed_paths, _holdout(config), latency)
    log(("resuming" if resume else "starting") + f" the search in {search_dir}")
    result = run_search(
        search_dir, search_config, resume=resume, workers=config.search.workers, backend=config.search.backend,
        address=config.search.address, time_budget=config.search.time_budget_s, on_progress=on_progress,
        resources=resources,
    )
    if result.done == 0:
        _raise_first_failure(search_dir)
    stages.mark("search", {"reason": result.reason, "done": result.done})

    if "confirm" not in stages.done and config.confirm.k > 0:
        from flexibert.search.config import SearchConfig
        from flexibert.search.store import RunStore

        with RunStore(search_dir, read_only=True) as store:
            stored = SearchConfig.from_dict(store.meta("config"))
        stages.mark("confirm", _confirm(config, run_dir, stored, log, progress))

    from flexibert.report.run import write_run_report

    files = write_run_report(run_dir)
    stages.mark("report", str(files.html))
    best = best_model(run_dir)
    return {
        "best_card": best["card"] if best else None,
        "best_dev_accuracy": best["dev"] if best else None,
        "confirmed": stages.done.get("confirm", []),
        "latency_ms": _winner_latency(config, best) if best else None,
        "trials_done": result.done,
        "wall_s": round(time.perf_counter() - t0, 1),
        "report_html": str(files.html),
    }


def _winner_latency(config: RunConfig, best: dict[str, Any]) -> dict[str, float]:
    """The winner's own latency on this machine, measured (not predicted), at batch 1 and 32, sequence 128."""
    from flexibert.model.checkpoint import load_config
    from flexibert.model.latency import LatencySetup, measure_latency

    cfg = load_config(best["checkpoint"])
    card, dims = cfg.card, cfg.arch_dims
    return {f"batch_{b}": round(measure_latency(card, LatencySetup(batch=b, threads=_threads(config), dims=dims)), 3)
            for b in (1, 32)}


def _raise_first_failure(search_dir: Path) -> None:
    """A search in which no trial finished: say why the first one failed, rather than "nothing to report"."""
    from flexibert.search.store import RunStore

    with RunStore(search_dir, read_only=True) as store:
        errors = [t.error for t in store.trials("failed") if t.error and t.error.strip()]
    if errors:
        raise FlexiBertError(f"every trial failed; the first: {errors[0].strip().splitlines()[-1]}")


def best_model(run_dir: str | Path) -> dict[str, Any] | None:
    """The run's answer: the confirmed winner (chosen on validation) when the run confirmed its finalists,
    else the best finished trial by its search score. ``card``, ``checkpoint``, ``dev`` and ``score``."""
    stages_path = Path(run_dir) / "stages.json"
    confirmed = json.loads(stages_path.read_text()).get("confirm") if stages_path.exists() else None
    if confirmed:
        win = max(confirmed, key=lambda r: r["validation"])
        return {"card": win["card"], "checkpoint": win["checkpoint"], "dev": win["dev"], "score": win["validation"]}
    best = best_trial(run_dir)
    if best is None:
        return None
    dev_metrics = {k: v for k, v in (best.metrics or {}).items() if not k.startswith("validation_")}
    dev = sum(dev_metrics.values()) / len(dev_metrics) if dev_metrics else best.value  # the task's score on dev
    return {"card": best.card, "checkpoint": best.checkpoint, "dev": dev, "score": best.value}


def best_trial(run_dir: str | Path):
    """The best finished trial of a run or search directory, by its task score; read-only, so it works
    while the search is still running."""
    from flexibert.search.store import RunStore, search_dir

    with RunStore(search_dir(run_dir), read_only=True) as store:
        done = [t for t in store.trials("done") if t.value is not None]
    return max(done, key=lambda t: t.value, default=None)
