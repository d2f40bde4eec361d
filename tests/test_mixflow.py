"""The Hamiltonian MixFlow: the map's exact inverse and volume bookkeeping, a normalised density, the
sliding-window density against the direct one, the unbiased ELBO, and the sampler surface."""

from __future__ import annotations

import math

import pytest
import torch
from sciml_plugins.flows.layered import LayeredFlow
from sciml_plugins.flows.mixflow import MixFlowDistribution, laplace_cdf, laplace_icdf

import sciml
from sciml.targets import TargetError, as_target

F64 = torch.float64
COV = torch.tensor([[1.0, 0.8], [0.8, 1.0]], dtype=F64)


def _target():
    return as_target(torch.distributions.MultivariateNormal(torch.zeros(2, dtype=F64), COV))


def _flow(num_maps: int, step: float = 0.15, num_leapfrog: int = 5) -> MixFlowDistribution:
    q0 = LayeredFlow(2, [], dtype=F64, device=torch.device("cpu"))
    with torch.no_grad():  # the mean-field fit of this target: precision diagonal 1 / 0.36
        q0.log_scale.fill_(math.log(0.6))
        q0.loc.copy_(torch.tensor([0.3, -0.2], dtype=F64))
    return MixFlowDistribution(_target(), q0, step * torch.full((2,), 0.6, dtype=F64), num_leapfrog, num_maps)


def _stack(state):
    return torch.cat([state[0], state[1], state[2][:, None]], -1)


def test_laplace_cdf_and_inverse_agree_in_both_tails():
    r = torch.linspace(-30, 30, 601, dtype=F64)
    p = laplace_cdf(r)
    # left tail: the same closed form, one exp and one product, so a few ulps
    assert torch.allclose(p[r < 0], 0.5 * torch.exp(r[r < 0]), rtol=1e-14, atol=0)
    # F^-1(F(r)) loses |r| bits on the right tail only through 1 - p: relative error <= eps e^r / (1 - p)
    back = laplace_icdf(p)
    left = r <= 0  # log(2 p) of a p held to a few ulps: ~1e-16 absolute
    assert torch.allclose(back[left], r[left], rtol=1e-13, atol=1e-14)
    # right tail: 1 - p = e^-r / 2 is held to absolute round-off eps / 2, so r comes back within eps e^r
    right = r > 0
    assert bool(((back[right] - r[right]).abs() <= 2 * torch.finfo(F64).eps * torch.exp(r[right]) + 1e-14).all())


def test_the_map_inverts_to_round_off_and_its_log_det_matches_finite_differences():
    q = _flow(2)
    g = torch.Generator().manual_seed(0)
    state = q._q0_sample(20, g)
    forward, log_det = q.map.forward(*state)
    back, inv_det = q.map.inverse(*forward)
    # momenta here stay below ~5, so F and F^-1 keep ~1e-15 absolute accuracy per map
    assert torch.allclose(_stack(back), _stack(state), rtol=0, atol=1e-12)
    assert torch.allclose(inv_det, -log_det, rtol=0, atol=1e-12)

    def flat_map(s):
        x, rho, u = s[:, :2], s[:, 2:4], s[:, 4]
        lp, grad = q.map.evaluate(x)
        return _stack(q.map.forward(x, rho, u, lp, grad)[0])

    s0, h = _stack(state), 1e-6
    jac = torch.stack([(flat_map(s0 + h * e) - flat_map(s0 - h * e)) / (2 * h)
                       for e in torch.eye(5, dtype=F64)], -1)
    # central differences: O(h^2 |T'''|) + O(eps / h) ~ 1e-9 per entry; the map is smooth away from
    # rho = 0, the mod-1 wrap and u's wrap, none of which these 20 points sit within 1e-6 of
    sign, ref = torch.linalg.slogdet(jac)
    assert bool((sign > 0).all())
    assert torch.allclose(ref, log_det, rtol=0, atol=1e-6)


def test_the_augmented_density_integrates_to_one():
    q = _flow(5)
    g = torch.Generator().manual_seed(1)
    n = 12000
    # proposal r: x ~ N(0, 2.5^2 I), rho ~ Laplace(0, 2), u ~ U(0, 1); heavier-tailed than q_N in every coordinate
    x = 2.5 * torch.randn(n, 2, dtype=F64, generator=g)
    rho = 2.0 * laplace_icdf(torch.rand(n, 2, dtype=F64, generator=g))
    u = torch.rand(n, dtype=F64, generator=g)
    log_r = (torch.distributions.Normal(0.0, 2.5).log_prob(x).sum(-1)
             + (-math.log(4.0) - rho.abs() / 2).sum(-1))
    w = torch.exp(q.log_prob_augmented(torch.cat([x, rho, u[:, None]], -1)) - log_r)
    mean, se = float(w.mean()), float(w.std() / math.sqrt(n))
    assert abs(mean - 1.0) < 5 * se, (mean, se)
    assert se < 0.05  # the check has power


def test_the_round_trip_error_is_round_off_for_short_orbits():
    q = _flow(10)
    err = q.round_trip_error(16, generator=torch.Generator().manual_seed(8))
    assert err.shape == (16,)
    # 9 maps of 5 leapfrog steps each way, momenta of order 1: a few hundred roundings of O(1) values
    assert float(err.max()) < 1e-11


def test_the_density_of_x_integrates_to_one_on_a_grid():
    # int q_hat(x) dx over a grid, for four Sobol scrambles: each is an unbiased estimate of 1 (the
    # grid error of a smooth density with Gaussian tails at spacing 0.2 over [-6, 6]^2 is far below)
    q = _flow(4, num_leapfrog=3)
    side = torch.linspace(-6, 6, 61, dtype=F64)
    grid = torch.cartesian_prod(side, side)
    totals = torch.tensor([float(torch.exp(q.marginal_log_prob(grid, 64, seed=k)).sum()) * 0.2**2 for k in range(4)])
    mean, se = float(totals.mean()), float(totals.std()) / 2
    assert abs(mean - 1.0) < max(5 * se, 1e-3), (totals, se)
    assert se < 0.02  # the check has power
    # the public log_prob is that estimate at the distribution's num_momenta, deterministic
    x = grid[::97]
    assert torch.equal(q.log_prob(x), q.log_prob(x))
    # the same computation on the same Sobol points: equal but for the order of blocked sums
    assert torch.allclose(q.log_prob(x), q.marginal_log_prob(x, q.num_momenta, seed=0), rtol=0, atol=1e-12)
    assert q.sample((7,), generator=torch.Generator().manual_seed(0)).shape == (7, 2)


def test_the_sliding_window_density_along_an_orbit_equals_the_direct_one():
    q = _flow(12)
    o = q.orbit(4, torch.Generator().manual_seed(2))
    direct = q.log_prob_augmented(o["states"]).reshape(4, 12)
    # the direct route re-derives the backward orbit by inverse maps: round-off ~1e-13 after 11 maps
    assert torch.allclose(o["log_q"], direct, rtol=0, atol=1e-9)


def test_the_orbit_elbo_is_unbiased_against_brute_force_draws():
    q = _flow(4)
    g = torch.Generator().manual_seed(3)
    orbits = q.orbit(3000, g)
    per_orbit = (orbits["log_p"] - orbits["log_q"]).mean(-1)
    s = q.sample_augmented((6000,), generator=g)
    brute = q.augmented.log_prob(s) - q.log_prob_augmented(s)
    diff = float(per_orbit.mean() - brute.mean())
    se = math.sqrt(float(per_orbit.var()) / 3000 + float(brute.var()) / 6000)
    assert abs(diff) < 4 * se, (diff, se)
    # and the ELBO is below log Z = 0, with N = 1 that of q0 (the momenta cancel)
    assert float(brute.mean()) < 0


def test_the_elbo_increases_with_the_number_of_maps():
    # the same 1024 q0 draws start the orbits of q_1 (= q0 in x) and q_40: a paired comparison
    q = _flow(40)
    o40 = q.orbit(1024, torch.Generator().manual_seed(6))
    q.num_maps = 1
    o1 = q.orbit(1024, torch.Generator().manual_seed(6))
    gain = (o40["log_p"] - o40["log_q"]).mean(-1) - (o1["log_p"] - o1["log_q"]).mean(-1)
    se = float(gain.std()) / math.sqrt(1024)
    # mean-field q0 misses the correlation 0.8: its ELBO is at most -KL = 0.5 log(1 - 0.8^2) = -0.511
    elbo_0 = (o1["log_p"] - o1["log_q"]).mean(-1)
    assert float(elbo_0.mean()) < 0.5 * math.log(1 - 0.8**2) + 5 * float(elbo_0.std()) / math.sqrt(1024)
    assert float(gain.mean()) > 5 * se and float(gain.mean()) > 0.1, (float(gain.mean()), se)


def test_the_sampler_fits_q0_and_picks_the_best_setting_of_its_grid():
    flow = sciml.load("sampler", "mixflow")(20, ref_steps=300, tune_orbits=16, step_grid=(0.05, 0.1, 0.3),
                                            leapfrog_grid=(2, 5), progress=False)
    q = flow.fit(_target(), generator=torch.Generator().manual_seed(4))
    grid = q.diagnostics["elbo_grid"]
    assert set(grid) == {(h, n) for h in (0.05, 0.1, 0.3) for n in (2, 5)}
    assert grid[(q.diagnostics["step_size"], q.diagnostics["num_leapfrog"])] == max(grid.values())
    assert q.diagnostics["n_grad_evals"] > 300 * 256 + 6 * 16 * 2 * 19 * 2
    # q0 is the mean-field reverse-KL fit: scales sqrt(1 - 0.8^2) = 0.6 (to the fit's noise)
    assert torch.allclose(torch.exp(q.q0.log_scale.detach()), torch.full((2,), 0.6, dtype=F64), atol=0.05)
    out = flow.sample(_target(), 50, generator=torch.Generator().manual_seed(5))
    assert out.x.shape == (50, 2) and out.n_grad_evals > q.diagnostics["n_grad_evals"]


def test_the_number_of_maps_is_tuned_by_the_elbo_with_the_one_standard_error_rule():
    flow = sciml.load("sampler", "mixflow")(None, step_size=0.15, num_leapfrog=5, ref_steps=300, tune_orbits=64,
                                            maps_grid=(40, 1, 10), progress=False)
    q = flow.fit(_target(), generator=torch.Generator().manual_seed(7))
    scores = q.diagnostics["maps_elbo"]
    assert sorted(scores) == [1, 10, 40]
    best = max(scores, key=lambda n: scores[n][0])
    within = [n for n, (v, _) in scores.items() if v >= scores[best][0] - scores[best][1]]
    assert q.num_maps == q.diagnostics["num_maps"] == min(within)
    # N = 1 is q0 itself (its ELBO <= -0.511), more maps are better: N = 1 is never the choice here
    assert scores[1][0] < scores[40][0] and q.num_maps > 1


def test_bad_settings_and_a_failing_target_get_clear_errors():
    flow_cls = sciml.load("sampler", "mixflow")
    with pytest.raises(ValueError, match="num_maps"):
        flow_cls(0)
    with pytest.raises(ValueError, match="step_grid"):
        flow_cls(step_grid=())
    with pytest.raises(ValueError, match="maps_grid"):
        flow_cls(None, maps_grid=(10, 0))
    with pytest.raises(ValueError, match="step_size"):
        flow_cls(step_size=-1.0)
    with pytest.raises(NotImplementedError, match="reparameterised"):
        _flow(2).rsample((3,))
    with pytest.raises(ValueError, match="shape"):
        _flow(2).log_prob_augmented(torch.zeros(3, 2, dtype=F64))
    with pytest.raises(ValueError, match="shape"):
        _flow(2).log_prob(torch.zeros(3, 5, dtype=F64))
    box = as_target(lambda x: torch.where((x.abs() < 3).all(-1), -0.5 * (x * x).sum(-1), -math.inf), dim=2)
    boxed = MixFlowDistribution(box, _flow(2).q0, torch.full((2,), 0.1, dtype=F64), 3, 4)
    with pytest.raises(ValueError, match=r"log q_N is not available at these points.*\[6.0, 0.0\]"):
        boxed.log_prob(torch.tensor([[0.0, 0.0], [6.0, 0.0]], dtype=F64))  # outside the target's support
    assert torch.isfinite(boxed.log_prob(torch.zeros(1, 2, dtype=F64))).all()

    def raises(x):
        raise RuntimeError("the user's bug")

    failing = MixFlowDistribution(as_target(raises, dim=2), _flow(2).q0, torch.full((2,), 0.1, dtype=F64), 3, 4)
    with pytest.raises(TargetError, match="the user's bug"):  # not relabelled as a support problem
        failing.log_prob(torch.zeros(1, 2, dtype=F64))
    bad = as_target(lambda x: torch.where(x[..., 0] > 0.5, torch.nan, -0.5 * (x * x).sum(-1)), dim=2)
    with pytest.raises(TargetError, match="mixflow"):
        flow_cls(10, step_size=0.1, num_leapfrog=3, ref_steps=20, progress=False).fit(bad)
