"""Benchmark the design-space engine on the study's 2037 models (and, with --full, the 332,352-model space).

Baselines run in the same process: GraKeL's WeisfeilerLehman for the kernel and
scikit-learn's MDS(n_init=4, max_iter=1000) for the embedding.

    python bench/space.py            # kernel and MDS on the 2037-model space
    python bench/space.py --full     # plus the landmark embedding of the full space
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SMALL_SPACE, summary  # noqa: E402

from flexibert.space.design_space import DesignSpace  # noqa: E402
from flexibert.space.embed import frobenius_error, landmark_embed, mds  # noqa: E402
from flexibert.space.graphs import card_to_graph  # noqa: E402
from flexibert.space.kernel import dissimilarity, wl_features, wl_kernel  # noqa: E402


def best_of(fn, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def grakel_kernel(graphs):
    import grakel

    objs = []
    for g in graphs:  # GraKeL consumes its Graph objects: rebuild them for every call
        adj = np.zeros((len(g.ops), len(g.ops)), dtype=int)
        for x, y in g.edges:
            adj[x, y] = 1
        objs.append(grakel.Graph(adj, node_labels=dict(enumerate(g.ops))))
    return grakel.WeisfeilerLehman(n_iter=5, base_graph_kernel=grakel.VertexHistogram, normalize=True).fit_transform(
        objs
    )


def full_embedding(queue) -> None:
    """Child process, so its peak RSS is its own: the whole full-space route from the spec."""
    t = time.perf_counter()
    space = DesignSpace.from_yaml(SMALL_SPACE, rule="full")
    feats = wl_features([card_to_graph(c) for c in space])
    emb = landmark_embed(feats, m=8, n_landmarks=2000, seed=0)
    queue.put((time.perf_counter() - t, len(emb.coords), emb.sample_rel_error))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--full", action="store_true", help="also embed the 332,352-model full space")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    graphs = [card_to_graph(c) for c in DesignSpace.from_yaml(SMALL_SPACE)]
    ours_s, k = best_of(lambda: wl_kernel(wl_features(graphs)), args.repeats)
    grakel_s, k_ref = best_of(lambda: grakel_kernel(graphs), max(1, args.repeats - 1))
    max_diff = float(np.abs(k - k_ref).max())
    print(f"WL kernel, 2037 graphs: ours {ours_s:.3f} s, GraKeL {grakel_s:.3f} s, "
          f"speed-up {grakel_s / ours_s:.1f}x, max |K - K_grakel| = {max_diff:.1e}")

    d = dissimilarity(k)
    np.fill_diagonal(d, 0.0)
    ours_mds_s, x = best_of(lambda: mds(d, 8, seed=0), 1)
    ours_err = frobenius_error(d, x)
    from sklearn.manifold import MDS

    t = time.perf_counter()
    sk = MDS(n_components=8, metric="precomputed", n_init=4, max_iter=1000, init="random", random_state=0)
    x_sk = sk.fit_transform(d)
    sk_s = time.perf_counter() - t
    sk_err = frobenius_error(d, x_sk)
    print(f"MDS m=8: ours {ours_mds_s:.1f} s, |D-D^|_F = {ours_err:.2f}; scikit-learn MDS(n_init=4, "
          f"max_iter=1000) {sk_s:.1f} s, |D-D^|_F = {sk_err:.2f}; speed-up {sk_s / ours_mds_s:.1f}x; "
          f"study's embeddings 77.06, |D|_F = {np.linalg.norm(d):.1f}")

    figures = {
        "kernel_speedup_vs_grakel": round(grakel_s / ours_s, 2),
        "kernel_max_abs_diff_vs_grakel": max_diff,
        "mds_speedup_vs_sklearn": round(sk_s / ours_mds_s, 2),
        "mds_frobenius_m8": round(ours_err, 3),
        "sklearn_mds_frobenius_m8": round(sk_err, 3),
    }
    if args.full:
        ctx = mp.get_context("spawn")
        queue = ctx.Queue()
        proc = ctx.Process(target=full_embedding, args=(queue,))
        proc.start()
        seconds, n, rel = queue.get()
        proc.join()
        peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20  # KiB on Linux
        print(f"full space: {n:,} models embedded in {seconds:.0f} s, peak RSS {peak_gb:.2f} GB, "
              f"relative error on 100,000 random pairs {rel:.4f}")
        figures.update(full_embed_seconds=round(seconds, 1), full_embed_peak_gb=round(peak_gb, 3),
                       full_embed_sample_rel_error=round(rel, 4))
    summary(figures)


if __name__ == "__main__":
    main()
