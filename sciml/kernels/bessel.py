"""Logarithms of the modified Bessel functions I_v(x) and K_v(x), computed in log space.

``log_iv(v, x)`` and ``log_kv(v, x)`` never overflow or underflow for real order v >= 0 and
argument x >= 0 (float64 range permitting the *logarithm*, subnormal x included), broadcast like torch
binary ops (``ValueError`` naming v and x when the shapes do not broadcast), accept float32 and float64
tensors (float32 is computed in float64 internally and rounded once; Python numbers and lists are
float64) and carry
closed-form gradients with respect to x and v. CUDA tensors use a CuPy kernel when CuPy works
(see :mod:`sciml.kernels._bessel_cupy`), else this torch code.

Regions (rho = sqrt(v^2 + x^2), chosen per element, each region evaluated only on its elements):

* ``rho >= 23``: uniform (Debye) expansion written in terms of rho, with t = v / rho::

      log I = rho + v log(x / (v + rho)) - log(2 pi rho) / 2 + log(1 + sum_k P_k(t^2) / rho^k)
      log K = -rho - v log(x / (v + rho)) + log(pi / (2 rho)) / 2 + log(1 + sum_k (-1)^k P_k(t^2) / rho^k)

  where u_k(t) = t^k P_k(t^2) are the Debye polynomials. Each term is bounded by
  max_t |P_k| / rho^k uniformly in v, so the same formula is the large-x expansion when v is small
  (including v = 0). The number of terms (6, 12 or 20) is picked from rho so the first omitted term is
  below 1e-17.
* ``rho < 23``, log I: power series sum_k (x/2)^(2k+v) / (k! Gamma(k+v+1)), summed by term ratios
  outward from its largest term and anchored with ``lgamma`` (all terms positive: no cancellation).
* ``v`` or ``x >= 2^1020`` (where v + rho or rho overflow): the leading Debye terms in quarter scale
  (the omitted terms are below 1e-306 relative).
* ``rho < 23``, log K with x < 1e-100 and v >= 1/2: the leading term log(Gamma(v)/2 (2/x)^v), exact
  to O(x) relative (the recurrence below would overflow for subnormal x).
* ``rho < 23``, log K otherwise: Temme's series (x <= 2) or Steed's continued fraction CF2 (x > 2) for
  K_mu, K_{mu+1} with mu = v - round(v) in [-1/2, 1/2), then the (stable) upward recurrence
  K_{mu+j+1} = 2 (mu + j) / x K_{mu+j} + K_{mu+j-1} carried as ratios and summed logs.

Special values: x = 0 gives log I_0(0) = 0, log I_v(0) = -inf (v > 0) and log K_v(0) = +inf;
x = +inf gives +inf / -inf; v = +inf (finite x > 0) gives -inf / +inf. Negative or NaN v or x give
NaN, or raise ``ValueError`` when called with ``validate=True``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from sciml.validation import as_tensor

from . import _debye as _debye_poly

__all__ = ["log_iv", "log_kv", "log_bessel_ratio", "RHO_SMALL", "DEBYE_TIERS"]

#: Elements with sqrt(v^2 + x^2) below this use the series / continued-fraction methods.
RHO_SMALL = 23.0
#: (lower bound on rho, number of Debye terms), tested in order.
DEBYE_TIERS: tuple[tuple[float, int], ...] = ((290.0, 6), (44.0, 12), (RHO_SMALL, 20))

_EPS = 1e-17
# elements per block of the Debye evaluation and of Temme's series / CF2: their elementwise passes
# then run on cache-resident data
_CHUNK = 32768
_LOG_2 = math.log(2.0)
_LOG_2PI = math.log(2.0 * math.pi)
#: Below this argument the small-x leading terms are exact in float64 (their relative corrections
#: are O(x) or smaller) and the recurrence / series of the general code would overflow or underflow.
_X_TINY = 1e-100
#: From here on (v or x), v + sqrt(v^2 + x^2) may overflow: see _debye_huge.
_HUGE = 2.0**1020
_LOG_PI_2 = math.log(math.pi / 2.0)
# Taylor coefficients of 1 / Gamma(1 + z) about z = 0 (mpmath, 40 digits, rounded to float64).
_RGAMMA1P = (
    1.0, 0.5772156649015329, -0.6558780715202539, -0.04200263503409524, 0.16653861138229148,
    -0.04219773455554433, -0.009621971527876973, 0.0072189432466631, -0.0011651675918590652,
    -0.00021524167411495098, 0.0001280502823881162, -2.013485478078824e-05, -1.2504934821426706e-06,
    1.133027231981696e-06, -2.056338416977607e-07, 6.116095104481416e-09, 5.002007644469223e-09,
    -1.18127457048702e-09, 1.0434267116911005e-10, 7.782263439905071e-12, -3.696805618642206e-12,
    5.100370287454476e-13, -2.0583260535665066e-14, -5.348122539423018e-15, 1.2267786282382608e-15,
    -1.1812593016974588e-16, 1.1866922547516004e-18, 1.4123806553180319e-18, -2.29874568443537e-19,
)

# log(k!) for k = 0..63 (anchors of the power series of I_v)
_LOG_FACT = torch.tensor([math.lgamma(k + 1.0) for k in range(64)], dtype=torch.float64)

_coef_cache: dict[tuple[int, torch.device], tuple[Tensor, Tensor, Tensor]] = {}


def _debye_tables(n: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """(C, dC, k): C[k-1, j] = coef of s^j in P_k, dC[k-1, j] = coef of s^j in P_k', k = 1..n (column)."""
    key = (n, device)
    if key not in _coef_cache:
        c = torch.tensor(_debye_poly.coefficients(n), dtype=torch.float64, device=device)  # (n+1, n)
        j = torch.arange(1, n + 1, dtype=torch.float64, device=device).unsqueeze(1)
        dc = c[1:] * j  # d/ds: row j-1 gets j * c_j
        k = torch.arange(1, n + 1, dtype=torch.float64, device=device).unsqueeze(1)
        _coef_cache[key] = (c.T.contiguous(), dc.T.contiguous(), k)
    return _coef_cache[key]


def _horner(rows: Tensor, z: Tensor) -> Tensor:
    """sum_{k=1..n} rows[k-1] z^k for rows of shape (n, m) (Horner's rule, one pass per k)."""
    acc = rows[-1]
    for k in range(rows.shape[0] - 2, -1, -1):
        acc = torch.addcmul(rows[k], acc, z)
    return acc * z


# ----------------------------------------------------------------------------- Debye region
def _debye(
    v: Tensor, x: Tensor, n: int, want_i: bool, want_k: bool, grad: bool, rho: Tensor | None = None,
    tiny_x: bool = False,
) -> dict[str, Tensor]:
    c, dc, kk = _debye_tables(n, v.device)
    if rho is None:
        rho = torch.hypot(v, x)
    w = 1.0 / rho
    s = v * w
    s = s * s
    spow = torch.empty(n + 1, s.numel(), dtype=s.dtype, device=s.device)  # rows s^j, j = 0..n
    spow[0] = 1.0
    spow[1] = s
    for j in range(2, n + 1):
        torch.mul(spow[j - 1], s, out=spow[j])
    p = c @ spow  # (n, m): row k-1 = P_k(s)
    # log(x / (v + rho)), one rounding (a difference of logs would cancel); with tiny_x (some x below
    # ~1e-280) a difference of logs where the quotient is subnormal
    lx = torch.log(x / (v + rho))
    if tiny_x:
        lx = torch.where(x / (v + rho) < torch.finfo(x.dtype).tiny, torch.log(x) - torch.log(v + rho), lx)
    veta = rho + v * lx
    half = 0.5 * torch.log(rho)
    out: dict[str, Tensor] = {}
    if grad:
        dp = dc @ spow[:n]  # row k-1 = P_k'(s)
        kp = p * kk  # k P_k ; d(rho^-k)/dq = -k rho^-k (drho/dq) / rho
        drho_dx_over_rho = x * w * w
        ds_dx = -2.0 * s * drho_dx_over_rho
        ds_dv = 2.0 * v * drho_dx_over_rho * drho_dx_over_rho
        drho_dv_over_rho = v * w * w
    for name, flag, z in (("i", want_i, w), ("k", want_k, -w)):
        if not flag:
            continue
        ssum = _horner(p, z)  # sum_k (+-1)^k P_k(s) / rho^k
        if name == "i":
            out[name] = veta - 0.5 * _LOG_2PI - half + torch.log1p(ssum)
        else:
            out[name] = -veta + 0.5 * _LOG_PI_2 - half + torch.log1p(ssum)
        if grad:
            a = _horner(dp, z)
            b = _horner(kp, z)
            dsum_dx = a * ds_dx - b * drho_dx_over_rho
            dsum_dv = a * ds_dv - b * drho_dv_over_rho
            one = 1.0 + ssum
            if name == "i":  # I_{v+1}/I_v = x / (v + rho) - x / (2 rho^2) + S'/(1 + S), no cancellation
                out["ri"] = x / (v + rho) - 0.5 * drho_dx_over_rho + dsum_dx / one
                out["dix"] = out["ri"] + v / x
                out["div"] = lx - 0.5 * drho_dv_over_rho + dsum_dv / one
            else:
                out["dkx"] = -rho / x - 0.5 * drho_dx_over_rho + dsum_dx / one
                out["dkv"] = -lx - 0.5 * drho_dv_over_rho + dsum_dv / one
    return out


def _debye_huge(v: Tensor, x: Tensor, want_i: bool, want_k: bool, grad: bool) -> dict[str, Tensor]:
    """The Debye leading terms for v or x >= _HUGE, in quarter scale so that v + rho cannot overflow.

    The omitted terms are O(1 / rho) < 1e-306 relative; values beyond the float64 range round to inf.
    """
    vq, xq = 0.25 * v, 0.25 * x  # exact: both are far above the subnormal range or 0
    rq = torch.hypot(vq, xq)
    lx = torch.log(xq / (vq + rq))
    veta = 4.0 * (rq + vq * lx)  # rho + v log(x / (v + rho))
    half = 0.5 * (torch.log(rq) + 2.0 * _LOG_2)
    out: dict[str, Tensor] = {}
    if want_i:
        out["i"] = veta - 0.5 * _LOG_2PI - half
    if want_k:
        out["k"] = -veta + 0.5 * _LOG_PI_2 - half
    if grad:
        ratio = xq / (vq + rq)  # I_{v+1}/I_v
        if want_i:
            out.update(ri=ratio, dix=ratio + v / x, div=lx)
        if want_k:
            out.update(dkx=-rq / xq, dkv=-lx)
    return out


# ----------------------------------------------------------------------------- small rho, I
def _unsort(order: Tensor, *vals: Tensor) -> list[Tensor]:
    """Scatter values computed in ``order`` back to the original element order."""
    outs = []
    for val in vals:
        res = torch.empty_like(val)
        res.index_copy_(0, order, val)
        outs.append(res)
    return outs


def _order(key: Tensor) -> Tensor:
    """Permutation sorting the small integer-valued float ``key`` ascending (int16/int32 radix sort)."""
    if key.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=key.device)
    lo, hi = torch.aminmax(key)
    small = float(hi - lo) < 32767.0
    k = (key - lo).to(torch.int16 if small else torch.int32)
    return torch.sort(k, stable=True).indices


def _lgamma_1p(v: Tensor) -> Tensor:
    """lgamma(1 + v) without rounding 1 + v (lgamma has zeros at 1 and 2), for 0 <= v."""
    near = v <= 1.5
    a = torch.where(v <= 0.5, v, v - 1.0)  # v - 1 is exact for v in [0.5, 2]
    acc = torch.full_like(a, _RGAMMA1P[21])
    for c in reversed(_RGAMMA1P[1:21]):
        acc.mul_(a).add_(c)
    base = -torch.log1p(a * acc)  # log(1 / Gamma(1 + a)) = log1p(a * sum_k a_k a^(k-1))
    small = torch.where(v <= 0.5, base, base + torch.log(torch.where(near, v, 1.0)))
    if bool(near.all()):  # the power series only asks for v <= 1.5
        return small
    return torch.where(near, small, torch.lgamma(v + 1.0))


def _log_half(x: Tensor) -> Tensor:
    """log(x / 2), correctly rounded also where x / 2 is subnormal (and 0 for x = 5e-324).

    log(0.5 x) is kept elsewhere: log(x) - log(2) cancels for x near 2.
    """
    out = torch.log(0.5 * x)
    sub = x < 4.0 * torch.finfo(x.dtype).tiny
    if bool(sub.any()):
        out = torch.where(sub, torch.log(x) - _LOG_2, out)
    return out


def _series_i(v: Tensor, x: Tensor, grad: bool) -> dict[str, Tensor]:
    """Power series of I_v, summed outward from its largest term (rho < RHO_SMALL)."""
    # elements sorted by the position of the largest term, descending: the backward sum is active on a
    # prefix, and so (nearly) is the forward one, which shrinks without copying its state (elements of
    # the prefix that have converged just add smaller terms)
    kc = 0.5 * (torch.hypot(v, x) - v)
    order = _order(-torch.floor(64.0 * kc))  # floor(kc) is constant on each bucket of 1/64
    v = v.index_select(0, order)
    x = x.index_select(0, order)
    kstar = torch.floor(kc.index_select(0, order))
    y = 0.25 * x * x
    lx2 = _log_half(x)
    lg = torch.lgamma(kstar + v + 1.0)
    near = ((kstar == 0) & (v <= 1.5)).nonzero().squeeze(1)  # lgamma(1 + v) has zeros at v = 0, 1
    lg[near] = _lgamma_1p(v[near])
    ks = kstar.long()
    if ks.numel() and int(ks[0]) < _LOG_FACT.numel():  # ks[0] is the largest
        log_kfact = _LOG_FACT.to(v.device)[ks]
    else:
        log_kfact = torch.lgamma(kstar + 1.0)
    log_t0 = (2.0 * kstar + v) * lx2 - log_kfact - lg
    rest = torch.empty_like(v)  # sum of the other terms relative to the anchor (anchor = 1)
    if grad:
        psi0 = torch.digamma(kstar + v + 1.0)
        sx = torch.empty_like(v)  # sum term * 2k (anchor included)
        sv = torch.empty_like(v)  # sum term * psi(k + v + 1) (anchor included)
    # forward from the anchor (terms decrease monotonically)
    term, k, acc, vv, yy = torch.ones_like(v), kstar.clone(), torch.zeros_like(v), v, y
    if grad:
        psi, ax, av = psi0, 2.0 * kstar, psi0
    m = v.numel()
    for it in range(1, 400):
        k += 1.0  # in place (prefix views): fewer temporaries
        term.mul_(yy).div_(torch.add(k, vv).mul_(k))  # t_k = t_{k-1} y / (k (k + v))
        acc += term
        if grad:
            psi = psi + 1.0 / (k + vv)
            ax = ax + term * (2.0 * k)
            av = av + term * psi
        if it % 4 == 0 or it == 399:
            busy = (~(term <= _EPS * (1.0 + acc))).nonzero()
            new_m = int(busy[-1]) + 1 if (busy.numel() and it < 399) else 0
            if new_m < m:
                rest[new_m:m] = acc[new_m:]
                if grad:
                    sx[new_m:m] = ax[new_m:]
                    sv[new_m:m] = av[new_m:]
                m = new_m
                if m == 0:
                    break
                term, k, acc, vv, yy = term[:m], k[:m], acc[:m], vv[:m], yy[:m]
                if grad:
                    psi, ax, av = psi[:m], ax[:m], av[:m]
    # backward from the anchor down to k = 0: the elements with kstar >= j are a prefix
    counts = torch.bincount(kstar.long()).flip(0).cumsum(0).flip(0)  # counts[j] = #(kstar >= j)
    if counts.numel() > 1:
        nb = int(counts[1])
        vb, yb = v[:nb], y[:nb]
        term = torch.ones_like(vb)
        k = kstar[:nb].clone()
        accb = torch.zeros_like(vb)
        if grad:
            psi = psi0[:nb].clone()
            ax = torch.zeros_like(vb)
            av = torch.zeros_like(vb)
        for j in range(1, counts.numel()):
            m = int(counts[j])
            km = k[:m]
            term[:m] *= km * (km + vb[:m]) / yb[:m]
            if grad:
                psi[:m] -= 1.0 / (km + vb[:m])
            k[:m] -= 1.0
            accb[:m] += term[:m]
            if grad:
                ax[:m] += term[:m] * (2.0 * k[:m])
                av[:m] += term[:m] * psi[:m]
        rest[:nb] += accb
        if grad:
            sx[:nb] += ax
            sv[:nb] += av
    log_i = log_t0 + torch.log1p(rest)
    if not grad:
        (log_i,) = _unsort(order, log_i)
        return {"i": log_i}
    total = 1.0 + rest
    ri = sx / (x * total)  # I_{v+1}/I_v = sum t_k 2k / (x sum t_k)
    # below x = 1e-8 the ratio is x / (2 (v + 1)) to within x^2 / 8 < eps / 8 relative (its terms
    # x^2 / 4 underflow below 1e-154)
    ri = torch.where(x < 1e-8, x / (2.0 * (v + 1.0)), ri)
    div = lx2 - sv / total
    log_i, ri, div = _unsort(order, log_i, ri, div)
    xo = x.new_empty(x.shape)
    xo[order] = x
    vo = v.new_empty(v.shape)
    vo[order] = v
    return {"i": log_i, "ri": ri, "dix": ri + vo / xo, "div": div}


# ----------------------------------------------------------------------------- small rho, K
def _poly(coefs: tuple[float, ...], z: Tensor) -> Tensor:
    acc = torch.full_like(z, coefs[-1])
    for c in reversed(coefs[:-1]):
        acc.mul_(z).add_(c)
    return acc


def _temme(mu: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
    """log K_mu(x) and K_{mu+1}/K_mu for |mu| <= 1/2, 0 < x <= 2 (Temme's series)."""
    # elements sorted by x, descending: the ones still summing are (nearly) a prefix, which shrinks
    # without copying the state (elements of the prefix that have converged just add smaller terms)
    order = _order(-torch.floor(1024.0 * x))
    mu = mu.index_select(0, order)
    x = x.index_select(0, order)
    m2 = mu * mu
    even = _RGAMMA1P[0:22:2]  # |a_k| 2^-k < 1e-18 beyond k = 21 (|mu| <= 1/2)
    odd = _RGAMMA1P[1:22:2]
    gam2 = _poly(even, m2)  # (1/G(1-mu) + 1/G(1+mu)) / 2
    gam1 = -_poly(odd, m2)  # (1/G(1-mu) - 1/G(1+mu)) / (2 mu)
    gampl = gam2 - mu * gam1  # 1/G(1+mu)
    gammi = gam2 + mu * gam1  # 1/G(1-mu)
    pimu = math.pi * mu
    fact = torch.where(pimu == 0, 1.0, pimu / torch.sin(torch.where(pimu == 0, 1.0, pimu)))
    d = -_log_half(x)
    e = mu * d
    fact2 = torch.where(e == 0, 1.0, torch.sinh(e) / torch.where(e == 0, 1.0, e))
    ff = fact * (gam1 * torch.cosh(e) + gam2 * fact2 * d)
    ee = torch.exp(e)
    p = 0.5 * ee / gampl
    q = 0.5 / (ee * gammi)
    # c_i = dd^i / i! is carried as dd^i with 1/i! folded into the (fused) accumulations
    total, total1, cc, dd = ff.clone(), p.clone(), torch.ones_like(x), 0.25 * x * x
    out_total = torch.empty_like(x)
    out_total1 = torch.empty_like(x)
    m = x.numel()
    inv_fact = 1.0
    for i in range(1, 80):
        inv_fact /= i
        ff.mul_(i).add_(p).add_(q).div_(i * i - m2)  # in place (prefix views): fewer temporaries
        p.div_(i - mu)
        q.div_(i + mu)
        cc.mul_(dd)
        total.addcmul_(cc, ff, value=inv_fact)
        total1.addcmul_(cc, torch.sub(p, ff, alpha=i), value=inv_fact)
        if i % 4 == 0 or i == 79:
            busy = (~((cc * ff).abs() * inv_fact <= _EPS * total.abs())).nonzero()
            new_m = int(busy[-1]) + 1 if (busy.numel() and i < 79) else 0
            if new_m < m:
                out_total[new_m:m] = total[new_m:]
                out_total1[new_m:m] = total1[new_m:]
                m = new_m
                if m == 0:
                    break
                ff, total, p, total1, q, cc, dd, mu, m2 = (
                    t[:m] for t in (ff, total, p, total1, q, cc, dd, mu, m2)
                )
    log_k = torch.log(out_total)
    return tuple(_unsort(order, log_k, out_total1 * (2.0 / x) / out_total))  # type: ignore[return-value]


def _steed(mu: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
    """log K_mu(x) and K_{mu+1}/K_mu for |mu| <= 1/2, x > 2 (Steed's method, CF2)."""
    # elements sorted by x, ascending (CF2 converges faster for larger x): see _temme
    order = _order(torch.floor(16.0 * x))
    mu = mu.index_select(0, order)
    x = x.index_select(0, order)
    b = 2.0 * (1.0 + x)
    d = 1.0 / b
    a1 = 0.25 - mu * mu
    # recurrences of Numerical Recipes' bessik, with a_i = -a1 - i (i - 1) in closed form and the
    # products fused (addcmul) to cut the number of passes over the elements
    na1, c, q1, q2, q = -a1, a1.clone(), torch.zeros_like(x), torch.ones_like(x), a1.clone()
    delh, h = d.clone(), d.clone()
    s = 1.0 + a1 * d
    minus_one = torch.tensor(-1.0, dtype=x.dtype, device=x.device)
    out_h = torch.empty_like(x)
    out_s = torch.empty_like(x)
    m = x.numel()
    for i in range(2, 1000):
        a = na1 - float(i * (i - 1))  # the rest in place (prefix views): fewer temporaries
        c.mul_(a * (-1.0 / i))
        q1.addcmul_(b, q2, value=-1.0).div_(a)  # the new q2, in the buffer of q1
        q1, q2 = q2, q1
        q.addcmul_(c, q2)
        b.add_(2.0)
        d.mul_(a).add_(b).reciprocal_()
        delh.mul_(torch.addcmul(minus_one, b, d))
        h.add_(delh)
        s.addcmul_(q, delh)
        if i % 4 == 0 or i == 999:
            busy = (~((q * delh).abs() <= _EPS * s.abs())).nonzero()
            new_m = int(busy[-1]) + 1 if (busy.numel() and i < 999) else 0
            if new_m < m:
                out_h[new_m:m] = h[new_m:]
                out_s[new_m:m] = s[new_m:]
                m = new_m
                if m == 0:
                    break
                na1, c, q1, q2, q, b, d, delh, h, s = (
                    t[:m] for t in (na1, c, q1, q2, q, b, d, delh, h, s)
                )
    h = a1 * out_h
    log_k = 0.5 * (_LOG_PI_2 - torch.log(x)) - x - torch.log(out_s)
    return tuple(_unsort(order, log_k, (mu + x + 0.5 - h) / x))  # type: ignore[return-value]


def _tiny_k(v: Tensor, x: Tensor, grad: bool) -> dict[str, Tensor]:
    """log K_v(x) = log(Gamma(v) / 2 (2 / x)^v) for x < _X_TINY, v >= 1/2 (relative error O(x)).

    The general code's upward recurrence multiplies ratios ~ 2 v / x, which overflow for subnormal x.
    """
    log_2_x = _LOG_2 - torch.log(x)
    out = {"k": torch.lgamma(v) - _LOG_2 + v * log_2_x}
    if grad:
        out["dkx"] = -v / x
        out["dkv"] = torch.digamma(v) + log_2_x
    return out


def _small_k(v: Tensor, x: Tensor, grad: bool, grad_v: bool = True) -> dict[str, Tensor]:
    """log K for rho < RHO_SMALL: the leading term where x < _X_TINY and v >= 1/2, else Temme / CF2."""
    tiny = (x < _X_TINY) & (v >= 0.5) if x.numel() and float(x.min()) < _X_TINY else None
    if tiny is None or not bool(tiny.any()):
        return _small_k_general(v, x, grad, grad_v)
    out: dict[str, Tensor] = {}
    for mask, fn in ((tiny, lambda a, b: _tiny_k(a, b, grad)), (~tiny, lambda a, b: _small_k_general(a, b, grad, grad_v))):
        idx = mask.nonzero().squeeze(1)
        if idx.numel() == 0:
            continue
        for nm, val in fn(v.index_select(0, idx), x.index_select(0, idx)).items():
            out.setdefault(nm, torch.empty_like(v)).index_copy_(0, idx, val)
    return out


def _small_k_general(v: Tensor, x: Tensor, grad: bool, grad_v: bool = True) -> dict[str, Tensor]:
    # elements sorted by n = round(v), descending, so that the ones still recurring upward at step i
    # are a prefix (see below)
    n = torch.floor(v + 0.5)
    order = _order(-n)
    n_s = n.index_select(0, order)
    x_s = x.index_select(0, order)
    mu_s = v.index_select(0, order) - n_s
    log_k = torch.empty_like(x_s)
    r = torch.empty_like(x_s)
    low = x_s <= 2.0
    for mask, fn in ((low, _temme), (~low, _steed)):
        for idx in mask.nonzero().squeeze(1).split(_CHUNK):  # blocks: see _CHUNK
            lk, rk = fn(mu_s.index_select(0, idx), x_s.index_select(0, idx))
            log_k.index_copy_(0, idx, lk)
            r.index_copy_(0, idx, rk)
    # upward recurrence on ratios r_i = K_{mu+i+1}/K_{mu+i} = 2 (mu + i) / x + 1 / r_{i-1};
    # r_i <= (2 i + 1) / x, so a few ratios are multiplied before one log is taken (no overflow for
    # x >= 1e-60)
    counts = torch.bincount(n_s.long()).flip(0).cumsum(0).flip(0)  # counts[i] = #(n >= i)
    nmax = counts.numel() - 1
    if nmax >= 1:
        m1 = int(counts[1])
        two_x = 2.0 / x_s[:m1]
        two_mu_x = mu_s[:m1] * two_x
    acc = torch.zeros_like(r)
    chunk = 4 if (x.numel() == 0 or float(x.min()) >= 1e-60) else 1
    prod = torch.ones_like(r)
    for i in range(1, nmax + 1):
        m = int(counts[i])
        rm = r[:m]
        prod[:m] *= rm
        torch.add(torch.add(two_mu_x[:m], two_x[:m], alpha=i), rm.reciprocal(), out=rm)
        if i % chunk == 0:
            m0 = int(counts[i - chunk + 1])  # every element touched in this chunk
            acc[:m0] += torch.log(prod[:m0])
            prod[:m0] = 1.0
    acc += torch.log(prod)
    log_k += acc
    (log_k,) = _unsort(order, log_k)
    out = {"k": log_k}
    if grad:
        (ratio,) = _unsort(order, r)
        out["dkx"] = v / x - ratio  # K_v'/K_v = v/x - K_{v+1}/K_v
        # quadrature only when the order needs a gradient (the costly part of this region)
        out["dkv"] = _dlogk_dv_quad(v, x) if grad_v else torch.zeros_like(v)
    return out


def _dlogk_dv_quad(v: Tensor, x: Tensor, nodes: int = 400, chunk: int = 8192) -> Tensor:
    """d/dv log K_v(x) = int t sinh(vt) e^{-x cosh t} dt / int cosh(vt) e^{-x cosh t} dt (trapezoid)."""
    if v.numel() > chunk:  # bound the (elements x nodes) work arrays
        return torch.cat([_dlogk_dv_quad(a, b, nodes, chunk) for a, b in zip(v.split(chunk), x.split(chunk))])
    # upper limit: past the peak asinh(v/x), where x cosh t - v t exceeds its minimum by ~45
    t_peak = torch.asinh(v / x)
    upper = torch.maximum(torch.log((2.0 * (v + 45.0)) / x), t_peak) + 4.0
    upper = torch.maximum(upper, t_peak + 10.0 / torch.sqrt(torch.hypot(v, x)))
    j = torch.arange(nodes, dtype=v.dtype, device=v.device)
    t = upper.unsqueeze(1) * j / (nodes - 1)
    vt = v.unsqueeze(1) * t
    base = -x.unsqueeze(1) * torch.cosh(t) + vt
    # log cosh(vt) = vt + log((1 + e^{-2vt}) / 2); log sinh(vt) = vt + log((1 - e^{-2vt}) / 2)
    e2 = torch.exp(-2.0 * vt)
    lf = base + torch.log1p(e2) - math.log(2.0)
    m = lf.max(dim=1, keepdim=True).values
    wts = torch.ones_like(t)
    wts[:, 0] = 0.5
    f = torch.exp(lf - m) * wts
    g = torch.exp(base - m) * 0.5 * (-torch.expm1(-2.0 * vt)) * t * wts
    return g.sum(1) / f.sum(1)


# ----------------------------------------------------------------------------- dispatch
def _check_operand(name: str, val: object) -> None:
    if isinstance(val, bool):
        raise TypeError(f"{name} must be a real number, got bool")
    if not isinstance(val, (Tensor, int, float, list, tuple)):
        raise TypeError(f"{name} must be a torch.Tensor, a real number or a list of them, got {type(val).__name__}")
    if isinstance(val, Tensor) and val.is_complex():
        raise TypeError(f"{name} must be real, got {val.dtype}")


def _check_broadcast(v_shape: torch.Size, x_shape: torch.Size) -> None:
    for a, b in zip(reversed(v_shape), reversed(x_shape)):
        if a != b and a != 1 and b != 1:
            raise ValueError(f"v and x must broadcast against each other, got shapes {tuple(v_shape)} and "
                             f"{tuple(x_shape)}")


def _prepare(v: object, x: object, validate: bool) -> tuple[Tensor, Tensor, torch.dtype]:
    """Tensors for ``v`` and ``x`` in their common floating dtype, checked to broadcast.

    Floating tensors keep their dtype (float16 / bfloat16 become float32; two tensors promote);
    Python numbers, lists and non-floating tensors are float64, because the default float32 would
    turn 1e300 into inf.
    """
    _check_operand("v", v)
    _check_operand("x", x)
    tensors = [t for t in (v, x) if isinstance(t, Tensor)]
    device = tensors[0].device if tensors else torch.device("cpu")
    floats = [t.dtype for t in tensors if t.is_floating_point()]
    dtype = torch.promote_types(floats[0], floats[-1]) if floats else torch.float64
    if dtype not in (torch.float32, torch.float64):
        dtype = torch.float32 if dtype in (torch.float16, torch.bfloat16) else torch.float64
    v = as_tensor("v", v, dtype, device)
    x = as_tensor("x", x, dtype, device)
    _check_broadcast(v.shape, x.shape)
    if validate:
        for name, val in (("v", v), ("x", x)):
            if bool(torch.isnan(val).any()):
                raise ValueError(f"{name} contains NaN")
            if bool((val < 0).any()):
                raise ValueError(f"{name} must be >= 0, got min {float(val.min())}")
    return v, x, dtype


def _edge_gradients(out: dict[str, Tensor], v: Tensor, zero: Tensor, xinf: Tensor) -> None:
    """The gradients' limits at x = 0 and x = inf (from the small- and large-x leading terms).

    x -> 0: log I_v ~ v log(x / 2) - lgamma(v + 1), so d/dx -> +inf (0 for v = 0: I_0 is even) and
    d/dv -> -inf; log K_v ~ log(Gamma(v) / 2) + v log(2 / x) (-log log(1 / x) for v = 0), so
    d/dx -> -inf and d/dv -> +inf (0 for v = 0: K_v is even in v). x -> inf: log I_v ~ x and
    log K_v ~ -x, up to terms in v / x: d/dx -> +-1, d/dv -> 0.
    """
    v0 = v[zero] == 0
    if "dix" in out:
        out["dix"][zero] = torch.where(v0, 0.0, math.inf).to(torch.float64)
        out["div"][zero] = -math.inf
        out["dix"][xinf] = 1.0
        out["div"][xinf] = 0.0
    if "dkx" in out:
        out["dkx"][zero] = -math.inf
        out["dkv"][zero] = torch.where(v0, 0.0, math.inf).to(torch.float64)
        out["dkx"][xinf] = -1.0
        out["dkv"][xinf] = 0.0


def _evaluate(
    v: Tensor, x: Tensor, want_i: bool, want_k: bool, grad: bool, grad_v: bool = True
) -> dict[str, Tensor]:
    """Flattened float64 evaluation of every requested quantity (values and, if grad, d/dx, d/dv)."""
    v, x = torch.broadcast_tensors(v.to(torch.float64), x.to(torch.float64))
    shape = v.shape
    v = v.reshape(-1)
    x = x.reshape(-1)
    names = ([("i", "dix", "div")] if want_i else []) + ([("k", "dkx", "dkv")] if want_k else [])
    out: dict[str, Tensor] = {}
    # fast check that every element is regular (NaN fails both comparisons)
    if v.numel():
        (vmin, vmax), (xmin, xmax) = torch.aminmax(v), torch.aminmax(x)
        all_ok = 0.0 < float(xmin) and float(xmax) < math.inf and 0.0 <= float(vmin) and float(vmax) < math.inf
    else:
        all_ok = True
    fill = torch.empty_like if all_ok else (lambda t: torch.full_like(t, math.nan))
    for group in names:
        for nm in (group + (("ri",) if group[0] == "i" else ())) if grad else group[:1]:
            out[nm] = fill(v)
    ok = None if all_ok else (x > 0) & (x < math.inf) & (v >= 0) & (v < math.inf)
    if ok is not None and not bool(ok.all()):
        zero = (x == 0) & (v >= 0)
        xinf = torch.isinf(x) & (v >= 0) & torch.isfinite(v)
        vinf = torch.isinf(v) & (v > 0) & (x > 0) & torch.isfinite(x)
        if want_i:
            out["i"][zero] = torch.where(v[zero] == 0, 0.0, -math.inf).to(torch.float64)
            out["i"][xinf] = math.inf
            out["i"][vinf] = -math.inf
        if want_k:
            out["k"][zero] = math.inf
            out["k"][xinf] = -math.inf
            out["k"][vinf] = math.inf
        if grad:
            _edge_gradients(out, v, zero, xinf)
        if "ri" in out:  # I_{v+1}/I_v -> 0 as x -> 0, -> 1 as x -> inf, -> 0 as v -> inf
            out["ri"][zero] = 0.0
            out["ri"][xinf] = 1.0
            out["ri"][vinf] = 0.0
        if not bool(ok.any()):
            return {k: t.reshape(shape) for k, t in out.items()}
        idx = ok.nonzero().squeeze(1)
        vo = v[idx]
        xo = x[idx]
    else:
        idx = None
        vo, xo = v, x
    # x / (v + rho) of the Debye region underflows below ~1e-290 (see _debye)
    tiny_x = bool(xo.numel()) and float(xmin if idx is None else xo.min()) < 1e-280
    rho = torch.hypot(vo, xo)
    if not xo.numel():
        big = 0.0
    elif idx is None:
        big = max(float(vmax), float(xmax))
    else:
        big = float(torch.maximum(vo.max(), xo.max()))
    if big >= _HUGE:  # v + rho (or rho) would overflow: leading terms, scaled
        huge = (vo >= _HUGE) | (xo >= _HUGE)
        hsel = huge.nonzero().squeeze(1)
        res = _debye_huge(vo.index_select(0, hsel), xo.index_select(0, hsel), want_i, want_k, grad)
        for nm, val in res.items():
            out[nm].index_copy_(0, hsel if idx is None else idx[hsel], val)
        rho = torch.where(huge, math.nan, rho)  # NaN: in no region below
    upper = math.inf
    for lower, nterms in DEBYE_TIERS:
        above = rho >= lower
        sel = (above if upper == math.inf else above & (rho < upper)).nonzero().squeeze(1)
        upper = lower
        if sel.numel() == 0:
            continue
        dst = sel if idx is None else idx[sel]
        for part, dpart in zip(sel.split(_CHUNK), dst.split(_CHUNK)):  # chunks: temporaries stay in cache
            vs, xs, rs = (t.index_select(0, part) for t in (vo, xo, rho))
            res = _debye(vs, xs, nterms, want_i, want_k, grad, rs, tiny_x)
            for nm, val in res.items():
                out[nm].index_copy_(0, dpart, val)
    sel = (rho < RHO_SMALL).nonzero().squeeze(1)
    if sel.numel():
        vs, xs = vo.index_select(0, sel), xo.index_select(0, sel)
        res = {}
        if want_i:
            res.update(_series_i(vs, xs, grad))
        if want_k:
            res.update(_small_k(vs, xs, grad, grad_v))
        dst = sel if idx is None else idx[sel]
        for nm, val in res.items():
            out[nm].index_copy_(0, dst, val)
    return {k: t.reshape(shape) for k, t in out.items()}


def _compute(v: Tensor, x: Tensor, kind: str, grad: bool, grad_v: bool = True) -> dict[str, Tensor]:
    if v.is_cuda or x.is_cuda:
        from . import _bessel_cupy

        res = _bessel_cupy.evaluate(v, x, kind, grad)
        if res is not None:
            return res
    return _evaluate(v, x, kind == "i", kind == "k", grad, grad_v)


class _LogBessel(torch.autograd.Function):
    """log I or log K with closed-form gradients (Bessel ratios for x, expansions/quadrature for v)."""

    @staticmethod
    def forward(ctx, v: Tensor, x: Tensor, kind: str) -> Tensor:  # type: ignore[override]
        grad = bool(ctx.needs_input_grad[0] or ctx.needs_input_grad[1])
        res = _compute(v, x, kind, grad, bool(ctx.needs_input_grad[0]))
        value = res[kind].to(v.dtype)
        if grad:
            ctx.save_for_backward(res["d" + kind + "v"], res["d" + kind + "x"])
            ctx.shapes = (v.shape, x.shape)
        return value

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gout: Tensor) -> tuple[Tensor | None, Tensor | None, None]:  # type: ignore[override]
        dv, dx = ctx.saved_tensors
        vshape, xshape = ctx.shapes
        g = gout.to(torch.float64)
        gv = gx = None
        if ctx.needs_input_grad[0]:
            gv = (g * dv).sum_to_size(vshape).to(gout.dtype)
        if ctx.needs_input_grad[1]:
            gx = (g * dx).sum_to_size(xshape).to(gout.dtype)
        return gv, gx, None


def _apply(kind: str, v: object, x: object, validate: bool) -> Tensor:
    vt, xt, _ = _prepare(v, x, validate)
    if vt.requires_grad or xt.requires_grad:
        return _LogBessel.apply(vt, xt, kind)
    return _compute(vt, xt, kind, False)[kind].to(vt.dtype)


def log_iv(v: Tensor | float, x: Tensor | float, *, validate: bool = False) -> Tensor:
    """log I_v(x), the logarithm of the modified Bessel function of the first kind.

    Args:
        v: order(s) >= 0, any shape broadcastable with ``x``.
        x: argument(s) >= 0.
        validate: raise ``ValueError`` for NaN or negative entries instead of returning NaN.

    Returns:
        Tensor of the broadcast shape, in the promoted floating dtype of the tensor arguments
        (float32 or float64; float32 is computed in float64 and rounded once); float64 when both
        are Python numbers / lists or non-floating tensors. Differentiable in x (d/dx log I = I_{v+1}/I_v
        + v/x) and in v. ``log_iv(0, 0) = 0``, ``log_iv(v > 0, 0) = -inf``; NaN for v < 0 or x < 0.
        At x = 0 and x = inf the gradients are their limits (see ``_edge_gradients``).
    """
    return _apply("i", v, x, validate)


def log_kv(v: Tensor | float, x: Tensor | float, *, validate: bool = False) -> Tensor:
    """log K_v(x), the logarithm of the modified Bessel function of the second kind.

    Args:
        v: order(s) >= 0 (K_{-v} = K_v, but negative input is treated as invalid like in log_iv).
        x: argument(s) >= 0.
        validate: raise ``ValueError`` for NaN or negative entries instead of returning NaN.

    Returns:
        Tensor of the broadcast shape and promoted floating dtype. Differentiable in x
        (d/dx log K = v/x - K_{v+1}/K_v) and in v. ``log_kv(v, 0) = +inf``; the gradients at x = 0
        and x = inf are their limits.
    """
    return _apply("k", v, x, validate)


def log_bessel_ratio(v: Tensor | float, x: Tensor | float, *, validate: bool = False) -> Tensor:
    """I_{v+1}(x) / I_v(x) computed without cancellation (not differentiable).

    Despite the name, the ratio itself (in [0, 1)), not its logarithm. Uses d/dx log I_v(x) - v/x
    from the closed-form derivative of the active region; this is the mean resultant length
    A_p(kappa) = I_{p/2}(kappa) / I_{p/2-1}(kappa) of the von Mises-Fisher distribution with
    v = p/2 - 1. Limits: 0 at x = 0, 1 at x = inf, 0 at v = inf (finite x); x / (2 (v + 1)) for
    x < 1e-8 (subnormal x included). Dtypes, broadcasting and ``validate`` as in :func:`log_iv`.
    """
    vt, xt, dtype = _prepare(v, x, validate)
    vv, xx = torch.broadcast_tensors(vt.to(torch.float64), xt.to(torch.float64))
    res = _evaluate(vv, xx, True, False, True, False)  # torch path (any device): it carries the ratio formulas
    return res["ri"].to(dtype)
