"""Kronecker operator against dense torch computations (float64, d = 1..4, batched factors)."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from sciml.kernels import Kronecker

DT = torch.float64
SIZES = {1: [5], 2: [3, 4], 3: [2, 3, 4], 4: [2, 3, 2, 3]}


def _spd(n: int, batch: tuple[int, ...] = (), gen: torch.Generator | None = None) -> torch.Tensor:
    b = torch.randn(*batch, n, n, dtype=DT, generator=gen)
    return b @ b.mT / n + 0.3 * torch.eye(n, dtype=DT)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def _assert_close(a: torch.Tensor, b: torch.Tensor, rtol: float, atol: float) -> None:
    # (torch.testing.assert_close imports torch.distributed.tensor: seconds per test process)
    assert a.shape == b.shape, (a.shape, b.shape)
    err = (a - b).abs()
    bound = atol + rtol * b.abs()
    assert bool((err <= bound).all()), f"max abs err {float(err.max()):.3e}"


def _sym(fs):
    return [0.5 * (f + f.mT) for f in fs]


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(1234)


@pytest.mark.parametrize("d", [1, 2, 3, 4])
def test_matmul_solve_logdet_match_dense(d: int, gen: torch.Generator) -> None:
    fs = [_spd(n, gen=gen) for n in SIZES[d]]
    op = Kronecker(fs)
    dense = fs[0]
    for f in fs[1:]:
        dense = torch.kron(dense, f)
    n_tot = math.prod(SIZES[d])
    assert op.shape == (n_tot, n_tot)
    _assert_close(op.to_dense(), dense, rtol=0, atol=1e-14)
    x = torch.randn(n_tot, dtype=DT, generator=gen)
    xs = torch.randn(4, n_tot, 3, dtype=DT, generator=gen)
    assert _rel(op.matmul(x), dense @ x) < 1e-12
    assert _rel(op.matmul(xs), dense @ xs) < 1e-12
    assert _rel(op @ xs, dense @ xs) < 1e-12
    assert _rel(op.matvec(xs[..., 0]), xs[..., 0] @ dense.T) < 1e-12
    assert _rel(op.T.matmul(xs), dense.T @ xs) < 1e-12
    for shift in (0.0, 0.37):
        a = dense + shift * torch.eye(n_tot, dtype=DT)
        assert _rel(op.solve(x, shift), torch.linalg.solve(a, x)) < 1e-10
        assert _rel(op.solve(xs, shift), torch.linalg.solve(a, xs)) < 1e-10
        ref = torch.logdet(a)
        assert abs(float(op.logdet(shift) - ref)) <= 1e-10 * max(1.0, abs(float(ref)))
    assert _rel(op.solve(xs, method="cholesky"), torch.linalg.solve(dense, xs)) < 1e-10
    _assert_close(op.diagonal(), dense.diagonal(), rtol=0, atol=1e-14)
    lam = torch.linalg.eigvalsh(dense)
    _assert_close(op.eigvals().sort().values, lam, rtol=1e-10, atol=1e-12)


def test_batched_factors_broadcast(gen: torch.Generator) -> None:
    fs = [_spd(3, (2, 1), gen), _spd(4, (5,), gen), _spd(2, gen=gen)]
    op = Kronecker(fs)
    assert op.batch_shape == (2, 5) and op.shape == (2, 5, 24, 24)
    dense = op.to_dense()
    ref = torch.kron(torch.kron(fs[0][1, 0], fs[1][3]), fs[2])
    _assert_close(dense[1, 3], ref, rtol=0, atol=1e-14)
    xs = torch.randn(24, 2, dtype=DT, generator=gen)
    assert _rel(op.matmul(xs), dense @ xs) < 1e-12
    x = torch.randn(5, 24, dtype=DT, generator=gen)  # batch of vectors broadcast against (2, 5)
    assert _rel(op.matmul(x), (dense @ x.unsqueeze(-1)).squeeze(-1)) < 1e-12
    eye = torch.eye(24, dtype=DT)
    assert _rel(op.solve(xs, 0.2), torch.linalg.solve(dense + 0.2 * eye, xs)) < 1e-10
    _assert_close(op.logdet(0.2), torch.logdet(dense + 0.2 * eye), rtol=1e-10, atol=0)
    _assert_close(op.logdet(), torch.logdet(dense), rtol=1e-10, atol=0)
    assert _rel(op.solve(xs, method="cholesky"), torch.linalg.solve(dense, xs)) < 1e-10
    # right-hand sides with their own batch dimensions (7, 1, 1) broadcast to (7, 2, 5)
    xb = torch.randn(7, 1, 1, 24, 3, dtype=DT, generator=gen)
    out = op.matmul(xb)
    assert out.shape == (7, 2, 5, 24, 3)
    assert _rel(out, dense @ xb) < 1e-12
    assert _rel(op.solve(xb, 0.2), torch.linalg.solve(dense + 0.2 * eye, xb.expand(7, 2, 5, 24, 3))) < 1e-10


def test_apply_eigen_fn_and_eig(gen: torch.Generator) -> None:
    fs = [_spd(3, gen=gen), _spd(4, gen=gen)]
    op = Kronecker(fs)
    dense = op.to_dense()
    b = torch.randn(12, 2, dtype=DT, generator=gen)
    sqrt = op.apply_eigen_fn(b, torch.sqrt)
    lam, q = torch.linalg.eigh(dense)
    ref = q @ (lam.sqrt().unsqueeze(-1) * (q.T @ b))
    assert _rel(sqrt, ref) < 1e-10
    assert _rel(op.apply_eigen_fn(b, lambda lam: 1 / (lam + 0.5)), op.solve(b, 0.5)) < 1e-12
    for f, (ev, vec) in zip(fs, op.eig()):
        _assert_close(vec @ torch.diag(ev) @ vec.T, f, rtol=0, atol=1e-12)


@pytest.mark.parametrize("d", [1, 2, 3, 4])
def test_gradients_match_finite_differences(d: int, gen: torch.Generator) -> None:
    # factors parametrised as (B + B^T) / 2 so that finite differences stay symmetric
    sizes = [2, 2, 2, 2] if d == 4 else SIZES[d]  # keep gradcheck CI-sized
    fs = [_spd(n, gen=gen).requires_grad_() for n in sizes]
    n_tot = math.prod(f.shape[-1] for f in fs)
    b = torch.randn(n_tot, 2, dtype=DT, generator=gen, requires_grad=True)
    s = torch.tensor(0.3, dtype=DT, requires_grad=True)
    assert torch.autograd.gradcheck(lambda b, s, *fs: Kronecker(_sym(fs)).solve(b, s), (b, s, *fs))
    assert torch.autograd.gradcheck(lambda s, *fs: Kronecker(_sym(fs)).logdet(s), (s, *fs))
    assert torch.autograd.gradcheck(lambda *fs: Kronecker(_sym(fs)).logdet(0.0), tuple(fs))
    assert torch.autograd.gradcheck(lambda b, *fs: Kronecker(_sym(fs)).solve(b), (b, *fs))
    assert torch.autograd.gradcheck(lambda b, *fs: Kronecker(_sym(fs)).solve(b, method="cholesky"), (b, *fs))
    assert torch.autograd.gradcheck(lambda b, *fs: Kronecker(list(fs)).matmul(b), (b, *fs))


def test_refinement_reduces_residual_of_ill_conditioned_solve(gen: torch.Generator) -> None:
    x = torch.linspace(0, 1, 60, dtype=DT)
    fac = torch.exp(-(x[:, None] - x[None, :]).abs() / 0.2)  # cond(K) ~ 1e8
    op = Kronecker([fac, fac, fac])
    b = torch.randn(60**3, dtype=DT, generator=gen)
    res = [float((op.matmul(op.solve(b, refine=r)) - b).norm() / b.norm()) for r in (0, 1)]
    assert res[1] < res[0] / 3 and res[1] < 1e-11
    auto = op.solve(b)  # condition number > 1e6: one refinement step chosen automatically
    _assert_close(auto, op.solve(b, refine=1), rtol=0, atol=0)
    with pytest.raises(ValueError, match="refine"):
        op.solve(b, refine=-1)
    # gradients stay exact with refinement switched on
    fs = [_spd(n, gen=gen).requires_grad_() for n in (3, 2)]
    rhs = torch.randn(6, dtype=DT, generator=gen, requires_grad=True)
    s = torch.tensor(0.1, dtype=DT, requires_grad=True)
    assert torch.autograd.gradcheck(lambda b, s, *fs: Kronecker(_sym(fs)).solve(b, s, refine=2), (rhs, s, *fs))


def test_gradients_batched_factors(gen: torch.Generator) -> None:
    fs = [_spd(3, (2,), gen).requires_grad_(), _spd(2, gen=gen).requires_grad_()]
    b = torch.randn(6, dtype=DT, generator=gen, requires_grad=True)
    s = torch.tensor(0.2, dtype=DT, requires_grad=True)
    assert torch.autograd.gradcheck(lambda b, s, *fs: Kronecker(_sym(fs)).solve(b, s), (b, s, *fs))
    assert torch.autograd.gradcheck(lambda s, *fs: Kronecker(_sym(fs)).logdet(s), (s, *fs))
    bb = torch.randn(3, 1, 6, dtype=DT, generator=gen, requires_grad=True)  # batch (3, 1) x (2,)
    assert torch.autograd.gradcheck(lambda b, s, *fs: Kronecker(_sym(fs)).solve(b, s), (bb, s, *fs))


def test_shift_tensor_is_cast_and_differentiated() -> None:
    op = Kronecker([2.0 * torch.eye(2, dtype=DT), torch.eye(3, dtype=DT)])  # K = 2 I (6 x 6)
    s = torch.tensor([0.5], requires_grad=True)  # float32, shape (1,)
    (op.logdet(s) + op.solve(torch.ones(6, dtype=DT), s).sum()).backward()
    # d/ds [6 log(2 + s) + 6 / (2 + s)] = 6 / 2.5 - 6 / 2.5^2
    assert s.grad is not None and s.grad.dtype == torch.float32
    assert abs(float(s.grad) - (6 / 2.5 - 6 / 2.5**2)) < 1e-6


def test_float32_solve_is_accurate_to_single_precision(gen: torch.Generator) -> None:
    fs = [_spd(n, gen=gen).float() for n in (8, 9, 10)]
    op = Kronecker(fs)
    b = torch.randn(720, 2, generator=gen)
    x = op.solve(b, 0.1)
    assert x.dtype == torch.float32
    ref = torch.linalg.solve(op.to_dense().double() + 0.1 * torch.eye(720, dtype=DT), b.double())
    assert _rel(x.double(), ref) < 1e-5


def test_repeated_eigenvalues_gradients_match_dense(gen: torch.Generator) -> None:
    # identity and constant-diagonal factors: every eigenvalue repeated; autograd through eigh
    # would divide by zero gaps, the closed-form backward must not
    eye = torch.eye(3, dtype=DT).requires_grad_()
    a = (2.0 * torch.eye(2, dtype=DT)).requires_grad_()
    c = _spd(2, gen=gen).requires_grad_()
    b = torch.randn(12, dtype=DT, generator=gen)
    op = Kronecker([eye, a, c])
    loss = op.solve(b, 0.1).square().sum() + op.logdet(0.1)
    loss.backward()
    leaves = [t.detach().clone().requires_grad_() for t in (eye, a, c)]
    dense = torch.kron(torch.kron(leaves[0], leaves[1]), leaves[2]) + 0.1 * torch.eye(12, dtype=DT)
    (torch.linalg.solve(dense, b).square().sum() + torch.logdet(dense)).backward()
    for got, leaf in zip((eye, a, c), leaves):
        ref = 0.5 * (leaf.grad + leaf.grad.T)  # gradient restricted to symmetric perturbations
        assert torch.isfinite(got.grad).all()
        _assert_close(got.grad, ref, rtol=1e-10, atol=1e-12)


def test_logdet_of_negative_definite_factors(gen: torch.Generator) -> None:
    """(-A) kron (-B) = A kron B is positive definite: logdet and its gradient match the dense matrix."""
    a = (-_spd(3, gen=gen)).requires_grad_()
    b = (-_spd(2, gen=gen)).requires_grad_()
    got = Kronecker([a, b]).logdet()
    got.backward()
    leaves = [t.detach().clone().requires_grad_() for t in (a, b)]
    ref = torch.logdet(torch.kron(leaves[0], leaves[1]))
    ref.backward()
    # logdet of a 6 x 6 SPD matrix of condition ~10: a few eps of |logdet| plus N eps
    assert abs(got.item() - ref.item()) <= 64 * torch.finfo(DT).eps * max(1.0, abs(ref.item()))
    for g, leaf in zip((a, b), leaves):
        _assert_close(g.grad, 0.5 * (leaf.grad + leaf.grad.T), rtol=1e-10, atol=1e-12)
    eye = torch.eye(2, dtype=DT)
    assert float(Kronecker([-eye, -eye, eye]).logdet()) == 0.0  # K = I exactly


def test_eigendecomposition_cache_tracks_inplace_updates(gen: torch.Generator) -> None:
    a, c = _spd(3, gen=gen), _spd(4, gen=gen)
    op = Kronecker([a, c])
    b = torch.randn(12, dtype=DT, generator=gen)
    first = op.eig()[0][0]
    assert op.eig()[0][0] is first  # cached
    with torch.no_grad():
        a.mul_(2.0)
    assert op.eig()[0][0] is not first
    dense = torch.kron(a, c)
    assert _rel(op.solve(b, 0.1), torch.linalg.solve(dense + 0.1 * torch.eye(12, dtype=DT), b)) < 1e-10


# linear_operator itself calls torch.jit.script, which torch 2.13 deprecates (not our code).
@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_linear_operator_round_trip(gen: torch.Generator) -> None:
    from linear_operator import settings
    from linear_operator.operators import KroneckerProductLinearOperator

    fs = [_spd(3, gen=gen), _spd(4, gen=gen)]
    op = Kronecker(fs)
    lo = op.to_linear_operator()
    assert isinstance(lo, KroneckerProductLinearOperator)
    _assert_close(lo.to_dense(), op.to_dense(), rtol=0, atol=1e-14)
    b = torch.randn(12, 2, dtype=DT, generator=gen)
    with settings.max_cholesky_size(10_000):
        assert _rel(lo.solve(b), op.solve(b)) < 1e-10
    back = Kronecker.from_linear_operator(lo)
    _assert_close(back.to_dense(), op.to_dense(), rtol=0, atol=0)
    _assert_close(Kronecker(lo).matmul(b), op.matmul(b), rtol=0, atol=0)
    with pytest.raises(TypeError, match="op"):
        Kronecker.from_linear_operator(fs[0])


def test_float32_and_nonsymmetric_matmul(gen: torch.Generator) -> None:
    a = torch.randn(3, 3, generator=gen)
    c = torch.randn(4, 4, generator=gen)
    op = Kronecker([a, c])
    x = torch.randn(12, 5, generator=gen)
    assert op.dtype == torch.float32
    assert _rel(op.matmul(x), torch.kron(a, c) @ x) < 1e-5
    assert _rel(op.T.matmul(x), torch.kron(a, c).T @ x) < 1e-5
    with pytest.raises(ValueError, match=r"factors\[0\] is not symmetric"):
        op.solve(x)


def test_errors_name_the_argument() -> None:
    a = torch.eye(3, dtype=DT)
    with pytest.raises(TypeError, match="factors"):
        Kronecker(a)
    with pytest.raises(ValueError, match="at least one"):
        Kronecker([])
    with pytest.raises(ValueError, match=r"factors\[1\] must be square"):
        Kronecker([a, torch.ones(2, 3, dtype=DT)])
    with pytest.raises(ValueError, match=r"factors\[0\] has 1 non-finite"):
        Kronecker([torch.tensor([[float("nan")]], dtype=DT), a])
    huge = torch.full((2, 2), 1e308, dtype=DT)  # finite entries whose sum overflows: accepted
    assert Kronecker([huge]).shape == (2, 2)
    with pytest.raises(ValueError, match=r"factors\[0\] has 2 non-finite"):
        Kronecker([torch.tensor([[float("inf"), 0.0], [0.0, -float("inf")]], dtype=DT)])
    with pytest.raises(TypeError, match="dtype"):
        Kronecker([a, torch.eye(2)])
    with pytest.raises(TypeError, match=r"factors\[0\]"):
        Kronecker([[[1.0]]])
    with pytest.raises(ValueError, match="batch shapes"):
        Kronecker([torch.eye(2, dtype=DT).expand(3, 2, 2), torch.eye(2, dtype=DT).expand(4, 2, 2)])
    op = Kronecker([a, 2 * a])
    with pytest.raises(ValueError, match="x has length 8"):
        op.matmul(torch.ones(8, dtype=DT))
    with pytest.raises(ValueError, match="b has length 7"):
        op.solve(torch.ones(7, dtype=DT))
    with pytest.raises(ValueError, match="b has 1 non-finite"):
        op.solve(torch.tensor([float("inf")] + [0.0] * 8, dtype=DT))
    with pytest.raises(TypeError, match="x has dtype"):
        op.matmul(torch.ones(9))
    with pytest.raises(ValueError, match="shift"):
        op.solve(torch.ones(9, dtype=DT), shift=-1.0)
    with pytest.raises(ValueError, match="shift"):
        op.logdet(shift=float("nan"))
    with pytest.raises(TypeError, match="shift"):
        op.logdet(shift="1")
    with pytest.raises(ValueError, match="method"):
        op.solve(torch.ones(9, dtype=DT), method="lu")
    with pytest.raises(ValueError, match="shift == 0"):
        op.solve(torch.ones(9, dtype=DT), shift=0.5, method="cholesky")
    indefinite = torch.diag(torch.tensor([1.0, -1.0, 2.0], dtype=DT))
    bad = Kronecker([a, indefinite])
    with pytest.raises(ValueError, match=r"factors\[1\] is not positive definite"):
        bad.solve(torch.ones(9, dtype=DT), method="cholesky")
    with pytest.raises(ValueError, match="not positive definite"):
        bad.logdet()
    # the symmetric-indefinite system is still solved exactly by the eigen path
    dense = bad.to_dense()
    rhs = torch.arange(9, dtype=DT)
    assert _rel(bad.solve(rhs), torch.linalg.solve(dense, rhs)) < 1e-12
    singular = Kronecker([a, torch.diag(torch.tensor([1.0, 0.0, 2.0], dtype=DT))])
    with pytest.raises(ValueError, match="singular"):
        singular.solve(rhs)


def test_cuda_without_cupy_warns_once_or_runs() -> None:
    """On CPU tensors the CuPy module is never consulted (no warning)."""
    op = Kronecker([torch.eye(2, dtype=DT), torch.eye(3, dtype=DT)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        op.solve(torch.ones(6, dtype=DT), 1.0)


@pytest.mark.gpu
def test_gpu_matches_cpu(gen: torch.Generator) -> None:
    fs = [_spd(n, gen=gen) for n in (5, 6, 7)]
    b = torch.randn(210, 2, dtype=DT, generator=gen)
    cpu = Kronecker(fs)
    gpu = Kronecker([f.cuda() for f in fs])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # CuPy may be absent: torch fallback
        x_gpu = gpu.solve(b.cuda(), 0.3).cpu()
    assert _rel(x_gpu, cpu.solve(b, 0.3)) < 1e-10
    assert _rel(gpu.matmul(b.cuda()).cpu(), cpu.matmul(b)) < 1e-12
    _assert_close(gpu.logdet(0.3).cpu(), cpu.logdet(0.3), rtol=1e-10, atol=0)
    # gradients on the GPU match the CPU ones
    grads = []
    for dev in ("cpu", "cuda"):
        leaves = [f.to(dev).requires_grad_() for f in fs]
        op = Kronecker(leaves)
        (op.solve(b.to(dev), 0.3).square().sum() + op.logdet(0.3)).backward()
        grads.append([leaf.grad.cpu() for leaf in leaves])
    for g_cpu, g_gpu in zip(*grads):
        _assert_close(g_gpu, g_cpu, rtol=1e-9, atol=1e-12)


@pytest.mark.gpu
def test_cupy_fused_division_matches_torch(gen: torch.Generator) -> None:
    pytest.importorskip("cupy")
    from sciml.kernels import outer_product
    from sciml.kernels._kron_cupy import cupy_ready, divide_by_grid_cupy

    if not cupy_ready():
        pytest.skip("CuPy installed but not usable on this device")
    for d in (1, 2, 3, 4):
        vals = [torch.rand(n, dtype=DT, generator=gen).cuda() + 0.1 for n in (3, 4, 5, 2)[:d]]
        n_tot = math.prod(v.shape[0] for v in vals)
        y = torch.randn(2, n_tot, 3, dtype=DT, generator=gen).cuda()
        out = divide_by_grid_cupy(y, vals, 0.25)
        assert out is not None
        ref = y / (outer_product(vals) + 0.25).unsqueeze(-1)
        _assert_close(out, ref, rtol=1e-14, atol=0)


def test_benchmark_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    """The benchmark's table machinery on a tiny grid (every implementation runs, solves are exact)."""
    from sciml_benchmarks.kronecker import _parser, format_table, run

    args = _parser().parse_args(["--repeats", "1", "--max-dense", "100"])
    rows = run([[6, 7]], args, progress=False)
    impls = {(r.task, r.impl) for r in rows if r.seconds is not None}
    assert ("solve K+0.01I", "sciml (eigh)") in impls and ("solve K", "linear_operator default") in impls
    assert ("matvec", "dense torch") in impls
    for r in rows:
        if r.error_kind == "residual":
            assert r.error is not None and r.error < 1e-12, r
    assert "| 6x7 |" in format_table(rows)


_C_HARNESS = r"""
#include <stdio.h>
#include <stdlib.h>
typedef double T;
int main(int argc, char** argv) {
  long long n[4];
  for (int k = 0; k < 4; k++) n[k] = atoll(argv[1 + k]);
  long long ncol = atoll(argv[5]), nb = atoll(argv[6]);
  T s = atof(argv[7]);
  long long n2 = n[1], n3 = n[2], n4 = n[3], ntot = n[0] * n[1] * n[2] * n[3];
  T* ls[4];
  for (int k = 0; k < 4; k++) {
    ls[k] = malloc(sizeof(T) * n[k]);
    for (long long j = 0; j < n[k]; j++) ls[k][j] = 1.0 + k + 0.1 * j;
  }
  T *l1 = ls[0], *l2 = ls[1], *l3 = ls[2], *l4 = ls[3];
  for (long long i = 0; i < nb * ntot * ncol; i++) {
    T y = (T)(i % 7) - 3.0, z;
    { OPERATION }
    printf("%.17g\n", z);
  }
  return 0;
}
"""


def test_cupy_kernel_index_arithmetic_compiled_on_cpu(tmp_path) -> None:
    """The fused kernel's C body, compiled with the host C compiler, decodes grid indices right.

    CuPy's ElementwiseKernel runs the body once per output element with flat index ``i``; the
    harness does the same serially, so the index decoding (and the C syntax) is checked even on
    machines without a GPU.
    """
    import shutil
    import subprocess

    from sciml.kernels import outer_product
    from sciml.kernels._kron_cupy import _OPERATION

    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    (tmp_path / "k.c").write_text(_C_HARNESS.replace("OPERATION", _OPERATION))
    subprocess.run([cc, "-O1", "-o", str(tmp_path / "k"), str(tmp_path / "k.c")], check=True)
    ncol, nb, s = 3, 2, 0.25
    for sizes in ([5, 1, 1, 1], [3, 4, 1, 1], [2, 3, 4, 1], [2, 3, 2, 3]):  # d = 1..4, padded with 1
        args = [str(tmp_path / "k"), *map(str, sizes), str(ncol), str(nb), str(s)]
        out = subprocess.run(args, capture_output=True, text=True, check=True).stdout.split()
        z = torch.tensor([float(v) for v in out], dtype=DT).reshape(nb, -1, ncol)
        vals = [torch.tensor([1.0 + k + 0.1 * j for j in range(n)], dtype=DT) for k, n in enumerate(sizes)]
        y = (torch.arange(z.numel(), dtype=DT) % 7 - 3.0).reshape(z.shape)
        _assert_close(z, y / (outer_product(vals) + s).unsqueeze(-1), rtol=1e-15, atol=0)


# ------------------------------------------------------------------------------ mode products (grid-tensor form)
def _kron_ref(mats: list[torch.Tensor]) -> torch.Tensor:
    out = mats[0]
    for m in mats[1:]:
        out = torch.kron(out, m)
    return out


@pytest.mark.parametrize("d", [1, 2, 3, 4])
def test_mode_products_against_dense_kron(d: int) -> None:
    """multi_mode_product with rectangular / identity factors, triangular mode solves, row-wise products."""
    from sciml.kernels import (
        kron_dense,
        mode_product,
        multi_mode_product,
        multi_mode_solve_triangular,
        outer_product,
        outer_sum,
        rowwise_kron_apply,
    )

    gen = torch.Generator().manual_seed(d)
    sizes = SIZES[d]
    x = torch.randn(*sizes, dtype=DT, generator=gen)
    rect = [torch.randn(n + 1, n, dtype=DT, generator=gen) for n in sizes]
    got = multi_mode_product(rect, x)
    assert got.shape == tuple(n + 1 for n in sizes)
    _assert_close(got.reshape(-1), _kron_ref(rect) @ x.reshape(-1), rtol=1e-13, atol=1e-13)
    # None is an identity factor; mode_product acts on one axis only
    eye_k = [m if k == d - 1 else torch.eye(n, dtype=DT) for k, (m, n) in enumerate(zip(rect, sizes))]
    _assert_close(multi_mode_product([None] * (d - 1) + [rect[-1]], x).reshape(-1),
                  _kron_ref(eye_k) @ x.reshape(-1), rtol=1e-13, atol=1e-13)
    assert torch.equal(mode_product(rect[-1], x, d - 1), multi_mode_product([None] * (d - 1) + [rect[-1]], x))
    assert torch.equal(kron_dense(rect), _kron_ref(rect))
    # triangular solves per mode: (T_1 kron ... kron T_d)^{-1} vec(x)
    tris = [torch.linalg.cholesky(_spd(n, gen=gen)) for n in sizes]
    sol = multi_mode_solve_triangular(tris, x)
    _assert_close(_kron_ref(tris) @ sol.reshape(-1), x.reshape(-1), rtol=1e-12, atol=1e-12)
    up = multi_mode_solve_triangular([t.mT for t in tris], x, upper=True)
    _assert_close(_kron_ref([t.mT for t in tris]) @ up.reshape(-1), x.reshape(-1), rtol=1e-12, atol=1e-12)
    # eigenvalue grids: products and sums of the factors' eigenvalues in kron order
    vals = [torch.randn(n, dtype=DT, generator=gen) for n in sizes]
    _assert_close(outer_product(vals), torch.diagonal(_kron_ref([torch.diag(v) for v in vals])), rtol=1e-15, atol=0)
    ksum = sum(_kron_ref([torch.diag(v) if k == j else torch.eye(n, dtype=DT) for k, n in enumerate(sizes)])
               for j, v in enumerate(vals))
    _assert_close(outer_sum(vals), torch.diagonal(ksum), rtol=1e-14, atol=1e-15)
    # row-wise (face-splitting) products: (r_1[p] kron ... kron r_d[p]) . vec(x), in blocks of `chunk` rows
    rows = [torch.randn(7, n, dtype=DT, generator=gen) for n in sizes]
    want = torch.stack([_kron_ref([r[p:p + 1] for r in rows])[0] @ x.reshape(-1) for p in range(7)])
    _assert_close(rowwise_kron_apply(rows, x), want, rtol=1e-13, atol=1e-13)
    _assert_close(rowwise_kron_apply(rows, x, chunk=3), want, rtol=1e-13, atol=1e-13)
    assert rowwise_kron_apply([r[:0] for r in rows], x).shape == (0,)


def test_kron_apply_refuses_sizes_that_do_not_multiply_to_n() -> None:
    from sciml.kernels import kron_apply, rowwise_kron_apply

    a = torch.eye(2, dtype=DT)
    with pytest.raises(ValueError, match=r"multiply to N = 4, but x has 12 rows"):
        kron_apply([a, a], torch.ones(12, 1, dtype=DT))  # read 12 rows as another grid before
    with pytest.raises(ValueError, match="sizes is required"):
        kron_apply([None, a], torch.ones(4, 1, dtype=DT))
    with pytest.raises(TypeError, match=r"mats\[1\] is torch.float32"):
        kron_apply([a, a.float()], torch.ones(4, 1, dtype=DT))
    with pytest.raises(ValueError, match="chunk must be an int >= 1"):
        rowwise_kron_apply([a, a], torch.ones(2, 2, dtype=DT), chunk=0)
