"""The command line as a user meets it: usage errors are one line and exit code 2, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

USAGE_ERRORS = [
    (["train"], "Missing option"),
    (["nosuch"], "No such command 'nosuch'"),
    (["import-bert", "some-dir"], "Missing option '--out'"),
    (["train", "--card", "bert-tiny", "--task", "sst2", "--epochs", "abc"], "Invalid value for '--epochs'"),
    (["space", "count", "--nosuch-option"], "No such option"),
]


def _run(args: list[str]) -> subprocess.CompletedProcess:
    """The installed entry point's code path, in a fresh interpreter as a user runs it."""
    code = "import sys; from flexibert.cli import main; main(sys.argv[1:])"
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120, env=env)


@pytest.mark.parametrize(("args", "message"), USAGE_ERRORS, ids=[" ".join(a) for a, _ in USAGE_ERRORS])
def test_usage_error_is_one_line_and_exit_code_2(args, message):
    done = _run(args)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert message in lines[0] and "--help" in lines[0]


def test_bare_command_prints_help_and_succeeds():
    done = _run([])
    assert done.returncode == 0
    assert "Usage" in done.stdout and "search" in done.stdout


def test_import_flexibert_registers_the_auto_classes(tmp_path):
    """The Hugging Face convention for a third-party model: importing the package is enough."""
    from flexibert.model import FlexiBertConfig, FlexiBertForSequenceClassification
    from flexibert.space import ModelCard

    config = FlexiBertConfig.from_card(ModelCard.homogeneous(l=2, a=2, h=64, f=128), vocab_size=200, num_labels=3)
    FlexiBertForSequenceClassification(config).save_pretrained(tmp_path)
    code = (
        "import flexibert\n"
        "from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification\n"
        f"path = {str(tmp_path)!r}\n"
        "assert type(AutoConfig.from_pretrained(path)).__name__ == 'FlexiBertConfig'\n"
        "assert type(AutoModel.from_pretrained(path)).__name__ == 'FlexiBertModel'\n"
        "m = AutoModelForSequenceClassification.from_pretrained(path)\n"
        "assert type(m).__name__ == 'FlexiBertForSequenceClassification' and m.config.num_labels == 3\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
