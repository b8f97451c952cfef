"""Two-step wrapper: latent densities, sampling, and the on-manifold density (4) on a case with a known answer."""

import math

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from scipy import stats
from torch import nn

from l6kit.generative import (
    FlowDensity,
    GaussianMixtureDensity,
    TensorBatches,
    TwoStep,
    decoder_log_volume,
    figures,
    spline_flow,
)


class LinearLine(nn.Module):
    """A fixed 'autoencoder' of the line {(x1, 0)}: g(x) = x1 / 2, G(z) = (2z, 0)."""

    latent_dim = 1

    def __init__(self):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(()))

    def encode(self, x):
        return x[:, :1] / 2

    def decode(self, z):
        return torch.cat([2 * z, torch.zeros_like(z)], dim=-1) + 0 * self.anchor


def test_decoder_log_volume_of_a_linear_map():
    A = torch.randn(5, 2, generator=torch.Generator().manual_seed(0))
    vol = decoder_log_volume(lambda z: z @ A.T, torch.randn(3, 2))
    torch.testing.assert_close(vol, torch.full((3,), 0.5 * torch.linalg.slogdet(A.T @ A).logabsdet.item()))


@pytest.mark.parametrize("density", ["gmm", "flow"])
def test_on_manifold_density_of_a_gaussian_on_a_line(density):
    u = torch.randn(3000, generator=torch.Generator().manual_seed(0)) * 3.0 + 1.0     # x1 ~ N(1, 3^2)
    X = torch.stack([u, torch.zeros_like(u)], 1)
    latent = (GaussianMixtureDensity(1) if density == "gmm" else
              FlowDensity(spline_flow(1, n_layers=1, bins=8), epochs=10, lr=1e-3, progress=False))
    model = TwoStep(LinearLine(), latent).fit(X)
    grid = torch.tensor([[-2.0, 0.0], [1.0, 0.0], [4.0, 0.0]])
    expected = stats.norm(1.0, 3.0).logpdf(grid[:, 0].numpy())          # density w.r.t. length on the line
    # the flow follows sampling noise of the 3,000 codes more closely than a single Gaussian does
    np.testing.assert_allclose(model.log_prob(grid).numpy(), expected, atol=0.06 if density == "gmm" else 0.15)
    samples = model.sample(4000, generator=torch.Generator().manual_seed(1))
    assert samples.shape == (4000, 2) and torch.all(samples[:, 1] == 0)
    assert samples[:, 0].mean().item() == pytest.approx(1.0, abs=0.2)
    assert samples[:, 0].std().item() == pytest.approx(3.0, rel=0.08)


def test_gaussian_mixture_density_matches_scikit_learn_and_samples_freshly():
    z = np.concatenate([np.random.default_rng(0).normal(-2, 0.5, (300, 2)),
                        np.random.default_rng(1).normal(2, 1.0, (300, 2))])
    for cov in ("full", "diag", "tied", "spherical"):
        gmm = GaussianMixtureDensity(2, covariance_type=cov, seed=0).fit(z)
        np.testing.assert_allclose(gmm.log_prob(z[:5]).numpy(), gmm.gmm.score_samples(z[:5]), rtol=1e-5)
        draws = gmm.sample(5000, generator=torch.Generator().manual_seed(0))
        assert draws.shape == (5000, 2)
        assert abs(draws[:, 0].mean().item()) < 0.2      # both components, equal weights
    first, second = gmm.sample(5), gmm.sample(5)
    assert not torch.equal(first, second)                 # unlike GaussianMixture.sample's fixed random_state


def test_flow_density_training_lowers_nll_and_tensor_batches_cover_the_data():
    data = torch.arange(10.0).unsqueeze(-1)
    torch.manual_seed(0)
    seen = torch.cat(list(TensorBatches(data, batch_size=3)))
    assert sorted(seen.squeeze(-1).tolist()) == list(range(10)) and len(TensorBatches(data, batch_size=3)) == 4
    z = torch.tensor(np.random.default_rng(0).gamma(2.0, 1.0, (800, 1)), dtype=torch.float32)
    z = (z - z.mean()) / z.std()
    density = FlowDensity(spline_flow(1, n_layers=1, bins=8), epochs=20, lr=1e-2, progress=False).fit(z)
    assert density.history_.losses[-1] < density.history_.losses[0] - 0.05
    assert density.sample(6).shape == (6, 1) and density.log_prob(z[:4]).shape == (4,)


def test_figures_build():
    samples = {"a": torch.randn(50, 2), "b": torch.randn(50, 2)}
    curve = {"epoch": [0, 1], "loglik": [0.0, 1.0], "on_manifold": [-1.8, -1.7], "normal": [1.8, 2.7],
             "w1": [0.5, 0.2], "off_manifold": [0.4, 0.1]}
    import pandas as pd

    figs = [figures.samples_in_plane(samples, torch.randn(30, 2)),
            figures.angle_densities(samples, lambda t: np.full_like(t, 1 / (2 * math.pi))),
            figures.likelihood_decomposition(pd.DataFrame(curve), true_on_manifold=-1.6, reference_w1=0.05),
            figures.code_density(np.random.default_rng(0).normal(size=100), {"N(0,1)": stats.norm.pdf}),
            figures.likelihood_vs_sigma(pd.DataFrame({"q": ["a", "a"], "sigma": [1.0, 0.1], "loglik": [0, 2.3],
                                                      "w1": [0.0, 0.0]}))]
    assert all(isinstance(f, go.Figure) and f.data for f in figs)
