"""The package's layering, checked on the source: data flows one way through the stages.

Each module may import only its own stage and the stages below it; some stages never import
some modules at all (:data:`NEVER`): ``space/`` never torch or transformers (counting, hashing
and embedding stay light, checked in a fresh interpreter too), ``report/`` never ``train/``.
No library module imports the CLI. Imports inside functions count too: a lazy import is still an edge.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "flexibert"
STAGES = ["_common", "space", "model", "train", "search", "report", "run", "cli"]
RANK = {stage: i for i, stage in enumerate(STAGES)}
if (PACKAGE / "pipeline.py").exists():  # the main job before it moved to run/
    RANK["pipeline"] = RANK["run"]
HEAVY = ("torch", "transformers", "safetensors", "tokenizers", "datasets")
#: Modules a stage never imports, not even lazily, whatever the stage order allows.
NEVER = {
    "space": HEAVY,
    "report": ("flexibert.train",),  # a report reads results; it never trains or tokenizes
}


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
    unknown = {m for m in MODULES if m != "flexibert" and _stage(m) not in RANK}
    assert not unknown


@pytest.mark.parametrize("name", sorted(m for m in MODULES if m != "flexibert"))
def test_no_module_imports_a_stage_above_it(name):
    rank = RANK[_stage(name)]
    above = sorted(
        imp for imp in _imports(name, MODULES[name])
        if imp.startswith("flexibert.") and imp in MODULES and _stage(imp) in RANK and RANK[_stage(imp)] > rank
    )
    assert not above, f"{name} imports {above}, a stage above {_stage(name)}"


def _never(name: str, imports: set[str]) -> list[str]:
    """The imports of module ``name`` that its stage's :data:`NEVER` rule forbids."""
    forbidden = NEVER.get(_stage(name), ())
    return sorted(i for i in imports if any(i == f or i.startswith(f + ".") for f in forbidden))


@pytest.mark.parametrize("name", sorted(m for m in MODULES if _stage(m) in NEVER))
def test_no_module_makes_an_import_its_stage_never_makes(name):
    found = _never(name, _imports(name, MODULES[name]))
    assert not found, f"{name} imports {found}, which {_stage(name)} never imports"


def test_space_leaves_torch_unloaded_in_a_fresh_interpreter():
    """What the source rule cannot see: a light import that loads torch further down (``flexibert/__init__``)."""
    space = sorted(m for m in MODULES if _stage(m) == "space")
    code = f"import json, sys\nfor m in {space!r}: __import__(m)\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = {m.split(".")[0] for m in json.loads(done.stdout.strip().splitlines()[-1])}
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_no_library_module_imports_the_cli():
    for name, path in MODULES.items():
        if _stage(name) != "cli":
            assert not any(i == "flexibert.cli" or i.startswith("flexibert.cli.") for i in _imports(name, path)), name


def test_the_checker_sees_a_violation(tmp_path):
    """The rules can fail: a space module importing torch and the search stage, a report module training, are caught."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    import torch\n    from flexibert.search.loop import run_search\n")
    found = _imports("flexibert.space.bad", bad)
    assert "flexibert.search.loop" in found and RANK["search"] > RANK["space"]
    assert _never("flexibert.space.bad", found) == ["torch"]
    bad.write_text("from flexibert.train import tasks\n")
    found = _imports("flexibert.report.bad", bad)
    assert _never("flexibert.report.bad", found) == ["flexibert.train", "flexibert.train.tasks"]
