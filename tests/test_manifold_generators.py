"""The von Mises circle generator: points on the circle, angles with the right distribution, seeded."""

import numpy as np
import pytest
from scipy import stats

from l6kit.manifold import von_mises_circle


def test_points_lie_on_the_circle_of_the_given_radius():
    X = von_mises_circle(500, kappa=2.0, radius=3.0, seed=1)
    assert X.shape == (500, 2)
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 3.0, rtol=1e-12)


@pytest.mark.parametrize("kappa, loc", [(1.0, 0.0), (4.0, np.pi / 2), (0.0, 0.0)])
def test_angles_follow_the_von_mises_distribution(kappa, loc):
    X = von_mises_circle(4000, kappa=kappa, loc=loc, seed=0)
    theta = np.arctan2(X[:, 1], X[:, 0])
    cdf = (lambda t: (t + np.pi) / (2 * np.pi)) if kappa == 0 else stats.vonmises(kappa, loc=loc).cdf
    assert stats.kstest(theta, cdf).pvalue > 0.01
    if kappa > 0:                                   # the mean direction is loc
        assert np.angle(np.exp(1j * theta).mean() * np.exp(-1j * loc)) == pytest.approx(0, abs=0.1)


def test_seeded_and_validated():
    np.testing.assert_array_equal(von_mises_circle(10, seed=3), von_mises_circle(10, seed=3))
    assert not np.array_equal(von_mises_circle(10, seed=3), von_mises_circle(10, seed=4))
    with pytest.raises(ValueError, match="kappa"):
        von_mises_circle(10, kappa=-1.0)
