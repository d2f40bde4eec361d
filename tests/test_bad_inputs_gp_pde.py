"""Bad inputs to every public entry point of the gp-pde plugin: a clear error naming the argument, or the
correct result where the math has one (each case says which)."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from sciml_plugins.gp_pde import (
    DifferentialOperator,
    GPPDESolution,
    GPPDESolver,
    PDEProblem,
    advection,
    laplacian,
    manufactured_problem,
)

import sciml
from sciml.io import SaveFileError, save_state

F64 = torch.float64
NAN = float("nan")


@dataclass(frozen=True)
class Raises:
    """The call must raise ``exc`` with a message matching ``match`` (which names the argument)."""

    exc: type[BaseException]
    match: str


@dataclass(frozen=True)
class Gives:
    """The call must return a value for which ``check`` holds (the correct result)."""

    check: Callable[[Any], bool]


def _u1(x: torch.Tensor) -> torch.Tensor:
    return torch.sin(3 * x[:, 0])


def _u2(x: torch.Tensor) -> torch.Tensor:
    return torch.sin(3 * x[:, 0]) * torch.cos(2 * x[:, 1])


@functools.cache
def _prob1() -> PDEProblem:
    return manufactured_problem(_u1, "laplacian", domain=[(0.0, 1.0)], grid=16)


@functools.cache
def _sol1() -> GPPDESolution:
    return GPPDESolver(freq_scale=2, max_evals=0, progress=False).solve(_prob1())


@functools.cache
def _sol2() -> GPPDESolution:
    prob = manufactured_problem(_u2, "laplacian", domain=[(0.0, 1.0)] * 2, grid=10)
    return GPPDESolver(freq_scale=2, max_evals=0, progress=False).solve(prob)


def _pts(n: int = 5, d: int = 1) -> torch.Tensor:
    return torch.rand(n, d, generator=torch.Generator().manual_seed(0), dtype=F64)


def _ax(n: int = 4) -> torch.Tensor:
    return torch.linspace(0.1, 0.9, n, dtype=F64)


def _dom2() -> list[tuple[float, float]]:
    return [(0.0, 1.0)] * 2


def _problem(**kw: Any) -> PDEProblem:
    args = dict(operator=laplacian(2), domain=_dom2(), grid=[8, 8], source=torch.zeros(8, 8, dtype=F64),
                boundary=torch.zeros(28, dtype=F64))
    args.update(kw)
    return PDEProblem(**args)


def _nan_at(t: torch.Tensor, idx: tuple) -> torch.Tensor:
    t = t.clone()
    t[idx] = NAN
    return t


def _solve(problem: PDEProblem, **kw: Any) -> GPPDESolution:
    return GPPDESolver(**{"freq_scale": 2, "max_evals": 0, "progress": False, **kw}).solve(problem)


def _same(ref: Callable[[], torch.Tensor]) -> Callable[[Any], bool]:
    return lambda got: isinstance(got, torch.Tensor) and torch.equal(got, ref())


def _sol_zero_data() -> GPPDESolution:
    return _solve(PDEProblem(laplacian(1), [(0.0, 1.0)], 16, torch.zeros(16, dtype=F64), torch.zeros(2, dtype=F64)))


def _affine_source() -> float:
    # u = 1 + 2x - 3y: Delta u = 0 exactly (autograd gives no graph for the second derivatives)
    prob = manufactured_problem(lambda x: 1 + 2 * x[:, 0] - 3 * x[:, 1], "laplacian", domain=_dom2(), grid=6)
    f, g = prob.grid_data()
    return float(f.abs().max())


# ---------------------------------------------------------------------------- save files
def _save_file(tmp: Any, kind: str) -> Any:
    p = tmp / f"{kind}.pt"
    sol = _sol1()
    if kind == "empty":
        p.write_bytes(b"")
    elif kind == "truncated":
        sol.save(p)
        p.write_bytes(p.read_bytes()[:200])
    elif kind == "random":
        p.write_bytes(bytes(torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(1),
                                          dtype=torch.uint8).tolist()))
    elif kind == "foreign":
        torch.save({"axes": sol.axes, "values": sol.values}, p)
    elif kind == "lightsb":
        save_state(p, "lightsb.Bridge", 3, {"log_alpha": torch.zeros(4, dtype=F64)})
    elif kind == "future":
        save_state(p, "gp_pde.GPPDESolution", 99, sol.state_dict())
    else:  # a valid file with one entry changed
        st = sol.state_dict()
        if kind == "nan_values":
            st["values"] = _nan_at(st["values"], (3,))
        elif kind == "values_shape":
            st["values"] = st["values"][:-1]
        elif kind == "params_len":
            st["params"] = [{**st["params"][0], "mu": st["params"][0]["mu"][:-1]}]
        elif kind == "params_dims":
            st["params"] = st["params"] * 2
        elif kind == "axes_order":
            st["axes"] = [st["axes"][0].flip(0)]
        elif kind == "axes_uneven":
            a = st["axes"][0].clone()
            a[3] += 0.3 * float(a[1] - a[0])
            st["axes"] = [a]
        elif kind == "kernel":
            st["kernel"] = "rbf"
        elif kind == "jitter":
            st["jitter"] = 0.0
        elif kind == "nan_param":
            st["params"] = [{**st["params"][0], "log_w": _nan_at(st["params"][0]["log_w"], (0,))}]
        else:
            raise AssertionError(kind)
        save_state(p, "gp_pde.GPPDESolution", 2, st)
    return p


SAVE_KINDS = ["empty", "truncated", "random", "foreign", "lightsb", "future", "nan_values", "values_shape",
              "params_len", "params_dims", "axes_order", "axes_uneven", "kernel", "jitter", "nan_param"]


# ---------------------------------------------------------------------------- the matrix
CASES: list[tuple[str, Callable[[], Any], Raises | Gives]] = [
    # DifferentialOperator / operator builders
    ("op-empty-terms", lambda: DifferentialOperator({}), Raises(ValueError, "terms")),
    ("op-list-terms", lambda: DifferentialOperator([((2,), 1.0)]), Raises(ValueError, "terms")),
    ("op-int-key", lambda: DifferentialOperator({2: 1.0}), Raises(TypeError, "multi-index")),
    ("op-negative-index", lambda: DifferentialOperator({(-1, 2): 1.0}), Raises(ValueError, "multi-index")),
    ("op-order-3", lambda: DifferentialOperator({(3,): 1.0}), Raises(ValueError, "order")),
    ("op-nan-coef", lambda: DifferentialOperator({(2,): NAN}), Raises(ValueError, "coefficient")),
    ("op-str-coef", lambda: DifferentialOperator({(2,): "1"}), Raises(ValueError, "coefficient")),
    ("op-phi-not-callable", lambda: DifferentialOperator({(2,): 1.0}, nonlinearity=3), Raises(TypeError, "nonlinearity")),
    ("laplacian-0", lambda: laplacian(0), Raises(ValueError, "dim")),
    ("laplacian-float", lambda: laplacian(2.0), Raises(TypeError, "dim")),
    ("advection-nan", lambda: advection(NAN), Raises(ValueError, "beta")),
    ("advection-str", lambda: advection("200"), Raises(TypeError, "beta")),
    # PDEProblem
    ("problem-operator-type", lambda: _problem(operator="laplacian"), Raises(TypeError, "operator")),
    ("problem-domain-number", lambda: _problem(domain=5), Raises(ValueError, "domain")),
    ("problem-domain-reversed", lambda: _problem(domain=[(1.0, 0.0), (0.0, 1.0)]), Raises(ValueError, "domain")),
    ("problem-domain-inf", lambda: _problem(domain=[(0.0, math.inf), (0.0, 1.0)]), Raises(ValueError, "domain")),
    ("problem-domain-dim", lambda: _problem(domain=[(0.0, 1.0)]), Raises(ValueError, "domain")),
    ("problem-grid-2", lambda: _problem(grid=2), Raises(ValueError, "grid")),
    ("problem-grid-0", lambda: _problem(grid=[0, 8]), Raises(ValueError, "grid")),
    ("problem-grid-float", lambda: _problem(grid=8.0), Raises(TypeError, "grid")),
    ("problem-grid-float-list", lambda: _problem(grid=[8.0, 8]), Raises(TypeError, "grid")),
    ("problem-grid-dims", lambda: _problem(grid=[8]), Raises(ValueError, "grid")),
    ("problem-source-shape", lambda: _problem(source=torch.zeros(8, 7, dtype=F64)), Raises(ValueError, "source")),
    ("problem-source-nan", lambda: _problem(source=_nan_at(torch.zeros(8, 8, dtype=F64), (2, 3))),
     Raises(ValueError, "source")),
    ("problem-source-int", lambda: _problem(source=torch.zeros(8, 8, dtype=torch.int64)), Raises(TypeError, "source")),
    ("problem-source-list", lambda: _problem(source=[[0.0] * 8] * 8), Raises(TypeError, "source")),
    ("problem-source-empty", lambda: _problem(source=torch.zeros(0, dtype=F64)), Raises(ValueError, "source")),
    ("problem-boundary-shape", lambda: _problem(boundary=torch.zeros(27, dtype=F64)), Raises(ValueError, "boundary")),
    ("problem-boundary-inf", lambda: _problem(boundary=torch.full((28,), math.inf, dtype=F64)),
     Raises(ValueError, "boundary")),
    ("problem-exact-not-callable", lambda: _problem(exact=torch.zeros(3)), Raises(TypeError, "exact")),
    ("problem-source-fn-shape", lambda: _solve(_problem(source=lambda x: torch.zeros(x.shape[0], 2, dtype=F64))),
     Raises(ValueError, "source")),
    ("problem-source-fn-list", lambda: _solve(_problem(source=lambda x: [0.0] * x.shape[0])),
     Raises(TypeError, "source")),
    ("problem-boundary-fn-nan", lambda: _solve(_problem(boundary=lambda x: torch.full((x.shape[0],), NAN, dtype=F64))),
     Raises(ValueError, "boundary")),
    ("problem-source-float32", lambda: _solve(_problem(source=torch.zeros(8, 8))).values.abs().max().item(),
     Gives(lambda v: v == 0.0)),
    # manufactured_problem
    ("manufactured-not-callable", lambda: manufactured_problem(3.0, domain=[(0.0, 1.0)]), Raises(TypeError, "u_exact")),
    ("manufactured-operator-name", lambda: manufactured_problem(_u1, "heat", domain=[(0.0, 1.0)]),
     Raises(ValueError, "operator")),
    ("manufactured-no-domain", lambda: manufactured_problem(_u1), Raises(ValueError, "domain")),
    ("manufactured-empty-domain", lambda: manufactured_problem(_u1, domain=[]), Raises(ValueError, "domain")),
    ("manufactured-grid-2", lambda: manufactured_problem(_u1, domain=[(0.0, 1.0)], grid=2), Raises(ValueError, "grid")),
    ("manufactured-nan-u", lambda: _solve(manufactured_problem(lambda x: torch.log(x[:, 0] - 0.5), domain=[(0.0, 1.0)],
                                                               grid=10)), Raises(ValueError, "non-finite")),
    ("manufactured-affine-u", _affine_source, Gives(lambda v: v == 0.0)),
    # GPPDESolver arguments
    ("solver-n_components-0", lambda: GPPDESolver(n_components=0), Raises(ValueError, "n_components")),
    ("solver-n_components-float", lambda: GPPDESolver(n_components=2.5), Raises(TypeError, "n_components")),
    ("solver-freq_scale-nan", lambda: GPPDESolver(freq_scale=NAN), Raises(ValueError, "freq_scale")),
    ("solver-freq_scale-empty", lambda: GPPDESolver(freq_scale=[]), Raises(ValueError, "freq_scale")),
    ("solver-freq_scale-str", lambda: GPPDESolver(freq_scale="20"), Raises(TypeError, "freq_scale")),
    ("solver-kernel", lambda: GPPDESolver(kernel=None), Raises(ValueError, "kernel")),
    ("solver-log_lengthscale-nan", lambda: GPPDESolver(log_lengthscale=NAN), Raises(ValueError, "log_lengthscale")),
    ("solver-log_lengthscale-bool", lambda: GPPDESolver(log_lengthscale=True), Raises(TypeError, "log_lengthscale")),
    ("solver-residual_precision-0", lambda: GPPDESolver(residual_precision=0.0), Raises(ValueError, "residual_precision")),
    ("solver-jitter-0", lambda: GPPDESolver(jitter=0.0), Raises(ValueError, "jitter")),
    ("solver-jitter-inf", lambda: GPPDESolver(jitter=math.inf), Raises(ValueError, "jitter")),
    ("solver-max_evals-neg", lambda: GPPDESolver(max_evals=-1), Raises(ValueError, "max_evals")),
    ("solver-max_evals-float", lambda: GPPDESolver(max_evals=1.5), Raises(TypeError, "max_evals")),
    ("solver-newton_steps-0", lambda: GPPDESolver(newton_steps=0), Raises(ValueError, "newton_steps")),
    ("solver-dense_limit-0", lambda: GPPDESolver(dense_limit=0), Raises(ValueError, "dense_limit")),
    ("solver-init_noise-neg", lambda: GPPDESolver(init_noise=-0.1), Raises(ValueError, "init_noise")),
    # retired experiment switches are not accepted any more
    ("solver-objective-retired", lambda: GPPDESolver(objective="joint"), Raises(TypeError, "objective")),
    ("solver-boundary_iters-retired", lambda: GPPDESolver(boundary_iters=1), Raises(TypeError, "boundary_iters")),
    ("solver-mean_boundary-retired", lambda: GPPDESolver(mean_boundary=True), Raises(TypeError, "mean_boundary")),
    ("solver-dense_threads-retired", lambda: GPPDESolver(dense_threads=1), Raises(TypeError, "dense_threads")),
    ("solver-prune-retired", lambda: GPPDESolver(prune=False), Raises(TypeError, "prune")),
    ("solver-dtype-float32", lambda: GPPDESolver(dtype=torch.float32), Raises(ValueError, "dtype")),
    ("solver-dtype-int", lambda: GPPDESolver(dtype=torch.int64), Raises(TypeError, "dtype")),
    ("solver-dtype-str", lambda: GPPDESolver(dtype="float64"), Raises(TypeError, "dtype")),
    ("solver-device-int", lambda: GPPDESolver(device=5), Raises(TypeError, "device")),
    ("solver-device-unknown", lambda: GPPDESolver(device="tpu0"), Raises(ValueError, "device")),
    ("solver-device-positional", lambda: GPPDESolver(30, 20.0, "gm", 0.0, 1e16, 1e-8, 150, 60, 2048, 0.0, "cpu"),
     Raises(TypeError, "positional")),
    ("solver-progress-str", lambda: GPPDESolver(progress="yes"), Raises(TypeError, "progress")),
    # solve()
    ("solve-none", lambda: GPPDESolver(progress=False).solve(None), Raises(TypeError, "problem")),
    ("solve-generator", lambda: GPPDESolver(progress=False).solve(_prob1(), generator=0), Raises(TypeError, "generator")),
    ("solve-freq_scale-len", lambda: GPPDESolver(freq_scale=[2, 2], progress=False).solve(_prob1()),
     Raises(ValueError, "freq_scale")),
    ("solve-mixed-large", lambda: _solve(PDEProblem(DifferentialOperator({(1, 1): 1.0}), _dom2(), [50, 50],
                                                    lambda x: x[:, 0] * 0, lambda x: x[:, 0] * 0)),
     Raises(ValueError, "mixed")),
    ("solve-jitter-tiny", lambda: _solve(_prob1(), jitter=1e-20), Raises(ValueError, "jitter")),
    ("solve-zero-data", lambda: _sol_zero_data().values.abs().max().item(), Gives(lambda v: v == 0.0)),
    ("solve-scale-1e-4", lambda: _solve(PDEProblem(laplacian(1), [(0.0, 1.0)], 16, *(1e-4 * t for t in _prob1().grid_data())),
                                        max_evals=10).relative_l2(lambda x: 1e-4 * _u1(x)), Gives(lambda e: e < 1e-3)),
    ("solve-scale-1e20", lambda: _solve(PDEProblem(laplacian(1), [(0.0, 1.0)], 16, *(1e20 * t for t in _prob1().grid_data()))
                                        ).relative_l2(lambda x: 1e20 * _u1(x)), Gives(lambda e: e < 1e-3)),
    # solution: __call__ / derivative / std
    ("call-nan", lambda: _sol1()(_nan_at(_pts(), (1, 0))), Raises(ValueError, "x")),
    ("call-inf", lambda: _sol1()(torch.full((2, 1), math.inf, dtype=F64)), Raises(ValueError, "x")),
    ("call-1d-tensor", lambda: _sol1()(_ax()), Raises(ValueError, "x")),
    ("call-columns", lambda: _sol1()(_pts(3, 2)), Raises(ValueError, "x")),
    ("call-list", lambda: _sol1()([[0.5]]), Raises(TypeError, "x")),
    ("call-int", lambda: _sol1()(torch.zeros(2, 1, dtype=torch.int64)), Raises(TypeError, "x")),
    # float32 points: evaluated in float64 at the rounded points, returned in the points' dtype
    ("call-float32", lambda: _sol1()(_pts().float()), Gives(_same(lambda: _sol1()(_pts().float().double()).float()))),
    ("call-empty", lambda: _sol1()(torch.zeros(0, 1, dtype=F64)), Gives(lambda v: v.shape == (0,))),
    ("derivative-orders-len", lambda: _sol1().derivative(_pts(), [1, 0]), Raises(ValueError, "orders")),
    ("derivative-orders-3", lambda: _sol1().derivative(_pts(), [3]), Raises(ValueError, "orders")),
    ("derivative-orders-none", lambda: _sol1().derivative(_pts(), None), Raises(TypeError, "orders")),
    ("derivative-orders-int", lambda: _sol1().derivative(_pts(), 1), Raises(TypeError, "orders")),
    ("derivative-nan", lambda: _sol1().derivative(_nan_at(_pts(), (0, 0)), [1]), Raises(ValueError, "x")),
    ("std-nan", lambda: _sol1().std(_nan_at(_pts(), (0, 0))), Raises(ValueError, "x")),
    ("std-columns", lambda: _sol2().std(_pts(3, 1)), Raises(ValueError, "x")),
    ("std-empty", lambda: _sol1().std(torch.zeros(0, 1, dtype=F64)), Gives(lambda v: v.shape == (0,))),
    # on_grid
    ("on_grid-extra-axis", lambda: _sol2().on_grid([_ax()] * 3), Raises(ValueError, "axes")),
    ("on_grid-missing-axis", lambda: _sol2().on_grid([_ax()]), Raises(ValueError, "axes")),
    ("on_grid-nan", lambda: _sol2().on_grid([_nan_at(_ax(), (1,)), _ax()]), Raises(ValueError, "axes")),
    ("on_grid-2d-axis", lambda: _sol2().on_grid([_ax()[:, None], _ax()]), Raises(ValueError, "axes")),
    ("on_grid-lists", lambda: _sol2().on_grid([[0.5], [0.5]]), Raises(TypeError, "axes")),
    ("on_grid-tensor", lambda: _sol2().on_grid(_ax()), Raises(TypeError, "axes")),
    ("on_grid-orders", lambda: _sol2().on_grid([_ax(), _ax()], orders=[1]), Raises(ValueError, "orders")),
    ("on_grid-empty-axis", lambda: _sol2().on_grid([_ax()[:0], _ax()]), Gives(lambda v: v.shape == (0, 4))),
    ("on_grid-float32", lambda: _sol2().on_grid([_ax().float(), _ax(3)]),
     Gives(_same(lambda: _sol2().on_grid([_ax().float().double(), _ax(3)])))),
    # residual / boundary_error
    ("residual-problem-str", lambda: _sol1().residual(_pts(), problem="p"), Raises(TypeError, "problem")),
    ("residual-problem-dim", lambda: _sol1().residual(_pts(), problem=_problem(source=lambda x: x[:, 0])),
     Raises(ValueError, "problem")),
    ("residual-tensor-source", lambda: _sol1().residual(_pts(), problem=PDEProblem(
        laplacian(1), [(0.0, 1.0)], 16, torch.zeros(16, dtype=F64), _u1)), Raises(ValueError, "source")),
    ("residual-nan", lambda: _sol1().residual(_nan_at(_pts(), (0, 0))), Raises(ValueError, "x")),
    ("boundary_error-problem-str", lambda: _sol1().boundary_error(_pts(), problem=1), Raises(TypeError, "problem")),
    ("boundary_error-columns", lambda: _sol1().boundary_error(_pts(2, 2)), Raises(ValueError, "x")),
    # relative_l2
    ("relative_l2-column", lambda: _sol1().relative_l2(lambda x: _u1(x)[:, None]),
     Gives(lambda e: abs(e - _sol1().relative_l2(_u1)) <= 1e-12)),
    ("relative_l2-not-callable", lambda: _sol1().relative_l2(3.0), Raises(TypeError, "exact")),
    ("relative_l2-wrong-length", lambda: _sol1().relative_l2(lambda x: _u1(x)[:-1]), Raises(ValueError, "exact")),
    ("relative_l2-nan", lambda: _sol1().relative_l2(lambda x: _u1(x) * NAN), Raises(ValueError, "exact")),
    ("relative_l2-list", lambda: _sol1().relative_l2(lambda x: _u1(x).tolist()), Raises(TypeError, "exact")),
    ("relative_l2-n_test-0", lambda: _sol1().relative_l2(_u1, n_test=0), Raises(ValueError, "n_test")),
    ("relative_l2-n_test-float", lambda: _sol1().relative_l2(_u1, n_test=2.5), Raises(TypeError, "n_test")),
    ("relative_l2-zero-exact", lambda: _sol1().relative_l2(lambda x: 0 * x[:, 0]), Gives(lambda e: e == math.inf)),
    ("relative_l2-both-zero", lambda: _sol_zero_data().relative_l2(lambda x: 0 * x[:, 0]), Gives(lambda e: e == 0.0)),
    # spectrum
    ("spectrum-negative", lambda: _sol1().spectrum(-1.0), Raises(ValueError, "rel_threshold")),
    ("spectrum-nan", lambda: _sol1().spectrum(NAN), Raises(ValueError, "rel_threshold")),
    ("spectrum-str", lambda: _sol1().spectrum("0.1"), Raises(TypeError, "rel_threshold")),
    # GPPDESolution built directly
    ("solution-kernel", lambda: GPPDESolution(_sol1().axes, _sol1().params, "rbf", 1e-8, _sol1().values),
     Raises(ValueError, "kernel")),
    ("solution-jitter-0", lambda: GPPDESolution(_sol1().axes, _sol1().params, "gm", 0.0, _sol1().values),
     Raises(ValueError, "jitter")),
    ("solution-values-shape", lambda: GPPDESolution(_sol1().axes, _sol1().params, "gm", 1e-8, _sol1().values[:-1]),
     Raises(ValueError, "values")),
    ("solution-values-nan", lambda: GPPDESolution(_sol1().axes, _sol1().params, "gm", 1e-8,
                                                  _nan_at(_sol1().values, (2,))), Raises(ValueError, "values")),
    ("solution-params-dims", lambda: GPPDESolution(_sol1().axes, _sol1().params * 2, "gm", 1e-8, _sol1().values),
     Raises(ValueError, "params")),
    # load
    ("load-missing", lambda: GPPDESolution.load("/nonexistent/gp.pt"), Raises(FileNotFoundError, "gp.pt")),
    ("load-path-int", lambda: GPPDESolution.load(3), Raises(TypeError, "path")),
]


@pytest.mark.parametrize("name,call,expect", CASES, ids=[c[0] for c in CASES])
def test_bad_input(name: str, call: Callable[[], Any], expect: Raises | Gives) -> None:
    if isinstance(expect, Raises):
        with pytest.raises(expect.exc, match=expect.match):
            call()
    else:
        assert expect.check(call())


@pytest.mark.parametrize("kind", SAVE_KINDS)
def test_bad_save_file(tmp_path: Any, kind: str) -> None:
    """Every unusable file is a SaveFileError naming the file (never a torch / pickle / KeyError)."""
    path = _save_file(tmp_path, kind)
    with pytest.raises(SaveFileError, match=path.name):
        GPPDESolution.load(path)


def test_save_load_round_trip_with_map_location(tmp_path: Any) -> None:
    sol = _sol2()
    path = tmp_path / "sol.pt"
    sol.save(path)
    back = GPPDESolution.load(path, problem=None, map_location="cpu")
    x = _pts(7, 2)
    assert torch.equal(back(x), sol(x)) and torch.equal(back.std(x), sol.std(x))
    assert back.kernel == sol.kernel and back.jitter == sol.jitter and back.diagnostics == {
        k: v for k, v in sol.diagnostics.items() if isinstance(v, (int, float, str))}


def test_load_to_an_absent_device_is_one_clear_error(tmp_path: Any) -> None:
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    path = tmp_path / "sol.pt"
    _sol1().save(path)
    with pytest.raises(sciml.DeviceUnavailableError, match="map_location='cuda'"):
        GPPDESolution.load(path, map_location="cuda")


def test_float32_axes_are_uniform_to_float32_rounding() -> None:
    sol = _sol1()
    axes32 = [sol.axes[0].to(torch.float32)]
    back = GPPDESolution(axes32, sol.params, sol.kernel, sol.jitter, sol.values)
    # the float32 axis differs from the float64 one by its rounding (<= 1 ulp of float32 at 1.0)
    assert (back.axes[0] - sol.axes[0]).abs().max() <= torch.finfo(torch.float32).eps
