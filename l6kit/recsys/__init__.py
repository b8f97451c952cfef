"""Recommender systems: interaction matrices, top-k metrics, sparse propagation, MovieLens.

Importing :mod:`l6kit.recsys.movielens` (or :mod:`l6kit.data`) registers ``movielens-100k`` and
``movielens-1m``.
"""

from l6kit.recsys.interactions import cold_item_split, holdout_split, sample_negatives, to_csr
from l6kit.recsys.metrics import mrr, ndcg_at_k, recall_at_k, topk
from l6kit.recsys.sparse import bipartite_adjacency, normalized_adjacency, spmm, torch_sparse

__all__ = ["bipartite_adjacency", "cold_item_split", "holdout_split", "mrr", "ndcg_at_k", "normalized_adjacency",
           "recall_at_k", "sample_negatives", "spmm", "to_csr", "topk", "torch_sparse"]
