"""sciml.distributions.GaussianMixture and gaussian_log_prob against torch's own densities."""

import math

import pytest
import torch
from torch.distributions import Categorical, MixtureSameFamily, MultivariateNormal

from sciml.distributions import GaussianMixture, gaussian_log_prob

F64 = torch.float64


def _mixture(full: bool) -> tuple[GaussianMixture, MixtureSameFamily]:
    g = torch.Generator().manual_seed(0)
    k, d = 3, 4
    w = torch.rand(k, dtype=F64, generator=g) + 0.2
    mu = 3 * torch.randn(k, d, dtype=F64, generator=g)
    if full:
        a = torch.randn(k, d, d, dtype=F64, generator=g)
        cov = a @ a.transpose(-1, -2) + 0.5 * torch.eye(d, dtype=F64)
        ours = GaussianMixture(w, mu, cov)
    else:
        var = torch.rand(k, d, dtype=F64, generator=g) + 0.3
        cov = torch.diag_embed(var)
        ours = GaussianMixture(w, mu, var)
    ref = MixtureSameFamily(Categorical(probs=w / w.sum()), MultivariateNormal(mu, covariance_matrix=cov))
    return ours, ref


@pytest.mark.parametrize("full", [False, True], ids=["diag", "full"])
def test_log_prob_score_and_moments_match_torch(full):
    ours, ref = _mixture(full)
    x = 3 * torch.randn(5, 7, 4, dtype=F64, generator=torch.Generator().manual_seed(1))
    lp, score = ours.log_prob_and_score(x)
    assert torch.allclose(lp, ref.log_prob(x), rtol=1e-12, atol=1e-12)
    xg = x.clone().requires_grad_(True)
    (auto,) = torch.autograd.grad(ref.log_prob(xg).sum(), xg)
    assert torch.allclose(score, auto, rtol=1e-10, atol=1e-12)
    assert torch.allclose(ours.mean, ref.mean, rtol=1e-13) and torch.allclose(ours.variance, ref.variance, rtol=1e-12)
    # exact draws: sample mean within 5 standard errors of the mixture mean, per coordinate
    n = 40_000
    s = ours.sample((n,), generator=torch.Generator().manual_seed(2))
    assert s.shape == (n, 4)
    se = (ours.variance / n).sqrt()
    assert bool(((s.mean(0) - ours.mean).abs() < 5 * se).all())
    assert torch.equal(s, ours.sample((n,), generator=torch.Generator().manual_seed(2)))


def test_scale_tril_and_scaled_components():
    ours, _ = _mixture(True)
    same = GaussianMixture(ours.weights, ours.means, scale_tril=ours.scale_tril)
    x = torch.randn(6, 4, dtype=F64, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(same.log_prob(x), ours.log_prob(x), rtol=1e-13, atol=1e-13)
    # scale c: log N(x | mu, c Sigma) = log N(x | mu, Sigma') with Sigma' = c Sigma
    c = 0.37
    scaled = gaussian_log_prob(x, ours.means, scale_tril=ours.scale_tril, scale=c)
    direct = gaussian_log_prob(x, ours.means, scale_tril=ours.scale_tril * math.sqrt(c))
    assert torch.allclose(scaled, direct, rtol=1e-12, atol=1e-12)
    # per-point centres (n, K, D) equal shared centres broadcast
    per_point = ours.means.expand(6, 3, 4)
    for kw in ({"scale_tril": ours.scale_tril}, {"variances": torch.ones(3, 4, dtype=F64)}):
        assert torch.allclose(gaussian_log_prob(x, per_point, **kw), gaussian_log_prob(x, ours.means, **kw),
                              rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("kwargs", "exc", "name"), [
    ({"weights": [1.0, -1.0], "means": [[0.0], [1.0]], "covariances": [[1.0], [1.0]]}, ValueError, "weights"),
    ({"weights": [1.0], "means": [0.0], "covariances": [[1.0]]}, ValueError, "means"),
    ({"weights": [1.0], "means": [[float("nan")]], "covariances": [[1.0]]}, ValueError, "means"),
    ({"weights": [1.0], "means": [[0.0]], "covariances": [[0.0]]}, ValueError, "covariances"),
    ({"weights": [1.0], "means": [[0.0, 0.0]], "covariances": [[[1.0, 2.0], [2.0, 1.0]]]}, ValueError, "covariances"),
    ({"weights": [1.0], "means": [[0.0, 0.0]], "covariances": [[1.0, 1.0, 1.0]]}, ValueError, "covariances"),
    ({"weights": [1.0], "means": [[0.0]]}, ValueError, "covariances"),
    ({"weights": "a", "means": [[0.0]], "covariances": [[1.0]]}, TypeError, "weights"),
], ids=["negative weight", "1-D means", "NaN mean", "zero variance", "indefinite", "shape", "no covariance", "str"])
def test_bad_arguments_name_the_argument(kwargs, exc, name):
    with pytest.raises(exc, match=name):
        GaussianMixture(**kwargs)
