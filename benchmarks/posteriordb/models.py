"""pyro ports of fourteen posteriordb posteriors (the Stan models' parameterisation, priors, constraints).

Every model takes the posterior's data (a dict of float64 tensors) and is written to broadcast
over a leading batch of parameter values: no plates (observations are one event), latent values
indexed from the right, so :func:`sciml.targets.from_pyro_model` evaluates a batch of points in one
trace. A Stan
parameter with bounds and no prior has a flat density on its constrained space: here an
improper uniform site on that support. Where a Stan bound depends on another parameter (GARCH's
``beta1 < 1 - alpha1``), the port samples the parameter scaled to a fixed interval and adds the
log-Jacobian, which leaves the posterior of the Stan parameters unchanged.

The posteriordb parameters are the sites' constrained values, plus the transformed parameters
that :data:`TRANSFORMED` computes (eight schools' ``theta``, GARCH's ``beta1``, the GP's ``f``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pyro
import pyro.distributions as dist
import torch
from pyro.distributions import constraints
from torch import Tensor
from torch.distributions import biject_to

__all__ = ["MODELS", "TRANSFORMED", "SITES_FROM_PARAMETERS", "rk4_lotka_volterra"]

F64 = torch.float64
Data = dict[str, Tensor]


def _t(v: float) -> Tensor:
    return torch.tensor(v, dtype=F64)


class _Flat(dist.ImproperUniform):
    """``ImproperUniform`` (log-density 0 on ``support``) whose ``sample`` returns the image of 0, so
    that pyro can trace the model to find its sites (its initial values are drawn separately)."""

    def sample(self, sample_shape: tuple[int, ...] = ()) -> Tensor:
        t = biject_to(self.support)
        return t(torch.zeros(t.inverse_shape(torch.Size(sample_shape) + self.batch_shape + self.event_shape), dtype=F64))


def _flat(name: str, support: Any = constraints.real, size: int | None = None) -> Tensor:
    """A Stan parameter without a prior: flat density on ``support`` (a vector of ``size`` if given)."""
    return pyro.sample(name, _Flat(support, (), () if size is None else (size,)))


def _normal_regression(y: Tensor, mean: Tensor, sigma: Tensor) -> None:
    """``y`` (N,) ~ N(mean (..., N), sigma (...))."""
    pyro.sample("y", dist.Normal(mean, sigma[..., None]).to_event(1), obs=y)


# ---------------------------------------------------------------------------------------- regressions
def eight_schools_noncentered(d: Data) -> None:
    mu = pyro.sample("mu", dist.Normal(_t(0.0), 5.0))
    tau = pyro.sample("tau", dist.HalfCauchy(_t(5.0)))
    theta_trans = pyro.sample("theta_trans", dist.Normal(_t(0.0), 1.0).expand([d["y"].shape[-1]]).to_event(1))
    theta = theta_trans * tau[..., None] + mu[..., None]
    pyro.sample("y", dist.Normal(theta, d["sigma"]).to_event(1), obs=d["y"])


def _eight_schools_theta(v: dict[str, Tensor], d: Data) -> dict[str, Tensor]:
    return {"theta": v["theta_trans"] * v["tau"][..., None] + v["mu"][..., None]}


def sblrc_blr(d: Data) -> None:
    beta = pyro.sample("beta", dist.Normal(_t(0.0), 10.0).expand([d["X"].shape[-1]]).to_event(1))
    sigma = pyro.sample("sigma", dist.HalfNormal(_t(10.0)))
    _normal_regression(d["y"], beta @ d["X"].T, sigma)


def kidscore_momiq(d: Data) -> None:
    beta = _flat("beta", size=2)
    sigma = pyro.sample("sigma", dist.HalfCauchy(_t(2.5)))
    _normal_regression(d["kid_score"], beta[..., :1] + beta[..., 1:] * d["mom_iq"], sigma)


def logearn_height(d: Data) -> None:
    beta = _flat("beta", size=2)
    sigma = _flat("sigma", constraints.positive)
    _normal_regression(torch.log(d["earn"]), beta[..., :1] + beta[..., 1:] * d["height"], sigma)


def logmesquite(d: Data) -> None:
    cols = [torch.log(d[k]) for k in ("diam1", "diam2", "canopy_height", "total_height", "density")] + [d["group"]]
    x = torch.stack(cols, dim=-1)  # (N, 6)
    beta = _flat("beta", size=7)
    sigma = _flat("sigma", constraints.positive)
    _normal_regression(torch.log(d["weight"]), beta[..., :1] + beta[..., 1:] @ x.T, sigma)


def nes(d: Data) -> None:
    age = d["age_discrete"]
    cols = [d["real_ideo"], d["race_adj"], (age == 2).to(F64), (age == 3).to(F64), (age == 4).to(F64),
            d["educ1"], d["gender"], d["income"]]
    x = torch.stack(cols, dim=-1)  # (N, 8)
    beta = _flat("beta", size=9)
    sigma = _flat("sigma", constraints.positive)
    _normal_regression(d["partyid7"], beta[..., :1] + beta[..., 1:] @ x.T, sigma)


def diamonds(d: Data) -> None:
    x = d["X"][:, 1:]
    xc = x - x.mean(0)
    b = pyro.sample("b", dist.Normal(_t(0.0), 1.0).expand([xc.shape[-1]]).to_event(1))
    intercept = pyro.sample("Intercept", dist.StudentT(_t(3.0), _t(8.0), _t(10.0)))
    # half Student-t(3, 0, 10) (Stan's "- student_t_lccdf(0 | ...)" is a constant)
    sigma = pyro.sample("sigma", dist.FoldedDistribution(dist.StudentT(_t(3.0), _t(0.0), _t(10.0))))
    _normal_regression(d["Y"], intercept[..., None] + b @ xc.T, sigma)


# ---------------------------------------------------------------------------------------- time series
def ark(d: Data) -> None:
    y, k = d["y"], int(d["K"])
    lags = torch.stack([y[k - j - 1: y.shape[-1] - j - 1] for j in range(k)], dim=-1)  # (T - K, K): y[t - j]
    alpha = pyro.sample("alpha", dist.Normal(_t(0.0), 10.0))
    beta = pyro.sample("beta", dist.Normal(_t(0.0), 10.0).expand([k]).to_event(1))
    sigma = pyro.sample("sigma", dist.HalfCauchy(_t(2.5)))
    _normal_regression(y[k:], alpha[..., None] + beta @ lags.T, sigma)


def garch11(d: Data) -> None:
    y = d["y"]
    mu = _flat("mu")
    alpha0 = _flat("alpha0", constraints.positive)
    alpha1 = _flat("alpha1", constraints.unit_interval)
    # Stan: beta1 flat on (0, 1 - alpha1); here beta1 = (1 - alpha1) * u, u flat on (0, 1), Jacobian (1 - alpha1)
    u = _flat("beta1_unit", constraints.unit_interval)
    pyro.factor("beta1_jacobian", torch.log1p(-alpha1))
    beta1 = (1 - alpha1) * u
    sigma = [d["sigma1"].expand(mu.shape)]
    for t in range(1, y.shape[-1]):
        sigma.append(torch.sqrt(alpha0 + alpha1 * (y[t - 1] - mu) ** 2 + beta1 * sigma[-1] ** 2))
    pyro.sample("y", dist.Normal(mu[..., None], torch.stack(sigma, dim=-1)).to_event(1), obs=y)


def _garch_beta1(v: dict[str, Tensor], d: Data) -> dict[str, Tensor]:
    return {"beta1": (1 - v["alpha1"]) * v["beta1_unit"]}


def _hmm_log_likelihood(log_emission: Tensor, log_trans: Tensor) -> Tensor:
    """Forward algorithm: ``log_emission`` (..., N, K), ``log_trans`` (..., K, K) (row: from) -> (...)."""
    gamma = log_emission[..., 0, :]
    for t in range(1, log_emission.shape[-2]):
        gamma = torch.logsumexp(gamma[..., :, None] + log_trans, dim=-2) + log_emission[..., t, :]
    return torch.logsumexp(gamma, dim=-1)


def hmm_example(d: Data) -> None:
    y = d["y"]
    theta1 = _flat("theta1", constraints.simplex, 2)
    theta2 = _flat("theta2", constraints.simplex, 2)
    mu = _flat("mu", constraints.positive_ordered_vector, 2)
    pyro.factor("mu_prior", dist.Normal(_t(3.0), 1.0).log_prob(mu[..., 0]) + dist.Normal(_t(10.0), 1.0).log_prob(mu[..., 1]))
    log_em = dist.Normal(mu[..., None, :], 1.0).log_prob(y[:, None])  # (..., N, K)
    log_trans = torch.log(torch.stack([theta1, theta2], dim=-2))
    pyro.factor("hmm", _hmm_log_likelihood(log_em, log_trans))


def hmm_drive_0(d: Data) -> None:
    u, v, alpha = d["u"], d["v"], d["alpha"]
    theta1 = pyro.sample("theta1", dist.Dirichlet(alpha[0]))
    theta2 = pyro.sample("theta2", dist.Dirichlet(alpha[1]))
    phi = _flat("phi", constraints.positive_ordered_vector, 2)
    lam = _flat("lambda", constraints.positive_ordered_vector, 2)
    prior = (dist.Normal(_t(0.0), 1.0).log_prob(phi[..., 0]) + dist.Normal(_t(3.0), 1.0).log_prob(phi[..., 1])
             + dist.Normal(_t(0.0), 1.0).log_prob(lam[..., 0]) + dist.Normal(_t(3.0), 1.0).log_prob(lam[..., 1]))
    pyro.factor("phi_lambda_prior", prior)
    # exponential log-densities written out: a rate that under- or overflows (0, inf) is rejected below
    log_em = (torch.log(phi[..., None, :]) - phi[..., None, :] * u[:, None]
              + torch.log(lam[..., None, :]) - lam[..., None, :] * v[:, None])
    log_trans = torch.log(torch.stack([theta1, theta2], dim=-2))
    # an overflowing rate gives inf - inf: reject the point (-inf), as Stan rejects a NaN log density
    pyro.factor("hmm", torch.nan_to_num(_hmm_log_likelihood(log_em, log_trans), nan=-math.inf))


# ---------------------------------------------------------------------------------------- other
def gp_pois_regr(d: Data) -> None:
    x, k = d["x"], d["k"]
    rho = pyro.sample("rho", dist.Gamma(_t(25.0), _t(4.0)))
    alpha = pyro.sample("alpha", dist.HalfNormal(_t(2.0)))
    f_tilde = pyro.sample("f_tilde", dist.Normal(_t(0.0), 1.0).expand([x.shape[-1]]).to_event(1))
    chol, failed = _gp_cholesky(x, rho, alpha)
    # Stan rejects a point whose cholesky_decompose throws: log density -inf there
    pyro.factor("cholesky_failed", torch.where(failed, -math.inf, 0.0).to(x.dtype))
    f = (chol @ f_tilde[..., None])[..., 0]
    pyro.sample("k", dist.Poisson(torch.exp(f)).to_event(1), obs=k)


def _gp_cholesky(x: Tensor, rho: Tensor, alpha: Tensor) -> tuple[Tensor, Tensor]:
    """Cholesky factor of ``alpha^2 exp(-(x_i - x_j)^2 / (2 rho^2)) + 1e-10 I`` (Stan's ``gp_exp_quad_cov``)
    and a mask of the points where it failed (their factor is the identity, their density rejected)."""
    sq = (x[:, None] - x[None, :]) ** 2
    cov = alpha[..., None, None] ** 2 * torch.exp(-sq / (2 * rho[..., None, None] ** 2))
    eye = torch.eye(x.shape[-1], dtype=x.dtype)
    chol, info = torch.linalg.cholesky_ex(cov + 1e-10 * eye)
    failed = info != 0
    return torch.where(failed[..., None, None], eye, chol), failed


def _gp_f(x: Tensor, rho: Tensor, alpha: Tensor, f_tilde: Tensor) -> Tensor:
    return (_gp_cholesky(x, rho, alpha)[0] @ f_tilde[..., None])[..., 0]


def _gp_f_quantity(v: dict[str, Tensor], d: Data) -> dict[str, Tensor]:
    return {"f": _gp_f(d["x"], v["rho"], v["alpha"], v["f_tilde"])}


def low_dim_gauss_mix(d: Data) -> None:
    y = d["y"]
    mu = _flat("mu", constraints.ordered_vector, 2)
    pyro.factor("mu_prior", dist.Normal(_t(0.0), 2.0).log_prob(mu).sum(-1))
    sigma = pyro.sample("sigma", dist.HalfNormal(_t(2.0)).expand([2]).to_event(1))
    theta = pyro.sample("theta", dist.Beta(_t(5.0), _t(5.0)))
    lp = torch.stack([torch.log(theta)[..., None] + dist.Normal(mu[..., :1], sigma[..., :1]).log_prob(y),
                      torch.log1p(-theta)[..., None] + dist.Normal(mu[..., 1:], sigma[..., 1:]).log_prob(y)])
    pyro.factor("mixture", torch.logsumexp(lp, dim=0).sum(-1))


def rk4_lotka_volterra(z0: Tensor, theta: Tensor, ts: Tensor, step: float = 0.05) -> Tensor:
    """Predator-prey populations at the times ``ts`` (N,) from ``z0`` (..., 2) at time 0, classic RK4.

    ``theta`` (..., 4) = (alpha, beta, gamma, delta): ``du = (alpha - beta v) u``, ``dv = (-gamma + delta u) v``.
    Returns (..., N, 2). ``step`` is the largest step; each interval between output times is split evenly.
    """
    a, b, g, dl = (theta[..., i] for i in range(4))

    def rhs(z: Tensor) -> Tensor:
        u, v = z[..., 0], z[..., 1]
        return torch.stack([(a - b * v) * u, (-g + dl * u) * v], dim=-1)

    out, z, t0 = [], z0, 0.0
    for t1 in ts.tolist():
        n = max(1, math.ceil((t1 - t0) / step - 1e-9))
        h = (t1 - t0) / n
        for _ in range(n):
            k1 = rhs(z)
            k2 = rhs(z + 0.5 * h * k1)
            k3 = rhs(z + 0.5 * h * k2)
            k4 = rhs(z + h * k3)
            z = z + (h / 6) * (k1 + 2 * k2 + 2 * k3 + k4)
        out.append(z)
        t0 = t1
    return torch.stack(out, dim=-2)


def lotka_volterra(d: Data) -> None:
    loc = torch.tensor([1.0, 0.05, 1.0, 0.05], dtype=F64)
    scale = torch.tensor([0.5, 0.05, 0.5, 0.05], dtype=F64)
    # Stan: theta > 0 with normal priors (the truncation at 0 is a constant factor)
    theta = _flat("theta", constraints.positive, 4)
    pyro.factor("theta_prior", dist.Normal(loc, scale).log_prob(theta).sum(-1))
    z_init = pyro.sample("z_init", dist.LogNormal(_t(math.log(10.0)), 1.0).expand([2]).to_event(1))
    sigma = pyro.sample("sigma", dist.LogNormal(_t(-1.0), 1.0).expand([2]).to_event(1))
    z = rk4_lotka_volterra(z_init, theta, d["ts"])  # (..., N, 2)
    # a trajectory that blows up or dies out (extreme theta) is rejected, as Stan rejects a failed solve
    ok = (torch.isfinite(z) & (z > 0)).flatten(-2).all(-1)
    pyro.factor("ode_failed", torch.where(ok, 0.0, -math.inf).to(F64))
    z = torch.where(ok[..., None, None], z, torch.ones_like(z))
    pyro.sample("y_init", dist.LogNormal(torch.log(z_init), sigma).to_event(1), obs=d["y_init"])
    pyro.sample("y", dist.LogNormal(torch.log(z), sigma[..., None, :]).to_event(2), obs=d["y"])


#: posteriordb name -> pyro model taking the data dict
MODELS: dict[str, Callable[[Data], None]] = {
    "eight_schools-eight_schools_noncentered": eight_schools_noncentered,
    "sblrc-blr": sblrc_blr,
    "kidiq-kidscore_momiq": kidscore_momiq,
    "earnings-logearn_height": logearn_height,
    "mesquite-logmesquite": logmesquite,
    "nes1972-nes": nes,
    "diamonds-diamonds": diamonds,
    "arK-arK": ark,
    "garch-garch11": garch11,
    "hmm_example-hmm_example": hmm_example,
    "bball_drive_event_0-hmm_drive_0": hmm_drive_0,
    "gp_pois_regr-gp_pois_regr": gp_pois_regr,
    "low_dim_gauss_mix-low_dim_gauss_mix": low_dim_gauss_mix,
    "hudson_lynx_hare-lotka_volterra": lotka_volterra,
}

#: posteriordb name -> the transformed parameters from the constrained site values and the data
TRANSFORMED: dict[str, Callable[[dict[str, Tensor], Data], dict[str, Tensor]]] = {
    "eight_schools-eight_schools_noncentered": _eight_schools_theta,
    "garch-garch11": _garch_beta1,
    "gp_pois_regr-gp_pois_regr": _gp_f_quantity,
}

#: posteriordb name -> the sites that are not posteriordb parameters, from the parameters (the inverse of
#: :data:`TRANSFORMED`): ``{parameter: (n, ...)} -> {site: (n, ...)}``
SITES_FROM_PARAMETERS: dict[str, Callable[[dict[str, Tensor], Data], dict[str, Tensor]]] = {
    "eight_schools-eight_schools_noncentered": lambda p, d: {"theta_trans": (p["theta"] - p["mu"][..., None]) / p["tau"][..., None]},
    "garch-garch11": lambda p, d: {"beta1_unit": p["beta1"] / (1 - p["alpha1"])},
    "gp_pois_regr-gp_pois_regr": lambda p, d: {"f_tilde": _gp_f_tilde(d["x"], p["rho"], p["alpha"], p["f"])},
}


def _gp_f_tilde(x: Tensor, rho: Tensor, alpha: Tensor, f: Tensor) -> Tensor:
    return torch.linalg.solve_triangular(_gp_cholesky(x, rho, alpha)[0], f[..., None], upper=False)[..., 0]
