"""The report's static figures (matplotlib, no pyplot: nothing global, safe in workers and headless).

Each ``*_figure`` function draws one figure from :class:`ReportData`; :func:`save`
writes it as PNG and SVG. Large background scatters are rasterised so the SVG of
a 330k-model space stays small.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, Polygon, Rectangle

from flexibert._common import atomic_path
from flexibert.report.analysis import index_of, lead, pareto_front, spearman_interval
from flexibert.report.data import ReportData
from flexibert.report.labels import card_label
from flexibert.report.layout import MapLayout
from flexibert.space.design_space import ModelCard

MAX_MATRIX = 3000  # the inset shows at most this many rows and columns of the dissimilarity matrix
CMAP = "viridis"


def save(fig: Figure, out_dir: Path, stem: str) -> list[Path]:
    """Write ``stem.png`` and ``stem.svg`` atomically."""
    paths = []
    for fmt, extra in (("png", {"dpi": 150}), ("svg", {"metadata": {"Date": None}})):
        path = out_dir / f"{stem}.{fmt}"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, bbox_inches="tight", **extra)
        paths.append(path)
    return paths


def _no_data(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="grey")
    ax.set_xticks([])
    ax.set_yticks([])


def knee_figure(data: ReportData) -> Figure:
    """Embedding error against dimension m, the chosen m marked; the dissimilarity matrix as an inset."""
    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.subplots()
    chosen = data.embeddings.shape[1]
    ax.set_title(f"Transformer2vec: embedding error vs dimension (chosen m = {chosen})")
    if data.sweep:
        ms, errors = list(data.sweep), list(data.sweep.values())
        ax.plot(ms, errors, "o-", color="tab:blue")
        if max(ms) >= 4 * min(ms):
            ax.set_xscale("log", base=2)
        ax.set_xticks(ms, [str(m) for m in ms])
        ax.minorticks_off()
        ax.axvline(chosen, ls="--", color="grey", lw=1)
        if chosen in data.sweep:
            ax.annotate(
                f"m = {chosen}: {data.sweep[chosen]:.2f}",
                (chosen, data.sweep[chosen]),
                textcoords="offset points",
                xytext=(-8, 8),
                ha="right",
            )
        ax.set_xlabel("embedding dimension m")
        ax.set_ylabel(r"Frobenius error $\|D - \hat{D}\|_F$")
    else:
        _no_data(ax, "no data: no dimension sweep was recorded")
    if data.dissimilarity is not None:
        step = max(1, -(-data.n // MAX_MATRIX))
        matrix = data.dissimilarity[::step, ::step]
        inset = ax.inset_axes((0.5, 0.4, 0.4, 0.5))
        image = inset.imshow(matrix, cmap=CMAP, interpolation="nearest", vmin=0.0, vmax=1.0)
        inset.set_xticks([])
        inset.set_yticks([])
        note = "" if step == 1 else f", every {step}th model"
        inset.set_title(f"dissimilarity 1 − K ({data.n} models{note})", fontsize=7)
        fig.colorbar(image, cax=ax.inset_axes((0.92, 0.4, 0.025, 0.5))).ax.tick_params(labelsize=6)
    return fig


def _map_title(data: ReportData, layout: MapLayout, what: str) -> str:
    shown = "" if len(layout.indices) == data.n else f", {len(layout.indices)} of {data.n} shown"
    return f"{what} ({data.n} models{shown})"


def _mark_seeds(ax, data: ReportData, layout: MapLayout, labels: bool) -> None:
    pos = {int(i): k for k, i in enumerate(layout.indices)}
    seeds = [s for s in data.seeds if s in pos]
    if not seeds:
        return
    xy = layout.xy[[pos[s] for s in seeds]]
    ax.scatter(
        xy[:, 0], xy[:, 1], marker="*", s=220, c="red", edgecolors="black", linewidths=0.8, label="seed", zorder=5
    )
    if labels:  # seeds often sit together (similar graphs): stack the labels of near neighbours
        near = 0.03 * float(np.ptp(layout.xy, axis=0).max() or 1.0)
        for k, (s, (x, y)) in enumerate(zip(seeds, xy)):
            stack = sum(1 for q in xy[:k] if np.hypot(*(q - (x, y))) < near)
            ax.annotate(
                card_label(data.cards[s]), (x, y), textcoords="offset points", xytext=(8, 4 - 10 * stack), fontsize=7
            )


def map_figure(data: ReportData, layout: MapLayout) -> Figure:
    """The t-SNE map coloured by number of layers, seed models marked and named."""
    fig = Figure(figsize=(7, 6), layout="constrained")
    ax = fig.subplots()
    depth = np.array([data.cards[i].l for i in layout.indices])
    values, counts = np.unique(depth, return_counts=True)
    colours = {int(l): f"C{k}" for k, l in enumerate(values)}  # noqa: E741
    for l in values[np.argsort(-counts, kind="stable")]:  # the rarer depths on top  # noqa: E741
        xy = layout.xy[depth == l]
        ax.scatter(xy[:, 0], xy[:, 1], s=5, color=colours[int(l)], alpha=0.7, label=f"{l} layers", rasterized=True)
    _mark_seeds(ax, data, layout, labels=True)
    ax.set_title(_map_title(data, layout, "t-SNE map of the space"))
    ax.set_xticks([])
    ax.set_yticks([])
    legend = ax.legend(loc="best", fontsize=8)
    for handle in legend.legend_handles:
        handle.set_sizes([40])
    return fig


def accuracy_map_figure(data: ReportData, layout: MapLayout) -> Figure:
    """The map twice on one colour scale: measured models only, then the surrogate's prediction for all."""
    fig = Figure(figsize=(12, 5.4), layout="constrained")
    left, right = fig.subplots(1, 2, sharex=True, sharey=True)
    shown = set(layout.indices.tolist())
    measured = [i for i in data.measured_indices.tolist() if i in shown]
    pos = {int(i): k for k, i in enumerate(layout.indices)}
    values = np.concatenate([data.predicted_mean[layout.indices], [data.measured[i] for i in measured]])
    norm = Normalize(float(values.min()), float(values.max()))
    left.scatter(layout.xy[:, 0], layout.xy[:, 1], s=4, c="lightgrey", rasterized=True, label="not trained")
    if measured:
        xy = layout.xy[[pos[i] for i in measured]]
        left.scatter(xy[:, 0], xy[:, 1], s=12, c=[data.measured[i] for i in measured], cmap=CMAP, norm=norm)
    left.set_title(f"measured {data.metric_name} ({len(data.measured)} trained models)")
    image = right.scatter(
        layout.xy[:, 0],
        layout.xy[:, 1],
        s=5,
        c=data.predicted_mean[layout.indices],
        cmap=CMAP,
        norm=norm,
        rasterized=True,
    )
    right.set_title(f"predicted {data.metric_name} (surrogate mean)")
    for ax in (left, right):
        _mark_seeds(ax, data, layout, labels=False)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(image, ax=[left, right], label=f"{data.task} {data.metric_name}", shrink=0.9)
    fig.suptitle(_map_title(data, layout, f"t-SNE map coloured by {data.metric_name}"))
    return fig


def pareto_figure(data: ReportData) -> Figure:
    """Score against each known cost: the measured Pareto front over the surrogate's predictions for every model.

    Parameters always; FLOPs when the run gave them (the panel for a ``max_flops``
    budget); latency on the run's machine when it measured it. A limit of the budget
    is a line on its own axis with the region beyond it shaded; the lead model (the
    winner, else the best measured within budget) and the reference are marked.
    """
    axes = [("parameters (millions)", data.params / 1e6, "parameters", "max_params", 1e6)]
    if data.flops is not None:
        axes.append(("forward GFLOPs (sequence 128)", data.flops / 1e9, "FLOPs", "max_flops", 1e9))
    if data.latency_ms is not None:
        axes.append(("latency (ms, batch 1, sequence 128)", data.latency_ms, "latency", "max_latency_ms", 1.0))
    fig = Figure(figsize=(6.4 * len(axes), 5), layout="constrained")
    marks = _marks(data)
    for ax, (label, cost, name, key, unit) in zip(np.atleast_1d(fig.subplots(1, len(axes))), axes):
        _pareto_panel(ax, data, np.asarray(cost, dtype=float), label, name)
        if key in data.budget:
            line = data.budget[key] / unit
            ax.axvline(line, color="darkorange", lw=1.5, ls="-.", label=f"budget: {name} ≤ {line:.3g}")
            ax.axvspan(line, max(line, float(np.max(cost))) * 1.02, color="darkorange", alpha=0.08, lw=0)
        for i, text, style in marks:
            y = data.measured.get(i, data.predicted_mean[i])
            ax.scatter(cost[i], y, label=text, zorder=6, edgecolors="black", linewidths=0.8, **style)
        ax.legend(loc="lower right", fontsize=8)
    return fig


def _marks(data: ReportData) -> list[tuple[int, str, dict]]:
    """(index, legend label, marker style) of the lead model and the reference, where the space holds them."""
    found = []
    chosen = lead(data)
    if chosen is not None:
        found.append((index_of(data, chosen[0]), chosen[1], {"marker": "*", "s": 260, "c": "gold"}))
    if data.answer is not None and data.answer.reference is not None:
        ref = data.answer.reference
        found.append((index_of(data, ref["card"]), f"reference{': ' + ref['name'] if 'name' in ref else ''}",
                      {"marker": "D", "s": 70, "c": "black"}))
    return [(i, text, style) for i, text, style in found if i is not None]


def _pareto_panel(ax, data: ReportData, cost: np.ndarray, label: str, name: str) -> None:
    ax.scatter(cost, data.predicted_mean, s=3, c="lightgrey", alpha=0.5, rasterized=True, label="predicted (surrogate)")
    predicted_front = pareto_front(cost, data.predicted_mean)
    ax.step(cost[predicted_front], data.predicted_mean[predicted_front], where="post", ls="--", color="grey", lw=1,
            label="predicted Pareto front")
    if data.measured:
        idx, values = data.measured_indices, data.measured_values
        ax.scatter(cost[idx], values, s=12, color="tab:blue", label="measured")
        front = idx[pareto_front(cost[idx], values)]
        ax.step(cost[front], [data.measured[i] for i in front], where="post", color="red", lw=1.5)
        ax.scatter(cost[front], [data.measured[i] for i in front], s=40, facecolors="none", edgecolors="red",
                   linewidths=1.5, label="measured Pareto front", zorder=4)
    ax.set_xlabel(label)
    ax.set_ylabel(f"{data.task} {data.metric_name}")
    ax.set_title(f"Pareto front: max {data.metric_name}, min {name}")


ATTENTION_COLOURS = {"sdp": "#9ecae1", "wma": "#fdae6b"}


def block_figure(data: ReportData) -> Figure:
    """The lead model's block graph, as in the FlexiBERT paper's Fig. 1: input embedding, one box per
    encoder layer (attention type, heads, width, feed-forward size), a projection wherever the width
    changes, and the output; box heights follow the layer widths."""
    chosen = lead(data)
    if chosen is None:
        fig = Figure(figsize=(6.4, 2.5), layout="constrained")
        _no_data(fig.subplots(), "no model to draw: none measured within budget")
        return fig
    card, what = chosen
    return _block_graph(card, f"{what}: {card_label(card)}")


def _block_graph(card: ModelCard, title: str) -> Figure:
    # (label, colour, width on the left edge, width on the right edge): equal edges are a box,
    # unequal ones the trapezoid of a projection between layers of different widths.
    blocks: list[tuple[str, str, int, int]] = [("input\nembedding", "#dddddd", card.h[0], card.h[0])]
    for j, (a, h, f, s) in enumerate(zip(card.a, card.h, card.f, card.s)):
        blocks.append((f"layer {j + 1}\n{s}\n{a} heads\nwidth {h}\nFFN {f}", ATTENTION_COLOURS[s], h, h))
        if j + 1 < card.l and card.h[j + 1] != h:
            blocks.append((f"proj.\n{h}→\n{card.h[j + 1]}", "white", h, card.h[j + 1]))
    blocks.append(("output\npooler +\nclassifier", "#dddddd", card.h[-1], card.h[-1]))
    widest = max(card.h)
    fig = Figure(figsize=(max(6.4, 1.25 * len(blocks) + 0.5), 3.4), layout="constrained")
    ax = fig.subplots()

    def height(width: int) -> float:
        return 0.45 + 0.55 * width / widest

    x = 0.0
    for k, (text, colour, left, right) in enumerate(blocks):
        w = 0.95 if left == right else 0.55
        hl, hr = height(left), height(right)
        corners = [(x, (1 - hl) / 2), (x + w, (1 - hr) / 2), (x + w, (1 + hr) / 2), (x, (1 + hl) / 2)]
        ax.add_patch(Polygon(corners, closed=True, fc=colour, ec="black", lw=1, ls="-" if left == right else "--"))
        ax.text(x + w / 2, 0.5, text, ha="center", va="center", fontsize=7.5)
        if k + 1 < len(blocks):
            ax.add_patch(FancyArrowPatch((x + w, 0.5), (x + w + 0.3, 0.5), arrowstyle="-|>", mutation_scale=10))
        x += w + 0.3
    ax.set_xlim(-0.1, x - 0.2)
    ax.set_ylim(-0.05, 1.05)
    ax.axis("off")
    handles = [Rectangle((0, 0), 1, 1, fc=c, ec="black") for c in ATTENTION_COLOURS.values()]
    ax.legend(handles, [f"{s} attention" for s in ATTENTION_COLOURS], loc="upper center", ncols=2, fontsize=8,
              bbox_to_anchor=(0.5, 0.0), frameon=False)
    ax.set_title(f"Block graph of the {title}")
    return fig


def quality_figure(data: ReportData) -> Figure:
    """The surrogate's held-out rank correlation and error as training data grew."""
    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.subplots()
    ax.set_title("surrogate quality on held-out models over the search")
    if not data.quality:
        _no_data(ax, "no data: the surrogate's held-out quality was not recorded")
        return fig
    n = [row["n_trained"] for row in data.quality]
    ax.plot(n, [row["spearman"] for row in data.quality], "o-", color="tab:blue", label="Spearman ρ")
    spans = [spearman_interval(row["spearman"], int(row["n_trained"])) for row in data.quality]
    known = [(k, span) for k, span in zip(n, spans) if span is not None]
    if known:
        ax.fill_between([k for k, _ in known], [lo for _, (lo, _) in known], [hi for _, (_, hi) in known],
                        color="tab:blue", alpha=0.15, label="Spearman 95% interval (Fisher z)")
    ax.plot(n, [row["kendall"] for row in data.quality], "s-", color="tab:green", label="Kendall τ")
    ax.set_xlabel("models trained")
    ax.set_ylabel("rank correlation")
    twin = ax.twinx()
    twin.plot(n, [row["mae"] for row in data.quality], "^--", color="tab:red", label="MAE")
    twin.set_ylabel(f"mean absolute error ({data.metric_name})")
    handles = ax.get_legend_handles_labels()
    more = twin.get_legend_handles_labels()
    ax.legend(handles[0] + more[0], handles[1] + more[1], loc="best", fontsize=8)
    return fig
