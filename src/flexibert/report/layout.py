"""The 2-d map of the space: t-SNE of the Transformer2vec embeddings, subsampled and cached.

t-SNE is the slowest step of a report (tens of seconds for a few thousand models),
and embeddings rarely change between reports of one run, so the layout is cached
beside the report under a digest of its inputs. Huge spaces are subsampled, always
keeping every measured and seed model.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flexibert._common import atomic_path
from flexibert.report.data import ReportData

MAX_POINTS = 5000
TSNE_SETTINGS = {"perplexity": 30.0, "max_iter": 500, "random_state": 0}


@dataclass(frozen=True, eq=False)
class MapLayout:
    indices: np.ndarray  # (k,) model indices on the map, ascending
    xy: np.ndarray  # (k, 2) map coordinates


def map_indices(data: ReportData, max_points: int = MAX_POINTS) -> np.ndarray:
    """All models, or every measured and seed model plus a seeded random sample up to ``max_points``."""
    if data.n <= max_points:
        return np.arange(data.n)
    keep = np.array(sorted(set(data.seeds) | set(data.measured)), dtype=int)
    rest = np.setdiff1d(np.arange(data.n), keep)
    extra = np.random.default_rng(0).choice(rest, size=max(0, max_points - len(keep)), replace=False)
    return np.sort(np.concatenate([keep, extra]))


def _tsne(x: np.ndarray) -> np.ndarray:
    if len(x) < 5:  # too few points for any perplexity: show the first two coordinates
        return np.pad(x[:, :2], ((0, 0), (0, max(0, 2 - x.shape[1]))))
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    settings = dict(TSNE_SETTINGS, perplexity=min(TSNE_SETTINGS["perplexity"], (len(x) - 1) / 3))
    init = "pca" if x.shape[1] >= 2 else "random"
    # A few thousand points are too few for OpenMP to pay: on a busy 2-core machine one
    # thread took 5.7 s of CPU for the study's 2037 models, the default threads 20.7 s.
    with threadpool_limits(1):
        return TSNE(n_components=2, init=init, **settings).fit_transform(x)


def map_layout(data: ReportData, cache: Path | None = None, max_points: int = MAX_POINTS) -> MapLayout:
    """t-SNE coordinates of the map's models; reuse ``cache`` when it holds the same inputs' layout."""
    indices = map_indices(data, max_points)
    x = np.ascontiguousarray(data.embeddings[indices])
    digest = hashlib.sha256(x.tobytes() + indices.tobytes() + repr(sorted(TSNE_SETTINGS.items())).encode()).hexdigest()
    if cache is not None and cache.exists():
        try:
            with np.load(cache, allow_pickle=False) as saved:
                if str(saved["digest"]) == digest:
                    return MapLayout(indices, saved["xy"])
        except (OSError, ValueError, KeyError):
            pass  # an unreadable cache is only a cache: recompute it
    xy = _tsne(x)
    if cache is not None:
        with atomic_path(cache) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, digest=np.array(digest), xy=xy)
    return MapLayout(indices, xy)
