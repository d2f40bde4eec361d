"""Tests of sciml.metrics on cases with known answers."""

from __future__ import annotations

import math
import warnings

import numpy as np
import ot
import pytest
import torch
from scipy import stats

from sciml.metrics import (
    entropic_w2,
    gaussian_w2,
    log_z_estimates,
    mmd,
    mode_assignment,
    mode_counts,
    mode_coverage,
    mode_entropy,
    mode_weight_error,
    sliced_ks,
    wasserstein2,
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_gaussian_w2_closed_form_special_cases():
    # 1-D: |m1 - m2|^2 + (s1 - s2)^2
    assert gaussian_w2(torch.tensor([1.0]), torch.tensor([[4.0]]), torch.tensor([-2.0]),
                       torch.tensor([[0.25]])) == pytest.approx(math.sqrt(9 + 1.5**2), rel=1e-12)
    # commuting covariances: sum of (sqrt(a_i) - sqrt(b_i))^2
    a, b = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([4.0, 0.5, 3.0])
    expect = math.sqrt(1.0 + float(((a.sqrt() - b.sqrt()) ** 2).sum()))
    assert gaussian_w2(torch.zeros(3), torch.diag(a), torch.tensor([1.0, 0, 0]), torch.diag(b)) == pytest.approx(
        expect, rel=1e-12)
    # rotation invariance with a non-diagonal covariance
    q = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64, generator=_gen()))[0]
    got = gaussian_w2(torch.zeros(3), q @ torch.diag(a).double() @ q.T, q @ torch.tensor([1.0, 0, 0]).double(),
                      q @ torch.diag(b).double() @ q.T)
    assert got == pytest.approx(expect, rel=1e-10)


def test_wasserstein2_exact_in_1d_and_against_gaussian_closed_form():
    g = _gen(1)
    x, y = torch.randn(400, 1, dtype=torch.float64, generator=g), 2 + 3 * torch.randn(400, 1, dtype=torch.float64,
                                                                                      generator=g)
    sorted_w2 = float(((x.sort(0).values - y.sort(0).values) ** 2).mean().sqrt())  # 1-D optimal matching
    assert wasserstein2(x, y) == pytest.approx(sorted_w2, rel=1e-10)
    # 2-D Gaussians: closed form 3.0426; sampling sd of the empirical value at n=600 is ~0.07
    m2, s2 = torch.tensor([3.0, 0.0], dtype=torch.float64), torch.diag(torch.tensor([2.0, 0.5], dtype=torch.float64))
    truth = gaussian_w2(torch.zeros(2), torch.eye(2), m2, s2)
    assert truth == pytest.approx(3.042590888, abs=1e-8)
    x = torch.randn(600, 2, dtype=torch.float64, generator=g)
    y = m2 + torch.randn(600, 2, dtype=torch.float64, generator=g) @ s2.sqrt()
    assert abs(wasserstein2(x, y) - truth) < 0.2


def test_entropic_w2_matches_pot_and_exact_limit():
    g = _gen(2)
    x = torch.randn(200, 2, dtype=torch.float64, generator=g)
    y = torch.tensor([3.0, 0.0], dtype=torch.float64) + 0.8 * torch.randn(250, 2, dtype=torch.float64, generator=g)
    cost = (torch.cdist(x, y) ** 2).numpy()
    # moderate reg: POT's converged log-domain Sinkhorn gives the reference value
    ref = math.sqrt(ot.sinkhorn2(ot.unif(200), ot.unif(250), cost, 1.0, method="sinkhorn_log",
                                 numItermax=20_000, stopThr=1e-13))
    assert entropic_w2(x, y, reg=1.0, tol=1e-10, max_iter=20_000) == pytest.approx(ref, rel=1e-7)
    # reg = 0.05: a feasible coupling, so >= exact W2, and close to it (entropic blur ~ sqrt(reg))
    exact = wasserstein2(x, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        val = entropic_w2(x, y)
    assert exact <= val <= exact * 1.02
    with pytest.raises(ValueError, match="same dimension"):
        entropic_w2(x, torch.zeros(3, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="reg"):
        entropic_w2(x, y, reg=0.0)


def test_mmd_known_values_and_same_distribution():
    x = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
    y = torch.tensor([[0.0], [2.0]], dtype=torch.float64)
    k = lambda d: math.exp(-(d**2) / 2)  # noqa: E731
    v_stat = (2 + 2 * k(1)) / 4 + (2 + 2 * k(2)) / 4 - 2 * (k(0) + k(2) + k(1) + k(1)) / 4
    u_stat = k(1) + k(2) - 2 * (k(0) + k(2) + 2 * k(1)) / 4
    assert mmd(x, y, 1.0, unbiased=False) == pytest.approx(v_stat, rel=1e-12)
    assert mmd(x, y, 1.0) == pytest.approx(u_stat, rel=1e-12)
    g = _gen(3)
    same = [mmd(torch.randn(300, 2, dtype=torch.float64, generator=g),
                torch.randn(300, 2, dtype=torch.float64, generator=g)) for _ in range(5)]
    shifted = mmd(torch.randn(300, 2, dtype=torch.float64, generator=g),
                  0.5 + torch.randn(300, 2, dtype=torch.float64, generator=g))
    assert max(abs(s) for s in same) < 0.01 < shifted
    assert abs(np.mean(same)) < 0.005


def test_sliced_ks_exact_in_1d_and_binned_variant():
    g = _gen(4)
    x = torch.randn(500, 1, dtype=torch.float64, generator=g)
    y = 0.3 + torch.randn(700, 1, dtype=torch.float64, generator=g)
    ref = stats.ks_2samp(x[:, 0].numpy(), y[:, 0].numpy()).statistic
    assert sliced_ks(x, y, n_projections=3, generator=_gen()) == pytest.approx(ref, rel=1e-12)
    binned = sliced_ks(x, y, n_projections=3, generator=_gen(), n_bins=256)
    assert binned <= ref + 1e-12 and binned == pytest.approx(ref, abs=0.02)
    z = torch.randn(400, 5, dtype=torch.float64, generator=g)
    assert sliced_ks(z, z.clone(), generator=_gen()) == 0.0
    assert sliced_ks(z, z + 1.0, generator=_gen(1)) > 0.2


def test_mode_metrics_on_constructed_samples():
    modes = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]], dtype=torch.float64)
    g = _gen(5)
    # 60 / 30 / 10 / 0 samples around the first three modes
    idx = torch.tensor([0] * 60 + [1] * 30 + [2] * 10)
    x = modes[idx] + 0.5 * torch.randn(100, 2, dtype=torch.float64, generator=g)
    assert torch.equal(mode_assignment(x, modes), idx)
    assert mode_counts(x, modes).tolist() == [60, 30, 10, 0]
    assert mode_coverage(x, modes) == 0.75
    assert mode_coverage(x, modes, min_count=20) == 0.5
    far = torch.cat([x, torch.tensor([[30.0, 30.0]], dtype=torch.float64)])
    assert mode_coverage(far, modes) == 1.0 and mode_coverage(far, modes, radius=3.0) == 0.75
    w = torch.full((4,), 0.25, dtype=torch.float64)
    assert mode_weight_error(x, modes, w) == pytest.approx(0.5 * (0.35 + 0.05 + 0.15 + 0.25))
    p = torch.tensor([0.6, 0.3, 0.1])
    assert mode_entropy(x, modes) == pytest.approx(float(-(p * p.log()).sum()) / math.log(4), rel=1e-6)


def test_log_z_estimates_importance_sampling():
    # target exp(-x^2/2) * 7 (Z = 7 sqrt(2 pi)), proposal N(0, 1.5^2)
    g = _gen(6)
    q = torch.distributions.Normal(torch.tensor(0.0, dtype=torch.float64), 1.5)
    x = 1.5 * torch.randn(200_000, dtype=torch.float64, generator=g)
    lw = math.log(7.0) - 0.5 * x**2 - q.log_prob(x)
    est = log_z_estimates(lw)
    truth = math.log(7.0) + 0.5 * math.log(2 * math.pi)
    assert est.log_z == pytest.approx(truth, abs=0.01)  # relative sd of the weights ~0.5/sqrt(n)
    assert est.elbo < est.log_z
    # ELBO = log Z - KL(q || p) with KL(N(0, 2.25) || N(0, 1)) = 0.5 (2.25 - 1 - log 2.25)
    assert est.elbo == pytest.approx(truth - 0.5 * (2.25 - 1 - math.log(2.25)), abs=0.01)
    assert 1 < est.ess < 200_000
    flat = log_z_estimates(torch.full((10,), 2.0, dtype=torch.float64))
    assert flat.log_z == pytest.approx(2.0) and flat.elbo == pytest.approx(2.0) and flat.ess == pytest.approx(10.0)
    with pytest.raises(ValueError, match="non-finite"):
        log_z_estimates(torch.tensor([0.0, float("nan")]))


@pytest.mark.gpu
def test_metrics_on_cuda_match_cpu():
    g = _gen(7)
    x = torch.randn(150, 2, dtype=torch.float64, generator=g)
    y = 1.0 + torch.randn(170, 2, dtype=torch.float64, generator=g)
    xc, yc = x.cuda(), y.cuda()
    assert entropic_w2(xc, yc, reg=1.0, tol=1e-10, max_iter=20_000) == pytest.approx(
        entropic_w2(x, y, reg=1.0, tol=1e-10, max_iter=20_000), rel=1e-8)
    assert mmd(xc, yc) == pytest.approx(mmd(x, y), rel=1e-10)
    assert sliced_ks(xc, yc, generator=_gen()) == pytest.approx(sliced_ks(x, y, generator=_gen()), rel=1e-12)
    assert mode_coverage(xc, yc[:5]) == mode_coverage(x, y[:5])


def test_sinkhorn_plan_matches_pot_log_domain_solver():
    import ot

    from sciml.metrics import sinkhorn

    g = torch.Generator().manual_seed(3)
    cost = torch.rand(40, 30, dtype=torch.float64, generator=g) * 5
    a = torch.rand(40, dtype=torch.float64, generator=g) + 0.1
    b = torch.rand(30, dtype=torch.float64, generator=g) + 0.1
    a, b = a / a.sum(), b / b.sum()
    res = sinkhorn(cost, 0.1, a, b, tol=1e-12, max_iter=20_000)
    ref = ot.bregman.sinkhorn_log(a, b, cost, 0.1, numItermax=20_000, stopThr=1e-14)
    assert res.marginal_error <= 1e-12
    assert torch.allclose(res.plan.sum(0), b, rtol=0, atol=1e-14) and torch.allclose(res.plan.sum(1), a, atol=1e-12)
    assert torch.allclose(res.plan, ref, rtol=1e-8, atol=1e-14)
    # the fixed-budget form (tol=0) runs exactly the iterations asked for
    fixed = sinkhorn(cost, 0.1, tol=0.0, max_iter=7, start=1.0, scaling=0.5, stage_iter=1)
    assert fixed.num_steps == 4 + 7  # stages 1, 0.5, 0.25, 0.125, then 7 at 0.1


EPS = torch.finfo(torch.float64).eps


def test_sqrtm_psd_and_batched_gaussian_w2_sq():
    from sciml.metrics import gaussian_w2, gaussian_w2_sq, sqrtm_psd

    g = torch.Generator().manual_seed(4)
    q = torch.randn(5, 3, 3, dtype=torch.float64, generator=g)
    s = q @ q.transpose(-1, -2) + 0.1 * torch.eye(3, dtype=torch.float64)
    r = sqrtm_psd(s)
    scale = float(s.abs().max())
    assert torch.allclose(r @ r, s, rtol=0, atol=1e3 * EPS * scale)
    assert torch.allclose(sqrtm_psd(s, inverse=True) @ r, torch.eye(3, dtype=torch.float64).expand(5, 3, 3),
                          atol=1e5 * EPS)
    m1 = torch.randn(5, 3, dtype=torch.float64, generator=g)
    m2 = torch.randn(5, 3, dtype=torch.float64, generator=g)
    batch = gaussian_w2_sq(m1, s, m2, s.flip(0))
    loop = torch.tensor([gaussian_w2(m1[i], s[i], m2[i], s.flip(0)[i]) ** 2 for i in range(5)], dtype=torch.float64)
    assert torch.allclose(batch, loop, rtol=1e-12, atol=0)
    # commuting covariances: closed form |m1 - m2|^2 + |S1^{1/2} - S2^{1/2}|_F^2
    d1, d2 = torch.diag(torch.tensor([1.0, 4.0, 9.0], dtype=torch.float64)), torch.eye(3, dtype=torch.float64)
    z = torch.zeros(3, dtype=torch.float64)
    assert float(gaussian_w2_sq(z, d1, z, d2)) == pytest.approx((0 + 1 + 4), rel=1e-13)


def test_overflowing_inputs_and_endless_stages_are_named():
    from sciml.metrics import sinkhorn

    x, y = torch.randn(5, 2, generator=_gen()), torch.randn(6, 2, generator=_gen(1))
    with pytest.raises(ValueError, match="squared distances between x and y overflow torch.float32"):
        wasserstein2(x * 1e20, y)  # POT returned 0.0 for the overflowed costs
    with pytest.raises(ValueError, match="squared distances between x and y overflow"):
        entropic_w2(x * 1e20, y, reg=0.1)
    # weights whose sum overflows are normalised by their largest first: uniform, as they should be
    huge = torch.full((5,), 3e38)
    assert wasserstein2(x, y, weights_x=huge) == pytest.approx(wasserstein2(x, y), rel=1e-6)
    with pytest.raises(ValueError, match="takes .* stages \\(at most 10000\\)"):
        sinkhorn(torch.rand(3, 3, generator=_gen()), 0.1, scaling=1 - 1e-9)  # hung before


def test_half_precision_singular_roots_and_unbroadcastable_batches_are_named():
    from sciml.metrics import gaussian_w2_sq, sqrtm_psd

    x = torch.randn(5, 2, generator=_gen())
    with pytest.raises(TypeError, match="x and y must be float32 or float64, got torch.float16"):
        wasserstein2(x.half(), x.half())  # cdist has no half kernel
    with pytest.raises(ValueError, match="a is singular: its inverse square root is infinite"):
        sqrtm_psd(torch.zeros(2, 2), inverse=True)  # returned NaN
    eye = torch.eye(2, dtype=torch.float64)
    with pytest.raises(ValueError, match="batch shapes of m1, S1, m2, S2 do not broadcast"):
        gaussian_w2_sq(torch.zeros(3, 2), eye.expand(3, 2, 2), torch.zeros(4, 2), eye.expand(4, 2, 2))
