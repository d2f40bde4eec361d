"""LightSB plugin: closed-form Gaussian oracle, conditional plan, SDE marginals, errors, save/load."""

from __future__ import annotations

import math

import pytest
import torch
from sciml_plugins.lightsb import (
    Bridge,
    GaussianMixturePotential,
    LightSB,
    gaussian_bridge,
    gaussian_eot,
)
from torch.distributions import MultivariateNormal

import sciml
from sciml.metrics import gaussian_w2_sq
from sciml.testing import check_solver

F64 = torch.float64


def _rand_gauss(d: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    m = torch.randn(d, generator=g, dtype=F64)
    a = torch.randn(d, d, generator=g, dtype=F64) / math.sqrt(d)
    return m, a @ a.T + 0.3 * torch.eye(d, dtype=F64)


def _draw(m: torch.Tensor, s: torch.Tensor, n: int, g: torch.Generator) -> torch.Tensor:
    return m + torch.randn(n, m.shape[0], generator=g, dtype=F64) @ torch.linalg.cholesky(s).T


def _gaussian_pair(d: int, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    m0, s0 = _rand_gauss(d, g)
    m1, s1 = _rand_gauss(d, g)
    return _draw(m0, s0, n, g), _draw(m1, s1, n, g)


def _empirical_plan(x0: torch.Tensor, x1: torch.Tensor, eps: float):
    # The K = 1 LightSB objective depends on the samples only through their first two moments,
    # so its exact minimiser is the closed-form plan between the empirical Gaussians.
    return gaussian_eot(x0.mean(0), torch.cov(x0.T, correction=0), x1.mean(0), torch.cov(x1.T, correction=0), eps)


def test_registry_loads_the_class() -> None:
    assert sciml.load("solver", "lightsb") is LightSB
    assert issubclass(LightSB, sciml.Solver) and issubclass(Bridge, sciml.Solution)


def test_gaussian_closed_form_identities() -> None:
    g = torch.Generator().manual_seed(1)
    m0, s0 = _rand_gauss(4, g)
    m1, s1 = _rand_gauss(4, g)
    eps = 0.7
    plan = gaussian_eot(m0, s0, m1, s1, eps)
    # eps S* = S1 - C^T S0^{-1} C, and S* symmetric positive definite
    rhs = s1 - plan.C.T @ torch.linalg.solve(s0, plan.C)
    torch.testing.assert_close(eps * plan.S_star, rhs, rtol=1e-10, atol=1e-10)
    assert bool((torch.linalg.eigvalsh(plan.S_star) > 0).all())
    # time marginals hit the endpoints
    torch.testing.assert_close(plan.marginal(0.0)[1], s0)
    torch.testing.assert_close(plan.marginal(1.0)[1], s1)
    # 1-D formula s = (sqrt(4ab + eps^2) - eps) / (2a)
    a, b = 2.0, 0.5
    one = gaussian_eot(torch.zeros(1, dtype=F64), torch.full((1, 1), a, dtype=F64),
                       torch.zeros(1, dtype=F64), torch.full((1, 1), b, dtype=F64), eps)
    assert abs(one.S_star.item() - (math.sqrt(4 * a * b + eps**2) - eps) / (2 * a)) < 1e-12


def test_exact_bridge_log_prob_and_sampling() -> None:
    g = torch.Generator().manual_seed(2)
    m0, s0 = _rand_gauss(3, g)
    m1, s1 = _rand_gauss(3, g)
    plan = gaussian_eot(m0, s0, m1, s1, 0.5)
    bridge = gaussian_bridge(plan)
    x0 = _draw(m0, s0, 50, g)
    x1 = _draw(m1, s1, 50, g)
    want = MultivariateNormal(plan.conditional_mean(x0), covariance_matrix=plan.conditional_cov).log_prob(x1)
    torch.testing.assert_close(bridge.log_prob(x1, x0), want, rtol=1e-9, atol=1e-9)
    mean, cov = bridge.conditional_moments(x0[:5])
    torch.testing.assert_close(mean, plan.conditional_mean(x0[:5]))
    torch.testing.assert_close(cov, plan.conditional_cov.expand(5, 3, 3))
    # calling the bridge evaluates the conditional mean, deterministically, in the points' dtype
    torch.testing.assert_close(bridge(x0), plan.conditional_mean(x0), rtol=1e-10, atol=1e-10)
    assert torch.equal(bridge(x0), bridge(x0)) and bridge(x0.float()).dtype == torch.float32


@pytest.mark.parametrize("d,eps", [(2, 0.1), (8, 1.0), (16, 10.0), (16, 0.1)])
def test_k1_full_recovers_gaussian_plan(d: int, eps: float) -> None:
    x0, x1 = _gaussian_pair(d, 2000, seed=d)
    plan = _empirical_plan(x0, x1, eps)
    solver = LightSB(eps=eps, n_components=1, covariance="full", optimizer="lbfgs", lr=1.0, num_steps=250,
                     val_fraction=0.0, progress=False)
    bridge = solver.solve(x0, x1, generator=torch.Generator().manual_seed(0))
    s = bridge.potential.covariances()
    rel = float(torch.linalg.norm(s - plan.S_star) / torch.linalg.norm(plan.S_star))
    assert rel < 1e-2, rel
    xt = x0[:500]
    mean, cov = bridge.conditional_moments(xt)
    bw2 = gaussian_w2_sq(mean, cov, plan.conditional_mean(xt), plan.conditional_cov.expand(500, d, d))
    uvp = 100 * float(bw2.mean()) / float(torch.cov(x1.T, correction=0).trace())  # cB-W2^2-UVP, percent
    assert uvp < 0.1, uvp


def test_init_potential_prunes_converts_and_reaches_gaussian_plan() -> None:
    # a diagonal K = 3 start whose components 1 and 2 have negligible gates: init_min_weight keeps
    # component 0 only, converts it to full covariances exactly (same plan), and L-BFGS from there
    # reaches the exact K = 1 minimiser, the closed-form plan between the empirical Gaussians
    d, eps = 4, 1.0
    x0, x1 = _gaussian_pair(d, 2000, seed=41)
    plan = _empirical_plan(x0, x1, eps)
    start = GaussianMixturePotential(d, 3, eps, "diag", init_means=x1[:3], dtype=F64)
    with torch.no_grad():
        start.log_scales.copy_(torch.log(torch.diagonal(plan.S_star)).expand(3, d))
        start.raw_log_alpha.copy_(torch.tensor([0.0, -60.0, -70.0], dtype=F64))
    full = start.subset(torch.tensor([0]), "full")
    one = start.subset(torch.tensor([True, False, False]))
    torch.testing.assert_close(full.covariances(), one.covariances())
    torch.testing.assert_close(full.log_potential(x1[:50]), one.log_potential(x1[:50]))
    torch.testing.assert_close(full.log_normaliser(x0[:50]), one.log_normaliser(x0[:50]))
    solver = LightSB(eps=eps, covariance="full", optimizer="lbfgs", lr=1.0, num_steps=250, val_fraction=0.0,
                     init_min_weight=1e-3, flush_denormal=True, progress=False)
    bridge = solver.solve(x0, x1, generator=torch.Generator().manual_seed(0), init_potential=Bridge(start))
    assert bridge.potential.n_components == 1 and bridge.potential.covariance == "full"
    assert start.n_components == 3  # the given potential is not modified
    rel = float(torch.linalg.norm(bridge.potential.covariances()[0] - plan.S_star) / torch.linalg.norm(plan.S_star))
    assert rel < 1e-2, rel
    mean, cov = bridge.conditional_moments(x0[:500])
    bw2 = gaussian_w2_sq(mean, cov, plan.conditional_mean(x0[:500]), plan.conditional_cov.expand(500, d, d))
    uvp = 100 * float(bw2.mean()) / float(torch.cov(x1.T, correction=0).trace())
    assert uvp < 0.1, uvp
    with pytest.raises(ValueError, match="eps"):
        LightSB(eps=2.0, progress=False).solve(x0, x1, init_potential=start)
    with pytest.raises(ValueError, match="diagonal"):
        LightSB(eps=eps, covariance="diag", progress=False).solve(x0, x1, init_potential=full)
    with pytest.raises(ValueError, match="D="):
        LightSB(eps=eps, progress=False).solve(x0[:, :3], x1[:, :3], init_potential=start)
    with pytest.raises(TypeError, match="init_potential"):
        LightSB(eps=eps, progress=False).solve(x0, x1, init_potential="start")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="init_min_weight"):
        LightSB(init_min_weight=1.0)
    with pytest.raises(ValueError, match="keep"):
        start.subset(torch.tensor([3]))


def test_k1_adam_minibatch_close_to_population_plan() -> None:
    # stochastic training from minibatches of a fresh sampler, no closed-form shortcut
    g = torch.Generator().manual_seed(3)
    m0, s0 = _rand_gauss(2, g)
    m1, s1 = _rand_gauss(2, g)
    plan = gaussian_eot(m0, s0, m1, s1, 1.0)
    solver = LightSB(eps=1.0, n_components=1, covariance="full", num_steps=1500, batch_size=512, lr=2e-2,
                     progress=False, patience=None)
    bridge = solver.solve(lambda n, gen: _draw(m0, s0, n, gen), lambda n, gen: _draw(m1, s1, n, gen),
                          generator=torch.Generator().manual_seed(0))
    rel = float(torch.linalg.norm(bridge.potential.covariances() - plan.S_star) / torch.linalg.norm(plan.S_star))
    assert rel < 5e-2, rel


def test_sde_and_bridge_marginals_match_closed_form_at_half() -> None:
    g = torch.Generator().manual_seed(4)
    d, eps, n = 3, 0.5, 20000
    m0, s0 = _rand_gauss(d, g)
    m1, s1 = _rand_gauss(d, g)
    plan = gaussian_eot(m0, s0, m1, s1, eps)
    bridge = gaussian_bridge(plan)
    x0 = _draw(m0, s0, n, g)
    mean_t, cov_t = plan.marginal(0.5)
    se_mean = (torch.diagonal(cov_t) / n).sqrt()
    se_cov = ((torch.diagonal(cov_t)[:, None] * torch.diagonal(cov_t)[None, :] + cov_t**2) / n).sqrt()
    path = bridge.trajectory(x0, num_steps=200, generator=torch.Generator().manual_seed(5))
    assert path.shape == (201, n, d)
    for xt in (path[100], bridge.sample_at(0.5, x0, generator=torch.Generator().manual_seed(6))):
        assert bool(((xt.mean(0) - mean_t).abs() < 5 * se_mean).all())
        assert bool(((torch.cov(xt.T) - cov_t).abs() < 5 * se_cov).all())
    # the end point of the SDE has the plan's law given x0 (mean within sampling error)
    x_end = path[-1]
    assert bool(((x_end - plan.conditional_mean(x0)).mean(0).abs() < 5 * se_mean).all())


def test_mixture_log_prob_normalised_and_moments_match_samples() -> None:
    g = torch.Generator().manual_seed(7)
    pot = GaussianMixturePotential(1, 3, 0.3, "diag", init_means=torch.randn(3, 1, generator=g, dtype=F64),
                                   dtype=F64)
    with torch.no_grad():
        pot.raw_log_alpha.copy_(0.3 * torch.tensor([0.0, 1.0, -0.5], dtype=F64))
        pot.log_scales.copy_(torch.tensor([[0.2], [-0.4], [0.0]], dtype=F64))
    bridge = Bridge(pot)
    x0 = torch.tensor([[0.3]], dtype=F64)
    grid = torch.linspace(-15, 15, 20001, dtype=F64)[:, None]
    dens = bridge.log_prob(grid, x0.expand(grid.shape[0], 1)).exp()
    assert abs(float(torch.trapezoid(dens[:, 0] if dens.ndim > 1 else dens, grid[:, 0])) - 1.0) < 1e-8
    x = x0.expand(40000, 1)
    ys = bridge.sample(x, generator=torch.Generator().manual_seed(8))
    mean, cov = bridge.conditional_moments(x0)
    sd = cov[0, 0, 0].sqrt()
    assert abs(float(ys.mean()) - float(mean)) < 5 * float(sd) / math.sqrt(40000)
    assert abs(float(ys.var()) / float(cov[0, 0, 0]) - 1) < 5 * math.sqrt(2 / 40000) * 2


def test_drift_is_eps_grad_log_h() -> None:
    # g(x, t) = eps grad log h(x, t) with h(x, t) = ∫ N(y | x, eps (1 - t) I) phi(y) dy; check by
    # quadrature in 1-D for a 3-component potential
    eps = 0.4
    pot = GaussianMixturePotential(1, 3, eps, "diag", init_means=torch.tensor([[-1.0], [0.5], [2.0]], dtype=F64),
                                   dtype=F64)
    with torch.no_grad():
        pot.log_scales.copy_(torch.tensor([[0.3], [-0.5], [0.1]], dtype=F64))
    bridge = Bridge(pot)
    y = torch.linspace(-20, 20, 40001, dtype=F64)[:, None]
    log_phi = bridge.log_potential(y) + y[:, 0] ** 2 / (2 * eps)
    for t in (0.0, 0.3, 0.8):
        x = torch.tensor([0.7], dtype=F64, requires_grad=True)
        var = eps * (1 - t)
        log_h = torch.logsumexp(-(y[:, 0] - x) ** 2 / (2 * var) + log_phi, 0)
        (grad,) = torch.autograd.grad(log_h, x)
        got = bridge.drift(x.detach()[None], t)
        assert abs(float(got) - eps * float(grad)) < 1e-6 * (1 + abs(float(got)))


def test_small_eps_is_finite_in_float32() -> None:
    g = torch.Generator().manual_seed(9)
    x0 = torch.randn(400, 2, generator=g)
    x1 = 3 * torch.randn(400, 2, generator=g) + 5
    bridge = LightSB(eps=1e-3, n_components=8, num_steps=100, lr=1e-2, progress=False).solve(
        x0, x1, generator=torch.Generator().manual_seed(0))
    assert all(math.isfinite(v) for v in bridge.loss_history)
    assert bool(torch.isfinite(bridge.sample(x0[:50])).all())
    assert bool(torch.isfinite(bridge.log_prob(x1[:50], x0[:50])).all())
    assert bool(torch.isfinite(bridge.drift(x0[:50], 0.9)).all())
    assert bool(torch.isfinite(bridge.trajectory(x0[:50], num_steps=20)).all())


def test_matching_objective_from_independent_coupling() -> None:
    g = torch.Generator().manual_seed(10)
    m0, s0 = _rand_gauss(2, g)
    m1, s1 = _rand_gauss(2, g)
    plan = gaussian_eot(m0, s0, m1, s1, 1.0)

    def pairs(n: int, gen: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        return _draw(m0, s0, n, gen), _draw(m1, s1, n, gen)  # independent coupling

    solver = LightSB(eps=1.0, n_components=1, covariance="full", objective="matching", num_steps=1500,
                     batch_size=512, lr=2e-2, progress=False, patience=None)
    bridge = solver.solve(pairs, None, generator=torch.Generator().manual_seed(0))
    rel = float(torch.linalg.norm(bridge.potential.covariances() - plan.S_star) / torch.linalg.norm(plan.S_star))
    assert rel < 0.1, rel
    # paired tensors are accepted too
    x0, x1 = pairs(256, g)
    LightSB(eps=1.0, n_components=2, objective="matching", num_steps=5, progress=False).solve(x0, x1)


def test_bad_inputs_raise() -> None:
    x0, x1 = _gaussian_pair(2, 50, seed=0)
    with pytest.raises(ValueError, match="eps"):
        LightSB(eps=0.0)
    with pytest.raises(ValueError, match="eps"):
        LightSB(eps=-1.0)
    with pytest.raises(ValueError, match="covariance"):
        LightSB(covariance="dense")
    with pytest.raises(ValueError, match="objective"):
        LightSB(objective="other")
    solver = LightSB(eps=1.0, n_components=2, num_steps=2, progress=False)
    with pytest.raises(ValueError, match="dimension"):
        solver.solve(x0, x1[:, :1])
    bad = x1.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="x1"):
        solver.solve(x0, bad)
    with pytest.raises(ValueError, match="n_components"):
        LightSB(n_components=60, num_steps=2, progress=False, val_fraction=0).solve(x0, x1)
    with pytest.raises(TypeError, match="generator"):
        solver.solve(x0, x1, generator=0)
    with pytest.raises(TypeError, match="x0"):
        solver.solve([[0.0, 1.0]], x1)
    with pytest.raises(TypeError, match="problem object"):
        solver.solve(object())
    # a problem object with sample tensors is the same as passing the tensors
    from types import SimpleNamespace
    a = solver.solve(SimpleNamespace(x0=x0, x1=x1), generator=torch.Generator().manual_seed(4))
    b = solver.solve(x0, x1, generator=torch.Generator().manual_seed(4))
    assert a.loss_history == b.loss_history
    with pytest.raises(ValueError, match="rows"):
        LightSB(objective="matching", num_steps=2, progress=False).solve(x0, x1[:40])
    bridge = solver.solve(x0, x1)
    with pytest.raises(ValueError, match="x0"):
        bridge.sample(torch.zeros(3, 5, dtype=F64))
    with pytest.raises(ValueError, match="t must"):
        bridge.drift(x0, 1.0)
    with pytest.raises(ValueError, match="t must"):
        bridge.sample_at(1.5, x0)


@pytest.mark.parametrize("covariance", ["diag", "full"])
def test_save_load_round_trip(tmp_path, covariance: str) -> None:
    x0, x1 = _gaussian_pair(3, 300, seed=11)
    bridge = LightSB(eps=0.5, n_components=4, covariance=covariance, num_steps=30, progress=False).solve(
        x0, x1, generator=torch.Generator().manual_seed(0))
    path = tmp_path / "bridge.pt"
    bridge.save(path)
    again = Bridge.load(path)
    assert again.config() == bridge.config()
    assert again.loss_history == bridge.loss_history
    a = bridge.sample(x0[:20], generator=torch.Generator().manual_seed(1))
    b = again.sample(x0[:20], generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    torch.testing.assert_close(again.log_prob(x1[:20], x0[:20]), bridge.log_prob(x1[:20], x0[:20]))
    torch.testing.assert_close(again.drift(x0[:20], 0.3), bridge.drift(x0[:20], 0.3))
    torch.save({"x": 1}, tmp_path / "other.pt")
    with pytest.raises(sciml.SaveFileError, match="other.pt.*not a sciml save file"):
        Bridge.load(tmp_path / "other.pt")


def test_seeding_and_early_stopping() -> None:
    x0, x1 = _gaussian_pair(2, 400, seed=12)
    make = lambda: LightSB(eps=1.0, n_components=3, num_steps=400, eval_every=10, patience=2, lr=0.05,  # noqa: E731
                           progress=False)
    a = make().solve(x0, x1, generator=torch.Generator().manual_seed(3))
    b = make().solve(x0, x1, generator=torch.Generator().manual_seed(3))
    assert a.loss_history == b.loss_history
    assert a.diagnostics["stopped_early"] and a.diagnostics["num_steps"] < 400
    vh = a.diagnostics["val_history"]
    assert min(vh) == a.diagnostics["best_val_loss"]


def test_conformance() -> None:
    x0, x1 = _gaussian_pair(2, 200, seed=13)
    check_solver(LightSB(eps=1.0, n_components=4, num_steps=40, progress=False), (x0, x1), x0[:10])


@pytest.mark.gpu
def test_cuda_device_follows_inputs() -> None:
    x0, x1 = _gaussian_pair(3, 500, seed=14)
    dev = torch.device("cuda")
    bridge = LightSB(eps=1.0, n_components=4, covariance="full", num_steps=50, progress=False).solve(
        x0.to(dev), x1.to(dev), generator=torch.Generator(device=dev).manual_seed(0))
    y = bridge.sample(x0[:10].to(dev), generator=torch.Generator(device=dev).manual_seed(1))
    assert y.device.type == "cuda" and bool(torch.isfinite(y).all())
    path = bridge.trajectory(x0[:10].to(dev), num_steps=5, generator=torch.Generator(device=dev).manual_seed(2))
    assert path.device.type == "cuda" and bool(torch.isfinite(path).all())
    assert bridge.log_prob(y, x0[:10].to(dev)).device.type == "cuda"


def test_gaussian_init_starts_at_the_closed_form_plan() -> None:
    # init="gaussian" with K = 1 full covariance starts at the exact minimiser of the K = 1 objective
    x0, x1 = _gaussian_pair(3, 4000, seed=11)
    eps = 0.5
    solver = LightSB(eps=eps, n_components=1, covariance="full", init="gaussian", init_spread=0.0, num_steps=1, lr=1e-12,
                     val_fraction=0.0, progress=False)
    bridge = solver.solve(x0, x1, generator=torch.Generator().manual_seed(0))
    plan = _empirical_plan(x0, x1, eps)
    xt = x0[:20]
    mean, cov = bridge.potential.conditional_moments(xt)
    torch.testing.assert_close(mean, plan.conditional_mean(xt), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(cov, plan.conditional_cov.expand(20, 3, 3), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="init"):
        LightSB(init="random")


def _random_full_potential(d: int, k: int, eps: float, seed: int) -> GaussianMixturePotential:
    g = torch.Generator().manual_seed(seed)
    pot = GaussianMixturePotential(d, k, eps, "full", init_means=torch.randn(k, d, generator=g, dtype=F64), dtype=F64)
    a = torch.randn(k, d, d, generator=g, dtype=F64) / math.sqrt(d)
    pot.set_covariances(a @ a.transpose(-1, -2) + 0.3 * torch.eye(d, dtype=F64))
    with torch.no_grad():
        pot.raw_log_alpha.copy_(eps * torch.randn(k, generator=g, dtype=F64))
    return pot


def test_full_covariance_cholesky_parametrisation() -> None:
    # set_covariances stores the Cholesky factor: covariances() gives S back, log det S = sum(s_k),
    # and the component densities are the multivariate normals N(r_k, eps S_k)
    d, k, eps = 4, 3, 0.7
    pot = _random_full_potential(d, k, eps, seed=20)
    g = torch.Generator().manual_seed(21)
    a = torch.randn(k, d, d, generator=g, dtype=F64)
    S = a @ a.transpose(-1, -2) + 0.5 * torch.eye(d, dtype=F64)
    pot.set_covariances(S)
    torch.testing.assert_close(pot.covariances(), S, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(pot.log_scales.sum(-1), torch.logdet(S), rtol=1e-12, atol=1e-12)
    y = torch.randn(6, d, generator=g, dtype=F64)
    want = torch.stack([MultivariateNormal(pot.means[j], covariance_matrix=eps * S[j]).log_prob(y) for j in range(k)], -1)
    torch.testing.assert_close(pot.component_log_density(y, pot.means), want, rtol=1e-10, atol=1e-10)
    # normaliser: log ∫ exp(<x0, y> / eps) v(y) dy in closed form per component
    x0 = torch.randn(5, d, generator=g, dtype=F64)
    quad = torch.einsum("nd,kde,ne->nk", x0, S, x0)
    want_c = torch.logsumexp(pot.log_alpha + (quad + 2 * x0 @ pot.means.T) / (2 * eps), -1)
    torch.testing.assert_close(pot.log_normaliser(x0), want_c, rtol=1e-10, atol=1e-10)


def test_full_covariance_drift_matches_quadrature_on_both_paths() -> None:
    # g(x, t) = eps grad log h(x, t), h(x, t) = ∫ N(y | x, eps (1 - t) I) phi(y) dy, by quadrature on
    # a 2-D grid; the eigenbasis path (no gradients) and the Cholesky-solve path (gradients, used
    # by the matching objective) must both agree with it
    eps = 0.5
    pot = _random_full_potential(2, 2, eps, seed=22)
    bridge = Bridge(pot)
    u = torch.linspace(-12, 12, 601, dtype=F64)
    y = torch.cartesian_prod(u, u)
    log_phi = bridge.log_potential(y) + (y * y).sum(-1) / (2 * eps)
    x = torch.tensor([[0.4, -0.3]], dtype=F64)
    for t in (0.0, 0.4, 0.8):
        xr = x.clone().requires_grad_(True)
        log_h = torch.logsumexp(-((y - xr) ** 2).sum(-1) / (2 * eps * (1 - t)) + log_phi, 0)
        (grad,) = torch.autograd.grad(log_h, xr)
        torch.testing.assert_close(bridge.drift(x, t), eps * grad, rtol=1e-6, atol=1e-6)
        pot.chol_lower.requires_grad_(True)
        with torch.enable_grad():
            direct = pot.drift(x, torch.full((1,), t, dtype=F64))
        pot.chol_lower.requires_grad_(False)
        torch.testing.assert_close(direct.detach(), eps * grad, rtol=1e-6, atol=1e-6)


def test_cluster_warm_start_recovers_separated_components() -> None:
    # data from a known LightSB plan whose source clusters are far apart: the cluster warm start
    # (k-means + Sinkhorn + per-piece Gaussian EOT) recovers each component's S_k and r_k
    from sciml_plugins.lightsb.warmstart import cluster_init

    d, eps, n = 3, 0.5, 8000
    g = torch.Generator().manual_seed(23)
    truth = _random_full_potential(d, 2, eps, seed=24)
    centres = torch.tensor([[-6.0, 0.0, 0.0], [6.0, 0.0, 0.0]], dtype=F64)
    lab = torch.randint(2, (n,), generator=g)
    x0 = centres[lab] + 0.7 * torch.randn(n, d, generator=g, dtype=F64)
    # intercepts far apart along the cluster axis: the gate term r_k^T x0 / eps sends cluster j to
    # component j (checked below)
    with torch.no_grad():
        truth.means[:, 0] += torch.tensor([-8.0, 8.0], dtype=F64)
        truth.raw_log_alpha.zero_()
    w = torch.softmax(truth.conditional_logits(x0), -1).detach()
    assert float((w[torch.arange(n), lab]).min()) > 0.999
    x1 = Bridge(truth).sample(x0, generator=g)
    _, r, S = cluster_init(x0, x1[torch.randperm(n, generator=g)], 2, eps, generator=torch.Generator().manual_seed(0), n_sub=500)
    order = ((r[:, None, :] - truth.means[None]) ** 2).sum(-1).argmin(1)
    assert sorted(order.tolist()) == [0, 1]
    S_true = truth.covariances()[order]
    rel = torch.linalg.norm(S - S_true, dim=(-2, -1)) / torch.linalg.norm(S_true, dim=(-2, -1))
    assert float(rel.max()) < 0.05, rel
    torch.testing.assert_close(r, truth.means[order], rtol=0.0, atol=0.1 * float(truth.means.abs().max()))


def test_target_cluster_warm_start_recovers_components_and_counts_pieces() -> None:
    # a known LightSB plan whose gates are constant on p0 (the components differ only along e1, where
    # p0 has almost no spread): every component's target is one cluster of p1 and its source is the
    # whole p0, so the target-cluster start recovers S_k and r_k; with K = 3 it finds the 2 pieces and
    # the third component copies one of them
    from sciml_plugins.lightsb.warmstart import target_cluster_init

    d, eps, n = 4, 1.0, 20000
    g = torch.Generator().manual_seed(31)
    b = _random_full_potential(d - 1, 1, eps, seed=32).covariances()[0].detach()
    S_true = torch.zeros(2, d, d, dtype=F64)
    S_true[:, 1:, 1:] = b
    S_true[0, 0, 0], S_true[1, 0, 0] = 0.5, 1.5
    truth = GaussianMixturePotential(d, 2, eps, "full", init_means=torch.tensor(
        [[-6.0, 1.0, 0.0, -1.0], [6.0, 1.0, 0.0, -1.0]], dtype=F64), dtype=F64)
    truth.set_covariances(S_true)
    with torch.no_grad():
        truth.raw_log_alpha.zero_()
    scale = torch.tensor([0.003, 1.0, 1.0, 1.0], dtype=F64)
    x0 = torch.randn(n, d, generator=g, dtype=F64) * scale
    w = torch.softmax(truth.conditional_logits(x0), -1).detach()
    assert float((w - 0.5).abs().max()) < 0.1  # nearly constant gates
    x1 = Bridge(truth).sample(x0, generator=g)[torch.randperm(n, generator=g)]
    la, r, S = target_cluster_init(x0, x1, 3, eps, generator=torch.Generator().manual_seed(0))
    order = ((r[:, None, :] - truth.means[None]) ** 2).sum(-1).argmin(1)
    assert sorted(order[:2].tolist()) == [0, 1]  # two pieces, the third component is a copy
    # without the refinement passes the copy has exactly its piece's S
    _, r_0, S_0 = target_cluster_init(x0, x1, 3, eps, generator=torch.Generator().manual_seed(0), n_refine=0)
    owner = int(((r_0[:2] - r_0[2]) ** 2).sum(-1).argmin())
    torch.testing.assert_close(S_0[2], S_0[owner])
    rel = torch.linalg.norm(S - S_true[order], dim=(-2, -1)) / torch.linalg.norm(S_true[order], dim=(-2, -1))
    assert float(rel.max()) < 0.05, rel
    torch.testing.assert_close(r[:2], truth.means[order[:2]], rtol=0.0, atol=0.15)
    # the resulting plan: conditional moments close to the exact ones
    pot = GaussianMixturePotential(d, 3, eps, "full", init_means=r, dtype=F64)
    pot.set_covariances(S)
    with torch.no_grad():
        pot.raw_log_alpha.copy_(eps * la)
    xt = x0[:200]
    m_fit, c_fit = (v.detach() for v in pot.conditional_moments(xt))
    m_true, c_true = (v.detach() for v in truth.conditional_moments(xt))
    bw = gaussian_w2_sq(m_fit, c_fit, m_true, c_true).mean() / float(torch.cov(x1.T).trace())
    assert float(bw) < 2e-3, float(bw)


def test_multiple_starts_keep_the_lowest_held_out_loss() -> None:
    # n_starts > 1: every start is trained briefly and scored on the held-out split; on the
    # two-piece plan of the test above the kept fit matches the exact conditional moments
    d, eps, n = 2, 1.0, 4000
    g = torch.Generator().manual_seed(41)
    truth = GaussianMixturePotential(d, 2, eps, "full", init_means=torch.tensor([[-5.0, 0.0], [5.0, 0.0]], dtype=F64),
                                     dtype=F64)
    truth.set_covariances(torch.tensor([[[0.5, 0.1], [0.1, 0.8]], [[1.2, -0.2], [-0.2, 0.6]]], dtype=F64))
    with torch.no_grad():
        truth.raw_log_alpha.zero_()
    x0 = torch.randn(n, d, generator=g, dtype=F64) * torch.tensor([0.05, 1.0], dtype=F64)
    x1 = Bridge(truth).sample(x0, generator=g)[torch.randperm(n, generator=g)]
    solver = LightSB(eps=eps, n_components=2, covariance="full", init="targets", n_starts=3, start_steps=20, num_steps=200,
                     lr=1e-2, val_fraction=0.1, patience=None, progress=False)
    bridge = solver.solve(x0, x1, generator=torch.Generator().manual_seed(0))
    losses = bridge.diagnostics["start_val_losses"]
    assert len(losses) == 3 and all(math.isfinite(v) for v in losses)
    m_fit, c_fit = bridge.potential.conditional_moments(x0[:200])
    m_true, c_true = (v.detach() for v in truth.conditional_moments(x0[:200]))
    bw = gaussian_w2_sq(m_fit, c_fit, m_true, c_true).mean() / float(torch.cov(x1.T).trace())
    assert float(bw) < 5e-3, float(bw)
    # Gaussian starts differ by their initial means (each start draws its own from p1)
    b = LightSB(eps=eps, n_components=2, covariance="full", init="gaussian", n_starts=2, start_steps=1, num_steps=1,
                val_fraction=0.1, progress=False).solve(x0, x1, generator=torch.Generator().manual_seed(0))
    first, second = b.diagnostics["start_val_losses"]
    assert first != second
    with pytest.raises(ValueError, match="n_starts"):
        LightSB(init="gaussian", n_starts=2, val_fraction=0.0)
    with pytest.raises(ValueError, match="n_starts"):
        LightSB(objective="matching", n_starts=2)


def test_version_1_full_covariance_file_loads(tmp_path) -> None:
    # files written before the Cholesky parametrisation stored S_k = U_k diag(exp s_k) U_k^T with
    # U_k = base_k cayley(B_k); they load as the same plan
    d, k = 3, 2
    g = torch.Generator().manual_seed(25)
    skew = 0.3 * torch.randn(k, d, d, generator=g, dtype=F64)
    base = torch.linalg.qr(torch.randn(k, d, d, generator=g, dtype=F64))[0]
    log_scales = 0.4 * torch.randn(k, d, generator=g, dtype=F64)
    means = torch.randn(k, d, generator=g, dtype=F64)
    raw = torch.tensor([0.1, -0.2], dtype=F64)
    state = {"raw_log_alpha": raw, "means": means, "log_scales": log_scales, "skew": skew, "base_rotation": base}
    torch.save({"format": "sciml.lightsb.Bridge/1", "config": {"dim": d, "n_components": k, "eps": 0.5,
                "covariance": "full"}, "state_dict": state, "loss_history": [], "diagnostics": {}}, tmp_path / "v1.pt")
    bridge = Bridge.load(tmp_path / "v1.pt")
    upper = torch.triu(skew, diagonal=1)
    b = upper - upper.transpose(-1, -2)
    eye = torch.eye(d, dtype=F64)
    U = base @ torch.linalg.solve(eye - b, eye + b)
    torch.testing.assert_close(U @ U.transpose(-1, -2), eye.expand(k, d, d))
    want = (U * log_scales.exp()[:, None, :]) @ U.transpose(-1, -2)
    torch.testing.assert_close(bridge.potential.covariances(), want, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(bridge.potential.means, means)
    torch.testing.assert_close(bridge.potential.raw_log_alpha, raw)


def test_rotated_diagonal_bridge_is_the_same_plan() -> None:
    # training a (diagonal) model on x @ U is a model with S_k = U diag U^T: rotated() must map
    # the plan exactly (log-densities and conditional moments transform with U)
    from sciml_plugins.lightsb.gaussian import gaussian_basis

    x0, x1 = _gaussian_pair(3, 2000, seed=12)
    x0, x1 = x0.to(F64), x1.to(F64)
    U = gaussian_basis(x0, x1, 0.5)
    torch.testing.assert_close(U.T @ U, torch.eye(3, dtype=F64))
    bridge = LightSB(eps=0.5, n_components=3, covariance="diag", init="identity", num_steps=50, val_fraction=0.0,
                     progress=False).solve(
        x0 @ U, x1 @ U, generator=torch.Generator().manual_seed(0))
    back = Bridge(bridge.potential.rotated(U))
    a, b = x0[:30], x1[:30]
    torch.testing.assert_close(back.log_prob(b, a), bridge.log_prob(b @ U, a @ U), rtol=1e-9, atol=1e-9)
    m, c = back.potential.conditional_moments(a)
    m_r, c_r = bridge.potential.conditional_moments(a @ U)
    torch.testing.assert_close(m, m_r @ U.T, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(c, U @ c_r @ U.T, rtol=1e-9, atol=1e-9)
    # the same for full covariances (S_k -> U S_k U^T)
    full = bridge.potential.subset(covariance="full")
    with torch.no_grad():
        full.chol_lower.normal_(0.0, 0.2, generator=torch.Generator().manual_seed(1))
    back = Bridge(full.rotated(U))
    torch.testing.assert_close(back.log_prob(b, a), Bridge(full).log_prob(b @ U, a @ U), rtol=1e-9, atol=1e-9)
    m, c = back.potential.conditional_moments(a)
    m_r, c_r = full.conditional_moments(a @ U)
    torch.testing.assert_close(m, m_r @ U.T, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(c, U @ c_r @ U.T, rtol=1e-9, atol=1e-9)
