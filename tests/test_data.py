"""Tasks, metrics and the three data sources, on the real GLUE files and on broken ones."""

from __future__ import annotations

import json

import numpy as np
import pytest

from flexibert._common import FlexiBertError
from flexibert.train.data import (
    Files,
    GlueDir,
    HFDataset,
    as_source,
    labels_in,
    load_split,
    split_digest,
    subset_indices,
    train_texts,
)
from flexibert.train.metrics import compute
from flexibert.train.tasks import GLUE_TASKS, custom_task, get_task

from .conftest import GLUE_DIR

SST2 = get_task("sst2")
QNLI = get_task("qnli")


def raw_rows(path):
    """The file split by hand (header dropped): an independent reading to compare against."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.split("\t") for line in lines[1:] if line]


# -- tasks and metrics ---------------------------------------------------------------------------
def test_registry_covers_glue_with_official_metrics():
    assert set(GLUE_TASKS) == {"cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte", "wnli"}
    assert get_task("CoLA").metrics == ("mcc",)
    assert get_task("STS-B").is_regression and get_task("sts_b").metrics == ("pearson", "spearman")
    assert set(get_task("mrpc").metrics) == set(get_task("qqp").metrics) == {"f1", "accuracy"}
    mnli = get_task("MNLI")
    assert mnli.metric_keys() == ["accuracy", "accuracy_mismatched"] and mnli.num_labels == 3
    assert get_task("mrpc").score({"f1": 0.8, "accuracy": 0.6}) == pytest.approx(0.7)
    with pytest.raises(FlexiBertError, match="unknown task"):
        get_task("squad")


def test_metrics_against_hand_computed_values():
    pred, gold = np.array([1, 1, 0, 0, 1]), np.array([1, 0, 0, 0, 1])
    # tp=2 fp=1 tn=2 fn=0: acc 4/5, F1 = 2*2/(2*2+1+0), MCC = (2*2-1*0)/sqrt(3*2*2*3)
    m = compute(("accuracy", "f1", "mcc"), pred, gold)
    assert m["accuracy"] == pytest.approx(0.8)
    assert m["f1"] == pytest.approx(0.8)
    assert m["mcc"] == pytest.approx(4 / 6)
    r = compute(("pearson", "spearman"), np.array([1.0, 2.0, 3.0, 5.0]), np.array([2.0, 4.0, 6.0, 7.0]))
    assert r["spearman"] == pytest.approx(1.0) and 0.9 < r["pearson"] < 1.0
    with pytest.raises(FlexiBertError, match="unknown metric"):
        compute(("bleu",), pred, gold)


# -- GLUE TSV directory ---------------------------------------------------------------------------
def test_glue_sst2_train_and_dev_are_read_completely():
    train = load_split(GLUE_DIR, SST2, "train")
    dev = load_split(GlueDir(GLUE_DIR), SST2, "dev")
    assert (len(train), len(dev)) == (67349, 872)  # the README's row counts
    rows = raw_rows(GLUE_DIR / "SST-2" / "dev.tsv")
    assert list(dev.texts[0]) == [r[0].strip() for r in rows]
    assert dev.labels.tolist() == [int(r[1]) for r in rows]
    assert train.labels.dtype == np.int64 and set(np.unique(train.labels)) == {0, 1}


def test_glue_qnli_dev_pairs():
    dev = load_split(GLUE_DIR, QNLI, "dev")
    rows = raw_rows(GLUE_DIR / "QNLI" / "dev.tsv")
    assert len(dev) == len(rows) == 5463
    assert len(dev.texts) == 2
    assert dev.texts[0][0] == rows[0][1].strip() and dev.texts[1][0] == rows[0][2].strip()
    assert dev.labels.tolist() == [QNLI.labels.index(r[3]) for r in rows]


def test_missing_split_and_directory_are_clear_errors(tmp_path):
    with pytest.raises(FlexiBertError, match=r"not found: .*QNLI/train\.tsv"):
        load_split(GLUE_DIR, QNLI, "train")  # not shipped offline
    with pytest.raises(FlexiBertError, match="no split 'test'"):
        load_split(GLUE_DIR, SST2, "test")
    with pytest.raises(FlexiBertError, match="data directory not found"):
        as_source(tmp_path / "nope")


def test_subsets_are_deterministic():
    a, b, c = subset_indices(1000, 50, 7), subset_indices(1000, 50, 7), subset_indices(1000, 50, 8)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert len(np.unique(a)) == 50 and np.all(np.diff(a) > 0)
    dev = load_split(GLUE_DIR, SST2, "dev")
    sub = dev.subset(100, seed=3)
    assert list(sub.texts[0]) == [dev.texts[0][i] for i in subset_indices(872, 100, 3)]
    assert dev.subset(None) is dev


def test_split_digest_changes_with_the_split_file(tmp_path):
    sst2 = get_task("sst2")
    (tmp_path / "SST-2").mkdir()
    dev = tmp_path / "SST-2" / "dev.tsv"
    lines = (GLUE_DIR / "SST-2" / "dev.tsv").read_text(encoding="utf-8").splitlines(keepends=True)
    dev.write_text("".join(lines), encoding="utf-8")
    before = split_digest(GlueDir(tmp_path), sst2, "dev")
    assert split_digest(GlueDir(tmp_path), sst2, "dev") == before
    assert split_digest(GlueDir(GLUE_DIR), sst2, "dev") != before  # same content, another file
    dev.write_text("".join(lines[:101]), encoding="utf-8")
    assert split_digest(GlueDir(tmp_path), sst2, "dev") != before


def test_train_texts_are_distinct_and_in_file_order():
    texts = train_texts(GLUE_DIR, SST2)
    assert len(texts) == len(set(texts)) and texts[0] == "hide new secretions from the parental units"


# -- Hugging Face datasets (a real save_to_disk directory; never the network) ---------------------------
def test_hf_saved_dataset_matches_the_tsv(tmp_path):
    import datasets

    rows = raw_rows(GLUE_DIR / "SST-2" / "dev.tsv")[:200]
    features = datasets.Features({"sentence": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["negative", "positive"])})
    columns = {"sentence": [r[0] for r in rows], "label": [int(r[1]) for r in rows]}
    ds = datasets.Dataset.from_dict(columns, features=features)
    datasets.DatasetDict({"train": ds, "validation": ds}).save_to_disk(str(tmp_path / "sst2"))
    source = as_source(tmp_path / "sst2")
    assert isinstance(source, HFDataset)
    dev = load_split(source, SST2, "dev")
    assert list(dev.texts[0]) == [r[0].strip() for r in rows]
    assert dev.labels.tolist() == [int(r[1]) for r in rows]
    with pytest.raises(FlexiBertError, match=r"split validation: missing column\(s\) \['question'\]"):
        load_split(source, QNLI, "dev")


# -- the user's files --------------------------------------------------------------------------------
def _write_user_files(tmp_path, rows):
    import csv

    with open(tmp_path / "d.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "text", "sentiment"])
        for i, (text, label) in enumerate(rows):
            w.writerow([i, text, "pos" if label == "1" else "neg"])
    tsv = "".join(f"{t}\t{'pos' if y == '1' else 'neg'}\n" for t, y in rows)
    (tmp_path / "d.tsv").write_text("text\tsentiment\n" + tsv)
    (tmp_path / "d.jsonl").write_text("".join(json.dumps({"text": t, "sentiment": "pos" if y == "1" else "neg"}) + "\n"
                                              for t, y in rows))


def test_user_csv_tsv_jsonl_agree(tmp_path):
    rows = [(r[0].strip(), r[1]) for r in raw_rows(GLUE_DIR / "SST-2" / "dev.tsv")[:50]]
    _write_user_files(tmp_path, rows)
    assert labels_in(tmp_path / "d.csv", "sentiment") == ("neg", "pos")
    task = custom_task("mine", ["text"], "sentiment", ["neg", "pos"])
    loaded = [load_split(Files.of(train=tmp_path / f"d.{ext}"), task, "train") for ext in ("csv", "tsv", "jsonl")]
    for ex in loaded:
        assert list(ex.texts[0]) == [t for t, _ in rows]
        assert ex.labels.tolist() == [int(y) for _, y in rows]


def test_user_regression_pairs(tmp_path):
    (tmp_path / "r.jsonl").write_text('{"a": "x", "b": "y", "score": 1.5}\n{"a": "p", "b": "q", "score": "4"}\n')
    task = custom_task("sim", ["a", "b"], "score", labels=None)
    ex = load_split(Files.of(train=tmp_path / "r.jsonl"), task, "train")
    assert ex.texts == (("x", "p"), ("y", "q")) and ex.labels.tolist() == [1.5, 4.0]


# -- broken files: the message names file, line and column ------------------------------------------------
@pytest.mark.parametrize(
    "name, content, pattern",
    [
        ("missing.tsv", "sentence\tscore\nfine film\t1\n", r"missing.tsv line 2: missing column 'label'"),
        ("unknown.tsv", "sentence\tlabel\ngood\t1\nbad\t0\nmeh\tneutral\n",
         r"unknown.tsv line 4, column 'label': unknown label 'neutral'; expected one of \['0', '1'\]"),
        ("empty.tsv", "sentence\tlabel\n", r"empty.tsv: split 'train' has no examples"),
        ("short.tsv", "sentence\tlabel\ngood\n", r"short.tsv line 2: expected 2 columns as in the header, found 1"),
        ("bad.jsonl", '{"sentence": "ok", "label": "1"}\n{"sentence": "x", "label": \n',
         r"bad.jsonl line 2, column \d+: malformed JSON"),
        ("null.jsonl", '{"sentence": null, "label": "1"}\n', r"null.jsonl line 1: null in column 'sentence'"),
    ],
)
def test_bad_user_files(tmp_path, name, content, pattern):
    (tmp_path / name).write_text(content)
    task = custom_task("t", ["sentence"], "label", ["0", "1"])
    with pytest.raises(FlexiBertError, match=pattern) as info:
        load_split(Files.of(train=tmp_path / name), task, "train")
    assert "\n" not in str(info.value) and str(tmp_path) in str(info.value)


def test_bad_glue_layout_and_regression_label(tmp_path):
    (tmp_path / "SST-2").mkdir()
    (tmp_path / "SST-2" / "dev.tsv").write_text("sentence\tlabel\nfine\t1\nodd\t2\n")
    with pytest.raises(FlexiBertError, match=r"SST-2/dev.tsv line 3, column 'label': unknown label '2'"):
        load_split(tmp_path, SST2, "dev")
    (tmp_path / "STS-B").mkdir()
    header = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
    (tmp_path / "STS-B" / "dev.tsv").write_text(header + "0\tg\tf\t2012\t1\ts\ts\ta\tb\thigh\n")
    with pytest.raises(FlexiBertError, match=r"STS-B/dev.tsv line 2, column 'score': regression label is not a number"):
        load_split(tmp_path, get_task("stsb"), "dev")


def test_custom_task_validation():
    with pytest.raises(FlexiBertError, match="1 or 2 text columns"):
        custom_task("t", ["a", "b", "c"])
    with pytest.raises(FlexiBertError, match="distinct"):
        custom_task("t", ["a"], labels=["x", "x"])
