"""von Mises-Fisher distribution and fit: closed forms, mpmath normaliser, exact-statistic recovery."""

from __future__ import annotations

import math

import mpmath as mp
import pytest
import torch

from sciml.distributions import VonMisesFisher, fit_vmf, mean_resultant_length, vmf_kappa_mle

F64 = torch.float64


def _unit(p: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(p, generator=g, dtype=F64)
    return mu / mu.norm()


@pytest.mark.parametrize("p", [2048, 8192, 32768])
@pytest.mark.parametrize("kappa", [0.5, 50.0, 1e3, 2e4, 1e5])
def test_kappa_recovered_from_exact_statistics(p: int, kappa: float) -> None:
    r = mean_resultant_length(torch.tensor(kappa, dtype=F64), p)
    fitted = vmf_kappa_mle(r, p)
    assert abs(float(fitted) / kappa - 1.0) <= 1e-10


def test_mean_resultant_length_matches_mpmath() -> None:
    mp.mp.dps = 40
    for p, kappa in [(3, 2.0), (2048, 300.0), (32768, 1e3), (32768, 2e4)]:
        nu = mp.mpf(p) / 2 - 1
        exact = mp.besseli(nu + 1, kappa, maxterms=10**6) / mp.besseli(nu, kappa, maxterms=10**6)
        got = float(mean_resultant_length(torch.tensor(kappa, dtype=F64), p))
        assert abs(got - float(exact)) <= 1e-14 * float(exact)


def test_fit_vmf_from_exact_mean_vector() -> None:
    # two-point design whose mean vector has length exactly A_p(kappa) along mu
    p, kappa = 8192, 3e3
    mu = torch.zeros(p, dtype=F64)
    mu[0] = 1.0
    a = float(mean_resultant_length(torch.tensor(kappa, dtype=F64), p))
    s = math.sqrt(1 - a * a)
    x = torch.zeros(2, p, dtype=F64)
    x[:, 0] = a
    x[0, 1], x[1, 1] = s, -s
    loc, k = fit_vmf(x)
    assert torch.allclose(loc, mu, atol=1e-15)
    assert abs(float(k) / kappa - 1) <= 1e-10


def test_log_normalizer_closed_forms_and_mpmath() -> None:
    kappa = torch.tensor([1e-3, 0.5, 5.0, 50.0, 700.0], dtype=F64)
    # p = 3: C_3 = kappa / (4 pi sinh kappa)
    d3 = VonMisesFisher(torch.tensor([0.0, 0.0, 1.0], dtype=F64), kappa)
    exact3 = torch.log(kappa) - math.log(4 * math.pi) - (kappa + torch.log(-torch.expm1(-2 * kappa)) - math.log(2))
    torch.testing.assert_close(d3.log_normalizer(), exact3, rtol=1e-13, atol=1e-14)
    # p = 2: C_2 = 1 / (2 pi I_0(kappa))
    d2 = VonMisesFisher(torch.tensor([1.0, 0.0], dtype=F64), kappa)
    exact2 = -math.log(2 * math.pi) - (torch.log(torch.special.i0e(kappa)) + kappa)
    torch.testing.assert_close(d2.log_normalizer(), exact2, rtol=1e-13, atol=1e-14)
    # p = 32768 against mpmath
    mp.mp.dps = 40
    p = 32768
    for k in (10.0, 1e4, 2e4):
        d = VonMisesFisher(_unit(p, 0), torch.tensor(k, dtype=F64))
        nu = mp.mpf(p) / 2 - 1
        exact = nu * mp.log(k) - (mp.mpf(p) / 2) * mp.log(2 * mp.pi) - mp.log(mp.besseli(nu, k, maxterms=10**6))
        got = float(d.log_normalizer())
        assert math.isfinite(got)
        assert abs(got - float(exact)) <= 1e-13 * abs(float(exact))


def test_log_prob_stable_at_p32768() -> None:
    p = 32768
    mu = _unit(p, 1)
    for k in (1e-2, 1.0, 1e3, 1e5):
        d = VonMisesFisher(mu, k)
        lp = d.log_prob(torch.stack([mu, -mu]))
        assert torch.isfinite(lp).all()
        torch.testing.assert_close(lp[0] - lp[1], torch.tensor(2 * k, dtype=F64), rtol=1e-12, atol=1e-9)


def test_sampler_p3_matches_closed_form_moments() -> None:
    g = torch.Generator().manual_seed(0)
    mu = torch.tensor([0.6, 0.0, 0.8], dtype=F64)
    for kappa in (0.3, 4.0, 200.0):
        d = VonMisesFisher(mu, kappa)
        x = d.sample((20000,), generator=g)
        assert x.shape == (20000, 3)
        torch.testing.assert_close(x.norm(dim=1), torch.ones(20000, dtype=F64), rtol=0, atol=1e-12)
        w = x @ mu
        a = 1 / math.tanh(kappa) - 1 / kappa
        assert abs(float(w.mean()) - a) <= 5 * float(w.std()) / math.sqrt(20000)
        # entropy equals the Monte-Carlo average of -log f
        lp = d.log_prob(x)
        assert abs(float(-lp.mean()) - float(d.entropy())) <= 5 * float(lp.std()) / math.sqrt(20000)


def test_sampler_high_dimension_and_fit_from_samples() -> None:
    g = torch.Generator().manual_seed(1)
    p, n = 8192, 300
    mu = _unit(p, 2)
    for kappa in (2e3, 5e4):
        d = VonMisesFisher(mu, kappa)
        x = d.sample((n,), generator=g)
        w = x @ mu
        a = float(d.mean_resultant_length())
        e_w2 = 1 - (p - 1) * a / kappa  # E[w^2] from the Bessel recurrence
        var_w = e_w2 - a * a
        assert abs(float(w.mean()) - a) <= 5 * math.sqrt(var_w / n)
        loc, khat = fit_vmf(x)
        rbar = float(x.mean(0).norm())
        # fitted kappa solves A_p(k) = R exactly ...
        assert abs(float(mean_resultant_length(khat, p)) - rbar) <= 1e-12
        # ... and R^2 agrees with E[R^2] = A^2 + (1 - A^2) / n within its sampling error
        expected_r2 = a * a + (1 - a * a) / n
        sd_r2 = 2 * a * math.sqrt(var_w / n) + 2 * (1 - a * a) / n
        assert abs(rbar**2 - expected_r2) <= 5 * sd_r2
        assert float(loc @ mu) > 0.9


def test_rsample_gradient_flows_to_loc() -> None:
    loc = torch.tensor([1.0, 2.0, 2.0], dtype=F64, requires_grad=True)
    d = VonMisesFisher(loc, 10.0)
    x = d.rsample((5,), generator=torch.Generator().manual_seed(0))
    x.sum().backward()
    assert loc.grad is not None and torch.isfinite(loc.grad).all()


def test_batch_shapes_and_mean() -> None:
    loc = torch.randn(4, 1, 5, dtype=F64, generator=torch.Generator().manual_seed(0))
    kappa = torch.tensor([1.0, 10.0, 100.0], dtype=F64)
    d = VonMisesFisher(loc, kappa)
    assert d.batch_shape == (4, 3) and d.event_shape == (5,)
    x = d.sample((2,), generator=torch.Generator().manual_seed(1))
    assert x.shape == (2, 4, 3, 5)
    assert d.log_prob(x).shape == (2, 4, 3)
    assert d.entropy().shape == (4, 3)
    torch.testing.assert_close(d.mean.norm(dim=-1), d.mean_resultant_length())


def test_input_errors() -> None:
    with pytest.raises(ValueError, match="loc"):
        VonMisesFisher(torch.ones(1, dtype=F64), 1.0)
    with pytest.raises(ValueError, match="concentration"):
        VonMisesFisher(torch.ones(3, dtype=F64), -1.0)
    with pytest.raises(ValueError, match="loc"):
        VonMisesFisher(torch.zeros(3, dtype=F64), 1.0)
    with pytest.raises(ValueError, match="x"):
        fit_vmf(torch.ones(3, dtype=F64))
    with pytest.raises(ValueError, match="r"):
        vmf_kappa_mle(1.5, 10)
    assert float(vmf_kappa_mle(0.0, 10)) == 0.0 and math.isinf(float(vmf_kappa_mle(1.0, 10)))


def test_python_float_statistic_keeps_float64() -> None:
    p, kappa = 32768, 3e4
    r = float(mean_resultant_length(torch.tensor(kappa, dtype=F64), p))
    k = vmf_kappa_mle(r, p)
    assert k.dtype == F64 and abs(float(k) / kappa - 1) <= 1e-10
