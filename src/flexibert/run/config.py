"""The main job's config: one YAML file, checked once when it is read, and its one translation into a search.

See ``configs/quickstart-pretrained.yaml``. ``task`` is a GLUE name or a user task
``{name, train, dev, text_columns, label_column, labels | regression}`` over CSV/TSV/JSONL
files, its paths relative to the config file's folder.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from flexibert._common import FlexiBertError, build_config, read_yaml
from flexibert.search.budget import Budget
from flexibert.search.config import SearchConfig, TrainConfig

SEED_ROUTES = ("mlm", "import-bert", "scratch")
POSITIONS = (None, "absolute", "relative_key")
POOLINGS = (None, "cls", "mean")


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
    holdout: int | None = None  # validation examples carved from train (None: sized to the data)
    max_seq_len: int | None = None  # None: the 95th percentile of the training texts' token lengths
    pooling: str | None = None  # what classifiers read, cls or mean (None: the seeds' own; cls for MLM seeds)
    layer_map: str = "bottom"  # which source layers a child inherits: bottom (a prefix) or uniform (spread)
    ffn_select: str = "importance"  # which neurons a narrower FFN inherits: importance, magnitude or first


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
class LatencySection:
    """Latency is measured on this machine for ``sample`` cards and predicted for the rest."""

    sample: int = 12
    threads: int | None = None  # default: the search's CPUs per trial, else this machine's cores


@dataclass(frozen=True)
class DistillSection:
    """Distil each finalist's confirmation from the confirmed reference (the teacher): logits, and hidden
    states where widths match (``train.distill``)."""

    alpha: float = 0.5
    temperature: float = 2.0
    hidden: bool = False


@dataclass(frozen=True)
class ConfirmSection:
    """The top ``k`` models within budget by proxy score, and the reference seed, retrained alike from
    their initial weights (the whole training split less the holdout by default); the winner is chosen on
    validation, dev is only reported. ``seeds``: training seeds, each model's scores are their mean."""

    k: int = 3
    max_train_samples: int | None = None  # None: the whole training split (full fidelity)
    epochs: float | None = None  # None: the profile's
    lr: float | None = None  # None: the profile's
    seeds: tuple[int, ...] = (42,)
    reference: bool = True  # also confirm the seed (the best one on the scratch and MLM routes)
    baseline: bool = True  # fit TF-IDF + logistic regression on the same data
    distill: DistillSection | None = None  # None: finalists learn from the labels alone


@dataclass(frozen=True)
class RunConfig:
    """A whole run. ``data`` is a GLUE-layout directory, a HF dataset spec, or null (``--data-dir``).
    ``positions`` is the run's one position scheme (null: the seeds' own for import-bert, else relative_key)."""

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
    budget: Budget = Budget()
    latency: LatencySection = LatencySection()
    confirm: ConfirmSection = ConfirmSection()

    @property
    def task_name(self) -> str:
        return self.task["name"] if isinstance(self.task, dict) else self.task

    @cached_property
    def task_and_source(self):
        """``(Task, DataSource)`` of the run, resolved once."""
        from flexibert.train.user_task import resolve_task

        return resolve_task(self.task, self.data)

    @cached_property
    def design_space(self):
        """The run's :class:`~flexibert.space.design_space.DesignSpace`, read once."""
        from flexibert.space.design_space import DesignSpace

        return DesignSpace.from_yaml(self.space.file, rule=self.space.rule)

    @property
    def run_positions(self) -> str:
        return self.positions or ("absolute" if self.seeds.route == "import-bert" else "relative_key")

    @classmethod
    def from_yaml(cls, path: str | Path, data_dir: str | Path | None = None) -> "RunConfig":
        raw = read_yaml(path, f"run config not found: {path}")
        if not isinstance(raw, dict):
            raise FlexiBertError(f"run config {path} must be a mapping")
        sections = {"space": SpaceSection, "seeds": SeedSection, "training": TrainingSection, "search": SearchSection,
                    "budget": Budget, "latency": LatencySection, "confirm": ConfirmSection}
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
        if "space" in values:  # the config's own folder first, as for a task's files, then the working directory
            here = Path(path).parent / values["space"].file
            if here.is_file():
                values["space"] = dataclasses.replace(values["space"], file=str(here.resolve()))
        if not isinstance(values["task"], str):
            from flexibert.train.user_task import UserTask

            holdout = values.get("training", TrainingSection()).holdout  # checked against the file now, not in a worker
            values["task"] = UserTask.from_mapping(values["task"], Path(path).parent, holdout=holdout).to_dict()
        if "confirm" in values:
            confirm = values["confirm"]
            distill = confirm.distill
            if distill is not None and not isinstance(distill, DistillSection):
                distill = build_config(DistillSection, distill, "'confirm.distill'")
            values["confirm"] = dataclasses.replace(confirm, seeds=tuple(confirm.seeds), distill=distill)
        config = cls(**values)
        config._check()
        return config

    def _check(self) -> None:
        if self.positions not in POSITIONS:
            raise FlexiBertError(f"run config: positions {self.positions!r} is not absolute or relative_key")
        if self.training.pooling not in POOLINGS:
            raise FlexiBertError(f"run config: training.pooling {self.training.pooling!r} is not cls or mean")
        if self.confirm.k < 0:
            raise FlexiBertError(f"run config: confirm.k must be >= 0, got {self.confirm.k}")
        if not self.confirm.seeds or not all(isinstance(s, int) for s in self.confirm.seeds):
            raise FlexiBertError(f"run config: confirm.seeds must be a list of integers, got {self.confirm.seeds!r}")
        if self.seeds.route not in SEED_ROUTES:
            raise FlexiBertError(f"run config: seeds.route {self.seeds.route!r} is not one of {list(SEED_ROUTES)}")
        if self.seeds.embeddings and self.seeds.route == "import-bert":
            raise FlexiBertError("run config: seeds.embeddings is for the mlm and scratch routes; imported seeds "
                                 "bring their own")
        if self.seeds.route == "import-bert" and not self.seeds.checkpoints:
            raise FlexiBertError("run config: seeds.route import-bert needs seeds.checkpoints (name -> path)")
        if self.confirm.distill is not None and not self.confirm.reference:
            raise FlexiBertError("run config: confirm.distill needs confirm.reference: the confirmed seed is the "
                                 "teacher")
        if self.training.max_seq_len is not None and self.training.max_seq_len < 1:
            raise FlexiBertError(f"run config: training.max_seq_len must be >= 1, got {self.training.max_seq_len}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def holdout_size(self, num_train: int) -> int:
        """Validation examples carved from train: as configured, else a tenth of the split, at least 1 and at
        most 1,000, so a small file keeps nine tenths of itself to train on."""
        if self.training.holdout is not None:
            return self.training.holdout
        return max(1, min(1000, num_train // 10))

    def search_config(self, library: str, tokenizer: str, vocab_size: int, seed_paths: dict[str, str],
                      holdout: int, max_seq_len: int | None, latency_model: str | None) -> SearchConfig:
        """The search stage's config: train every proposal, on the space library, from the seeds."""
        user = self.task if isinstance(self.task, dict) else None
        train = TrainConfig(
            space=str(Path(self.space.file).resolve()), rule=self.space.rule, library=library,
            profile=self.training.profile, data=self.data, max_train_samples=self.training.max_train_samples,
            tokenizer=tokenizer, seed=self.seed, seed_checkpoints=seed_paths, user_task=user,
            positions=self.run_positions, pooling=self.training.pooling, holdout=holdout, vocab_size=vocab_size,
            limits=self.budget or None, latency_model=latency_model, max_seq_len=max_seq_len,
            layer_map=self.training.layer_map, ffn_select=self.training.ffn_select,
        )
        return SearchConfig(task=self.task_name, oracle=train, acquisition=self.search.acquisition,
                            budget=self.search.budget, seed=self.seed, k=self.space.k)
