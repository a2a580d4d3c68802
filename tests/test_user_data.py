"""A user's own files as real exports write them (BOM, CRLF, quoted CSV, JSON numbers), and every bad
file caught where the job starts, in one line naming the file, the line and the column."""

from __future__ import annotations

import csv
import json

import pytest
import yaml

from flexibert._common import FlexiBertError
from flexibert.cli import main
from flexibert.train.data import Files, labels_in, load_split
from flexibert.train.tasks import custom_task
from flexibert.train.user_task import UserTask
from tests.conftest import GLUE_DIR

ROWS = [("a fine, \"warm\" film", "pos"), ("line one\nline two", "neutral, mixed"), ("dull", "neg"),
        ("bright", "pos"), ("flat", "neg"), ("so-so", "neutral, mixed")]


def _sst2(n: int) -> list[tuple[str, str]]:
    lines = (GLUE_DIR / "SST-2" / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:n + 1]
    return [tuple(line.split("\t")) for line in lines]


def _csv(path, rows, header=("text", "label"), **kw) -> str:
    with open(path, "w", newline="", **kw) as fh:
        w = csv.writer(fh, lineterminator="\r\n")
        w.writerow(header)
        w.writerows(rows)
    return str(path)


def _err(capsys, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 2 and len(err) == 1, err
    return err[0]


def test_excel_style_csv_with_bom_crlf_and_quoted_fields(tmp_path):
    """A UTF-8 BOM (Excel, Notepad) must not glue itself to the first column's name."""
    path = _csv(tmp_path / "d.csv", ROWS, encoding="utf-8-sig")
    assert labels_in(path, "label") == ("neg", "neutral, mixed", "pos")
    task = custom_task("t", ["text"], "label", labels_in(path, "label"))
    ex = load_split(Files.of(train=path), task, "train")
    assert list(ex.texts[0]) == [t for t, _ in ROWS] and ex.labels.tolist() == [2, 1, 0, 2, 0, 1]
    (tmp_path / "d.jsonl").write_text('{"text": "x", "label": "a"}\r\n', encoding="utf-8-sig")
    assert labels_in(tmp_path / "d.jsonl", "label") == ("a",)


def test_integral_json_floats_name_the_same_class(tmp_path):
    (tmp_path / "d.jsonl").write_text("".join(json.dumps({"text": t, "label": y}) + "\n"
                                              for t, y in [("a", 1), ("b", 0), ("c", 1.0), ("d", 0.0)]))
    user = UserTask("t", str(tmp_path / "d.jsonl"), str(tmp_path / "d.jsonl"))
    assert user.labels == ("0", "1")
    assert UserTask("t", user.train, user.dev, labels=[1.0, 0]).labels == ("1", "0")


@pytest.mark.parametrize("rows, pattern", [
    ([("good", "pos"), ("bad", "")], r"d.csv line 3, column 'label': empty label"),
    ([("good", "pos"), ("  ", "neg")], r"d.csv line 3, column 'text': empty text"),
])
def test_empty_cells_are_errors_not_data(tmp_path, rows, pattern):
    """A blank label would become a class of its own, a blank text a training sentence."""
    path = _csv(tmp_path / "d.csv", rows)
    with pytest.raises(FlexiBertError, match=pattern):
        UserTask.from_mapping({"name": "t", "train": path, "dev": path})
    with pytest.raises(FlexiBertError, match=pattern):
        load_split(Files.of(train=path), custom_task("t", ["text"], "label", ["neg", "pos"]), "train")


def test_the_whole_task_is_checked_when_it_is_read(tmp_path):
    """Dev rows and regression values are read up front, not first in a search worker."""
    train = _csv(tmp_path / "train.csv", [(t, y) for t, y in _sst2(30)])
    _csv(tmp_path / "dev.csv", [("fine", "1"), ("odd", "2")])
    with pytest.raises(FlexiBertError, match=r"dev.csv line 3, column 'label': unknown label '2'"):
        UserTask.from_mapping({"name": "t", "train": "train.csv", "dev": "dev.csv"}, tmp_path)
    _csv(tmp_path / "reg.csv", [("a", "1.5"), ("b", "n/a")], header=("text", "score"))
    with pytest.raises(FlexiBertError, match=r"reg.csv line 3, column 'score': regression label is not a number"):
        UserTask.from_mapping({"name": "t", "train": "reg.csv", "dev": "reg.csv", "label_column": "score",
                               "regression": True}, tmp_path)
    with pytest.raises(FlexiBertError, match=r"train.csv: a validation holdout of 30 needs more than 30"):
        UserTask.from_mapping({"name": "t", "train": "train.csv", "dev": "train.csv"}, tmp_path, holdout=30)
    assert UserTask("t", train, train).check(holdout=29) == 30


def test_run_config_with_a_bad_dev_file_fails_before_any_stage(tmp_path, capsys):
    _csv(tmp_path / "train.csv", [(t, y) for t, y in _sst2(30)])
    (tmp_path / "dev.jsonl").write_text('{"text": "fine", "label": 1}\n{"txt": "odd", "label": 0}\n')
    cfg = {"name": "x", "task": {"name": "x", "train": "train.csv", "dev": "dev.jsonl"}}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    err = _err(capsys, ["run", str(tmp_path / "run.yaml"), "--out", str(tmp_path / "out")])
    assert "dev.jsonl line 2: missing column 'text'" in err
    assert not (tmp_path / "out").exists()


def test_search_flags_check_the_files_and_the_holdout(tmp_path, capsys):
    train = _csv(tmp_path / "train.csv", [(t, y) for t, y in _sst2(20)])
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({"task": "t", "oracle": {
        "kind": "train", "space": "x.yaml", "holdout": 50, "user_task": {"name": "t", "train": train, "dev": train}}}))
    err = _err(capsys, ["search", "--config", str(tmp_path / "s.yaml"), "--budget", "1", "--out", str(tmp_path / "s")])
    assert "train.csv: a validation holdout of 50 needs more than 50 training examples; the file has 20" in err


@pytest.mark.parametrize("extra, pattern", [
    ({"regression": "no"}, r"'regression' must be true or false, got 'no'"),
    ({"labels": "pos"}, r"'labels' must be a list, got 'pos'"),
    ({"text_columns": [1]}, r"column names must be non-empty strings, got 1"),
])
def test_task_mapping_values_are_checked_by_type(tmp_path, extra, pattern):
    path = _csv(tmp_path / "d.csv", ROWS)
    with pytest.raises(FlexiBertError, match=pattern):
        UserTask.from_mapping({"name": "t", "train": path, "dev": path, **extra})


def test_paths_that_are_not_files(tmp_path):
    path = _csv(tmp_path / "d.csv", ROWS)
    with pytest.raises(FlexiBertError, match=r"train is a directory, not a file"):
        UserTask("t", str(tmp_path), path)
    (tmp_path / "one.csv").write_text("text,label\na,pos\nb,pos\n")
    with pytest.raises(FlexiBertError, match=r"one.csv: column 'label' holds the one label 'pos'"):
        UserTask("t", str(tmp_path / "one.csv"), path)


def test_quoted_tsv_names_the_row_and_the_way_out(tmp_path):
    """A pandas-written TSV quotes a text with a newline; GLUE-style TSV reading cannot split that row."""
    (tmp_path / "d.tsv").write_text('text\tlabel\nfine\tpos\n"two\nlines"\tneg\n')
    with pytest.raises(FlexiBertError, match=r"d.tsv line 3: expected 2 columns.*needs .csv or .jsonl"):
        UserTask("t", str(tmp_path / "d.tsv"), str(tmp_path / "d.tsv"))


def test_run_names_a_regression_score_as_such(tmp_path):
    """The answer line says what the number is: a regression's score is the mean of its metrics."""
    from flexibert.cli.run import answer_line
    from flexibert.search.results import RunResults

    with _store(tmp_path / "search") as store:
        trial = store.add_trial(0, {"l": 2}, "h")
        store.start(trial)
        store.finish(trial, 0.3, {"pearson": 0.5, "spearman": 0.4, "validation_pearson": 0.3}, "ckpt")
    summary = RunResults(tmp_path).summary()
    assert summary["metric"] == "mean of pearson, spearman"
    assert "dev mean of pearson, spearman 0.4500" in answer_line(summary)


def test_run_with_a_holdout_larger_than_the_training_file_fails_before_any_stage(tmp_path, capsys):
    _csv(tmp_path / "train.csv", [(t, y) for t, y in _sst2(20)])
    cfg = {"name": "x", "task": {"name": "x", "train": "train.csv", "dev": "train.csv"}, "training": {"holdout": 100}}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    err = _err(capsys, ["run", str(tmp_path / "run.yaml"), "--out", str(tmp_path / "out")])
    assert "train.csv: a validation holdout of 100 needs more than 100 training examples; the file has 20" in err
    assert not (tmp_path / "out").exists()


def _store(path):
    """A run store holding a (never searched) STS-B training config, as a run leaves it."""
    from flexibert.search.config import SearchConfig, TrainConfig
    from flexibert.search.store import RunStore

    store = RunStore(path, create=True)
    store.set_meta("config", SearchConfig("stsb", TrainConfig("space.yaml", holdout=10)).to_dict())
    return store


def test_a_search_where_every_trial_failed_says_why(tmp_path):
    """Not "no finished trial to report": the first trial's own error, in one line."""
    from flexibert.search.results import RunResults

    with _store(tmp_path / "s") as store:
        trial = store.add_trial(0, {"l": 2}, "h")
        store.start(trial)
        store.fail(trial, "Traceback (most recent call last):\n  ...\nOutOfMemoryError: 2 GiB", retry=False)
    assert RunResults(tmp_path / "s").first_failure == "OutOfMemoryError: 2 GiB"


def test_an_unconfirmed_answer_reports_its_dev_score_not_validation(tmp_path):
    """Without a confirmation stage the answer is the best trial: its dev score is the task's score on dev
    (the mean of a regression's metrics), never the validation score it was chosen on."""
    from flexibert.search.results import RunResults

    with _store(tmp_path / "search") as store:
        trial = store.add_trial(0, {"l": 2}, "h")
        store.start(trial)
        store.finish(trial, 0.0107, {"pearson": 0.10, "spearman": 0.14, "validation_pearson": 0.0107,
                                     "validation_spearman": 0.0107}, "ckpt")
    best = RunResults(tmp_path).winner
    assert best["validation"] == 0.0107 and best["dev"] == pytest.approx(0.12) and not best["confirmed"]
