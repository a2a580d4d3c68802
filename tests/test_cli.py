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
    (["train", "--card", "bert-tiny", "--task", "sst2", "--threads", "abc"], "Invalid value for '--threads'"),
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


@pytest.mark.parametrize(("args", "message"), [
    (["--set", "epochs=abc"], "profile quick: epochs must be a positive number, got 'abc'"),
    (["--set", "epochs"], "expected KEY=VALUE"),
    (["--set", "colour=red"], "unknown profile field(s) ['colour']"),
])
def test_bad_recipe_override_is_one_line_and_exit_code_2(tmp_path, args, message):
    done = _run(["train", "--seed-model", "bert-tiny", "--task", "sst2", "--workdir", str(tmp_path / "w"), *args])
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().splitlines() == [f"error: {message}"] or message in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "w").exists()


def test_bare_command_prints_help_and_succeeds():
    done = _run([])
    assert done.returncode == 0
    assert "Usage" in done.stdout and "search" in done.stdout

