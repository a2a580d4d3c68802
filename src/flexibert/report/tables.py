"""The report's tables, built once and rendered both as markdown and as HTML."""

from __future__ import annotations

import html
from dataclasses import dataclass

import numpy as np

from flexibert.report.analysis import (
    DIMENSION_NAMES,
    allowed_measured,
    choice_effects,
    depth_summary,
    top_k,
)
from flexibert.report.data import ReportData
from flexibert.report.labels import millions, score, score_pm

TOP = 10
CARD_NOTE = "card: L<layers>[per layer heads x hidden / feed-forward / similarity]"


@dataclass(frozen=True)
class Table:
    title: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    note: str = ""

    def markdown(self) -> str:
        def line(cells: tuple[str, ...]) -> str:
            return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

        parts = [f"### {self.title}", ""] if self.title else []
        if self.note:
            parts += [f"_{self.note}_", ""]
        parts += [line(self.header), line(tuple("---" for _ in self.header))]
        parts += [line(row) for row in self.rows]
        return "\n".join(parts) + "\n"

    def html(self) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in self.rows)
        note = f'<p class="note">{html.escape(self.note)}</p>' if self.note else ""
        title = f"<h3>{html.escape(self.title)}</h3>" if self.title else ""
        return (
            f"{title}{note}"
            f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        )


def _ranking(data: ReportData, title: str, indices: list[int], note: str) -> Table:
    metric = data.metric_name
    header = ("rank", "model", "card", "params", f"measured {metric}", f"predicted {metric} (surrogate) ± std")
    rows = tuple(
        (
            str(rank),
            f"#{i}",
            str(data.cards[i]),
            millions(data.params[i]),
            score(data.measured.get(i)),
            score_pm(data.predicted_mean[i], data.predicted_std[i]),
        )
        for rank, i in enumerate(indices, 1)
    )
    return Table(title, header, rows, note)


def ranking_tables(data: ReportData) -> list[Table]:
    """Best and worst models within budget, by measurement and by the surrogate's prediction.

    A pool smaller than two tables' worth is one ranked table: best and worst of a few
    models would be the same rows reversed.
    """
    within = " within budget" if data.budget else ""
    pools = (
        ("measured", allowed_measured(data), len(data.measured), lambda i: data.measured[i]),
        ("predicted (surrogate)", np.flatnonzero(data.allowed), data.n, lambda i: data.predicted_mean[i]),
    )
    tables = []
    for kind, idx, total, value in pools:
        over = total - len(idx)
        what = "measured model(s)" if kind == "measured" else "model(s)"
        note = CARD_NOTE + (f"; {over:,} {what} over the budget left out" if over else "")
        values = [value(i) for i in idx]
        if len(idx) < 2 * TOP:
            title = f"All {len(idx)} models{within}, ranked, {kind}"
            tables.append(_ranking(data, title, top_k(idx, values, data.params[idx], len(idx)), note))
            continue
        for word, largest in (("Best", True), ("Worst", False)):
            ranked = top_k(idx, values, data.params[idx], TOP, largest=largest)
            tables.append(_ranking(data, f"{word} {TOP} models{within}, {kind}", ranked, note))
    return tables


def choice_table(data: ReportData) -> Table:
    effects = choice_effects(data.cards, data.predicted_mean)
    depth = len(effects[0].by_layer)
    header = ("dimension", "value") + tuple(f"layer {j + 1}" for j in range(depth))
    rows = tuple(
        (DIMENSION_NAMES[e.dimension], str(e.value))
        + tuple("–" if cell is None else f"{cell[0]:.4f} ({cell[1]})" for cell in e.by_layer)
        for e in effects
    )
    note = (
        f"each cell: mean predicted {data.metric_name} (surrogate) of the models with that value "
        "at that layer position (number of models)"
    )
    return Table(f"Effect of each design choice on predicted {data.metric_name}, by layer", header, rows, note)


def depth_table(data: ReportData) -> Table:
    metric = data.metric_name
    header = (
        "layers",
        "models",
        f"mean predicted {metric}",
        f"best predicted {metric}",
        "measured models",
        f"mean measured {metric}",
        f"best measured {metric}",
    )
    rows = tuple(
        (
            str(d.layers),
            str(d.models),
            score(d.predicted_mean),
            score(d.predicted_max),
            str(d.measured),
            score(d.measured_mean),
            score(d.measured_max),
        )
        for d in depth_summary(data.cards, data.predicted_mean, data.measured)
    )
    return Table(f"Effect of depth: {metric} by number of layers", header, rows, "predicted: surrogate mean")
