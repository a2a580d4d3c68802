"""How cards, sizes and scores are written, so every figure, table and hover says the same thing."""

from __future__ import annotations

import math
from typing import Mapping

from flexibert.space.design_space import ModelCard


def card_label(card: ModelCard) -> str:
    """Short name: ``L2 A2 H128 F512 sdp`` when all layers agree, else the full per-layer card."""
    if len({(a, h, f, s) for a, h, f, s in zip(card.a, card.h, card.f, card.s)}) == 1:
        return f"L{card.l} A{card.a[0]} H{card.h[0]} F{card.f[0]} {card.s[0]}"
    return str(card)


def similarity_class(card: ModelCard) -> str:
    """``sdp`` or ``wma`` when every layer uses it, else ``mixed``: the similarity filter's categories."""
    kinds = set(card.s)
    return kinds.pop() if len(kinds) == 1 else "mixed"


def millions(n: float) -> str:
    return f"{n / 1e6:.2f}M"


def giga(n: float) -> str:
    return f"{n / 1e9:.2f}G"


def percent(x: float) -> str:
    return f"{100 * x:.1f}%"


def kept(retention: Mapping[str, float]) -> str:
    """Retention of dev, with its paired 95% interval where several training seeds give one."""
    ci = retention.get("dev_ci95")
    return percent(retention["dev"]) + ("" if ci is None else f" ± {100 * ci:.1f}% (95% CI over training seeds)")


def times(x: float) -> str:
    return f"{x:.2f}×"


def limit(key: str, value: float) -> str:
    """One budget limit in words: ``max params 12.00M``."""
    if key == "max_params":
        return f"max params {millions(value)}"
    if key == "max_flops":
        return f"max FLOPs {giga(value)} (forward, sequence 128)"
    return f"max latency {value:g} ms (batch 1, sequence 128)"


def layer_lines(card: ModelCard) -> list[str]:
    """The card's block graph as text, input to output: one line per layer, projections where widths change."""
    lines = [f"input embedding (width {card.h[0]})"]
    for j, (a, h, f, s) in enumerate(zip(card.a, card.h, card.f, card.s)):
        lines.append(f"layer {j + 1}: {s} attention, {a} heads, width {h}, feed-forward {f}")
        if j + 1 < card.l and card.h[j + 1] != h:
            lines.append(f"projection {h} → {card.h[j + 1]}")
    lines.append(f"output: pooled {card.h[-1]}-wide representation → classifier")
    return lines


def score(x: float | None, digits: int = 4) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def score_pm(mean: float, std: float) -> str:
    return f"{mean:.4f} ± {std:.4f}"
