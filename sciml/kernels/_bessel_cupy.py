"""CuPy GPU path for :mod:`sciml.kernels.bessel`: one CUDA ``ElementwiseKernel`` per function.

The kernel source (``kernel_source()``) is plain C with a ``__device__`` qualifier macro, implementing
the same regions as the torch path (Debye expansion in rho for rho >= 23, power series for log I,
Temme / Steed CF2 plus upward recurrence for log K). The same source is compiled with the host C
compiler in the test-suite to check the kernel's arithmetic on machines without a GPU.

Only forward values run in CuPy; when gradients are needed the torch path (which also runs on CUDA
tensors) is used. Tensors are exchanged with CuPy through DLPack (no copies). If CuPy is missing or
cannot run (``import cupy`` succeeds on machines without a usable GPU, and NVRTC loads lazily), one
``RuntimeWarning`` is emitted and the torch path is used from then on.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor

from . import _debye

__all__ = ["available", "evaluate", "kernel_source", "GPU_PREAMBLE", "HOST_PREAMBLE"]

_NMAX = 20

_state: dict[str, Any] = {"checked": False, "ok": False, "kernels": {}}


def _table() -> str:
    coefs = _debye.coefficients(_NMAX)  # coefs[j][k-1]
    flat: list[str] = []
    offsets = []
    for k in range(1, _NMAX + 1):
        offsets.append(len(flat))
        flat.extend(repr(coefs[j][k - 1]) for j in range(k + 1))
    return (
        f"DEVCONST double DEBYE_C[{len(flat)}] = {{{', '.join(flat)}}};\n"
        f"DEVCONST int DEBYE_OFF[{_NMAX}] = {{{', '.join(map(str, offsets))}}};\n"
    )


_BODY = r"""
#define RHO_SMALL 23.0
#define EPS17 1e-17
#define LOG_2PI 1.8378770664093453
#define LOG_PI_2 0.45158270528945486

DEVFN double debye_sum(double s, double w, int n, double sgn) {
    double acc = 0.0;
    for (int k = n; k >= 1; --k) {
        const double *c = DEBYE_C + DEBYE_OFF[k - 1];
        double p = c[k];
        for (int j = k - 1; j >= 0; --j) p = p * s + c[j];
        acc = (acc + ((k & 1) ? sgn : 1.0) * p) * w;
    }
    return acc;
}

DEVFN int debye_terms(double rho) {
    if (rho >= 290.0) return 6;
    if (rho >= 44.0) return 12;
    return 20;
}

DEVFN double series_log_i(double v, double x) {
    double y = 0.25 * x * x, lx2 = log(0.5 * x);
    double ks = floor(0.5 * (hypot(v, x) - v));
    double lg;
    if (ks == 0.0 && v <= 1.5) {  /* lgamma(1 + v) without rounding 1 + v (zeros at v = 0, 1) */
        const double a[22] = {RGAMMA1P};
        double t = (v <= 0.5) ? v : v - 1.0, acc = a[21];
        for (int k = 20; k >= 1; --k) acc = acc * t + a[k];
        lg = -log1p(t * acc) + ((v <= 0.5) ? 0.0 : log(v));
    } else {
        lg = lgamma(ks + v + 1.0);
    }
    double logt0 = (2.0 * ks + v) * lx2 - lgamma(ks + 1.0) - lg;
    double rest = 0.0, term = 1.0, k = ks;
    for (int it = 0; it < 400; ++it) {
        k += 1.0;
        term *= y / (k * (k + v));
        rest += term;
        if (term <= EPS17 * (1.0 + rest)) break;
    }
    term = 1.0;
    for (k = ks; k >= 1.0; k -= 1.0) {
        term *= k * (k + v) / y;
        rest += term;
    }
    return logt0 + log1p(rest);
}

DEVFN double poly_even_odd(double m2, int odd) {
    const double a[22] = {RGAMMA1P};
    double acc = 0.0;
    for (int k = 20 + odd; k >= odd; k -= 2) acc = acc * m2 + a[k];
    return acc;
}

DEVFN double small_log_k(double v, double x) {
    const double PI = 3.141592653589793;
    double n = floor(v + 0.5), mu = v - n, m2 = mu * mu;
    double logk, ratio;
    if (x <= 2.0) {
        double gam2 = poly_even_odd(m2, 0), gam1 = -poly_even_odd(m2, 1);
        double gampl = gam2 - mu * gam1, gammi = gam2 + mu * gam1;
        double x2 = 0.5 * x, pimu = PI * mu;
        double fact = (pimu == 0.0) ? 1.0 : pimu / sin(pimu);
        double d = -log(x2), e = mu * d;
        double fact2 = (e == 0.0) ? 1.0 : sinh(e) / e;
        double ff = fact * (gam1 * cosh(e) + gam2 * fact2 * d);
        double sum = ff, ee = exp(e);
        double p = 0.5 * ee / gampl, q = 0.5 / (ee * gammi), c = 1.0, dd = x2 * x2, sum1 = p;
        for (int i = 1; i < 80; ++i) {
            ff = (i * ff + p + q) / (i * (double)i - m2);
            c *= dd / i;
            p /= (i - mu);
            q /= (i + mu);
            double del = c * ff;
            sum += del;
            sum1 += c * (p - i * ff);
            if (fabs(del) <= EPS17 * fabs(sum)) break;
        }
        logk = log(sum);
        ratio = sum1 * (2.0 / x) / sum;
    } else {
        double b = 2.0 * (1.0 + x), d = 1.0 / b, h = d, delh = d, q1 = 0.0, q2 = 1.0;
        double a1 = 0.25 - m2, q = a1, c = a1, a = -a1, s = 1.0 + q * delh;
        for (int i = 2; i < 1000; ++i) {
            a -= 2.0 * (i - 1);
            c = -a * c / i;
            double qnew = (q1 - b * q2) / a;
            q1 = q2; q2 = qnew;
            q += c * qnew;
            b += 2.0;
            d = 1.0 / (b + a * d);
            delh = (b * d - 1.0) * delh;
            h += delh;
            double dels = q * delh;
            s += dels;
            if (fabs(dels) <= EPS17 * fabs(s)) break;
        }
        h = a1 * h;
        logk = 0.5 * (LOG_PI_2 - log(x)) - x - log(s);
        ratio = (mu + x + 0.5 - h) / x;
    }
    for (int i = 1; i <= (int)n; ++i) {
        logk += log(ratio);
        ratio = 2.0 * (mu + i) / x + 1.0 / ratio;
    }
    return logk;
}

DEVFN double log_bessel(double v, double x, int kind) {  /* kind 0: log I, 1: log K */
    double nan = SCIML_NAN, inf = SCIML_INF;
    if (isnan(v) || isnan(x) || v < 0.0 || x < 0.0) return nan;
    if (x == 0.0) return kind ? inf : (v == 0.0 ? 0.0 : -inf);
    if (isinf(x)) return kind ? -inf : inf;
    if (isinf(v)) return kind ? inf : -inf;
    double rho = hypot(v, x);
    if (rho >= RHO_SMALL) {
        double w = 1.0 / rho, t = v * w, s = t * t;
        double veta = rho + v * log(x / (v + rho));
        double half = 0.5 * log(rho);
        int n = debye_terms(rho);
        if (kind == 0) return veta - 0.5 * LOG_2PI - half + log1p(debye_sum(s, w, n, 1.0));
        return -veta + 0.5 * LOG_PI_2 - half + log1p(debye_sum(s, w, n, -1.0));
    }
    return kind ? small_log_k(v, x) : series_log_i(v, x);
}
"""


#: Macros the kernel source expects, for NVRTC (no <math.h> NAN / INFINITY there).
GPU_PREAMBLE = (
    "#define DEVFN __device__\n#define DEVCONST __device__ const\n"
    "#define SCIML_NAN __longlong_as_double(0x7ff8000000000000LL)\n"
    "#define SCIML_INF __longlong_as_double(0x7ff0000000000000LL)\n"
)
#: The same macros for a host C compiler (used by the tests).
HOST_PREAMBLE = (
    "#include <math.h>\n#define DEVFN static\n#define DEVCONST static const\n"
    "#define SCIML_NAN NAN\n#define SCIML_INF INFINITY\n"
)


def kernel_source() -> str:
    """C source of ``log_bessel(v, x, kind)``; prepend GPU_PREAMBLE or HOST_PREAMBLE to compile."""
    from .bessel import _RGAMMA1P

    body = _BODY.replace("RGAMMA1P", ", ".join(repr(a) for a in _RGAMMA1P[:22]))
    return _table() + body


def _warn(reason: str) -> None:
    warnings.warn(
        f"sciml.kernels.bessel: CuPy GPU path unavailable ({reason}); using the torch implementation "
        "for CUDA tensors instead.",
        RuntimeWarning,
        stacklevel=4,
    )


def _build() -> dict[str, Any]:
    import cupy

    preamble = GPU_PREAMBLE + kernel_source()
    kernels = {}
    for kind, flag in (("i", 0), ("k", 1)):
        kernels[kind] = cupy.ElementwiseKernel(
            "float64 v, float64 x",
            "float64 y",
            f"y = log_bessel(v, x, {flag});",
            f"sciml_log_bessel_{kind}",
            preamble=preamble,
        )
    # probe: a tiny launch catches missing drivers / NVRTC; check one closed form value
    probe = cupy.asarray([0.5, 0.5]), cupy.asarray([2.0, 3000.0])
    got = kernels["k"](*probe).get()
    import math

    for xx, val in zip((2.0, 3000.0), got):
        exact = 0.5 * math.log(math.pi / (2 * xx)) - xx
        if not abs(val - exact) <= 1e-12 * abs(exact):
            raise RuntimeError(f"probe kernel returned {val}, expected {exact}")
    return kernels


def available() -> bool:
    """Whether the CuPy kernels work here (probed once; warns once when they do not)."""
    if not _state["checked"]:
        _state["checked"] = True
        if not torch.cuda.is_available():
            _state["ok"] = False
            _warn("no CUDA device visible to torch")
            return False
        try:
            _state["kernels"] = _build()
            _state["ok"] = True
        except Exception as exc:  # ImportError, CUDARuntimeError, NVRTC / compile errors ...
            _state["ok"] = False
            _warn(f"{type(exc).__name__}: {exc}")
    return bool(_state["ok"])


def evaluate(v: Tensor, x: Tensor, kind: str, grad: bool) -> dict[str, Tensor] | None:
    """Values of log I (kind 'i') or log K ('k') as float64 on the GPU, or None to use torch."""
    if grad or not available():
        return None
    import cupy

    vv, xx = torch.broadcast_tensors(v.to(torch.float64), x.to(torch.float64))
    shape = vv.shape
    stream = torch.cuda.current_stream(vv.device)
    with cupy.cuda.Device(vv.device.index or 0), cupy.cuda.ExternalStream(stream.cuda_stream):
        cv = cupy.from_dlpack(vv.contiguous().reshape(-1))
        cx = cupy.from_dlpack(xx.contiguous().reshape(-1))
        out = _state["kernels"][kind](cv, cx)  # runs on torch's current stream
    return {kind: torch.from_dlpack(out).reshape(shape)}
