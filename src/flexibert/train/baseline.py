"""A classical baseline a search's models must beat: TF-IDF n-grams and a linear model.

It reads exactly a trial's data (:func:`~flexibert.train.encoding_cache.split_examples`: the training
split less the validation holdout, subset the same way), chooses its one regularisation strength
on that holdout, and reports dev with the task's own score, so its figures sit beside a trial's.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from flexibert._common import FlexiBertError
from flexibert.train import metrics as M
from flexibert.train.data import DataSource, Examples, as_source
from flexibert.train.encoding_cache import VALIDATION, split_examples
from flexibert.train.holdout import Holdout
from flexibert.train.tasks import Task, get_task

NAME = "tf-idf + logistic regression"
REGRESSION_NAME = "tf-idf + ridge regression"
# Inverse regularisation strengths tried on the holdout (Ridge uses alpha = 1 / C).
C_GRID = (0.25, 1.0, 4.0, 16.0)


def _features(fit: Examples, *others: Examples) -> list[Any]:
    """Sparse TF-IDF word uni+bigram features (sublinear tf), the vocabulary fitted on ``fit``.

    A pair task shares one vocabulary between its two texts and sets ``[u, v, u * v, cos(u, v)]`` side by
    side: no bigram spans the two texts, and the product and the cosine (the sum of the product, the
    vectors being unit length) give a linear model what the texts share, which bags of words alone
    (concatenated or side by side) cannot express, and which entailment-style tasks turn on.
    """
    from scipy import sparse
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    vec.fit([t for col in fit.texts for t in col])
    out = []
    for ex in (fit, *others):
        sides = [vec.transform(col) for col in ex.texts]
        if len(sides) == 2:
            shared = sides[0].multiply(sides[1])
            sides += [shared, sparse.csr_matrix(shared.sum(axis=1))]
        out.append(sparse.hstack(sides, format="csr"))
    return out


def _score(task: Task, pred: np.ndarray, gold: np.ndarray) -> float:
    """The task's score on one split (a task with several dev splits is scored as on its first)."""
    one_split = dataclasses.replace(task, dev_splits=task.dev_splits[:1])
    return one_split.score(M.compute(task.metrics, pred, gold))


def tfidf_baseline(task: str | Task, source: DataSource | str | None, holdout: Holdout | int, seed: int = 42,
                   max_train_samples: int | None = None, refit: bool = False,
                   subset: str = "random") -> dict[str, Any]:
    """``{"name", "validation", "dev"}``: TF-IDF + logistic regression (ridge for a regression task)
    trained on a trial's training part, C chosen from :data:`C_GRID` on the holdout only.

    ``holdout``, ``max_train_samples`` and ``subset`` mean what they mean in a
    :class:`~flexibert.train.trial.TrialSpec`, so the baseline trains on the very rows a trial with them
    trains on; ``seed`` seeds the solver.
    A task with several dev splits reports the mean of its dev scores, as :meth:`Task.score` does.
    With ``refit`` the chosen C is fitted again on the holdout too, and that model is scored on dev, as a
    refitted confirmation is.
    """
    from sklearn.linear_model import LogisticRegression, Ridge

    task, source = get_task(task), as_source(source)
    holdout = Holdout.of(holdout)
    if holdout is None:
        raise FlexiBertError("the baseline chooses C on a validation holdout; none was given")
    train = split_examples(source, task, "train", max_train_samples, holdout, subset)
    val = split_examples(source, task, VALIDATION, holdout=holdout)
    devs = [split_examples(source, task, s) for s in task.dev_splits]
    x_train, x_val, *x_devs = _features(train, val, *devs)

    def model(c: float, x, y):
        if task.is_regression:
            return Ridge(alpha=1.0 / c, random_state=seed).fit(x, y)
        return LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(x, y)

    fitted = [model(c, x_train, train.labels) for c in C_GRID]
    val_scores = [_score(task, m.predict(x_val), val.labels) for m in fitted]
    chosen = int(np.argmax(val_scores))
    best = fitted[chosen]
    if refit:
        whole = split_examples(source, task, "train", max_train_samples, draw=subset)
        x_whole, *x_devs = _features(whole, *devs)
        best = model(C_GRID[chosen], x_whole, whole.labels)
    dev = [_score(task, best.predict(x), ex.labels) for x, ex in zip(x_devs, devs)]
    return {"name": REGRESSION_NAME if task.is_regression else NAME, "validation": max(val_scores), "dev": float(np.mean(dev))}
