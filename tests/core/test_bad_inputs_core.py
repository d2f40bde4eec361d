"""Bad-input matrix of the core's public entry points (kernels, distributions, metrics, targets,
registry, CLI).

Each case is a call and what it must end in: a clear error (an allowed exception type whose message
names the argument) or a correct result (checked against a closed form or mpmath). ``classify``
sorts any outcome into clear error / correct result / unclear error / silent wrong / hang; run this
file as a script to print the counts for the code as it is::

    .venv/bin/python tests/core/test_bad_inputs_core.py
"""

from __future__ import annotations

import math
import signal
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import mpmath as mp
import pytest
import torch

import sciml
from sciml import cli
from sciml import metrics as M
from sciml import targets as T
from sciml.distributions import VonMisesFisher, fit_vmf, mean_resultant_length, vmf_kappa_mle
from sciml.kernels import Kronecker, log_bessel_ratio, log_iv, log_kv
from sciml.kernels._bessel_reference import log_k as mp_log_k

F64 = torch.float64
EPS64 = torch.finfo(F64).eps
EPS32 = torch.finfo(torch.float32).eps
NAN, INF = math.nan, math.inf
EULER = 0.5772156649015329
CLEAR_TYPES = (ValueError, TypeError, FileNotFoundError, LookupError, sciml.PluginError,
               sciml.DeviceUnavailableError, sciml.SaveFileError)


# ------------------------------------------------------------------------------ the harness
@dataclass
class Raises:
    """The call must raise one of ``types`` with a message containing every string in ``names``."""

    types: type | tuple[type, ...]
    names: tuple[str, ...]


@dataclass
class Returns:
    """The call must return a value for which ``check`` is true (``what``: the expected value).

    An exception instead counts as a clear error only when its message names all of ``names``
    (a clear refusal of an input that has a correct answer), else as an unclear one.
    """

    check: Callable[[Any], bool]
    what: str
    names: tuple[str, ...] | None = None


@dataclass
class Warns:
    """The call must return and emit a ``category`` warning whose message contains ``names``."""

    category: type[Warning]
    names: tuple[str, ...]


def raises(types: type | tuple[type, ...], *names: str) -> Raises:
    return Raises(types, names)


def close(expected: float, rel: float, abs_: float = 0.0) -> Returns:
    """A float / 0-dim tensor within ``rel * |expected| + abs_`` of ``expected`` (infs must match)."""

    def check(got: Any) -> bool:
        g = float(got)
        if math.isinf(expected) or math.isnan(expected):
            return g == expected or (math.isnan(expected) and math.isnan(g))
        return abs(g - expected) <= rel * abs(expected) + abs_

    return Returns(check, f"{expected!r} (rel {rel:.1e})")


def is_(pred: Callable[[Any], bool], what: str, *names: str) -> Returns:
    return Returns(pred, what, names or None)


class _Timeout(Exception):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise _Timeout


def classify(fn: Callable[[], Any], expect: Raises | Returns | Warns, timeout: float = 30.0) -> tuple[str, str]:
    """Run ``fn`` and return ``(outcome, detail)``; outcome in
    clear error / correct result / unclear error / silent wrong / hang."""
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            value = fn()
    except _Timeout:
        return "hang", f"no result within {timeout} s"
    except SystemExit as exc:  # argparse
        return "unclear error", f"SystemExit({exc.code})"
    except Exception as exc:  # noqa: BLE001 - classifying is the point
        msg = f"{type(exc).__name__}: {exc}"
        names = expect.names
        types = expect.types if isinstance(expect, Raises) else CLEAR_TYPES
        if names is None:
            return "unclear error", msg
        if isinstance(exc, types) and isinstance(exc, CLEAR_TYPES) and all(n in str(exc) for n in names):
            return "clear error", msg
        return "unclear error", msg
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    if isinstance(expect, Warns):
        hit = [w for w in caught if issubclass(w.category, expect.category)
               and all(n in str(w.message) for n in expect.names)]
        return ("clear error", str(hit[0].message)) if hit else ("silent wrong", f"returned {value!r}, no warning")
    if isinstance(expect, Returns):
        try:
            ok = bool(expect.check(value))
        except Exception as exc:  # noqa: BLE001
            ok, value = False, f"{value!r} ({type(exc).__name__}: {exc})"
        return ("correct result" if ok else "silent wrong"), f"returned {value!r}, expected {expect.what}"
    return "silent wrong", f"returned {value!r}, expected {type(expect).__name__} {expect.names}"


CASES: list[tuple[str, Callable[[], Any], Raises | Returns | Warns]] = []


def case(cid: str, fn: Callable[[], Any], expect: Raises | Returns | Warns) -> None:
    CASES.append((cid, fn, expect))


def t64(*a: Any) -> torch.Tensor:
    return torch.tensor(a[0] if len(a) == 1 else list(a), dtype=F64)


# ------------------------------------------------------------------------------ Bessel
# Tolerances: a log-Bessel value of magnitude L carries about |L| eps of rounding from the final
# additions, and the leading-term closed forms below are exact to well below eps for these tiny
# (or huge) arguments; 8 eps relative covers the few roundings of the evaluation.
R64 = 8 * EPS64


def _lead_log_i(v: float, x: float) -> float:
    """log I_v(x) = v log(x/2) - lgamma(v+1) + log(1 + x^2 / (4 (v+1)) + ...), x -> 0."""
    return float(v * (mp.log(mp.mpf(x)) - mp.log(2)) - mp.loggamma(v + 1) + mp.log1p(mp.mpf(x) ** 2 / (4 * (v + 1))))


def _lead_log_k(v: float, x: float) -> float:
    """log K_v(x) ~ log(Gamma(v)/2 (2/x)^v) (v > 0), log(log(2/x) - gamma) (v = 0), x -> 0."""
    x = mp.mpf(x)
    if v == 0:
        return float(mp.log(mp.log(2 / x) - EULER))
    return float(mp.loggamma(v) - mp.log(2) + v * mp.log(2 / x))


for v, x in [(1.0, 1e-310), (0.0, 1e-310), (0.3, 1e-310), (5.0, 1e-300), (1.0, 1e-100), (50.0, 1e-70),
             (2.5, 1e-200), (1.0, 5e-324), (0.0, 5e-324), (0.7, 5e-324), (1e5, 1e-300), (22.9, 1e-320),
             (50.0, 5e-324), (1e5, 5e-324), (0.5, 1e-101), (1.0, 1e-99)]:
    # the O(x^2) / O((x/2)^(2v)) corrections are below 1e-40 relative here
    case(f"log_kv(v={v}, x={x}) tiny x", lambda v=v, x=x: log_kv(t64(v), t64(x)), close(_lead_log_k(v, x), R64))
    case(f"log_iv(v={v}, x={x}) tiny x", lambda v=v, x=x: log_iv(t64(v), t64(x)), close(_lead_log_i(v, x), R64))

# huge x: I_{1/2}(x) = sqrt(2/(pi x)) sinh x, K_{1/2}(x) = sqrt(pi/(2x)) e^-x (exact closed forms)
for x in (1e300, 1e308):
    case(f"log_iv(0.5, {x}) huge x", lambda x=x: log_iv(t64(0.5), t64(x)), close(x - 0.5 * (math.log(2 * math.pi) + math.log(x)), R64))
    case(f"log_kv(0.5, {x}) huge x", lambda x=x: log_kv(t64(0.5), t64(x)), close(-x + 0.5 * (math.log(math.pi / 2) - math.log(x)), R64))
# huge v at x = 1: the leading terms are exact to O(1/v)
for v in (1e10, 1e300):
    case(f"log_iv({v}, 1) huge v", lambda v=v: log_iv(t64(v), t64(1.0)), close(_lead_log_i(v, 1.0), R64))
    case(f"log_kv({v}, 1) huge v", lambda v=v: log_kv(t64(v), t64(1.0)), close(_lead_log_k(v, 1.0), R64))


def _huge_log_ik(v: float, x: float) -> tuple[float, float, float]:
    """Leading Debye terms of log I and log K (the rest is O(1/rho) < 1e-306 relative) and the
    conditioning (rho + |v log(x / (v + rho))|) / |log I| of the cancelling sum."""
    v, x = mp.mpf(v), mp.mpf(x)
    rho = mp.sqrt(v * v + x * x)
    eta = rho + v * mp.log(x / (v + rho))
    log_i = eta - mp.log(2 * mp.pi * rho) / 2
    log_k = -eta + mp.log(mp.pi / (2 * rho)) / 2
    return float(log_i), float(log_k), float((rho + abs(eta - rho)) / abs(log_i))


# v + rho (and rho) overflow float64 here while log I and log K are finite
for v, x in [(1e308, 1e308), (1.5e308, 1e308), (1e308, 1e300)]:
    ref_i, ref_k, cond = _huge_log_ik(v, x)
    case(f"log_iv({v}, {x}) rho overflows", lambda v=v, x=x: log_iv(v, x), close(ref_i, 8 * EPS64 * cond))
    case(f"log_kv({v}, {x}) rho overflows", lambda v=v, x=x: log_kv(v, x), close(ref_k, 8 * EPS64 * cond))
case("ratio(1e308, 1e308) = sqrt(2) - 1", lambda: log_bessel_ratio(1e308, 1e308), close(math.sqrt(2) - 1, 8 * EPS64))
mp.mp.dps = 50
case("log_kv(1e4, 50) large v vs mpmath", lambda: log_kv(t64(1e4), t64(50.0)), close(float(mp_log_k(1e4, 50.0)), R64))
case("log_iv(1e4, 50) large v vs mpmath", lambda: log_iv(t64(1e4), t64(50.0)),
     close(float(mp.log(mp.besseli(1e4, 50))), R64))

# Python scalars / lists are float64 (1e300 stays finite), tensors keep their dtype
case("log_iv(0.5, 1e300) Python floats -> float64", lambda: log_iv(0.5, 1e300),
     is_(lambda r: r.dtype == F64 and float(r) == 1e300, "float64 tensor 1e300"))
case("log_kv(1, 1e-310) Python floats", lambda: log_kv(1, 1e-310), close(_lead_log_k(1.0, 1e-310), R64))
case("log_kv list v", lambda: log_kv([0.5, 0.5], 2.0),
     is_(lambda r: r.dtype == F64 and r.shape == (2,) and abs(float(r[0]) - (0.5 * math.log(math.pi / 4) - 2)) <= R64 * 2.5,
         "float64 (2,) = log sqrt(pi/4) - 2", "v"))
case("log_iv float32 tensor keeps float32", lambda: log_iv(torch.tensor(0.5), 3.0),
     is_(lambda r: r.dtype == torch.float32 and abs(float(r) - math.log(math.sqrt(2 / (3 * math.pi)) * math.sinh(3.0))) <= EPS32,
         "float32 log I_1/2(3)"))
case("log_iv int tensors", lambda: log_iv(torch.tensor(0), torch.tensor(0)), is_(lambda r: r.is_floating_point() and float(r) == 0.0, "0.0"))
case("log_iv empty", lambda: log_iv(torch.ones(0, dtype=F64), torch.ones(0, dtype=F64)), is_(lambda r: r.shape == (0,), "shape (0,)"))
case("log_iv shape mismatch", lambda: log_iv(torch.ones(3), torch.ones(4)), raises(ValueError, "v", "x", "(3,)", "(4,)"))
case("log_kv shape mismatch", lambda: log_kv(torch.ones(2, 3), torch.ones(2)), raises(ValueError, "v", "x"))
case("log_bessel_ratio shape mismatch", lambda: log_bessel_ratio(torch.ones(3), torch.ones(4)), raises(ValueError, "v", "x"))
case("log_iv v str", lambda: log_iv("1", 2.0), raises(TypeError, "v"))
case("log_kv x None", lambda: log_kv(1.0, None), raises(TypeError, "x"))
case("log_iv complex x", lambda: log_iv(1.0, torch.tensor(1j)), raises(TypeError, "x"))
case("log_iv x=NaN validate", lambda: log_iv(1.0, NAN, validate=True), raises(ValueError, "x"))
case("log_kv v<0 validate", lambda: log_kv(-1.0, 1.0, validate=True), raises(ValueError, "v"))
case("log_iv x=NaN -> NaN (documented)", lambda: log_iv(1.0, NAN), is_(lambda r: math.isnan(float(r)), "nan"))
case("log_iv(0, 0) = 0", lambda: log_iv(0.0, 0.0), close(0.0, 0.0))
case("log_iv(1, 0) = -inf", lambda: log_iv(1.0, 0.0), close(-INF, 0.0))
case("log_kv(1, 0) = inf", lambda: log_kv(1.0, 0.0), close(INF, 0.0))
case("log_kv(1, inf) = -inf", lambda: log_kv(1.0, INF), close(-INF, 0.0))
case("log_iv(inf, 1) = -inf", lambda: log_iv(INF, 1.0), close(-INF, 0.0))

# the ratio I_{v+1}/I_v: limits 0 (x -> 0), 1 (x -> inf), 0 (v -> inf); I_{3/2}/I_{1/2} = coth x - 1/x
case("ratio x=0 -> 0", lambda: log_bessel_ratio(1.0, 0.0), close(0.0, 0.0))
case("ratio v=0, x=0 -> 0", lambda: log_bessel_ratio(0.0, 0.0), close(0.0, 0.0))
case("ratio x=inf -> 1", lambda: log_bessel_ratio(1.0, INF), close(1.0, 0.0))
case("ratio v=inf -> 0", lambda: log_bessel_ratio(INF, 1.0), close(0.0, 0.0))
case("ratio x=1e300 Python float", lambda: log_bessel_ratio(1.0, 1e300), close(1.0, EPS64))
case("ratio x=1e-310 ~ x/(2(v+1))", lambda: log_bessel_ratio(t64(1.0), t64(1e-310)), close(1e-310 / 4, 1e-12))  # subnormal: ~1e-12 relative
case("ratio x=1e-200 ~ x/(2(v+1))", lambda: log_bessel_ratio(t64(2.5), t64(1e-200)), close(1e-200 / 7, 4 * EPS64))
case("ratio(0.5, 1e-5) = coth x - 1/x", lambda: log_bessel_ratio(t64(0.5), t64(1e-5)),
     close(float(mp.coth(mp.mpf(1e-5)) - 1 / mp.mpf(1e-5)), 8 * EPS64))
case("ratio(0.5, 3) = coth x - 1/x", lambda: log_bessel_ratio(t64(0.5), t64(3.0)), close(1 / math.tanh(3.0) - 1 / 3, 8 * EPS64))
case("ratio Python floats float64", lambda: log_bessel_ratio(0.5, 3.0), is_(lambda r: r.dtype == F64, "float64"))



def _grads(fn: Callable, v: float, x: float) -> tuple[float, float]:
    vt = torch.tensor(v, dtype=F64, requires_grad=True)
    xt = torch.tensor(x, dtype=F64, requires_grad=True)
    fn(vt, xt).backward()
    return float(vt.grad), float(xt.grad)


def _grads_close(got: tuple[float, float], want: tuple[float, float], rel: float) -> bool:
    return all(abs(g - w) <= rel * abs(w) for g, w in zip(got, want))


# gradients in the tiny-x region: d/dx log K = -v/x, d/dv log K = digamma(v) + log(2/x) (+ O(x));
# huge region: d/dx log I = x / (v + rho) + v / x, d/dv log I = log(x / (v + rho)) (+ O(1/rho))
case("grad log_kv(2, 1e-200)", lambda: _grads(log_kv, 2.0, 1e-200),
     is_(lambda g: _grads_close(g, (float(mp.digamma(2) + mp.log(2 / mp.mpf(1e-200))), -2e200), 8 * EPS64),
         "(digamma(2) + log(2/x), -2/x)"))
case("grad log_iv(1e308, 1e308)", lambda: _grads(log_iv, 1e308, 1e308),
     is_(lambda g: _grads_close(g, (math.log(math.sqrt(2) - 1), math.sqrt(2) - 1 + 1.0), 8 * EPS64),
         "(log(sqrt 2 - 1), sqrt 2)"))
case("log_bessel_ratio x list", lambda: log_bessel_ratio(0.5, [3.0, INF]),
     is_(lambda r: r.dtype == F64 and abs(float(r[0]) - (1 / math.tanh(3.0) - 1 / 3)) <= 8 * EPS64 and float(r[1]) == 1.0,
         "[coth 3 - 1/3, 1]", "x"))
case("log_iv v bool", lambda: log_iv(True, 1.0), raises(TypeError, "v"))
case("log_iv ragged list", lambda: log_iv([[1.0], [1.0, 2.0]], 1.0), raises(TypeError, "v"))


# ------------------------------------------------------------------------------ Kronecker
def _eye(n: int) -> torch.Tensor:
    return torch.eye(n, dtype=F64)


case("Kronecker logdet (-I) x (-I) = 0", lambda: Kronecker([-_eye(2), -_eye(3)]).logdet(), close(0.0, 0.0, 8 * EPS64))
case("Kronecker logdet neg x neg", lambda: Kronecker([-torch.diag(t64(1.0, 2.0)), -torch.diag(t64(3.0, 4.0))]).logdet(),
     close(math.log(3 * 4 * 6 * 8), 8 * EPS64))
case("Kronecker logdet (-I) x (-I) x I", lambda: Kronecker([-_eye(2), -_eye(2), _eye(2)]).logdet(), close(0.0, 0.0, 8 * EPS64))
case("Kronecker logdet indefinite", lambda: Kronecker([-_eye(2), _eye(3)]).logdet(), raises(ValueError, "positive definite"))
case("Kronecker logdet shift<0", lambda: Kronecker([_eye(2)]).logdet(-1.0), raises(ValueError, "shift"))
case("Kronecker logdet shift NaN", lambda: Kronecker([_eye(2)]).logdet(NAN), raises(ValueError, "shift"))
case("Kronecker logdet shift str", lambda: Kronecker([_eye(2)]).logdet("1"), raises(TypeError, "shift"))
case("Kronecker logdet nonsymmetric", lambda: Kronecker([torch.tensor([[1.0, 2.0], [0.0, 1.0]], dtype=F64)]).logdet(),
     raises(ValueError, "factors[0]", "symmetric"))
case("Kronecker factors []", lambda: Kronecker([]), raises(ValueError, "factors"))
case("Kronecker factors tensor", lambda: Kronecker(_eye(2)), raises(TypeError, "factors"))
case("Kronecker factors list of lists", lambda: Kronecker([[[1.0]]]), raises(TypeError, "factors[0]"))
case("Kronecker factor NaN", lambda: Kronecker([_eye(2) * NAN]), raises(ValueError, "factors[0]"))
case("Kronecker factor int", lambda: Kronecker([torch.eye(2, dtype=torch.int64)]), raises(TypeError, "factors[0]"))
case("Kronecker factor non-square", lambda: Kronecker([torch.ones(2, 3, dtype=F64)]), raises(ValueError, "factors[0]"))
case("Kronecker factor 0x0", lambda: Kronecker([torch.ones(0, 0, dtype=F64)]), raises(ValueError, "factors[0]"))
case("Kronecker mixed dtypes", lambda: Kronecker([_eye(2), torch.eye(2)]), raises(TypeError, "factors"))
case("Kronecker matmul wrong length", lambda: Kronecker([_eye(2), _eye(3)]).matmul(torch.ones(5, dtype=F64)), raises(ValueError, "x"))
case("Kronecker matmul dtype", lambda: Kronecker([_eye(2)]).matmul(torch.ones(2)), raises(TypeError, "x"))
case("Kronecker matmul list", lambda: Kronecker([_eye(2)]).matmul([1.0, 2.0]), raises(TypeError, "x"))
case("Kronecker matmul NaN", lambda: Kronecker([_eye(2)]).matmul(t64(NAN, 1.0)), raises(ValueError, "x"))
case("Kronecker matmul empty batch", lambda: Kronecker([2 * _eye(2), _eye(3)]).matmul(torch.ones(0, 6, dtype=F64)),
     is_(lambda r: r.shape == (0, 6), "shape (0, 6)"))
case("Kronecker solve singular", lambda: Kronecker([torch.zeros(2, 2, dtype=F64)]).solve(torch.ones(2, dtype=F64)),
     raises(ValueError, "singular"))
case("Kronecker solve method", lambda: Kronecker([_eye(2)]).solve(torch.ones(2, dtype=F64), method="lu"), raises(ValueError, "method"))
case("Kronecker solve refine", lambda: Kronecker([_eye(2)]).solve(torch.ones(2, dtype=F64), refine=-1), raises(ValueError, "refine"))
case("Kronecker solve b NaN", lambda: Kronecker([_eye(2)]).solve(t64(NAN, 1.0)), raises(ValueError, "b"))
case("Kronecker solve (-I)x(-I)", lambda: Kronecker([-_eye(2), -_eye(2)]).solve(t64(1.0, 2.0, 3.0, 4.0)),
     is_(lambda r: torch.equal(r, t64(1.0, 2.0, 3.0, 4.0)), "b (K = I)"))
case("Kronecker cholesky not PD", lambda: Kronecker([-_eye(2)]).solve(torch.ones(2, dtype=F64), method="cholesky"),
     raises(ValueError, "factors[0]", "positive definite"))
case("Kronecker apply_eigen_fn fn=5", lambda: Kronecker([_eye(2)]).apply_eigen_fn(torch.ones(2, dtype=F64), 5),
     raises(TypeError, "fn"))
case("Kronecker apply_eigen_fn returns float", lambda: Kronecker([_eye(2)]).apply_eigen_fn(torch.ones(2, dtype=F64), lambda lam: 1.0),
     raises(TypeError, "fn"))
case("Kronecker from_linear_operator(5)", lambda: Kronecker.from_linear_operator(5), raises(TypeError, "op"))
case("Kronecker batch mismatch", lambda: Kronecker([torch.eye(2, dtype=F64).expand(3, 2, 2), torch.eye(2, dtype=F64).expand(4, 2, 2)]),
     raises(ValueError, "batch"))

case("Kronecker shift 2 elements", lambda: Kronecker([_eye(2)]).logdet(torch.ones(2, dtype=F64)), raises(ValueError, "shift"))
case("Kronecker logdet shift=1 of 2I", lambda: Kronecker([2 * _eye(2), _eye(3)]).logdet(1.0),
     close(2 * math.log(3.0) * 3, 8 * EPS64))

# ------------------------------------------------------------------------------ von Mises-Fisher
def _a3(k: float) -> float:
    """A_3(kappa) = coth kappa - 1/kappa."""
    return float(mp.coth(mp.mpf(k)) - 1 / mp.mpf(k))


_mu3 = t64(0.0, 0.0, 1.0)
case("VMF loc NaN", lambda: VonMisesFisher(t64(NAN, 0.0, 1.0), 1.0), raises(ValueError, "loc"))
case("VMF loc int", lambda: VonMisesFisher(torch.tensor([0, 1]), 1.0), raises(TypeError, "loc"))
case("VMF loc list", lambda: VonMisesFisher([0.0, 1.0], 1.0), raises(TypeError, "loc"))
case("VMF loc p=1", lambda: VonMisesFisher(t64([1.0]), 1.0), raises(ValueError, "loc"))
case("VMF loc zero", lambda: VonMisesFisher(torch.zeros(3, dtype=F64), 1.0), raises(ValueError, "loc"))
for kappa in (0.0, -1.0, NAN, INF):
    case(f"VMF concentration={kappa}", lambda k=kappa: VonMisesFisher(_mu3, k), raises(ValueError, "concentration"))
case("VMF concentration str", lambda: VonMisesFisher(_mu3, "1"), raises(TypeError, "concentration"))
case("VMF concentration shape", lambda: VonMisesFisher(_mu3.expand(4, 3), torch.ones(3, dtype=F64)),
     raises(ValueError, "concentration", "loc"))
case("VMF empty batch sample", lambda: VonMisesFisher(torch.ones(0, 3, dtype=F64), 1.0).sample((2,)),
     is_(lambda r: r.shape == (2, 0, 3), "shape (2, 0, 3)"))
case("VMF empty batch log_prob", lambda: VonMisesFisher(torch.ones(0, 3, dtype=F64), 1.0).log_prob(torch.ones(0, 3, dtype=F64)),
     is_(lambda r: r.shape == (0,), "shape (0,)"))
case("VMF empty kappa batch", lambda: VonMisesFisher(_mu3, torch.ones(0, dtype=F64)).entropy(), is_(lambda r: r.shape == (0,), "shape (0,)"))
case("VMF sample_shape (0,)", lambda: VonMisesFisher(_mu3, 1.0).sample((0,)), is_(lambda r: r.shape == (0, 3), "shape (0, 3)"))
case("VMF log_prob value wrong p", lambda: VonMisesFisher(_mu3, 1.0).log_prob(torch.ones(4, dtype=F64)), raises(ValueError, "value"))
case("VMF log_prob value list", lambda: VonMisesFisher(_mu3, 1.0).log_prob([0.0, 0.0, 1.0]), raises(TypeError, "value"))
case("VMF sample generator", lambda: VonMisesFisher(_mu3, 1.0).sample((2,), generator=5), raises(TypeError, "generator"))
case("VMF sample_shape negative", lambda: VonMisesFisher(_mu3, 1.0).sample((-1,)), raises(ValueError, "sample_shape"))
# log_prob on S^2 at the mode: log(kappa / (4 pi sinh kappa)) + kappa
case("VMF log_prob p=3 closed form", lambda: VonMisesFisher(_mu3, 2.0).log_prob(_mu3),
     close(math.log(2.0 / (4 * math.pi * math.sinh(2.0))) + 2.0, 8 * EPS64))
case("fit_vmf max_iter=0", lambda: fit_vmf(torch.randn(10, 3, dtype=F64), max_iter=0), raises(ValueError, "max_iter"))
case("fit_vmf max_iter=1.5", lambda: fit_vmf(torch.randn(10, 3, dtype=F64), max_iter=1.5), raises(TypeError, "max_iter"))
case("fit_vmf tol=0", lambda: fit_vmf(torch.randn(10, 3, dtype=F64), tol=0.0), raises(ValueError, "tol"))
case("fit_vmf tol=NaN", lambda: fit_vmf(torch.randn(10, 3, dtype=F64), tol=NAN), raises(ValueError, "tol"))
case("fit_vmf not converged warns", lambda: fit_vmf(torch.randn(10, 3, dtype=F64, generator=torch.Generator().manual_seed(0)) + 3.0, max_iter=1),
     Warns(RuntimeWarning, ("max_iter",)))
case("fit_vmf x (0, 3)", lambda: fit_vmf(torch.ones(0, 3, dtype=F64)), raises(ValueError, "x"))
case("fit_vmf x (n, 1)", lambda: fit_vmf(torch.ones(5, 1, dtype=F64)), raises(ValueError, "x"))
case("fit_vmf x 1-D", lambda: fit_vmf(torch.ones(5, dtype=F64)), raises(ValueError, "x"))
case("fit_vmf x zero row", lambda: fit_vmf(torch.zeros(2, 3, dtype=F64)), raises(ValueError, "x"))
case("fit_vmf x NaN", lambda: fit_vmf(t64([[NAN, 0.0, 1.0]])), raises(ValueError, "x"))
case("fit_vmf x list", lambda: fit_vmf([[0.0, 1.0]]), raises(TypeError, "x"))
case("vmf_kappa_mle r=1.5", lambda: vmf_kappa_mle(1.5, 3), raises(ValueError, "r"))
case("vmf_kappa_mle r=NaN", lambda: vmf_kappa_mle(NAN, 3), raises(ValueError, "r"))
case("vmf_kappa_mle r str", lambda: vmf_kappa_mle("0.5", 3), raises(TypeError, "r"))
case("vmf_kappa_mle p=1", lambda: vmf_kappa_mle(0.5, 1), raises(ValueError, "p"))
case("vmf_kappa_mle p=2.5", lambda: vmf_kappa_mle(0.5, 2.5), raises(TypeError, "p"))
case("vmf_kappa_mle max_iter=0", lambda: vmf_kappa_mle(0.5, 3, max_iter=0), raises(ValueError, "max_iter"))
case("vmf_kappa_mle r=0 -> 0", lambda: vmf_kappa_mle(0.0, 3), close(0.0, 0.0))
case("vmf_kappa_mle r=1 -> inf", lambda: vmf_kappa_mle(1.0, 3), close(INF, 0.0))
# A_3(kappa) = R with kappa = 2: conditioning |kappa A'/A| ~ 1, Newton to 1e-15 relative
case("vmf_kappa_mle inverts A_3", lambda: vmf_kappa_mle(_a3(2.0), 3), close(2.0, 1e-13))
case("vmf_kappa_mle empty r", lambda: vmf_kappa_mle(torch.ones(0, dtype=F64), 3), is_(lambda r: r.shape == (0,), "shape (0,)"))
case("mean_resultant_length Python float", lambda: mean_resultant_length(2.0, 3), close(_a3(2.0), 8 * EPS64))
case("mean_resultant_length kappa=0 -> 0", lambda: mean_resultant_length(t64(0.0), 3), close(0.0, 0.0))
case("mean_resultant_length kappa=inf -> 1", lambda: mean_resultant_length(t64(INF), 3), close(1.0, 0.0))
case("mean_resultant_length p=1", lambda: mean_resultant_length(t64(1.0), 1), raises(ValueError, "p"))
case("mean_resultant_length kappa<0", lambda: mean_resultant_length(t64(-1.0), 3), raises(ValueError, "kappa"))


# ------------------------------------------------------------------------------ metrics
_x2 = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=F64)
case("gaussian_w2 negative-definite S1", lambda: M.gaussian_w2(torch.zeros(2), -torch.eye(2), torch.zeros(2), torch.eye(2)),
     raises(ValueError, "S1"))
case("gaussian_w2 negative-definite S2", lambda: M.gaussian_w2(torch.zeros(2), torch.eye(2), torch.zeros(2), -torch.eye(2)),
     raises(ValueError, "S2"))
case("gaussian_w2 nonsymmetric S1", lambda: M.gaussian_w2(torch.zeros(2), torch.tensor([[1.0, 0.5], [0.0, 1.0]]), torch.zeros(2), torch.eye(2)),
     raises(ValueError, "S1", "symmetric"))
case("gaussian_w2 S1 NaN", lambda: M.gaussian_w2(torch.zeros(1), t64([[NAN]]), torch.zeros(1), t64([[1.0]])), raises(ValueError, "S1"))
case("gaussian_w2 m1 2-D", lambda: M.gaussian_w2(torch.zeros(1, 2), torch.eye(2), torch.zeros(2), torch.eye(2)), raises(ValueError, "m1"))
case("gaussian_w2 m2 shape", lambda: M.gaussian_w2(torch.zeros(2), torch.eye(2), torch.zeros(3), torch.eye(2)), raises(ValueError, "m2"))
case("gaussian_w2 m1 str", lambda: M.gaussian_w2("0", torch.eye(1), torch.zeros(1), torch.eye(1)), raises(TypeError, "m1"))
# W2^2(N(0, 1), N(1, 4)) = 1 + (1 - 2)^2 = 2; W2(N(0, 0), N(0, I_3)) = sqrt(3) (singular PSD allowed)
case("gaussian_w2 lists, 1-D closed form", lambda: M.gaussian_w2([0.0], [[1.0]], [1.0], [[4.0]]), close(math.sqrt(2.0), 16 * EPS64))
case("gaussian_w2 singular PSD", lambda: M.gaussian_w2(torch.zeros(3), torch.zeros(3, 3), torch.zeros(3), torch.eye(3)),
     close(math.sqrt(3.0), 16 * EPS64))
case("entropic_w2 x 1-D", lambda: M.entropic_w2(torch.zeros(3), _x2), raises(ValueError, "x"))
case("entropic_w2 dims differ", lambda: M.entropic_w2(_x2, torch.zeros(3, 3, dtype=F64)), raises(ValueError, "x", "y"))
case("entropic_w2 y NaN", lambda: M.entropic_w2(_x2, _x2 * NAN), raises(ValueError, "y"))
case("entropic_w2 reg=0", lambda: M.entropic_w2(_x2, _x2, reg=0.0), raises(ValueError, "reg"))
case("sqrtm_psd not square", lambda: M.sqrtm_psd(torch.zeros(2, 3)), raises(ValueError, "a"))
case("sqrtm_psd int", lambda: M.sqrtm_psd(torch.eye(2, dtype=torch.int64)), raises(TypeError, "a"))
case("sinkhorn cost NaN", lambda: M.sinkhorn(t64([[0.0, NAN]]), 1.0), raises(ValueError, "cost"))
case("sinkhorn cost 1-D", lambda: M.sinkhorn(t64(0.0, 1.0), 1.0), raises(ValueError, "cost"))
case("sinkhorn cost empty", lambda: M.sinkhorn(torch.zeros(0, 2, dtype=F64), 1.0), raises(ValueError, "cost"))
case("sinkhorn reg=-1", lambda: M.sinkhorn(torch.zeros(2, 2, dtype=F64), -1.0), raises(ValueError, "reg"))
case("sinkhorn a shape", lambda: M.sinkhorn(torch.zeros(2, 2, dtype=F64), 1.0, t64(1.0)), raises(ValueError, "a"))
case("sinkhorn tol negative", lambda: M.sinkhorn(torch.zeros(2, 2, dtype=F64), 1.0, tol=-1.0), raises(ValueError, "tol"))
case("sinkhorn zero cost: independent coupling", lambda: M.sinkhorn(torch.zeros(2, 3, dtype=F64), 1.0).plan,
     is_(lambda p: torch.allclose(p, torch.full((2, 3), 1 / 6, dtype=F64), rtol=8 * EPS64, atol=0), "a b^T"))
case("entropic_w2 scaling=1", lambda: M.entropic_w2(_x2, _x2, scaling=1.0), raises(ValueError, "scaling"))
case("entropic_w2 weights_x negative", lambda: M.entropic_w2(_x2, _x2, weights_x=t64(-1.0, 1.0, 1.0)), raises(ValueError, "weights_x"))
case("entropic_w2 weights_y shape", lambda: M.entropic_w2(_x2, _x2, weights_y=t64(1.0, 1.0)), raises(ValueError, "weights_y"))
case("entropic_w2 x empty", lambda: M.entropic_w2(torch.zeros(0, 2, dtype=F64), _x2), raises(ValueError, "x"))
case("wasserstein2 one point each", lambda: M.wasserstein2(t64([[0.0, 0.0]]), t64([[3.0, 4.0]])), close(5.0, 4 * EPS64))
case("wasserstein2 x int", lambda: M.wasserstein2(torch.zeros(2, 2, dtype=torch.int64), _x2), raises(TypeError, "x"))
case("mmd bandwidth=0", lambda: M.mmd(_x2, _x2, 0.0), raises(ValueError, "bandwidth"))
case("mmd bandwidth []", lambda: M.mmd(_x2, _x2, []), raises(ValueError, "bandwidth"))
case("mmd bandwidth str", lambda: M.mmd(_x2, _x2, "a"), raises(TypeError, "bandwidth"))
case("mmd bandwidth numpy scalar", lambda: M.mmd(_x2, _x2 + 1, __import__("numpy").float32(1.5)),
     is_(lambda r: r == M.mmd(_x2, _x2 + 1, 1.5), "the float bandwidth's value"))
case("mmd bandwidth 0-d tensor", lambda: M.mmd(_x2, _x2 + 1, torch.tensor(1.5)),
     is_(lambda r: r == M.mmd(_x2, _x2 + 1, 1.5), "the float bandwidth's value"))
case("sqrtm_psd half", lambda: M.sqrtm_psd(torch.eye(2).half()), raises(TypeError, "a", "float16"))
case("mmd unbiased n=1", lambda: M.mmd(_x2[:1], _x2), raises(ValueError, "x"))
case("mmd unbiased str", lambda: M.mmd(_x2, _x2, unbiased="no"), raises(TypeError, "unbiased"))
case("mmd equal samples V-stat = 0", lambda: M.mmd(_x2, _x2, 1.0, unbiased=False), close(0.0, 0.0, 8 * EPS64))
case("sliced_ks n_projections=0", lambda: M.sliced_ks(_x2, _x2, 0), raises(ValueError, "n_projections"))
case("sliced_ks generator", lambda: M.sliced_ks(_x2, _x2, generator=1), raises(TypeError, "generator"))
case("sliced_ks n_bins=0", lambda: M.sliced_ks(_x2, _x2, n_bins=0), raises(ValueError, "n_bins"))
case("sliced_ks equal samples = 0", lambda: M.sliced_ks(_x2, _x2, 8, generator=torch.Generator().manual_seed(0)), close(0.0, 0.0))
case("mode_assignment dims", lambda: M.mode_assignment(_x2, torch.zeros(2, 3, dtype=F64)), raises(ValueError, "modes"))
case("mode_assignment x NaN", lambda: M.mode_assignment(_x2 * NAN, _x2), raises(ValueError, "x"))
case("mode_counts radius<0", lambda: M.mode_counts(_x2, _x2, radius=-1.0), raises(ValueError, "radius"))
case("mode_coverage min_count=0", lambda: M.mode_coverage(_x2, _x2, min_count=0), raises(ValueError, "min_count"))
case("mode_coverage all covered", lambda: M.mode_coverage(_x2, _x2), close(1.0, 0.0))
case("mode_weight_error weights<0", lambda: M.mode_weight_error(_x2, _x2, t64(-1.0, 1.0, 1.0)), raises(ValueError, "weights"))
case("mode_weight_error weights shape", lambda: M.mode_weight_error(_x2, _x2, t64(1.0, 1.0)), raises(ValueError, "weights"))
case("mode_weight_error exact", lambda: M.mode_weight_error(_x2, _x2, t64(1.0, 1.0, 1.0)), close(0.0, 0.0, 4 * EPS64))
case("mode_entropy normalised str", lambda: M.mode_entropy(_x2, _x2, normalised="yes"), raises(TypeError, "normalised"))
case("mode_entropy uniform = 1", lambda: M.mode_entropy(_x2, _x2), close(1.0, 4 * EPS64))
case("log_z_estimates empty", lambda: M.log_z_estimates(torch.zeros(0, dtype=F64)), raises(ValueError, "log_weights"))
case("log_z_estimates 2-D", lambda: M.log_z_estimates(torch.zeros(2, 2, dtype=F64)), raises(ValueError, "log_weights"))
case("log_z_estimates NaN", lambda: M.log_z_estimates(t64(NAN, 0.0)), raises(ValueError, "log_weights"))
case("log_z_estimates all -inf", lambda: M.log_z_estimates(t64(-INF, -INF)), raises(ValueError, "log_weights"))
case("log_z_estimates list", lambda: M.log_z_estimates([0.0, 1.0]), raises(TypeError, "log_weights"))
# weights (1, 3): log Z = log 2, ELBO = log(3)/2, ESS = 16 / 10; a zero weight (-inf) is legitimate
case("log_z_estimates closed form", lambda: M.log_z_estimates(t64(0.0, math.log(3.0))),
     is_(lambda r: abs(r.log_z - math.log(2)) <= 4 * EPS64 and abs(r.elbo - math.log(3) / 2) <= 4 * EPS64
         and abs(r.ess - 1.6) <= 8 * EPS64, "(log 2, log 3 / 2, 1.6)"))
case("log_z_estimates zero weight", lambda: M.log_z_estimates(t64(-INF, 0.0)),
     is_(lambda r: abs(r.log_z - math.log(0.5)) <= 4 * EPS64 and r.elbo == -INF and abs(r.ess - 1.0) <= 4 * EPS64,
         "(log 1/2, -inf, 1)", "log_weights"))


# ------------------------------------------------------------------------------ targets
def _no_cuda() -> bool:
    return not torch.cuda.is_available()


if _no_cuda():
    for name, make in [("Funnel", lambda: T.Funnel(device="cuda")), ("GaussianMixture", lambda: T.GaussianMixture(_x2, device="cuda")),
                       ("mog8", lambda: T.mog8(device="cuda")), ("Rings", lambda: T.Rings(device="cuda")),
                       ("StudentTMixture", lambda: T.StudentTMixture(_x2, device="cuda")),
                       ("DoubleWell", lambda: T.DoubleWell(2, 1, 1.0, device="cuda")),
                       ("logistic_regression", lambda: T.logistic_regression(20, 3, device="cuda")),
                       ("CallableTarget", lambda: T.CallableTarget(lambda x: x.sum(-1), 2, device="cuda")),
                       ("Target.to", lambda: T.Funnel().to(device="cuda"))]:
        case(f"{name}(device='cuda') without CUDA", make, raises(sciml.DeviceUnavailableError, "device"))
case("Funnel device=5", lambda: T.Funnel(device=5), raises(TypeError, "device"))
case("Funnel device='gpu'", lambda: T.Funnel(device="gpu"), raises(ValueError, "device"))
case("Funnel dim=1", lambda: T.Funnel(1), raises(ValueError, "dim"))
case("Funnel dim=2.5", lambda: T.Funnel(2.5), raises(TypeError, "dim"))
case("Funnel scale=0", lambda: T.Funnel(10, 0.0), raises(ValueError, "scale"))
case("Funnel dtype int", lambda: T.Funnel(dtype=torch.int32), raises(TypeError, "dtype"))
case("Funnel log_prob wrong dim", lambda: T.Funnel(3).log_prob(torch.zeros(2, 2, dtype=F64)), raises(ValueError, "x"))
case("Funnel log_prob list", lambda: T.Funnel(3).log_prob([0.0, 0.0, 0.0]), raises(TypeError, "x"))
# funnel at 0: log N(0; 0, 9) + (d - 1) log N(0; 0, 1)
case("Funnel log_prob closed form", lambda: T.Funnel(3).log_prob(torch.zeros(3, dtype=F64)),
     close(-math.log(3.0) - 1.5 * math.log(2 * math.pi), 4 * EPS64))
case("Funnel sample n=0", lambda: T.Funnel().sample(0), raises(ValueError, "n"))
case("Funnel sample n=2.0", lambda: T.Funnel().sample(2.0), raises(TypeError, "n"))
case("Funnel sample generator", lambda: T.Funnel().sample(2, generator="x"), raises(TypeError, "generator"))
case("Target.to dtype int", lambda: T.Funnel().to(dtype=torch.int64), raises(TypeError, "dtype"))
case("GaussianMixture means NaN", lambda: T.GaussianMixture(_x2 * NAN), raises(ValueError, "means"))
case("GaussianMixture means 1-D", lambda: T.GaussianMixture(torch.zeros(3, dtype=F64)), raises(ValueError, "means"))
case("GaussianMixture means empty", lambda: T.GaussianMixture(torch.zeros(0, 2, dtype=F64)), raises(ValueError, "means"))
case("GaussianMixture variances<0", lambda: T.GaussianMixture(_x2, -1.0), raises(ValueError, "variances"))
case("GaussianMixture variances shape", lambda: T.GaussianMixture(_x2, torch.ones(2, dtype=F64)), raises(ValueError, "variances"))
case("GaussianMixture variances str", lambda: T.GaussianMixture(_x2, "1"), raises(TypeError, "variances"))
case("GaussianMixture weights 0", lambda: T.GaussianMixture(_x2, 1.0, t64(0.0, 1.0, 1.0)), raises(ValueError, "weights"))
case("GaussianMixture weights shape", lambda: T.GaussianMixture(_x2, 1.0, t64(1.0, 1.0)), raises(ValueError, "weights"))
case("GaussianMixture dtype int", lambda: T.GaussianMixture(_x2, dtype=torch.int64), raises(TypeError, "dtype"))
case("GaussianMixture means list", lambda: T.GaussianMixture([[0.0]], 1.0).log_prob(torch.zeros(1, dtype=F64)),
     close(-0.5 * math.log(2 * math.pi), 4 * EPS64))
case("StudentTMixture df=0", lambda: T.StudentTMixture(_x2, df=0.0), raises(ValueError, "df"))
case("StudentTMixture scale=inf", lambda: T.StudentTMixture(_x2, scale=INF), raises(ValueError, "scale"))
case("StudentTMixture locs NaN", lambda: T.StudentTMixture(_x2 * NAN), raises(ValueError, "locs"))
case("Rings num_rings=0", lambda: T.Rings(0), raises(ValueError, "num_rings"))
case("Rings sigma<0", lambda: T.Rings(2, 1.0, -0.1), raises(ValueError, "sigma"))
case("DoubleWell delta<0", lambda: T.DoubleWell(2, 1, -1.0), raises(ValueError, "delta"))
case("DoubleWell m>dim", lambda: T.DoubleWell(2, 3, 1.0), raises(ValueError, "m"))
case("ManyWell dim odd", lambda: T.ManyWell(3), raises(ValueError, "dim"))
case("mog40 dim=0", lambda: T.mog40(0), raises(ValueError, "dim"))
case("mog40 seed str", lambda: T.mog40(2, "a"), raises(TypeError, "seed"))
case("LogisticRegression y_train 2", lambda: T.LogisticRegression(_x2, t64(0.0, 1.0, 2.0)), raises(ValueError, "y_train"))
case("LogisticRegression y_train shape", lambda: T.LogisticRegression(_x2, t64(0.0, 1.0)), raises(ValueError, "y_train"))
case("LogisticRegression x_train 1-D", lambda: T.LogisticRegression(t64(0.0, 1.0), t64(0.0, 1.0)), raises(ValueError, "x_train"))
case("LogisticRegression prior_scale=0", lambda: T.LogisticRegression(_x2, t64(0.0, 1.0, 1.0), prior_scale=0.0),
     raises(ValueError, "prior_scale"))
case("LogisticRegression x_test without y_test", lambda: T.LogisticRegression(_x2, t64(0.0, 1.0, 1.0), _x2), raises(ValueError, "y_test"))
case("LogisticRegression x_test dims", lambda: T.LogisticRegression(_x2, t64(0.0, 1.0, 1.0), torch.zeros(2, 3, dtype=F64), t64(0.0, 1.0)),
     raises(ValueError, "x_test"))
case("mog40 seed 2**70", lambda: T.mog40(2, 2**70), raises(ValueError, "seed"))
case("mos10 seed 2**70", lambda: T.mos10(2, 2**70), raises(ValueError, "seed"))
case("mos10 seed 2**64 - 1", lambda: T.mos10(2, 2**64 - 1), is_(lambda t: t.dim == 2, "a target"))
case("logistic_regression seed -2**63 - 1", lambda: T.logistic_regression(20, 3, -(2**63) - 1), raises(ValueError, "seed"))
case("logistic_regression n_train=1", lambda: T.logistic_regression(1, 3), raises(ValueError, "n_train"))
case("test_log_likelihood no samples", lambda: T.logistic_regression(20, 3).test_log_likelihood(torch.zeros(0, 3, dtype=F64)),
     raises(ValueError, "samples"))
case("logistic_regression dim=1", lambda: T.logistic_regression(10, 1), raises(ValueError, "dim"))
case("test_log_likelihood kind", lambda: T.logistic_regression(20, 3).test_log_likelihood(torch.zeros(2, 3, dtype=F64), kind="max"),
     raises(ValueError, "kind"))
case("test_log_likelihood samples shape", lambda: T.logistic_regression(20, 3).test_log_likelihood(torch.zeros(2, 4, dtype=F64)),
     raises(ValueError, "samples"))
case("test_log_likelihood no test data", lambda: T.LogisticRegression(_x2, t64(0.0, 1.0, 1.0)).test_log_likelihood(torch.zeros(2, 3, dtype=F64)),
     raises(ValueError, "test"))
# at w = 0 every likelihood term is log(1/2)
case("test_log_likelihood at 0", lambda: T.logistic_regression(20, 3, n_test=5).test_log_likelihood(torch.zeros(2, 3, dtype=F64)),
     close(5 * math.log(0.5), 8 * EPS64))
case("as_target(5)", lambda: T.as_target(5), raises(TypeError, "int"))
case("as_target(callable) no dim", lambda: T.as_target(lambda x: x.sum(-1)), raises(TypeError, "dim"))
case("as_target dim mismatch", lambda: T.as_target(T.Funnel(3), dim=4), raises(ValueError, "dim"))
case("as_target dim=0", lambda: T.as_target(T.Funnel(3), dim=0), raises(ValueError, "dim"))
case("as_target batched distribution", lambda: T.as_target(torch.distributions.Normal(torch.zeros(2), 1.0)),
     raises(ValueError, "batch_shape"))
case("as_target Normal log_prob", lambda: T.as_target(torch.distributions.Normal(torch.zeros((), dtype=F64), 1.0)).log_prob(t64([0.0])),
     close(-0.5 * math.log(2 * math.pi), 4 * EPS64))
case("CallableTarget log_prob=5", lambda: T.CallableTarget(5, 2), raises(TypeError, "log_prob"))
case("CallableTarget wrong output shape", lambda: T.CallableTarget(lambda x: x, 2).log_prob(torch.zeros(3, 2, dtype=F64)),
     raises(ValueError, "log_prob"))
case("check_target non-finite", lambda: T.check_target(T.CallableTarget(lambda x: x.sum(-1) * NAN, 2)), raises(ValueError, "not finite"))
case("check_target not a target", lambda: T.check_target(5), raises(TypeError, "target"))
case("from_pyro_model(5)", lambda: T.from_pyro_model(5), raises(TypeError, "model"))
case("Target.to device=5", lambda: T.Funnel().to(device=5), raises(TypeError, "device"))
case("as_target duck object without dim", lambda: T.as_target(type("D", (), {"log_prob": lambda self, x: x.sum(-1)})()),
     raises(TypeError, "dim"))
case("DuckTarget dim mismatch", lambda: T.DuckTarget(T.Funnel(3), dim=4), raises(ValueError, "dim"))
case("metrics x list", lambda: M.mmd([[0.0]], _x2), raises(TypeError, "x"))
case("mode_coverage radius str", lambda: M.mode_coverage(_x2, _x2, radius="1"), raises(TypeError, "radius"))
case("VMF sample_shape int", lambda: VonMisesFisher(_mu3, 1.0).sample(3), raises(TypeError, "sample_shape"))
case("VMF float32 entropy dtype", lambda: VonMisesFisher(_mu3.float(), 2.0).entropy(),
     is_(lambda r: r.dtype == torch.float32 and abs(float(r) - (-math.log(2.0 / (4 * math.pi * math.sinh(2.0))) - 2.0 * _a3(2.0))) <= 16 * EPS32 * 3,
         "float32 -log C_3(2) - 2 A_3(2)"))


# ------------------------------------------------------------------------------ registry
class _Dummy(sciml.Sampler):
    """A sampler used to probe register()."""

    name = "bad-inputs-dummy"

    def sample(self, target, num_samples, *, generator=None):  # pragma: no cover - never run
        raise NotImplementedError


case("load(123)", lambda: sciml.load(123), raises(TypeError, "kind_or_name"))
case("load(None)", lambda: sciml.load(None), raises(TypeError, "kind_or_name"))
case("load('solver', None) is not load('solver')", lambda: sciml.load("solver", 5), raises(TypeError, "name"))
case("load(5, 'x')", lambda: sciml.load(5, "lightsb"), raises(TypeError, "kind"))
case("load unknown name", lambda: sciml.load("no-such-plugin"), raises(sciml.UnknownPluginError, "no-such-plugin"))
case("load unknown kind", lambda: sciml.load("widget", "x"), raises(ValueError, "widget"))
case("plugins(5)", lambda: sciml.plugins(5), raises(TypeError, "kind"))
case("plugins('widget')", lambda: sciml.plugins("widget"), raises(ValueError, "widget"))
case("plugins(check='yes')", lambda: sciml.plugins(check="yes"), raises(TypeError, "check"))
case("register(cls, name=123)", lambda: sciml.register(_Dummy, name=123), raises(TypeError, "name"))
case("register(cls, name='')", lambda: sciml.register(_Dummy, name=""), raises(ValueError, "name"))
case("register(cls, replace='yes')", lambda: sciml.register(_Dummy, replace="yes"), raises(TypeError, "replace"))
case("register(5)", lambda: sciml.register(5), raises(sciml.PluginInterfaceError, "5"))
case("unregister(5, 'x')", lambda: sciml.unregister(5, "x"), raises(TypeError, "kind"))
case("unregister('sampler', 5)", lambda: sciml.unregister("sampler", 5), raises(TypeError, "name"))
case("unregister unknown", lambda: sciml.unregister("sampler", "no-such"), raises(sciml.UnknownPluginError, "no-such"))


def _registry_still_lists() -> bool:
    """After the bad register() calls, plugins() must still work for everyone."""
    return isinstance(str(sciml.plugins()), str)


case("plugins() after bad register calls", _registry_still_lists, is_(bool, "True"))


# ------------------------------------------------------------------------------ CLI
def _cli(argv: list[str], capsys_lines: list[str] | None = None) -> tuple[int, str]:
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = cli.main(argv)
    return code, err.getvalue()


def _one_line_exit2(argv: list[str], *words: str) -> Returns:
    def check(res: tuple[int, str]) -> bool:
        code, err = res
        lines = [ln for ln in err.splitlines() if ln.strip()]
        return code == 2 and len(lines) == 1 and "Traceback" not in err and all(w in err for w in words)

    return Returns(check, f"exit 2 and one stderr line naming {words}")


for argv, words in [(["info", "no-such-plugin"], ("no-such-plugin",)), (["plugins", "--kind", "widget"], ("widget",)),
                    (["--bogus"], ("--bogus",)), (["plugins", "--bogus"], ("--bogus",)), (["info"], ("name",)),
                    (["frobnicate"], ("frobnicate",)), (["run", "no-such-example"], ("no-such-example",)),
                    (["bench", "no-such-bench"], ("no-such-bench",)), (["info", "lightsb", "--kind", "widget"], ("widget",))]:
    case(f"cli {' '.join(argv)}", lambda argv=argv: _cli(argv), _one_line_exit2(argv, *words))


# ------------------------------------------------------------------------------ the tests
@pytest.mark.parametrize("cid,fn,expect", CASES, ids=[c[0] for c in CASES])
def test_bad_input(cid: str, fn: Callable[[], Any], expect: Raises | Returns | Warns) -> None:
    outcome, detail = classify(fn, expect)
    want = "correct result" if isinstance(expect, Returns) else "clear error"
    assert outcome == want, f"{cid}: {outcome}: {detail}"


def test_register_failure_leaves_registry_usable() -> None:
    """A rejected register() call must not leave a broken entry behind."""
    for bad in (123, ""):
        with pytest.raises((TypeError, ValueError)):
            sciml.register(_Dummy, name=bad)
    assert all(isinstance(info.name, str) and info.name for info in sciml.plugins())
    assert "bad-inputs-dummy" not in [info.name for info in sciml.plugins()]


if __name__ == "__main__":
    counts: dict[str, int] = {}
    for cid, fn, expect in CASES:
        outcome, detail = classify(fn, expect)
        counts[outcome] = counts.get(outcome, 0) + 1
        want = "correct result" if isinstance(expect, Returns) else "clear error"
        if outcome != want or "-v" in sys.argv:
            print(f"{outcome:15s} {cid}: {detail[:160]}")
    print(len(CASES), "cases:", counts)
