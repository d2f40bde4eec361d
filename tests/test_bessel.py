"""log I_v / log K_v: mpmath reference grid, closed forms, Wronskian, dtypes, gradients, CuPy path."""

from __future__ import annotations

import ctypes
import math
import shutil
import subprocess
import warnings
from pathlib import Path

import mpmath as mp
import numpy as np
import pytest
import torch

from sciml.kernels import _bessel_cupy
from sciml.kernels.bessel import RHO_SMALL, log_bessel_ratio, log_iv, log_kv

F64 = torch.float64
REF = Path(__file__).parent / "data" / "bessel_reference.npz"


def _rel_err(got: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    return (got - ref).abs() / ref.abs()


@pytest.fixture(scope="module")
def reference() -> dict[str, torch.Tensor]:
    data = np.load(REF)
    return {k: torch.from_numpy(data[k]) for k in data.files}


# ------------------------------------------------------------------------------ accuracy
@pytest.mark.parametrize("fn,key", [(log_iv, "log_iv"), (log_kv, "log_kv")])
def test_mpmath_reference_grid(reference: dict[str, torch.Tensor], fn, key: str) -> None:
    """2000 seeded log-uniform points, v in {0} U [1e-3, 1e5], x in [1e-10, 1e5] (tests/data)."""
    v, x, ref = reference["v"][:2000], reference["x"][:2000], reference[key][:2000]
    assert torch.isfinite(ref).all()
    got = fn(v, x)
    assert torch.isfinite(got).all()
    err = _rel_err(got, ref)
    assert float(err.max()) <= 1e-13, (float(err.max()), float(v[err.argmax()]), float(x[err.argmax()]))


@pytest.mark.parametrize("fn,key", [(log_iv, "log_iv"), (log_kv, "log_kv")])
def test_mpmath_reference_boundary_band(reference: dict[str, torch.Tensor], fn, key: str) -> None:
    """500 extra points with v, x in the region-boundary band (1 <= x <= 3e3, v <= 3e3).

    Where log I or log K crosses 0 at large rho = |(v, x)| the result is a difference of terms of
    size ~rho, so float64 can only promise an absolute error of a few eps * rho there: the bound
    is 1e-13 relative *or* 1e-15 * rho absolute (one point of the 500 needs the second part).
    """
    v, x, ref = reference["v"][2000:], reference["x"][2000:], reference[key][2000:]
    got = fn(v, x)
    assert torch.isfinite(got).all()
    bound = torch.maximum(1e-13 * ref.abs(), 1e-15 * torch.hypot(v, x))
    assert bool(((got - ref).abs() <= bound).all())
    assert float(_rel_err(got, ref).max()) <= 2e-13


def _closed_forms(x: torch.Tensor) -> dict[str, torch.Tensor]:
    log_k_half = 0.5 * torch.log(math.pi / (2 * x)) - x
    log_i_half = 0.5 * torch.log(2 / (math.pi * x)) + x + torch.log(-torch.expm1(-2 * x)) - math.log(2)
    return {
        "k0.5": log_k_half,
        "k1.5": log_k_half + torch.log1p(1 / x),
        "k2.5": log_k_half + torch.log1p(3 / x + 3 / x**2),
        "i0.5": log_i_half,
    }


def test_closed_forms_half_integer_orders() -> None:
    x = torch.logspace(-10, 5, 3001, dtype=F64)
    cf = _closed_forms(x)
    for name, ref in cf.items():
        fn = log_iv if name[0] == "i" else log_kv
        got = fn(float(name[1:]), x)
        # relative 1e-13; where |log| < 1e-2 (log crosses zero) 1e-15 absolute, i.e. 1e-15 relative in I or K
        bad = (got - ref).abs() > torch.maximum(1e-13 * ref.abs(), torch.full_like(ref, 1e-15))
        assert not bool(bad.any()), (name, x[bad][:3])


def test_wronskian_identity() -> None:
    g = torch.Generator().manual_seed(7)
    v = 10 ** (torch.rand(20000, generator=g, dtype=F64) * 8 - 3)
    x = 10 ** (torch.rand(20000, generator=g, dtype=F64) * 15 - 10)
    li, li1, lk, lk1 = log_iv(v, x), log_iv(v + 1, x), log_kv(v, x), log_kv(v + 1, x)
    # I_v K_{v+1} + I_{v+1} K_v = 1/x; each log is accurate relative to its own size
    resid = torch.logaddexp(li + lk1, li1 + lk) + torch.log(x)
    scale = li.abs() + lk1.abs() + li1.abs() + lk.abs() + 1.0
    assert float((resid.abs() / scale).max()) <= 1e-14


def test_methods_agree_across_the_region_boundary() -> None:
    """Debye (20 terms) and the small-rho methods evaluated at the same points just above rho = 23."""
    from sciml.kernels import bessel

    theta = torch.linspace(0.0, math.pi / 2, 400, dtype=F64)[1:]
    for rho in (RHO_SMALL, 30.0):
        v, x = rho * torch.cos(theta), rho * torch.sin(theta)
        deb = bessel._debye(v, x, 20, True, True, False)
        torch.testing.assert_close(deb["i"], bessel._series_i(v, x, False)["i"], rtol=1e-13, atol=1e-14)
        torch.testing.assert_close(deb["k"], bessel._small_k(v, x, False)["k"], rtol=1e-13, atol=1e-14)


# ------------------------------------------------------------------------------ dtypes, shapes, edges
def test_float32_within_one_ulp_of_float64() -> None:
    g = torch.Generator().manual_seed(3)
    v = (10 ** (torch.rand(5000, generator=g) * 7 - 2)).float()
    x = (10 ** (torch.rand(5000, generator=g) * 12 - 6)).float()
    for fn in (log_iv, log_kv):
        r32 = fn(v, x)
        r64 = fn(v.double(), x.double())
        assert r32.dtype == torch.float32
        ulp = torch.finfo(torch.float32).eps * r64.abs().clamp_min(torch.finfo(torch.float32).tiny)
        assert bool(((r32.double() - r64).abs() <= ulp).all())


def test_broadcasting_and_scalars() -> None:
    v = torch.tensor([[0.0], [2.5], [300.0]], dtype=F64)
    x = torch.tensor([1e-3, 1.0, 50.0, 1e4], dtype=F64)
    out = log_kv(v, x)
    assert out.shape == (3, 4)
    torch.testing.assert_close(out[1, 2], log_kv(2.5, torch.tensor(50.0, dtype=F64)), rtol=0, atol=0)
    assert log_iv(1, 2).dtype == F64  # Python numbers are float64 (float32 would overflow at 1e39)
    assert log_iv([1.0, 2.0], torch.tensor(2.0)).dtype == torch.float32  # tensors keep their dtype
    assert log_iv(torch.tensor(1.0, dtype=F64), 2.0).dtype == F64


def test_special_values_and_validation() -> None:
    v = torch.tensor([0.0, 1.5, 2.0, -1.0, math.nan, 1.0, 1.0, math.inf], dtype=F64)
    x = torch.tensor([0.0, 0.0, 1.0, 1.0, 1.0, -2.0, math.inf, 3.0], dtype=F64)
    li, lk = log_iv(v, x), log_kv(v, x)
    assert li[0] == 0 and li[1] == -math.inf and lk[0] == math.inf and lk[1] == math.inf
    assert torch.isfinite(li[2]) and torch.isfinite(lk[2])
    assert torch.isnan(li[3:6]).all() and torch.isnan(lk[3:6]).all()
    assert li[6] == math.inf and lk[6] == -math.inf
    assert li[7] == -math.inf and lk[7] == math.inf
    with pytest.raises(ValueError, match="v"):
        log_iv(torch.tensor([-1.0]), 1.0, validate=True)
    with pytest.raises(ValueError, match="x"):
        log_kv(1.0, torch.tensor([math.nan]), validate=True)
    with pytest.raises(TypeError, match="x"):
        log_kv(1.0, "2")


# ------------------------------------------------------------------------------ gradients
def test_x_gradient_closed_forms() -> None:
    x = torch.logspace(-6, 4, 400, dtype=F64).requires_grad_(True)
    (gk,) = torch.autograd.grad(log_kv(0.5, x).sum(), x)
    torch.testing.assert_close(gk, -1 - 0.5 / x.detach(), rtol=1e-13, atol=0)
    (gi,) = torch.autograd.grad(log_iv(0.5, x).sum(), x)
    xd = x.detach()
    torch.testing.assert_close(gi, 1 / torch.tanh(xd) - 0.5 / xd, rtol=1e-12, atol=0)


POINTS = [(0.3, 1e-3), (2.7, 1.5), (7.5, 19.0), (15.0, 0.1), (22.0, 10.0), (30.0, 25.0), (150.0, 140.0),
          (2000.0, 3000.0), (0.7, 500.0), (5.0, 1e-8), (40.0, 2.0), (1e4, 50.0)]


def test_gradients_against_mpmath() -> None:
    mp.mp.dps = 30
    v = torch.tensor([p[0] for p in POINTS], dtype=F64, requires_grad=True)
    x = torch.tensor([p[1] for p in POINTS], dtype=F64, requires_grad=True)
    gv, gx = torch.autograd.grad(log_iv(v, x).sum(), (v, x))
    for i, (a, b) in enumerate(POINTS):
        dx = float(mp.diff(lambda t, a=a: mp.log(mp.besseli(a, t, maxterms=10**6)), b))
        dv = float(mp.diff(lambda t, b=b: mp.log(mp.besseli(t, b, maxterms=10**6)), a))
        assert abs(float(gx[i]) - dx) <= 1e-12 * abs(dx), (a, b)
        assert abs(float(gv[i]) - dv) <= 1e-11 * abs(dv) + 1e-14, (a, b)
    # I_{v+1}/I_v directly (no cancellation even when it is tiny)
    r = log_bessel_ratio(v.detach(), x.detach())
    for i, (a, b) in enumerate(POINTS):
        exact = float(mp.besseli(a + 1, b, maxterms=10**6) / mp.besseli(a, b, maxterms=10**6))
        assert abs(float(r[i]) - exact) <= 1e-13 * exact


def test_log_k_gradients_against_finite_differences() -> None:
    v = torch.tensor([p[0] for p in POINTS], dtype=F64, requires_grad=True)
    x = torch.tensor([p[1] for p in POINTS], dtype=F64, requires_grad=True)
    gv, gx = torch.autograd.grad(log_kv(v, x).sum(), (v, x))
    vd, xd = v.detach(), x.detach()
    h = 1e-5
    fd_v = (log_kv(vd + h, xd) - log_kv(vd - h, xd)) / (2 * h)
    fd_x = (log_kv(vd, xd * (1 + h)) - log_kv(vd, xd * (1 - h))) / (2 * h * xd)
    torch.testing.assert_close(gv, fd_v, rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(gx, fd_x, rtol=1e-6, atol=1e-8)
    # the x-derivative is the Bessel ratio v/x - K_{v+1}/K_v; check it against the reference values
    ratio = torch.exp(log_kv(vd + 1, xd) - log_kv(vd, xd))
    torch.testing.assert_close(gx, vd / xd - ratio, rtol=1e-10, atol=0)


def test_gradcheck_broadcast() -> None:
    v = torch.tensor([[0.4], [3.2], [60.0]], dtype=F64, requires_grad=True)
    x = torch.tensor([0.2, 5.0, 70.0], dtype=F64, requires_grad=True)
    for fn in (log_iv, log_kv):
        assert torch.autograd.gradcheck(fn, (v, x), eps=1e-6, atol=1e-6, rtol=1e-5)


# ------------------------------------------------------------------------------ CuPy path
def test_cupy_kernel_source_on_host_compiler(tmp_path: Path) -> None:
    """The CUDA kernel's C body, compiled for the CPU, agrees with the torch path."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    src = tmp_path / "k.c"
    src.write_text(
        _bessel_cupy.HOST_PREAMBLE
        + _bessel_cupy.kernel_source()
        + "\nvoid run(const double* v, const double* x, double* y, long n, int kind)"
        " { for (long i = 0; i < n; ++i) y[i] = log_bessel(v[i], x[i], kind); }\n"
    )
    lib = tmp_path / "k.so"
    subprocess.run([cc, "-O2", "-shared", "-fPIC", "-o", str(lib), str(src), "-lm"], check=True)
    run = ctypes.CDLL(str(lib)).run
    rng = np.random.default_rng(11)
    v = np.concatenate([10 ** rng.uniform(-3, 5, 20000), [0.0, 1.0, -1.0, np.nan, 2.0]])
    x = np.concatenate([10 ** rng.uniform(-10, 5, 20000), [0.0, 0.0, 1.0, 1.0, np.inf]])
    p = ctypes.POINTER(ctypes.c_double)
    for kind, fn in ((0, log_iv), (1, log_kv)):
        y = np.empty_like(v)
        run(v.ctypes.data_as(p), x.ctypes.data_as(p), y.ctypes.data_as(p), ctypes.c_long(v.size), ctypes.c_int(kind))
        ref = fn(torch.from_numpy(v), torch.from_numpy(x)).numpy()
        np.testing.assert_array_equal(np.isnan(y), np.isnan(ref))
        np.testing.assert_array_equal(np.isinf(y), np.isinf(ref))
        fin = np.isfinite(ref)
        assert np.max(np.abs(y[fin] - ref[fin]) / np.maximum(np.abs(ref[fin]), 1e-2)) <= 1e-13


def test_cupy_fallback_warns_once(monkeypatch: pytest.MonkeyPatch) -> None:
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present; the fallback is exercised on CPU-only machines")
    monkeypatch.setitem(_bessel_cupy._state, "checked", False)
    with pytest.warns(RuntimeWarning, match="CuPy GPU path unavailable"):
        assert _bessel_cupy.available() is False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _bessel_cupy.available() is False


@pytest.mark.gpu
def test_gpu_matches_cpu() -> None:
    g = torch.Generator().manual_seed(5)
    v = 10 ** (torch.rand(100000, generator=g, dtype=F64) * 8 - 3)
    x = 10 ** (torch.rand(100000, generator=g, dtype=F64) * 15 - 10)
    for fn in (log_iv, log_kv):
        cpu = fn(v, x)
        gpu = fn(v.cuda(), x.cuda())
        assert gpu.is_cuda
        torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-13, atol=1e-13)
        vg = v[:100].cuda().requires_grad_(True)
        xg = x[:100].cuda().requires_grad_(True)
        gv, gx = torch.autograd.grad(fn(vg, xg).sum(), (vg, xg))
        vc = v[:100].clone().requires_grad_(True)
        xc = x[:100].clone().requires_grad_(True)
        cv, cx = torch.autograd.grad(fn(vc, xc).sum(), (vc, xc))
        torch.testing.assert_close(gx.cpu(), cx, rtol=1e-12, atol=0)
        torch.testing.assert_close(gv.cpu(), cv, rtol=1e-10, atol=1e-12)


def test_x_only_gradient_and_float32_grad() -> None:
    v = torch.tensor([0.5, 3.0, 100.0, 7.2])
    x = torch.tensor([2.0, 0.1, 50.0, 1.3], requires_grad=True)
    y = log_kv(v, x)
    (gx,) = torch.autograd.grad(y.sum(), x)
    assert y.dtype == gx.dtype == torch.float32
    ref = v.double() / x.detach().double() - torch.exp(log_kv(v.double() + 1, x.detach().double())
                                                        - log_kv(v.double(), x.detach().double()))
    torch.testing.assert_close(gx.double(), ref, rtol=1e-6, atol=0)
    assert abs(float(gx[0]) - (-1.25)) <= 1e-6


@pytest.mark.parametrize("v", [0.0, 0.5, 2.0])
def test_gradients_at_zero_and_infinity_are_the_limits(v: float) -> None:
    # the limits, and the sign (and size) of the gradient just inside: x = 1e-200 and 1e200
    x = torch.tensor([0.0, 1e-200, 1e200, math.inf], dtype=F64, requires_grad=True)
    vv = torch.full((4,), v, dtype=F64, requires_grad=True)
    inf = math.inf
    expect = {  # (d/dv, d/dx) at x = 0 and x = inf
        log_iv: ((-inf, 0.0 if v == 0 else inf), (0.0, 1.0)),
        log_kv: ((0.0 if v == 0 else inf, -inf), (0.0, -1.0)),
    }
    for fn, ((dv0, dx0), (dvi, dxi)) in expect.items():
        gv, gx = torch.autograd.grad(fn(vv, x).sum(), (vv, x))
        assert (gv[0].item(), gx[0].item()) == (dv0, dx0)
        assert (gv[3].item(), gx[3].item()) == (dvi, dxi)
        if v > 0:  # just inside x = 0: the same sign, large
            assert gv[1].item() * dv0 > 0 and abs(gv[1].item()) > 100
            assert gx[1].item() * dx0 > 0 and abs(gx[1].item()) > 1e100
        assert abs(gx[2].item() - dxi) < 1e-100 * (1 + v * v)
        assert abs(gv[2].item()) < 1e-100 * (1 + v)
