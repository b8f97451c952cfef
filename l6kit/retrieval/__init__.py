"""Image retrieval: descriptor sets, exact kNN, ranking metrics, baselines and graph traversals.

Shared by the retrieval papers (``egt``, ``semi-egt``, ``gss``, ``landmark2018-mst``). Every ranking
function takes L2-normalised query rows ``Q (m, d)`` and index rows ``X (n, d)`` and returns
``rankings (m, n)``: index ids, most relevant first, every index id exactly once.
"""

from l6kit.retrieval.baselines import alpha_qe, diffusion, diffusion_system, knn_rank
from l6kit.retrieval.egt import Trace, adjacency, egt_rank, egt_traverse
from l6kit.retrieval.generators import arcs, chains, digits_descriptors, l2_normalise, split_queries
from l6kit.retrieval.knn import knn, knn_graph
from l6kit.retrieval.metrics import average_precision, mean_average_precision, revisited_map

__all__ = [
    "Trace", "adjacency", "alpha_qe", "arcs", "average_precision", "chains", "diffusion", "diffusion_system",
    "digits_descriptors", "egt_rank", "egt_traverse", "knn", "knn_graph", "knn_rank", "l2_normalise",
    "mean_average_precision", "revisited_map", "split_queries",
]
