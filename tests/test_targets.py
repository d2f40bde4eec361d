"""Tests of sciml.targets: exact samplers, log Z, gradients, adapters and error cases."""

from __future__ import annotations

import math

import pytest
import torch

from sciml.targets import GaussianMixture, Target, as_target, gmm25, mog8, mog40


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _grid_log_z(target: Target, lo: float, hi: float, n: int = 1201) -> float:
    g = torch.linspace(lo, hi, n, dtype=torch.float64)
    xx = torch.cartesian_prod(g, g)
    h = (hi - lo) / (n - 1)
    return float(torch.logsumexp(target.log_prob(xx), 0) + 2 * math.log(h))


@pytest.mark.parametrize("factory,lo,hi", [(mog8, -8.0, 28.0), (gmm25, -14.0, 14.0)])
def test_mixture_log_z_by_quadrature(factory, lo, hi):
    t = factory()
    assert t.log_z == 0.0
    assert abs(_grid_log_z(t, lo, hi) - t.log_z) < 1e-6


def test_gaussian_mixture_moments_and_grad():
    t = GaussianMixture(torch.tensor([[0.0, 0.0], [4.0, -2.0]]), torch.tensor([1.0, 0.25]),
                        torch.tensor([0.3, 0.7]))
    x = t.sample(200_000, generator=_gen(1))
    mean = 0.3 * torch.tensor([0.0, 0.0]) + 0.7 * torch.tensor([4.0, -2.0])
    assert torch.allclose(x.mean(0), mean.double(), atol=0.02)
    # second moment: sum_k w_k (var_k + mu_k^2)
    m2 = torch.tensor([0.3 * 1 + 0.7 * (0.25 + 16), 0.3 * 1 + 0.7 * (0.25 + 4)], dtype=torch.float64)
    assert torch.allclose((x**2).mean(0), m2, rtol=0.01)
    y = torch.randn(7, 2, dtype=torch.float64, generator=_gen(2)) * 3
    lp, g = t.log_prob_and_grad(y)
    lp_ad, g_ad = Target.log_prob_and_grad(t, y)
    assert torch.allclose(lp, lp_ad) and torch.allclose(g, g_ad, atol=1e-12)


def test_mog40_seeded_and_in_box():
    a, b = mog40(2, seed=3), mog40(2, seed=3)
    assert torch.equal(a.means, b.means) and a.means.shape == (40, 2)
    assert bool((a.means.abs() <= 40).all())
    assert mog40(50).dim == 50


def test_as_target_distribution_and_callable():
    mvn = torch.distributions.MultivariateNormal(torch.zeros(3, dtype=torch.float64),
                                                 torch.eye(3, dtype=torch.float64))
    t = as_target(mvn)
    assert t.dim == 3 and t.log_z == 0.0 and t.has_exact_samples
    x = torch.randn(5, 3, dtype=torch.float64, generator=_gen())
    assert torch.allclose(t.log_prob(x), mvn.log_prob(x))
    assert torch.allclose(t.grad_log_prob(x), -x)
    c = as_target(lambda z: -0.5 * (z**2).sum(-1), dim=3)
    assert torch.allclose(c.grad_log_prob(x), -x)
    with pytest.raises(TypeError, match="dim="):
        as_target(lambda z: z.sum(-1))
    with pytest.raises(TypeError, match="Distribution"):
        as_target(3.0)
    with pytest.raises(ValueError, match="expected"):
        as_target(lambda z: z, dim=3).log_prob(x)
