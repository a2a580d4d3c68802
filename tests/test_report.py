"""The report generator on the real 2021 study: 2037 cards, their embeddings and 620 measured SST-2 accuracies.

Predictions come from a real GP fitted on the measured models; the dissimilarity is
the real WL kernel's; every expected value below is computed here from the study's
JSON, never taken from the code under test.

The study's report answers a question as a run would: BERT-Mini is the reference,
the budget allows 27% of its FLOPs (so the study's best models are over it), the
finalists are the three best models within budget and the winner is the smallest
of them that keeps 98% of the reference's accuracy. The study measured one score per model: it plays the search's
validation score, and the GP's prediction plays the dev score.
"""

from __future__ import annotations

import dataclasses
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from threadpoolctl import threadpool_limits

from flexibert._common import FlexiBertError
from flexibert.cli import main
from flexibert.model.cost import flops, param_count
from flexibert.report import ReportData, pareto_front, write_report
from flexibert.report.data import Answer
from flexibert.report.layout import map_indices, map_layout
from flexibert.search.store import RunStore
from flexibert.space.design_space import ModelCard
from flexibert.space.embed import frobenius_error
from flexibert.space.graphs import card_to_graph
from flexibert.space.kernel import dissimilarity, wl_features, wl_kernel
from flexibert.space.library import SpaceLibrary

from .conftest import STUDY_JSON

SEEDS = {  # the study's four seed models: (l, a, h, f), all sdp
    "BERT-Tiny": (2, 2, 128, 512),
    "BERT-Mini": (4, 4, 256, 1024),
    "BERT-L2-H256": (2, 4, 256, 1024),
    "BERT-L4-H128": (4, 2, 128, 512),
}
STEMS = ("block", "knee", "map", "map_accuracy", "pareto", "quality")
REFERENCE = "BERT-Mini"
FLOPS_SHARE = 0.27  # the budget: this share of the reference's forward FLOPs, below the study's best models
KEEP = 0.98  # a finalist keeps this share of the reference's accuracy
LATENCY = {"batch_1": (0.4, 0.6), "batch_32": (3.0, 9.0)}  # ms: offset + slope per GFLOP, measured-looking
BASELINE = {"name": "TF-IDF + logistic regression", "validation": 0.7913, "dev": 0.7982}


def study_measured(study: dict) -> dict[int, float]:
    return {i: acc["SST-2"] for i, acc in enumerate(study["accuracies"]) if acc.get("SST-2") is not None}


def study_seeds(cards: list[ModelCard]) -> list[int]:
    return [cards.index(ModelCard.homogeneous(*shape)) for shape in SEEDS.values()]


def study_choice(study: dict) -> dict:
    """The reference, the budget, the finalists (the 3 best measured models within budget) and the winner
    (the smallest finalist that keeps ``KEEP`` of the reference's accuracy), computed straight from the study."""
    cards = [ModelCard.from_dict(d) for d in study["model_dicts"]]
    measured = study_measured(study)
    reference = cards.index(ModelCard.homogeneous(*SEEDS[REFERENCE]))
    limit = FLOPS_SHARE * flops(cards[reference])
    within = [i for i in measured if flops(cards[i]) <= limit]
    finalists = sorted(within, key=lambda i: (-measured[i], i))[:3]
    kept = [i for i in finalists if measured[i] >= KEEP * measured[reference]]
    winner = min(kept, key=lambda i: (param_count(cards[i]), i))
    return {"reference": reference, "max_flops": limit, "finalists": finalists, "winner": winner}


def _latency(card: ModelCard) -> dict[str, float]:
    return {batch: round(a + b * flops(card) / 1e9, 3) for batch, (a, b) in LATENCY.items()}


def study_answer(study: dict, predicted: np.ndarray) -> Answer:
    cards = [ModelCard.from_dict(d) for d in study["model_dicts"]]
    measured = study_measured(study)
    choice = study_choice(study)

    def model(i: int) -> dict:
        return {"card": cards[i].to_dict(), "validation": measured[i], "dev": float(predicted[i]),
                "params": param_count(cards[i]), "flops": flops(cards[i]), "latency_ms": _latency(cards[i])}

    winner, reference = model(choice["winner"]), {**model(choice["reference"]), "name": REFERENCE}
    return Answer(
        question=f"which is the smallest model that keeps {KEEP:.0%} of {REFERENCE}'s accuracy "
        f"within {FLOPS_SHARE:.0%} of its FLOPs?",
        winner=winner,
        reference=reference,
        retention={k: winner[k] / reference[k] for k in ("dev", "validation")},
        speedup={b: reference["latency_ms"][b] / winner["latency_ms"][b] for b in LATENCY},
        finalists=[{**model(i), "proxy": measured[i], "winner": i == choice["winner"]} for i in choice["finalists"]],
        baseline=BASELINE,
    )


def study_report_data(study: dict) -> ReportData:
    """A real snapshot: the study's space and measurements, a GP's predictions, the WL dissimilarity."""
    from scipy.stats import kendalltau, spearmanr
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

    cards = [ModelCard.from_dict(d) for d in study["model_dicts"]]
    emb = np.array(study["embeddings"])
    measured = study_measured(study)
    idx = sorted(measured)
    kernel = ConstantKernel() * Matern(1.0, nu=0.5) + WhiteKernel()
    gp = GaussianProcessRegressor(kernel, normalize_y=True, random_state=0)
    with threadpool_limits(1):  # 620 points: BLAS threads only spin on a shared 2-core machine
        gp.fit(emb[idx], [measured[i] for i in idx])
        mean, std = gp.predict(emb, return_std=True)
    dis = dissimilarity(wl_kernel(wl_features([card_to_graph(c) for c in cards])))
    # Lower dimensions: the study embedding's leading principal components, real m-d embeddings of D.
    centred = emb - emb.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    sweep = {m: frobenius_error(dis, centred @ vt[:m].T) for m in (2, 4)}
    sweep[8] = frobenius_error(dis, emb)
    # Held-out quality of the fitted GP's kernel trained on growing parts of the measured models.
    quality = []
    rng = np.random.default_rng(0)
    order = rng.permutation(idx)
    held = order[-120:]
    for k in (60, 120, 240):
        part = order[:k]
        g = GaussianProcessRegressor(gp.kernel_, optimizer=None, normalize_y=True).fit(
            emb[part], [measured[i] for i in part]
        )
        pred = g.predict(emb[held])
        truth = np.array([measured[i] for i in held])
        quality.append(
            {
                "n_trained": k,
                "spearman": spearmanr(pred, truth).statistic,
                "kendall": kendalltau(pred, truth).statistic,
                "mae": float(np.abs(pred - truth).mean()),
            }
        )
    return ReportData(
        cards=cards,
        embeddings=emb,
        measured=measured,
        predicted_mean=mean,
        predicted_std=std,
        seeds=study_seeds(cards),
        sweep=sweep,
        dissimilarity=dis,
        quality=quality,
        task="SST-2",
        metric_name="accuracy",
        title="FlexiBERT 2021 study library (SST-2)",
        flops=[flops(c) for c in cards],
        budget={"max_flops": study_choice(study)["max_flops"]},
        answer=study_answer(study, mean),
    )


def study_report_dir(study: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The study's report, built once per test session (the browser test shares it)."""
    out = tmp_path_factory.getbasetemp() / "study-report"
    if not (out / "summary.json").exists():
        write_report(study_report_data(study), out)
    return out


@pytest.fixture(scope="module")
def report(study, tmp_path_factory) -> Path:
    return study_report_dir(study, tmp_path_factory)


@pytest.fixture(scope="module")
def cards(study) -> list[ModelCard]:
    return [ModelCard.from_dict(d) for d in study["model_dicts"]]


# -- Pareto front ---------------------------------------------------------------------


def _dominates(p1: float, v1: float, p2: float, v2: float) -> bool:
    return p1 <= p2 and v1 >= v2 and (p1 < p2 or v1 > v2)


def test_pareto_front_hand_case():
    params = [1, 2, 2, 3, 4, 5, 5, 4, 0.5]
    values = [0.5, 0.7, 0.6, 0.7, 0.9, 0.9, 0.95, 0.9, 0.4]
    # 2 loses to 1 (same size, lower), 3 to 1 (bigger, equal), 5 to 4 (bigger, equal);
    # 4 and 7 are exact duplicates: neither dominates the other.
    assert pareto_front(params, values).tolist() == [8, 0, 1, 4, 7, 6]


def test_pareto_front_matches_the_definition_on_random_ties():
    rng = np.random.default_rng(3)
    params = rng.integers(0, 12, 300).astype(float)
    values = rng.integers(0, 12, 300) / 12
    expected = {
        i for i in range(300) if not any(_dominates(params[j], values[j], params[i], values[i]) for j in range(300))
    }
    front = pareto_front(params, values)
    assert set(front.tolist()) == expected
    assert list(params[front]) == sorted(params[front])


# -- the study report -------------------------------------------------------------------


def test_every_figure_is_a_valid_png_and_svg(report):
    for stem in STEMS:
        png, svg = report / f"{stem}.png", report / f"{stem}.svg"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", stem
        with Image.open(png) as im:
            im.verify()
        with Image.open(png) as im:
            assert min(im.size) > 300, (stem, im.size)
            colours = im.convert("RGB").getcolors(maxcolors=1 << 20)
            assert colours is None or len(colours) > 50, f"{stem}.png looks blank"
        root = ET.parse(svg).getroot()
        assert root.tag == "{http://www.w3.org/2000/svg}svg", stem
    assert not list(report.glob(".*.tmp")), "a temporary file was left behind"


def test_html_is_self_contained(report):
    text = (report / "report.html").read_text()
    remote = re.findall(r"""<(?:script|link|img|iframe|source)\b[^>]*\b(?:src|href)\s*=\s*["']?(?:https?:)?//""", text)
    assert remote == []
    assert not re.search(r"<script\b[^>]*\bsrc\s*=", text), "every script must be inline"
    assert "Plotly.newPlot" in text and len(text) > 3_000_000  # plotly.js itself is inlined
    for stem in STEMS:  # the figures are embedded, not linked
        assert f'<a href="{stem}.svg">' in text
    assert len(re.findall(r'<img alt="[^"]*" src="data:image/png;base64,', text)) == len(STEMS)


def _map_spec(report: Path) -> dict:
    text = (report / "report.html").read_text()
    match = re.search(r'<script type="application/json" id="fb-map-spec">(.*?)</script>', text, re.S)
    assert match, "the map's data block is missing"
    return json.loads(match.group(1))


def test_html_hover_shows_each_card_params_and_accuracy(report, study, cards):
    measured = study_measured(study)
    seen: dict[str, set[int]] = {"model": set(), "measured": set(), "seed": set()}
    for trace in _map_spec(report)["data"]:
        kind = trace["meta"]["kind"]
        assert len(trace["customdata"]) == len(trace["text"]) == len(trace["x"])
        for i, text in zip(trace["customdata"], trace["text"]):
            card = cards[i]
            assert f"#{i} {card}" in text
            for j in range(card.l):
                assert (
                    f"layer {j + 1}: heads {card.a[j]}, hidden {card.h[j]}, feed-forward {card.f[j]}, {card.s[j]}"
                    in text
                )
            assert f"params: {param_count(card):,}" in text
            if i in measured:
                assert f"measured accuracy: {measured[i]:.4f}" in text
            else:
                assert "measured accuracy" not in text
            assert "predicted accuracy: " in text
            assert trace["meta"]["l"] == card.l
            seen[kind].add(i)
    assert seen["model"] == set(range(len(cards)))
    assert seen["measured"] == set(measured)
    assert seen["seed"] == set(study_seeds(cards))


def _section(markdown: str, title: str) -> list[str]:
    """The data rows of the markdown table under ``### title``."""
    block = markdown.split(f"### {title}\n", 1)[1].split("\n### ", 1)[0]
    rows = [line for line in block.splitlines() if line.startswith("| ")]
    return rows[2:]  # skip the header and the separator


def _cells(row: str) -> list[str]:
    return [c.strip() for c in row.strip().strip("|").split("|")]


def test_best_tables_and_facts_keep_to_the_budget(report, study, cards):
    measured = study_measured(study)
    limit = study_choice(study)["max_flops"]
    fits = {i for i, c in enumerate(cards) if flops(c) <= limit}
    overall = max(measured.values())
    assert not any(measured.get(i) == overall for i in fits), "the study's best models must break this budget"
    within = {i: v for i, v in measured.items() if i in fits}
    best = max(within.values())
    # Of equal accuracies the smaller model ranks first.
    winner = min((i for i, v in within.items() if v == best), key=lambda i: (param_count(cards[i]), i))
    markdown = (report / "report.md").read_text()
    rows = _section(markdown, "Best 10 models within budget, measured")
    assert len(rows) == 10
    assert rows[0].startswith(f"| 1 | #{winner} | {cards[winner]} |") and f"| {best:.4f} |" in rows[0]
    assert all(int(_cells(r)[1][1:]) in fits for r in rows)
    worst = min(within.values())
    assert f"| {worst:.4f} |" in _section(markdown, "Worst 10 models within budget, measured")[0]
    note = markdown.split("### Best 10 models within budget, measured\n", 1)[1].split("\n|", 1)[0]
    assert f"{len(measured) - len(within)} measured model(s) over the budget left out" in note
    predicted = _section(markdown, "Best 10 models within budget, predicted (surrogate)")
    assert len(predicted) == 10 and all(int(_cells(r)[1][1:]) in fits for r in predicted)
    assert f"{len(cards) - len(fits):,} model(s) over the budget left out" in markdown
    html = (report / "report.html").read_text()
    assert "Best 10 models within budget, measured" in html
    summary = json.loads((report / "summary.json").read_text())
    assert summary["best_measured"]["index"] == winner and summary["best_measured"]["measured"] == best
    assert ModelCard.from_dict(summary["best_measured"]["card"]) == cards[winner]
    assert summary["best_predicted"]["index"] in fits and summary["best_predicted"]["fits_budget"] is True
    assert summary["budget"] == {"max_flops": limit} and summary["over_budget"] == len(cards) - len(fits)
    fact = next(line for line in markdown.splitlines() if line.startswith("- **best measured accuracy within budget**"))
    assert f"#{winner} " in fact and f"{best:.4f}" in fact


def _answer_block(markdown: str) -> str:
    """The text between the title and the second level-2 heading."""
    sections = re.split(r"^## ", markdown, flags=re.M)
    assert sections[0].startswith("# ") and len(sections) > 2
    return "## " + sections[1]


def test_report_leads_with_the_answer(report, study, cards):
    choice = study_choice(study)
    w, r = cards[choice["winner"]], cards[choice["reference"]]
    summary = json.loads((report / "summary.json").read_text())
    answer = summary["answer"]
    dev = {k: answer[k]["dev"] for k in ("winner", "reference")}
    block = _answer_block((report / "report.md").read_text())
    assert block.startswith(f"## Answer: which is the smallest model that keeps 98% of {REFERENCE}'s accuracy")
    winner_line = next(line for line in block.splitlines() if line.startswith("- **winner (confirmed)**"))
    assert str(w) in winner_line or f"L{w.l} A{w.a[0]} H{w.h[0]} F{w.f[0]} {w.s[0]}" in winner_line
    reference_line = next(line for line in block.splitlines() if line.startswith("- **reference**"))
    assert REFERENCE in reference_line and "L4 A4 H256 F1024 sdp" in reference_line
    retention = next(line for line in block.splitlines() if line.startswith("- **retention**"))
    assert f"{100 * dev['winner'] / dev['reference']:.1f}% of the reference's dev accuracy" in retention
    measured = study_measured(study)
    assert f"{100 * measured[choice['winner']] / measured[choice['reference']]:.1f}% of its validation" in retention
    lw, lr = _latency(w), _latency(r)
    speed = next(line for line in block.splitlines() if line.startswith("- **speed-up**"))
    assert f"{lr['batch_1'] / lw['batch_1']:.2f}× at batch 1" in speed
    assert f"{lr['batch_32'] / lw['batch_32']:.2f}× at batch 32" in speed
    table = {_cells(row)[0]: _cells(row) for row in block.splitlines() if row.startswith("| ")}
    assert table["params"][1:4] == [f"{param_count(w) / 1e6:.2f}M", f"{param_count(r) / 1e6:.2f}M",
                                    f"{param_count(w) / param_count(r):.2f}×"]
    assert table["FLOPs (forward, sequence 128)"][3] == f"{flops(w) / flops(r):.2f}×"
    assert table["dev accuracy"][4] == f"{BASELINE['dev']:.4f}"
    assert f"max FLOPs {choice['max_flops'] / 1e9:.2f}G" in block
    assert "a bag of words does as well" not in block  # the baseline's dev is below the winner's
    finalists = _section(block, f"Finalists ({len(choice['finalists'])})")
    assert [_cells(row)[1] for row in finalists] == [str(cards[i]) for i in choice["finalists"]]
    assert [_cells(row)[0] == "winner" for row in finalists] == [i == choice["winner"] for i in choice["finalists"]]
    # summary.json: the same answer as plain JSON.
    assert ModelCard.from_dict(answer["winner"]["card"]) == w and answer["reference"]["name"] == REFERENCE
    assert answer["retention"]["dev"] == pytest.approx(dev["winner"] / dev["reference"])
    assert answer["speedup"]["batch_1"] == pytest.approx(lr["batch_1"] / lw["batch_1"])
    assert [f["winner"] for f in answer["finalists"]] == [i == choice["winner"] for i in choice["finalists"]]
    html = (report / "report.html").read_text()
    assert html.index('id="fb-answer"') < html.index("The search") < html.index('id="fb-map"')


def test_labels_name_the_metric_once(report):
    markdown = (report / "report.md").read_text()
    assert "- **task**: SST-2 (accuracy)" in markdown and "(dev accuracy)" not in markdown
    assert "SST-2 dev" not in (report / "report.html").read_text()


def test_summary_pareto_front_is_undominated_and_complete(report, study, cards):
    measured = study_measured(study)
    points = {i: (param_count(cards[i]), v) for i, v in measured.items()}
    front = [e["index"] for e in json.loads((report / "summary.json").read_text())["pareto_front"]]
    assert front
    for i in front:
        assert not any(_dominates(*points[j], *points[i]) for j in points), f"front model #{i} is dominated"
    for i in set(points) - set(front):
        assert any(_dominates(*points[j], *points[i]) for j in front), f"model #{i} is missing from the front"


def test_design_choice_table_matches_a_direct_average(report, cards):
    summary = json.loads((report / "summary.json").read_text())
    assert summary["models"] == len(cards) == 2037
    markdown = (report / "report.md").read_text()
    rows = _section(markdown, "Effect of each design choice on predicted accuracy, by layer")
    # 4 heads in layer 3: only 4-layer models have a third layer.
    row = next(r for r in rows if r.startswith("| heads | 4 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    expected = sum(1 for c in cards if c.l >= 3 and c.a[2] == 4)
    assert cells[4].endswith(f"({expected})")
    depth = _section(markdown, "Effect of depth: accuracy by number of layers")
    assert [r.split("|")[2].strip() for r in depth] == ["162", "1875"]


def test_design_choice_means_are_the_mean_of_the_predictions(study, tmp_path):
    """Checked with known predictions (the hidden width itself) so the average is exact."""
    cards = [ModelCard.from_dict(d) for d in study["model_dicts"]][:162]  # the 2-layer models
    pred = np.array([c.h[1] / 1000 for c in cards])
    data = ReportData(cards, np.array(study["embeddings"])[:162], {}, pred, np.zeros(162))
    from flexibert.report.analysis import choice_effects

    effect = next(e for e in choice_effects(data.cards, data.predicted_mean) if e.dimension == "h" and e.value == 128)
    first = [c.h[1] / 1000 for c in cards if c.h[0] == 128]
    assert effect.by_layer[0] == pytest.approx((np.mean(first), len(first)))
    assert effect.by_layer[1] == (0.128, sum(1 for c in cards if c.h[1] == 128))


# -- small reports: rerun, empty inputs, bad inputs -----------------------------------------


def _small(study, **changes) -> ReportData:
    cards = [ModelCard.from_dict(d) for d in study["model_dicts"]][:162]
    emb = np.array(study["embeddings"])[:162]
    measured = {i: v for i, v in study_measured(study).items() if i < 162}
    fields = dict(
        cards=cards,
        embeddings=emb,
        measured=measured,
        predicted_mean=np.full(162, 0.8),
        predicted_std=np.full(162, 0.01),
    )
    fields.update(changes)
    return ReportData(**fields)


def test_small_report_without_sweep_or_quality(study, tmp_path):
    out = tmp_path / "report"
    files = write_report(_small(study), out)
    assert files.html.exists() and files.markdown.exists() and len(files.figures) == 2 * len(STEMS)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{s}.{e}" for s in STEMS for e in ("png", "svg")] + ["report.html", "report.md", "summary.json", "tsne.npz"]
    )  # no temporary file left behind, nothing else written
    summary = json.loads(files.summary.read_text())
    assert summary["surrogate_quality"] is None and summary["sweep"] == {} and summary["seeds"] == []
    assert summary["measured"] == sum(1 for i in study_measured(study) if i < 162)
    assert summary["answer"] is None and summary["budget"] == {} and summary["over_budget"] is None
    measured = {i: v for i, v in study_measured(study).items() if i < 162}
    cards = [ModelCard.from_dict(d) for d in study["model_dicts"]]
    top = max(measured.values())
    best = min((i for i, v in measured.items() if v == top), key=lambda i: (param_count(cards[i]), i))
    block = _answer_block(files.markdown.read_text())
    assert block.startswith("## Best measured model (unconfirmed)") and f"#{best} {cards[best]}" in block


def test_unconfirmed_report_leads_with_the_best_model_within_budget(study, tmp_path):
    """Few measured models fit: one ranked table, the lead never over budget, and a warning on a tiny sample."""
    cards = [ModelCard.from_dict(d) for d in study["model_dicts"]][:162]
    measured = {i: v for i, v in study_measured(study).items() if i < 162}
    limit = sorted(param_count(cards[i]) for i in measured)[14]
    fits = {i for i, c in enumerate(cards) if param_count(c) <= limit}
    within = {i: v for i, v in measured.items() if i in fits}
    assert 15 <= len(within) < 20 and max(within.values()) < max(measured.values())
    best = min((i for i, v in within.items() if v == max(within.values())), key=lambda i: (param_count(cards[i]), i))
    overall = [i for i, v in measured.items() if v == max(measured.values())]
    rho, n = -0.881, 8
    quality = [{"n_trained": n, "spearman": rho, "kendall": -0.714, "mae": 0.021}]
    files = write_report(_small(study, budget={"max_params": limit}, quality=quality), tmp_path / "report")
    markdown = files.markdown.read_text()
    block = _answer_block(markdown)
    assert block.startswith("## Best measured model within budget (unconfirmed)")
    assert f"#{best} {cards[best]}" in block and f"{measured[best]:.4f}" in block
    assert not any(f"#{i} " in block for i in overall)
    assert f"{len(measured) - len(within)} measured model(s) over the budget are left out" in block
    assert f"max params {limit / 1e6:.2f}M: this model {param_count(cards[best]) / 1e6:.2f}M" in block
    # Fewer than two tables' worth: one ranked table, not best and worst as the same rows reversed.
    assert "Worst 10 models within budget, measured" not in markdown
    rows = _section(markdown, f"All {len(within)} models within budget, ranked, measured")
    assert [int(_cells(r)[1][1:]) for r in rows] == sorted(within, key=lambda i: (-within[i], param_count(cards[i]), i))
    z, half = np.arctanh(rho), 1.959964 * 1.06 / np.sqrt(n - 3)
    quality_line = next(line for line in markdown.splitlines() if "surrogate held-out quality" in line)
    assert f"Spearman {rho:.3f} (95% interval {np.tanh(z - half):.2f} to {np.tanh(z + half):.2f})" in quality_line
    assert quality_line.endswith("too few models to judge (under 20)")
    summary = json.loads(files.summary.read_text())
    assert summary["best_measured"]["index"] == best and summary["over_budget"] == 162 - len(fits)
    html = files.html.read_text()
    assert html.index("Best measured model within budget (unconfirmed)") < html.index('id="fb-map"')


def test_study_quality_line_has_no_warning_past_twenty_models(report):
    markdown = (report / "report.md").read_text()
    q = json.loads((report / "summary.json").read_text())["surrogate_quality"]
    z, half = np.arctanh(q["spearman"]), 1.959964 * 1.06 / np.sqrt(q["n_trained"] - 3)
    line = next(line for line in markdown.splitlines() if "surrogate held-out quality" in line)
    assert f"(95% interval {np.tanh(z - half):.2f} to {np.tanh(z + half):.2f})" in line
    assert q["n_trained"] >= 20 and "too few models" not in line


def _small_answer(study, baseline_dev: float, **changes) -> Answer:
    cards = [ModelCard.from_dict(d) for d in study["model_dicts"]]
    measured = study_measured(study)
    w, r = study_seeds(cards)[0], study_seeds(cards)[2]  # BERT-Tiny against BERT-L2-H256, both in the small space

    def model(i: int) -> dict:
        return {"card": cards[i].to_dict(), "validation": measured[i], "dev": measured[i] - 0.004,
                "params": param_count(cards[i]), "flops": flops(cards[i]), "latency_ms": _latency(cards[i])}

    fields = dict(question="is a small model enough?", winner=model(w), reference={**model(r), "name": "BERT-L2-H256"},
                  baseline={"name": "TF-IDF + logistic regression", "validation": 0.8, "dev": baseline_dev})
    fields.update(changes)
    return Answer(**fields)


def test_a_baseline_as_good_as_the_winner_is_said_plainly(study, tmp_path):
    measured = study_measured(study)
    answer = _small_answer(study, baseline_dev=measured[0])  # BERT-Tiny's dev here is measured[0] - 0.004
    files = write_report(_small(study, answer=answer), tmp_path / "report")
    block = _answer_block(files.markdown.read_text())
    assert "a bag of words does as well here" in block
    assert "retention" not in block.split("|", 1)[0]  # none given: no retention line is made up


def test_a_baseline_ahead_on_validation_alone_is_called_unsettled(study, tmp_path):
    """Below the winner on dev but ahead on validation (a long-text run measured this): neither verdict holds."""
    measured = study_measured(study)
    answer = _small_answer(study, baseline_dev=measured[0] - 0.02)
    answer = dataclasses.replace(answer, baseline={**answer.baseline, "validation": answer.winner["validation"]})
    block = _answer_block(write_report(_small(study, answer=answer), tmp_path / "report").markdown.read_text())
    assert "the two splits disagree" in block
    assert "earns its cost" not in block and "a bag of words does as well here" not in block


def test_block_graph_draws_each_layer_and_each_projection(study):
    from flexibert.report.figures import block_figure, pareto_figure

    card = ModelCard(l=4, a=(2, 2, 4, 4), h=(128, 128, 256, 256), f=(512, 1024, 1024, 2048),
                     s=("sdp", "sdp", "wma", "wma"))
    measured = study_measured(study)
    answer = _small_answer(study, 0.7, winner={**_small_answer(study, 0.7).winner, "card": card})
    data = _small(study, answer=answer, budget={"max_params": 6e6})
    (ax,) = block_figure(data).axes
    texts = [t.get_text() for t in ax.texts]
    for j in range(card.l):
        assert f"layer {j + 1}\n{card.s[j]}\n{card.a[j]} heads\nwidth {card.h[j]}\nFFN {card.f[j]}" in texts
    assert [t for t in texts if t.startswith("proj.")] == ["proj.\n128→\n256"]
    assert texts[0].startswith("input") and texts[-1].startswith("output") and len(texts) == card.l + 3
    # The Pareto figure: the params budget is a line on the params axis only; the reference (in the space) marked.
    params_ax, *others = pareto_figure(data).axes
    lines = [ln.get_xdata()[0] for ln in params_ax.lines if ln.get_label().startswith("budget")]
    assert lines == [pytest.approx(6.0)] and not others
    ref = study_seeds([ModelCard.from_dict(d) for d in study["model_dicts"]])[2]
    (mark,) = [c for c in params_ax.collections if c.get_label().startswith("reference")]
    assert mark.get_offsets().tolist() == [[pytest.approx(data.params[ref] / 1e6), pytest.approx(measured[ref])]]


def test_map_layout_is_cached_until_the_embeddings_change(study, tmp_path):
    cache = tmp_path / "tsne.npz"
    first = map_layout(_small(study), cache)
    stamp = cache.stat().st_mtime_ns
    again = map_layout(_small(study, predicted_mean=np.linspace(0.7, 0.9, 162)), cache)
    assert cache.stat().st_mtime_ns == stamp and np.array_equal(first.xy, again.xy)
    moved = map_layout(_small(study, embeddings=np.array(study["embeddings"])[:162] * 2), cache)
    assert cache.stat().st_mtime_ns != stamp and moved.xy.shape == (162, 2)
    cache.write_bytes(b"not an npz")  # a damaged cache is recomputed, not an error
    assert map_layout(_small(study), cache).xy.shape == (162, 2)


def test_huge_spaces_map_a_sample_that_keeps_measured_and_seeds(study):
    data = _small(study, seeds=[0, 5])
    picked = map_indices(data, max_points=100)
    assert len(picked) == 100 and len(set(picked.tolist())) == 100
    assert set(data.measured) | {0, 5} <= set(picked.tolist())


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"embeddings": np.zeros((5, 8))}, "'embeddings' must have shape (162, m)"),
        ({"predicted_mean": np.full(162, np.nan)}, "'predicted_mean' has non-finite values"),
        ({"predicted_std": np.full(162, -1.0)}, "'predicted_std' has negative values"),
        ({"measured": {500: 0.8}}, "'measured' index 500 is not a model index in [0, 162)"),
        ({"measured": {3: "high"}}, "'measured' value 'high' is not a number"),
        ({"seeds": [0, 0]}, "'seeds' lists a model twice"),
        ({"sweep": {0: 1.0}}, "'sweep' key 0 is not a positive embedding dimension"),
        ({"dissimilarity": np.zeros((3, 3))}, "'dissimilarity' must have shape (162, 162)"),
        ({"quality": [{"n_trained": 5, "spearman": 0.3}]}, "quality[0] lacks key(s) ['kendall', 'mae']"),
        ({"cards": ["L2"] * 162}, "cards[0] is a str, not a ModelCard"),
        ({"flops": np.zeros(3)}, "'flops' must have shape (162,)"),
        ({"fits_budget": np.ones(5, dtype=bool)}, "'fits_budget' must be (162,) booleans"),
        ({"fits_budget": np.ones(162)}, "'fits_budget' must be (162,) booleans, got float64"),
        ({"budget": {"max_gpus": 1}}, "'budget' has unknown key(s) ['max_gpus']"),
        ({"budget": {"max_params": -1}}, "'budget.max_params' must be positive"),
        ({"budget": {"max_flops": 1e9}}, "budget ['max_flops'] is set but no cost to check it"),
        ({"answer": {"question": "q"}}, "'answer' is a dict, not an Answer"),
    ],
)
def test_bad_input_is_one_clear_error(study, changes, message):
    with pytest.raises(FlexiBertError) as err:
        _small(study, **changes)
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"question": " "}, "'answer.question' must be a non-empty string"),
        ({"winner": {"card": {"l": 1}}}, "'answer.winner' lacks key(s) ['validation', 'dev', 'params', 'flops'"),
        ({"reference": {"card": {"l": 1, "a": [2], "h": [3], "f": [4], "s": ["sdp"]}, "validation": 0.8, "dev": 0.8,
                        "params": 1, "flops": 1, "latency_ms": None}}, "'answer.reference.card': model card: layer 0"),
        ({"retention": {"dev": 0.9}}, "'answer.retention' lacks key(s) ['validation']"),
        ({"speedup": {"batch_1": 2.0, "batch_32": "fast"}}, "'answer.speedup.batch_32' value 'fast' is not a number"),
        ({"baseline": {"name": "tf-idf", "dev": 0.8}}, "'answer.baseline' lacks key(s) ['validation']"),
        ({"finalists": [{"card": ModelCard.homogeneous(4, 2, 128, 512).to_dict(), "proxy": 0.8, "validation": 0.8,
                         "dev": 0.8, "params": 1, "flops": 1, "winner": True}]}, "must mark the winner's card"),
    ],
)
def test_bad_answer_is_one_clear_error(study, changes, message):
    with pytest.raises(FlexiBertError) as err:
        _small_answer(study, 0.7, **changes)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_model_card_renders_hub_metadata_scores_and_usage(study):
    from flexibert.report.model_card import model_card

    answer = _small_answer(study, 0.7)
    w, r = answer.winner, answer.reference
    card = next(c for c in map(ModelCard.from_dict, study["model_dicts"]) if c.l == 4 and len(set(c.h)) > 1)
    info = {**w, "card": card.to_dict(), "params": param_count(card), "flops": flops(card),
            "name": "flexibert-sst2-small", "dev_sd": 0.0031, "n_seeds": 3,
            "task": "SST-2", "data": "GLUE SST-2: 66349 training sentences, 1000 held out for validation.",
            "reference": r, "retention": {"dev": w["dev"] / r["dev"], "validation": w["validation"] / r["validation"]},
            "speedup": {b: r["latency_ms"][b] / w["latency_ms"][b] for b in LATENCY}, "baseline": BASELINE}
    text = model_card(info)
    _, front, body = text.split("---\n", 2)
    meta = yaml.safe_load(front)
    assert meta["library_name"] == "transformers" and meta["pipeline_tag"] == "text-classification"
    assert meta["metrics"] == ["accuracy"] and "sst-2" in meta["tags"]
    assert body.lstrip().startswith("# flexibert-sst2-small")
    assert f"| this model | {w['validation']:.4f} | {w['dev']:.4f} ± 0.0031 (mean of 3 training seeds) |" in body
    assert f"| reference: BERT-L2-H256 | {r['validation']:.4f} | {r['dev']:.4f} |" in body
    assert f"{100 * w['dev'] / r['dev']:.1f}% on dev" in body and info["data"] in body
    assert "95% CI" not in body  # one training seed: no interval is made up
    spread = model_card({**info, "retention": {**info["retention"], "dev_ci95": 0.0167}})
    assert f"{100 * w['dev'] / r['dev']:.1f}% ± 1.7% (95% CI over training seeds) on dev" in spread
    assert f"{r['latency_ms']['batch_1'] / w['latency_ms']['batch_1']:.2f}× faster" in body
    for j in range(card.l):
        line = f"layer {j + 1}: {card.s[j]} attention, {card.a[j]} heads, width {card.h[j]}, feed-forward {card.f[j]}"
        assert line in body.splitlines()
    changes = [j for j in range(card.l - 1) if card.h[j] != card.h[j + 1]]
    assert sum(line.startswith("projection ") for line in body.splitlines()) == len(changes)
    code = body.split("```python\n", 1)[1].split("```", 1)[0]
    compile(code, "README.md", "exec")  # the usage snippet is valid Python
    assert "AutoModelForSequenceClassification.from_pretrained(DIR, trust_remote_code=True)" in code
    assert "AutoTokenizer.from_pretrained(DIR, trust_remote_code=True)" in code
    assert "bag of words" not in body  # BASELINE is below this model on both splits
    ahead = {**BASELINE, "dev": w["dev"] - 0.01, "validation": w["validation"]}
    assert "does as well on validation, though not on dev" in model_card({**info, "baseline": ahead})
    with pytest.raises(FlexiBertError, match=r"'model card' lacks key\(s\) \['task'\]"):
        model_card({k: v for k, v in info.items() if k != "task"})


def test_an_existing_file_is_never_replaced_by_a_report_folder(study, tmp_path):
    target = tmp_path / "taken"
    target.write_text("keep me")
    with pytest.raises(FlexiBertError, match="is not a directory"):
        write_report(_small(study), target)
    assert target.read_text() == "keep me"


# -- reports of search directories ----------------------------------------------------------------


def _cli(capsys, *args: str) -> str:
    """Run ``flexibert ARGS`` through the CLI entry; its stdout."""
    with pytest.raises(SystemExit) as done:
        main(list(args))
    out, err = capsys.readouterr()
    assert done.value.code == 0, err
    return out


def _check_search_report(run: Path, html_line: str) -> dict:
    """The report of a search directory: every figure, the HTML, and the trials it measured."""
    report = run / "report"
    assert Path(html_line.strip().splitlines()[-1]) == report / "report.html"
    assert (report / "report.html").stat().st_size > 1_000_000  # plotly.js inlined
    for stem in STEMS:
        assert (report / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", stem
        assert ET.parse(report / f"{stem}.svg").getroot().tag == "{http://www.w3.org/2000/svg}svg", stem
    with RunStore(run, read_only=True) as store:
        done = store.trials("done")
    summary = json.loads((report / "summary.json").read_text())
    assert summary["measured"] == len(done)
    best = max(t.value for t in done)
    assert summary["best_measured"]["measured"] == best
    assert summary["best_measured"]["index"] in {t.card_index for t in done if t.value == best}
    return summary


def test_flexibert_report_on_a_replay_search_directory(tmp_path, capsys, study):
    """A plain ``flexibert search`` directory; the cards and embeddings are the replay table's own."""
    run = tmp_path / "replay"
    _cli(capsys, "search", "--task", "sst2", "--table", str(STUDY_JSON), "--budget", "12", "--set", "seed=1",
         "--out", str(run), "--quiet")
    summary = _check_search_report(run, _cli(capsys, "report", str(run)))
    assert summary["measured"] == 12 and summary["models"] == len(study["model_dicts"])
    assert summary["embedding_dim"] == len(study["embeddings"][0]) and summary["sweep"] == {}


def test_flexibert_report_on_a_replay_search_embedded_in_a_space_library(tmp_path, capsys, study):
    """A table without embeddings: the search embedded it in a space library, which the report finds again."""
    two = [i for i, d in enumerate(study["model_dicts"]) if d["l"] == 2]  # the study's 2-layer models
    table = tmp_path / "two-layer.json"
    table.write_text(json.dumps({"model_dicts": [study["model_dicts"][i] for i in two],
                                 "accuracies": [study["accuracies"][i] for i in two]}))
    values = study["design_space"]
    space = tmp_path / "two-layer.yaml"
    space.write_text(yaml.safe_dump({"name": "two-layer", "layers": [2], "heads": values["attention_heads"],
                                     "hidden": values["hidden_size"], "feed_forward": values["feed-forward_hidden"],
                                     "similarity": values["similarity_metric"]}))
    run, library = tmp_path / "embedded", tmp_path / "spaces"
    _cli(capsys, "search", "--task", "sst2", "--table", str(table), "--space", str(space), "--set",
         f"oracle.library={library}", "--budget", "8", "--out", str(run), "--quiet")
    summary = _check_search_report(run, _cli(capsys, "report", str(run)))
    (root,) = library.iterdir()
    lib = SpaceLibrary.open(root)
    assert summary["models"] == len(lib.cards) == len(two) and summary["measured"] == 8
    assert summary["sweep"] == {str(m): e for m, e in lib.sweep.items()} and summary["sweep"]
