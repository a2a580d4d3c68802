"""The main job's config: one YAML file, checked once when it is read, and its one translation into a search.

See ``configs/quickstart-pretrained.yaml``. ``task`` is a GLUE name or a user task
``{name, train, dev, text_columns, label_column, labels | regression}`` over CSV/TSV/JSONL
files, its paths relative to the config file's folder.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from flexibert._common import FlexiBertError, build_config, read_yaml
from flexibert.model.latency import MIN_MEASURED
from flexibert.model.overlap import FFN_SELECTS, LAYER_MAPS
from flexibert.search.acquisition import ACQUISITIONS
from flexibert.search.backends import BACKENDS, TrialResources
from flexibert.search.budget import Budget
from flexibert.search.config import SCHEMA, SearchConfig, TrainConfig, measured_before
from flexibert.space.design_space import RULES
from flexibert.train.holdout import HOLDOUT_SPLITS, SUBSET_DRAWS
from flexibert.train.profiles import PROFILES
from flexibert.train.tasks import GLUE_TASKS, get_task

SEED_ROUTES = ("mlm", "import-bert", "scratch")
POSITIONS = (None, "absolute", "relative_key")
POOLINGS = (None, "cls", "mean")
MLM_MIN_SEQ_LEN = 3  # [CLS], one token, [SEP]


# Each section checks its own values when built, so a malformed value fails as the config is read, before any
# stage; each message names its key (``search.workers``), and ``RunConfig.from_yaml`` adds the file.

def _whole(key: str, value: Any, least: int = 1, optional: bool = False) -> None:
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise FlexiBertError(f"{key} must be an integer >= {least}{' or null' if optional else ''}, got {value!r}")


def _positive(key: str, value: Any, optional: bool = False) -> None:
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
        raise FlexiBertError(f"{key} must be a number > 0{' or null' if optional else ''}, got {value!r}")


def _one_of(key: str, value: Any, choices: Any) -> None:
    if value not in tuple(choices):
        names = ", ".join("null" if c is None else repr(c) for c in choices)  # as the YAML spells them
        raise FlexiBertError(f"{key} must be one of [{names}], got {value!r}")


def _text(key: str, value: Any, optional: bool = False) -> None:
    if optional and value is None:
        return
    if not isinstance(value, str) or not value.strip():
        raise FlexiBertError(f"{key} must be a non-empty string{' or null' if optional else ''}, got {value!r}")


def _flag(key: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise FlexiBertError(f"{key} must be true or false, got {value!r}")


def _whole_list(key: str, value: Any, least: int, nonempty: bool) -> tuple[int, ...]:
    """A list of integers >= ``least`` as a tuple."""
    ok = isinstance(value, (list, tuple)) and (value or not nonempty)
    if not ok or any(isinstance(v, bool) or not isinstance(v, int) or v < least for v in value):
        raise FlexiBertError(f"{key} must be a {'non-empty ' if nonempty else ''}list of integers >= {least}, "
                             f"got {value!r}")
    return tuple(value)


@dataclass(frozen=True)
class SpaceSection:
    file: str = "configs/spaces/flexibert-small.yaml"
    rule: str = "monotone"
    dims: int = 8
    k: int = 10
    sweep: tuple[int, ...] = (2, 4, 8, 12)

    def __post_init__(self) -> None:
        _text("space.file", self.file)
        _one_of("space.rule", self.rule, RULES)
        _whole("space.dims", self.dims)
        _whole("space.k", self.k)
        object.__setattr__(self, "sweep", _whole_list("space.sweep", self.sweep, 1, nonempty=False))


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

    def __post_init__(self) -> None:
        _one_of("seeds.route", self.route, SEED_ROUTES)
        _positive("seeds.epochs", self.epochs)
        _whole("seeds.max_samples", self.max_samples, optional=True)
        _whole("seeds.max_seq_len", self.max_seq_len, MLM_MIN_SEQ_LEN)
        if not isinstance(self.checkpoints, dict) or not all(
                isinstance(k, str) and k and isinstance(v, str) and v for k, v in self.checkpoints.items()):
            raise FlexiBertError(f"seeds.checkpoints must map seed names to checkpoint paths or hub ids, "
                                 f"got {self.checkpoints!r}")
        _text("seeds.embeddings", self.embeddings, optional=True)


@dataclass(frozen=True)
class TrainingSection:
    profile: str = "quick"
    max_train_samples: int | None = None  # the search's proxy fidelity: a fixed subset of the training split
    subset: str = "random"  # how a capped split is drawn (confirm.max_train_samples too), or whole-first
    holdout: int | None = None  # validation examples carved from train (None: sized to the data)
    holdout_split: str = "grouped"  # grouped: whole texts, and training texts sharing theirs dropped; or random
    max_seq_len: int | None = None  # None: the 95th percentile of the training texts' token lengths
    pooling: str | None = None  # what classifiers read, cls or mean (None: the seeds' own; cls for MLM seeds)
    layer_map: str = "bottom"  # which source layers a child inherits: bottom (a prefix) or uniform (spread)
    ffn_select: str = "importance"  # which neurons a narrower FFN inherits: importance, magnitude or first

    def __post_init__(self) -> None:
        _one_of("training.profile", self.profile, PROFILES)
        _whole("training.max_train_samples", self.max_train_samples, optional=True)
        _one_of("training.subset", self.subset, SUBSET_DRAWS)
        _whole("training.holdout", self.holdout, optional=True)
        _one_of("training.holdout_split", self.holdout_split, HOLDOUT_SPLITS)
        _whole("training.max_seq_len", self.max_seq_len, optional=True)
        _one_of("training.pooling", self.pooling, POOLINGS)
        _one_of("training.layer_map", self.layer_map, LAYER_MAPS)
        _one_of("training.ffn_select", self.ffn_select, FFN_SELECTS)


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

    def __post_init__(self) -> None:
        _one_of("search.acquisition", self.acquisition, ACQUISITIONS)
        _whole("search.workers", self.workers)
        _one_of("search.backend", self.backend, BACKENDS)
        _text("search.address", self.address, optional=True)
        if self.address is not None and self.backend != "ray":
            raise FlexiBertError(f"search.address is for the ray backend only, not {self.backend!r}")
        _whole("search.budget", self.budget)
        _positive("search.time_budget_s", self.time_budget_s, optional=True)
        try:  # the backends' own rule for a trial's CPUs and GPUs
            TrialResources(self.cpus_per_trial, self.gpus_per_trial)
        except FlexiBertError as e:
            raise FlexiBertError(f"search.{e}") from None


@dataclass(frozen=True)
class LatencySection:
    """Latency is measured on this machine for ``sample`` cards and predicted for the rest."""

    sample: int = 12
    threads: int | None = None  # default: the search's CPUs per trial, else this machine's cores

    def __post_init__(self) -> None:
        _whole("latency.sample", self.sample, MIN_MEASURED)  # at most the space's size: checked when measured
        _whole("latency.threads", self.threads, optional=True)


@dataclass(frozen=True)
class DistillSection:
    """Distil each finalist's confirmation from the confirmed reference (the teacher): logits, and hidden
    states where widths match (``train.distill``)."""

    alpha: float = 0.5
    temperature: float = 2.0
    hidden: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)) or not 0 <= self.alpha <= 1:
            raise FlexiBertError(f"confirm.distill.alpha must be a number in [0, 1], got {self.alpha!r}")
        _positive("confirm.distill.temperature", self.temperature)
        _flag("confirm.distill.hidden", self.hidden)


# The one setting a run resumes with changed: the confirmation (and the report) run again, nothing before them.
RECONFIRM = "confirm.seeds"


@dataclass(frozen=True)
class ConfirmSection:
    """The top ``k`` models within budget by proxy score, and the reference seed, retrained alike from
    their initial weights (the whole training split less the holdout by default); the winner is chosen on
    validation, dev is only reported. ``seeds``: training seeds, each model's scores are their mean.
    ``refit``: once the winner is chosen, retrain it and the reference on the whole training split, the
    holdout included, and report those on dev (scikit-learn's ``refit``): the holdout's whole texts are the
    data most like dev's, and a model that never saw them understates what the user's full training gets."""

    k: int = 3
    max_train_samples: int | None = None  # None: the whole training split (full fidelity)
    epochs: float | None = None  # None: the profile's
    lr: float | None = None  # None: the profile's
    seeds: tuple[int, ...] = (42,)
    reference: bool = True  # also confirm the seed (the best one on the scratch and MLM routes)
    baseline: bool = True  # fit TF-IDF + logistic regression on the same data
    distill: DistillSection | None = None  # None: finalists learn from the labels alone
    refit: bool = False  # retrain the winner and the reference on the holdout too, for dev

    def __post_init__(self) -> None:
        _whole("confirm.k", self.k, 0)
        _whole("confirm.max_train_samples", self.max_train_samples, optional=True)
        _positive("confirm.epochs", self.epochs, optional=True)
        _positive("confirm.lr", self.lr, optional=True)
        object.__setattr__(self, "seeds", _whole_list("confirm.seeds", self.seeds, 0, nonempty=True))
        _flag("confirm.reference", self.reference)
        _flag("confirm.baseline", self.baseline)
        _flag("confirm.refit", self.refit)
        if self.distill is not None and not isinstance(self.distill, DistillSection):
            object.__setattr__(self, "distill", build_config(DistillSection, self.distill, "'confirm.distill'"))


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
        """The run config in ``path``, every value checked now, before any stage: a bad one fails in one line
        naming the file and the key."""
        raw = read_yaml(path, f"run config not found: {path}")
        if not isinstance(raw, dict):
            raise FlexiBertError(f"run config {path} must be a mapping")
        try:
            return cls._from_mapping(raw, path, data_dir)
        except FlexiBertError as e:
            message = str(e).removeprefix(f"run config {path}: ").removeprefix("run config: ")
            raise FlexiBertError(f"run config {path}: {message}") from None

    @classmethod
    def _from_mapping(cls, raw: dict[str, Any], path: str | Path, data_dir: str | Path | None) -> "RunConfig":
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
        config = cls(**values)
        config._check()
        return config

    def _check(self) -> None:
        """What no one section can check alone: the top-level values, how the sections fit together, and the
        space file (read now: a stage would read it first anyway). What needs the data waits for it."""
        _text("name", self.name)
        if isinstance(self.task, str):
            try:
                get_task(self.task)
            except FlexiBertError:
                raise FlexiBertError(f"task must be a GLUE task, one of {sorted(GLUE_TASKS)}, or a mapping "
                                     f"{{name, train, dev, ...}} of your own files; got {self.task!r}") from None
        _text("data", self.data, optional=True)
        _text("tokenizer", self.tokenizer, optional=True)
        _whole("seed", self.seed, 0)
        _one_of("positions", self.positions, POSITIONS)
        if self.seeds.embeddings and self.seeds.route == "import-bert":
            raise FlexiBertError("run config: seeds.embeddings is for the mlm and scratch routes; imported seeds "
                                 "bring their own")
        if self.seeds.route == "import-bert" and not self.seeds.checkpoints:
            raise FlexiBertError("run config: seeds.route import-bert needs seeds.checkpoints (name -> path)")
        if self.budget.max_latency_ratio is not None and self.seeds.route != "import-bert":
            raise FlexiBertError("run config: budget.max_latency_ratio is a fraction of an imported encoder's "
                                 "latency: it needs seeds.route import-bert")
        if self.confirm.distill is not None and not self.confirm.reference:
            raise FlexiBertError("run config: confirm.distill needs confirm.reference: the confirmed seed is the "
                                 "teacher")
        if not Path(self.space.file).is_file():
            raise FlexiBertError(f"space.file {self.space.file} is not a file, beside the config or from the "
                                 f"working directory {Path.cwd()}")
        try:
            self.design_space
        except FlexiBertError as e:
            raise FlexiBertError(f"space.file {self.space.file}: {e}") from None

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, **dataclasses.asdict(self)}

    def resuming(self, stored: dict[str, Any]) -> tuple["RunConfig", bool]:
        """This config, to resume the run that stored ``stored`` (its :meth:`to_dict`, of any schema so far),
        and whether it confirms again.

        Settings added since that schema take the value its work was measured with
        (:func:`~flexibert.search.config.measured_before`), others their defaults; a real difference
        is refused, naming its keys, but for :data:`RECONFIRM`: other training seeds confirm again, so a
        user who confirmed with one seed can add more (those already trained are kept) without a new search.
        """
        added = measured_before(stored.get("schema", 1))
        config = dataclasses.replace(self, training=dataclasses.replace(self.training, **added))
        stored = {**stored, "training": {**added, **stored.get("training", {})}}
        before = RunConfig(name=stored.get("name", self.name), task=stored.get("task", self.task))
        old = _flat(_merged(json_roundtrip(before.to_dict()), {**stored, "schema": SCHEMA}))
        new = _flat(json_roundtrip(config.to_dict()))
        changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        refused = [k for k in changed if k != RECONFIRM]
        if refused:
            shown = ", ".join(f"{k} ({old.get(k)!r} there, {new.get(k)!r} here)" for k in refused[:3])
            raise FlexiBertError(f"it holds a run of another config: {shown}")
        return config, RECONFIRM in changed

    def holdout_size(self, num_train: int) -> int:
        """Validation examples carved from train: as configured, else a tenth of the split, at least 1 and at
        most 1,000, so a small file keeps nine tenths of itself to train on."""
        if self.training.holdout is not None:
            return self.training.holdout
        return max(1, min(1000, num_train // 10))

    def search_config(self, library: str, tokenizer: str, vocab_size: int, seed_paths: dict[str, str],
                      holdout: int, max_seq_len: int | None, latency_model: str | None, budget: Budget
                      ) -> SearchConfig:
        """The search stage's config: train every proposal, on the space library, from the seeds, within
        ``budget`` (this config's, its latency ratio resolved by the run)."""
        user = self.task if isinstance(self.task, dict) else None
        train = TrainConfig(
            space=str(Path(self.space.file).resolve()), rule=self.space.rule, library=library,
            profile=self.training.profile, data=self.data, max_train_samples=self.training.max_train_samples,
            subset=self.training.subset,
            tokenizer=tokenizer, seed=self.seed, seed_checkpoints=seed_paths, user_task=user,
            positions=self.run_positions, pooling=self.training.pooling, holdout=holdout,
            holdout_split=self.training.holdout_split, vocab_size=vocab_size,
            limits=budget or None, latency_model=latency_model, max_seq_len=max_seq_len,
            layer_map=self.training.layer_map, ffn_select=self.training.ffn_select,
        )
        return SearchConfig(task=self.task_name, oracle=train, acquisition=self.search.acquisition,
                            budget=self.search.budget, seed=self.seed, k=self.space.k)


def json_roundtrip(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists), so stored and fresh configs compare."""
    return json.loads(json.dumps(value))


def _merged(defaults: Any, stored: Any) -> Any:
    """``stored``, with what it lacks of ``defaults`` filled in, section by section."""
    if isinstance(defaults, dict) and isinstance(stored, dict):
        return {**defaults, **{k: _merged(defaults.get(k), v) for k, v in stored.items()}}
    return stored


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted key -> leaf value."""
    if not isinstance(d, dict) or not d:
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}.{k}" if prefix else k))
    return out
