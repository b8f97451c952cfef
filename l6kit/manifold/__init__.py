"""Manifolds: intrinsic-dimension estimation and generated manifolds of known dimension."""

from l6kit.manifold.generators import flat_torus, sphere, union, von_mises_circle
from l6kit.manifold.intrinsic_dimension import (
    MLEIntrinsicDimension,
    knn_distances,
    local_inverse_dimension,
    per_class_dimension,
    unique_rows,
)

__all__ = ["MLEIntrinsicDimension", "flat_torus", "knn_distances", "local_inverse_dimension",
           "per_class_dimension", "sphere", "union", "unique_rows", "von_mises_circle"]
