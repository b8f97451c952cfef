"""Generated interaction data with a known latent hierarchy (a stand-in for tree-like real catalogues).

A complete ``branching``-ary category tree of depth ``depth`` (root at depth 0) carries ``items_per_node``
items at every non-root node: shallow items are generic (they sit in many subtrees), deep items are niche.
Each user is attached to ``interests`` category nodes of random depth and consumes items from those subtrees,
drawn with a Zipf popularity skew, plus a few items from anywhere (noise).

References:
    Sun et al. *HGCF: Hyperbolic Graph Convolution Networks for Collaborative Filtering.* WWW 2021 (the
    motivation: user-item graphs are tree-like and their number of neighbours grows exponentially with hops).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import scipy.sparse as sp

from l6kit.recsys.interactions import to_csr


@dataclasses.dataclass(frozen=True)
class TreeInteractions:
    """Interactions generated on a category tree.

    Attributes:
        R: ``(n_users, n_items)`` binary csr.
        items: one row per item: ``node, depth, subtree`` (subtree = the depth-1 ancestor, 0..branching-1),
            ``weight`` (the Zipf popularity weight used to sample).
        users: one row per user: ``node, depth, subtree`` of the first interest node.
        parent: ``(n_nodes,)`` parent of each tree node (-1 for the root); nodes are numbered breadth-first.
    """

    R: sp.csr_matrix
    items: pd.DataFrame
    users: pd.DataFrame
    parent: np.ndarray


def complete_tree(branching: int, depth: int) -> tuple[np.ndarray, np.ndarray]:
    """Parents and depths of a complete tree, nodes numbered breadth-first (root 0).

    Returns:
        ``(parent, node_depth)``, each shape ``(n_nodes,)`` int64, ``n_nodes = sum_{l<=depth} branching^l``.
    """
    parent, node_depth = [-1], [0]
    level = [0]
    for d in range(1, depth + 1):
        nxt = []
        for p in level:
            for _ in range(branching):
                nxt.append(len(parent))
                parent.append(p)
                node_depth.append(d)
        level = nxt
    return np.asarray(parent, np.int64), np.asarray(node_depth, np.int64)


def _ancestor_at(parent: np.ndarray, node_depth: np.ndarray, level: int) -> np.ndarray:
    """For every node, its ancestor at ``level`` (itself if at that level; -1 above it)."""
    anc = np.arange(parent.size)
    for _ in range(int(node_depth.max())):
        anc = np.where(node_depth[anc] > level, parent[anc], anc)
    return np.where(node_depth >= level, anc, -1)


def tree_interactions(n_users: int = 1000, branching: int = 3, depth: int = 4, items_per_node: int = 4,
                      internal_items: int | None = None, interests: int = 2, per_user: int = 25, zipf: float = 1.0, noise: float = 0.05,
                      seed: int = 0) -> TreeInteractions:
    """Generate users, items and interactions on a latent category tree.

    Args:
        n_users: users; each gets ``interests`` category nodes with depth uniform in ``1..depth-1``.
        branching, depth: the complete tree (items live on nodes of depth ``1..depth``).
        items_per_node: items per leaf node.
        internal_items: items per internal non-root node (default ``items_per_node``; 0 = items on leaves only).
        per_user: expected interactions per user (Poisson, at least 3; capped by the subtree sizes).
        zipf: exponent of the item popularity weights ``rank^-zipf`` (ranks shuffled).
        noise: fraction of each user's interactions drawn from the whole catalogue by popularity.
        seed: random seed.

    Returns:
        A :class:`TreeInteractions`.
    """
    rng = np.random.default_rng(seed)
    parent, node_depth = complete_tree(branching, depth)
    internal = items_per_node if internal_items is None else internal_items
    counts = np.where(node_depth == depth, items_per_node, np.where(node_depth > 0, internal, 0))
    nodes = np.repeat(np.arange(parent.size), counts)
    weight = (rng.permutation(nodes.size) + 1.0) ** -zipf
    top = _ancestor_at(parent, node_depth, 1)
    # subtree membership: item i is under node v if v is an ancestor-or-self of nodes[i]
    anc_of = [_ancestor_at(parent, node_depth, lvl) for lvl in range(depth + 1)]
    rows, cols, user_nodes = [], [], []
    for u in range(n_users):
        chosen = np.array([rng.choice(np.flatnonzero(node_depth == rng.integers(1, max(depth, 2))))
                           for _ in range(interests)])
        user_nodes.append(chosen[0])
        inside = np.zeros(nodes.size, bool)
        for v in chosen:
            inside |= anc_of[node_depth[v]][nodes] == v
        n = max(3, rng.poisson(per_user))
        n_noise = rng.binomial(n, noise)
        pool = np.flatnonzero(inside)
        k = min(n - n_noise, pool.size)
        picked = rng.choice(pool, size=k, replace=False, p=weight[pool] / weight[pool].sum())
        extra = rng.choice(nodes.size, size=n_noise, p=weight / weight.sum())
        items = np.concatenate([picked, extra])
        rows.append(np.full(items.size, u))
        cols.append(items)
    R = to_csr(np.concatenate(rows), np.concatenate(cols), n_users, nodes.size)
    items = pd.DataFrame({"node": nodes, "depth": node_depth[nodes], "subtree": top[nodes] - 1,
                          "weight": weight})
    un = np.asarray(user_nodes)
    users = pd.DataFrame({"node": un, "depth": node_depth[un], "subtree": top[un] - 1})
    return TreeInteractions(R, items, users, parent)
