"""Start-up as a user meets it, each in a fresh interpreter: light commands never load torch, and
``import flexibert`` still registers the model with the Auto classes once ``transformers`` is used.

Only what is loaded is asserted, never a time: machines are noisy (``bench/startup.py`` times it).
``import flexibert.space`` staying light is ``tests/test_layering.py``'s.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SPACE = ROOT / "configs" / "spaces" / "flexibert-small.yaml"
HEAVY = ("torch", "transformers")
REPORT_HEAVY = "print('HEAVY=' + ','.join(m for m in {heavy!r} if m in sys.modules), file=sys.stderr)"


def _heavy_after(code: str, *args: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    """Run ``code`` in a fresh interpreter; which of :data:`HEAVY` it left loaded, even after ``sys.exit``."""
    wrapped = f"import sys\ntry:\n    {code}\nfinally:\n    {REPORT_HEAVY.format(heavy=HEAVY)}\n"
    done = subprocess.run([sys.executable, "-c", wrapped, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("HEAVY="), done.stderr[-2000:]
    return done, [m for m in last.removeprefix("HEAVY=").split(",") if m]


CLI = "from flexibert.cli import main; main(sys.argv[1:])"
CARD = json.dumps({"l": 2, "a": [2, 2], "h": [128, 128], "f": [512, 512], "s": ["sdp", "sdp"]})
LIGHT = {
    "import flexibert.cli": ("import flexibert.cli", []),
    "import flexibert": ("import flexibert", []),
    "--help": (CLI, ["--help"]),
    "space count": (CLI, ["space", "count", "--space", str(SPACE)]),
    "space show --card": (CLI, ["space", "show", "--space", str(SPACE), "--card", CARD]),
    "report --help": (CLI, ["report", "--help"]),
    "train --help": (CLI, ["train", "--help"]),
    "usage error": (CLI, ["nosuch"]),
}


@pytest.mark.parametrize("name", LIGHT)
def test_light_commands_leave_torch_unloaded(name):
    code, args = LIGHT[name]
    done, heavy = _heavy_after(code, *args)
    assert done.returncode in (0, 2), done.stderr[-2000:]
    assert heavy == [], f"{name} loaded {heavy}"


def test_space_count_still_counts():
    """The light path is the real one: the command does its work, not an early exit."""
    done, _ = _heavy_after(CLI, "space", "count", "--space", str(SPACE))
    assert done.returncode == 0 and "2,037" in done.stdout, done.stdout + done.stderr[-2000:]


def test_a_command_that_needs_torch_loads_it():
    """The checker can fail: a command that builds a model does put torch in ``sys.modules``."""
    _, heavy = _heavy_after("import flexibert.model.modeling_flexibert")
    assert "torch" in heavy


#: Ways a user meets the Auto classes: ``flexibert`` before ``transformers``, after it, an Auto module
#: first imported half-way through ``transformers.modeling_utils`` (a model import), and our own
#: modelling file imported directly (the Auto modules load half-way through it).
ORDERS = {
    "flexibert first": "import flexibert",
    "transformers first": "from transformers import AutoModel\nimport flexibert",
    "inside modeling_utils": "import flexibert\nfrom transformers import BertModel",
    "inside our modelling file": "import flexibert.model.modeling_flexibert",
}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    from flexibert.model import FlexiBertConfig, FlexiBertForSequenceClassification
    from flexibert.space import ModelCard

    path = tmp_path_factory.mktemp("checkpoint")
    config = FlexiBertConfig.from_card(ModelCard.homogeneous(l=2, a=2, h=64, f=128), vocab_size=200, num_labels=3)
    FlexiBertForSequenceClassification(config).save_pretrained(path)
    return path


@pytest.mark.parametrize("order", ORDERS)
def test_import_flexibert_registers_the_auto_classes(checkpoint, order):
    """The Hugging Face convention for a third-party model: importing the package is enough, no remote code."""
    code = (
        f"{ORDERS[order]}\n"
        "import inspect\n"
        "from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, PreTrainedModel\n"
        f"path = {str(checkpoint)!r}\n"
        "assert type(AutoConfig.from_pretrained(path)).__name__ == 'FlexiBertConfig'\n"
        "assert type(AutoModel.from_pretrained(path)).__name__ == 'FlexiBertModel'\n"
        "m = AutoModelForSequenceClassification.from_pretrained(path)\n"
        "assert type(m).__name__ == 'FlexiBertForSequenceClassification' and m.config.num_labels == 3\n"
        "assert 'def from_pretrained' in inspect.getsource(PreTrainedModel)  # the wrapped loaders keep sources\n"
        "assert not [f for f in sys.meta_path if type(f).__module__ == 'flexibert'], 'the hook outlived its work'\n"
    )
    done = subprocess.run([sys.executable, "-c", "import sys\n" + code], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]


def test_report_and_best_of_a_search_leave_torch_unloaded(tmp_path):
    """Reading a run (its report, its answer) never pays for torch: a replay search, then both commands."""
    from .conftest import SHARED

    study = SHARED / "flexibert-2021" / "dataset_small_sst2.json"
    run = tmp_path / "replay"
    done, _ = _heavy_after(CLI, "search", "--task", "sst2", "--table", str(study), "--budget", "12", "--out", str(run),
                           "--quiet")
    assert done.returncode == 0, done.stderr[-2000:]
    for args in (["report", str(run)], ["best", str(run)]):
        done, heavy = _heavy_after(CLI, *args)
        assert done.returncode == 0 and heavy == [], (args, heavy, done.stderr[-2000:])
    assert (run / "report" / "report.html").is_file()
    assert json.loads(done.stdout.strip().splitlines()[-1])["trials_done"] == 12
