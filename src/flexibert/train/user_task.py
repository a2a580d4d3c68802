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
from flexibert.train.data import Files, label_text, labels_in, load_split
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
        # Checked by type: YAML hands over what the user typed, and a number or a quoted "no" would
        # otherwise read as a column position or as true.
        for col in (*cols, self.label_column):
            if not isinstance(col, str) or not col:
                raise FlexiBertError(f"task {self.name}: column names must be non-empty strings, got {col!r}")
        if not isinstance(self.regression, bool):
            raise FlexiBertError(f"task {self.name}: 'regression' must be true or false, got {self.regression!r}")
        if self.labels is not None and not isinstance(self.labels, (list, tuple)):
            raise FlexiBertError(f"task {self.name}: 'labels' must be a list, got {self.labels!r}")
        if self.labels is not None:
            if self.regression:
                raise FlexiBertError(f"task {self.name}: give 'labels' or 'regression: true', not both")
            object.__setattr__(self, "labels", tuple(label_text(x) for x in self.labels))
        for split in ("train", "dev"):
            path = Path(getattr(self, split))
            if path.is_dir():
                raise FlexiBertError(f"task {self.name}: {split} is a directory, not a file: {path}")
            if not path.is_file():
                raise FlexiBertError(f"task {self.name}: {split} file not found: {path}")
        if self.labels is None and not self.regression:  # stored resolved: every trial and reader agrees, and
            labels = labels_in(self.train, self.label_column)  # a bad row fails now
            if len(labels) < 2:
                raise FlexiBertError(f"{self.train}: column {self.label_column!r} holds the one label {labels[0]!r}; "
                                     "a classifier needs two or more (or set regression: true)")
            object.__setattr__(self, "labels", labels)

    def check(self, holdout: int | None = None) -> int:
        """Read both files through the task and return the number of training examples.

        Run where the user starts a job: a bad row or a too-small file then fails at once, in one line
        naming the file, line and column, and not later in a search worker, where it only fails a trial.
        ``holdout``: the validation examples to be carved from train, which must leave some to train on.
        """
        task, source = self.task(), self.source()
        n = len(load_split(source, task, "train"))
        load_split(source, task, "dev")
        if holdout is not None and not 0 < holdout < n:
            raise FlexiBertError(f"{self.train}: a validation holdout of {holdout} needs more than {holdout} "
                                 f"training examples; the file has {n}")
        return n

    @classmethod
    def from_mapping(cls, raw: Any, base_dir: str | Path = ".", holdout: int | None = None) -> "UserTask":
        """From a run config's ``task:`` mapping, its files checked (:meth:`check`, with ``holdout``);
        relative paths resolve against ``base_dir``."""
        if not isinstance(raw, dict):
            raise FlexiBertError(f"task: expected a GLUE task name or a mapping, got {type(raw).__name__}")
        missing = [k for k in ("name", "train", "dev") if not raw.get(k)]
        if missing:
            raise FlexiBertError(f"task: missing key(s) {missing}")
        paths = {k: str((Path(base_dir) / Path(raw[k]).expanduser()).resolve()) for k in ("train", "dev")}
        user = build_config(cls, {**raw, **paths}, "'task'")
        user.check(holdout)
        return user

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


def resolve_task(task: "str | dict[str, Any] | UserTask", data: Any = None) -> tuple[Task, Any]:
    """``(Task, DataSource)`` of a run, a search or a command: a user task (its dict or itself) over its own
    files, or a GLUE task by name on ``data`` (a GLUE directory, a HF dataset spec, or None)."""
    from flexibert.train.data import as_source
    from flexibert.train.tasks import get_task

    if isinstance(task, dict):
        task = UserTask(**task)
    if isinstance(task, UserTask):
        return task.task(), task.source()
    return get_task(task), as_source(data)
