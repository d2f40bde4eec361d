"""The default configuration rule of LightSB: its branches, the noise fraction, overrides, and the
default fit against ground truth (Gaussian closed form; a mixture with a known plan)."""

from __future__ import annotations

import math

import pytest
import torch
from sciml_benchmarks.lightsb_eot import cbw2_uvp_bridge, make_benchmark
from sciml_plugins.lightsb import LightSB, gaussian_eot
from sciml_plugins.lightsb import solver as solver_module
from sciml_plugins.lightsb.rule import (
    FALLBACK,
    LARGE_NOISE,
    SMALL_NOISE,
    FitPlan,
    default_plan,
    noise_fraction,
)

F64 = torch.float64


def _iso(d: int, n: int, var: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (math.sqrt(var) * torch.randn(n, d, generator=g, dtype=F64),
            1.0 + math.sqrt(var) * torch.randn(n, d, generator=g, dtype=F64))


def _rho_iso(var: float, eps: float) -> float:
    # 1-D closed form s = (sqrt(4 a b + eps^2) - eps) / (2 a) with a = b = var: rho = eps s / var
    return eps * (math.sqrt(4 * var * var + eps * eps) - eps) / (2 * var * var)


def test_noise_fraction_closed_form_and_scale_invariance() -> None:
    x0, x1 = _iso(3, 200_000, 2.0, seed=0)
    # sample moments: relative error ~ sqrt(2 / n) per variance, far below 1 %
    assert abs(noise_fraction(x0, x1, 0.7) - _rho_iso(2.0, 0.7)) < 0.01 * _rho_iso(2.0, 0.7)
    # rescaling both sides by c and eps by c^2 leaves the plan (and rho) unchanged
    assert abs(noise_fraction(3 * x0, 3 * x1, 9 * 0.7) - noise_fraction(x0, x1, 0.7)) < 1e-9
    assert noise_fraction(x0, x1, 1e-4) < 1e-3 and noise_fraction(x0, x1, 1e4) > 0.99


@pytest.mark.parametrize(("eps", "branch"), [(0.01, "small"), (0.3, "moderate"), (1.0, "large")])
def test_default_plan_branches_above_low_dimension(eps: float, branch: str) -> None:
    rho = _rho_iso(1.0, eps)
    assert (rho < SMALL_NOISE) == (branch == "small") and (rho >= LARGE_NOISE) == (branch == "large")
    for d in (64, 128):
        x0, x1 = _iso(d, 20 * d, 1.0, seed=d)
        plan = default_plan(eps, x0, x1)
        if branch == "small":
            assert plan == FALLBACK
        elif branch == "moderate":
            assert (plan.covariance, plan.n_components, plan.init, plan.gaussian_basis) == ("diag", 50, "gaussian", True)
            assert (plan.num_steps, plan.full_steps) == ((4000, 3000) if d == 64 else (3000, 2000))
        else:
            assert (plan.covariance, plan.n_components, plan.init, plan.lr) == ("full", 5, "targets", 3e-3)
            assert plan.n_starts == (4 if d == 64 else 2)


def test_default_plan_low_dimension_and_fallbacks() -> None:
    x0, x1 = _iso(4, 400, 1.0, seed=1)
    plan = default_plan(0.01, x0, x1)
    rho = noise_fraction(x0, x1, 0.01)
    assert (plan.covariance, plan.n_components, plan.init, plan.second_init) == ("full", 10, "gaussian", "clusters")
    assert plan.lr == pytest.approx(1e-2 * min(1.0, 10 * rho)) and plan.init_spread == pytest.approx(min(1.0, 5 * rho))
    assert (plan.num_steps, plan.n_starts, plan.start_steps, plan.batch_size) == (5000, 3, 1000, 256)
    x0, x1 = _iso(32, 400, 1.0, seed=2)
    assert default_plan(1.0, x0, x1) == plan.__class__(
        "full", 10, "gaussian", 5000, batch_size=256, lr=1e-2 * min(1.0, 10 * noise_fraction(x0, x1, 1.0)),
        init_spread=min(1.0, 5 * noise_fraction(x0, x1, 1.0)), n_starts=3, start_steps=1000, second_init="clusters")
    # samplers, too few rows for covariances, a singular source: the published setting
    assert default_plan(1.0, None, x1) == FALLBACK
    assert default_plan(1.0, x0[:160], x1[:160]) == FALLBACK
    flat = x0.clone()
    flat[:, 0] = 0.0
    assert default_plan(1.0, flat, x1) == FALLBACK


def test_explicit_settings_replace_the_rule_and_drop_its_extra_stages() -> None:
    x0, x1 = _iso(2, 600, 1.0, seed=3)
    gen = torch.Generator().manual_seed(0)
    b = LightSB(eps=1.0, covariance="diag", num_steps=5, progress=False).solve(x0, x1, generator=gen)
    plan = b.diagnostics["plan"]
    assert (plan["covariance"], plan["second_init"], plan["n_components"]) == ("diag", None, 10)
    assert b.covariance == "diag" and len(b.diagnostics["stages"]) == 1
    b = LightSB(eps=1.0, num_steps=5, start_steps=5, progress=False).solve(x0, x1, generator=gen)
    assert b.diagnostics["plan"]["second_init"] == "clusters" and b.covariance == "full"
    assert len(b.diagnostics["stages"]) == 1 and len(b.loss_history) == 5 and len(b.diagnostics["start_val_losses"]) == 4
    # matching and sampler inputs get the published diagonal model
    b = LightSB(eps=1.0, objective="matching", num_steps=5, progress=False).solve(x0, x1, generator=gen)
    assert b.diagnostics["plan"]["n_components"] == 50 and b.covariance == "diag"


def test_gaussian_basis_and_full_continuation_stages(monkeypatch: pytest.MonkeyPatch) -> None:
    # the moderate-noise plan on a small problem: diagonal in the Gaussian basis, then full; the result
    # is in the original coordinates and, for Gaussians, close to the closed-form plan
    x0, x1 = _iso(3, 6000, 1.0, seed=4)
    x1 = x1 @ torch.tensor([[1.0, 0.4, 0.0], [0.0, 1.0, -0.3], [0.0, 0.0, 0.8]], dtype=F64)
    plan = FitPlan("diag", 4, "gaussian", 300, batch_size=256, init_spread=0.0, gaussian_basis=True, full_steps=300)
    monkeypatch.setattr(solver_module, "default_plan", lambda eps, a, b: plan)
    bridge = LightSB(eps=0.5, progress=False).solve(x0, x1, generator=torch.Generator().manual_seed(0))
    stages = bridge.diagnostics["stages"]
    assert [s["covariance"] for s in stages] == ["diag", "full"] and bridge.covariance == "full"
    assert len(bridge.loss_history) == 600 and bridge.diagnostics["num_steps"] == 600
    exact = gaussian_eot(x0.mean(0), torch.cov(x0.T, correction=0), x1.mean(0), torch.cov(x1.T, correction=0), 0.5)
    xt = x0[:200]
    m, c = bridge.conditional_moments(xt)
    # the spread-0 Gaussian start is the exact plan of the empirical Gaussians in every component;
    # 600 Adam steps (lr 1e-2) move it by O(lr) only
    assert float((m - exact.conditional_mean(xt)).norm(dim=1).max()) < 0.1
    assert float((c - exact.conditional_cov).norm(dim=(1, 2)).max()) < 0.1


def test_default_fit_reaches_the_gaussian_closed_form() -> None:
    # LightSB(eps) with nothing else set, on Gaussians: the plan of the K = 10 full fit against the closed
    # form between the population Gaussians
    d, n, eps = 3, 20_000, 1.0
    g = torch.Generator().manual_seed(5)
    m0, m1 = torch.randn(d, generator=g, dtype=F64), torch.randn(d, generator=g, dtype=F64)
    a = torch.randn(d, d, generator=g, dtype=F64)
    s0, s1 = torch.eye(d, dtype=F64), a @ a.T / d + 0.5 * torch.eye(d, dtype=F64)
    x0 = m0 + torch.randn(n, d, generator=g, dtype=F64)
    x1 = m1 + torch.randn(n, d, generator=g, dtype=F64) @ torch.linalg.cholesky(s1).T
    # the rule's model and starts with a shorter budget (CI time): 4 x 300 + 2000 steps
    bridge = LightSB(eps=eps, num_steps=2000, start_steps=300, progress=False).solve(
        x0, x1, generator=torch.Generator().manual_seed(0))
    assert bridge.diagnostics["plan"]["second_init"] == "clusters" and bridge.covariance == "full"
    exact = gaussian_eot(m0, s0, m1, s1, eps)
    xt = m0 + torch.randn(500, d, generator=g, dtype=F64)
    m, c = bridge.conditional_moments(xt)
    # standard error of the sample moments ~ sqrt(d / n) |S1|^(1/2) ~ 0.013: allow 5 of them
    tol = 5 * math.sqrt(d / n) * float(torch.linalg.matrix_norm(s1, ord=2)) ** 0.5
    assert float((m - exact.conditional_mean(xt)).norm(dim=1).mean()) < tol
    assert float((c - exact.conditional_cov).norm(dim=(1, 2)).mean()) < tol


def test_default_fit_on_a_mixture_with_a_known_plan() -> None:
    # the EOT benchmark recipe at D = 2: a mixture whose plan is known in closed form
    bench = make_benchmark(2, 1.0, seed=7)
    g = torch.Generator().manual_seed(7)
    x0, x1 = bench.sample_p0(20_000, g), bench.sample_p1(20_000, g)
    bridge = LightSB(eps=1.0, num_steps=2000, start_steps=300, progress=False).solve(
        x0, x1, generator=torch.Generator().manual_seed(0))
    uvp = cbw2_uvp_bridge(bridge, bench, n_test=500, generator=torch.Generator().manual_seed(1))
    # the published LightSB figure for this cell is 0.05 % (K = 50 diagonal, more samples)
    assert uvp < 0.05, uvp
