"""A user's own task, as a run config or the command line states it: files, columns and labels.

It is plain data (stored in a run's database and shipped to workers as a dict) that resolves
to the :class:`~flexibert.train.tasks.Task` and :class:`~flexibert.train.data.Files` every
trial uses. Paths are made absolute against the folder of the file that named them, so a run
config works from any working directory.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flexibert._common import FlexiBertError, build_config
from flexibert.train.data import Files, labels_in
from flexibert.train.tasks import Task, custom_task


@dataclass(frozen=True)
class UserTask:
    """``{name, train, dev, text_columns, label_column, labels | regression}`` over CSV, TSV or JSONL files."""

    name: str
    train: str
    dev: str
    text_columns: tuple[str, ...] = ("text",)
    label_column: str = "label"
    labels: tuple[str, ...] | None = None  # None: the training file's distinct labels, read once here
    regression: bool = False

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise FlexiBertError("task: 'name' must be a non-empty string")
        cols = (self.text_columns,) if isinstance(self.text_columns, str) else tuple(self.text_columns)
        object.__setattr__(self, "text_columns", cols)
        if self.labels is not None:
            if self.regression:
                raise FlexiBertError(f"task {self.name}: give 'labels' or 'regression: true', not both")
            object.__setattr__(self, "labels", tuple(str(x) for x in self.labels))
        for split in ("train", "dev"):
            if not Path(getattr(self, split)).is_file():
                raise FlexiBertError(f"task {self.name}: {split} file not found: {getattr(self, split)}")
        if self.labels is None and not self.regression:  # stored resolved: every trial and reader agrees, and
            object.__setattr__(self, "labels", labels_in(self.train, self.label_column))  # a bad row fails now

    @classmethod
    def from_mapping(cls, raw: Any, base_dir: str | Path = ".") -> "UserTask":
        """From a run config's ``task:`` mapping; relative paths resolve against ``base_dir``."""
        if not isinstance(raw, dict):
            raise FlexiBertError(f"task: expected a GLUE task name or a mapping, got {type(raw).__name__}")
        missing = [k for k in ("name", "train", "dev") if not raw.get(k)]
        if missing:
            raise FlexiBertError(f"task: missing key(s) {missing}")
        paths = {k: str((Path(base_dir) / Path(raw[k]).expanduser()).resolve()) for k in ("train", "dev")}
        return build_config(cls, {**raw, **paths}, "'task'")

    def task(self) -> Task:
        """The task: a classifier over the labels, or a regression."""
        return custom_task(self.name, self.text_columns, self.label_column, self.labels)

    def source(self) -> Files:
        return Files.of(train=self.train, dev=self.dev)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["text_columns"] = list(self.text_columns)
        d["labels"] = list(self.labels) if self.labels is not None else None
        return d
