"""Bad inputs to every public entry point of the diffusion-sampler plugin (``sciml_plugins.diffusion``).

Each case must end in a clear error (the expected class, with a message naming the argument, the
sampler or the step), in a warning that reports the failure together with a result that says so
(``Samples.diverged``, NaN ``log_z``), or in a correct result checked against ground truth.
``python tests/test_bad_inputs_samplers.py`` prints the classification of every case
(clear error / correct result / unclear error / silent wrong / hang) and the counts.
"""

from __future__ import annotations

import math
import signal
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from sciml_plugins.diffusion import AIS, SMC, ULA, ULMC, MultALMC, MultCDiff

import sciml

F64 = torch.float64
NAN, INF = float("nan"), float("inf")
NAMES = ("mult-almc", "mult-cdiff", "ula", "ulmc", "ais", "smc")
CLASSES = {"mult-almc": MultALMC, "mult-cdiff": MultCDiff, "ula": ULA, "ulmc": ULMC, "ais": AIS, "smc": SMC}
# short healthy runs (the fast-init pool is kept small so the matrix stays fast)
SMALL: dict[str, dict[str, Any]] = {
    "mult-almc": {"num_steps": 20, "step_size": 0.05, "fast_init_candidates": 16},
    "mult-cdiff": {"num_steps": 20, "fast_init_candidates": 16},
    "ula": {"num_steps": 20, "step_size": 0.05},
    "ulmc": {"num_steps": 20, "step_size": 0.1},
    "ais": {"num_steps": 20},
    "smc": {"num_steps": 20},
}
N = 16  # chains per run


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _sampler(name: str, **kw: Any) -> Any:
    return CLASSES[name](**{"progress": False, **SMALL[name], **kw})


# ------------------------------------------------------------------------------------ targets
class Gauss:
    """N(0, I) in 2-D, normalised (log Z = 0); subclasses break it."""

    dim, dtype, device = 2, F64, torch.device("cpu")

    def __init__(self) -> None:
        self.calls = 0

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return -0.5 * (x * x).sum(-1) - math.log(2.0 * math.pi)


class RaisesAfter(Gauss):
    """Raises ``RuntimeError`` from the ``k``-th call on (part-way through a run)."""

    def __init__(self, k: int = 6) -> None:
        super().__init__()
        self.k = k

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        lp = super().log_prob(x)
        if self.calls >= self.k:
            raise RuntimeError("boom inside the user's model")
        return lp


class NanAfter(Gauss):
    """Returns NaN everywhere from the ``k``-th call on."""

    def __init__(self, k: int = 6) -> None:
        super().__init__()
        self.k = k

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        lp = super().log_prob(x)
        return lp + NAN if self.calls >= self.k else lp


class InfAfter(Gauss):
    """Overflows (+inf log-density) from the ``k``-th call on."""

    def __init__(self, k: int = 6) -> None:
        super().__init__()
        self.k = k

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        lp = super().log_prob(x)
        return lp + INF if self.calls >= self.k else lp


class RaisesFar(Gauss):
    """Raises ``ValueError`` when any point has ``x_0 > 40`` (one chain is started there)."""

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        if bool((x[..., 0] > 40).any()):
            raise ValueError("parameter out of range in the user's model")
        return super().log_prob(x)


class NanFar(Gauss):
    """NaN log-density where ``x_0 > 40`` (one chain is started there), finite elsewhere."""

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        lp = super().log_prob(x)
        return torch.where(x[..., 0] > 40, torch.full_like(lp, NAN), lp)


def _init_far(chain: int = 10) -> torch.Tensor:
    x = torch.randn(N, 2, dtype=F64, generator=_gen(5))
    x[chain, 0] = 60.0
    return x


# ------------------------------------------------------------------------------- expectations
@dataclass(frozen=True)
class Raises:
    """Expect an exception whose class name is one of ``types`` and whose message holds ``names``."""

    types: tuple[str, ...]
    names: tuple[str, ...]
    cause: bool = False  # the original exception must be the __cause__


@dataclass(frozen=True)
class Returns:
    """Expect a result for which ``check(value)`` is true (ground truth)."""

    check: Callable[[Any], bool]
    what: str


@dataclass(frozen=True)
class Warns:
    """Expect a ``RuntimeWarning`` holding ``names`` and a result for which ``check(value)`` is true."""

    names: tuple[str, ...]
    check: Callable[[Any], bool]
    what: str


@dataclass(frozen=True)
class Case:
    id: str
    run: Callable[[], Any]
    expect: Raises | Returns | Warns
    timeout: float = 20.0


class _Timeout(Exception):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise _Timeout


def classify(case: Case) -> tuple[str, str]:
    """Run one case; return ``(outcome, detail)``, outcome one of
    clear error / correct result / unclear error / silent wrong / hang."""
    expect = case.expect
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, case.timeout)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            value = case.run()
    except _Timeout:
        return "hang", f"no result within {case.timeout} s"
    except Exception as exc:  # noqa: BLE001 - classifying is the point
        msg = f"{type(exc).__name__}: {exc}"
        if not isinstance(expect, Raises):
            return "unclear error", msg
        names_ok = all(n in str(exc) for n in expect.names)
        type_ok = any(t in [c.__name__ for c in type(exc).__mro__] for t in expect.types)
        cause_ok = not expect.cause or isinstance(exc.__cause__, Exception)
        return ("clear error" if names_ok and type_ok and cause_ok else "unclear error"), msg
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    if isinstance(expect, Raises):
        return "silent wrong", f"returned {_short(value)}, expected {expect.types} naming {expect.names}"
    try:
        good = bool(expect.check(value))
    except Exception as exc:  # noqa: BLE001
        good, value = False, f"{_short(value)} ({type(exc).__name__}: {exc})"
    if isinstance(expect, Warns):
        hit = [w for w in caught if issubclass(w.category, RuntimeWarning)
               and all(n in str(w.message) for n in expect.names)]
        if hit and good:
            return "clear error", str(hit[0].message)
        return "silent wrong", f"returned {_short(value)}, warning {bool(hit)}, expected {expect.what}"
    return ("correct result" if good else "silent wrong"), f"returned {_short(value)}, expected {expect.what}"


def _short(value: Any) -> str:
    if isinstance(value, sciml.Samples):
        div = None if value.diverged is None else int(value.diverged.sum())
        return (f"Samples(max|x|={float(value.x.abs().nan_to_num(nan=INF).max()):.3g}, diverged={div}, "
                f"log_z={value.log_z})")
    return repr(value)[:120]


# ---------------------------------------------------------------------------------- checks
def _healthy(s: sciml.Samples, n: int = N) -> bool:
    """Finite draws of the right shape whose spread is that of N(0, I): |x| < 8 (p ~ 1e-13 per draw)."""
    return (s.x.shape == (n, 2) and bool(torch.isfinite(s.x).all()) and float(s.x.abs().max()) < 8.0
            and not bool(s.diverged.any()))


def _all_diverged(s: sciml.Samples) -> bool:
    """Every chain flagged; an importance sampler's log Z is NaN, never a plausible number."""
    z_ok = s.log_z is None or math.isnan(s.log_z)
    return bool(s.diverged.all()) and s.diagnostics["n_diverged"] == s.num_samples and z_ok


def _chain_excluded(chain: int) -> Callable[[sciml.Samples], bool]:
    """``chain`` flagged (SMC after a resampling: no longer present) and never weighted; the rest healthy."""

    def check(s: sciml.Samples) -> bool:
        ok = ~s.diverged
        rest = s.x[ok]
        healthy = bool(torch.isfinite(rest).all()) and float(rest.abs().max()) < 8.0
        weights_ok = s.log_weights is None or bool(torch.isneginf(s.log_weights[s.diverged]).all())
        if "n_resample" in s.diagnostics and s.diagnostics["n_resample"]:
            # SMC after a resampling: the flagged particle (weight zero) is never copied, so no row holds
            # it and every row is a healthy, weighted particle
            flagged = not bool(s.diverged.any()) and bool(torch.isfinite(s.log_weights).all())
        else:  # no resampling (ULA, ULMC, AIS, SMC that never resampled): the chain keeps its row
            flagged = bool(s.diverged[chain]) and int(s.diverged.sum()) == 1
        return healthy and weights_ok and flagged

    return check


def _log_z_exact(s: sciml.Samples) -> bool:
    """p0 = N(0, I) is the target itself: every AIS / SMC increment is 0 up to rounding, log Z = 0."""
    return s.log_z is not None and abs(s.log_z) < 1e-9 and _healthy(s)


def _flagged_or_healthy(s: sciml.Samples) -> bool:
    """Every row is either flagged (NaN) or a plausible N(0, I) draw (|x| < 8)."""
    ok = ~s.diverged
    return bool(torch.isnan(s.x[s.diverged]).all()) and (int(ok.sum()) == 0 or float(s.x[ok].abs().max()) < 8.0)


def _finite_or_flagged(s: sciml.Samples) -> bool:
    """No finite-but-absurd draw passes as healthy: a row is either flagged or within |x| < 1e3."""
    ok = ~s.diverged
    return bool(torch.isfinite(s.x[ok]).all()) and (int(ok.sum()) == 0 or float(s.x[ok].abs().max()) < 1e3)


# ------------------------------------------------------------------------------------ cases
CASES: list[Case] = []


def add(id: str, run: Callable[[], Any], expect: Raises | Returns | Warns, timeout: float = 20.0) -> None:
    CASES.append(Case(id, run, expect, timeout))


def _hopeless(name: str) -> Any:
    if name == "mult-cdiff":  # its integrators are exact / stabilised; the plain Langevin tail is not
        return _sampler(name, num_steps=5, final_steps=200, final_step_size=1e6)
    return _sampler(name, num_steps=200, step_size=1e6)


for _name in NAMES:
    def _s(_n: str = _name, **kw: Any) -> Any:
        return lambda: _sampler(_n, **kw)

    # the target fails part-way through a run
    add(f"{_name}-target-raises-part-way",
        lambda n=_name: _sampler(n).sample(RaisesAfter(), N, generator=_gen()),
        Raises(("TargetError",), (_name, "step", "boom"), cause=True))
    if _name in ("ais", "smc"):  # the states are evaluated once; afterwards only MALA proposals, rejected
        add(f"{_name}-target-nan-part-way",
            lambda n=_name: _sampler(n).sample(NanAfter(), N, generator=_gen()),
            Warns((_name, "MALA proposals", "counted as rejections"), _healthy,
                  "NaN proposals rejected and counted, no chain diverged"))
        add(f"{_name}-target-overflow-part-way",
            lambda n=_name: _sampler(n).sample(InfAfter(), N, generator=_gen()),
            Warns((_name, "MALA proposals", "counted as rejections"), _healthy,
                  "+inf proposals rejected and counted, no chain diverged"))
    else:
        add(f"{_name}-target-nan-part-way",
            lambda n=_name: _sampler(n).sample(NanAfter(), N, generator=_gen()),
            Warns((_name, "diverged"), _all_diverged, "all chains diverged, log Z NaN"))
        add(f"{_name}-target-overflow-part-way",
            lambda n=_name: _sampler(n).sample(InfAfter(), N, generator=_gen()),
            Warns((_name, "diverged"), _all_diverged, "all chains diverged, log Z NaN"))
    # a target that fails at one chain's state only
    add(f"{_name}-target-raises-one-chain",
        lambda n=_name: _sampler(n).sample(RaisesFar(), N, generator=_gen(), init=_init_far()),
        Raises(("TargetError", "ValueError"), (_name, "step", "out of range") if _name.startswith("mult")
               else (_name, "step", "chain 10", "out of range"), cause=True))
    if not _name.startswith("mult"):  # the multiscale samplers redraw the start by SIR (no chain at 60)
        add(f"{_name}-target-nan-one-chain",
            lambda n=_name: _sampler(n).sample(NanFar(), N, generator=_gen(), init=_init_far()),
            Warns((_name, "1 of 16"), _chain_excluded(10), "chain 10 flagged and excluded, the rest healthy"))
    else:
        add(f"{_name}-target-nan-in-start-pool",
            lambda n=_name: _sampler(n).sample(NanFar(), N, generator=_gen(), init=_init_far()),
            Warns((_name, "non-finite"), _flagged_or_healthy, "warning about the NaN points; unflagged draws healthy"))
    # hopeless step size: stops early (seconds), every chain flagged; MALA (AIS / SMC) rejects instead
    if _name in ("ais", "smc"):
        add(f"{_name}-step-size-1e6-adapted", lambda n=_name: _sampler(n, num_steps=200, step_size=1e6).sample(
            Gauss(), N, generator=_gen()), Returns(_log_z_exact, "adapted step: exact log Z 0, healthy draws"))
        add(f"{_name}-step-size-1e6-fixed", lambda n=_name: _sampler(n, step_size=1e6, adapt_step=False).sample(
            Gauss(), N, generator=_gen()), Warns((_name, "accepted", "step_size"), _log_z_exact, "warning, log Z 0"))
    else:
        add(f"{_name}-step-size-1e6",
            lambda n=_name: _hopeless(n).sample(Gauss(), N, generator=_gen()),
            Warns((_name, "diverged", "stopped"), _all_diverged, "stopped early, all diverged"), timeout=10.0)
    # bad init
    add(f"{_name}-init-all-nan", lambda n=_name: _sampler(n).sample(Gauss(), N, generator=_gen(),
                                                                     init=torch.full((N, 2), NAN, dtype=F64)),
        Raises(("ValueError",), ("init", "non-finite")))
    add(f"{_name}-init-one-inf", lambda n=_name: _sampler(n).sample(
        Gauss(), N, generator=_gen(), init=torch.zeros(N, 2, dtype=F64).index_fill_(0, torch.tensor([3]), INF)),
        Raises(("ValueError",), ("init", "non-finite")))
    add(f"{_name}-init-list", lambda n=_name: _sampler(n).sample(Gauss(), N, generator=_gen(), init=[[0.0, 0.0]] * N),
        Raises(("TypeError",), ("init", "Tensor")))
    add(f"{_name}-init-wrong-dim", lambda n=_name: _sampler(n).sample(Gauss(), N, generator=_gen(),
                                                                       init=torch.zeros(N, 3, dtype=F64)),
        Raises(("ValueError",), ("init", "shape")))
    add(f"{_name}-init-1d", lambda n=_name: _sampler(n).sample(Gauss(), N, generator=_gen(),
                                                                init=torch.zeros(N, dtype=F64)),
        Raises(("ValueError",), ("init", "shape")))
    add(f"{_name}-init-int-dtype", lambda n=_name: _sampler(n).sample(Gauss(), N, generator=_gen(),
                                                                       init=torch.zeros(N, 2, dtype=torch.int64)),
        Returns(_healthy, "converted to the target's dtype, healthy draws"))
    # num_samples
    for _bad, _err in ((0, "ValueError"), (-3, "ValueError"), (2.5, "TypeError"), (True, "TypeError"),
                       ("8", "TypeError")):
        add(f"{_name}-num_samples-{_bad!r}", lambda n=_name, b=_bad: _sampler(n).sample(Gauss(), b, generator=_gen()),
            Raises((_err,), ("num_samples",)))
    add(f"{_name}-num_samples-1", lambda n=_name: _sampler(n).sample(Gauss(), 1, generator=_gen()),
        Returns(lambda s: _healthy(s, 1), "one finite draw"))
    # generator, target, progress
    for _bad in (0, "seed", torch.zeros(1)):
        add(f"{_name}-generator-{type(_bad).__name__}",
            lambda n=_name, b=_bad: _sampler(n).sample(Gauss(), N, generator=b),
            Raises(("TypeError",), ("generator",)))
    for _bad in (None, "gauss", 3.0):
        add(f"{_name}-target-{type(_bad).__name__}", lambda n=_name, b=_bad: _sampler(n).sample(b, N, generator=_gen()),
            Raises(("TypeError",), ("target",)))
    add(f"{_name}-progress-str", _s(progress="yes"), Raises(("TypeError",), ("progress",)))
    add(f"{_name}-progress-1", _s(progress=1), Raises(("TypeError",), ("progress",)))
    add(f"{_name}-progress-none", lambda n=_name: _sampler(n, progress=None).sample(Gauss(), N, generator=_gen()),
        Returns(_healthy, "healthy draws, no bar outside a terminal"))
    # constructor: counts and scales
    for _bad, _err in ((0, "ValueError"), (-5, "ValueError"), (2.5, "TypeError"), (True, "TypeError"),
                       (NAN, "TypeError")):
        add(f"{_name}-num_steps-{_bad!r}", _s(num_steps=_bad), Raises((_err,), ("num_steps",)))
    for _bad, _err in ((0.0, "ValueError"), (-1.0, "ValueError"), (NAN, "ValueError"), (INF, "ValueError"),
                       ("0.1", "TypeError"), (None, "TypeError")):
        add(f"{_name}-init_std-{_bad!r}", _s(init_std=_bad), Raises((_err,), ("init_std",)))
        if _name != "mult-cdiff":
            add(f"{_name}-step_size-{_bad!r}", _s(step_size=_bad), Raises((_err,), ("step_size",)))

# absurd but finite states: ULA with h = 3 on N(0, I) multiplies |x| by 2 per step (2^300 ~ 1e90)
add("ula-finite-blow-up-flagged", lambda: _sampler("ula", num_steps=300, step_size=3.0).sample(
    Gauss(), N, generator=_gen()), Warns(("ula", "diverged"), _finite_or_flagged, "no absurd draw unflagged"))
add("ulmc-finite-blow-up-flagged", lambda: _sampler("ulmc", num_steps=300, step_size=5.0).sample(
    Gauss(), N, generator=_gen()), Warns(("ulmc", "diverged"), _finite_or_flagged, "no absurd draw unflagged"))
# a far-away target the chains legitimately travel to is not flagged: N(200, I) from N(0, 1)


class FarGauss(Gauss):
    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return super().log_prob(x - 200.0)


add("ula-far-target-not-flagged", lambda: _sampler("ula", num_steps=200, step_size=0.2).sample(
    FarGauss(), N, generator=_gen()),
    Returns(lambda s: not bool(s.diverged.any()) and float((s.x - 200.0).abs().max()) < 8.0, "draws near 200"))

# sampler-specific constructor arguments
SPECIFIC: list[tuple[str, dict[str, Any], str, str]] = [
    ("ulmc", {"friction": 0.0}, "ValueError", "friction"),
    ("ulmc", {"friction": NAN}, "ValueError", "friction"),
    ("ais", {"target_accept": 0.0}, "ValueError", "target_accept"),
    ("ais", {"target_accept": NAN}, "ValueError", "target_accept"),
    ("ais", {"mcmc_steps": 0}, "ValueError", "mcmc_steps"),
    ("ais", {"schedule": 5}, "TypeError", "schedule"),
    ("ais", {"schedule": "nope"}, "ValueError", "schedule"),
    ("ais", {"schedule": lambda t: 2.0 * t}, "ValueError", "schedule"),
    ("ais", {"adapt_step": "no"}, "TypeError", "adapt_step"),
    ("smc", {"ess_threshold": 0.0}, "ValueError", "ess_threshold"),
    ("smc", {"ess_threshold": 1.5}, "ValueError", "ess_threshold"),
    ("smc", {"adapt_step": 0}, "TypeError", "adapt_step"),
    ("mult-almc", {"eps": 0.0}, "ValueError", "eps"),
    ("mult-almc", {"eps": INF}, "ValueError", "eps"),
    ("mult-almc", {"l_delta": 0.6}, "ValueError", "l_delta"),
    ("mult-almc", {"hold_fraction": 0.6, "final_fraction": 0.5}, "ValueError", "final_fraction"),
    ("mult-almc", {"integrator": "rk4"}, "ValueError", "integrator"),
    ("mult-almc", {"reference": "cauchy"}, "ValueError", "reference"),
    ("mult-almc", {"df": 0.0}, "ValueError", "df"),
    ("mult-almc", {"stages": 0}, "ValueError", "stages"),
    ("mult-almc", {"gamma_min": NAN}, "ValueError", "gamma_min"),
    ("mult-almc", {"fast_init_candidates": False}, "TypeError", "fast_init_candidates"),
    ("mult-almc", {"fast_init_candidates": 0.0}, "TypeError", "fast_init_candidates"),
    ("mult-almc", {"underdamped": "yes"}, "TypeError", "underdamped"),
    ("mult-cdiff", {"s_min": 6.0, "horizon": 5.0}, "ValueError", "s_min"),
    ("mult-cdiff", {"final_steps": -1}, "ValueError", "final_steps"),
    ("mult-cdiff", {"final_steps": 2.5}, "TypeError", "final_steps"),
    ("mult-cdiff", {"final_step_size": 0.0}, "ValueError", "final_step_size"),
    ("mult-cdiff", {"return_state": "both"}, "ValueError", "return_state"),
    ("mult-cdiff", {"reference": "gaussian"}, "TypeError", "reference"),
    ("mult-cdiff", {"fast_init_candidates": 0.0}, "TypeError", "fast_init_candidates"),
    ("mult-cdiff", {"max_substeps": 0}, "ValueError", "max_substeps"),
]
for _name, _kw, _err, _arg in SPECIFIC:
    _value = list(_kw.values())[-1]
    _label = "callable" if callable(_value) else repr(_value)  # a function's repr holds its address
    add(f"{_name}-{_arg}-{_label}", lambda n=_name, kw=_kw: _sampler(n, **kw),
        Raises((_err,), (_arg,)))


# --------------------------------------------------------------------------------------- tests
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case) -> None:
    outcome, detail = classify(case)
    assert outcome in ("clear error", "correct result"), f"{outcome}: {detail}"


def test_target_error_chain_and_cause() -> None:
    """The re-raised error names the sampler, the step and the chain, and chains the original."""
    from sciml.targets import TargetError

    with pytest.raises(TargetError, match=r"ula: .*after 0 of 20 steps.*chain 10") as info:
        _sampler("ula").sample(RaisesFar(), N, generator=_gen(), init=_init_far())
    assert isinstance(info.value.__cause__, ValueError) and "out of range" in str(info.value.__cause__)
    assert info.value.sampler == "ula" and info.value.step == 0 and info.value.chains == [10]


def test_ais_log_z_excludes_failed_chain() -> None:
    """A chain the target returns NaN on is given weight zero and log Z comes from the others: it
    stays within 4 standard errors of the truth 0 (N(0, I) is normalised; p0 = N(0, 4 I) differs from
    it, so the weights do vary). Standard error of log Z by the delta method, from the run's own weights."""
    n = 200
    x0 = 2.0 * torch.randn(n, 2, dtype=F64, generator=_gen(5))
    x0[10, 0] = 60.0
    with pytest.warns(RuntimeWarning, match="1 of 200 chains diverged"):
        s = AIS(num_steps=50, init_std=2.0, progress=False).sample(NanFar(), n, generator=_gen(), init=x0)
    assert bool(s.diverged[10]) and int(s.diverged.sum()) == 1 and bool(torch.isneginf(s.log_weights[10]))
    w = torch.exp(s.log_weights[~s.diverged] - s.log_weights[~s.diverged].max())
    se = float(w.std() / w.mean()) / math.sqrt(w.numel())
    assert 0.0 < se < 0.5 and abs(s.log_z) < 4.0 * se, (s.log_z, se)


def test_hopeless_step_size_stops_at_the_first_checks() -> None:
    # a step size of 1e6 diverges every chain within a step or two; the run stops at one of the first
    # two divergence checks (every 16 steps) instead of running its 200 (counted in steps, not seconds:
    # a timed test would depend on the machine and its load)
    for name in ("mult-almc", "mult-cdiff", "ula", "ulmc"):
        sampler = _hopeless(name)
        with pytest.warns(RuntimeWarning, match="stopped"):
            s = sampler.sample(Gauss(), 64, generator=_gen())
        assert bool(s.diverged.all()) and s.diagnostics["stopped_at_step"] is not None
        assert s.diagnostics["stopped_at_step"] <= 2 * sampler._check_every, name


if __name__ == "__main__":
    counts: dict[str, int] = {}
    for c in CASES:
        out, det = classify(c)
        counts[out] = counts.get(out, 0) + 1
        if out not in ("clear error", "correct result"):
            print(f"{out:15s} {c.id}: {det[:200]}")
    print(len(CASES), "cases:", counts)
