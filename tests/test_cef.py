"""The CEF experiment functions: the required claims hold for seeds 0-4, the analytic projected-normal density
is right, and the configuration validates its inputs."""

import numpy as np
import pytest

from l6kit import claims
from l6kit.papers import cef


@pytest.mark.parametrize("seed", range(5))
def test_required_claims_hold_for_five_seeds(seed):
    cfg = cef.config("ci", seed=seed, curve_points=1)
    book = claims.ClaimBook(cef.SLUG, cfg)
    sphere = cef.sphere_data(cfg)
    result, ambient = cef.train_cef(cfg, sphere), cef.train_ambient_flow(cfg, sphere)
    cef.record_logdet_claims(book, cfg, cef.block_checks(cfg, trained=result["model"].embedding))
    cef.record_sphere_claims(book, cfg, sphere, result["metrics"], ambient["metrics"])
    required = [c for c in book.claims if "ci" in c.required_at]
    assert len(required) == 6
    assert all(c.holds for c in required), [(c.name, c.measured) for c in required if not c.holds]


def test_projected_normal_density_integrates_to_one_and_matches_samples():
    grid = cef.sphere_grid(90, 180)
    assert grid["area"].sum() == pytest.approx(4 * np.pi, rel=1e-9)
    p = cef.projected_normal_density(grid["points"], (-1.0, -1.0, 0.0))
    assert (grid["area"] * p).sum() == pytest.approx(1.0, abs=1e-3)
    # the mean direction of samples matches the density's
    x = cef.projected_normal(200_000, (-1.0, -1.0, 0.0), seed=0)
    assert np.allclose(x.mean(0), (grid["area"] * p) @ grid["points"], atol=5e-3)
    assert cef.sample_tv(x[:5000], (-1.0, -1.0, 0.0), (8, 16)) < 0.1
    assert cef.sample_tv(cef.projected_normal(5000, (3.0, 0.0, 0.0)), (-1.0, -1.0, 0.0), (8, 16)) > 0.5


def test_grid_divergences_are_zero_for_the_truth():
    grid = cef.sphere_grid(30, 60)
    p = cef.projected_normal_density(grid["points"], (0.0, 0.0, 2.0))
    out = cef.grid_divergences(p, p, grid["area"])
    assert out["kl"] == pytest.approx(0.0, abs=1e-12) and out["tv"] == 0.0
    assert out["mass"] == pytest.approx(1.0, abs=1e-2)


def test_profiles_and_validation():
    assert cef.config("paper").epochs > cef.config("ci").epochs
    with pytest.raises(ValueError, match="allowed"):
        cef.config("ci", no_such_field=1)
    with pytest.raises(ValueError, match="3-D mean"):
        cef.config("ci", mean=(1.0, 0.0))


def test_analytic_and_exact_logdet_agree_and_cost_is_tabulated():
    cfg = cef.config("ci", cost_dims=((2, 3), (8, 64)))
    cost = cef.logdet_cost(cfg, n=20, repeats=1)
    assert list(cost["D"]) == [3, 64] and (cost["exact_ms"] > 0).all()
    book = claims.ClaimBook(cef.SLUG, cfg)
    cef.record_cost_claims(book, cfg, cost)
    assert [c.holds for c in book.claims if "ci" in c.required_at] == [True]


def test_paper_image_experiment_on_an_mnist_fixture(tmp_path, monkeypatch):
    """The `paper` profile's dense-CEF image path on a tiny fixture in MNIST's real IDX format (the registry's
    reader); ``data.load`` is redirected to it, so nothing touches the network."""
    import gzip

    from l6kit import data

    def write_idx(path, array):
        header = bytes([0, 0, 8, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
        path.write_bytes(gzip.compress(header + array.tobytes()))

    rng = np.random.default_rng(0)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (1100, 28, 28), dtype=np.uint8))
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", rng.integers(0, 10, 1100).astype(np.uint8))
    calls = []

    def fake_load(name, profile, **kw):
        calls.append((name, profile))
        return data.images.read_mnist(tmp_path, **kw)

    monkeypatch.setattr(cef.data, "load", fake_load)
    cfg = cef.config("paper", device="cpu", image_n=64, image_epochs=1, image_d=4, image_blocks=1,
                     image_batch=32)
    assert cfg.image_datasets == ("mnist", "fashion-mnist")
    out = cef.image_experiment(cfg, "mnist")
    assert calls == [("mnist", "paper")] and out["samples"].shape == (16, 28, 28)
    table = out["table"]
    assert list(table["model"]) == ["dense CEF (d=4)", "PCA + Gaussian (d=4)"]
    assert np.isfinite(table[["recon_mse", "pixel_fd"]].to_numpy()).all()
    book = claims.ClaimBook(cef.SLUG, cfg)
    cef.record_image_claims(book, table)
    assert len(book.claims) == 1 and book.claims[0].required_at == ()
    assert cef.config("ci").image_datasets == ()
