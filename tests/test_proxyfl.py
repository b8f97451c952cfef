"""Tests of the proxyfl page: config, client data (digits and the paper's downloaded formats), heterogeneous
private models, the multi-process torch.distributed path against the single-process simulator, and the
required claims over seeds (slow)."""

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from l6kit import claims
from l6kit.data.images import ImageSet
from l6kit.papers import proxyfl as P
from l6kit.privacy import distributed as D
from l6kit.privacy import federated as fl


def test_config_errors():
    with pytest.raises(ValueError, match="unknown methods"):
        P.config("ci", methods=("proxyfl", "scaffold"))
    with pytest.raises(ValueError, match="unknown parameter"):
        P.config("ci", n_client=3)
    assert P.config("paper").dataset == "mnist" and P.config("paper").rounds == 300


def test_client_data_digits_majority():
    cfg = P.config("ci", n_clients=4)
    parts = P.client_data(cfg)
    for i, p in enumerate(parts):
        assert p["x_train"].shape == (cfg.n_train, 1, 8, 8) and p["x_test"].shape == (cfg.n_test, 1, 8, 8)
        assert float((p["y_train"] == i).float().mean()) == pytest.approx(cfg.majority_frac)
        assert float(p["x_train"].max()) <= 1.0


@pytest.mark.parametrize("name,shape", [("mnist", (28, 28)), ("cifar10", (32, 32, 3))])
def test_client_data_paper_sets_offline(monkeypatch, name, shape):
    """The paper profile's path (train/test splits of a downloaded set) on a stand-in ImageSet."""
    rng = np.random.default_rng(0)

    def fake_load(source, profile, split="train"):
        n = 400 if split == "train" else 200
        return ImageSet(source, rng.integers(0, 256, (n, *shape), dtype=np.uint8), np.arange(n) % 10,
                        tuple(map(str, range(10))))
    monkeypatch.setattr(P.data, "load", fake_load)
    cfg = P.config("paper", dataset=name, n_train=20, n_test=10, n_clients=3)
    parts = P.client_data(cfg)
    chans = 3 if len(shape) == 3 else 1
    assert parts[0]["x_train"].shape == (20, chans, 28 if chans == 1 else 32, 28 if chans == 1 else 32)
    client = P.make_client(cfg, "proxyfl", 0, parts, device="cpu")
    assert client.private(parts[0]["x_test"]).shape == (10, 10)


def test_heterogeneous_private_models():
    cfg = P.config("ci", n_clients=4)
    parts = P.client_data(cfg)
    a, b = (P.make_client(cfg, "proxyfl", r, parts) for r in (0, 1))
    assert type(a.private[1]) is not type(b.private[1])                  # Linear (MLP) vs Conv2d (CNN)
    assert fl.n_params(a.shared) == fl.n_params(b.shared)                # one proxy architecture


def test_multiprocess_matches_simulation():
    """4 gloo processes exchanging proxies by isend/irecv (and FedAvg by all_gather) reproduce the
    single-process simulator for the same seed."""
    over = dict(rounds=3, n_clients=4, seed=1)
    dist = D.launch(["proxyfl", "fedavg"], 4, "ci", over)
    cfg = P.config("ci", **over)
    parts = P.client_data(cfg)
    for method, ranks in dist.items():
        sim = P.run_method(cfg, method, parts)
        for r in ranks:
            c = sim["clients"][r["rank"]]
            acc = sim["history"].query(f"client == {r['rank']}")["accuracy"].to_numpy()
            np.testing.assert_allclose(r["accuracy"], acc, atol=1e-6)
            np.testing.assert_allclose(r["shared"], c.shared_vector(), atol=1e-6)
            if r["private"] is not None:
                priv = torch.nn.utils.parameters_to_vector(c.private.parameters()).detach()
                np.testing.assert_allclose(r["private"], priv, atol=1e-6)
            assert r["epsilon"][-1] == pytest.approx(c.epsilon())
        sent = sum(r["bytes_sent"][0] for r in ranks)
        assert sent == fl.round_bytes(method, 4, fl.n_params(sim["clients"][0].shared))


def test_torchrun_matches_simulation(tmp_path):
    """The real launcher: `torchrun --standalone` starts 2 gloo client processes on loopback (rendezvous on a
    free port); their per-round accuracies and epsilons equal the single-process simulation's."""
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    out = tmp_path / "r.json"
    env = os.environ | {"GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", "-m", "l6kit.privacy.distributed",
                    "--method", "proxyfl", "--seed", "2", "--set", "rounds=2", "--out", str(out)],
                   check=True, timeout=300, env=env, cwd=tmp_path)
    clients = json.loads(out.read_text())["clients"]
    cfg = P.config("ci", seed=2, rounds=2, n_clients=2)
    sim = P.run_method(cfg, "proxyfl", P.client_data(cfg))
    assert len(clients) == 2
    for rank, got in enumerate(clients):
        acc = sim["history"].query(f"client == {rank}")["accuracy"].to_numpy()
        np.testing.assert_allclose(got["proxyfl"]["accuracy"], acc, atol=1e-6)
        assert got["proxyfl"]["epsilon"][-1] == pytest.approx(sim["clients"][rank].epsilon())


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(5))
def test_required_claims_hold_over_seeds(seed):
    cfg = P.config("ci", seed=seed)
    book = claims.ClaimBook(P.SLUG, cfg)
    P.record_claims(book, cfg, P.run_methods(cfg), P.client_data(cfg))
    failed = [c.name for c in book.claims if "ci" in c.required_at and not c.holds]
    assert not failed, (seed, failed, [dataclasses.asdict(c) for c in book.claims])
