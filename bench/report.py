"""Benchmark report generation on the study's 2037 models (and, with --full, the 332,352-model space).

Baseline, in the same process: the cold report (t-SNE computed); the figure is the
rerun that reuses the cached layout, as ``flexibert report`` does after each round.
With --full, the full-rule space is embedded by landmarks, a GP fitted on the
study's measured models predicts all 332,352 in chunks, and the report maps a
5000-model subsample.

    python bench/report.py           # the 2037-model study library
    python bench/report.py --full    # plus the 332,352-model space
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SMALL_SPACE, STUDY_JSON, summary  # noqa: E402

from flexibert.report import ReportData, write_report  # noqa: E402
from flexibert.search.surrogate import GPSurrogate  # noqa: E402
from flexibert.space.design_space import DesignSpace, ModelCard  # noqa: E402
from flexibert.space.embed import frobenius_error  # noqa: E402
from flexibert.space.graphs import card_to_graph  # noqa: E402
from flexibert.space.kernel import dissimilarity, wl_features, wl_kernel  # noqa: E402

SEEDS = [(2, 2, 128, 512), (4, 4, 256, 1024), (2, 4, 256, 1024), (4, 2, 128, 512)]


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def study_data(study: dict) -> ReportData:
    cards = [ModelCard.from_dict(d) for d in study["model_dicts"]]
    emb = np.array(study["embeddings"])
    measured = {i: a["SST-2"] for i, a in enumerate(study["accuracies"]) if a.get("SST-2") is not None}
    idx = sorted(measured)
    mean, std = GPSurrogate().fit(emb[idx], np.array([measured[i] for i in idx])).predict(emb)
    dis = dissimilarity(wl_kernel(wl_features([card_to_graph(c) for c in cards])))
    return ReportData(
        cards=cards,
        embeddings=emb,
        measured=measured,
        predicted_mean=mean,
        predicted_std=std,
        seeds=[cards.index(ModelCard.homogeneous(*s)) for s in SEEDS],
        sweep={8: frobenius_error(dis, emb)},
        dissimilarity=dis,
        title="FlexiBERT 2021 study library (SST-2)",
    )


def full_space_data(study: dict) -> ReportData:
    from flexibert.space.embed import landmark_embed

    cards = list(DesignSpace.from_yaml(SMALL_SPACE, rule="full"))
    position = {c.key: i for i, c in enumerate(cards)}
    emb = landmark_embed(wl_features([card_to_graph(c) for c in cards]), m=8, n_landmarks=1000).coords
    measured = {
        position[ModelCard.from_dict(d).key]: a["SST-2"]
        for d, a in zip(study["model_dicts"], study["accuracies"])
        if a.get("SST-2") is not None
    }
    idx = sorted(measured)
    mean, std = GPSurrogate().fit(emb[idx], np.array([measured[i] for i in idx])).predict(emb)
    return ReportData(
        cards=cards,
        embeddings=emb,
        measured=measured,
        predicted_mean=mean,
        predicted_std=std,
        seeds=[position[ModelCard.homogeneous(*s).key] for s in SEEDS],
        title="FlexiBERT full-rule space (SST-2)",
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--full", action="store_true", help="also report on the 332,352-model full-rule space")
    args = parser.parse_args()
    study = json.loads(STUDY_JSON.read_text())
    figures: dict[str, float | int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = study_data(study)
        out = Path(tmp) / "study"
        cold, files = timed(lambda: write_report(data, out))
        warm, _ = timed(lambda: write_report(data, out))
        figures.update(
            study_models=data.n,
            study_report_cold_s=round(cold, 2),
            study_report_cached_s=round(warm, 2),
            cached_vs_cold_speedup=round(cold / warm, 2),
            study_html_mb=round(files.html.stat().st_size / 2**20, 2),
        )
        print(f"study: cold report {cold:.1f} s (baseline), cached rerun {warm:.1f} s: {cold / warm:.1f}x", flush=True)
        if args.full:
            prep, big = timed(lambda: full_space_data(study))
            full, files = timed(lambda: write_report(big, Path(tmp) / "full"))
            figures.update(
                full_models=big.n,
                full_prepare_s=round(prep, 1),
                full_report_s=round(full, 1),
                full_map_models=json.loads(files.summary.read_text())["map_models"],
                full_html_mb=round(files.html.stat().st_size / 2**20, 2),
                full_svg_mb=round(sum(p.stat().st_size for p in files.figures if p.suffix == ".svg") / 2**20, 2),
            )
            print(f"full space: {big.n} models, prepared in {prep:.0f} s, report in {full:.0f} s", flush=True)
    figures["peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    summary(figures)


if __name__ == "__main__":
    main()
