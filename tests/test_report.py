"""The report generator on the real 2021 study: 2037 cards, their embeddings and 620 measured SST-2 accuracies.

Predictions come from a real GP fitted on the measured models; the dissimilarity is
the real WL kernel's; every expected value below is computed here from the study's
JSON, never taken from the code under test.
"""

from __future__ import annotations

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
from flexibert.model.cost import param_count
from flexibert.report import ReportData, pareto_front, write_report
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
STEMS = ("knee", "map", "map_accuracy", "pareto", "quality")


def study_measured(study: dict) -> dict[int, float]:
    return {i: acc["SST-2"] for i, acc in enumerate(study["accuracies"]) if acc.get("SST-2") is not None}


def study_seeds(cards: list[ModelCard]) -> list[int]:
    return [cards.index(ModelCard.homogeneous(*shape)) for shape in SEEDS.values()]


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


def test_best_measured_table_lists_the_studys_best_model(report, study, cards):
    measured = study_measured(study)
    best = max(measured.values())
    # The study has a tie for the best accuracy: the smaller model ranks first.
    winner = min((i for i, v in measured.items() if v == best), key=lambda i: (param_count(cards[i]), i))
    markdown = (report / "report.md").read_text()
    rows = _section(markdown, "Best 10 models, measured")
    assert len(rows) == 10
    assert rows[0].startswith(f"| 1 | #{winner} | {cards[winner]} |") and f"| {best:.4f} |" in rows[0]
    worst = min(measured.values())
    assert f"| {worst:.4f} |" in _section(markdown, "Worst 10 models, measured")[0]
    assert len(_section(markdown, "Best 10 models, predicted (surrogate)")) == 10
    html = (report / "report.html").read_text()
    assert "Best 10 models, measured" in html and "Best 10 models, predicted (surrogate)" in html
    summary = json.loads((report / "summary.json").read_text())
    assert summary["best_measured"]["index"] == winner and summary["best_measured"]["measured"] == best
    assert ModelCard.from_dict(summary["best_measured"]["card"]) == cards[winner]


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
    assert files.html.exists() and files.markdown.exists() and len(files.figures) == 10
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{s}.{e}" for s in STEMS for e in ("png", "svg")] + ["report.html", "report.md", "summary.json", "tsne.npz"]
    )  # no temporary file left behind, nothing else written
    summary = json.loads(files.summary.read_text())
    assert summary["surrogate_quality"] is None and summary["sweep"] == {} and summary["seeds"] == []
    assert summary["measured"] == sum(1 for i in study_measured(study) if i < 162)


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
    ],
)
def test_bad_input_is_one_clear_error(study, changes, message):
    with pytest.raises(FlexiBertError) as err:
        _small(study, **changes)
    assert message in str(err.value) and "\n" not in str(err.value)


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
    _cli(capsys, "search", "--task", "sst2", "--table", str(STUDY_JSON), "--budget", "12", "--seed", "1",
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
    _cli(capsys, "search", "--task", "sst2", "--table", str(table), "--space", str(space), "--library", str(library),
         "--budget", "8", "--out", str(run), "--quiet")
    summary = _check_search_report(run, _cli(capsys, "report", str(run)))
    (root,) = library.iterdir()
    lib = SpaceLibrary.open(root)
    assert summary["models"] == len(lib.cards) == len(two) and summary["measured"] == 8
    assert summary["sweep"] == {str(m): e for m, e in lib.sweep.items()} and summary["sweep"]
