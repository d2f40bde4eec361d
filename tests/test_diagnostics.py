"""sciml.diagnostics.ensemble_drift: calibrated on stationary chains, exact on an AR(1) approach."""

from __future__ import annotations

import math

import pytest
import torch

from sciml.diagnostics import ensemble_drift

F64 = torch.float64


def _ar1(xs: torch.Tensor, beta: float, mean: float, sd: float, g: torch.Generator) -> torch.Tensor:
    """One AR(1) step with fixed point N(mean, sd^2): ``mean + beta (x - mean) + sd sqrt(1 - beta^2) e``."""
    return mean + beta * (xs - mean) + sd * math.sqrt(1 - beta * beta) * torch.randn(xs.shape, generator=g, dtype=F64)


def test_stationary_chains_give_standard_normal_t_and_no_alarm() -> None:
    g = torch.Generator().manual_seed(0)
    ts, alarms, reps = [], 0, 200
    for r in range(reps):
        beta = (0.0, 0.5, 0.9, 0.99, -0.5)[r % 5]
        xs = 3.0 + 2.0 * torch.randn(500, 4, generator=g, dtype=F64)
        res = ensemble_drift(xs, _ar1(xs, beta, 3.0, 2.0, g))
        ts += [res["t_mean"], res["t_var"]]
        alarms += res["drifting"]
    t = torch.cat(ts)
    # under stationarity each t is ~N(0, 1): E[t^2] = 1 with standard error sqrt(2 / m) (t_var's
    # heavier tail at n = 500 included in the 6-sigma margin)
    assert abs(float((t * t).mean()) - 1.0) < 6 * math.sqrt(2 / t.numel())
    # P(|t| > threshold) = 6.8e-6 per statistic: 200 x 8 of them give an expected 0.01 alarms
    assert alarms == 0
    assert float(t.abs().max()) < res["threshold"]


def test_few_chains_are_judged_by_student_t() -> None:
    # 10 chains: |t| > 4.5 would be a 1e-3 event per statistic under a t with 9 degrees of freedom
    g = torch.Generator().manual_seed(3)
    alarms = 0
    for _ in range(300):
        xs = torch.randn(10, 4, generator=g, dtype=F64)
        res = ensemble_drift(xs, _ar1(xs, 0.5, 0.0, 1.0, g))
        alarms += res["drifting"]
    assert res["threshold"] > 9 and alarms == 0  # t_9 quantile: 9.25


@pytest.mark.parametrize("beta", [0.5, 0.8])
def test_a_geometric_approach_is_flagged_and_extrapolated_to_its_fixed_point(beta: float) -> None:
    g = torch.Generator().manual_seed(1)
    n = 40_000
    xs = 2.0 + 0.5 * torch.randn(n, 3, generator=g, dtype=F64)  # started at N(2, 0.5^2), heading to N(0, 1)
    xe = _ar1(xs, beta, 0.0, 1.0, g)
    res = ensemble_drift(xs, xe)
    assert res["drifting"]
    sd_e = xe.std(0)
    # the fixed point is N(0, 1): its mean lies -mean(xe) / sd(xe) away, its sd is 1 / sd(xe). The
    # error is beta's: se(beta) = noise sd / (start sd sqrt(n)), and beta / (1 - beta) carries it
    # with the relative factor 1 / (beta (1 - beta)); 5 standard errors
    se_beta = math.sqrt(1 - beta * beta) / (0.5 * math.sqrt(n))
    tol = 5 * se_beta / (beta * (1 - beta))
    torch.testing.assert_close(res["projected_bias"], -xe.mean(0) / sd_e, rtol=tol, atol=0.0)
    torch.testing.assert_close(res["projected_sd_ratio"], 1 / sd_e, rtol=tol, atol=0.0)
    torch.testing.assert_close(res["beta"], torch.full((3,), beta, dtype=F64), rtol=0.0, atol=5 * se_beta)


def test_frozen_chains_constant_columns_and_bad_input() -> None:
    g = torch.Generator().manual_seed(2)
    xs = torch.randn(100, 2, generator=g, dtype=F64)
    res = ensemble_drift(xs, xs.clone())  # nothing moved: no drift, nothing to extrapolate
    assert not res["drifting"] and float(res["t_mean"].abs().max()) == 0.0
    shifted = ensemble_drift(xs, xs + 1.0)  # every chain moved by the same step: beta 1, no mixing
    assert shifted["drifting"] and bool((shifted["projected_bias"].abs() > 1e6).all())  # beta 1 up to round-off
    const = torch.zeros(100, 2, dtype=F64)
    same = ensemble_drift(const, const)
    assert not same["drifting"] and float(same["projected_bias"].abs().max()) == 0.0
    assert bool((same["projected_sd_ratio"] == 1).all())
    moved = ensemble_drift(const, const + 1.0)  # every chain from one point to another: no spread, no beta
    assert moved["drifting"] and bool(torch.isnan(moved["beta"]).all()) and bool(torch.isinf(moved["projected_bias"]).all())
    spread = ensemble_drift(const, xs)  # from a point to a spread: the variance grew
    assert spread["drifting"] and bool(torch.isinf(spread["projected_sd_ratio"]).all())
    collapsed = ensemble_drift(xs, const)  # to a point: the variance shrank, the ratio is 0 (not NaN)
    assert collapsed["drifting"] and bool((collapsed["projected_sd_ratio"] == 0).all())
    nan = xs.clone()
    nan[:95] = math.nan
    assert ensemble_drift(nan, xs) == {}  # fewer than 8 paired finite rows
    with pytest.raises(ValueError, match="end"):
        ensemble_drift(xs, xs[:50])
