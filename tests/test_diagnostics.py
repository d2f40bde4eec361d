"""sciml.diagnostics.ensemble_drift: calibrated on stationary chains, exact on an AR(1) approach."""

from __future__ import annotations

import math

import pytest
import torch

from sciml.diagnostics import DRIFT_T, ensemble_drift

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
    # P(|t| > 4.5) ~ 7e-6 per statistic: 200 x 8 of them give an expected 0.01 alarms
    assert alarms == 0
    assert float(t.abs().max()) < DRIFT_T


@pytest.mark.parametrize("beta", [0.5, 0.8])
def test_a_geometric_approach_is_flagged_and_extrapolated_to_its_fixed_point(beta: float) -> None:
    g = torch.Generator().manual_seed(1)
    n = 40_000
    xs = 2.0 + 0.5 * torch.randn(n, 3, generator=g, dtype=F64)  # started at N(2, 0.5^2), heading to N(0, 1)
    xe = _ar1(xs, beta, 0.0, 1.0, g)
    res = ensemble_drift(xs, xe)
    assert res["drifting"]
    sd_e = xe.std(0)
    # the fixed point is N(0, 1): its mean lies -mean(xe) / sd(xe) away, its sd is 1 / sd(xe); the
    # estimates carry the sampling error of beta and the moments (~1 / sqrt(n) relative, amplified by
    # 1 / (1 - beta)): 20 / sqrt(n) / (1 - beta) relative is over 5 standard errors
    tol = 20 / math.sqrt(n) / (1 - beta)
    torch.testing.assert_close(res["projected_bias"], -xe.mean(0) / sd_e, rtol=tol, atol=0.0)
    torch.testing.assert_close(res["projected_sd_ratio"], 1 / sd_e, rtol=tol, atol=0.0)
    torch.testing.assert_close(res["beta"], torch.full((3,), beta, dtype=F64), rtol=0.0, atol=5 / math.sqrt(n))


def test_frozen_chains_constant_columns_and_bad_input() -> None:
    g = torch.Generator().manual_seed(2)
    xs = torch.randn(100, 2, generator=g, dtype=F64)
    res = ensemble_drift(xs, xs.clone())  # nothing moved: no drift, nothing to extrapolate
    assert not res["drifting"] and float(res["t_mean"].abs().max()) == 0.0
    shifted = ensemble_drift(xs, xs + 1.0)  # every chain moved by the same step: beta 1, no mixing
    assert shifted["drifting"] and bool((shifted["projected_bias"].abs() > 1e6).all())  # beta 1 up to round-off
    const = torch.zeros(100, 2, dtype=F64)
    assert not ensemble_drift(const, const)["drifting"]
    nan = xs.clone()
    nan[:95] = math.nan
    assert ensemble_drift(nan, xs) == {}  # fewer than 8 paired finite rows
    with pytest.raises(ValueError, match="end"):
        ensemble_drift(xs, xs[:50])
