"""gp-pde and the project's conventions: no hidden state, no global side effects, dtype / device, diagnostics, save format."""

from __future__ import annotations

import copy
import inspect
import math
from typing import Any

import pytest
import torch
from sciml_plugins.gp_pde import GPPDESolution, GPPDESolver, manufactured_problem
from sciml_plugins.gp_pde.optimise import prune_components

from sciml.io import load_state, save_state

F64 = torch.float64
LEGACY_KEYS = ("wall_time", "train_time_s", "n_steps", "time_s", "n_iter", "n_iters", "evals", "loss_evals")


def _u1(x: torch.Tensor) -> torch.Tensor:
    return torch.sin(3 * x[:, 0])


def _u2(x: torch.Tensor) -> torch.Tensor:
    return torch.sin(6 * x[:, 0]) * torch.cos(5 * x[:, 1])


def _prob1() -> Any:
    return manufactured_problem(_u1, "laplacian", domain=[(0.0, 1.0)], grid=16)


def _globals() -> dict[str, Any]:
    return {"threads": torch.get_num_threads(), "dtype": torch.get_default_dtype(), "grad": torch.is_grad_enabled(),
            "flush": float(torch.tensor([1e-40], dtype=torch.float32) * 2) == 0.0}


def _state(obj: Any) -> dict[str, Any]:
    return copy.deepcopy(vars(obj))


SETUPS = {
    "dense-1d-linear": (lambda: _prob1(), dict(freq_scale=2, max_evals=12)),
    "dense-1d-allen-cahn": (lambda: manufactured_problem(_u1, "allen-cahn", domain=[(0.0, 1.0)], grid=16),
                            dict(freq_scale=2, max_evals=6)),
    "fd-2d-allen-cahn": (lambda: manufactured_problem(_u2, "allen-cahn", domain=[(0.0, 1.0)] * 2, grid=30),
                         dict(freq_scale=3, max_evals=4, dense_limit=10)),
}


@pytest.mark.parametrize("setup", list(SETUPS))
def test_solve_leaves_instance_and_torch_globals_unchanged_and_is_deterministic(setup: str) -> None:
    make, kw = SETUPS[setup]
    solver = GPPDESolver(progress=False, **kw)
    before, glob = _state(solver), _globals()
    a = solver.solve(make(), generator=torch.Generator().manual_seed(0))
    assert _state(solver) == before and _globals() == glob
    b = solver.solve(make(), generator=torch.Generator().manual_seed(0))
    # equal inputs give bitwise equal solutions (the fast-diagonalisation Newton-GMRES path included)
    assert torch.equal(a.values, b.values) and a.loss_history == b.loss_history


def test_solve_at_another_thread_count_keeps_it() -> None:
    saved = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            GPPDESolver(freq_scale=2, max_evals=3, progress=False).solve(_prob1())
            assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(saved)


def test_generator_keyword_only_and_settings_keyword_only() -> None:
    params = inspect.signature(GPPDESolver.solve).parameters
    assert params["generator"].kind is inspect.Parameter.KEYWORD_ONLY
    init = inspect.signature(GPPDESolver.__init__).parameters
    assert all(init[k].kind is inspect.Parameter.KEYWORD_ONLY for k in ("device", "dtype", "progress"))
    assert init["progress"].default is None and init["dtype"].default is torch.float64


def test_diagnostics_keys() -> None:
    sol = GPPDESolver(freq_scale=2, max_evals=12, progress=False).solve(_prob1())
    d = sol.diagnostics
    assert isinstance(d["wall_time_s"], float) and d["wall_time_s"] > 0
    assert isinstance(d["num_steps"], int) and d["num_steps"] >= 1
    assert 1 <= d["n_grad_evals"] <= d["n_evals"] <= 12
    assert len(sol.loss_history) == d["n_grad_evals"] + 1
    assert not set(LEGACY_KEYS) & set(d)


def test_evaluation_follows_dtype_and_device_of_the_points() -> None:
    sol = GPPDESolver(freq_scale=2, max_evals=0, progress=False).solve(_prob1())
    x64 = torch.rand(9, 1, generator=torch.Generator().manual_seed(0), dtype=F64)
    x32 = x64.float()
    for method in (sol, sol.std, lambda x: sol.derivative(x, [1]), sol.residual, sol.boundary_error):
        y64, y32 = method(x64), method(x32)
        assert y64.dtype == F64 and y32.dtype == torch.float32 and y32.device == x32.device
        # float32 points: computed in float64 at the rounded points, returned in float32
        assert torch.equal(method(x32), y32)
    # the float32 result is the float64 result at the rounded points, rounded once
    ref = sol(x32.double())
    assert torch.equal(sol(x32), ref.float())
    assert ((sol(x32).double() - ref).abs() <= 2.0**-24 * ref.abs()).all()
    axes = [torch.linspace(0, 1, 5)]
    assert sol.on_grid(axes).dtype == torch.float32


def test_device_argument_and_float32_refused() -> None:
    assert GPPDESolver(device="cpu").device == torch.device("cpu")
    with pytest.raises(ValueError, match="dtype must be torch.float64"):
        GPPDESolver(dtype=torch.float32)
    sol = GPPDESolver(freq_scale=2, max_evals=0, device="cpu", progress=False).solve(_prob1())
    assert sol.values.device.type == "cpu" and sol.values.dtype == F64


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_solve_matches_cpu() -> None:
    prob = manufactured_problem(_u2, "laplacian", domain=[(0.0, 1.0)] * 2, grid=30)
    kw = dict(freq_scale=3, max_evals=0, dense_limit=10, progress=False)
    cpu = GPPDESolver(**kw).solve(prob)
    gpu = GPPDESolver(device="cuda", **kw).solve(prob)
    assert gpu.values.is_cuda
    x = torch.rand(20, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    y = gpu(x)
    assert y.device == x.device and (y - cpu(x)).abs().max() < 1e-8
    assert gpu(x.cuda()).is_cuda


def test_version_1_files_are_read_with_renamed_keys(tmp_path: Any) -> None:
    sol = GPPDESolver(freq_scale=2, max_evals=3, progress=False).solve(_prob1())
    st = sol.state_dict()
    legacy = {"wall_time_s": "wall_time", "n_grad_evals": "evals", "n_evals": "loss_evals"}
    st["diagnostics"] = {legacy.get(k, k): v for k, v in st["diagnostics"].items() if k != "num_steps"}
    path = tmp_path / "v1.pt"
    save_state(path, "gp_pde.GPPDESolution", 1, st)
    back = GPPDESolution.load(path)
    assert back.diagnostics["wall_time_s"] == sol.diagnostics["wall_time_s"]
    assert back.diagnostics["n_evals"] == sol.diagnostics["n_evals"] and "wall_time" not in back.diagnostics
    x = torch.rand(6, 1, generator=torch.Generator().manual_seed(1), dtype=F64)
    assert torch.equal(back(x), sol(x))
    sol.save(tmp_path / "v2.pt")
    assert load_state(tmp_path / "v2.pt", "gp_pde.GPPDESolution", (2,))[0] == 2


def test_prune_components_keeps_the_best_candidate() -> None:
    """Backward elimination on a loss whose minimum over the candidates is known."""
    params = [{"log_w": torch.log(torch.tensor([0.5, 0.1, 0.3, 0.05], dtype=F64)),
               "mu": torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=F64), "log_ls": torch.zeros(4, dtype=F64)}]
    calls = []

    def value(cand: list[dict[str, torch.Tensor]]) -> float:
        mus = sorted(float(m) for m in cand[0]["mu"])
        calls.append(mus)
        return math.fsum((m - 2.0) ** 2 for m in mus) + 0.5 * len(mus)

    best = prune_components(params, value, lambda: True)
    # candidates keep the m heaviest (weights 0.5, 0.3, 0.1): {1}, {1, 3}, {1, 2, 3}
    assert calls == [[1.0, 2.0, 3.0, 4.0], [1.0], [1.0, 3.0], [1.0, 2.0, 3.0]]
    assert best is not None and best[0]["mu"].tolist() == [1.0]  # losses 1.5, 3.0, 3.5 against 8.0
    assert params[0]["mu"].numel() == 4  # the input is left alone
    # nothing better than the current parameters: None
    assert prune_components(params, lambda c: float(4 - c[0]["mu"].numel()), lambda: True) is None
