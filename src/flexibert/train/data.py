"""Labelled examples from three sources behind one call, :func:`load_split`.

* :class:`GlueDir`: a directory in the standard GLUE TSV layout (``SST-2/train.tsv``);
* :class:`HFDataset`: Hugging Face ``datasets``, a hub id (its local cache when offline)
  or a directory written by ``save_to_disk``;
* :class:`Files`: the user's own CSV/TSV/JSONL files, read with a :func:`~flexibert.train.tasks.custom_task`
  that names the text and label columns.

Sources are small frozen dataclasses of paths and names, so a worker process can
rebuild the data from them. Every problem in a file is a :class:`FlexiBertError`
that names the file, the line and the column.
"""

from __future__ import annotations

import csv
import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Union

import numpy as np

from flexibert._common import FlexiBertError
from flexibert.train.tasks import Task

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # GLUE's QQP/MNLI rows can exceed the 128 KiB default


@dataclass(frozen=True)
class Examples:
    """Texts (one tuple per text column) and labels (class ids, or floats for regression)."""

    texts: tuple[tuple[str, ...], ...]
    labels: np.ndarray
    origin: str

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, n: int | None, seed: int = 42, draw: str = "random") -> "Examples":
        """``n`` examples drawn by ``seed``, kept in file order; the same on every machine. ``draw``: ``random``,
        or ``whole-first`` (:func:`~flexibert.train.holdout.whole_first`)."""
        from flexibert.train.holdout import check_subset_draw, whole_first

        check_subset_draw(draw)
        if n is None or n >= len(self):
            return self
        if draw == "random":
            return self.take(subset_indices(len(self), n, seed), f"{n} of {len(self)}, seed {seed}")
        return self.take(whole_first(list(zip(*self.texts)), n, seed), f"{n} of {len(self)}, {draw}, seed {seed}")

    def take(self, idx: np.ndarray, what: str) -> "Examples":
        """The examples at ``idx`` (kept in that order); ``what`` names the part in the origin."""
        return Examples(tuple(tuple(col[i] for i in idx) for col in self.texts), self.labels[idx],
                        f"{self.origin}[{what}]")

    def holdout(self, n: int, seed: int, split: str = "grouped") -> tuple["Examples", "Examples"]:
        """``(rest, validation)``: ``n`` examples carved out by ``seed``, both kept in file order; ``grouped``
        (:func:`~flexibert.train.holdout.plan_holdout`) drops from ``rest`` whatever shares text with them.

        Model selection scores on the validation part, so the dev split is only ever reported.
        """
        from flexibert.train.holdout import plan_holdout

        if not 0 < n < len(self):
            raise FlexiBertError(f"{self.origin}: a validation holdout needs 0 < n < {len(self)}, got {n}")
        plan = plan_holdout(list(zip(*self.texts)), n, seed, split)
        dropped = f", {len(plan.dropped)} sharing its text dropped" if len(plan.dropped) else ""
        return (self.take(plan.rest, f"train minus {n} held out{dropped}, seed {seed}"),
                self.take(plan.validation, f"{n} held out ({split}), seed {seed}"))


def subset_indices(total: int, n: int | None, seed: int = 42) -> np.ndarray:
    """Sorted indices of a seeded random ``n``-subset of ``range(total)`` (all of it when ``n`` is None)."""
    if n is None or n >= total:
        return np.arange(total)
    if n < 1:
        raise FlexiBertError(f"a subset needs at least 1 example, got {n}")
    return np.sort(np.random.default_rng(seed).permutation(total)[:n])


@dataclass(frozen=True)
class GlueDir:
    """The standard GLUE download: ``<root>/<TASK>/{train,dev}.tsv`` (MNLI: ``dev_matched.tsv`` ...)."""

    root: Path

    def path(self, task: Task, split: str) -> Path:
        if task.glue_dir is None:
            raise FlexiBertError(f"task {task.name} is not a GLUE task; use Files or HFDataset for it")
        return Path(self.root) / task.glue_dir / f"{split}.tsv"


@dataclass(frozen=True)
class HFDataset:
    """A Hugging Face dataset: a hub id (cached when offline) or a ``save_to_disk`` directory."""

    name: str = "nyu-mll/glue"

    @property
    def is_local(self) -> bool:
        return Path(self.name).is_dir()


@dataclass(frozen=True)
class Files:
    """The user's files, one per split, e.g. ``Files.of(train="a.csv", dev="b.jsonl")``."""

    splits: tuple[tuple[str, Path], ...]

    @classmethod
    def of(cls, **paths: str | Path) -> "Files":
        return cls(tuple((name, Path(p)) for name, p in paths.items()))

    def path(self, split: str) -> Path:
        for name, p in self.splits:
            if name == split:
                return p
        raise FlexiBertError(f"no file given for split {split!r}; given: {[n for n, _ in self.splits]}")


DataSource = Union[GlueDir, HFDataset, Files]


def as_source(data: DataSource | str | Path | None) -> DataSource:
    """Interpret a CLI-style argument: a GLUE directory, a ``save_to_disk`` directory or a hub id."""
    if data is None:
        return HFDataset()
    if isinstance(data, (GlueDir, HFDataset, Files)):
        return data
    path = Path(data).expanduser()
    if path.is_dir():
        if (path / "dataset_dict.json").exists() or (path / "state.json").exists():
            return HFDataset(str(path))
        return GlueDir(path)
    if isinstance(data, Path) or str(data).startswith((".", "/", "~")):
        raise FlexiBertError(f"data directory not found: {data}")
    return HFDataset(str(data))


def load_split(source: DataSource | str | Path | None, task: Task, split: str) -> Examples:
    """One split (``train``, ``dev``, or a task's other dev split) of ``task`` from ``source``."""
    source = as_source(source)
    if split != "train" and split not in task.dev_splits:
        expected = ["train", *task.dev_splits]
        raise FlexiBertError(f"task {task.name} has no split {split!r}; expected one of {expected}")
    if isinstance(source, GlueDir):
        path = source.path(task, split)
        header = all(isinstance(c, str) for c in (*task.tsv_text, task.tsv_label))
        rows = _read_delimited(path, "\t", header=header)
        examples = _parse_rows(rows, path, task, task.tsv_text, task.tsv_label)
    elif isinstance(source, Files):
        path = source.path(split)
        examples = _parse_rows(_read_file(path), path, task, task.text_columns, task.label_column, empty_text=False)
    else:
        examples = _load_hf(source, task, split)
    if len(examples) == 0:
        raise FlexiBertError(f"{examples.origin}: split {split!r} has no examples")
    return examples


def train_texts(source: DataSource | str | Path | None, task: Task) -> list[str]:
    """The distinct non-empty texts of the training split (both sides of pairs), in file order:
    the default corpus for a tokenizer and for MLM pretraining."""
    train = load_split(source, task, "train")
    return list(dict.fromkeys(t for col in train.texts for t in col if t))


def split_digest(source: DataSource | str | Path | None, task: Task, split: str) -> str:
    """A short key for caches of the split's encoding: it changes when the split's content can have changed."""
    source = as_source(source)
    if isinstance(source, GlueDir):
        parts: list[Any] = [_stat(source.path(task, split))]
    elif isinstance(source, Files):
        parts = [_stat(source.path(split))]
    else:
        root = Path(source.name)
        if source.is_local:
            parts = [str(root.resolve()), [_stat(p) for p in sorted(root.rglob("*.arrow"))]]
        else:
            parts = [source.name]
    parts += [task.name, task.labels, task.text_columns, task.label_column, split]
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:16]


def label_text(value: Any) -> str:
    """A label's name: JSON and YAML give numbers, and ``1.0`` must name the same class as ``1``."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def labels_in(path: str | Path, column: str) -> tuple[str, ...]:
    """The distinct labels of a user file's column, numerically sorted when they are all numbers."""
    path = Path(path)
    values = set()
    for line, row in _read_file(path):
        value = label_text(_field(row, column, path, line))
        if not value:  # a missing label would otherwise become a class of its own
            raise FlexiBertError(f"{path} line {line}, {_column_name(column)}: empty label")
        values.add(value)
    if not values:
        raise FlexiBertError(f"{path}: no rows to take labels from")
    try:
        return tuple(sorted(values, key=float))
    except ValueError:
        return tuple(sorted(values))


# -- readers ----------------------------------------------------------------------
Row = Union[dict[str, Any], list[str]]


def first_line(e: BaseException) -> str:
    """An exception as one line (library messages can span several)."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _stat(path: Path) -> list[Any]:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise FlexiBertError(f"data file not found: {path}") from None
    return [str(path.resolve()), st.st_size, st.st_mtime_ns]


def _open(path: Path):
    """A user file as text; ``utf-8-sig`` drops the byte-order mark Excel and Notepad write, which would
    otherwise glue itself to the first column's name (or break the first JSON line)."""
    try:
        return open(path, newline="", encoding="utf-8-sig")
    except FileNotFoundError:
        raise FlexiBertError(f"data file not found: {path}") from None
    except IsADirectoryError:
        raise FlexiBertError(f"data file is a directory: {path}") from None


def _read_file(path: Path) -> Iterator[tuple[int, Row]]:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        return _read_jsonl(path)
    if suffix in (".csv", ".tsv", ".txt"):
        return _read_delimited(path, "," if suffix == ".csv" else "\t", header=True)
    raise FlexiBertError(f"{path}: unsupported file type {suffix!r}; expected .csv, .tsv or .jsonl")


def _read_delimited(path: Path, delimiter: str, header: bool) -> Iterator[tuple[int, Row]]:
    """Rows as dicts keyed by the header (or lists when headerless) with their line numbers."""
    # GLUE's TSVs contain bare quote characters, so tabs split fields and quotes mean nothing.
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    with _open(path) as fh:
        reader = csv.reader(fh, delimiter=delimiter, quoting=quoting)
        try:
            names = next(reader) if header else None
        except StopIteration:
            return
        except (csv.Error, UnicodeDecodeError) as e:
            raise FlexiBertError(f"{path} line 1: unreadable header: {e}") from None
        if names is not None and len(set(names)) != len(names):
            raise FlexiBertError(f"{path} line 1: duplicate column names in header {names}")
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                return
            except (csv.Error, UnicodeDecodeError) as e:
                raise FlexiBertError(f"{path} line {reader.line_num + 1}: unreadable row: {e}") from None
            if not fields:
                continue
            if names is None:
                yield reader.line_num, fields
                continue
            if len(fields) != len(names):
                quoted = delimiter == "\t" and any(f.startswith('"') for f in fields)
                hint = ("; quotes are not special in a .tsv (GLUE style), so a text holding a tab or a newline "
                        "needs .csv or .jsonl") if quoted else ""
                raise FlexiBertError(
                    f"{path} line {reader.line_num}: expected {len(names)} columns as in the header, "
                    f"found {len(fields)}{hint}"
                )
            yield reader.line_num, dict(zip(names, fields))


def _read_jsonl(path: Path) -> Iterator[tuple[int, Row]]:
    with _open(path) as fh:
        for line_no, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise FlexiBertError(f"{path} line {line_no}, column {e.colno}: malformed JSON: {e.msg}") from None
            if not isinstance(obj, dict):
                raise FlexiBertError(f"{path} line {line_no}: expected a JSON object, got {type(obj).__name__}")
            yield line_no, obj


def _column_name(col: str | int) -> str:
    return f"column {col!r}" if isinstance(col, str) else f"column {col + 1}"


def _field(row: Row, col: str | int, path: Path, line: int) -> Any:
    if isinstance(row, dict):
        if not isinstance(col, str):
            raise FlexiBertError(f"{path} line {line}: positional {_column_name(col)} needs a headerless file")
        value = row.get(col)
        if value is None:
            what = "missing" if col not in row else "null in"
            raise FlexiBertError(f"{path} line {line}: {what} {_column_name(col)}; columns are {list(row)}")
        return value
    if not isinstance(col, int) or col >= len(row):
        raise FlexiBertError(f"{path} line {line}: missing {_column_name(col)} (row has {len(row)} columns)")
    return row[col]


def _label_id(value: Any, task: Task, where: str) -> float | int:
    if task.labels is None:
        try:
            out = float(value)
        except (TypeError, ValueError):
            raise FlexiBertError(f"{where}: regression label is not a number: {value!r}") from None
        if not np.isfinite(out):
            raise FlexiBertError(f"{where}: regression label is not finite: {value!r}")
        return out
    text = label_text(value)
    if not text:
        raise FlexiBertError(f"{where}: empty label; expected one of {list(task.labels)}")
    try:
        return task.labels.index(text)
    except ValueError:
        raise FlexiBertError(f"{where}: unknown label {text!r}; expected one of {list(task.labels)}") from None


def _parse_rows(rows: Iterator[tuple[int, Row]], path: Path, task: Task,
                text_cols: tuple[str | int, ...], label_col: str | int, empty_text: bool = True) -> Examples:
    """Examples of ``rows``; ``empty_text=False`` (the user's files) refuses a blank text cell, which in
    a user's export is a missing value, not a sentence."""
    texts: list[list[str]] = [[] for _ in text_cols]
    labels: list[float | int] = []
    for line, row in rows:
        for out, col in zip(texts, text_cols):
            value = _field(row, col, path, line)
            if not isinstance(value, str):
                raise FlexiBertError(f"{path} line {line}, {_column_name(col)}: text must be a string, got {value!r}")
            if not empty_text and not value.strip():
                raise FlexiBertError(f"{path} line {line}, {_column_name(col)}: empty text")
            out.append(value.strip())
        where = f"{path} line {line}, {_column_name(label_col)}"
        labels.append(_label_id(_field(row, label_col, path, line), task, where))
    dtype = np.float32 if task.labels is None else np.int64
    return Examples(tuple(tuple(t) for t in texts), np.asarray(labels, dtype=dtype), str(path))


def _load_hf(source: HFDataset, task: Task, split: str) -> Examples:
    import datasets

    hf_split = task.hf_splits.get(split, "validation" if split == "dev" else split)
    origin = f"dataset {source.name}" + (f" ({task.hf_config})" if task.hf_config and not source.is_local else "")
    try:
        if source.is_local:
            ds = datasets.load_from_disk(source.name)
        else:
            ds = datasets.load_dataset(source.name, task.hf_config)
    except FileNotFoundError as e:
        raise FlexiBertError(f"{origin}: cannot load ({e}); offline, use a local save_to_disk directory") from None
    except (ValueError, ConnectionError, OSError) as e:
        raise FlexiBertError(f"{origin}: cannot load: {first_line(e)}") from None
    if isinstance(ds, datasets.DatasetDict):
        if hf_split not in ds:
            raise FlexiBertError(f"{origin}: no split {hf_split!r}; it has {sorted(ds)}")
        ds = ds[hf_split]
    elif split != "train" and not source.is_local:
        raise FlexiBertError(f"{origin}: a single dataset has no split {hf_split!r}")
    origin = f"{origin} split {hf_split}"
    missing = [c for c in (*task.text_columns, task.label_column) if c not in ds.column_names]
    if missing:
        raise FlexiBertError(f"{origin}: missing column(s) {missing}; columns are {ds.column_names}")
    texts = tuple(tuple("" if t is None else str(t).strip() for t in ds[c]) for c in task.text_columns)
    raw = list(ds[task.label_column])
    feature = ds.features.get(task.label_column)
    named = isinstance(feature, datasets.ClassLabel)
    labels = []
    for i, value in enumerate(raw):
        where = f"{origin} row {i}, column {task.label_column!r}"
        if named and task.labels is not None:
            if not 0 <= int(value) < task.num_labels:
                raise FlexiBertError(f"{where}: unknown label id {value!r}; expected 0..{task.num_labels - 1}")
            labels.append(int(value))
        else:
            labels.append(_label_id(value, task, where))
    dtype = np.float32 if task.labels is None else np.int64
    return Examples(texts, np.asarray(labels, dtype=dtype), origin)
