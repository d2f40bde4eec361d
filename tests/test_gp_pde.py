"""Tests of the gp-pde solver plugin (GP-HM) against manufactured solutions and closed forms."""

from __future__ import annotations

import math

import pytest
import torch
from sciml_plugins.gp_pde import (
    DifferentialOperator,
    GPPDESolution,
    GPPDESolver,
    PDEProblem,
    derivatives_at_zero,
    grid_points,
    laplacian,
    manufactured_problem,
    mixture_kernel,
)

import sciml
from sciml.kernels import Kronecker
from sciml.testing import check_solver

F64 = torch.float64


def _sin100(x: torch.Tensor) -> torch.Tensor:
    return torch.sin(100 * x[:, 0])


@pytest.fixture(scope="module")
def solved_1d() -> tuple[PDEProblem, GPPDESolution]:
    prob = manufactured_problem(_sin100, "laplacian", domain=[(0.0, 1.0)], grid=120)
    sol = GPPDESolver(freq_scale=20, jitter=1e-9, max_evals=40, progress=False).solve(prob)
    return prob, sol


def test_load_through_registry() -> None:
    assert sciml.load("solver", "gp-pde") is GPPDESolver


@pytest.mark.parametrize("family", ["gm", "stm"])
def test_kernel_derivatives_closed_form(family: str) -> None:
    gen = torch.Generator().manual_seed(0)
    q = 4
    log_w = torch.randn(q, generator=gen, dtype=F64)
    mu = 3 * torch.rand(q, generator=gen, dtype=F64)
    log_ls = 0.3 * torch.randn(q, generator=gen, dtype=F64)
    tau = torch.linspace(-2, 2, 41, dtype=F64)  # includes tau = 0
    k0, k1, k2 = (mixture_kernel(tau, log_w, mu, log_ls, m, family) for m in range(3))
    h = 1e-4
    fd1 = (mixture_kernel(tau + h, log_w, mu, log_ls, 0, family) - mixture_kernel(tau - h, log_w, mu, log_ls, 0, family)) / (2 * h)
    fd2 = (mixture_kernel(tau + h, log_w, mu, log_ls, 1, family) - mixture_kernel(tau - h, log_w, mu, log_ls, 1, family)) / (2 * h)
    assert torch.allclose(k1, fd1, atol=1e-6 * k0.abs().max())
    assert torch.allclose(k2, fd2, atol=1e-5 * k2.abs().max())
    # closed form at zero: k(0) = sum w; k''(0) = -sum w (1/l^2 + (2 pi mu)^2) for gm, 5/(3 l^2) for stm
    w = log_w.exp()
    c = 1.0 if family == "gm" else 5.0 / 3.0
    want = -(w * (c * torch.exp(-2 * log_ls) + (2 * math.pi * mu) ** 2)).sum()
    assert torch.isclose(k0[20], w.sum()) and torch.isclose(k2[20], want)
    # k(0), k^(2)(0), k^(4)(0) in closed form (the solver's data scale); k^(4) against a central difference of
    # k^(2) (truncation h^2 k^(6) / 12: about 3e-5 relative here, |2 pi mu| <= 19; rounding eps |k^(2)| / h^2: 1e-7)
    at0 = derivatives_at_zero(log_w, mu, log_ls, family)
    h4 = 1e-3
    d2 = mixture_kernel(torch.tensor([-h4, 0.0, h4], dtype=F64), log_w, mu, log_ls, 2, family)
    fd4 = float((d2[0] - 2 * d2[1] + d2[2]) / h4**2)
    assert math.isclose(at0[0], float(k0[20]), rel_tol=1e-14) and math.isclose(at0[2], float(k2[20]), rel_tol=1e-12)
    assert math.isclose(at0[4], fd4, rel_tol=1e-3) and at0[1] == at0[3] == 0.0


def test_poisson_1d_high_frequency(solved_1d: tuple[PDEProblem, GPPDESolution]) -> None:
    prob, sol = solved_1d
    assert sol.relative_l2(_sin100) <= 1e-5
    # the learned spectrum keeps a component at the solution's frequency 100 / (2 pi)
    spec = sol.spectrum()[0]
    assert abs(float(spec["mu"][0]) - 100 / (2 * math.pi)) < 0.05
    assert sol.loss_history and sol.diagnostics["n_grad_evals"] > 0


def test_derivatives_and_residual(solved_1d: tuple[PDEProblem, GPPDESolution]) -> None:
    prob, sol = solved_1d
    x = torch.linspace(0.05, 0.95, 201, dtype=F64)[:, None]
    du = sol.derivative(x, [1])
    d2u = sol.derivative(x, [2])
    exact1 = 100 * torch.cos(100 * x[:, 0])
    exact2 = -1e4 * torch.sin(100 * x[:, 0])
    assert (du - exact1).norm() / exact1.norm() < 1e-4
    assert (d2u - exact2).norm() / exact2.norm() < 1e-3
    res = sol.residual(x)
    assert res.abs().max() / 1e4 < 1e-3
    assert sol.boundary_error(torch.tensor([[0.0], [1.0]], dtype=F64)).abs().max() < 1e-5


def test_posterior_std_closed_form(solved_1d: tuple[PDEProblem, GPPDESolution]) -> None:
    prob, sol = solved_1d
    axis = sol.axes[0]
    # at collocation points (the boundary included) the std is ~0 relative to the prior std
    prior = math.sqrt(float(sol.params[0]["log_w"].exp().sum()))
    assert sol.std(axis[[0, 5, -1], None]).max() < 1e-3 * prior
    # between grid points it matches the dense GP formula k(x,x) - k(x,X) (K + jitter)^{-1} k(X,x)
    x = (0.5 * (axis[10:13] + axis[11:14]))[:, None]
    p = sol.params[0]
    kxx = mixture_kernel(torch.zeros(3, dtype=F64), p["log_w"], p["mu"], p["log_ls"])
    kxX = mixture_kernel(x - axis[None, :], p["log_w"], p["mu"], p["log_ls"])
    K = mixture_kernel(axis[:, None] - axis[None, :], p["log_w"], p["mu"], p["log_ls"])
    K = K + sol.jitter * K[0, 0] * torch.eye(K.shape[0], dtype=F64)
    var = kxx - (kxX * torch.linalg.solve(K, kxX.T).T).sum(-1)
    got = sol.std(x)
    assert torch.allclose(got, var.clamp_min(0).sqrt(), rtol=1e-3, atol=1e-8 * prior)
    # a coarse grid leaves visible uncertainty between collocation points, none at them
    coarse = GPPDESolver(freq_scale=3, max_evals=0, progress=False).solve(
        manufactured_problem(lambda x: torch.sin(3 * x[:, 0]), "laplacian", domain=[(0.0, 1.0)], grid=9))
    nodes = coarse.axes[0][:, None]
    mids = 0.5 * (nodes[1:] + nodes[:-1])
    # (at the nodes only the jitter floor sqrt(jitter * k(0)) remains)
    assert coarse.std(nodes).max() < 1e-2 * coarse.std(mids).min()


def test_poisson_2d() -> None:
    def u(x: torch.Tensor) -> torch.Tensor:
        return torch.sin(10 * x[:, 0]) * torch.sin(10 * x[:, 1])

    prob = manufactured_problem(u, "laplacian", domain=[(0.0, 1.0)] * 2, grid=24)
    sol = GPPDESolver(freq_scale=3, jitter=1e-7, max_evals=40, progress=False).solve(prob)
    assert sol.relative_l2(u) <= 1e-5
    x = torch.rand(50, 2, generator=torch.Generator().manual_seed(1), dtype=F64)
    dux = sol.derivative(x, [1, 0])
    exact = 10 * torch.cos(10 * x[:, 0]) * torch.sin(10 * x[:, 1])
    assert (dux - exact).norm() / exact.norm() < 1e-3
    # scattered evaluation agrees with the tensor-grid evaluation up to rounding
    axes = [torch.linspace(0, 1, 7, dtype=F64)] * 2
    diff = (sol(grid_points(axes)) - sol.on_grid(axes).reshape(-1)).abs().max()
    assert diff <= _evaluation_rounding_bound(sol)


def _evaluation_rounding_bound(sol: GPPDESolution) -> float:
    """Bound on the difference of two summation orders of the posterior mean at one point.

    The mean is the sum of the ``N = prod n_j`` terms ``v_1[i] W[i, j] v_2[j]`` (whitened rows
    ``v_j = L_j^{-1} k_j(X_j, x_j)``, ``W = (L_1^{-1} kron L_2^{-1}) U``). By Cauchy-Schwarz their absolute
    sum is at most ``|v_1| |W|_F |v_2| <= sqrt(prod_j k_j(0) * U^T K^{-1} U)``; each evaluation is within
    ``N eps`` of that sum of the exact value, so two evaluations differ by at most ``2 N eps`` times it.
    (The unwhitened form ``k(x, X) K^{-1} U`` had terms of size ``|u| / jitter``: 1.6e8 here.)
    """
    kmats = []
    for a, p in zip(sol.axes, sol.params):
        k = mixture_kernel(a[:, None] - a[None, :], p["log_w"], p["mu"], p["log_ls"])
        kmats.append(k + sol.jitter * k[0, 0] * torch.eye(a.shape[0], dtype=F64))
    u = sol.values.reshape(-1)
    quad = float(u @ Kronecker(kmats).solve(u))
    k0 = math.prod(float(k[0, 0]) for k in kmats)
    n_terms = math.prod(sol.grid)
    return 2 * n_terms * torch.finfo(F64).eps * math.sqrt(k0 * quad)


def test_poisson_2d_high_frequency_fast_diagonalisation() -> None:
    # the paper's 2-D row: sin(100x) sin(100y) on [0, 2 pi]^2, 400 x 400 grid, initial kernel
    prob = manufactured_problem(lambda x: torch.sin(100 * x[:, 0]) * torch.sin(100 * x[:, 1]), "laplacian",
                                domain=[(0.0, 2 * math.pi)] * 2, grid=400)
    sol = GPPDESolver(freq_scale=20, jitter=1e-8, max_evals=0, progress=False).solve(prob)
    assert sol.diagnostics["path"] == "fast-diagonalisation"
    assert sol.relative_l2(prob.exact, n_test=300) <= 1e-5
    x = torch.rand(20, 2, generator=torch.Generator().manual_seed(2), dtype=F64) * 2 * math.pi
    lap = sol.derivative(x, [2, 0]) + sol.derivative(x, [0, 2])
    exact = -2e4 * prob.exact(x)
    assert (lap - exact).norm() / exact.norm() < 1e-3


def test_fast_diagonalisation_matches_dense() -> None:
    def u(x: torch.Tensor) -> torch.Tensor:
        return torch.sin(6 * x[:, 0]) * torch.cos(5 * x[:, 1])

    prob = manufactured_problem(u, "laplacian", domain=[(0.0, 1.0)] * 2, grid=20)
    kw = dict(freq_scale=3, jitter=1e-6, max_evals=0, progress=False)
    dense = GPPDESolver(**kw).solve(prob)
    fd = GPPDESolver(dense_limit=10, **kw).solve(prob)
    assert dense.diagnostics["path"] == "dense" and fd.diagnostics["path"] == "fast-diagonalisation"
    x = torch.rand(40, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    # the two interior solvers differ only in the metric of the (tiny) Tikhonov term
    assert (dense(x) - fd(x)).abs().max() < 1e-5
    assert dense.relative_l2(u) < 1e-3 and fd.relative_l2(u) < 1e-3


def test_student_t_mixture_kernel_learns() -> None:
    def u(x: torch.Tensor) -> torch.Tensor:
        return torch.sin(30 * x[:, 0])

    prob = manufactured_problem(u, "laplacian", domain=[(0.0, 1.0)], grid=60)
    start = GPPDESolver(kernel="stm", freq_scale=8, jitter=1e-9, max_evals=0, progress=False).solve(prob)
    fitted = GPPDESolver(kernel="stm", freq_scale=8, jitter=1e-9, max_evals=20, progress=False).solve(prob)
    assert fitted.relative_l2(u) < 1e-4
    assert fitted.relative_l2(u) < 0.2 * start.relative_l2(u)
    assert fitted.loss_history[-1] < fitted.loss_history[0]


def test_allen_cahn_1d_nonlinear() -> None:
    def u(x: torch.Tensor) -> torch.Tensor:
        return torch.sin(30 * x[:, 0])

    prob = manufactured_problem(u, "allen-cahn", domain=[(0.0, 1.0)], grid=60)
    sol = GPPDESolver(freq_scale=8, jitter=1e-9, max_evals=0, progress=False).solve(prob)
    assert sol.relative_l2(u) < 1e-4
    assert sol.diagnostics["newton_steps"] >= 1
    x = torch.linspace(0.1, 0.9, 30, dtype=F64)[:, None]
    assert sol.residual(x).abs().max() < 1e-2 * 900


def test_save_load_round_trip(solved_1d: tuple[PDEProblem, GPPDESolution], tmp_path) -> None:
    prob, sol = solved_1d
    path = tmp_path / "sol.pt"
    sol.save(path)
    back = GPPDESolution.load(path, problem=prob)
    x = torch.rand(30, 1, generator=torch.Generator().manual_seed(3), dtype=F64)
    assert torch.equal(sol(x), back(x))
    assert torch.equal(sol.std(x), back.std(x))
    assert back.loss_history == sol.loss_history
    assert torch.allclose(sol.residual(x), back.residual(x))


def test_conformance() -> None:
    prob = manufactured_problem(lambda x: torch.sin(3 * x[:, 0]), "laplacian", domain=[(0.0, 1.0)], grid=16)
    check_solver(GPPDESolver(freq_scale=2, max_evals=3, init_noise=0.1, progress=False), [prob],
                 torch.rand(10, 1, generator=torch.Generator().manual_seed(0), dtype=F64))


def test_bad_inputs() -> None:
    op = laplacian(2)
    dom = [(0.0, 1.0)] * 2
    bad_f = torch.zeros(8, 8, dtype=F64)
    bad_f[2, 3] = float("nan")
    with pytest.raises(ValueError, match="source"):
        PDEProblem(op, dom, [8, 8], bad_f, torch.zeros(28, dtype=F64))
    with pytest.raises(ValueError, match="boundary"):
        PDEProblem(op, dom, [8, 8], torch.zeros(8, 8, dtype=F64), torch.zeros(27, dtype=F64))
    with pytest.raises(ValueError, match="source"):
        PDEProblem(op, dom, [8, 8], torch.zeros(8, 7, dtype=F64), torch.zeros(28, dtype=F64))
    with pytest.raises(ValueError, match="domain"):
        PDEProblem(op, [(0.0, 1.0)], [8, 8], torch.zeros(8, 8, dtype=F64), torch.zeros(28, dtype=F64))
    with pytest.raises(ValueError, match="order"):
        DifferentialOperator({(3, 0): 1.0})
    with pytest.raises(TypeError, match="problem"):
        GPPDESolver(progress=False).solve("not a problem")
    with pytest.raises(ValueError, match="kernel"):
        GPPDESolver(kernel="rbf")
    with pytest.raises(ValueError, match="freq_scale"):
        GPPDESolver(freq_scale=-1.0)
    # a source function that returns NaN is caught before any solve
    prob = manufactured_problem(lambda x: torch.sqrt(x[:, 0] - 0.5), "laplacian", domain=[(0.0, 1.0)], grid=10)
    with pytest.raises(ValueError, match="non-finite"):
        GPPDESolver(freq_scale=2, max_evals=0, progress=False).solve(prob)
    # a grid too coarse for the kernel's frequencies: warning with the Nyquist limit
    prob = manufactured_problem(lambda x: torch.sin(x[:, 0]), "laplacian", domain=[(0.0, 1.0)], grid=11)
    with pytest.warns(UserWarning, match="Nyquist limit 5"):
        GPPDESolver(freq_scale=20, max_evals=0, progress=False).solve(prob)
    sol = GPPDESolver(freq_scale=2, max_evals=0, progress=False).solve(prob)
    with pytest.raises(ValueError, match="x must have shape"):
        sol(torch.zeros(3, 2, dtype=F64))


def test_posterior_mean_accurate_at_small_jitter() -> None:
    """Interpolating exact grid values: the mean uses a backward-stable solve for K^{-1} U.

    With an explicit inverse (``cholesky_inverse``) this error was 4.9e-5 at jitter 1e-10 and 3.6e-3 at
    1e-12 (absolute accuracy about eps / jitter); the stable solve keeps it near the kernel's own
    interpolation error.
    """
    grid = torch.linspace(0, 2 * math.pi, 400, dtype=F64)
    params = {"log_w": torch.zeros(1, dtype=F64), "mu": torch.tensor([100 / (2 * math.pi)], dtype=F64),
              "log_ls": torch.tensor([math.log(92.0)], dtype=F64)}
    x = torch.linspace(0, 2 * math.pi, 300, dtype=F64)[:, None]
    exact = torch.sin(100 * x[:, 0])
    for jitter in (1e-10, 1e-12):
        sol = GPPDESolution([grid], [params], "gm", jitter, torch.sin(100 * grid))
        assert (sol(x) - exact).norm() / exact.norm() < 1e-7


def test_pruning_and_boundary_on_the_mean() -> None:
    """Marginal-likelihood pruning removes the unneeded components; the Dirichlet data hold for the mean."""
    prob = manufactured_problem(_sin100, "laplacian", domain=[(0.0, 1.0)], grid=120)
    sol = GPPDESolver(freq_scale=20, max_evals=80, progress=False).solve(prob)
    # a pruning pass removed most of the 30 components; the heaviest, at the solution's frequency, carries
    # most of the weight (how many light ones survive depends on the L-BFGS path, i.e. on the BLAS
    # rounding: 1 with MKL's AVX-512 and AVX2 kernels, 3 with its SSE4.2 kernels)
    assert sol.diagnostics["components"] and sol.diagnostics["components"][-1][0] < 30
    spec = sol.spectrum()[0]
    assert abs(float(spec["mu"][0]) - 100 / (2 * math.pi)) < 0.05
    assert spec["weight"][0] > spec["weight"][1:].sum()
    assert sol.relative_l2(_sin100) < 1e-8
    # Dirichlet data imposed on the posterior mean (1-D default), not on the jittered grid values
    ends = torch.tensor([[0.0], [1.0]], dtype=F64)
    assert (sol(ends) - _sin100(ends)).abs().max() < 1e-9
    # every loss evaluation, pruning candidates included, is within the budget
    assert sol.diagnostics["n_grad_evals"] <= sol.diagnostics["n_evals"] <= 80


def _grid_problem(prob: PDEProblem, f: torch.Tensor, g: torch.Tensor) -> PDEProblem:
    return PDEProblem(prob.operator, prob.domain, prob.grid, f, g)


@pytest.fixture(scope="module")
def scale_reference() -> dict:
    """An unscaled linear problem and its solutions with a fixed kernel and after 10 L-BFGS steps."""
    prob = manufactured_problem(lambda x: torch.sin(3 * x[:, 0]), "laplacian", domain=[(0.0, 1.0)], grid=16)
    f, g = prob.grid_data()
    x = torch.linspace(0, 1, 301, dtype=F64)[:, None]
    out = {"f": f, "g": g, "prob": prob, "x": x, "exact": torch.sin(3 * x[:, 0])}
    for max_evals in (0, 10):
        out[max_evals] = GPPDESolver(freq_scale=2, max_evals=max_evals, progress=False).solve(
            _grid_problem(prob, f, g))(x)
    return out


def _scaled_solution(ref: dict, scale: float, max_evals: int) -> GPPDESolution:
    return GPPDESolver(freq_scale=2, max_evals=max_evals, progress=False).solve(
        _grid_problem(ref["prob"], scale * ref["f"], scale * ref["g"]))


@pytest.mark.parametrize("max_evals", [0, 10])
@pytest.mark.parametrize("log2_scale", [-20, -13, 2, 13, 66])
def test_scale_invariance_exact_for_powers_of_two(scale_reference: dict, log2_scale: int, max_evals: int) -> None:
    """Data scaled by ``s = 2^k`` (1e-6 .. 7e19): the solution is exactly ``s`` times the unscaled one.

    Scaling by a power of two commutes with rounding, the data scale ``c`` (a root of mean squares) becomes
    exactly ``s c`` and the normalised data are bitwise the unscaled ones, so the kernel fit follows the same
    path on any CPU. Before the data were normalised, ``s ~ 1e-4`` ended in a raw Cholesky error inside the
    kernel fit and ``s ~ 1e20`` returned about 0 (relative error 1.0).
    """
    ref, s = scale_reference, 2.0 ** log2_scale
    sol = _scaled_solution(ref, s, max_evals)
    assert torch.equal(sol(ref["x"]) / s, ref[max_evals])
    assert sol.diagnostics["data_scale"] > 0


@pytest.mark.parametrize("scale", [1e-6, 1e-4, 3.7, 1e4, 1e20])
def test_scale_invariance_relative_error(scale_reference: dict, scale: float) -> None:
    """Any other scale: the data ``s (f, g)`` are the unscaled data perturbed at the ulp level, which moves the
    fixed-kernel solution (a linear solve) by ~1e-10 at most, five orders below its error (1.4e-5): the relative
    error is the unscaled one to 1 %."""
    ref = scale_reference
    sol = _scaled_solution(ref, scale, 0)
    exact = ref["exact"]
    err_base = float((ref[0] - exact).norm() / exact.norm())
    err = float((sol(ref["x"]) - scale * exact).norm() / (scale * exact).norm())
    assert abs(err - err_base) <= 0.01 * err_base


def test_progress_convention(capsys) -> None:
    """``progress=None`` (default) is quiet when stderr is not a terminal; ``True`` shows the bar on stderr."""
    prob = manufactured_problem(lambda x: torch.sin(3 * x[:, 0]), "laplacian", domain=[(0.0, 1.0)], grid=12)
    GPPDESolver(freq_scale=2, max_evals=3).solve(prob)
    assert capsys.readouterr().err == ""
    GPPDESolver(freq_scale=2, max_evals=3, progress=True).solve(prob)
    assert "gp-pde" in capsys.readouterr().err
    with pytest.raises(TypeError, match="progress"):
        GPPDESolver(progress=1)
