"""The GLUE task registry: what each task reads, which labels it has and how it is scored.

A :class:`Task` is pure description (no data). Columns are given for both GLUE
sources: the standard TSV download (header names, or 0-based positions for
CoLA's headerless files) and the Hugging Face ``glue`` dataset. Labels are the
strings found in the TSV files, in the order of the Hugging Face class ids, so
both sources map a label to the same id. ``labels=None`` means regression.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from flexibert._common import FlexiBertError


@dataclass(frozen=True)
class Task:
    """One sentence or sentence-pair task: its labels, its metrics and the columns that hold it."""

    name: str
    labels: tuple[str, ...] | None  # None: regression
    metrics: tuple[str, ...]
    text_columns: tuple[str, ...]  # HF dataset / user-file column names
    label_column: str = "label"
    dev_splits: tuple[str, ...] = ("dev",)
    glue_dir: str | None = None  # folder name in a GLUE download, e.g. "SST-2"
    tsv_text: tuple[str | int, ...] = ()  # GLUE TSV columns: header names, or positions when headerless
    tsv_label: str | int = "label"
    hf_config: str | None = None
    hf_splits: Mapping[str, str] = field(default_factory=dict)  # our split name -> HF split name

    @property
    def is_regression(self) -> bool:
        return self.labels is None

    @property
    def num_labels(self) -> int:
        return 1 if self.labels is None else len(self.labels)

    @property
    def num_texts(self) -> int:
        return len(self.text_columns)

    def metric_keys(self) -> list[str]:
        """Keys of the reported metrics: plain for the first dev split, suffixed for the others."""
        keys = []
        for i, split in enumerate(self.dev_splits):
            suffix = "" if i == 0 else "_" + split.removeprefix("dev_")
            keys += [m + suffix for m in self.metrics]
        return keys

    def score(self, metrics: Mapping[str, float]) -> float:
        """The task's single GLUE score: the mean of its reported metrics (e.g. MRPC's F1 and accuracy)."""
        keys = self.metric_keys()
        missing = [k for k in keys if k not in metrics]
        if missing:
            raise FlexiBertError(f"task {self.name}: metrics missing {missing}")
        return sum(float(metrics[k]) for k in keys) / len(keys)


def _glue(name: str, folder: str, labels: tuple[str, ...] | None, metrics: tuple[str, ...],
          text: tuple[str, ...], tsv_text: tuple[str | int, ...], tsv_label: str | int = "label",
          dev_splits: tuple[str, ...] = ("dev",)) -> Task:
    hf_splits = {"train": "train", **{s: s.replace("dev", "validation") for s in dev_splits}}
    return Task(name=name, labels=labels, metrics=metrics, text_columns=text, dev_splits=dev_splits,
                glue_dir=folder, tsv_text=tsv_text, tsv_label=tsv_label, hf_config=name, hf_splits=hf_splits)


_BINARY = ("0", "1")
_NLI2 = ("entailment", "not_entailment")

GLUE_TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        _glue("cola", "CoLA", _BINARY, ("mcc",), ("sentence",), (3,), 1),
        _glue("sst2", "SST-2", _BINARY, ("accuracy",), ("sentence",), ("sentence",)),
        _glue("mrpc", "MRPC", _BINARY, ("f1", "accuracy"), ("sentence1", "sentence2"),
              ("#1 String", "#2 String"), "Quality"),
        _glue("qqp", "QQP", _BINARY, ("f1", "accuracy"), ("question1", "question2"),
              ("question1", "question2"), "is_duplicate"),
        _glue("stsb", "STS-B", None, ("pearson", "spearman"), ("sentence1", "sentence2"),
              ("sentence1", "sentence2"), "score"),
        _glue("mnli", "MNLI", ("entailment", "neutral", "contradiction"), ("accuracy",), ("premise", "hypothesis"),
              ("sentence1", "sentence2"), "gold_label", dev_splits=("dev_matched", "dev_mismatched")),
        _glue("qnli", "QNLI", _NLI2, ("accuracy",), ("question", "sentence"), ("question", "sentence")),
        _glue("rte", "RTE", _NLI2, ("accuracy",), ("sentence1", "sentence2"), ("sentence1", "sentence2")),
        _glue("wnli", "WNLI", _BINARY, ("accuracy",), ("sentence1", "sentence2"), ("sentence1", "sentence2")),
    )
}


def get_task(name: str | Task) -> Task:
    """Look up a GLUE task by any common spelling (``SST-2``, ``sst2``, ``sts_b``)."""
    if isinstance(name, Task):
        return name
    key = str(name).lower().replace("-", "").replace("_", "")
    if key not in GLUE_TASKS:
        raise FlexiBertError(f"unknown task {name!r}; expected one of {sorted(GLUE_TASKS)} or a custom Task")
    return GLUE_TASKS[key]


def custom_task(name: str, text_columns: tuple[str, ...] | list[str], label_column: str = "label",
                labels: tuple[str, ...] | list[str] | None = None, metrics: tuple[str, ...] | None = None) -> Task:
    """A user task over CSV/TSV/JSONL files; ``labels=None`` makes it a regression task."""
    from flexibert.train.metrics import METRICS

    text_columns = tuple(text_columns)
    if len(text_columns) not in (1, 2):
        raise FlexiBertError(f"task {name}: expected 1 or 2 text columns, got {list(text_columns)}")
    if labels is not None:
        labels = tuple(str(x) for x in labels)
        if len(labels) < 2 or len(set(labels)) != len(labels):
            raise FlexiBertError(f"task {name}: labels must be at least two distinct values, got {list(labels)}")
    if metrics is None:
        metrics = ("pearson", "spearman") if labels is None else ("accuracy",)
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise FlexiBertError(f"task {name}: unknown metric(s) {unknown}; expected some of {sorted(METRICS)}")
    return Task(name=name, labels=labels, metrics=tuple(metrics), text_columns=text_columns, label_column=label_column)
