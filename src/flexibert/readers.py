"""Read the JSON and YAML files users hand us, with one-line errors that name the file.

A missing file or a syntax error becomes a :class:`FlexiBertError` giving the path
and, for syntax errors, the line and column: the CLI prints it and exits 2.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from flexibert.errors import FlexiBertError


def read_json(path: str | Path, missing: str) -> Any:
    """Parsed JSON of ``path``; ``missing`` is the message when the file does not exist."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FlexiBertError(missing) from None
    except json.JSONDecodeError as e:
        raise FlexiBertError(f"malformed JSON in {path} at line {e.lineno}, column {e.colno}: {e.msg}") from None


def read_yaml(path: str | Path, missing: str) -> Any:
    """Parsed YAML of ``path``; ``missing`` is the message when the file does not exist."""
    path = Path(path)
    try:
        return yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise FlexiBertError(missing) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise FlexiBertError(f"malformed YAML in {path}{where}: {getattr(e, 'problem', e)}") from None
