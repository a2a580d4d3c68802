"""The self-contained interactive HTML page: plotly.js inlined, figures as data URIs, no network.

The map is one plotly scatter split into traces by (number of layers, similarity
class, kind), so the layer and similarity filters are plain checkboxes that
toggle trace visibility: no server, no CDN, works from ``file://``.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

from flexibert.report.data import ReportData
from flexibert.report.headline import Headline
from flexibert.report.labels import millions, similarity_class
from flexibert.report.layout import MapLayout
from flexibert.report.tables import Table

SIMILARITY_LABELS = {"sdp": "sdp in every layer", "wma": "wma in every layer", "mixed": "mixed sdp/wma"}
KINDS = ("model", "measured", "seed")


def hover_text(data: ReportData, i: int) -> str:
    """A model's card, layer by layer, its size and its scores: what hovering its point shows."""
    card = data.cards[i]
    lines = [f"<b>#{i} {card}</b>"]
    lines += [
        f"layer {j + 1}: heads {a}, hidden {h}, feed-forward {f}, {s}"
        for j, (a, h, f, s) in enumerate(zip(card.a, card.h, card.f, card.s))
    ]
    lines.append(f"params: {int(data.params[i]):,} ({millions(data.params[i])})")
    if i in data.measured:
        lines.append(f"measured {data.metric_name}: {data.measured[i]:.4f}")
    lines.append(f"predicted {data.metric_name}: {data.predicted_mean[i]:.4f} ± {data.predicted_std[i]:.4f}")
    if i in data.seeds:
        lines.append("seed model")
    return "<br>".join(lines)


def map_spec(data: ReportData, layout: MapLayout) -> dict[str, Any]:
    """The plotly figure (data, layout, config) of the interactive map, as plain JSON-able values."""
    pos = {int(i): k for k, i in enumerate(layout.indices)}
    shown = set(pos)
    colours = np.concatenate([data.predicted_mean[layout.indices], data.measured_values])
    scale = {"colorscale": "Viridis", "cmin": float(colours.min()), "cmax": float(colours.max())}
    members = {
        "model": layout.indices.tolist(),
        "measured": [i for i in data.measured_indices.tolist() if i in shown],
        "seed": [i for i in data.seeds if i in shown],
    }
    group = {i: (data.cards[i].l, similarity_class(data.cards[i])) for i in pos}  # what the filters select
    traces = []
    for kind in KINDS:
        for l, s in sorted(set(group.values())):  # noqa: E741
            idx = [i for i in members[kind] if group[i] == (l, s)]
            if not idx:
                continue
            xy = layout.xy[[pos[i] for i in idx]]
            if kind == "model":
                marker = {"size": 6, "opacity": 0.75, "color": np.round(data.predicted_mean[idx], 5).tolist(), **scale}
                marker["colorbar"] = {"title": {"text": data.metric_name}}
            elif kind == "measured":
                marker = {"size": 9, "color": [round(data.measured[i], 5) for i in idx], **scale}
                marker["line"] = {"width": 1, "color": "black"}
            else:
                marker = {"size": 18, "symbol": "star", "color": "red", "line": {"width": 1, "color": "black"}}
            traces.append(
                {
                    "type": "scatter",
                    "mode": "markers",
                    "name": {"model": "all models (predicted)", "measured": "measured", "seed": "seed models"}[kind],
                    "legendgroup": kind,
                    "x": np.round(xy[:, 0], 3).tolist(),
                    "y": np.round(xy[:, 1], 3).tolist(),
                    "customdata": idx,
                    "text": [hover_text(data, i) for i in idx],
                    "hoverinfo": "text",
                    "marker": marker,
                    "meta": {"l": l, "s": s, "kind": kind},
                }
            )
    subsample = "" if len(layout.indices) == data.n else f" ({len(layout.indices)} of {data.n} models shown)"
    figure_layout = {
        "title": {"text": f"t-SNE map of the design space{subsample}: colour = {data.task} {data.metric_name}"},
        "hovermode": "closest",
        "hoverlabel": {"align": "left", "namelength": 0},
        "xaxis": {"visible": False},
        "yaxis": {"visible": False},
        "legend": {"orientation": "h", "y": -0.05},
        "margin": {"l": 20, "r": 20, "t": 60, "b": 40},
        "plot_bgcolor": "white",
        "height": 680,
    }
    return {"data": traces, "layout": figure_layout, "config": {"displaylogo": False}}


_SCRIPT = """
(function () {
  const gd = document.getElementById("fb-map");
  const spec = JSON.parse(document.getElementById("fb-map-spec").textContent);
  const status = document.getElementById("fb-map-status");
  const total = spec.data.filter(t => t.meta.kind === "model").reduce((n, t) => n + t.x.length, 0);
  function apply() {
    const on = new Set(Array.from(document.querySelectorAll("input.fb-filter:checked"),
                                  c => c.name + "=" + c.value));
    const seen = new Set();
    const visible = [], legend = [], scale = [];
    let shown = 0;
    for (const t of gd.data) {
      const v = on.has("layers=" + t.meta.l) && on.has("similarity=" + t.meta.s);
      const first = v && !seen.has(t.meta.kind);
      visible.push(v);
      legend.push(first);
      scale.push(first && t.meta.kind === "model");
      if (v) seen.add(t.meta.kind);
      if (v && t.meta.kind === "model") shown += t.x.length;
    }
    Plotly.restyle(gd, {visible: visible, showlegend: legend, "marker.showscale": scale});
    status.textContent = "showing " + shown + " of " + total + " models on the map";
  }
  Plotly.newPlot(gd, spec.data, spec.layout, spec.config).then(apply);
  for (const box of document.querySelectorAll("input.fb-filter")) box.addEventListener("change", apply);
})();
"""

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1em auto; max-width: 1250px; color: #222; }
h1 { font-size: 1.5em; margin: 0.2em 0; }
#fb-answer { border: 2px solid #2a6; border-radius: 6px; padding: 0 1em; margin-bottom: 1em; }
#fb-answer h2 { font-size: 1.25em; margin: 0.5em 0; }
#fb-answer p { margin: 0.3em 0; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: left; }
th { background: #f2f2f2; }
.note { color: #555; font-size: 0.85em; margin: 0.2em 0; }
.filters { display: flex; gap: 2em; flex-wrap: wrap; margin: 0.5em 0; }
.filters fieldset { border: 1px solid #ccc; }
figure { display: inline-block; margin: 0.5em; max-width: 48%; vertical-align: top; }
figure.wide { max-width: 98%; }
figure img { max-width: 100%; }
figcaption { font-size: 0.85em; color: #444; }
dl { display: grid; grid-template-columns: max-content auto; gap: 0.2em 1em; }
dt { font-weight: 600; }
"""


def _filters(spec: dict[str, Any]) -> str:
    metas = [t["meta"] for t in spec["data"]]
    boxes = {
        "layers": [(str(v), f"{v} layers") for v in sorted({m["l"] for m in metas})],
        "similarity": [(v, SIMILARITY_LABELS[v]) for v in SIMILARITY_LABELS if v in {m["s"] for m in metas}],
    }
    sets = []
    for name, options in boxes.items():
        inputs = "".join(
            f'<label><input type="checkbox" class="fb-filter" name="{name}" value="{html.escape(value)}" checked> '
            f"{html.escape(label)}</label> "
            for value, label in options
        )
        sets.append(f"<fieldset><legend>{name}</legend>{inputs}</fieldset>")
    return f'<div class="filters">{"".join(sets)}<span id="fb-map-status" class="note"></span></div>'


def _figure(title: str, png: Path, svg: Path) -> str:
    uri = "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode()
    with Image.open(png) as image:
        wide = ' class="wide"' if image.width > 1.8 * image.height else ""
    return (
        f'<figure{wide}><img alt="{html.escape(title)}" src="{uri}"><figcaption>{html.escape(title)} · '
        f'<a href="{html.escape(svg.name)}">SVG</a> · <a href="{html.escape(png.name)}">PNG</a></figcaption></figure>'
    )


def render_page(
    data: ReportData,
    layout: MapLayout,
    head: Headline,
    facts: Sequence[tuple[str, str]],
    figures: Sequence[tuple[str, Path, Path]],
    tables: Sequence[Table],
) -> str:
    """The whole page as one string: the answer first, then facts, the interactive map, figures and tables."""
    from plotly.offline import get_plotlyjs

    spec = map_spec(data, layout)
    spec_json = json.dumps(spec, separators=(",", ":")).replace("</", "<\\/")
    facts_html = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in facts)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{html.escape(data.title)}</title>
<style>{_STYLE}</style>
<script>{get_plotlyjs()}</script>
</head>
<body>
<h1>{html.escape(data.title)}</h1>
{head.html()}
<h2>The search</h2>
<dl>{facts_html}</dl>
<h2>Interactive map</h2>
<p class="note">Hover a point for its card, size and {html.escape(data.metric_name)}; the boxes filter by number
of layers and by attention similarity. Circles with a black edge were trained (colour: measured); the rest are
coloured by the surrogate's prediction; stars are the seed models.</p>
{_filters(spec)}
<div id="fb-map"></div>
<script type="application/json" id="fb-map-spec">{spec_json}</script>
<script>{_SCRIPT}</script>
<h2>Figures</h2>
{"".join(_figure(*f) for f in figures)}
<h2>Tables</h2>
{"".join(t.html() for t in tables)}
</body>
</html>
"""
