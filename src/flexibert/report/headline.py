"""The block a report opens with: the answer to the run's question, before any detail of the search.

With a confirmed :class:`~flexibert.report.data.Answer` it is the winner beside the
reference (scores, retention, size, latency, speed-up), the baseline and the budget,
then the finalists. Without one it is the best measured model the budget allows,
said to be unconfirmed: a model over budget is never put forward.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from flexibert.report.analysis import allowed_measured, best_measured
from flexibert.report.data import LATENCY_KEYS, Answer, ReportData, baseline_standing
from flexibert.report.labels import (
    card_label,
    giga,
    kept,
    limit,
    millions,
    percent,
    score,
    times,
)
from flexibert.report.tables import CARD_NOTE, Table


@dataclass(frozen=True)
class Headline:
    """The opening block; ``key`` holds the winner, reference and retention lines the page shows first."""

    title: str
    key: tuple[tuple[str, str, str], ...]  # (id, label, text): winner, reference, retention, ...
    lines: tuple[str, ...]  # plain sentences under the key facts
    tables: tuple[Table, ...]

    def markdown(self) -> str:
        parts = [f"## {self.title}", ""]
        parts += [f"- **{label}**: {text}" for _, label, text in self.key]
        parts += [""] + [f"{line}\n" for line in self.lines]
        parts += [t.markdown() for t in self.tables]
        return "\n".join(parts)

    def html(self) -> str:
        key = "".join(
            f'<dt>{html.escape(label)}</dt><dd id="fb-{name}">{html.escape(text)}</dd>'
            for name, label, text in self.key
        )
        lines = "".join(f"<p>{html.escape(line)}</p>" for line in self.lines)
        tables = "".join(t.html() for t in self.tables)
        return (
            f'<section id="fb-answer"><h2>{html.escape(self.title)}</h2>'
            f'<dl class="answer">{key}</dl>{lines}{tables}</section>'
        )


def _model(m: Mapping[str, Any]) -> str:
    return (f"{m['name']}, " if "name" in m else "") + card_label(m["card"])


def _dev(m: Mapping[str, Any]) -> str:
    if "dev_sd" in m:
        seeds = f", {m['n_seeds']} seeds" if "n_seeds" in m else ""
        return f"{m['dev']:.4f} ± {m['dev_sd']:.4f}{seeds}"
    return score(m["dev"])


def _latency(m: Mapping[str, Any] | None, batch: str) -> str:
    return "–" if m is None or m.get("latency_ms") is None else f"{m['latency_ms'][batch]:.2f} ms"


def _budget_line(data: ReportData, costs: Mapping[str, float | None]) -> str:
    """The limits, each with the lead model's own cost beside it."""
    if not data.budget:
        return "none set"
    parts = []
    for key, value in data.budget.items():
        cost = costs.get(key)
        shown = {"max_params": millions, "max_flops": giga}.get(key, lambda x: f"{x:.2f} ms")
        parts.append(limit(key, value) + ("" if cost is None else f": this model {shown(cost)}"))
    return "; ".join(parts)


def _comparison(answer: Answer) -> Table:
    """Winner, reference, their ratio and the baseline, row by row; columns without data are left out."""
    w, r, b = answer.winner, answer.reference, answer.baseline
    ret, speed, metric = answer.retention, answer.speedup, answer.metric
    header = ["", "winner"]
    if r is not None:
        header += [f"reference{': ' + r['name'] if 'name' in r else ''}", "winner vs reference"]
    if b is not None:
        header.append(f"baseline: {b['name']}")
    rows = []

    def row(label: str, win: str, ref: Callable[[Mapping[str, Any]], str], ratio: str, base: str = "–") -> None:
        rows.append((label, win, *((ref(r), ratio) if r is not None else ()), *((base,) if b is not None else ())))

    row(f"validation {metric}", score(w["validation"]), lambda m: score(m["validation"]),
        f"{percent(ret['validation'])} retained" if ret else "–", score(b["validation"]) if b else "–")
    row(f"dev {metric}", _dev(w), _dev, f"{kept(ret)} retained" if ret else "–",
        score(b["dev"]) if b else "–")
    row("params", millions(w["params"]), lambda m: millions(m["params"]), times(w["params"] / r["params"]) if r else "")
    row("FLOPs (forward, sequence 128)", giga(w["flops"]), lambda m: giga(m["flops"]),
        times(w["flops"] / r["flops"]) if r else "")
    for batch in LATENCY_KEYS:
        row(f"latency, {batch.replace('_', ' ')}", _latency(w, batch), lambda m: _latency(m, batch),
            f"{times(speed[batch])} faster" if speed else "–")
    return Table("", tuple(header), tuple(rows))


def _finalists(answer: Answer) -> Table:
    metric = answer.metric
    header = ("", "card", f"search's validation {metric}", f"validation {metric}", f"dev {metric}", "params", "FLOPs",
              "latency batch 1", "latency batch 32")
    rows = tuple(
        ("winner" if f["winner"] else "", str(f["card"]), score(f["proxy"]), score(f["validation"]), score(f["dev"]),
         millions(f["params"]), giga(f["flops"]), _latency(f, "batch_1"), _latency(f, "batch_32"))
        for f in answer.finalists
    )
    note = f"retrained under the confirmation recipe, as the reference was, and scored again; {CARD_NOTE}"
    if answer.winner.get("refit"):
        note += "; the winner's dev score is that of its refit on the whole training split"
    return Table(f"Finalists ({len(rows)})", header, rows, note)


def _confirmed(data: ReportData, answer: Answer) -> Headline:
    w, r, b = answer.winner, answer.reference, answer.baseline
    key = [("winner", "winner (confirmed)", f"{_model(w)}: dev {answer.metric} {_dev(w)}")]
    if r is not None:
        key.append(("reference", "reference", f"{_model(r)}: dev {answer.metric} {_dev(r)}"))
    if answer.retention is not None:
        ret = answer.retention
        key.append(("retention", "retention", f"{kept(ret)} of the reference's dev {answer.metric}, "
                                             f"{percent(ret['validation'])} of its validation {answer.metric}"))
    if r is not None:
        size = f"{times(w['params'] / r['params'])} the reference's params, {times(w['flops'] / r['flops'])} its FLOPs"
        key.append(("size", "size", f"{millions(w['params'])} params, {giga(w['flops'])} FLOPs: {size}"))
    if answer.speedup is not None:
        s = answer.speedup
        key.append(("speedup", "speed-up", f"{times(s['batch_1'])} at batch 1, {times(s['batch_32'])} at batch 32 "
                                           f"({_latency(w, 'batch_1')} vs {_latency(r, 'batch_1')} at batch 1)"))
    costs = {"max_params": w["params"], "max_flops": w["flops"],
             "max_latency_ms": w["latency_ms"]["batch_1"] if w["latency_ms"] else None}
    key.append(("budget", "budget", _budget_line(data, costs)))
    lines = []
    if b is not None:
        standing = baseline_standing(w, b)
        if standing == "as good":
            lines.append(f"{b['name']} scores {b['dev']:.4f} dev {answer.metric}, no less than the winner's "
                         f"{w['dev']:.4f}: a bag of words does as well here.")
        elif standing == "unsettled":
            lines.append(f"{b['name']} scores {b['dev']:.4f} dev {answer.metric}, {w['dev'] - b['dev']:.4f} below "
                         f"the winner, but {b['validation']:.4f} on validation against its {w['validation']:.4f}: "
                         "the two splits disagree, so the encoder's edge over a bag of words is not settled.")
        else:
            lines.append(f"{b['name']} scores {b['dev']:.4f} dev {answer.metric}, "
                         f"{w['dev'] - b['dev']:.4f} below the winner: the encoder earns its cost.")
    if w.get("refit"):
        lines.append("Once the winner was chosen on validation, it" + (" and the reference were" if r else " was")
                     + " retrained on the whole training split, the held-out texts included: the dev scores are "
                     "those of the retrained models, the validation scores those the choice was made on.")
    if answer.data is not None:
        lines.append(_data_line(answer.data))
    tables = [_comparison(answer)] + ([_finalists(answer)] if answer.finalists else [])
    return Headline(f"Answer: {answer.question}", tuple(key), tuple(lines), tuple(tables))


def _data_line(split: Mapping[str, Any]) -> str:
    """How validation was carved out of train, and what dev already shares with train."""
    held = f"Validation: {split['validation']:,} training examples held out"
    if split["method"] == "grouped":
        held += (f", whole texts only, and the {split['dropped']:,} training examples that share their text "
                 f"dropped ({split['train']:,} left to train on).")
    else:
        held += f" at random ({split['train']:,} left to train on): phrases of held-out texts may be trained on."
    for name, o in split.get("dev_overlap", {}).items():
        held += (f" {name}: {o['exact']} of {o['dev']:,} duplicate a training example, {o['inside_train']} are "
                 f"inside one.")
    return held


def _unconfirmed(data: ReportData) -> Headline:
    metric = data.metric_name
    within = " within budget" if data.budget else ""
    best = best_measured(data)
    over = len(data.measured) - len(allowed_measured(data))
    lines = ["Unconfirmed: scored once by the search, not retrained and scored on dev by a confirmation."]
    if over:
        lines.append(f"{over} measured model(s) over the budget are left out.")
    if best is None:
        key = [("winner", f"best measured model{within}", "none: no measured model fits the budget"
                if data.measured else "none: no model has been measured yet")]
        costs: dict[str, float | None] = {}
    else:
        latency = "" if data.latency_ms is None else f", latency {data.latency_ms[best]:.2f} ms"
        flops = "" if data.flops is None else f", {giga(data.flops[best])} FLOPs"
        key = [("winner", f"best measured model{within}",
                f"#{best} {data.cards[best]}: {metric} {data.measured[best]:.4f}, "
                f"{millions(data.params[best])} params{flops}{latency}")]
        costs = {"max_params": data.params[best], "max_flops": None if data.flops is None else data.flops[best],
                 "max_latency_ms": None if data.latency_ms is None else data.latency_ms[best]}
    key.append(("budget", "budget", _budget_line(data, costs)))
    return Headline(f"Best measured model{within} (unconfirmed)", tuple(key), tuple(lines), ())


def headline(data: ReportData) -> Headline:
    """The report's opening block."""
    return _unconfirmed(data) if data.answer is None else _confirmed(data, data.answer)
