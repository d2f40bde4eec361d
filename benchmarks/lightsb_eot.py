"""Entropic OT benchmark with a known plan (recipe of Gushchin et al., NeurIPS 2023) and cB-W2^2-UVP.

Construction: pick a source ``p0`` and a Gaussian mixture ``phi(y) = sum_k p_k N(y | mu_k, Sigma_k)``,
and set ``pi*(y | x) ∝ N(y | x, eps I) phi(y)``. In closed form this is the mixture

    pi*(y | x) = sum_k w_k(x) N(y | Sigma~_k (Sigma_k^{-1} mu_k + x / eps), Sigma~_k),
    w_k(x) ∝ p_k N(x | mu_k, Sigma_k + eps I),   Sigma~_k = (Sigma_k^{-1} + I / eps)^{-1}.

``p1`` is defined as the second marginal of ``p0(x) pi*(y | x)``; the plan has the Schrödinger
form ``exp(-|x - y|^2 / (2 eps)) phi(y) psi(x)``, so it is the EOT plan between p0 and p1.

The published benchmark ships fixed mixtures that are not reproduced here. :func:`make_benchmark`
draws instances by the same recipe with a fixed seed (documented there), so numbers are comparable
in spirit, not cell for cell.

Metric: for test points ``x ~ p0``, the squared Bures-Wasserstein distance between the Gaussian
with the model's conditional mean / covariance and the Gaussian with the exact ones, averaged over
``x`` and reported as ``100 * BW2^2 / Var(p1)`` (percent; ``Var`` the total variance).
"""

from __future__ import annotations

import torch
from torch import Tensor

from sciml.distributions import GaussianMixture, gaussian_log_prob
from sciml.metrics import gaussian_w2_sq
from sciml.validation import (
    check_generator,
    check_int,
    check_positive,
    check_positive_int,
    check_tensor,
)

__all__ = [
    "EOTBenchmark",
    "make_benchmark",
    "random_rotation",
    "random_spd",
    "bures_wasserstein_sq",
    "cbw2_uvp",
    "cbw2_uvp_bridge",
    "sample_moments",
]


def random_rotation(dim: int, generator: torch.Generator | None = None) -> Tensor:
    """A Haar-random orthogonal matrix (QR of a Gaussian matrix with the sign fix), float64."""
    dim = check_positive_int("dim", dim)
    q, r = torch.linalg.qr(torch.randn(dim, dim, dtype=torch.float64, generator=generator))
    return q * torch.sign(torch.diagonal(r))[None, :]


def random_spd(dim: int, low: float, high: float, generator: torch.Generator | None = None) -> Tensor:
    """``Q diag(lam) Q^T`` with ``Q`` Haar-random and ``lam ~ U[low, high]`` (``0 < low <= high``), float64."""
    low, high = check_positive("low", low), check_positive("high", high)
    if low > high:
        raise ValueError(f"low must be <= high, got low={low}, high={high}")
    q = random_rotation(dim, generator)
    lam = low + (high - low) * torch.rand(dim, dtype=torch.float64, generator=generator)
    return (q * lam) @ q.T


class EOTBenchmark:
    """A benchmark pair ``(p0, p1)`` with its exact EOT plan ``pi*(y | x) ∝ N(y | x, eps I) phi(y)``.

    Args:
        p0: the source mixture.
        potential: the mixture ``phi`` (weights ``p_k``, means ``mu_k``, covariances ``Sigma_k``).
        eps: regularisation (variance of the reference process).
    """

    def __init__(self, p0: GaussianMixture, potential: GaussianMixture, eps: float) -> None:
        for name, mix in (("p0", p0), ("potential", potential)):
            if not isinstance(mix, GaussianMixture):
                raise TypeError(f"{name} must be a GaussianMixture, got {type(mix).__name__}")
        if p0.dim != potential.dim:
            raise ValueError(f"p0 and potential must have the same dimension, got {p0.dim} and {potential.dim}")
        self.p0, self.potential, self.eps = p0, potential, check_positive("eps", eps)
        d = potential.dim
        eye = torch.eye(d, dtype=torch.float64)
        prec = torch.linalg.inv(potential.covariance_matrices)
        self.plan_covs = torch.linalg.inv(prec + eye / self.eps)  # Sigma~_k
        self.plan_covs = 0.5 * (self.plan_covs + self.plan_covs.transpose(-1, -2))
        self.plan_bias = torch.einsum("kde,ke->kd", self.plan_covs @ prec, potential.means)
        self.plan_gain = self.plan_covs / self.eps  # E[y | x, k] = bias_k + gain_k x
        self._plan_chol = torch.linalg.cholesky(self.plan_covs)
        self._weight_chol = torch.linalg.cholesky(potential.covariance_matrices + self.eps * eye)
        self._var_p1: float | None = None

    @property
    def dim(self) -> int:
        """Dimension D."""
        return self.p0.dim

    def conditional_log_weights(self, x: Tensor) -> Tensor:
        """Normalised log-weights ``log w_k(x)`` of the conditional mixture, (n, D) -> (n, K)."""
        self._points("x", x)
        lp = torch.log(self.potential.weights) + gaussian_log_prob(x.to(torch.float64), self.potential.means,
                                                                  scale_tril=self._weight_chol)
        return torch.log_softmax(lp, dim=-1)

    def _points(self, name: str, x: Tensor) -> Tensor:
        return check_tensor(name, x, shape=(None, self.dim))

    def _component_means(self, x: Tensor) -> Tensor:
        return self.plan_bias[None] + torch.einsum("kde,ne->nkd", self.plan_gain, x.to(torch.float64))

    def conditional_moments(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Exact mean (n, D) and covariance (n, D, D) of ``pi*(. | x)``."""
        w = self.conditional_log_weights(x).exp()
        mu = self._component_means(x)
        mean = torch.einsum("nk,nkd->nd", w, mu)
        c = mu - mean[:, None]
        cov = torch.einsum("nk,nkd,nke->nde", w, c, c) + torch.einsum("nk,kde->nde", w, self.plan_covs)
        return mean, cov

    def conditional_log_prob(self, y: Tensor, x: Tensor) -> Tensor:
        """``log pi*(y | x)``, (n, D), (n, D) -> (n,)."""
        check_tensor("y", y, shape=tuple(self._points("x", x).shape))
        logw = self.conditional_log_weights(x)
        y = y.to(torch.float64)
        comp = gaussian_log_prob(y, self._component_means(x), scale_tril=self._plan_chol)
        return torch.logsumexp(logw + comp, dim=-1)

    def sample_conditional(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """One ``y ~ pi*(. | x)`` per row of ``x`` (n, D) -> (n, D), float64."""
        w = self.conditional_log_weights(x).exp()
        k = torch.multinomial(w, 1, generator=generator)[:, 0]
        x = x.to(torch.float64)
        xi = torch.randn(x.shape, dtype=torch.float64, generator=generator)
        out = torch.empty_like(x)
        for j in range(w.shape[1]):
            rows = k == j
            out[rows] = self.plan_bias[j] + x[rows] @ self.plan_gain[j].T + xi[rows] @ self._plan_chol[j].T
        return out

    def sample_p0(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` draws of p0, (n, D), float64."""
        return self.p0.sample((n,), generator=generator)

    def sample_plan(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """``n`` pairs ``(x, y) ~ pi*``, each (n, D), float64."""
        x = self.p0.sample((n,), generator=generator)
        return x, self.sample_conditional(x, generator)

    def sample_p1(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` draws of p1 (through the plan), (n, D), float64."""
        return self.sample_plan(n, generator)[1]

    def p1_variance(self, n: int = 100_000, generator: torch.Generator | None = None) -> float:
        """Total variance ``tr Cov(p1)`` by Monte Carlo over ``x ~ p0`` with exact conditional
        moments: ``E_x tr Cov(y | x) + tr Cov_x(E[y | x])`` (cached after the first call; ``n >= 2``)."""
        if self._var_p1 is None:
            if check_positive_int("n", n) < 2:
                raise ValueError(f"n must be >= 2 to estimate a variance, got {n}")
            gen = generator if generator is not None else torch.Generator().manual_seed(12345)
            tot_tr, means = 0.0, []
            for chunk in self.p0.sample((n,), generator=gen).split(4096):
                w = self.conditional_log_weights(chunk).exp()
                mu = self._component_means(chunk)
                mean = torch.einsum("nk,nkd->nd", w, mu)
                second = torch.einsum("nk,nk->n", w, (mu * mu).sum(-1)) + w @ torch.diagonal(
                    self.plan_covs, dim1=-2, dim2=-1).sum(-1)
                tot_tr += float((second - (mean * mean).sum(-1)).sum())
                means.append(mean)
            m = torch.cat(means)
            self._var_p1 = tot_tr / n + float(m.var(dim=0, unbiased=True).sum())
        return self._var_p1


def make_benchmark(dim: int, eps: float, seed: int = 0) -> EOTBenchmark:
    """Draw a benchmark instance by the fixed recipe used in ``benchmarks/lightsb.py``.

    Recipe (float64, torch generators seeded from ``seed``, ``dim`` and ``eps``):

    * ``p0``: 3 components, weights 1/3, means ``~ N(0, 4 I)``, covariances ``Q diag(lam) Q^T``
      with ``Q`` Haar-random and ``lam ~ U[0.5, 1.5]`` (depends on ``dim`` and ``seed`` only);
    * ``phi``: 5 components, weights 1/5, means ``~ N(0, 4 I)``, covariances ``Q diag(lam) Q^T``
      with ``Q`` Haar-random and ``lam ~ U[0.5, 1.5]`` (depends on ``dim``, ``eps``, ``seed``).
    """
    dim = check_positive_int("dim", dim)
    eps = check_positive("eps", eps)
    seed = check_int("seed", seed)
    g0 = torch.Generator().manual_seed(1_000_003 * seed + dim)
    p0 = GaussianMixture(
        torch.full((3,), 1 / 3, dtype=torch.float64),
        2.0 * torch.randn(3, dim, dtype=torch.float64, generator=g0),
        torch.stack([random_spd(dim, 0.5, 1.5, g0) for _ in range(3)]),
    )
    g1 = torch.Generator().manual_seed(1_000_003 * seed + 7919 * dim + int(round(1000 * eps)) + 17)
    phi = GaussianMixture(
        torch.full((5,), 1 / 5, dtype=torch.float64),
        2.0 * torch.randn(5, dim, dtype=torch.float64, generator=g1),
        torch.stack([random_spd(dim, 0.5, 1.5, g1) for _ in range(5)]),
    )
    return EOTBenchmark(p0, phi, eps)


def bures_wasserstein_sq(m1: Tensor, S1: Tensor, m2: Tensor, S2: Tensor) -> Tensor:
    """Squared W2 between Gaussians, batched: :func:`sciml.metrics.gaussian_w2_sq` of the symmetrised
    covariances (a float32 model's conditional covariances are symmetric only to its rounding, which
    the mixture moments' cancellation can lift above the metric's own tolerance)."""
    S1, S2 = (0.5 * (s + s.transpose(-1, -2)) for s in (S1, S2))
    return gaussian_w2_sq(m1, S1, m2, S2)


def cbw2_uvp(model_mean: Tensor, model_cov: Tensor, true_mean: Tensor, true_cov: Tensor, var_p1: float) -> float:
    """cB-W2^2-UVP in percent: ``100 * mean_x BW2^2(model(x), true(x)) / Var(p1)``.

    Args:
        model_mean: model conditional means at the test points, (n, D).
        model_cov: model conditional covariances, (n, D, D).
        true_mean: exact conditional means, (n, D).
        true_cov: exact conditional covariances, (n, D, D).
        var_p1: total variance of p1.
    """
    check_tensor("model_mean", model_mean, ndim=2)
    check_tensor("true_mean", true_mean, shape=tuple(model_mean.shape))
    n, d = model_mean.shape
    check_tensor("model_cov", model_cov, shape=(n, d, d))
    check_tensor("true_cov", true_cov, shape=(n, d, d))
    var_p1 = check_positive("var_p1", var_p1)
    return 100.0 * float(bures_wasserstein_sq(model_mean, model_cov, true_mean, true_cov).mean()) / var_p1


def sample_moments(samples: Tensor) -> tuple[Tensor, Tensor]:
    """Sample mean (..., D) and unbiased covariance (..., D, D) of draws (..., m, D), ``m >= 2``."""
    check_tensor("samples", samples)
    if samples.ndim < 2 or samples.shape[-2] < 2:
        raise ValueError(f"samples must hold m >= 2 draws along dimension -2, got shape {tuple(samples.shape)}")
    mean = samples.mean(-2)
    c = samples - mean[..., None, :]
    return mean, c.transpose(-1, -2) @ c / (samples.shape[-2] - 1)


def cbw2_uvp_bridge(
    bridge: object,
    bench: EOTBenchmark,
    n_test: int = 1000,
    n_samples: int | None = None,
    generator: torch.Generator | None = None,
) -> float:
    """cB-W2^2-UVP (percent) of a fitted bridge on a benchmark instance.

    Args:
        bridge: anything with ``sample(x0, generator=...)`` (and ``conditional_moments(x0)`` when
            ``n_samples`` is ``None``), e.g. a LightSB :class:`~sciml_plugins.lightsb.Bridge`.
        bench: the benchmark instance.
        n_test: number of test points ``x ~ p0``.
        n_samples: ``None``: use the model's exact conditional moments (the limit of the
            protocol); an int ``m >= 2``: fit a Gaussian to ``m`` model samples per test point (the
            published protocol uses 1000).
        generator: source of randomness (test points and model samples).
    """
    if not isinstance(bench, EOTBenchmark):
        raise TypeError(f"bench must be an EOTBenchmark (e.g. from make_benchmark), got {type(bench).__name__}")
    method = "conditional_moments" if n_samples is None else "sample"
    if not callable(getattr(bridge, method, None)):
        raise TypeError(f"bridge must have a {method}() method (n_samples={n_samples}), got {type(bridge).__name__}")
    n_test = check_positive_int("n_test", n_test)
    if n_samples is not None and check_positive_int("n_samples", n_samples) < 2:
        raise ValueError(f"n_samples must be >= 2 (a covariance from one sample is undefined), got {n_samples}")
    check_generator("generator", generator)
    x = bench.sample_p0(n_test, generator)
    t_mean, t_cov = bench.conditional_moments(x)
    if n_samples is None:
        m_mean, m_cov = bridge.conditional_moments(x)  # type: ignore[attr-defined]
    else:
        m = check_positive_int("n_samples", n_samples)
        means, covs = [], []
        for xi in x.split(max(1, 20000 // m)):
            ys = bridge.sample(xi.repeat_interleave(m, 0), generator=generator)  # type: ignore[attr-defined]
            mu, cv = sample_moments(ys.to(torch.float64).reshape(xi.shape[0], m, -1))
            means.append(mu)
            covs.append(cv)
        m_mean, m_cov = torch.cat(means), torch.cat(covs)
    return cbw2_uvp(m_mean.to(torch.float64), m_cov.to(torch.float64), t_mean, t_cov, bench.p1_variance())
