"""Autoencoder and VAE: shapes, a training run lowers the loss, and the VAE's bounds are ordered."""

import pytest
import torch

from l6kit.generative import VAE, Autoencoder, TensorBatches, mlp
from l6kit.manifold import von_mises_circle
from l6kit.train import fit


@pytest.fixture
def circle():
    return torch.tensor(von_mises_circle(400, seed=0), dtype=torch.float32)


@pytest.mark.parametrize("make", [Autoencoder, VAE])
def test_shapes(make):
    model = make(5, 2, hidden=(8, 8))
    x = torch.randn(7, 5)
    assert model.encode(x).shape == (7, 2)
    assert model.decode(torch.randn(3, 2)).shape == (3, 5)
    assert model.loss(x).shape == () and model.loss((x, torch.zeros(7))).shape == ()


@pytest.mark.parametrize("make", [Autoencoder, VAE])
def test_training_lowers_the_loss(make, circle):
    torch.manual_seed(0)
    model = make(2, 1, hidden=(16, 16))
    history = fit(model, TensorBatches(circle, batch_size=50), epochs=40, lr=3e-3, device="cpu", progress=False)
    if make is VAE:                                 # a negative ELBO: it can cross zero, compare differences
        assert history.losses[-1] < history.losses[0] - 0.3
    else:
        assert history.losses[-1] < 0.5 * history.losses[0]


def test_vae_bounds_and_samples(circle):
    torch.manual_seed(0)
    vae = VAE(2, 1, hidden=(16,))
    fit(vae, TensorBatches(circle, batch_size=50), epochs=20, lr=3e-3, device="cpu", progress=False)
    with torch.no_grad():
        elbo = torch.stack([vae.elbo(circle) for _ in range(50)]).mean()
    iwae = vae.log_likelihood(circle, k=256).mean()
    assert iwae >= elbo - 1e-3                        # the importance-weighted bound is the tighter one
    g = torch.Generator().manual_seed(0)
    assert vae.sample(11, generator=g).shape == (11, 2)
    means = vae.sample(11, noise=False, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(means, vae.decode(torch.randn(11, 1, generator=torch.Generator().manual_seed(0))))


def test_decoder_scale_is_clamped():
    vae = VAE(2, 1, hidden=(4,), min_log_scale=-3.0)
    with torch.no_grad():
        vae.decoder[-1].bias[2:] = -50.0
    assert vae.decoder_params(torch.zeros(3, 1))[1].min() == -3.0


def test_mlp_validation():
    assert len(mlp([3, 4, 5])) == 3
    with pytest.raises(ValueError, match="activation"):
        mlp([3, 4], "nope")
    with pytest.raises(ValueError, match="at least"):
        mlp([3])
