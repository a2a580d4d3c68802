"""The small shared ground of every stage: the user-input error, atomic writes, and readers of user files.

* :class:`FlexiBertError`: bad user input (a card, spec, data file, checkpoint). The CLI
  prints it as one line and exits 2; library callers catch it like any ``ValueError``.
* Atomic writes: a temp file (or directory) beside the target, fsynced, then renamed, so a
  reader or a run killed with ``kill -9`` sees the old output or the new one, never a torn one,
  and nothing already written is replaced.
* Readers: JSON and YAML that users hand us, with errors naming the file, line and column.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

import yaml


class FlexiBertError(ValueError):
    """Bad user input: a card, spec, data file or checkpoint that cannot be used."""



def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path beside ``path``; on success it replaces ``path`` in one rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        tmp_path.chmod(0o666 & ~_umask())  # mkstemp makes files private; results are meant to be shared
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def atomic_write(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp)`` and move the result into place atomically."""
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda p: p.write_text(text))


def write_json(path: str | Path, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")

def ensure_new(path: Path) -> None:
    """Refuse, before any work, an output that would replace something already written."""
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise FlexiBertError(f"output {path} already exists and is not an empty directory; choose another")


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temp directory beside ``path``; on success it becomes ``path`` in one rename.

    ``path`` must not exist or be an empty directory: nothing already written is replaced.
    """
    path = Path(path)
    ensure_new(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    tmp.chmod(0o755)  # mkdtemp's 0700 would make the checkpoint private
    try:
        yield tmp
        for f in tmp.rglob("*"):
            if f.is_file():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
        os.replace(tmp, path)  # POSIX: atomic, and allowed onto an empty directory
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def read_json(path: str | Path, missing: str) -> Any:
    """Parsed JSON of ``path``; ``missing`` is the message when the file does not exist."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FlexiBertError(missing) from None
    except json.JSONDecodeError as e:
        raise FlexiBertError(f"malformed JSON in {path} at line {e.lineno}, column {e.colno}: {e.msg}") from None


class _Loader(yaml.SafeLoader):
    """YAML 1.1's safe loader, reading ``1e-4`` as a number as YAML 1.2 and JSON do (1.1 wants ``1.0e-4``,
    and users write learning rates the short way)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


def parse_yaml(text: str) -> Any:
    """YAML text as Python values (``yaml.YAMLError`` on malformed text), numbers in exponent form included."""
    return yaml.load(text, Loader=_Loader)


def read_yaml(path: str | Path, missing: str) -> Any:
    """Parsed YAML of ``path``; ``missing`` is the message when the file does not exist."""
    path = Path(path)
    try:
        return parse_yaml(path.read_text())
    except FileNotFoundError:
        raise FlexiBertError(missing) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise FlexiBertError(f"malformed YAML in {path}{where}: {getattr(e, 'problem', e)}") from None


def build_config(cls: type, raw: Any, where: str) -> Any:
    """``cls(**raw)`` for a config dataclass read from a user's file, naming unknown and missing keys
    (and any value the class rejects) in one line; ``None`` gives the defaults."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise FlexiBertError(f"run config: {where} must be a mapping, got {type(raw).__name__}")
    fields = dataclasses.fields(cls)
    unknown = sorted(set(raw) - {f.name for f in fields})
    if unknown:
        raise FlexiBertError(f"run config: unknown key(s) {unknown} in {where}; "
                             f"expected {sorted(f.name for f in fields)}")
    missing = [f.name for f in fields if f.name not in raw and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise FlexiBertError(f"run config: missing key(s) {missing} in {where}")
    try:
        return cls(**raw)
    except TypeError as e:  # a value of the wrong type, e.g. a hand-edited file
        raise FlexiBertError(f"run config: a bad value in {where}: {e}") from None


def positive_number(name: str, value: Any, kind: type) -> None:
    """A positive int (``kind=int``) or finite positive number (``kind=float``), else one clear error."""
    ok = isinstance(value, (int, float) if kind is float else int) and not isinstance(value, bool)
    if not ok or not value > 0 or (kind is float and not math.isfinite(value)):
        noun = "number" if kind is float else "integer"
        raise FlexiBertError(f"{name} must be a positive {noun}, got {value!r}")
