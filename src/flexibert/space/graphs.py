"""Block-level graphs of model cards, their md5 fingerprints, and an exact isomorphism check.

Schema 1 is the study's convention: ``input``; per layer one node per attention
head labelled ``a_h{h}_s-{s}`` (all fed by the previous block), then ``add_norm``,
``f{f}``, ``add_norm``; then ``output``. No residual edges. The fingerprint is the
NAS-Bench-101-style iterative md5 hash, which reproduces all 2037 hashes of the
study. A richer graph later (projection or residual nodes) gets a new schema
number, so hashes stored under schema 1 stay valid.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable, Sequence

from flexibert.space.design_space import ModelCard

GRAPH_SCHEMA = 1


@dataclass(frozen=True)
class BlockGraph:
    """A labelled DAG: node labels in topological order plus directed edges."""

    ops: tuple[str, ...]
    edges: tuple[tuple[int, int], ...]
    schema: int = GRAPH_SCHEMA

    def neighbours(self) -> tuple[list[list[int]], list[list[int]]]:
        """In- and out-neighbour lists per node."""
        ins: list[list[int]] = [[] for _ in self.ops]
        outs: list[list[int]] = [[] for _ in self.ops]
        for a, b in self.edges:
            outs[a].append(b)
            ins[b].append(a)
        return ins, outs


def card_to_graph(card: ModelCard, schema: int = GRAPH_SCHEMA) -> BlockGraph:
    if schema != 1:
        raise ValueError(f"unknown graph schema {schema}; this version knows schema 1")
    ops = ["input"]
    edges: list[tuple[int, int]] = []
    prev = 0
    for a, h, f, s in zip(card.a, card.h, card.f, card.s):
        heads = range(len(ops), len(ops) + a)
        ops.extend([f"a_h{h}_s-{s}"] * a)
        norm1 = len(ops)
        ops.extend(["add_norm", f"f{f}", "add_norm"])
        for head in heads:
            edges += [(prev, head), (head, norm1)]
        edges += [(norm1, norm1 + 1), (norm1 + 1, norm1 + 2)]
        prev = norm1 + 2
    ops.append("output")
    edges.append((prev, len(ops) - 1))
    return BlockGraph(tuple(ops), tuple(edges), schema)


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def fingerprint(card_or_graph: ModelCard | BlockGraph) -> str:
    """Graph-invariant md5 fingerprint (NAS-Bench-101 style), identical to the study's hashes."""
    g = card_to_graph(card_or_graph) if isinstance(card_or_graph, ModelCard) else card_or_graph
    ins, outs = g.neighbours()
    # Python ints, so str() gives "(2, 1, 'input')" as the study's numpy-1 code did.
    labels = [_md5(str((len(o), len(i), op))) for i, o, op in zip(ins, outs, g.ops)]
    for _ in range(len(g.ops)):
        seen: dict[str, str] = {}  # heads of one layer always share a label: hash each text once
        texts = [
            "".join(sorted(labels[w] for w in i)) + "|" + "".join(sorted(labels[w] for w in o)) + "|" + labels[v]
            for v, (i, o) in enumerate(zip(ins, outs))
        ]
        labels = [seen[t] if t in seen else seen.setdefault(t, _md5(t)) for t in texts]
    return _md5(str(sorted(labels)))


def to_networkx(g: BlockGraph):
    import networkx as nx

    nxg = nx.DiGraph()
    nxg.add_nodes_from((v, {"op": op}) for v, op in enumerate(g.ops))
    nxg.add_edges_from(g.edges)
    return nxg


def isomorphic(g1: BlockGraph, g2: BlockGraph) -> bool:
    """Exact labelled-DAG isomorphism (networkx VF2), the ground truth behind a hash match."""
    import networkx as nx

    if len(g1.ops) != len(g2.ops) or len(g1.edges) != len(g2.edges):
        return False
    return nx.is_isomorphic(to_networkx(g1), to_networkx(g2), node_match=lambda x, y: x["op"] == y["op"])


@dataclass(frozen=True)
class DuplicateReport:
    """Outcome of checking a list of cards for isomorphic graphs."""

    n_cards: int
    n_unique_hashes: int
    duplicate_groups: tuple[tuple[int, ...], ...]  # indices whose graphs are isomorphic
    hash_collisions: tuple[tuple[int, int], ...]  # equal hash, but not isomorphic

    @property
    def n_duplicates(self) -> int:
        """Cards that repeat an earlier card's graph."""
        return sum(len(g) - 1 for g in self.duplicate_groups)


def find_duplicates(cards: Sequence[ModelCard], hashes: Iterable[str] | None = None) -> DuplicateReport:
    """Group cards by fingerprint, then confirm every shared fingerprint with an exact isomorphism test."""
    hashes = list(hashes) if hashes is not None else [fingerprint(c) for c in cards]
    by_hash: dict[str, list[int]] = defaultdict(list)
    for i, h in enumerate(hashes):
        by_hash[h].append(i)
    groups: list[tuple[int, ...]] = []
    collisions: list[tuple[int, int]] = []
    for members in by_hash.values():
        remaining = list(members)
        while remaining:
            first, rest = remaining[0], remaining[1:]
            g_first = card_to_graph(cards[first])
            same = [i for i in rest if isomorphic(g_first, card_to_graph(cards[i]))]
            collisions += [(first, i) for i in rest if i not in same]
            if same:
                groups.append((first, *same))
            remaining = [i for i in rest if i not in same]
    return DuplicateReport(len(cards), len(by_hash), tuple(groups), tuple(collisions))
