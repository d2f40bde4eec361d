"""Tests of sciml.targets: exact samplers, log Z, gradients, adapters and error cases."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import torch
from scipy import stats

from sciml.targets import (
    DoubleWell,
    Funnel,
    GaussianMixture,
    ManyWell,
    StudentTMixture,
    Target,
    as_target,
    check_target,
    dw5,
    dw50,
    from_pyro_model,
    funnel,
    gmm25,
    logistic_regression,
    many_well32,
    mog8,
    mog40,
    mos10,
    rings,
)

P_MIN = 1e-3  # KS p-value threshold; seeds are fixed, so each check is deterministic


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# one of each target family, built from the public constructors (name -> factory)
TARGETS = {
    "8-mog": mog8,
    "40-mog-d2": lambda: mog40(2, seed=0),
    "40-mog-d50": lambda: mog40(50, seed=0),
    "25-gmm": gmm25,
    "10-mos": lambda: mos10(2, seed=0),
    "rings": rings,
    "funnel": lambda: funnel(10),
    "funnel-var3": lambda: Funnel(10, math.sqrt(3.0)),
    "dw5": dw5,
    "dw50": dw50,
    "many-well-32": many_well32,
    "logreg": lambda: logistic_regression(n_train=166, dim=61, seed=1, n_test=42),
}


def _grid_log_z(target: Target, lo: float, hi: float, n: int = 700) -> float:
    g = torch.linspace(lo, hi, n, dtype=torch.float64)  # even n: the origin is not a node
    xx = torch.cartesian_prod(g, g)
    h = (hi - lo) / (n - 1)
    return float(torch.logsumexp(target.log_prob(xx), 0) + 2 * math.log(h))


def _ks_p(samples: torch.Tensor, cdf) -> float:
    return float(stats.kstest(samples.numpy(), cdf).pvalue)


def _grid_cdf(log_f, lo: float, hi: float, n: int = 200_001):
    """CDF of exp(log_f) on [lo, hi] by cumulative trapezoid (for 1-D KS references)."""
    g = np.linspace(lo, hi, n)
    f = np.exp(log_f(g) - log_f(g).max())
    c = np.concatenate([[0.0], np.cumsum(0.5 * (f[1:] + f[:-1]) * np.diff(g))])
    c /= c[-1]
    return lambda t: np.interp(t, g, c)


# ---------------------------------------------------------------------------------- log Z


@pytest.mark.parametrize("factory,lo,hi", [(mog8, -8.0, 28.0), (gmm25, -14.0, 14.0), (rings, -6.0, 6.0)])
def test_log_z_by_2d_quadrature(factory, lo, hi):
    t = factory()
    assert abs(_grid_log_z(t, lo, hi) - t.log_z) < 1e-6


@pytest.mark.parametrize("target,lo,hi", [(DoubleWell(2, 2, 3.0), -4.0, 4.0), (DoubleWell(2, 1, 4.0), -5, 5),
                                          (ManyWell(2), -5.0, 5.0)])
def test_well_log_z_by_2d_quadrature(target, lo, hi):
    assert abs(_grid_log_z(target, lo, hi, n=2000) - target.log_z) < 1e-6


def test_well_log_z_against_mpmath_and_published_constant():
    mpmath.mp.dps = 30
    for delta in (2.0, 3.0, 4.0):
        r = math.sqrt(delta)
        z1 = mpmath.quad(lambda x, dl=delta: mpmath.exp(-((x * x - dl) ** 2)), [-mpmath.inf, -r, 0, r, mpmath.inf])
        t = DoubleWell(7, 3, delta)
        expect = 3 * float(mpmath.log(z1)) + 4 * 0.5 * math.log(math.pi)
        assert abs(t.log_z - expect) < 1e-9
    z = mpmath.quad(lambda x: mpmath.exp(-(x**4) + 6 * x**2 + 0.5 * x), [-mpmath.inf, -1.7, 0, 1.7, mpmath.inf])
    assert abs(float(z) / 11784.50927 - 1) < 1e-9  # constant of the reference note
    mw = many_well32()
    assert abs(mw.log_z - 16 * (math.log(float(z)) + 0.5 * math.log(2 * math.pi))) < 1e-8


# ------------------------------------------------------------------------- exact samplers


def test_mixture_samplers_match_marginal_cdfs():
    t = mog8()
    x = t.sample(20_000, generator=_gen(1))
    m = t.means.numpy()
    for j in range(2):
        cdf = lambda v, j=j: np.mean([stats.norm.cdf(v, mu, math.sqrt(0.7)) for mu in m[:, j]], axis=0)  # noqa: E731
        assert _ks_p(x[:, j], cdf) > P_MIN
    s = mos10()
    y = s.sample(20_000, generator=_gen(2))
    for j in range(2):
        cdf = lambda v, j=j: np.mean([stats.t.cdf(v, 2.0, loc=mu) for mu in s.locs[:, j].numpy()], axis=0)  # noqa: E731
        assert _ks_p(y[:, j], cdf) > P_MIN
    # Student-t mixture density is the one of scipy
    pts = torch.randn(5, 2, dtype=torch.float64, generator=_gen(3)) * 5
    ref = np.log(np.mean([stats.t.pdf(pts.numpy(), 2.0, loc=mu).prod(-1) for mu in s.locs.numpy()], axis=0))
    assert np.allclose(s.log_prob(pts).numpy(), ref, rtol=1e-12)


def test_gaussian_mixture_moments():
    t = GaussianMixture(torch.tensor([[0.0, 0.0], [4.0, -2.0]]), torch.tensor([1.0, 0.25]),
                        torch.tensor([0.3, 0.7]))
    x = t.sample(200_000, generator=_gen(1))
    mean = torch.tensor([0.7 * 4.0, 0.7 * -2.0], dtype=torch.float64)
    m2 = torch.tensor([0.3 + 0.7 * (0.25 + 16), 0.3 + 0.7 * (0.25 + 4)], dtype=torch.float64)
    assert torch.allclose(x.mean(0), mean, atol=0.02)  # sd of the mean < 0.005
    assert torch.allclose((x**2).mean(0), m2, rtol=0.01)


def test_rings_sampler():
    t = rings()
    x = t.sample(20_000, generator=_gen(4))
    r = torch.linalg.vector_norm(x, dim=-1)
    cdf = lambda v: np.mean([stats.norm.cdf(v, c, 0.15) for c in (1, 2, 3, 4)], axis=0)  # noqa: E731
    assert _ks_p(r, cdf) > P_MIN
    theta = torch.atan2(x[:, 1], x[:, 0])
    assert _ks_p(theta, stats.uniform(-math.pi, 2 * math.pi).cdf) > P_MIN


def test_funnel_sampler_and_density():
    t = funnel(10)
    x = t.sample(20_000, generator=_gen(5))
    assert _ks_p(x[:, 0], stats.norm(0, 3).cdf) > P_MIN
    assert _ks_p(x[:, 3] * torch.exp(-0.5 * x[:, 0]), stats.norm.cdf) > P_MIN
    pts = x[:5]
    ref = stats.norm(0, 3).logpdf(pts[:, 0].numpy()) + stats.norm.logpdf(
        pts[:, 1:].numpy(), scale=np.exp(pts[:, :1].numpy() / 2)).sum(-1)
    assert np.allclose(t.log_prob(pts).numpy(), ref, rtol=1e-12)


def test_well_samplers_match_1d_factors():
    t = dw5()
    x = t.sample(20_000, generator=_gen(6))
    cdf = _grid_cdf(lambda v: -((v * v - 4.0) ** 2), -5, 5)
    for j in (0, 4):
        assert _ks_p(x[:, j], cdf) > P_MIN
    y = dw50().sample(5_000, generator=_gen(7))
    assert _ks_p(y[:, 10], stats.norm(0, math.sqrt(0.5)).cdf) > P_MIN
    mw = many_well32()
    z = mw.sample(5_000, generator=_gen(8))
    cdf = _grid_cdf(lambda v: -(v**4) + 6 * v**2 + 0.5 * v, -5, 5)
    assert _ks_p(z[:, 0], cdf) > P_MIN and _ks_p(z[:, 30], cdf) > P_MIN
    assert _ks_p(z[:, 1], stats.norm.cdf) > P_MIN


def test_samplers_are_seeded():
    for t in (mog8(), rings(), dw5(), mos10()):
        assert torch.equal(t.sample(50, generator=_gen(3)), t.sample(50, generator=_gen(3)))


# ------------------------------------------------------------------------- gradients, dtype


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_closed_form_gradients_match_autograd(name):
    t = TARGETS[name]()
    x = torch.randn(3, 4, t.dim, dtype=torch.float64, generator=_gen(9))
    if t.modes is not None:
        x = x + t.modes[:3, None, :]  # near modes, where responsibilities are not degenerate
    lp, g = t.log_prob_and_grad(x)
    lp_ad, g_ad = Target.log_prob_and_grad(t, x)
    assert lp.shape == (3, 4) and g.shape == x.shape
    assert torch.allclose(lp, t.log_prob(x)) and torch.allclose(lp, lp_ad)
    assert torch.allclose(g, g_ad, rtol=1e-10, atol=1e-12 * float(g_ad.abs().max()))
    assert torch.allclose(t.grad_log_prob(x), g)


def test_target_dims_and_flags():
    dims = {"8-mog": 2, "40-mog-d2": 2, "40-mog-d50": 50, "25-gmm": 2, "10-mos": 2, "rings": 2, "funnel": 10,
            "funnel-var3": 10, "dw5": 5, "dw50": 50, "many-well-32": 32, "logreg": 61}
    assert set(TARGETS) == set(dims)
    for name, d in dims.items():
        t = TARGETS[name]()
        assert t.dim == d and t.dtype == torch.float64
        assert t.has_exact_samples == (not name.startswith("logreg"))
    assert mog40(50).modes.shape == (40, 50)
    assert torch.equal(mog40(2, seed=3).means, mog40(2, seed=3).means)
    assert bool((mog40(2).means.abs() <= 40).all())


def test_to_changes_dtype_everywhere():
    t = mog8().to(torch.float32)
    assert t.dtype == torch.float32 and t.means.dtype == torch.float32
    x = t.sample(10, generator=_gen())
    assert x.dtype == torch.float32 and t.log_prob(x).dtype == torch.float32
    d = dw5().to(torch.float32)
    assert d.sample(4).dtype == torch.float32
    with pytest.raises(TypeError, match="dtype"):
        mog8().to(torch.int64)


# ------------------------------------------------------------------------------ logistic


def test_logistic_regression_density_gradient_and_test_metric():
    t = logistic_regression(n_train=60, dim=4, seed=3, n_test=30)
    assert t.x_train.shape == (60, 3) and t.x_test.shape == (30, 3) and t.true_weights.shape == (4,)
    w = torch.randn(5, 4, dtype=torch.float64, generator=_gen(1))
    logits = w[:, :3] @ t.x_train.T + w[:, 3:]
    ll = torch.distributions.Bernoulli(logits=logits).log_prob(t.y_train).sum(-1)
    prior = torch.distributions.Normal(0.0, torch.tensor([1.0, 1.0, 1.0, 2.5], dtype=torch.float64))
    assert torch.allclose(t.log_prob(w), ll + prior.log_prob(w).sum(-1))
    lp, g = t.log_prob_and_grad(w)
    assert torch.allclose(g, Target.log_prob_and_grad(t, w)[1])
    one = t.true_weights[None]
    assert t.test_log_likelihood(one) == pytest.approx(t.test_log_likelihood(one, kind="predictive"))
    assert t.test_log_likelihood(one, include_prior=True) == pytest.approx(
        t.test_log_likelihood(one) + float(t.log_prior(one)))
    assert t.test_log_likelihood(one) > t.test_log_likelihood(torch.zeros(1, 4, dtype=torch.float64))
    with pytest.raises(NotImplementedError, match="no exact sampler"):
        t.sample(3)
    with pytest.raises(ValueError, match="kind"):
        t.test_log_likelihood(one, kind="bad")


# ------------------------------------------------------------------------------ adapters


def test_as_target_torch_and_pyro_distributions():
    import pyro.distributions as pdist

    mvn = torch.distributions.MultivariateNormal(torch.zeros(3, dtype=torch.float64),
                                                 torch.eye(3, dtype=torch.float64) * 2)
    t = as_target(mvn)
    assert t.dim == 3 and t.log_z == 0.0 and t.has_exact_samples and t.dtype == torch.float64
    x = torch.randn(5, 3, dtype=torch.float64, generator=_gen())
    assert torch.allclose(t.log_prob(x), mvn.log_prob(x)) and torch.allclose(t.grad_log_prob(x), -x / 2)
    s1, s2 = t.sample(4, generator=_gen(1)), t.sample(4, generator=_gen(1))
    assert s1.shape == (4, 3) and torch.equal(s1, s2)
    p = as_target(pdist.Normal(torch.zeros(2), 1.0).to_event(1))
    assert p.dim == 2 and p.dtype == torch.float32
    assert torch.allclose(p.log_prob(torch.zeros(2)), torch.tensor(-math.log(2 * math.pi)))
    scalar = as_target(pdist.Gamma(2.0, 1.0))
    assert scalar.dim == 1 and scalar.sample(3).shape == (3, 1)
    assert torch.allclose(scalar.log_prob(torch.ones(4, 1)), torch.full((4,), -1.0))
    with pytest.raises(ValueError, match="batch_shape"):
        as_target(torch.distributions.Normal(torch.zeros(3), 1.0))
    with pytest.raises(ValueError, match="does not match"):
        as_target(mvn, dim=2)
    assert as_target(t) is t


def test_as_target_duck_typed_and_callable_and_errors():
    from sciml.testing import StandardNormalTarget

    d = as_target(StandardNormalTarget(3))
    x = torch.randn(6, 3, dtype=torch.float64, generator=_gen())
    assert d.dim == 3 and torch.allclose(d.grad_log_prob(x), -x) and d.sample(5).shape == (5, 3)
    c = as_target(lambda z: -0.5 * (z**2).sum(-1), dim=3)
    assert torch.allclose(c.grad_log_prob(x), -x) and not c.has_exact_samples
    with pytest.raises(TypeError, match="dim="):
        as_target(lambda z: z.sum(-1))

    class NoDim:
        def log_prob(self, z):
            return -(z**2).sum(-1)

    assert as_target(NoDim(), dim=3).dim == 3
    with pytest.raises(TypeError, match="dim attribute"):
        as_target(NoDim())
    with pytest.raises(TypeError, match="Distribution"):
        as_target(3.0)
    with pytest.raises(ValueError, match=r"expected \(6,\)"):
        as_target(lambda z: z, dim=3).log_prob(x)
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 3\)"):
        c.log_prob(torch.zeros(4, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="not finite"):
        check_target(as_target(lambda z: z.sum(-1) * float("nan"), dim=3))
    assert check_target(mog8()).shape == (2,)


def test_pyro_model_adapter_constrained_scale():
    import pyro
    import pyro.distributions as pdist

    y = torch.tensor([0.3, -1.2, 2.0, 0.7], dtype=torch.float64)

    def model(data):
        scale = pyro.sample("scale", pdist.HalfNormal(torch.tensor(2.0, dtype=torch.float64)))
        loc = pyro.sample("loc", pdist.Normal(torch.zeros(2, dtype=torch.float64), 1.0).to_event(1))
        with pyro.plate("n", len(data)):
            pyro.sample("obs", pdist.Normal(loc[0] + loc[1], scale), obs=data)

    t = from_pyro_model(model, y)
    assert t.site_names == ["scale", "loc"] and t.dim == 3 and t.dtype == torch.float64
    u = torch.randn(7, 3, dtype=torch.float64, generator=_gen(2))
    s, loc = torch.exp(u[:, 0]), u[:, 1:]
    # hand-derived unconstrained log density: log p(s) + log p(loc) + log p(y | loc, s) + log|ds/du|
    hand = (math.log(2) - 0.5 * math.log(2 * math.pi) - math.log(2.0) - 0.5 * (s / 2) ** 2
            - 0.5 * (loc**2).sum(-1) - math.log(2 * math.pi)
            + (-0.5 * ((y - (loc[:, :1] + loc[:, 1:])) / s[:, None]) ** 2 - torch.log(s[:, None])
               - 0.5 * math.log(2 * math.pi)).sum(-1)
            + u[:, 0])
    assert torch.allclose(t.log_prob(u), hand, rtol=1e-12)
    assert t.log_prob(u.reshape(7, 1, 3)).shape == (7, 1)
    lp, g = t.log_prob_and_grad(u)
    eps = 1e-6
    fd = (t.log_prob(u + eps * torch.eye(3, dtype=torch.float64)[1]) - t.log_prob(
        u - eps * torch.eye(3, dtype=torch.float64)[1])) / (2 * eps)
    assert torch.allclose(g[:, 1], fd, rtol=1e-6)
    cons = t.to_constrained(u)
    assert torch.allclose(cons["scale"], s) and torch.allclose(cons["loc"], loc)
    assert t.initial_point.shape == (3,)
    # ``loc[0]`` indexes from the left: the batched trace would be wrong, so every point is one trace
    assert t.vectorized is False


def test_pyro_model_adapter_batches_a_broadcasting_model():
    import pyro
    import pyro.distributions as pdist

    y = torch.tensor([0.3, -1.2, 2.0, 0.7, 1.1], dtype=torch.float64)

    def model(data):
        scale = pyro.sample("scale", pdist.HalfNormal(torch.tensor(2.0, dtype=torch.float64)))
        loc = pyro.sample("loc", pdist.Normal(torch.zeros(2, dtype=torch.float64), 1.0).to_event(1))
        w = pyro.sample("w", pdist.Dirichlet(torch.ones(3, dtype=torch.float64)))
        with pyro.plate("groups", 2):
            shift = pyro.sample("shift", pdist.Normal(torch.tensor(0.0, dtype=torch.float64), 1.0))
        with pyro.plate("n", len(data)):
            mean = loc[..., 0] + loc[..., 1] * w[..., 0] + shift.sum(-1, keepdim=True)
            pyro.sample("obs", pdist.Normal(mean, scale), obs=data)

    t = from_pyro_model(model, y)
    assert t.vectorized is True and t.dim == 1 + 2 + 2 + 2
    u = torch.randn(6, t.dim, dtype=torch.float64, generator=_gen(3))
    lp, g = t.log_prob_and_grad(u)
    # pyro's own potential, one trace per point, is the reference; the same operations summed in another
    # order over a handful of terms of size ~10: round-off ~1e-14 relative
    t.chunk_size = 4  # two batched traces (4 + 2 points) give the same values and gradients
    lp_chunked, g_chunked = t.log_prob_and_grad(u)
    assert torch.allclose(lp, lp_chunked, rtol=1e-12, atol=1e-12) and torch.allclose(g, g_chunked, rtol=1e-10, atol=1e-12)
    assert torch.allclose(t.log_prob(u.reshape(2, 3, -1)).reshape(-1), lp, rtol=1e-12, atol=1e-12)
    t.vectorized = False
    lp_loop, g_loop = t.log_prob_and_grad(u)
    assert torch.allclose(lp, lp_loop, rtol=1e-12, atol=1e-12)
    assert torch.allclose(g, g_loop, rtol=1e-10, atol=1e-12)


def test_pyro_model_adapter_gives_minus_inf_where_a_transform_underflows():
    import pyro
    import pyro.distributions as pdist

    def model():
        z = pyro.sample("z", pdist.LogNormal(torch.tensor(0.0, dtype=torch.float64), 1.0))
        pyro.sample("obs", pdist.Normal(z, 1.0), obs=torch.tensor(1.0, dtype=torch.float64))

    t = from_pyro_model(model)
    x = torch.tensor([[0.0], [-800.0]], dtype=torch.float64)  # exp(-800) = 0: the edge of the support
    lp, g = t.log_prob_and_grad(x)
    assert torch.isfinite(lp[0]) and lp[1] == -math.inf  # no validation error from pyro
    with pytest.raises(ValueError):  # the model itself is still validated when the target is built
        from_pyro_model(lambda: pyro.sample("s", pdist.Normal(torch.tensor(0.0), -1.0)))


def test_subclass_with_wrong_output_shape_is_reported():
    class Bad(Target):
        def log_prob(self, x):
            return x.sum()

    with pytest.raises(ValueError, match="expected"):
        Bad(2).log_prob_and_grad(torch.zeros(3, 2, dtype=torch.float64))
    with pytest.raises(NotImplementedError, match="no exact sampler"):
        Bad(2).sample(2)
    with pytest.raises(ValueError, match="n must be >= 1"):
        mog8().sample(0)


def test_funnel_scale_variant_and_distribution_to():
    from sciml.targets import Funnel

    t = Funnel(10, scale=3**0.5)
    x = t.sample(20_000, generator=_gen(11))
    assert _ks_p(x[:, 0], stats.norm(0, 3**0.5).cdf) > P_MIN
    d = as_target(torch.distributions.MultivariateNormal(torch.zeros(2), torch.eye(2))).to(torch.float64)
    z = torch.ones(3, 2, dtype=torch.float64)
    assert d.log_prob(z).dtype == torch.float64 and d.sample(2).dtype == torch.float64


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["8-mog", "10-mos", "rings", "funnel", "dw5", "many-well-32"])
def test_targets_on_cuda_match_cpu(name):
    cpu = TARGETS[name]()
    gpu = cpu.to(device="cuda")
    x = cpu.sample(64, generator=_gen(12))
    y = gpu.sample(64, generator=_gen(12))  # CPU generator: same draws, moved to the GPU
    assert y.device.type == "cuda" and torch.allclose(y.cpu(), x, rtol=1e-12, atol=1e-12)
    lp, g = gpu.log_prob_and_grad(y)
    assert torch.allclose(lp.cpu(), cpu.log_prob(x), rtol=1e-10) and torch.allclose(
        g.cpu(), cpu.grad_log_prob(x), rtol=1e-10, atol=1e-10)


def test_a_log_prob_autograd_cannot_trace_is_an_error_not_a_zero_gradient():
    untraced = as_target(lambda x: torch.as_tensor(-0.5 * (x.detach().numpy() ** 2).sum(-1)), dim=2)
    with pytest.raises(ValueError, match="autograd cannot trace back to its input"):
        untraced.log_prob_and_grad(torch.arange(6, dtype=torch.float64).reshape(3, 2))  # values that differ
    nowhere = as_target(lambda x: torch.full(x.shape[:-1], -math.inf, dtype=x.dtype), dim=2)
    lp, g = nowhere.log_prob_and_grad(torch.ones(3, 2))  # zero density everywhere: no gradient to give
    assert torch.equal(g, torch.zeros(3, 2)) and bool(torch.isinf(lp).all())


def test_integer_points_are_refused_not_truncated():
    t = as_target(torch.distributions.MultivariateNormal(torch.zeros(2), torch.eye(2)))
    with pytest.raises(TypeError, match="x must be a real floating tensor, got torch.int64"):
        t.log_prob(torch.ones(3, 2, dtype=torch.long))
    with pytest.raises(TypeError, match="got torch.complex64"):
        funnel().log_prob(torch.zeros(3, 10, dtype=torch.complex64))


def test_a_continuous_site_that_follows_an_enumerated_discrete_one_is_refused():
    import pyro
    import pyro.distributions as dist

    def model():
        z = pyro.sample("z", dist.Categorical(torch.ones(3) / 3))
        x = pyro.sample("x", dist.Normal(z.float(), 1.0))  # x's shape follows z's enumeration
        pyro.sample("y", dist.Normal(x, 1.0), obs=torch.tensor(1.0))

    with pytest.raises(ValueError, match="continuous site 'x' has shape \\(\\) in a plain run"):
        from_pyro_model(model)


def test_duck_dims_are_not_coerced_and_discrete_distributions_are_refused():
    class Duck:
        dim = 2.5

        def log_prob(self, x):
            return -0.5 * (x * x).sum(-1)

    with pytest.raises(TypeError, match="Duck.dim must be an int, got float"):
        as_target(Duck())  # int() made it 2
    with pytest.raises(TypeError, match="Bernoulli is a discrete distribution"):
        as_target(torch.distributions.Bernoulli(0.3))


@pytest.mark.parametrize("delta", [0.0, 0.3, 3.0, 100.0, 1e4, 3e4, 1e6])
def test_double_well_log_z_against_mpmath(delta):
    """The closed form against mpmath's quadrature split at the wells (a grid quadrature missed the
    wells once they were narrower than its spacing: 0.56 nats off at delta = 1e4)."""
    with mpmath.workdps(30):
        root, width = mpmath.sqrt(delta), 1 / mpmath.sqrt(8 * max(delta, 1.0))
        points = [0, 1, mpmath.inf] if delta == 0 else [0, root / 2, root - 20 * width, root, root + 20 * width,
                                                        mpmath.inf]
        ref = float(mpmath.log(2 * mpmath.quad(lambda x: mpmath.exp(-(x * x - delta) ** 2), points)))
    assert DoubleWell(1, 1, delta).log_z == pytest.approx(ref, abs=1e-12)  # float64 Bessel functions: ~1e-15


@pytest.mark.parametrize("df", [3.0, 2e3, 2e4, 1e12, 1e300])
def test_student_t_normaliser_for_any_df(df):
    """The 1-D Student t log-density at 0 against mpmath; df = 1e300 is the Gaussian (-0.919 per coordinate),
    where the difference of two lgammas had lost every digit (-692 for a 2-D zero)."""
    with mpmath.workdps(60):  # 60 digits resolve (nu + 1) / 2 up to nu ~ 1e40; beyond, the Gaussian limit
        nu = mpmath.mpf(df)
        ref = (float(mpmath.loggamma((nu + 1) / 2) - mpmath.loggamma(nu / 2) - mpmath.log(nu * mpmath.pi) / 2)
               if df < 1e40 else -0.5 * math.log(2 * math.pi))
    lp = float(StudentTMixture(torch.zeros(1, 2, dtype=torch.float64), df=df).log_prob(torch.zeros(1, 2,
                                                                                              dtype=torch.float64)))
    assert lp == pytest.approx(2 * ref, abs=1e-11)  # lgamma's absolute error near 1e3 is ~1e-12


def test_a_constant_density_has_zero_gradient_and_a_distribution_need_not_declare_its_support():
    box = as_target(torch.distributions.Independent(torch.distributions.Uniform(torch.zeros(2), torch.ones(2)), 1))
    _, g = box.log_prob_and_grad(torch.full((4, 2), 0.5))  # log_prob has no path to x: constant, not a bug
    assert torch.equal(g, torch.zeros(4, 2))

    class Bare(torch.distributions.Distribution):  # no support declared: torch raises NotImplementedError
        def __init__(self):
            super().__init__(event_shape=torch.Size([2]), validate_args=False)

        def log_prob(self, x):
            return -0.5 * (x * x).sum(-1)

    assert as_target(Bare()).dim == 2
    assert math.isfinite(DoubleWell(1, 1, 1e-160).log_z)  # delta^2 / 2 underflows: the delta = 0 value
