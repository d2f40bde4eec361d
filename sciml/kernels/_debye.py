"""Debye polynomials u_k(t) of the uniform asymptotic expansion of I_v and K_v (DLMF 10.41.10).

The polynomials are generated exactly (rational arithmetic) from the recurrence

    u_{k+1}(t) = t^2 (1 - t^2) u_k'(t) / 2 + (1/8) int_0^t (1 - 5 s^2) u_k(s) ds,   u_0 = 1,

and stored as ``u_k(t) = t^k * P_k(t^2)``: ``coefficients(n)[j, k-1]`` is the coefficient of s^j in
P_k(s) for k = 1..n, j = 0..n. With rho = sqrt(v^2 + x^2), t = v / rho the k-th Debye term is
``u_k(t) / v^k = P_k(t^2) / rho^k``, which stays finite as v -> 0 (it becomes the large-x Hankel
expansion), so one formula covers both the large-order and the large-argument regions.
"""

from __future__ import annotations

from fractions import Fraction
from functools import cache

__all__ = ["debye_polynomials", "coefficients"]


def _mul(p: dict[int, Fraction], q: dict[int, Fraction]) -> dict[int, Fraction]:
    out: dict[int, Fraction] = {}
    for e, c in p.items():
        for f, d in q.items():
            out[e + f] = out.get(e + f, Fraction(0)) + c * d
    return out


@cache
def debye_polynomials(n: int) -> tuple[dict[int, Fraction], ...]:
    """Exact u_0..u_n as ``{power of t: coefficient}`` dictionaries."""
    polys: list[dict[int, Fraction]] = [{0: Fraction(1)}]
    for _ in range(n):
        u = polys[-1]
        du = {e - 1: c * e for e, c in u.items() if e > 0}
        a = _mul({2: Fraction(1, 2), 4: Fraction(-1, 2)}, du)
        b = {e + 1: c / (8 * (e + 1)) for e, c in _mul({0: Fraction(1), 2: Fraction(-5)}, u).items()}
        nxt = dict(a)
        for e, c in b.items():
            nxt[e] = nxt.get(e, Fraction(0)) + c
        polys.append({e: c for e, c in nxt.items() if c != 0})
    return tuple(polys)


@cache
def coefficients(n: int) -> tuple[tuple[float, ...], ...]:
    """Rows j = 0..n, columns k = 1..n: coefficient of s^j in P_k(s) (see module docstring)."""
    polys = debye_polynomials(n)
    rows = []
    for j in range(n + 1):
        rows.append(tuple(float(polys[k].get(k + 2 * j, Fraction(0))) for k in range(1, n + 1)))
    return tuple(rows)
