"""The space library on disk and the ``flexibert space`` commands, run as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from flexibert.space.library import BuildParams, SpaceLibrary, build_space
from tests.conftest import ROOT, SMALL_SPACE


def flexibert(*args: str, cwd=ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flexibert.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "COLUMNS": "200"}, timeout=600)


def test_build_writes_a_reusable_library(tmp_path, small_space, study):
    params = BuildParams(dims=2, sweep=(2,), k=10)
    lib = build_space(small_space, tmp_path, params)
    assert lib.hashes == study["hashes"]
    assert [c.to_dict() for c in lib.cards] == [c.to_dict() for c in small_space]
    assert lib.embeddings.shape == (2037, 2) and lib.neighbours.shape == (2037, 10)
    assert lib.manifest["duplicates"] == 0 and lib.manifest["unique_hashes"] == 2037
    assert lib.sweep[2] == pytest.approx(lib.manifest["frobenius_error"])
    assert lib.dissimilarity.shape == (2037, 2037)
    assert not list(lib.root.glob(".*.tmp"))  # atomic writes leave no temp files
    stamp = (lib.root / "embedding.npz").stat().st_mtime_ns
    again = build_space(small_space, tmp_path, params)
    assert again.root == lib.root and (lib.root / "embedding.npz").stat().st_mtime_ns == stamp
    reopened = SpaceLibrary.open(lib.root)
    assert np.array_equal(reopened.neighbours, lib.neighbours)
    # A different parameter set gets its own directory; the first is untouched.
    assert build_space(small_space, tmp_path, BuildParams(dims=2, sweep=(2,), k=5)).root != lib.root


def test_cli_count_and_show():
    out = flexibert("space", "count", "--space", str(SMALL_SPACE))
    assert out.returncode == 0, out.stderr
    assert "total: 2,037" in out.stdout and "l=4: 1,875" in out.stdout
    out = flexibert("space", "count", "--space", str(SMALL_SPACE), "--rule", "full")
    assert "total: 332,352" in out.stdout
    card = json.dumps({"l": 2, "a": [2, 2], "h": [128, 128], "f": [512, 512], "s": ["sdp", "sdp"]})
    out = flexibert("space", "show", "--space", str(SMALL_SPACE), "--card", card)
    assert out.returncode == 0 and "35e82e537b2d32fbaf46b662e1458956" in out.stdout


@pytest.mark.parametrize(
    "spec, card, message",
    [
        ("layers: [2, 4\n", None, "malformed YAML"),
        ("layers: [2]\nheads: [2]\nhidden: [128]\nfeed_forward: [512]\nsimilarity: [sdp]\nextra: 1\n", None,
         "unknown key"),
        (None, '{"l": 2, "a": [2], "h": [128, 128], "f": [512, 512], "s": ["sdp", "sdp"]}', "has 1 entries"),
        (None, '{"l": 2, "a": [4, 2], "h": [256, 256], "f": [512, 512], "s": ["sdp", "sdp"]}', "non-decreasing"),
        (None, '{"l": 2, "a": [2, 2], "h": [128, 128], "f": [512, 4096], "s": ["sdp", "sdp"]}', "not in the space"),
        (None, '{"l": 2, "a": [2, 2], ', "malformed model card"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(tmp_path, spec, card, message):
    space = SMALL_SPACE
    if spec is not None:
        space = tmp_path / "bad.yaml"
        space.write_text(spec)
    args = ["space", "show", "--space", str(space)] + (["--card", card] if card else [])
    out = flexibert(*args)
    assert out.returncode == 2
    assert message in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
