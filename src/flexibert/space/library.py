"""The space library on disk: spec, cards, hashes, embeddings and neighbours of one space.

A library lives in ``<base>/<name>-<key>/``, where the key hashes the spec, the
rule and the build parameters, so a rerun with the same inputs reuses it. Every
file is written atomically and ``manifest.json`` is written last: a build killed
half-way is simply rebuilt, never half-read.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Callable

import numpy as np
import yaml

from flexibert._common import atomic_path, read_json, write_json, write_text
from flexibert.space.design_space import DesignSpace, ModelCard
from flexibert.space.graphs import (
    GRAPH_SCHEMA,
    card_to_graph,
    find_duplicates,
    fingerprint,
)
from flexibert.space.kernel import DEFAULT_N_ITER, dissimilarity, wl_features, wl_kernel

#: Above this many models the n x n dissimilarity is not formed; landmarks are used instead.
DENSE_LIMIT = 20_000

Stage = Callable[[str, int, int], None]  # (stage name, done, total)


@dataclass(frozen=True)
class BuildParams:
    """What, besides the space, determines a library's content."""

    dims: int = 8
    k: int = 10
    seed: int = 0
    sweep: tuple[int, ...] = (2, 4, 6, 8, 10, 12, 16)
    wl_iter: int = DEFAULT_N_ITER
    n_landmarks: int = 2000
    graph_schema: int = GRAPH_SCHEMA

    @property
    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:8]


@dataclass
class SpaceLibrary:
    """A built library; arrays load lazily."""

    root: Path
    manifest: dict = field(repr=False)

    @classmethod
    def open(cls, root: str | Path) -> "SpaceLibrary":
        root = Path(root)
        return cls(root, read_json(root / "manifest.json", f"no complete space library at {root} (manifest.json missing)"))

    @cached_property
    def space(self) -> DesignSpace:
        return DesignSpace.from_yaml(self.root / "space.yaml", rule=self.manifest["rule"])

    @cached_property
    def cards(self) -> list[ModelCard]:
        return [ModelCard.from_dict(d) for d in json.loads((self.root / "cards.json").read_text())]

    @cached_property
    def hashes(self) -> list[str]:
        return json.loads((self.root / "hashes.json").read_text())

    @cached_property
    def _arrays(self) -> dict[str, np.ndarray]:
        with np.load(self.root / "embedding.npz") as z:
            return {k: z[k] for k in z.files}

    @property
    def embeddings(self) -> np.ndarray:
        return self._arrays["embeddings"]

    @property
    def neighbours(self) -> np.ndarray:
        return self._arrays["neighbours"]

    @property
    def dissimilarity(self) -> np.ndarray | None:
        """The n x n matrix, stored only for spaces up to ``DENSE_LIMIT`` models."""
        return self._arrays.get("dissimilarity")

    @property
    def sweep(self) -> dict[int, float]:
        return {int(k): v for k, v in self.manifest["sweep"].items()}


def library_dir(base: str | Path, space: DesignSpace, params: BuildParams) -> Path:
    return Path(base) / f"{space.name}-{space.rule}-{space.spec_hash}-{params.key}"


def _save_npz(path: Path, **arrays: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


def build_space(
    space: DesignSpace, base: str | Path, params: BuildParams = BuildParams(), stage: Stage | None = None
) -> SpaceLibrary:
    """Enumerate, fingerprint, kernel, embed and index a space; reuse an existing complete build."""
    root = library_dir(base, space, params)
    if (root / "manifest.json").exists():
        return SpaceLibrary.open(root)
    from flexibert.space.embed import (
        dimension_sweep,
        landmark_embed,
        nearest_neighbours,
    )

    def report(name: str, done: int, total: int) -> None:
        if stage:
            stage(name, done, total)

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    n = space.count()
    cards = []
    for i, card in enumerate(space):
        cards.append(card)
        if i % 4096 == 0:
            report("enumerate", i, n)
    report("enumerate", n, n)
    timings["enumerate_s"] = time.perf_counter() - t0

    t = time.perf_counter()
    hashes = []
    for i, card in enumerate(cards):
        hashes.append(fingerprint(card))
        if i % 512 == 0:
            report("fingerprint", i, n)
    report("fingerprint", n, n)
    dup = find_duplicates(cards, hashes)
    timings["fingerprint_s"] = time.perf_counter() - t

    t = time.perf_counter()
    report("kernel", 0, 1)
    features = wl_features([card_to_graph(c) for c in cards], n_iter=params.wl_iter)
    arrays: dict[str, np.ndarray] = {}
    extra: dict = {}
    if n <= DENSE_LIMIT:
        d = dissimilarity(wl_kernel(features))
        report("kernel", 1, 1)
        timings["kernel_s"] = time.perf_counter() - t
        t = time.perf_counter()
        dims = sorted(set(params.sweep) | {params.dims})
        runs = dimension_sweep(d, dims, seed=params.seed, progress=lambda a, b: report("embed + sweep", a, b))
        sweep = {m: err for m, (err, _) in runs.items()}
        x = runs[params.dims][1]
        arrays["dissimilarity"] = d.astype(np.float32)
        extra["frobenius_error"] = sweep[params.dims]
        extra["dissimilarity_norm"] = float(np.linalg.norm(d))
    else:
        report("kernel", 1, 1)
        timings["kernel_s"] = time.perf_counter() - t
        t = time.perf_counter()
        emb = landmark_embed(
            features, params.dims, params.n_landmarks, params.seed, progress=lambda a, b: report("embed", a, b)
        )
        x = emb.coords
        sweep = {}
        extra["sample_rel_error"] = emb.sample_rel_error
        arrays["landmarks"] = emb.landmarks
    timings["embed_s"] = time.perf_counter() - t

    t = time.perf_counter()
    report("neighbours", 0, 1)
    idx, dist = nearest_neighbours(x, params.k)
    report("neighbours", 1, 1)
    timings["neighbours_s"] = time.perf_counter() - t

    write_text(root / "space.yaml", yaml.safe_dump({k: v for k, v in space.to_dict().items() if k != "rule"}))
    write_json(root / "cards.json", [c.to_dict() for c in cards])
    write_json(root / "hashes.json", hashes)
    _save_npz(root / "embedding.npz", embeddings=x, neighbours=idx.astype(np.int32), neighbour_dist=dist, **arrays)
    manifest = {
        "name": space.name,
        "rule": space.rule,
        "spec_hash": space.spec_hash,
        "params": asdict(params),
        "count": n,
        "unique_hashes": dup.n_unique_hashes,
        "duplicates": dup.n_duplicates,
        "hash_collisions": len(dup.hash_collisions),
        "sweep": {str(k): v for k, v in sweep.items()},
        "timings": timings,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        **extra,
    }
    write_json(root / "manifest.json", manifest)
    return SpaceLibrary(root, manifest)
