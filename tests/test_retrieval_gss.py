"""The GSS library: adjacency and GCN propagation against dense references, the separation loss on
hand-made similarities, shapes, and a training step that lowers the loss."""

import numpy as np
import pytest
import torch

from l6kit.retrieval import chains
from l6kit.retrieval.gss import GSS, beta_percentile, embed, gss_adjacency, separation_loss, train_gss


def _tiny():
    X = np.array([[1, 0, 0], [0.9, 0.1, 0], [0, 1, 0], [0, 0.9, 0.1]], np.float32)
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def test_adjacency_matches_a_hand_built_reference():
    X = _tiny()
    A = np.zeros((4, 4))
    S = X @ X.T
    for i, j in ((0, 1), (2, 3)):                          # k = 1: each point's nearest is its partner
        A[i, j] = A[j, i] = S[i, j]
    A += np.eye(4)
    d = A.sum(1)
    np.testing.assert_allclose(gss_adjacency(X, 1), A / np.sqrt(np.outer(d, d)), rtol=1e-6)


def test_query_rows_see_the_index_but_not_the_reverse():
    X, Q = _tiny(), _tiny()[:1]
    A = gss_adjacency(X, 1, Q, kq=2)
    assert A.shape == (5, 5)
    assert np.all(A[1:, 0] == 0)                            # no index row links to the query
    np.testing.assert_allclose(A[1:, 1:], gss_adjacency(X, 1), rtol=1e-6)
    assert np.count_nonzero(A[0]) == 3                      # self + kq edges


def test_gcn_propagation_equals_a_dense_reference():
    X = _tiny()
    A = gss_adjacency(X, 1)
    model = GSS(3, layers=2, layer_decay=0.3, init_std=0.1, seed=1)
    with torch.no_grad():
        for b in model.biases:
            b.normal_()
    W = [w.detach().numpy().astype(np.float64) for w in model.weights]
    b = [p.detach().numpy().astype(np.float64) for p in model.biases]
    elu = lambda z: np.where(z > 0, z, np.expm1(z))  # noqa: E731
    p1 = A @ X @ W[0] + b[0]
    p2 = A @ elu(p1) @ W[1] + b[1]
    ref = p1 + 0.3 * elu(p2)
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    np.testing.assert_allclose(embed(model, X, A), ref, rtol=1e-4, atol=1e-5)


def test_untrained_gcn_is_graph_smoothing():
    X = _tiny()
    A = gss_adjacency(X, 1)
    H = embed(GSS(3, layers=1, init_std=0.0), X, A)
    ref = A @ X
    np.testing.assert_allclose(H, ref / np.linalg.norm(ref, axis=1, keepdims=True), rtol=1e-5)


def test_separation_loss_on_a_hand_made_matrix():
    S = torch.tensor([[1.0, 0.2], [-0.5, 0.6]])
    # relu -> [[1, .2], [0, .6]]; (s - .5)^2 = [.25, .09, .25, .01]; mean .15; loss = -0.5 * 2 * .15
    assert separation_loss(S, beta=0.5, alpha=2.0).item() == pytest.approx(-0.15)
    S.requires_grad_(True)
    separation_loss(S, beta=0.5).backward()
    g = S.grad.numpy()
    assert g[0, 0] < 0 and g[1, 1] < 0 and g[0, 1] > 0 and g[1, 0] == 0   # up above β, down below, relu cut


def test_shapes_and_a_training_step_lowers_the_loss():
    X, _ = chains(8, 3, 5, 16, seed=0)
    A = gss_adjacency(X, 5)
    model = GSS(16, seed=0)
    beta = beta_percentile(model, X, A, 98)
    assert -1 <= beta <= 1
    batch = (torch.tensor(X), torch.tensor(A))
    model.beta = beta
    before = model.loss(batch).item()
    hist = train_gss(model, X, A, epochs=5, lr=1e-3, beta_pct=None)
    assert len(hist.losses) == 5 and model.loss(batch).item() < before
    H = embed(model, X, A)
    assert H.shape == X.shape and np.allclose(np.linalg.norm(H, axis=1), 1, atol=1e-5)
