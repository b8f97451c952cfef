"""Unit tests of l6kit.privacy.federated: splits, models, DML loss, clients, exchange graph, FedAvg, bytes."""

import numpy as np
import pytest
import torch
from torch import nn

from l6kit.privacy import federated as fl
from l6kit.privacy.dp import epsilon_for


def test_majority_split_fractions_and_disjoint():
    rng = np.random.default_rng(0)
    y_tr, y_te = np.repeat(np.arange(10), 60), np.repeat(np.arange(10), 30)
    parts = fl.majority_split(y_tr, y_te, 4, 50, 20, 0.8, rng)
    seen = np.concatenate([p["train"] for p in parts])
    assert len(seen) == len(set(seen.tolist())) == 200
    for i, p in enumerate(parts):
        assert p["majority"] == i
        assert (y_tr[p["train"]] == i).sum() == 40 and (y_te[p["test"]] == i).sum() == 16
    with pytest.raises(ValueError, match="too small"):
        fl.majority_split(y_tr, y_te, 12, 60, 20, 1.0, rng)


def test_exponential_graph_is_a_permutation_with_doubling_hops():
    n = 8
    hops = [fl.exponential_peer(0, n, r)[0] for r in range(6)]
    assert hops == [1, 2, 4, 1, 2, 4]                      # floor(log2 7) + 1 = 3 hop sizes
    for r in range(4):
        dst = [fl.exponential_peer(i, n, r)[0] for i in range(n)]
        assert sorted(dst) == list(range(n))               # everyone receives exactly one proxy
        for i in range(n):
            assert fl.exponential_peer(dst[i], n, r)[1] == i


@pytest.mark.parametrize("arch,shape", [("mlp", (1, 8, 8)), ("mlp2", (1, 28, 28)), ("cnn", (1, 8, 8)),
                                        ("cnn", (3, 32, 32))])
def test_model_shapes(arch, shape):
    model = fl.make_model(arch, shape, 10, hidden=16)
    assert model(torch.zeros(5, *shape)).shape == (5, 10)


def test_dml_loss_known_cases():
    out, y = torch.randn(6, 4), torch.randint(0, 4, (6,))
    ce = nn.functional.cross_entropy(out, y, reduction="none")
    assert torch.allclose(fl.dml_loss(out, fl.pack_target(y), 0.5), ce)
    assert torch.allclose(fl.dml_loss(out, fl.pack_target(y, out), 0.5), 0.5 * ce, atol=1e-6)   # KL(p||p) = 0
    other = torch.randn(6, 4)
    kl = nn.functional.kl_div(out.log_softmax(1), other.log_softmax(1), log_target=True, reduction="none").sum(1)
    assert torch.allclose(fl.dml_loss(out, fl.pack_target(y, other), 1.0), kl, atol=1e-6)
    assert fl.pack_target(y, other).shape == (6, 5)


def test_epsilon_after_matches_opacus_accountant():
    for steps in (1, 37):
        assert fl.epsilon_after(1.1, 0.3, steps, 1e-3) == pytest.approx(epsilon_for(1.1, 0.3, steps, 1e-3), rel=1e-9)
    assert fl.epsilon_after(1.0, 0.5, 0, 1e-3) == 0.0


def _client(private=True, shared=True, sigma=1.0, seed=0):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(80, 1, 4, 4, generator=g)
    y = (x.flatten(1).sum(1) > 0).long()
    torch.manual_seed(seed)
    priv = fl.make_model("mlp", (1, 4, 4), 2, 8) if private else None
    sh = fl.make_model("mlp", (1, 4, 4), 2, 8) if shared else None
    h = fl.Hyper(lr=0.05, batch_size=20, noise_multiplier=sigma, delta=1e-3)
    return fl.Client(0, x, y, x, y, priv, sh, h, seed)


def test_client_training_lowers_loss_and_accounts():
    c = _client(sigma=0.5)
    first = c.local_train()
    for _ in range(15):
        last = c.local_train()
    assert last < first and c.evaluate() > 0.8
    assert c.dp_steps == 16 * 4 and c.epsilon() == pytest.approx(epsilon_for(0.5, 0.25, 64, 1e-3), rel=1e-9)
    shared_only = _client(private=False, sigma=0.0)
    losses = [shared_only.local_train() for _ in range(10)]
    assert losses[-1] < losses[0] and shared_only.epsilon() == float("inf")


def test_client_is_reproducible_and_vectors_roundtrip():
    a, b = _client(), _client()
    a.local_train(), b.local_train()
    assert torch.equal(a.shared_vector(), b.shared_vector())
    v = torch.arange(a.shared_vector().numel(), dtype=torch.float32)
    a.load_shared(v)
    assert torch.equal(a.shared_vector(), v)


def test_mix_rules():
    own, rec = torch.ones(3), torch.zeros(3)
    assert torch.equal(fl.mix("proxyfl", own, rec), rec)
    assert torch.equal(fl.mix("avgpush", own, rec), torch.full((3,), 0.5))
    assert torch.equal(fl.mix("fedavg", own, everyone=[own, rec, rec, rec]), torch.full((3,), 0.25))


def test_round_bytes():
    assert fl.round_bytes("proxyfl", 8, 1000) == 8 * 4000
    assert fl.round_bytes("fedavg", 8, 1000) == 2 * 8 * 4000
    assert fl.round_bytes("local", 8, 1000) == 0


def test_average_models_and_generic_fedavg():
    m = [nn.Linear(2, 1) for _ in range(3)]
    for i, mi in enumerate(m):
        nn.init.constant_(mi.weight, float(i))
        nn.init.constant_(mi.bias, 0.0)
    avg = fl.average_models(m, weights=[1, 1, 2], into=nn.Linear(2, 1))
    assert torch.allclose(avg.weight, torch.full((1, 2), 1.25))

    def add_client_value(model, value, r):
        with torch.no_grad():
            model.bias += value
    glob = nn.Linear(2, 1)
    nn.init.zeros_(glob.bias)
    fl.fedavg(glob, [1.0, 3.0], add_client_value, rounds=2)
    assert torch.allclose(glob.bias, torch.tensor([4.0]))     # each round adds mean(1, 3) = 2


def test_simulate_history_shape():
    clients = [_client(seed=0), _client(seed=1)]
    for i, c in enumerate(clients):
        c.rank = i
    hist = fl.simulate(clients, "proxyfl", 3, progress=False)
    assert len(hist) == 6 and set(hist.columns) == {"round", "client", "accuracy", "epsilon", "bytes"}
    assert (hist["bytes"] == fl.round_bytes("proxyfl", 2, fl.n_params(clients[0].shared))).all()
