"""The package's layering, checked on the source: data flows one way through the stages.

Each module may import only its own stage and the stages below it; ``space/`` never
imports torch or transformers (counting, hashing and embedding stay light); no library
module imports the CLI. Imports inside functions count too: a lazy import is still an edge.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "flexibert"
STAGES = ["_common", "space", "model", "train", "search", "report", "pipeline", "cli"]
HEAVY = ("torch", "transformers", "safetensors", "tokenizers", "datasets")


def _stage(module: str) -> str | None:
    """Stage of a dotted module name inside the package (None for the package root itself)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        name = ".".join(rel.parts).removesuffix(".__init__")
        out[name] = path
    return out


def _imports(name: str, path: Path) -> set[str]:
    """Every module this file imports, relative imports resolved."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            found.add(mod)
            found |= {f"{mod}.{a.name}" for a in node.names}  # "from flexibert import cli"
    return found


MODULES = _modules()


def test_every_module_belongs_to_a_known_stage():
    unknown = {m for m in MODULES if m != "flexibert" and _stage(m) not in STAGES}
    assert not unknown


@pytest.mark.parametrize("name", sorted(m for m in MODULES if m != "flexibert"))
def test_no_module_imports_a_stage_above_it(name):
    rank = STAGES.index(_stage(name))
    above = sorted(
        imp for imp in _imports(name, MODULES[name])
        if imp.startswith("flexibert.") and imp in MODULES and _stage(imp) in STAGES
        and STAGES.index(_stage(imp)) > rank
    )
    assert not above, f"{name} imports {above}, a stage above {_stage(name)}"


def test_space_never_imports_torch():
    for name, path in MODULES.items():
        if _stage(name) == "space":
            heavy = sorted(i for i in _imports(name, path) if i.split(".")[0] in HEAVY)
            assert not heavy, f"{name} imports {heavy}"


def test_no_library_module_imports_the_cli():
    for name, path in MODULES.items():
        if _stage(name) != "cli":
            assert not any(i == "flexibert.cli" or i.startswith("flexibert.cli.") for i in _imports(name, path)), name


def test_the_checker_sees_a_violation(tmp_path):
    """The rules can fail: a space module importing torch and the search stage is caught."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    import torch\n    from flexibert.search.loop import run_search\n")
    found = _imports("flexibert.space.bad", bad)
    assert "torch" in found and "flexibert.search.loop" in found
    assert STAGES.index(_stage("flexibert.search.loop")) > STAGES.index("space")
