"""A user's long-text multi-class task, run as a user would: the pretrained quickstart's config with only
``task:`` changed. Does the confirmed winner at least match the run's own TF-IDF baseline on dev?

The corpus is real third-party text that every Debian machine has offline: the manual pages under
``/usr/share/man``, rendered by ``man``, each labelled by its section (1 user commands, 2 system calls,
3 library functions, 7 overviews and conventions, 8 administration commands). A page's own header and
footer name its section, so they are cut; the rest is the page as a reader sees it, often thousands of
words. The same number of pages per section is drawn with a fixed seed, then split 80/20 into train
and dev files (CSV: ``text,label``), as a user would hand them over.

Prints the winner beside the baseline (the ratio of their dev accuracies) and ends with one JSON line.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("1", "2", "3", "7", "8")
MAN = Path("/usr/share/man")


def _source(path: Path) -> str:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", errors="replace") as f:
        return f.read()


def render(path: Path) -> str:
    """The page as ``man`` shows it, less its header and footer lines (they name the section)."""
    env = {**os.environ, "MANWIDTH": "100", "MAN_KEEP_FORMATTING": "0", "LC_ALL": "C.UTF-8"}
    out = subprocess.run(["man", "-l", str(path)], capture_output=True, text=True, env=env, timeout=60,
                         errors="replace").stdout
    lines = [line.rstrip() for line in re.sub(r".\x08", "", out).splitlines()]
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    return " ".join(" ".join(lines[1:-1]).split())


def pages(section: str) -> list[Path]:
    """The section's page files (gzipped troff), links to other pages included: :func:`build` skips those."""
    return [p for p in sorted((MAN / f"man{section}").glob("*")) if p.is_file() and not p.is_symlink()]


def build(out: Path, per_section: int, seed: int, min_words: int = 50) -> dict[str, int]:
    """Write ``train.csv`` and ``dev.csv`` under ``out``; returns the rows written per split."""
    rng = random.Random(seed)
    rows: list[tuple[str, str]] = []
    for section in SECTIONS:
        candidates = pages(section)
        rng.shuffle(candidates)
        kept = []
        for path in candidates:
            if _source(path).lstrip().startswith(".so "):  # a link to another page
                continue
            text = render(path)
            if len(text.split()) >= min_words:
                kept.append((text, f"man{section}"))
            if len(kept) == per_section:
                break
        if len(kept) < per_section:
            raise SystemExit(f"section {section}: only {len(kept)} pages of at least {min_words} words")
        rows += kept
    rng.shuffle(rows)
    cut = len(rows) * 4 // 5
    out.mkdir(parents=True, exist_ok=True)
    for name, part in (("train", rows[:cut]), ("dev", rows[cut:])):
        with open(out / f"{name}.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["text", "label"])
            writer.writerows(part)
    return {"train": cut, "dev": len(rows) - cut}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/bench-longtext", help="where the corpus, config and run go")
    p.add_argument("--per-section", type=int, default=250, help="pages drawn per section (5 sections; section 2 holds about 270)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--config", default=str(ROOT / "configs" / "quickstart-pretrained.yaml"),
                   help="the config copied, only its task changed")
    args = p.parse_args()
    out = Path(args.out).resolve()
    data = out / "data"
    if not (data / "dev.csv").exists():
        t0 = time.perf_counter()
        sizes = build(data, args.per_section, args.seed)
        print(f"corpus: {sizes['train']} training and {sizes['dev']} dev pages from {MAN}, "
              f"{time.perf_counter() - t0:.0f} s", flush=True)
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # a page can run past csv's default 128 KiB field
    words = [len(r["text"].split()) for r in csv.DictReader(open(data / "train.csv"))]
    words.sort()
    print(f"words per training page: median {words[len(words) // 2]}, 95th percentile "
          f"{words[int(len(words) * 0.95)]}", flush=True)
    cfg = yaml.safe_load(Path(args.config).read_text())
    cfg["task"] = {"name": "man-sections", "train": str(data / "train.csv"), "dev": str(data / "dev.csv")}
    cfg["name"] = "bench-longtext"
    space = Path(cfg["space"]["file"])  # the config's paths are relative to the checkout, where it is run from
    cfg["space"]["file"] = str(space if space.is_absolute() else (ROOT / space).resolve())
    config = out / "config.yaml"
    config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "flexibert.cli", "run", str(config), "--out", str(out / "run")],
                          cwd=ROOT, stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the run failed (exit {done.returncode})")
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    winner, base = summary["winner"], summary["baseline"]
    dev = summary["best_dev_accuracy"]
    stages = json.loads((out / "run" / "stages.json").read_text())
    print(f"winner {summary['best_card']}: dev {dev:.4f}; baseline ({base['name']}, the same run): dev "
          f"{base['dev']:.4f}; ratio {dev / base['dev']:.3f}x; reference dev "
          f"{(summary.get('reference') or {}).get('dev')}; wall {time.perf_counter() - t0:.0f} s")
    print(json.dumps({"task": "man-sections", "train": len(words), "winner_dev": dev, "baseline_dev": base["dev"],
                      "winner_over_baseline": round(dev / base["dev"], 4),
                      "reference_dev": (summary.get("reference") or {}).get("dev"),
                      "retention_dev": (summary.get("retention") or {}).get("dev"),
                      "max_seq_len": stages["data"]["max_seq_len"], "winner": winner and winner["card"],
                      "wall_s": summary.get("wall_s")}))


if __name__ == "__main__":
    main()
