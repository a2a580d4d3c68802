"""Distillation at full fidelity, in a finished run: its winner refitted again with the run's refitted seed as
the teacher, paired by training seed with the run's own refit of the same winner (no teacher).

    python bench/distill_run.py runs/pretrained-sst2              # 3 seeds: ~20 min on 2 cores for MiniLM's child
    python bench/distill_run.py runs/pretrained-sst2 --alpha 0.7 --temperature 4

The run must have confirmed with ``confirm.refit`` and no ``confirm.distill``. Each arm starts from the
winner's initial weights, trains on the whole training split (holdout included) under the run's recipe
and training seed, and is scored on dev; the only difference is the teacher's logits in the loss. The
teacher is the refitted seed of the first training seed (it has seen the same data the child refits on).
The named baseline is the run's own refit (``plain``): read from the run rather than trained again, as
training is deterministic for a seed on one machine; the distilled arm trains here.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1] / "src")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from _common import mean_sd, summary  # noqa: E402

from flexibert.search.oracles import TrainOracle  # noqa: E402
from flexibert.search.results import RunResults, mean_ci95  # noqa: E402
from flexibert.train.distill import Distillation  # noqa: E402
from flexibert.train.trial import train_trial  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--alpha", type=float, default=0.5)
    ap.add_argument("--temperature", type=float, default=2.0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", type=Path, default=None, help="where the distilled arm trains (default: <run>/bench-distill)")
    args = ap.parse_args()
    results = RunResults(args.run)
    winner, reference = results.winner, results.reference
    if not (winner and reference and winner.get("refit")) or winner.get("distilled"):
        sys.exit(f"{args.run}: needs a run confirmed with confirm.refit and without confirm.distill")
    trial = next(t for t in results.trials() if t.card == winner["card"])
    oracle = TrainOracle(results.config.task, results.config.oracle)
    recipe = {k: v for k, v in json.loads((args.run / "config.json").read_text())["confirm"].items()
              if k in ("epochs", "lr") and v is not None}  # the run's confirmation recipe, as it was stored
    teacher = Distillation(Path(reference["runs"][0]["checkpoint"]), args.alpha, args.temperature)
    out = args.out or args.run / "bench-distill"
    tag = f"a{args.alpha:g}-t{args.temperature:g}"
    plain, distilled = [], []
    for r in winner["runs"]:
        seed = r["seed"]
        spec = oracle.spec(trial.card, results.initial_checkpoint(trial), args.threads, None, full=True, seed=seed,
                           distill=teacher, refit=True, **recipe)
        d = train_trial(spec, out / f"{tag}-seed{seed}")
        plain.append(r["dev"])
        distilled.append(results.task().score(d.metrics))
        print(json.dumps({"seed": seed, "plain": round(plain[-1], 4), "distill": round(distilled[-1], 4),
                          "train_s": round(d.train_s, 1)}), flush=True)
    gains = [d - p for d, p in zip(distilled, plain)]
    (p_mean, p_sd), (d_mean, d_sd), (g_mean, _) = mean_sd(plain), mean_sd(distilled), mean_sd(gains)
    ref = reference["dev"]
    print(f"teacher: the refitted seed, seed {reference['runs'][0]['seed']} (dev {reference['runs'][0]['dev']:.4f})")
    print(f"plain (the run's refit)  dev {p_mean:.4f} ± {p_sd:.4f}   retention {p_mean / ref:.2%}")
    print(f"distill ({tag})      dev {d_mean:.4f} ± {d_sd:.4f}   retention {d_mean / ref:.2%}")
    ci = mean_ci95(gains)
    print(f"paired dev gain {g_mean:+.4f}" + ("" if ci is None else f" ± {ci:.4f} (95% Student-t CI)")
          + f"; ratio distill / plain {d_mean / p_mean:.4f}")
    summary({"dev_plain": round(p_mean, 4), "dev_distill": round(d_mean, 4), "paired_gain_dev": round(g_mean, 4),
             "paired_gain_dev_ci95": None if ci is None else round(ci, 4), "reference_dev": round(ref, 4),
             "alpha": args.alpha, "temperature": args.temperature, "n_seeds": len(gains)})


if __name__ == "__main__":
    main()
