"""Conformance kit: checks a plugin against its interface contract.

Third-party authors (and every first-party plugin) call these from their test suite::

    from sciml.testing import check_sampler
    def test_conformance():
        check_sampler(MySampler(step_size=0.1))

Each ``check_*`` function runs a series of named checks and raises :class:`ConformanceError`
listing every check that failed (not only the first). They return the list of check names that
passed, so a test can assert on coverage if it wishes.

What is checked, per kind:

* every plugin (:func:`check_plugin_class`): concrete subclass of its interface, a non-empty
  ``name``, the right ``kind``, a supported ``api_version``, a docstring;
* :func:`check_sampler`: returns :class:`~sciml.Samples` with ``x`` of shape
  ``(num_samples, dim)``, finite, on the target's dtype (float32 and float64) and device;
  evaluation counts are non-negative ints; equal seeds give equal draws and different seeds
  different draws; ``num_samples <= 0``, a non-generator ``generator`` and a target returning
  NaN raise ``ValueError`` / ``TypeError``;
* :func:`check_operator`: output shape ``(B, out_channels, *grid)``, float32 and float64,
  deterministic in eval mode, batch rows independent, gradients reach every parameter, a
  ``state_dict`` round trip reproduces the output, a wrong channel count raises ``ValueError``;
* :func:`check_solver`: returns a :class:`~sciml.Solution` whose evaluation at points of shape
  ``(n, d)`` has leading dimension ``n`` and is finite; equal seeds give equal solutions;
* :func:`check_surrogate`: ``fit`` returns ``self``; ``predict`` is deterministic; a
  state-dict round trip into a fresh instance reproduces the predictions.

The conventions of ``docs/architecture.md`` are checked too: ``generator`` is keyword-only in
``sample`` / ``solve`` / ``fit`` (and in a solution's ``sample``); ``sample()`` / ``solve()`` leave
the instance as they found it; a solution's evaluation is deterministic and follows the dtype and
device of the points; diagnostics carry ``wall_time_s`` (seconds) and none of the retired aliases
(:data:`LEGACY_DIAGNOSTICS`), and the common keys have their types; torch's global settings
(threads, default dtype, grad mode, flush-denormal, deterministic algorithms) are unchanged by a
call (the kit restores them when a plugin does not).
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from .interfaces import KINDS, SUPPORTED_API_VERSIONS, Operator, Plugin, Samples, Solution, interface_for

__all__ = [
    "ConformanceError",
    "StandardNormalTarget",
    "check_plugin_class",
    "check_sampler",
    "check_operator",
    "check_solver",
    "check_surrogate",
    "check_diagnostics",
    "LEGACY_DIAGNOSTICS",
]

#: Diagnostics keys retired in favour of the conventions' names (``wall_time_s``, ``num_steps``).
LEGACY_DIAGNOSTICS: frozenset[str] = frozenset(
    {"wall_time", "train_time_s", "time_s", "elapsed", "n_steps", "n_iter", "n_iters", "num_iters"})


class ConformanceError(AssertionError):
    """One or more conformance checks failed; ``failures`` maps check name to message."""

    def __init__(self, subject: str, failures: dict[str, str]) -> None:
        self.failures = failures
        lines = [f"{subject} failed {len(failures)} conformance check(s):"]
        lines += [f"  - {name}: {msg}" for name, msg in failures.items()]
        super().__init__("\n".join(lines))


class _Checks:
    """Runs named checks, collecting failures instead of stopping at the first."""

    def __init__(self, subject: str) -> None:
        self.subject = subject
        self.passed: list[str] = []
        self.failures: dict[str, str] = {}

    def run(self, name: str, fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception as exc:  # a failing check, whatever it raised
            self.failures[name] = f"{type(exc).__name__}: {exc}"
        else:
            self.passed.append(name)

    def finish(self) -> list[str]:
        if self.failures:
            raise ConformanceError(self.subject, self.failures)
        return self.passed


def _expect(cond: bool, message: str) -> None:
    if not cond:
        raise AssertionError(message)


def _expect_raises(excs: type[BaseException] | tuple[type[BaseException], ...], fn: Callable[[], Any], what: str) -> None:
    try:
        fn()
    except excs:
        return
    except Exception as exc:
        raise AssertionError(f"{what}: expected {excs}, got {type(exc).__name__}: {exc}") from exc
    raise AssertionError(f"{what}: no error was raised")


def _subject(obj: Any) -> str:
    cls = obj if isinstance(obj, type) else type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"




# ------------------------------------------------------------------------------ conventions


def check_diagnostics(diagnostics: Any, where: str = "diagnostics") -> None:
    """Raise ``AssertionError`` unless ``diagnostics`` follows the naming conventions.

    A dict with ``wall_time_s`` (a real number >= 0), none of :data:`LEGACY_DIAGNOSTICS`, and, when
    present, ``num_steps`` / ``n_evals`` / ``n_grad_evals`` non-negative ints and ``loss_history`` a list.
    """
    _expect(isinstance(diagnostics, dict), f"{where} is a {type(diagnostics).__name__}, not a dict")
    legacy = sorted(LEGACY_DIAGNOSTICS & set(diagnostics))
    _expect(not legacy, f"{where} uses retired key(s) {legacy}: use wall_time_s / num_steps")
    wall = diagnostics.get("wall_time_s")
    _expect(isinstance(wall, (int, float)) and not isinstance(wall, bool) and wall >= 0,
            f"{where}['wall_time_s'] = {wall!r}: want the wall time in seconds (a number >= 0)")
    for key in ("num_steps", "n_evals", "n_grad_evals"):
        if key in diagnostics:
            v = diagnostics[key]
            _expect(isinstance(v, int) and not isinstance(v, bool) and v >= 0, f"{where}[{key!r}] = {v!r} is not an int >= 0")
    if "loss_history" in diagnostics:
        _expect(isinstance(diagnostics["loss_history"], list), f"{where}['loss_history'] is not a list")


def _keyword_only_generator(fn: Callable[..., Any], what: str) -> None:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return
    p = params.get("generator")
    _expect(p is not None, f"{what} has no `generator` parameter")
    _expect(p.kind is inspect.Parameter.KEYWORD_ONLY, f"{what}: `generator` must be keyword-only (after `*`)")


def _flushes_denormals() -> bool:
    return float(torch.tensor([1e-40], dtype=torch.float32) * 2) == 0.0


def _torch_globals() -> dict[str, Any]:
    return {"num_threads": torch.get_num_threads(), "default_dtype": torch.get_default_dtype(),
            "grad_enabled": torch.is_grad_enabled(), "flush_denormal": _flushes_denormals(),
            "deterministic": torch.are_deterministic_algorithms_enabled()}


def _restore_globals(saved: dict[str, Any]) -> None:
    torch.set_num_threads(saved["num_threads"])
    torch.set_default_dtype(saved["default_dtype"])
    torch.set_grad_enabled(saved["grad_enabled"])
    torch.set_flush_denormal(saved["flush_denormal"])
    torch.use_deterministic_algorithms(saved["deterministic"])


class _Watch:
    """Runs calls of a plugin, recording torch globals and the instance's state around each."""

    def __init__(self, instance: Any) -> None:
        self.instance = instance
        self.global_changes: list[str] = []
        self.state_changes: list[str] = []

    def call(self, what: str, fn: Callable[[], Any]) -> Any:
        before, state = _torch_globals(), _freeze(self.instance)
        try:
            return fn()
        finally:
            after = _torch_globals()
            changed = [f"{k}: {before[k]} -> {after[k]}" for k in before if before[k] != after[k]]
            if changed:
                self.global_changes.append(f"{what} changed torch globals ({'; '.join(changed)})")
                _restore_globals(before)
            diff = _state_diff(state, _freeze(self.instance))
            if diff:
                self.state_changes.append(f"{what} changed the instance: {diff}")

    def check_globals(self) -> None:
        _expect(not self.global_changes, "; ".join(self.global_changes))

    def check_state(self) -> None:
        _expect(not self.state_changes, "; ".join(self.state_changes))


def _freeze(obj: Any, depth: int = 0) -> Any:
    """A comparable snapshot of ``obj``'s state (tensors cloned, containers and attributes recursed)."""
    if isinstance(obj, Tensor):
        return ("tensor", obj.detach().clone(), obj.dtype, obj.device)
    if isinstance(obj, (str, bytes, int, float, complex, bool, type(None), torch.dtype, torch.device)):
        return obj
    if depth > 4:
        return ("object", id(obj))
    if isinstance(obj, torch.nn.Module):
        return ("module", {k: _freeze(v, depth + 1) for k, v in obj.state_dict().items()},
                _freeze({k: v for k, v in vars(obj).items() if not k.startswith("_")}, depth + 1))
    if isinstance(obj, (list, tuple)):
        return (type(obj).__name__, [_freeze(v, depth + 1) for v in obj])
    if isinstance(obj, dict):
        return ("dict", {k: _freeze(v, depth + 1) for k, v in obj.items()})
    if hasattr(obj, "__dict__") and not inspect.isroutine(obj) and not isinstance(obj, type):
        return ("object", id(obj), {k: _freeze(v, depth + 1) for k, v in vars(obj).items()})
    return ("object", id(obj))


def _state_diff(a: Any, b: Any, path: str = "self") -> str:
    """Where two snapshots differ (the first place found), or ``""``."""
    if isinstance(a, tuple) and a and a[0] == "tensor":
        same = (isinstance(b, tuple) and b and b[0] == "tensor" and a[2:] == b[2:]
                and a[1].shape == b[1].shape and bool(torch.equal(a[1], b[1])))
        return "" if same else f"{path} (a tensor) changed"
    if type(a) is not type(b):
        return f"{path} changed type"
    if isinstance(a, dict):
        if a.keys() != b.keys():
            added, removed = sorted(map(str, b.keys() - a.keys())), sorted(map(str, a.keys() - b.keys()))
            return f"{path}: attributes/keys added {added}, removed {removed}"
        for k in a:
            d = _state_diff(a[k], b[k], f"{path}.{k}")
            if d:
                return d
        return ""
    if isinstance(a, (list, tuple)):  # tuples are snapshot tags, lists the user's sequences
        if len(a) != len(b):
            return f"{path} changed length"
        for i, (x, y) in enumerate(zip(a, b)):
            d = _state_diff(x, y, f"{path}[{i}]" if isinstance(a, list) else path)
            if d:
                return d
        return ""
    return "" if a == b or (isinstance(a, float) and a != a and b != b) else f"{path} changed ({a!r} -> {b!r})"

# --------------------------------------------------------------------------------------------


def check_plugin_class(cls: type[Plugin]) -> list[str]:
    """Check the class-level contract shared by all plugins."""
    checks = _Checks(_subject(cls))
    interface = interface_for(cls)

    def implements() -> None:
        _expect(interface is not None, f"not a subclass of any of {[k.__name__ for k in KINDS.values()]}")
        _expect(not inspect.isabstract(cls), f"abstract methods left: {sorted(cls.__abstractmethods__)}")

    def identity() -> None:
        _expect(isinstance(cls.name, str) and cls.name != "", "class attribute `name` must be a non-empty str")
        _expect(cls.name == cls.name.strip().lower(), f"name {cls.name!r} should be lower case")
        _expect(interface is not None and cls.kind == interface.kind, f"kind {cls.kind!r} was overridden")

    def version() -> None:
        _expect(cls.api_version in SUPPORTED_API_VERSIONS, f"api_version {cls.api_version!r} unsupported")

    def documented() -> None:
        doc = cls.__doc__
        _expect(bool(doc) and doc is not (interface.__doc__ if interface else None), "class has no docstring of its own")

    for name, fn in [("implements interface", implements), ("identity", identity),
                     ("api version", version), ("docstring", documented)]:
        checks.run(name, fn)
    return checks.finish()


class StandardNormalTarget:
    """Default target of :func:`check_sampler`: N(0, I) in ``dim`` dimensions.

    Exposes ``log_prob(x) -> (n,)``, ``dim``, ``dtype`` and ``device`` like a
    :mod:`sciml.targets` target; ``nan=True`` makes ``log_prob`` return NaN everywhere.
    """

    def __init__(self, dim: int = 2, dtype: torch.dtype = torch.float64,
                 device: torch.device | str = "cpu", nan: bool = False) -> None:
        self.dim, self.dtype, self.device, self.nan = dim, dtype, torch.device(device), nan

    def log_prob(self, x: Tensor) -> Tensor:
        lp = -0.5 * (x * x).sum(-1) - 0.5 * self.dim * torch.log(torch.tensor(2 * torch.pi, dtype=x.dtype))
        return torch.full_like(lp, float("nan")) if self.nan else lp

    def sample(self, shape: Sequence[int] = (), *, generator: torch.Generator | None = None) -> Tensor:
        return torch.randn(*shape, self.dim, dtype=self.dtype, device=self.device, generator=generator)


def check_sampler(sampler: Any, target: Any | None = None, num_samples: int = 64,
                  dtypes: Sequence[torch.dtype] = (torch.float64, torch.float32)) -> list[str]:
    """Check a :class:`~sciml.Sampler` instance.

    Args:
        sampler: the configured sampler (keep its budget small: it runs several times).
        target: target to sample; default :class:`StandardNormalTarget` in 2-D (one per dtype, and
            on CUDA too when a GPU is visible).
        num_samples: number of draws per run.
        dtypes: dtypes to exercise with the default target.
    """
    checks = _Checks(_subject(sampler))
    checks.run("class contract", lambda: check_plugin_class(type(sampler)))
    checks.run("generator keyword-only", lambda: _keyword_only_generator(sampler.sample, "sample()"))
    if target is not None:
        targets = [target]
    else:
        targets = [StandardNormalTarget(2, dtype=d) for d in dtypes]
        if torch.cuda.is_available():
            targets.append(StandardNormalTarget(2, dtype=dtypes[0], device="cuda"))
    watch = _Watch(sampler)

    def gen(seed: int) -> torch.Generator:
        return torch.Generator().manual_seed(seed)

    def draw(tgt: Any, seed: int) -> Samples:
        return watch.call("sample()", lambda: sampler.sample(tgt, num_samples, generator=gen(seed)))

    for tgt in targets:
        dev = getattr(tgt, "device", None)
        tag = f"[{getattr(tgt, 'dtype', '')}{'' if dev is None or torch.device(dev).type == 'cpu' else ', ' + str(dev)}]"
        out: dict[str, Samples] = {}

        def result_type(tgt: Any = tgt, out: dict[str, Samples] = out) -> None:
            res = draw(tgt, 0)
            out["a"] = res
            _expect(isinstance(res, Samples), f"sample() returned {type(res).__name__}, not Samples")
            dim = getattr(tgt, "dim", res.x.shape[-1])
            _expect(tuple(res.x.shape) == (num_samples, dim), f"x has shape {tuple(res.x.shape)}, want {(num_samples, dim)}")
            _expect(bool(torch.isfinite(res.x).all()), "x has non-finite entries on a standard normal")
            if hasattr(tgt, "dtype"):
                _expect(res.x.dtype == tgt.dtype, f"x dtype {res.x.dtype} != target dtype {tgt.dtype}")
            if hasattr(tgt, "device"):
                _expect(res.x.device == torch.device(tgt.device), f"x device {res.x.device} != target device {tgt.device}")
            for field_name in ("n_evals", "n_grad_evals"):
                v = getattr(res, field_name)
                _expect(isinstance(v, int) and v >= 0, f"{field_name} = {v!r} is not a non-negative int")
            if res.log_weights is not None:
                _expect(tuple(res.log_weights.shape) == (num_samples,), "log_weights must have shape (num_samples,)")

        def seeding(tgt: Any = tgt, out: dict[str, Samples] = out) -> None:
            a = out.get("a") or draw(tgt, 0)
            b, c = draw(tgt, 0), draw(tgt, 1)
            _expect(torch.equal(a.x, b.x), "equal seeds gave different samples")
            _expect(not torch.equal(a.x, c.x), "different seeds gave identical samples")

        def diagnostics(out: dict[str, Samples] = out) -> None:
            _expect("a" in out, "sample() failed")
            check_diagnostics(out["a"].diagnostics, "Samples.diagnostics")

        checks.run(f"result type and shape {tag}", result_type)
        checks.run(f"seeding {tag}", seeding)
        checks.run(f"diagnostics keys {tag}", diagnostics)

    base = targets[0]
    def raises(exc: type[BaseException], what: str, tgt: Any, n: int, generator: Any) -> None:
        _expect_raises(exc, lambda: watch.call("sample()", lambda: sampler.sample(tgt, n, generator=generator)), what)

    checks.run("num_samples <= 0 raises ValueError", lambda: raises(ValueError, "num_samples=0", base, 0, gen(0)))
    checks.run("bad generator raises TypeError", lambda: raises(TypeError, "generator=0", base, num_samples, 0))
    if target is None:
        nan_target = StandardNormalTarget(2, nan=True)
        checks.run("non-finite target raises ValueError",
                   lambda: raises(ValueError, "log_prob returning NaN", nan_target, num_samples, gen(0)))
    checks.run("instance unchanged by sample()", watch.check_state)
    checks.run("torch globals unchanged", watch.check_globals)
    return checks.finish()


def check_operator(operator: Operator, input_shape: Sequence[int]) -> list[str]:
    """Check an :class:`~sciml.Operator` instance on inputs of shape ``(B, in_channels, *grid)``."""
    checks = _Checks(_subject(operator))
    checks.run("class contract", lambda: check_plugin_class(type(operator)))
    shape = tuple(input_shape)
    gen = torch.Generator().manual_seed(0)
    a32 = torch.randn(*shape, generator=gen)

    def attributes() -> None:
        for attr in ("in_channels", "out_channels", "n_dims"):
            _expect(isinstance(getattr(operator, attr, None), int), f"attribute {attr} must be an int")
        _expect(shape[1] == operator.in_channels, f"input_shape has {shape[1]} channels, operator wants {operator.in_channels}")
        _expect(len(shape) - 2 == operator.n_dims, f"input_shape has {len(shape) - 2} grid dims, operator has {operator.n_dims}")

    def forward_shape_dtypes() -> None:
        for dtype in (torch.float32, torch.float64):
            op = copy.deepcopy(operator).to(dtype).eval()
            with torch.no_grad():
                out = op(a32.to(dtype))
            want = (shape[0], operator.out_channels, *shape[2:])
            _expect(tuple(out.shape) == want, f"{dtype}: output shape {tuple(out.shape)}, want {want}")
            _expect(out.dtype == dtype, f"output dtype {out.dtype} for input {dtype}")
            _expect(bool(torch.isfinite(out).all()), f"{dtype}: non-finite output")

    def deterministic_and_batch_independent() -> None:
        op = copy.deepcopy(operator).to(torch.float64).eval()
        a = a32.to(torch.float64)
        with torch.no_grad():
            full, again = op(a), op(a)
            rows = torch.cat([op(a[i:i + 1]) for i in range(a.shape[0])])
        _expect(torch.equal(full, again), "eval-mode forward is not deterministic")
        _expect(torch.allclose(full, rows, rtol=1e-9, atol=1e-9), "batch rows are not independent")

    def gradients() -> None:
        op = copy.deepcopy(operator).train()
        op.zero_grad()
        op(a32).square().mean().backward()
        missing = [n for n, p in op.named_parameters() if p.requires_grad and (p.grad is None or not torch.isfinite(p.grad).all())]
        _expect(not missing, f"no finite gradient for parameters {missing[:5]}")

    def state_dict_round_trip() -> None:
        op = copy.deepcopy(operator).eval()
        clone = copy.deepcopy(operator)
        with torch.no_grad():
            for p in clone.parameters():
                p.add_(1.0)
        clone.load_state_dict(op.state_dict())
        clone.eval()
        with torch.no_grad():
            _expect(torch.equal(op(a32), clone(a32)), "state_dict round trip changed the output")

    def wrong_channels() -> None:
        bad = torch.randn(shape[0], shape[1] + 1, *shape[2:])
        _expect_raises(ValueError, lambda: operator(bad), "input with the wrong channel count")

    for name, fn in [("attributes", attributes), ("forward shape and dtypes", forward_shape_dtypes),
                     ("deterministic, batch-independent", deterministic_and_batch_independent),
                     ("gradients", gradients), ("state_dict round trip", state_dict_round_trip),
                     ("wrong channel count raises ValueError", wrong_channels)]:
        checks.run(name, fn)
    return checks.finish()


def check_solver(solver: Any, problem: Sequence[Any], points: Tensor,
                 solve_kwargs: dict[str, Any] | None = None) -> list[str]:
    """Check a :class:`~sciml.Solver` instance.

    Args:
        solver: the configured solver (keep the problem small: it is solved twice).
        problem: positional arguments of ``solver.solve``.
        points: evaluation points of shape ``(n, d)`` for the solution (a floating tensor).
        solve_kwargs: further keyword arguments of ``solve``.
    """
    checks = _Checks(_subject(solver))
    checks.run("class contract", lambda: check_plugin_class(type(solver)))
    checks.run("generator keyword-only", lambda: _keyword_only_generator(solver.solve, "solve()"))
    kwargs = dict(solve_kwargs or {})
    out: dict[str, Any] = {}
    watch = _Watch(solver)

    def solve(seed: int) -> Solution:
        return watch.call("solve()", lambda: solver.solve(*problem, generator=torch.Generator().manual_seed(seed),
                                                             **kwargs))

    def result() -> None:
        sol = solve(0)
        out["a"] = sol
        _expect(isinstance(sol, Solution), f"solve() returned {type(sol).__name__}, not Solution")
        val = sol(points)
        _expect(isinstance(val, Tensor) and val.shape[0] == points.shape[0],
                f"solution(points) has shape {tuple(getattr(val, 'shape', ()))}, want leading dim {points.shape[0]}")
        _expect(bool(torch.isfinite(val).all()), "solution has non-finite values")
        _expect(isinstance(sol.loss_history, list) and isinstance(sol.diagnostics, dict),
                "loss_history must be a list and diagnostics a dict")

    def solved() -> Solution:
        _expect("a" in out, "solve() failed")
        return out["a"]

    def deterministic_evaluation() -> None:
        sol = solved()
        _expect(torch.equal(sol(points), sol(points)), "two evaluations at the same points differ")
        if hasattr(sol, "sample"):
            _keyword_only_generator(sol.sample, "solution.sample()")

    def follows_points() -> None:
        sol = solved()
        for dtype in (torch.float32, torch.float64):
            val = sol(points.to(dtype))
            _expect(val.dtype == dtype, f"solution(points of {dtype}) returned {val.dtype}")
            _expect(val.device == points.device, f"solution(points on {points.device}) returned a tensor on {val.device}")

    def seeding() -> None:
        a, b = solved(), solve(0)
        _expect(torch.equal(a(points), b(points)), "equal seeds gave different solutions")

    checks.run("result type and evaluation", result)
    checks.run("deterministic evaluation", deterministic_evaluation)
    checks.run("evaluation follows the points' dtype and device", follows_points)
    checks.run("diagnostics keys", lambda: check_diagnostics(solved().diagnostics, "Solution.diagnostics"))
    checks.run("seeding", seeding)
    checks.run("instance unchanged by solve()", watch.check_state)
    checks.run("torch globals unchanged", watch.check_globals)
    return checks.finish()


def check_surrogate(factory: Callable[[], Any], fit_args: Sequence[Any], predict_args: Sequence[Any],
                    fit_kwargs: dict[str, Any] | None = None,
                    predict_kwargs: dict[str, Any] | None = None) -> list[str]:
    """Check a :class:`~sciml.Surrogate`.

    Args:
        factory: builds a fresh, unfitted surrogate (called twice).
        fit_args: positional arguments of ``fit``.
        predict_args: positional arguments of ``predict``.
        fit_kwargs: further keyword arguments of ``fit``.
        predict_kwargs: keyword arguments of ``predict``.
    """
    first = factory()
    predict_kwargs = predict_kwargs or {}
    checks = _Checks(_subject(first))
    checks.run("class contract", lambda: check_plugin_class(type(first)))
    out: dict[str, Any] = {}

    watch = _Watch(first)
    checks.run("generator keyword-only", lambda: _keyword_only_generator(first.fit, "fit()"))

    def fit_returns_self() -> None:
        res = watch.call("fit()", lambda: first.fit(*fit_args, generator=torch.Generator().manual_seed(0),
                                                      **(fit_kwargs or {})))
        _expect(res is first, "fit() must return self")
        out["fitted"] = True

    def deterministic_predict() -> None:
        _expect(out.get("fitted", False), "fit failed")
        a, b = first.predict(*predict_args, **predict_kwargs), first.predict(*predict_args, **predict_kwargs)
        _expect(_tree_equal(a, b), "predict() is not deterministic")

    def round_trip() -> None:
        _expect(out.get("fitted", False), "fit failed")
        _expect(hasattr(first, "state_dict") and hasattr(first, "load_state_dict"),
                "surrogate has no state_dict / load_state_dict")
        clone = factory()
        clone.load_state_dict(first.state_dict())
        _expect(_tree_equal(first.predict(*predict_args, **predict_kwargs),
                            clone.predict(*predict_args, **predict_kwargs)),
                "state_dict round trip changed the predictions")

    for name, fn in [("fit returns self", fit_returns_self), ("deterministic predict", deterministic_predict),
                     ("state_dict round trip", round_trip), ("torch globals unchanged", watch.check_globals)]:
        checks.run(name, fn)
    return checks.finish()


def _tree_equal(a: Any, b: Any) -> bool:
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        return a.shape == b.shape and bool(torch.equal(a, b))
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_tree_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_tree_equal(a[k], b[k]) for k in a)
    if hasattr(a, "__dict__") and type(a) is type(b) and not isinstance(a, (int, float, str)):
        return _tree_equal(vars(a), vars(b))
    return a == b
