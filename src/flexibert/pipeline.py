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
from typing import Any, Callable

from flexibert._common import FlexiBertError, read_yaml, write_json

Log = Callable[[str], None]
SEED_ROUTES = ("mlm", "import-bert", "scratch")


def _section(cls, raw: Any, where: str):
    """Build a config dataclass from a mapping, naming unknown keys."""
    if raw is None:
        return cls()
    if not isinstance(raw, dict):
        raise FlexiBertError(f"run config: '{where}' must be a mapping")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise FlexiBertError(f"run config: unknown key(s) {unknown} in '{where}'; expected {sorted(known)}")
    return cls(**raw)


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


@dataclass(frozen=True)
class TrainingSection:
    profile: str = "quick"
    max_train_samples: int | None = None


@dataclass(frozen=True)
class SearchSection:
    acquisition: str = "ucb"
    workers: int = 2
    backend: str = "local"
    address: str | None = None
    budget: int = 12  # trials, seeds included
    time_budget_s: float | None = None


@dataclass(frozen=True)
class RunConfig:
    """A whole run. ``data`` is a GLUE-layout directory, a HF dataset spec, or null (``--data-dir``)."""

    name: str
    task: str
    data: str | None = None
    tokenizer: str | None = None
    seed: int = 42
    space: SpaceSection = SpaceSection()
    seeds: SeedSection = SeedSection()
    training: TrainingSection = TrainingSection()
    search: SearchSection = SearchSection()

    @classmethod
    def from_yaml(cls, path: str | Path, data_dir: str | Path | None = None) -> "RunConfig":
        raw = read_yaml(path, f"run config not found: {path}")
        if not isinstance(raw, dict):
            raise FlexiBertError(f"run config {path} must be a mapping")
        sections = {"space": SpaceSection, "seeds": SeedSection, "training": TrainingSection, "search": SearchSection}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise FlexiBertError(f"run config {path}: unknown key(s) {unknown}; expected {sorted(known)}")
        for key in ("name", "task"):
            if not raw.get(key):
                raise FlexiBertError(f"run config {path}: '{key}' is required")
        values = {k: (_section(sections[k], v, k) if k in sections else v) for k, v in raw.items()}
        if data_dir is not None:
            values["data"] = str(data_dir)
        config = cls(**values)
        if config.seeds.route not in SEED_ROUTES:
            raise FlexiBertError(f"run config: seeds.route {config.seeds.route!r} is not one of {list(SEED_ROUTES)}")
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


def _seed_checkpoints(config: RunConfig, run_dir: Path, tokenizer: str, space, log: Log) -> dict[str, str]:
    """Seed name -> checkpoint directory, built by the configured route (skipping seeds already built)."""
    from flexibert.space.seeds import SEED_CARDS

    seeds = {name: card for name, card in SEED_CARDS.items() if card in space}
    out = run_dir / "seeds"
    if config.seeds.route == "scratch":
        return {}
    if config.seeds.route == "import-bert":
        from flexibert.model.import_bert import import_bert

        paths = {}
        for name, src in config.seeds.checkpoints.items():
            target = out / name
            if not (target / "config.json").exists():
                log(f"importing seed {name} from {src}")
                import_bert(src, target)
            paths[name] = str(target)
        return paths
    from flexibert.train.data import train_texts
    from flexibert.train.pretrain import MlmConfig, pretrain
    from flexibert.train.tasks import get_task

    todo = [card for name, card in seeds.items() if not (out / name / "config.json").exists()]
    if todo:
        corpus = list(dict.fromkeys(train_texts(config.data, get_task(config.task))))
        if config.seeds.max_samples:
            corpus = corpus[: config.seeds.max_samples]
        log(f"MLM-pretraining {len(todo)} seed model(s) on {len(corpus):,} sentences")
        mlm = MlmConfig(max_seq_len=config.seeds.max_seq_len, epochs=config.seeds.epochs)
        pretrain(todo, corpus, tokenizer, out, mlm, seed=config.seed)
    return {name: str(out / name) for name in seeds}


def run_pipeline(
    config_path: str | Path,
    out: str | Path | None = None,
    data_dir: str | Path | None = None,
    log: Log = print,
    on_progress: Callable | None = None,
) -> dict[str, Any]:
    """Run (or resume) the main job; returns the summary that ``flexibert run`` prints as JSON."""
    from flexibert.space.design_space import DesignSpace
    from flexibert.space.library import BuildParams, build_space

    t0 = time.perf_counter()
    config = RunConfig.from_yaml(config_path, data_dir)
    run_dir = Path(out or Path("runs") / config.name)
    run_dir.mkdir(parents=True, exist_ok=True)
    _check_same_config(run_dir, config)
    stages = Stages(run_dir)
    space = DesignSpace.from_yaml(config.space.file, rule=config.space.rule)

    library_base = run_dir / "space"
    lib = build_space(
        space, library_base, BuildParams(dims=config.space.dims, k=config.space.k, sweep=tuple(config.space.sweep))
    )
    stages.mark("space", str(lib.root))
    log(f"space: {lib.manifest['count']:,} models, m={config.space.dims}, "
        f"|D - D_hat|_F = {lib.manifest.get('frobenius_error', float('nan')):.2f}")

    if "tokenizer" not in stages.done:
        from flexibert.train.data import train_texts
        from flexibert.train.tasks import get_task
        from flexibert.train.tokenization import resolve_tokenizer

        texts = None if config.tokenizer else train_texts(config.data, get_task(config.task))
        stages.mark("tokenizer", resolve_tokenizer(config.tokenizer, texts, run_dir / "tokenizer"))
    tokenizer = stages.done["tokenizer"]

    if "seeds" not in stages.done:
        stages.mark("seeds", _seed_checkpoints(config, run_dir, tokenizer, space, log))
    seed_paths: dict[str, str] = stages.done["seeds"]

    from flexibert.search.loop import SearchConfig, run_search
    from flexibert.search.store import DB_NAME
    from flexibert.space.seeds import seed_card

    search_dir = run_dir / "search"
    resume = (search_dir / DB_NAME).exists()
    search_config = None if resume else SearchConfig(
        task=config.task, oracle="train", space=config.space.file, rule=config.space.rule,
        library=str(library_base), acquisition=config.search.acquisition, budget=config.search.budget,
        profile=config.training.profile, data=config.data, max_train_samples=config.training.max_train_samples,
        tokenizer=tokenizer, seed=config.seed, k=config.space.k,
        seed_checkpoints={seed_card(name).key: path for name, path in seed_paths.items()},
    )
    log(("resuming" if resume else "starting") + f" the search in {search_dir}")
    progress = run_search(
        search_dir, search_config, resume=resume, workers=config.search.workers, backend=config.search.backend,
        address=config.search.address, time_budget=config.search.time_budget_s, on_progress=on_progress,
    )
    stages.mark("search", {"reason": progress.reason, "done": progress.done})

    from flexibert.report.run import write_run_report

    files = write_run_report(run_dir)
    stages.mark("report", str(files.html))
    best = best_trial(run_dir)
    return {
        "best_card": best.card if best else None,
        "best_dev_accuracy": best.metrics.get("accuracy", best.value) if best else None,
        "trials_done": progress.done,
        "wall_s": round(time.perf_counter() - t0, 1),
        "report_html": str(files.html),
    }


def best_trial(run_dir: str | Path):
    """The best finished trial of a run, by its task score."""
    from flexibert.search.store import DB_NAME, RunStore

    search_dir = Path(run_dir) / "search"
    if not (search_dir / DB_NAME).exists():
        raise FlexiBertError(f"{run_dir} has no search database (search/{DB_NAME})")
    store = RunStore(search_dir)
    try:
        done = [t for t in store.trials("done") if t.value is not None]
    finally:
        store.close()
    return max(done, key=lambda t: t.value, default=None)
