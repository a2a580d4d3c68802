"""Benchmark the command line's start-up: wall time of fresh processes, median of several runs.

Baseline run in the same process: ``python -c "import torch, transformers"``, what every command
paid before the Auto classes were registered lazily (``import flexibert`` loaded the model).

    python bench/startup.py            # 7 runs of each
    python bench/startup.py --runs 11
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, SMALL_SPACE, summary  # noqa: E402

FLEXIBERT = str(Path(sys.executable).with_name("flexibert"))  # the installed entry point, as a user runs it
#: Each figure's key: the command line it times, as shown, and as run.
COMMANDS = {
    "help_s": ("flexibert --help", [FLEXIBERT, "--help"]),
    "space_count_s": ("flexibert space count --space flexibert-small.yaml",
                      [FLEXIBERT, "space", "count", "--space", str(SMALL_SPACE)]),
    "import_space_s": ('python -c "import flexibert.space"', [sys.executable, "-c", "import flexibert.space"]),
    "baseline_torch_import_s": ('python -c "import torch, transformers"  (baseline)',
                                [sys.executable, "-c", "import torch, transformers"]),
}


def median_wall(argv: list[str], runs: int) -> float:
    """Median wall time of ``runs`` fresh processes, after one untimed run warms the file cache."""
    subprocess.run(argv, cwd=ROOT, check=True, capture_output=True)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(argv, cwd=ROOT, check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def torch_loaded_by_space() -> bool:
    """Whether ``import flexibert.space`` puts torch in ``sys.modules``."""
    code = "import sys, flexibert.space; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True, text=True)
    return done.stdout.strip() == "True"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs of each command (>= 5)")
    args = parser.parse_args()
    if args.runs < 5:
        parser.error("--runs must be at least 5")

    figures: dict = {}
    for key, (shown, argv) in COMMANDS.items():
        figures[key] = round(median_wall(argv, args.runs), 3)
        print(f"{figures[key]:6.3f} s  {shown}", flush=True)
    base = figures["baseline_torch_import_s"]
    figures["help_ratio_vs_torch_import"] = round(figures["help_s"] / base, 3)
    figures["space_count_ratio_vs_torch_import"] = round(figures["space_count_s"] / base, 3)
    figures["torch_loaded_by_space"] = torch_loaded_by_space()
    print(f"--help / import torch, transformers:      {figures['help_ratio_vs_torch_import']:.2f}x")
    print(f"space count / import torch, transformers: {figures['space_count_ratio_vs_torch_import']:.2f}x")
    print(f"torch loaded by import flexibert.space:   {figures['torch_loaded_by_space']}")
    summary(figures)


if __name__ == "__main__":
    main()
