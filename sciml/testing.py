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
]


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

    def sample(self, shape: Sequence[int] = (), generator: torch.Generator | None = None) -> Tensor:
        return torch.randn(*shape, self.dim, dtype=self.dtype, device=self.device, generator=generator)


def check_sampler(sampler: Any, target: Any | None = None, num_samples: int = 64,
                  dtypes: Sequence[torch.dtype] = (torch.float64, torch.float32)) -> list[str]:
    """Check a :class:`~sciml.Sampler` instance.

    Args:
        sampler: the configured sampler (keep its budget small: it runs several times).
        target: target to sample; default :class:`StandardNormalTarget` in 2-D (one per dtype).
        num_samples: number of draws per run.
        dtypes: dtypes to exercise with the default target.
    """
    checks = _Checks(_subject(sampler))
    checks.run("class contract", lambda: check_plugin_class(type(sampler)))
    targets = [target] if target is not None else [StandardNormalTarget(2, dtype=d) for d in dtypes]

    def gen(seed: int) -> torch.Generator:
        return torch.Generator().manual_seed(seed)

    for tgt in targets:
        tag = f"[{getattr(tgt, 'dtype', '')}]"
        out: dict[str, Samples] = {}

        def result_type(tgt: Any = tgt, out: dict[str, Samples] = out) -> None:
            res = sampler.sample(tgt, num_samples, generator=gen(0))
            out["a"] = res
            _expect(isinstance(res, Samples), f"sample() returned {type(res).__name__}, not Samples")
            dim = getattr(tgt, "dim", res.x.shape[-1])
            _expect(tuple(res.x.shape) == (num_samples, dim), f"x has shape {tuple(res.x.shape)}, want {(num_samples, dim)}")
            _expect(bool(torch.isfinite(res.x).all()), "x has non-finite entries on a standard normal")
            if hasattr(tgt, "dtype"):
                _expect(res.x.dtype == tgt.dtype, f"x dtype {res.x.dtype} != target dtype {tgt.dtype}")
            for field_name in ("n_evals", "n_grad_evals"):
                v = getattr(res, field_name)
                _expect(isinstance(v, int) and v >= 0, f"{field_name} = {v!r} is not a non-negative int")
            if res.log_weights is not None:
                _expect(tuple(res.log_weights.shape) == (num_samples,), "log_weights must have shape (num_samples,)")

        def seeding(tgt: Any = tgt, out: dict[str, Samples] = out) -> None:
            a = out.get("a") or sampler.sample(tgt, num_samples, generator=gen(0))
            b = sampler.sample(tgt, num_samples, generator=gen(0))
            c = sampler.sample(tgt, num_samples, generator=gen(1))
            _expect(torch.equal(a.x, b.x), "equal seeds gave different samples")
            _expect(not torch.equal(a.x, c.x), "different seeds gave identical samples")

        checks.run(f"result type and shape {tag}", result_type)
        checks.run(f"seeding {tag}", seeding)

    base = targets[0]
    checks.run("num_samples <= 0 raises ValueError",
               lambda: _expect_raises(ValueError, lambda: sampler.sample(base, 0, generator=gen(0)), "num_samples=0"))
    checks.run("bad generator raises TypeError",
               lambda: _expect_raises(TypeError, lambda: sampler.sample(base, num_samples, generator=0), "generator=0"))
    if target is None:
        nan_target = StandardNormalTarget(2, nan=True)
        checks.run("non-finite target raises ValueError",
                   lambda: _expect_raises(ValueError, lambda: sampler.sample(nan_target, num_samples, generator=gen(0)),
                                          "log_prob returning NaN"))
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
        points: evaluation points of shape ``(n, d)`` for the solution.
        solve_kwargs: further keyword arguments of ``solve``.
    """
    checks = _Checks(_subject(solver))
    checks.run("class contract", lambda: check_plugin_class(type(solver)))
    kwargs = dict(solve_kwargs or {})
    out: dict[str, Any] = {}

    def result() -> None:
        sol = solver.solve(*problem, generator=torch.Generator().manual_seed(0), **kwargs)
        out["a"] = sol
        _expect(isinstance(sol, Solution), f"solve() returned {type(sol).__name__}, not Solution")
        val = sol(points)
        _expect(isinstance(val, Tensor) and val.shape[0] == points.shape[0],
                f"solution(points) has shape {tuple(getattr(val, 'shape', ()))}, want leading dim {points.shape[0]}")
        _expect(bool(torch.isfinite(val).all()), "solution has non-finite values")
        _expect(isinstance(sol.loss_history, list) and isinstance(sol.diagnostics, dict),
                "loss_history must be a list and diagnostics a dict")

    def seeding() -> None:
        a = out.get("a") or solver.solve(*problem, generator=torch.Generator().manual_seed(0), **kwargs)
        b = solver.solve(*problem, generator=torch.Generator().manual_seed(0), **kwargs)
        ga, gb = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
        va = _call_solution(a, points, ga)
        vb = _call_solution(b, points, gb)
        _expect(torch.equal(va, vb), "equal seeds gave different solutions")

    checks.run("result type and evaluation", result)
    checks.run("seeding", seeding)
    return checks.finish()


def _call_solution(sol: Solution, points: Tensor, generator: torch.Generator) -> Tensor:
    """Evaluate a solution, passing ``generator`` when its ``__call__`` accepts one."""
    if "generator" in inspect.signature(sol.__call__).parameters:
        return sol(points, generator=generator)
    return sol(points)


def check_surrogate(factory: Callable[[], Any], fit_args: Sequence[Any], predict_args: Sequence[Any],
                    fit_kwargs: dict[str, Any] | None = None) -> list[str]:
    """Check a :class:`~sciml.Surrogate`.

    Args:
        factory: builds a fresh, unfitted surrogate (called twice).
        fit_args: positional arguments of ``fit``.
        predict_args: positional arguments of ``predict``.
        fit_kwargs: further keyword arguments of ``fit``.
    """
    first = factory()
    checks = _Checks(_subject(first))
    checks.run("class contract", lambda: check_plugin_class(type(first)))
    out: dict[str, Any] = {}

    def fit_returns_self() -> None:
        res = first.fit(*fit_args, generator=torch.Generator().manual_seed(0), **(fit_kwargs or {}))
        _expect(res is first, "fit() must return self")
        out["fitted"] = True

    def deterministic_predict() -> None:
        _expect(out.get("fitted", False), "fit failed")
        a, b = first.predict(*predict_args), first.predict(*predict_args)
        _expect(_tree_equal(a, b), "predict() is not deterministic")

    def round_trip() -> None:
        _expect(out.get("fitted", False), "fit failed")
        _expect(hasattr(first, "state_dict") and hasattr(first, "load_state_dict"),
                "surrogate has no state_dict / load_state_dict")
        clone = factory()
        clone.load_state_dict(first.state_dict())
        _expect(_tree_equal(first.predict(*predict_args), clone.predict(*predict_args)),
                "state_dict round trip changed the predictions")

    for name, fn in [("fit returns self", fit_returns_self), ("deterministic predict", deterministic_predict),
                     ("state_dict round trip", round_trip)]:
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
