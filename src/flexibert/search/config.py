"""What defines a search: the search's own settings, plus one config for the oracle that measures models.

A run stores its config in its database as a plain dict (:meth:`SearchConfig.to_dict`),
the oracle's settings under ``oracle`` with the oracle's ``kind``, and ``--resume`` reads
it back with :meth:`SearchConfig.from_dict`; so do the readers (report, export).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from flexibert._common import FlexiBertError, build_config
from flexibert.search.acquisition import check_acquisition
from flexibert.search.budget import Budget

SCHEMA = 2  # of what a run stores (its run config and its search config); 2: the holdout is drawn leak-free
# Training settings added at a schema, with the value that work stored before it was measured with.
MEASURED_BEFORE: dict[int, dict[str, Any]] = {2: {"holdout_split": "random"}}
DEFAULT_LIBRARY = "runs/spaces"  # where ``flexibert space build`` puts space libraries


@dataclass(frozen=True)
class ReplayConfig:
    """Answer from a measured table; a table without embeddings is embedded in ``space``'s library."""

    kind: ClassVar[str] = "replay"

    table: str  # a measured table in the study's JSON format
    sim_seconds: float = 0.0  # simulated seconds for a model of median FLOPs
    space: str | None = None  # a space YAML: embeds a table that has no embeddings, else checks its models
    rule: str = "monotone"
    library: str | None = None  # a built space library, or the base directory to build one in

    def __post_init__(self) -> None:
        if not self.table:
            raise FlexiBertError("the replay oracle needs a measured table JSON (--table)")


@dataclass(frozen=True)
class TrainConfig:
    """Fine-tune every proposed model of ``space``; seeds may start from pretrained checkpoints."""

    kind: ClassVar[str] = "train"

    space: str  # a space YAML: the candidates
    rule: str = "monotone"
    library: str | None = None  # a built space library, or the base directory to build one in
    profile: str = "quick"  # the training profile
    data: str | None = None  # the task's data
    max_train_samples: int | None = None  # a fixed subset of the training split
    subset: str = "random"  # how it is drawn: at random, or whole texts first (``train.holdout``)
    tokenizer: str | None = None
    seed_checkpoints: dict[str, str] = field(default_factory=dict)  # card key -> checkpoint a seed starts from
    seed: int = 0  # the training seed
    user_task: dict[str, Any] | None = None  # a user task over files (``UserTask.to_dict``); None: a GLUE task
    positions: str = "relative_key"  # the run's one position scheme: seeds, trials and transfers all use it
    pooling: str | None = None  # what classifiers read, cls or mean (None: each trial's init checkpoint's own)
    holdout: int | None = None  # training examples carved out for validation: trials are scored on them
    holdout_split: str = "grouped"  # how they are drawn: grouped (leak-free, ``train.holdout``) or random
    vocab_size: int | None = None  # the run's tokenizer size, for the cost of a card (None: BERT's 30,522)
    limits: Budget | None = None  # the run's budget (params, FLOPs, latency): no model over it is proposed
    latency_model: str | None = None  # a fitted ``LatencyModel`` JSON, needed by ``max_latency_ms``
    max_seq_len: int | None = None  # None: the profile's
    layer_map: str = "bottom"  # which source layers a child inherits (``model.overlap``)
    ffn_select: str = "importance"  # which source neurons a narrower FFN inherits (``model.importance``)

    def __post_init__(self) -> None:
        if not self.space:
            raise FlexiBertError("the train oracle needs a design-space YAML (--space)")
        if self.max_train_samples is not None and self.max_train_samples < 1:
            raise FlexiBertError(f"max_train_samples must be >= 1, got {self.max_train_samples}")
        if self.positions not in ("relative_key", "absolute"):
            raise FlexiBertError(f"positions must be relative_key or absolute, got {self.positions!r}")
        if self.pooling not in (None, "cls", "mean"):
            raise FlexiBertError(f"pooling must be cls or mean, got {self.pooling!r}")
        if self.holdout is not None and self.holdout < 1:
            raise FlexiBertError(f"holdout must be >= 1 training example, got {self.holdout}")
        from flexibert.train.holdout import check_holdout_split, check_subset_draw

        check_holdout_split(self.holdout_split)
        check_subset_draw(self.subset)
        from flexibert.model.overlap import check_ffn_select, check_layer_map

        check_layer_map(self.layer_map)
        check_ffn_select(self.ffn_select)
        limits = Budget.of(self.limits)  # a stored config holds it as a dict
        object.__setattr__(self, "limits", limits if limits else None)

    def arch_dims(self):
        """The run's non-card sizes, for parameter counts, FLOPs and overlaps."""
        from flexibert.model.cost import ArchDims

        return ArchDims(vocab_size=self.vocab_size or ArchDims.vocab_size, position_embedding_type=self.positions)


OracleConfig = ReplayConfig | TrainConfig
ORACLE_CONFIGS: dict[str, type[ReplayConfig] | type[TrainConfig]] = {"replay": ReplayConfig, "train": TrainConfig}
ORACLES: tuple[str, ...] = tuple(ORACLE_CONFIGS)


@dataclass(frozen=True)
class SearchConfig:
    """What defines a run; stored in its database and reused as-is by ``--resume``.

    Stored with :data:`SCHEMA`, so a run stored by an earlier version resumes as it was measured
    (:func:`_upgrade`)."""

    task: str
    oracle: OracleConfig
    acquisition: str = "ucb"
    beta: float = 2.0
    ci: float = 0.005
    k: int = 10
    seed: int = 0
    budget: int | None = None  # trials, seeds included
    max_attempts: int = 2
    min_trained: int = 10
    threshold_start: float = 0.9
    threshold_step: float = 0.1

    def __post_init__(self) -> None:
        if not isinstance(self.oracle, (ReplayConfig, TrainConfig)):
            raise FlexiBertError(f"the oracle config must be a ReplayConfig or a TrainConfig, got {self.oracle!r}")
        check_acquisition(self.acquisition)
        if self.budget is not None and self.budget < 1:
            raise FlexiBertError(f"--budget must be >= 1 trial, got {self.budget}")
        if not self.ci > 0:
            raise FlexiBertError(f"the confidence interval must be > 0, got {self.ci}")
        if self.max_attempts < 1:
            raise FlexiBertError(f"max_attempts must be >= 1, got {self.max_attempts}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["oracle"] = {"kind": self.oracle.kind, **d["oracle"]}
        return {"schema": SCHEMA, **d}

    @classmethod
    def from_dict(cls, d: Any) -> "SearchConfig":
        if not isinstance(d, dict):
            raise FlexiBertError(f"run config: expected a mapping, got {type(d).__name__}")
        if isinstance(d.get("oracle"), str):
            d = _nest_flat(d)
        d = _upgrade(d)
        raw = d.get("oracle")
        if not isinstance(raw, dict):
            raise FlexiBertError("run config: 'oracle' must be a mapping with a 'kind'")
        raw = dict(raw)
        kind = raw.pop("kind", None)
        if kind not in ORACLE_CONFIGS:
            raise FlexiBertError(f"run config: unknown oracle {kind!r}; expected one of {list(ORACLES)}")
        oracle = build_config(ORACLE_CONFIGS[kind], raw, f"'oracle' ({kind})")
        return build_config(cls, {**d, "oracle": oracle}, "the search")


def measured_before(schema: Any) -> dict[str, Any]:
    """The training settings added since a stored config's ``schema``, at the values its work was measured
    with, so a run stored by an earlier version resumes as it was measured; a newer schema is refused."""
    if not isinstance(schema, int) or not 1 <= schema <= SCHEMA:
        raise FlexiBertError(f"the stored config has schema {schema!r}; this version reads 1 to {SCHEMA} "
                             "(a newer FlexiBERT wrote it)")
    return {key: value for version, added in MEASURED_BEFORE.items() if schema < version
            for key, value in added.items()}


def _upgrade(d: dict[str, Any]) -> dict[str, Any]:
    """A stored config at :data:`SCHEMA` (:func:`measured_before`); other settings take their defaults."""
    d = dict(d)
    added = measured_before(d.pop("schema", 1))
    oracle = d.get("oracle")
    if added and isinstance(oracle, dict) and oracle.get("kind") == "train":
        d["oracle"] = {**added, **oracle}
    return d


def _nest_flat(d: dict[str, Any]) -> dict[str, Any]:
    """A config stored before each oracle had its own section: one flat dict, ``oracle`` a name.

    Each oracle takes its own keys; the other oracle's (always stored, never used) are dropped,
    and a train run's training seed was the search seed.
    """
    d = dict(d)
    kind = d.pop("oracle")
    if kind not in ORACLE_CONFIGS:
        raise FlexiBertError(f"run config: unknown oracle {kind!r}; expected one of {list(ORACLES)}")
    own = {f.name for f in dataclasses.fields(ORACLE_CONFIGS[kind])} - {"seed"}
    every = {f.name for c in ORACLE_CONFIGS.values() for f in dataclasses.fields(c)} - {"seed"}
    moved = {k: d.pop(k) for k in every & set(d)}
    oracle = {k: v for k, v in moved.items() if k in own}
    if kind == "train":
        oracle["seed"] = d.get("seed", 0)
        oracle["seed_checkpoints"] = oracle.get("seed_checkpoints") or {}
    return {**d, "oracle": {"kind": kind, **oracle}}


def space_library(oracle: OracleConfig, build: bool = True):
    """The space library an oracle config names: ``library`` itself when it is a built library, else
    the library of ``space`` under that base directory, built there when ``build`` (readers never build)."""
    from flexibert.space.design_space import DesignSpace
    from flexibert.space.library import (
        BuildParams,
        SpaceLibrary,
        build_space,
        library_dir,
    )

    if not oracle.space:
        raise FlexiBertError(f"the {oracle.kind} oracle config names no design space")
    space = DesignSpace.from_yaml(oracle.space, rule=oracle.rule)
    base = Path(oracle.library or DEFAULT_LIBRARY)
    if (base / "manifest.json").is_file():
        lib = SpaceLibrary.open(base)
        if (lib.manifest.get("spec_hash"), lib.manifest.get("rule")) != (space.spec_hash, space.rule):
            raise FlexiBertError(f"space library {base} was built for another space than {oracle.space} ({space.rule})")
        return lib
    if build:
        return build_space(space, base)
    return SpaceLibrary.open(library_dir(base, space, BuildParams()))
