"""Variational flows (planar / radial / zuko NSF), the 2-D flow energies and the kernel Stein discrepancy."""

from __future__ import annotations

import math

import pytest
import torch
from sciml_plugins.flows import InverseError, PlanarLayer, RadialLayer

import sciml
from sciml.metrics import ksd
from sciml.targets import Banana, GaussianMixture, MixFlowsFunnel, TargetError, as_target, banana, energy

EPS = torch.finfo(torch.float64).eps


def _layer(kind: type, dim: int, seed: int, scale: float = 1.0) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    layer = kind(dim, init_scale=scale, generator=g)
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return layer


@pytest.mark.parametrize("kind", [PlanarLayer, RadialLayer])
@pytest.mark.parametrize("dim", [1, 2, 5])
def test_log_det_matches_autograd_jacobian(kind, dim):
    layer = _layer(kind, dim, seed=dim, scale=1.5)
    z = 2 * torch.randn(20, dim, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        _, log_det = layer(z)
    for i in range(z.shape[0]):
        jac = torch.autograd.functional.jacobian(lambda v: layer(v[None])[0][0], z[i])
        sign, ref = torch.linalg.slogdet(jac)
        assert float(sign) > 0  # orientation preserving: invertible by construction
        # entries of J are O(1 + |u|), so slogdet is accurate to ~dim * eps * cond(J)
        tol = 100 * dim * EPS * float(torch.linalg.cond(jac))
        assert abs(float(log_det[i] - ref)) <= tol


@pytest.mark.parametrize("kind", [PlanarLayer, RadialLayer])
@pytest.mark.parametrize("scale", [0.5, 3.0])
def test_inverse_of_forward_is_identity(kind, scale):
    layer = _layer(kind, 3, seed=7, scale=scale)
    z = 4 * torch.randn(500, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    x, _ = layer(z)
    back = layer.inverse(x)
    # the 1-D solve is at round-off of |a| ~ |w||z|; the map's inverse Lipschitz constant is bounded here
    assert float((back - z).abs().max()) <= 1e3 * EPS * (1 + float(z.abs().max())) * (1 + scale) ** 2


def test_planar_inverse_reports_non_convergence():
    layer = _layer(PlanarLayer, 2, seed=3, scale=3.0)
    x = layer(torch.full((4, 2), 5.0, dtype=torch.float64))[0]
    with pytest.raises(InverseError, match="did not converge"):
        layer.inverse(x, max_iter=1)


def _gaussian_kl(q, mean: torch.Tensor, cov: torch.Tensor, n: int = 4000) -> float:
    target = torch.distributions.MultivariateNormal(mean, cov)
    x, lq = q.sample_and_log_prob(n, generator=torch.Generator().manual_seed(11))
    return float((lq - target.log_prob(x)).mean())


@pytest.mark.parametrize("name", ["planar-flow", "radial-flow", "nsf-flow"])
def test_fit_to_gaussian_log_prob_anywhere_and_counts(name):
    mean = torch.tensor([1.0, -2.0], dtype=torch.float64)
    cov = torch.tensor([[2.0, 1.2], [1.2, 1.0]], dtype=torch.float64)
    target = torch.distributions.MultivariateNormal(mean, cov)
    flow = sciml.load("sampler", name)
    kwargs = {"num_layers": 4} if name != "nsf-flow" else {"transforms": 1, "hidden_features": (16,)}
    q = flow(num_steps=300, batch_size=128, lr=2e-2 if name != "nsf-flow" else 5e-3, **kwargs).fit(
        target, generator=torch.Generator().manual_seed(0))
    assert isinstance(q, torch.distributions.Distribution)
    assert q.diagnostics["n_grad_evals"] == 300 * 128
    # the best mean-field Gaussian leaves KL = 0.5 log(1 / (1 - rho^2)) = 0.51 (rho^2 = 0.72); planar and
    # spline layers remove most of it, radial layers (isotropic about a centre) only some
    assert _gaussian_kl(q, mean, cov) < (0.48 if name == "radial-flow" else 0.1)
    x = q.sample((3, 5), generator=torch.Generator().manual_seed(1))
    assert x.shape == (3, 5, 2)
    x, lq = q.sample_and_log_prob(200, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(q.log_prob(x), lq, rtol=0, atol=1e-10)
    far = torch.tensor([[30.0, -40.0], [0.0, 0.0]], dtype=torch.float64)  # points it never sampled
    assert torch.isfinite(q.log_prob(far)).all()
    assert q.elbo(500, generator=torch.Generator().manual_seed(3)) <= 0.05  # log Z = 0
    s = flow(num_steps=20, **kwargs).sample(target, 50, generator=torch.Generator().manual_seed(0))
    assert s.x.shape == (50, 2) and s.n_grad_evals == 20 * 256


def test_planar_density_integrates_to_one():
    target = energy(2)
    q = sciml.load("sampler", "planar-flow")(8, num_steps=200, lr=1e-2).fit(
        target, generator=torch.Generator().manual_seed(0))
    h = 0.05
    g = torch.arange(-12, 12 + h / 2, h, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    mass = float(torch.exp(q.log_prob(grid)).sum()) * h * h
    assert abs(mass - 1) < 1e-3


def test_same_generator_same_fit():
    target = banana()
    flow = sciml.load("sampler", "radial-flow")(4, num_steps=30)
    a = flow.sample(target, 10, generator=torch.Generator().manual_seed(5))
    b = flow.sample(target, 10, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a.x, b.x)


def test_non_finite_target_mid_fit_names_step_and_point():
    def log_prob(x):
        return torch.where(x[:, 0] > 3.0, torch.full_like(x[:, 0], float("nan")), -0.5 * (x * x).sum(-1))

    target = as_target(log_prob, dim=2)
    flow = sciml.load("sampler", "planar-flow")(2, num_steps=50, batch_size=4096)
    with pytest.raises(TargetError, match=r"nan at step \d+, point \["):
        flow.fit(target, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("kwargs", [{"num_layers": 0}, {"num_steps": 0}, {"lr": -1.0}, {"batch_size": 1.5},
                                    {"anneal_steps": 10, "num_steps": 10}, {"anneal_steps": -1}])
def test_invalid_hyper_parameters(kwargs):
    with pytest.raises((ValueError, TypeError)):
        sciml.load("sampler", "planar-flow")(**kwargs)


def test_log_prob_rejects_bad_points():
    q = sciml.load("sampler", "radial-flow")(2, num_steps=5).fit(banana(), generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 2\)"):
        q.log_prob(torch.zeros(4, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="value"):
        q.log_prob(torch.tensor([[0.0, float("nan")]], dtype=torch.float64))
    with pytest.raises(TypeError, match="value must be a real tensor, got torch.complex128"):
        q.log_prob(torch.zeros(4, 2, dtype=torch.complex128))
    assert q.log_prob(torch.zeros(0, 2, dtype=torch.float64)).shape == (0,)


@pytest.mark.parametrize("name", ["planar-flow", "nsf-flow"])
def test_sample_shapes_are_checked_and_empty_queries_are_empty(name):
    q = sciml.load("sampler", name)(num_steps=3).fit(banana(), generator=torch.Generator().manual_seed(0))
    assert q.sample((2, 3)).shape == (2, 3, 2) and q.sample((0,)).shape == (0, 2)
    assert q.log_prob(torch.zeros(0, 2, dtype=torch.float64)).shape == (0,)
    with pytest.raises(ValueError, match=r"non-negative sizes, got \(2, -1\)"):
        q.sample((2, -1))
    with pytest.raises(TypeError, match="sample_shape must be a tuple of ints such as \\(n,\\), got 3"):
        q.sample(3)


# ---------------------------------------------------------------------------------- targets
def _grid_mass(target, lo1, hi1, lo2, hi2, h):
    g1 = torch.arange(lo1, hi1 + h / 2, h, dtype=torch.float64)
    g2 = torch.arange(lo2, hi2 + h / 2, h, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(g1, g2, indexing="ij"), -1)
    return float(torch.exp(target.log_prob(grid)).sum()) * h * h


def test_banana_and_funnel_log_prob_are_their_normalised_constructions():
    x = 5 * torch.randn(200, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

    def normal(loc, scale):
        return torch.distributions.Normal(torch.as_tensor(loc, dtype=torch.float64), scale)

    b = Banana()
    ref = normal(0.0, torch.tensor(10.0, dtype=torch.float64)).log_prob(x[:, 0]) + normal(0.0, torch.tensor(1.0, dtype=torch.float64)).log_prob(x[:, 1] - 0.1 * (x[:, 0] ** 2 - 100))
    assert torch.allclose(b.log_prob(x), ref, rtol=0, atol=1e-11)  # terms up to ~1e3: round-off ~1e-13
    f = MixFlowsFunnel()
    ref = normal(9.0, torch.tensor(6.0, dtype=torch.float64)).log_prob(x[:, 0]) + normal(0.0, torch.exp(x[:, 0] / 4)).log_prob(x[:, 1])
    assert torch.allclose(f.log_prob(x), ref, rtol=0, atol=1e-11)  # terms up to ~1e3: round-off ~1e-13
    assert abs(_grid_mass(b, -80, 80, -120, 700, 0.05) - 1) < 1e-6  # the banana's window holds all but 1e-15


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_energy_samples_match_quadrature(k):
    target = energy(k)
    x = target.sample(20000, generator=torch.Generator().manual_seed(k))
    h = 0.01
    g1 = torch.arange(-5.5, 5.5 + h / 2, h, dtype=torch.float64)
    g2 = torch.arange(-7, 7 + h / 2, h, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(g1, g2, indexing="ij"), -1)
    w = torch.exp(target.log_prob(grid) - target.log_z) * h * h
    assert abs(float(w.sum()) - 1) < 1e-10
    mean = (w[..., None] * grid).sum((0, 1))
    se = x.std(0) / math.sqrt(x.shape[0])
    assert ((x.mean(0) - mean).abs() <= 4.5 * se).all()


def test_energy_rejects_bad_index():
    with pytest.raises(ValueError, match="k must be"):
        energy(5)


# ---------------------------------------------------------------------------------- KSD
def _brute_ksd(x, log_p, c, beta):
    n, d = x.shape
    total = 0.0
    for i in range(n):
        for j in range(n):
            xi, xj = x[i].clone().requires_grad_(), x[j].clone().requires_grad_()
            si = torch.autograd.grad(log_p(xi), xi)[0]
            sj = torch.autograd.grad(log_p(xj), xj)[0]
            k = (c * c + ((xi - xj) ** 2).sum()) ** -beta
            gx, gy = torch.autograd.grad(k, (xi, xj), create_graph=True)
            trace = sum(torch.autograd.grad(gy[a], xi, retain_graph=True)[0][a] for a in range(d))
            total += float((si @ sj * k + si @ gy + sj @ gx + trace).detach())
    return math.sqrt(total) / n


@pytest.mark.parametrize(("c", "beta"), [(1.0, 0.5), (2.0, 0.3)])
def test_ksd_matches_brute_force(c, beta):
    x = 1.5 * torch.randn(10, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64) + 0.3

    def log_p(z):
        return -0.5 * (z * z).sum(-1) - 0.1 * (z**4).sum(-1)

    xs = x.clone().requires_grad_()
    score = torch.autograd.grad(log_p(xs).sum(), xs)[0]
    ref = _brute_ksd(x, log_p, c, beta)
    assert ksd(x, score, c=c, beta=beta) == pytest.approx(ref, rel=1e-12)
    assert ksd(x, score, c=c, beta=beta, block=3) == pytest.approx(ref, rel=1e-12)


def test_ksd_separates_exact_from_shifted_samples():
    target = GaussianMixture(torch.tensor([[0.0, 0.0]]), 1.0)
    x = target.sample(2000, generator=torch.Generator().manual_seed(0))
    exact = ksd(x, target.grad_log_prob(x))
    shifted = ksd(x + 0.5, target.grad_log_prob(x + 0.5))
    # exact samples: O(n^-1/2) (the V-statistic's diagonal alone gives sqrt((E|s|^2 + 2 beta d) / n) = 0.045)
    assert exact < 0.1 and shifted > 4 * exact


def test_ksd_rejects_mismatched_score():
    with pytest.raises(ValueError, match="score"):
        ksd(torch.zeros(5, 2), torch.zeros(5, 3))
