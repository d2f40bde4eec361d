"""mpmath references for log I_v(x) and log K_v(x) (tests and benchmarks; needs ``mpmath``).

``log_i`` uses ``mpmath.besseli``. ``mpmath.besselk`` stalls for many real orders (it works through
I_{-v} - I_v with huge cancellation), so ``log_k`` integrates K_v(x) = int_0^inf exp(-x cosh t)
cosh(v t) dt with ``mpmath.quad`` (tanh-sinh), split around the integrand's peak, in log space.
Both work at the current ``mpmath.mp.dps`` (callers set 50).
"""

from __future__ import annotations

import mpmath as mp

__all__ = ["log_i", "log_k"]


def log_i(v: float, x: float) -> mp.mpf:
    """log I_v(x) at the working precision."""
    return mp.log(mp.besseli(mp.mpf(v), mp.mpf(x), maxterms=10**7))


def log_k(v: float, x: float) -> mp.mpf:
    """log K_v(x) at the working precision (quadrature of the integral representation)."""
    v, x = mp.mpf(v), mp.mpf(x)
    t0 = mp.asinh(v / x)

    def f(t: mp.mpf) -> mp.mpf:  # log of exp(-x cosh t) cosh(v t)
        vt = v * t
        return -x * mp.cosh(t) + vt + mp.log1p(mp.exp(-2 * vt)) - mp.log(2)

    f0 = f(t0)
    w = min(1 / mp.sqrt(mp.sqrt(v * v + x * x)), mp.mpf(1))
    upper = t0 + w
    while f(upper) - f0 > -250:
        upper = t0 + 2 * (upper - t0)
    pts = [mp.mpf(0)]
    for m in (100, 30, 10, 3, 1):
        if t0 - m * w > pts[-1]:
            pts.append(t0 - m * w)
    if t0 > 0:
        pts.append(t0)
    m = 1
    while t0 + m * w < upper:
        pts.append(t0 + m * w)
        m *= 3
    pts.append(upper)
    return f0 + mp.log(mp.quad(lambda t: mp.exp(f(t) - f0), pts))
