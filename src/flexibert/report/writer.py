"""``write_report``: every figure, table and page of a report, written atomically into one folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from flexibert._common import FlexiBertError, write_json, write_text
from flexibert.report import figures as fg
from flexibert.report.analysis import (
    JUDGED,
    allowed_measured,
    best_measured,
    best_predicted,
    pareto_front,
    spearman_interval,
)
from flexibert.report.data import ReportData
from flexibert.report.headline import Headline, headline
from flexibert.report.labels import card_label, millions
from flexibert.report.layout import MapLayout, map_layout
from flexibert.report.page import render_page
from flexibert.report.tables import Table, choice_table, depth_table, ranking_tables

FIGURES = (
    ("block", "Block graph of the lead model: one box per layer, input to output", lambda d, lay: fg.block_figure(d)),
    ("pareto", "Score vs cost, with the Pareto front, the budget and the lead model",
     lambda d, lay: fg.pareto_figure(d)),
    ("knee", "Embedding error vs dimension, with the dissimilarity matrix", lambda d, lay: fg.knee_figure(d)),
    ("map", "t-SNE map of the space, seed models marked", fg.map_figure),
    ("map_accuracy", "t-SNE map coloured by measured and by predicted score", fg.accuracy_map_figure),
    ("quality", "Surrogate held-out quality over the search, Spearman with its 95% interval",
     lambda d, lay: fg.quality_figure(d)),
)


@dataclass(frozen=True)
class ReportFiles:
    out_dir: Path
    html: Path
    markdown: Path
    summary: Path
    figures: tuple[Path, ...]  # a PNG and an SVG per figure


def _entry(data: ReportData, i: int) -> dict[str, Any]:
    return {
        "index": int(i),
        "card": data.cards[i].to_dict(),
        "label": str(data.cards[i]),
        "params": int(data.params[i]),
        "measured": data.measured.get(int(i)),
        "predicted_mean": float(data.predicted_mean[i]),
        "predicted_std": float(data.predicted_std[i]),
        "fits_budget": bool(data.allowed[i]),
    }


def _measured_front(data: ReportData) -> list[int]:
    idx = data.measured_indices
    return idx[pareto_front(data.params[idx], data.measured_values)].tolist() if len(idx) else []


def _quality(data: ReportData) -> str:
    """The latest held-out quality with Spearman's 95% interval, and a warning while the sample is too small."""
    q = data.quality[-1]
    n = int(q["n_trained"])
    interval = spearman_interval(q["spearman"], n)
    spread = "" if interval is None else f" (95% interval {interval[0]:.2f} to {interval[1]:.2f})"
    text = f"Spearman {q['spearman']:.3f}{spread}, Kendall {q['kendall']:.3f}, MAE {q['mae']:.4f} at {n} models trained"
    if n < JUDGED:
        text += f": too few models to judge (under {JUDGED})"
    return text


def _facts(data: ReportData, layout: MapLayout) -> list[tuple[str, str]]:
    metric = data.metric_name
    facts = [
        ("task", f"{data.task} ({metric})"),
        (
            "models in the space",
            f"{data.n:,}" + ("" if len(layout.indices) == data.n else f" ({len(layout.indices):,} on the map)"),
        ),
        ("models trained (measured)", f"{len(data.measured):,}"),
        ("seed models", ", ".join(f"#{i} {card_label(data.cards[i])}" for i in data.seeds) or "none"),
    ]
    within = ""
    if data.budget:
        over = data.n - int(data.allowed.sum())
        facts.append(("models over the budget", f"{over:,} of {data.n:,}"))
        within = " within budget"
    best = best_measured(data)
    excluded = len(data.measured) - len(allowed_measured(data))
    left_out = f" ({excluded} measured models over the budget left out)" if excluded else ""
    facts.append(
        (
            f"best measured {metric}{within}",
            "none" + left_out
            if best is None
            else f"{data.measured[best]:.4f}: #{best} {data.cards[best]}, "
            f"{millions(data.params[best])} params{left_out}",
        )
    )
    top = best_predicted(data)
    facts.append(
        (
            f"best predicted {metric}{within} (surrogate)",
            "none"
            if top is None
            else f"{data.predicted_mean[top]:.4f} ± "
            f"{data.predicted_std[top]:.4f}: #{top} {data.cards[top]}, {millions(data.params[top])} params",
        )
    )
    facts.append(("measured Pareto front", f"{len(_measured_front(data))} models"))
    m = data.embeddings.shape[1]
    error = f", Frobenius error {data.sweep[m]:.2f}" if m in data.sweep else ""
    facts.append(("embedding dimension", f"{m}{error}"))
    if data.quality:
        facts.append(("surrogate held-out quality (latest)", _quality(data)))
    return facts


def _markdown(
    data: ReportData,
    head: Headline,
    facts: Sequence[tuple[str, str]],
    figures: Sequence[tuple[str, Path, Path]],
    tables: Sequence[Table],
) -> str:
    parts = [
        f"# {data.title}",
        "",
        head.markdown(),
        "## The search",
        "",
        *(f"- **{k}**: {v}" for k, v in facts),
        "",
        "Interactive map: [report.html](report.html)",
        "",
        "## Figures",
        "",
    ]
    for title, png, svg in figures:
        parts += [f"![{title}]({png.name})", "", f"_{title}_ ([SVG]({svg.name}))", ""]
    parts += ["## Tables", ""] + [t.markdown() for t in tables]
    return "\n".join(parts)


def write_report(data: ReportData, out_dir: str | Path) -> ReportFiles:
    """Write figures (PNG+SVG), ``report.md``, ``report.html`` and ``summary.json`` into ``out_dir``.

    Every file is written atomically and nothing outside ``out_dir`` is touched; the
    t-SNE layout is cached there as ``tsne.npz`` so a repeated report skips it.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise FlexiBertError(f"report folder {out_dir} exists and is not a directory")
    out_dir.mkdir(parents=True, exist_ok=True)
    layout = map_layout(data, cache=out_dir / "tsne.npz")
    figures = []
    for stem, title, draw in FIGURES:
        png, svg = fg.save(draw(data, layout), out_dir, stem)
        figures.append((title, png, svg))
    tables = [*ranking_tables(data), choice_table(data), depth_table(data)]
    facts = _facts(data, layout)
    head = headline(data)
    markdown = write_text(out_dir / "report.md", _markdown(data, head, facts, figures, tables))
    page = write_text(out_dir / "report.html", render_page(data, layout, head, facts, figures, tables))
    best, top = best_measured(data), best_predicted(data)
    summary = {
        "title": data.title,
        "task": data.task,
        "metric": data.metric_name,
        "answer": None if data.answer is None else data.answer.to_json(),
        "budget": data.budget,
        "models": data.n,
        "over_budget": None if data.fits_budget is None else int(data.n - data.fits_budget.sum()),
        "map_models": len(layout.indices),
        "measured": len(data.measured),
        "seeds": [_entry(data, i) for i in data.seeds],
        "embedding_dim": int(data.embeddings.shape[1]),
        "sweep": {str(m): e for m, e in data.sweep.items()},
        "best_measured": None if best is None else _entry(data, best),
        "best_predicted": None if top is None else _entry(data, top),
        "pareto_front": [_entry(data, i) for i in _measured_front(data)],
        "surrogate_quality": data.quality[-1] if data.quality else None,
        "files": {
            "html": page.name,
            "markdown": markdown.name,
            "figures": [p.name for _, png, svg in figures for p in (png, svg)],
        },
    }
    path = write_json(out_dir / "summary.json", summary)
    return ReportFiles(out_dir, page, markdown, path, tuple(p for _, png, svg in figures for p in (png, svg)))
