"""Tasks: what a distribution transformer is trained on, and the exact posteriors that check it.

A :class:`Task` is a meta-prior over priors, a likelihood simulator and a range of data-set sizes. It
also declares how a (prior, data) pair becomes network inputs (:meth:`Task.encode`), which is where a
task states the symmetries of its model: both tasks here are location / scale families, so their
inputs are standardised exactly (the posterior of standardised inputs, mapped back, is the posterior),
and the network only learns what the symmetry leaves. Copy one to define your own.
"""

from __future__ import annotations

import abc
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor

from sciml.validation import check_tensor

from .mixtures import Mixture, from_distribution

__all__ = ["Task", "Problem", "Encoded", "GMMGaussian", "NormalVariance", "GPLengthscale", "TASKS",
           "gmm_gaussian_posterior", "random_walk_prediction", "inverse_gamma_log_variance_log_prob",
           "normal_variance_kl", "gp_log_marginal_likelihood", "gp_lengthscale_grid_posterior", "grid_kl",
           "standard_gamma"]


@dataclass
class Problem:
    """A simulated batch: ``prior`` (a :class:`Mixture`, or ``(B, P)`` parameters of a parametric prior),
    data ``z`` ``(B, n, obs_dim)``, ``extras`` (per-problem inputs such as the noise scale), ``theta``
    ``(B, M, dim)``: ``M`` draws of the parameter (in inference space) from its posterior, and
    ``prior_theta`` ``(B, M, dim)``: ``M`` draws from the prior (for the prior-consistency term)."""

    prior: Any
    z: Tensor
    extras: dict[str, Tensor]
    theta: Tensor
    prior_theta: Tensor


@dataclass
class Encoded:
    """Network inputs: ``prior`` features ``(B, K, F)`` or parameters ``(B, P)``; ``obs`` ``(B, n, F_obs)``;
    ``context`` ``(B, F_ctx)``; ``undo`` maps the decoded (standardised) mixture back to inference space."""

    prior: Tensor
    obs: Tensor
    context: Tensor
    undo: Callable[[Mixture], Mixture] = field(repr=False)


class Task(abc.ABC):
    """A family of inference problems. Class attributes: ``name``; ``dim`` (parameter dimension in
    inference space); ``obs_dim``, ``obs_features``, ``context_features`` (network input sizes);
    ``prior_params`` (0: Gaussian-mixture priors of ``components`` = (min, max) components; > 0: a
    parametric prior with that many parameters, decoded to ``components[1]`` components);
    ``n_range`` (data-set sizes of the posterior term, inclusive; size 0 is the prior-consistency
    term, trained every step); ``bijection`` (inference space -> parameter space)."""

    name: ClassVar[str]
    dim: ClassVar[int]
    obs_dim: ClassVar[int]
    obs_features: ClassVar[int]
    context_features: ClassVar[int]
    prior_params: ClassVar[int] = 0
    components: ClassVar[tuple[int, int]]
    n_range: ClassVar[tuple[int, int]] = (1, 16)
    bijection: ClassVar[torch.distributions.Transform | None] = None

    def __init__(self, posterior_draws: int = 8) -> None:
        self.posterior_draws = posterior_draws

    @abc.abstractmethod
    def simulate(self, batch: int, generator: torch.Generator, *, n: int | None = None,
                 components: int | None = None, dtype: torch.dtype = torch.float32) -> Problem:
        """``batch`` problems from the meta-prior (one data-set size ``n`` and one component count per
        batch, drawn from their ranges unless given)."""

    @abc.abstractmethod
    def encode(self, prior: Any, z: Tensor, extras: dict[str, Tensor]) -> Encoded:
        """Network inputs for a batch of (prior, data) pairs."""

    @abc.abstractmethod
    def inputs(self, prior: Any, z: object, **extras: object) -> tuple[Any, Tensor, dict[str, Tensor]]:
        """Check a user's query (clear errors; a warning outside the trained ranges) and convert it to
        the internal ``(prior, z (B, n, obs_dim), extras)`` in float64."""

    def output(self, mix: Mixture) -> torch.distributions.Distribution:
        """The posterior handed to the user: the mixture, pushed through ``bijection`` if there is one."""
        dist = mix.distribution()
        if self.bijection is None:
            return dist
        return torch.distributions.TransformedDistribution(dist, [self.bijection], validate_args=False)

    def _data(self, z: object, batch: int) -> Tensor:
        z = check_tensor("z", z, floating=True, finite=True)
        if self.obs_dim == 1 and z.ndim == 2:
            z = z[..., None]
        if z.ndim != 3 or z.shape[0] != batch or z.shape[2] != self.obs_dim:
            raise ValueError(f"z must have shape (B={batch}, n, {self.obs_dim}) for the {self.name} task, got "
                             f"{tuple(z.shape)}")
        hi = self.n_range[1]
        if z.shape[1] > hi:
            warnings.warn(f"{z.shape[1]} observations per data set lies outside the trained range 0 - {hi}; "
                          "the posterior may be inaccurate", stacklevel=4)
        return z.to(torch.float64)

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "posterior_draws": self.posterior_draws}


def _randint(low: int, high: int, generator: torch.Generator) -> int:
    return int(torch.randint(low, high + 1, (1,), generator=generator))


def _log_uniform(bounds: tuple[float, float], batch: int, generator: torch.Generator) -> Tensor:
    lo, hi = (math.log(b) for b in bounds)
    return torch.exp(lo + (hi - lo) * torch.rand(batch, generator=generator, dtype=torch.float64))


def _shape_rate(prior: Any, family: type, what: str) -> Tensor:
    """``(B, 2)`` positive (concentration, rate) from a torch ``family`` distribution of batch ``(B,)`` or
    a tensor, with clear errors (``what``: the parameter the prior is on)."""
    if isinstance(prior, family):
        params = torch.stack([prior.concentration, prior.rate], -1)
    elif isinstance(prior, Tensor):
        params = prior
    else:
        raise TypeError(f"prior must be a torch {family.__name__} over the {what} (batch (B,)) or a (B, 2) tensor of "
                        f"(concentration, rate), got {type(prior).__name__}")
    params = check_tensor("prior", params.to(torch.float64), finite=True)
    if params.ndim != 2 or params.shape[1] != 2:
        raise ValueError(f"prior must have batch shape (B,) (parameters (B, 2)), got {tuple(params.shape)}")
    if (params <= 0).any():
        raise ValueError("prior parameters (concentration, rate) must be positive")
    return params


def standard_gamma(shape: Tensor, generator: torch.Generator) -> Tensor:
    """Gamma(shape, 1) draws seeded by ``generator`` (torch's gamma sampler takes no generator: it runs
    on a forked global generator seeded from ``generator``, leaving the global state as it was)."""
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return torch._standard_gamma(shape)


# ------------------------------------------------------------------------------------------------
# (a) Gaussian-mixture prior, Gaussian observations
# ------------------------------------------------------------------------------------------------


def gmm_gaussian_posterior(prior: Mixture, z: Tensor, noise_scale: Tensor) -> Mixture:
    """Exact posterior of ``x`` for the prior mixture and ``z_i ~ N(x, sigma^2 I)``, ``z`` ``(B, n, d)``,
    ``noise_scale`` ``(B,)``: each component takes a Kalman step, its weight times its evidence."""
    n = z.shape[1]
    if n == 0:
        return prior
    d = prior.dim
    r = (noise_scale**2 / n)[:, None, None, None] * torch.eye(d, dtype=z.dtype, device=z.device)  # (B, 1, d, d)
    cov = prior.scale_tril @ prior.scale_tril.transpose(-1, -2)  # (B, K, d, d)
    chol = torch.linalg.cholesky(cov + r)
    resid = z.mean(1)[:, None, :] - prior.means  # (B, K, d)
    white = torch.linalg.solve_triangular(chol, resid[..., None], upper=False)  # L^-1 (zbar - m)
    means = prior.means + (cov @ torch.cholesky_solve(resid[..., None], chol))[..., 0]
    post_cov = cov @ torch.cholesky_solve(r.expand_as(cov), chol)  # S (S + R)^-1 R: no cancellation
    post_cov = 0.5 * (post_cov + post_cov.transpose(-1, -2))
    log_ev = (-0.5 * (white[..., 0] ** 2).sum(-1) - torch.diagonal(chol, dim1=-2, dim2=-1).log().sum(-1)
              - 0.5 * d * math.log(2 * math.pi))
    return Mixture(torch.log_softmax(prior.log_weights + log_ev, -1), means, torch.linalg.cholesky(post_cov))


def random_walk_prediction(mix: Mixture, step_scale: float | Tensor) -> Mixture:
    """The prediction step of ``x_t = x_{t-1} + w``, ``w ~ N(0, q^2 I)``: every covariance gains ``q^2 I``."""
    q2 = torch.as_tensor(step_scale, dtype=mix.means.dtype, device=mix.means.device) ** 2
    eye = torch.eye(mix.dim, dtype=mix.means.dtype, device=mix.means.device)
    cov = mix.scale_tril @ mix.scale_tril.transpose(-1, -2) + q2.reshape(-1, 1, 1, 1) * eye
    return Mixture(mix.log_weights, mix.means, torch.linalg.cholesky(cov))


def inverse_wishart_tril(shape: tuple[int, ...], d: int, df: int, scale: float, generator: torch.Generator,
                         dtype: torch.dtype) -> Tensor:
    """Cholesky factors of ``S ~ InverseWishart(df, scale I_d)``, i.e. ``S^-1 ~ Wishart(df, I_d / scale)``
    (Bartlett decomposition; integer ``df`` >= d); the mean is ``scale I / (df - d - 1)``."""
    a = torch.randn(*shape, d, d, generator=generator, dtype=dtype).tril(-1)
    chi2 = torch.stack([torch.randn(*shape, df - i, generator=generator, dtype=dtype).square().sum(-1)
                        for i in range(d)], -1)
    a = a + torch.diag_embed(chi2.sqrt())
    return torch.linalg.cholesky(scale * torch.cholesky_inverse(a))


class GMMGaussian(Task):
    """``x`` in R^2 with a Gaussian-mixture prior of 1 - 4 components, ``n`` = 0 - 16 observations
    ``z_i ~ N(x, sigma^2 I)``, ``sigma`` in [0.25, 2] given with the data.

    Meta-prior: K uniform on {1..4}, weights ~ Dirichlet(1), means ~ N(0, 2^2 I), covariances ~
    InverseWishart(5, 2 I) (mean I: component sds of about 0.4 - 2.5, correlations of either sign),
    sigma log-uniform, n uniform. Inputs are standardised exactly (the model is equivariant under
    shifts and scalings of x): centred at the data mean (the prior mean when n = 0) and scaled by
    ``(1 / v + n / sigma^2)^(-1/2)``, ``v`` the prior's mean component variance per dimension: the
    posterior's scale were the prior one Gaussian, so the answer is of order one unit whichever of
    prior and data dominates (measured: scaling by the likelihood's sd alone, or by the larger of the
    two scales, left the largest errors where the posterior was much narrower than a unit).
    """

    name = "gmm-gaussian"
    dim = 2
    obs_dim = 2
    obs_features = 2
    context_features = 1
    components = (1, 4)
    sigma_range = (0.25, 2.0)
    mean_scale = 2.0  # means ~ N(0, mean_scale^2 I)
    cov_df, cov_scale = 5, 2.0  # covariances ~ InverseWishart(cov_df, cov_scale I)

    def sample_prior(self, batch: int, k: int, generator: torch.Generator, dtype: torch.dtype) -> Mixture:
        e = -torch.rand(batch, k, generator=generator, dtype=dtype).clamp_min(1e-30).log()  # Dirichlet(1)
        log_w = torch.log(e / e.sum(-1, keepdim=True))
        means = self.mean_scale * torch.randn(batch, k, self.dim, generator=generator, dtype=dtype)
        tril = inverse_wishart_tril((batch, k), self.dim, self.cov_df, self.cov_scale, generator, dtype)
        return Mixture(log_w, means, tril)

    def simulate(self, batch: int, generator: torch.Generator, *, n: int | None = None,
                 components: int | None = None, dtype: torch.dtype = torch.float32) -> Problem:
        n = _randint(*self.n_range, generator) if n is None else n
        k = _randint(*self.components, generator) if components is None else components
        # simulate in float64: the exact posterior of a far-off component loses digits in float32
        prior = self.sample_prior(batch, k, generator, torch.float64)
        x = prior.sample(1, generator)[0]
        lo, hi = (math.log(s) for s in self.sigma_range)
        sigma = torch.exp(lo + (hi - lo) * torch.rand(batch, generator=generator, dtype=torch.float64))
        z = x[:, None, :] + sigma[:, None, None] * torch.randn(batch, n, self.dim, generator=generator,
                                                                dtype=torch.float64)
        post = gmm_gaussian_posterior(prior, z, sigma)
        theta = post.sample(self.posterior_draws, generator).transpose(0, 1)
        prior_theta = prior.sample(self.posterior_draws, generator).transpose(0, 1)
        return Problem(prior.to(dtype), z.to(dtype), {"noise_scale": sigma.to(dtype)}, theta.to(dtype),
                       prior_theta.to(dtype))

    def encode(self, prior: Mixture, z: Tensor, extras: dict[str, Tensor]) -> Encoded:
        sigma = extras["noise_scale"]
        n = z.shape[1]
        if n > 0:
            centre = z.mean(1)
        else:
            centre = (prior.log_weights.exp()[..., None] * prior.means).sum(1)
        prior_var = (prior.log_weights.exp() * prior.scale_tril.square().sum((-1, -2))).sum(-1) / self.dim
        s = torch.rsqrt(1 / prior_var + n / sigma**2)[:, None, None]
        std = Mixture(prior.log_weights, (prior.means - centre[:, None]) / s, prior.scale_tril / s[..., None])
        context = torch.full((z.shape[0], 1), math.log1p(n), dtype=z.dtype, device=z.device)

        def undo(mix: Mixture) -> Mixture:
            return Mixture(mix.log_weights, centre[:, None] + s * mix.means, s[..., None] * mix.scale_tril)

        return Encoded(std.features(), (z - centre[:, None]) / s, context, undo)

    def inputs(self, prior: Any, z: object, *, noise_scale: object = None) -> tuple[Mixture, Tensor, dict[str, Tensor]]:
        mix = from_distribution("prior", prior).to(torch.float64)
        b, k, d = mix.means.shape
        if d != self.dim:
            raise ValueError(f"prior must be over R^{self.dim} for the {self.name} task, got R^{d}")
        if k > self.components[1]:
            raise ValueError(f"prior has {k} components; the model was trained on {self.components[0]} - "
                             f"{self.components[1]}")
        z = self._data(z, b)
        if noise_scale is None:
            raise TypeError("the gmm-gaussian task needs noise_scale= (the observation noise sd, a float or (B,))")
        try:  # floats, ints, numpy scalars / arrays and tensors of a real dtype
            raw = torch.as_tensor(noise_scale)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise TypeError(f"noise_scale must be a real float or a real tensor of shape (B,), got "
                            f"{type(noise_scale).__name__}") from exc
        if raw.is_complex() or raw.dtype == torch.bool:
            raise TypeError(f"noise_scale must be a real float or a real tensor of shape (B,), got {raw.dtype}")
        sigma = check_tensor("noise_scale", raw.to(torch.float64), finite=True)
        if sigma.ndim > 1 or (sigma.ndim == 1 and sigma.shape[0] != b):
            raise ValueError(f"noise_scale must be a float or of shape (B={b},), got {tuple(sigma.shape)}")
        if (sigma <= 0).any():
            raise ValueError("noise_scale must be positive")
        lo, hi = self.sigma_range
        if ((sigma < lo) | (sigma > hi)).any():
            warnings.warn(f"noise_scale outside the trained range [{lo}, {hi}]; the posterior may be inaccurate",
                          stacklevel=3)
        return mix, z, {"noise_scale": sigma.expand(b).to(z.device).clone()}


# ------------------------------------------------------------------------------------------------
# (b) Gaussian data of known mean, unknown variance, inverse-gamma prior; inference on log variance
# ------------------------------------------------------------------------------------------------


def inverse_gamma_log_variance_log_prob(theta: Tensor, alpha: Tensor, beta: Tensor) -> Tensor:
    """Log-density of ``theta = log v`` for ``v ~ InverseGamma(alpha, beta)`` (broadcasting)."""
    return alpha * torch.log(beta) - torch.lgamma(alpha) - alpha * theta - beta * torch.exp(-theta)


def normal_variance_kl(q: Mixture, alpha: Tensor, beta: Tensor, points: int = 8001) -> Tensor:
    """``KL(p_b || q_b)`` for the exact log-variance posteriors ``InverseGamma(alpha, beta)`` (``(B,)``) and
    1-D mixtures ``q`` over log variance, by the trapezoidal rule from 14 sd below the posterior mean
    (the left tail decays like ``exp(-beta e^-theta)``) to 14 sd + 40 / alpha above it (the right tail
    decays like ``exp(-alpha theta)``): what is cut off is below 1e-15 for mixtures with sd < 1e3."""
    alpha, beta = alpha.to(torch.float64), beta.to(torch.float64)
    centre = torch.log(beta) - torch.special.digamma(alpha)  # E[log v]
    sd = torch.special.polygamma(1, alpha).sqrt()
    t = torch.linspace(0.0, 1.0, points, dtype=torch.float64)[:, None]
    lo, hi = centre - 14 * sd, centre + 14 * sd + 40 / alpha
    theta = lo + (hi - lo) * t  # (points, B)
    log_p = inverse_gamma_log_variance_log_prob(theta, alpha, beta)
    log_q = q.to(torch.float64).log_prob(theta[..., None])
    return torch.trapezoid(torch.exp(log_p) * (log_p - log_q), theta, dim=0)


class NormalVariance(Task):
    """``z_i ~ N(0, v)``, ``n`` = 0 - 16, prior ``v ~ InverseGamma(alpha, beta)``; the posterior of
    ``log v`` as a 5-component mixture (``bijection``: exp, back to ``v``).

    Meta-prior: alpha log-uniform on [1, 20], beta log-uniform on [0.1, 10]. Inputs are standardised
    exactly (the model is equivariant under ``z -> z / s``, ``v -> v / s^2``) with ``s^2 = beta / alpha``,
    so the network's prior input is ``log alpha`` alone (a learned mixture fit of that prior).
    Exact posterior: ``InverseGamma(alpha + n / 2, beta + sum z_i^2 / 2)``.
    """

    name = "normal-variance"
    dim = 1
    obs_dim = 1
    obs_features = 1
    context_features = 1
    prior_params = 1
    components = (5, 5)
    bijection = torch.distributions.ExpTransform()
    alpha_range = (1.0, 20.0)
    beta_range = (0.1, 10.0)

    def simulate(self, batch: int, generator: torch.Generator, *, n: int | None = None,
                 components: int | None = None, dtype: torch.dtype = torch.float32) -> Problem:
        n = _randint(*self.n_range, generator) if n is None else n
        f64 = torch.float64
        alpha, beta = _log_uniform(self.alpha_range, batch, generator), _log_uniform(self.beta_range, batch, generator)
        v = beta / standard_gamma(alpha, generator)
        z = v.sqrt()[:, None, None] * torch.randn(batch, n, 1, generator=generator, dtype=f64)
        a_post = alpha + n / 2
        b_post = beta + 0.5 * z.square().sum((1, 2))
        g = standard_gamma(a_post[:, None].expand(batch, self.posterior_draws).contiguous(), generator)
        theta = (b_post[:, None].log() - g.log())[..., None]  # log of InverseGamma draws
        prior_g = standard_gamma(alpha[:, None].expand(batch, self.posterior_draws).contiguous(), generator)
        prior_theta = (beta[:, None].log() - prior_g.log())[..., None]
        params = torch.stack([alpha, beta], -1)
        return Problem(params.to(dtype), z.to(dtype), {}, theta.to(dtype), prior_theta.to(dtype))

    def encode(self, prior: Tensor, z: Tensor, extras: dict[str, Tensor]) -> Encoded:
        alpha, beta = prior[:, 0], prior[:, 1]
        log_s2 = torch.log(beta / alpha)
        n = z.shape[1]
        context = torch.full((z.shape[0], 1), math.log1p(n), dtype=z.dtype, device=z.device)

        def undo(mix: Mixture) -> Mixture:
            return Mixture(mix.log_weights, mix.means + log_s2[:, None, None], mix.scale_tril)

        return Encoded(alpha.log()[:, None], z * torch.exp(-0.5 * log_s2)[:, None, None], context, undo)

    def inputs(self, prior: Any, z: object) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        params = _shape_rate(prior, torch.distributions.InverseGamma, "variance")
        a_lo, a_hi = self.alpha_range
        if ((params[:, 0] < a_lo) | (params[:, 0] > a_hi)).any():
            warnings.warn(f"prior alpha outside the trained range [{a_lo}, {a_hi}]; the posterior may be inaccurate",
                          stacklevel=3)
        return params, self._data(z, params.shape[0]), {}


# ------------------------------------------------------------------------------------------------
# (d) the lengthscale of a Gaussian process; reference posterior by quadrature on a grid
# ------------------------------------------------------------------------------------------------


def gp_log_marginal_likelihood(x: Tensor, y: Tensor, lengthscale: Tensor, noise_var: float) -> Tensor:
    """``log N(y | 0, K_l + noise_var I)`` with ``K_l(x, x') = exp(-(x - x')^2 / (2 l^2))``: inputs ``x``,
    ``y`` ``(B, n)``, ``lengthscale`` ``(B, G)`` -> ``(B, G)``."""
    n = x.shape[1]
    d2 = (x[:, :, None] - x[:, None, :]).square()[:, None]  # (B, 1, n, n)
    eye = torch.eye(n, dtype=x.dtype, device=x.device)
    chol = torch.linalg.cholesky(torch.exp(-0.5 * d2 / lengthscale[..., None, None] ** 2) + noise_var * eye)
    white = torch.linalg.solve_triangular(chol, y[:, None, :, None].expand(*chol.shape[:-1], 1), upper=False)
    return (-0.5 * white.square().sum((-1, -2)) - torch.diagonal(chol, dim1=-2, dim2=-1).log().sum(-1)
            - 0.5 * n * math.log(2 * math.pi))


def gp_lengthscale_grid_posterior(prior: Tensor, x: Tensor, y: Tensor, grid: Tensor, noise_var: float) -> Tensor:
    """Log-density of ``log l`` on ``grid`` ``(G,)`` for ``l ~ Gamma(a, b)`` (``prior`` ``(B, 2)`` shape and
    rate) and the GP data, normalised by the trapezoidal rule: ``(B, G)``."""
    a, b = prior[:, :1], prior[:, 1:]
    t = grid[None].expand(prior.shape[0], -1)
    log_prior = a * torch.log(b) - torch.lgamma(a) + a * t - b * torch.exp(t)  # Gamma density of e^t, times e^t
    log_post = log_prior + (gp_log_marginal_likelihood(x, y, torch.exp(t), noise_var) if x.shape[1] else 0.0)
    norm = torch.log(torch.trapezoid(torch.exp(log_post - log_post.amax(-1, keepdim=True)), grid, dim=-1))
    return log_post - log_post.amax(-1, keepdim=True) - norm[:, None]


def grid_kl(q: Mixture, grid: Tensor, log_p: Tensor) -> Tensor:
    """``KL(p_b || q_b)`` for 1-D densities ``p`` given on ``grid`` (``log_p`` ``(B, G)``), trapezoidal rule."""
    log_q = q.log_prob(grid[:, None, None].expand(-1, log_p.shape[0], 1))  # (G, B)
    return torch.trapezoid(torch.exp(log_p) * (log_p - log_q.T), grid, dim=-1)


def _sample_grid(log_p: Tensor, grid: Tensor, num: int, generator: torch.Generator) -> Tensor:
    """``num`` draws per row from the piecewise-constant density of the grid cells: ``(B, num)``."""
    cell = torch.exp(0.5 * (log_p[:, 1:] + log_p[:, :-1]))
    idx = torch.multinomial(cell, num, replacement=True, generator=generator)
    u = torch.rand(idx.shape, generator=generator, dtype=grid.dtype)
    return grid[idx] + u * (grid[1] - grid[0])


class GPLengthscale(Task):
    """The lengthscale ``l`` of a GP (squared-exponential kernel, unit signal variance, noise sd 0.1)
    from ``n`` = 1 - 16 points ``(x_i, y_i)``, ``x_i`` uniform on [0, 1]; prior ``l ~ Gamma(a, b)``
    (shape, rate); the posterior of ``log l`` as an 8-component mixture (``bijection``: exp).

    Meta-prior: ``a`` log-uniform on [2, 6], ``b`` on [2, 12] (prior means 0.17 - 3; the paper's
    Gamma(3, 6) inside). Reference: the posterior of ``log l`` by quadrature on 256 points of
    [-6, 3] (:func:`gp_lengthscale_grid_posterior`); the training draws come from that grid
    density. No standardisation: inputs are taken on [0, 1] as they are.
    """

    name = "gp-lengthscale"
    dim = 1
    obs_dim = 2
    obs_features = 2
    context_features = 1
    prior_params = 2
    components = (8, 8)
    bijection = torch.distributions.ExpTransform()
    a_range = (2.0, 6.0)
    b_range = (2.0, 12.0)
    noise_var = 0.01

    @staticmethod
    def grid(dtype: torch.dtype = torch.float64) -> Tensor:
        return torch.linspace(-6.0, 3.0, 256, dtype=dtype)

    def simulate(self, batch: int, generator: torch.Generator, *, n: int | None = None,
                 components: int | None = None, dtype: torch.dtype = torch.float32) -> Problem:
        n = _randint(*self.n_range, generator) if n is None else n
        f64 = torch.float64
        prior = torch.stack([_log_uniform(self.a_range, batch, generator), _log_uniform(self.b_range, batch, generator)],
                            -1)
        ell = standard_gamma(prior[:, 0], generator) / prior[:, 1]
        x = torch.rand(batch, n, generator=generator, dtype=f64)
        cov = torch.exp(-0.5 * (x[:, :, None] - x[:, None, :]).square() / ell[:, None, None] ** 2)
        chol = torch.linalg.cholesky(cov + self.noise_var * torch.eye(n, dtype=f64))
        y = (chol @ torch.randn(batch, n, 1, generator=generator, dtype=f64))[..., 0]
        grid = self.grid()
        theta = _sample_grid(gp_lengthscale_grid_posterior(prior, x, y, grid, self.noise_var), grid,
                             self.posterior_draws, generator)[..., None]
        prior_theta = (standard_gamma(prior[:, :1].expand(batch, self.posterior_draws).contiguous(), generator)
                       / prior[:, 1:]).log()[..., None]
        z = torch.stack([x, y], -1)
        return Problem(prior.to(dtype), z.to(dtype), {}, theta.to(dtype), prior_theta.to(dtype))

    def encode(self, prior: Tensor, z: Tensor, extras: dict[str, Tensor]) -> Encoded:
        context = torch.full((z.shape[0], 1), math.log1p(z.shape[1]), dtype=z.dtype, device=z.device)
        return Encoded(prior.log(), z, context, lambda mix: mix)

    def inputs(self, prior: Any, z: object) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        params = _shape_rate(prior, torch.distributions.Gamma, "lengthscale")
        z = self._data(z, params.shape[0])
        if ((z[..., 0] < 0) | (z[..., 0] > 1)).any():
            warnings.warn("inputs x outside the trained domain [0, 1]; the posterior may be inaccurate", stacklevel=3)
        return params, z, {}


#: The ready-made tasks by name.
TASKS: dict[str, type[Task]] = {"gmm-gaussian": GMMGaussian, "normal-variance": NormalVariance,
                                "gp-lengthscale": GPLengthscale}
