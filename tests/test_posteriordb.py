"""The posteriordb ports (benchmarks/posteriordb) against their reference draws."""

from __future__ import annotations

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from sciml_benchmarks import posteriordb as pdb
from sciml_benchmarks.posteriordb.models import rk4_lotka_volterra
from scipy.integrate import solve_ivp

from sciml.targets import from_pyro_model

F64 = torch.float64
#: |z| above this fails the score identities (max over up to dim + dim^2 statistics per posterior: for
#: independent normal statistics P(max |z| > 5) < 5e-4 at dim = 26)
Z_MAX = 5.0


@pytest.mark.parametrize("name", pdb.NAMES)
def test_port_satisfies_the_score_identities_at_the_reference_draws(name: str) -> None:
    # E[grad log p] = 0 and E[grad log p (x - m)^T] = -I hold for the exact posterior only: a port with
    # another prior, likelihood, constraint or Jacobian fails them (see the negative control below)
    post = pdb.load(name)
    target = post.target()
    assert target.vectorized, "the ports are written to broadcast over a batch of points"
    z_mean, z_cov = pdb.stein_check(post, target)
    assert float(z_mean.abs().max()) < Z_MAX and float(z_cov.abs().max()) < Z_MAX, (z_mean, z_cov)
    # parameters <-> unconstrained points round trip
    x = post.unconstrained(target, post.reference.draws[:20])
    assert torch.allclose(post.parameters(target, x), post.reference.draws[:20], rtol=1e-7, atol=1e-9)


def test_a_wrong_prior_fails_the_score_identities() -> None:
    post = pdb.load("eight_schools-eight_schools_noncentered")

    def half_the_tau_scale(d):  # noqa: ANN001, ANN202 (tau ~ half-Cauchy(2.5) instead of (5))
        mu = pyro.sample("mu", dist.Normal(torch.tensor(0.0, dtype=F64), 5.0))
        tau = pyro.sample("tau", dist.HalfCauchy(torch.tensor(2.5, dtype=F64)))
        tt = pyro.sample("theta_trans", dist.Normal(torch.tensor(0.0, dtype=F64), 1.0).expand([8]).to_event(1))
        pyro.sample("y", dist.Normal(tt * tau[..., None] + mu[..., None], d["sigma"]).to_event(1), obs=d["y"])

    z_mean, z_cov = pdb.stein_check(post, from_pyro_model(half_the_tau_scale, post.data))
    assert max(float(z_mean.abs().max()), float(z_cov.abs().max())) > Z_MAX  # measured 9.7


def test_lotka_volterra_rk4_against_a_tight_reference_solution() -> None:
    post = pdb.load("hudson_lynx_hare-lotka_volterra")
    theta, z0, ts = post.reference.mean[:4], post.reference.mean[4:6], post.data["ts"]

    def rhs(t, z):  # noqa: ANN001, ANN202
        return [(theta[0] - theta[1] * z[1]) * z[0], (-theta[2] + theta[3] * z[0]) * z[1]]

    ref = solve_ivp(rhs, (0.0, float(ts[-1])), z0.numpy(), t_eval=ts.numpy(), method="DOP853", rtol=1e-12, atol=1e-12).y.T
    z = rk4_lotka_volterra(z0, theta, ts).numpy()
    # RK4 at step 0.05: global error O(h^4); Stan's own solve used rtol 1e-5
    assert np.abs(z - ref).max() / np.abs(ref).max() < 1e-6


def test_unknown_posterior_is_a_clear_error() -> None:
    with pytest.raises(KeyError, match="unknown posterior"):
        pdb.load("eight_schools")
