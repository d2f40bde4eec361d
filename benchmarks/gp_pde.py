"""GP-HM (gp-pde) on the paper's benchmark rows: final-iterate error and time vs the reference and a PINN.

For every row of the reference note's table this runs :class:`GPPDESolver` once (the final
iterate is reported; nothing is selected against the exact solution), measures the relative L2
error on a uniform test grid of 300 points per dimension and the wall time, and trains a small
PINN (tanh MLP, Adam on the PDE residual plus the boundary misfit) for the same wall time.

    sciml bench gp_pde                      # all rows (long: tens of minutes on 2 cores)
    sciml bench gp_pde --quick              # 1-D rows with small budgets
    sciml bench gp_pde --rows poisson1d-sin100x,poisson2d-sin100x-sin100y --output table.md
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence
from typing import Any

import torch
from sciml_benchmarks._report import save_table
from torch import Tensor

__all__ = ["main", "SETTINGS", "benchmark_problems", "run_row", "pinn_baseline"]

#: Solver settings per row: the paper's ``freq_scale`` (two exceptions, see docs/benchmarks/gp_pde.md), the
#: solver's default jitter (1e-8) on every row, a budget of kernel evaluations.
SETTINGS: dict[str, dict[str, Any]] = {
    "poisson1d-sin100x": {"freq_scale": 20, "max_evals": 150},
    "poisson1d-sin6x-cos100x": {"freq_scale": 20, "max_evals": 150},
    "poisson1d-xsin200x": {"freq_scale": 50, "max_evals": 150},
    "poisson1d-mixed": {"freq_scale": 30, "max_evals": 150},
    "poisson1d-sin500x": {"freq_scale": 100, "max_evals": 150},
    "allen-cahn1d-sin100x": {"freq_scale": 20, "max_evals": 150},
    "allen-cahn1d-sin6x-cos100x": {"freq_scale": 20, "max_evals": 150},
    "poisson2d-sin100x-sin100y": {"freq_scale": 20, "max_evals": 0},
    "poisson2d-sin6x-cos20x": {"freq_scale": 10, "max_evals": 0},
    "allen-cahn2d": {"freq_scale": 30, "max_evals": 0, "newton_steps": 8},
    "advection": {"freq_scale": [2, 40], "max_evals": 0},
}

def benchmark_problems() -> dict[str, tuple[Any, dict]]:
    """The GP-HM paper's benchmark problems with exact solutions and its published figures.

    Returns:
        ``{key: (problem, settings)}``; ``settings`` holds the paper's ``freq_scale`` and the
        reference GP-HM-GM relative L2 error / time where reported.
    """
    from sciml_plugins.gp_pde import advection, manufactured_problem

    two_pi = 2.0 * math.pi
    s, c = torch.sin, torch.cos

    def x0(x: Tensor) -> Tensor:
        return x[:, 0]

    def ac2(x: Tensor) -> Tensor:
        def h(t: Tensor) -> Tensor:
            return s(t) + 0.1 * s(20 * t) + c(100 * t)
        return h(x[:, 0]) * h(x[:, 1])

    rows: list[tuple[str, Any, str, list, int, float, dict]] = [
        ("poisson1d-sin100x", lambda x: s(100 * x0(x)), "laplacian", [(0, two_pi)], 400, 20,
         {"ref_err": 4.0e-7, "ref_time": 1329.0}),
        ("poisson1d-sin6x-cos100x", lambda x: s(6 * x0(x)) * c(100 * x0(x)), "laplacian", [(0, two_pi)], 400, 20,
         {"ref_err": 1.5e-6}),
        ("poisson1d-xsin200x", lambda x: x0(x) * s(200 * x0(x)), "laplacian", [(0, two_pi)], 900, 50,
         {"ref_err": 1.6e-6}),
        ("poisson1d-mixed", lambda x: s(x0(x)) + 0.1 * s(20 * x0(x)) + 0.05 * s(100 * x0(x)), "laplacian",
         [(0, 1)], 900, 30, {"ref_err": 3.5e-4}),
        ("poisson1d-sin500x", lambda x: s(500 * x0(x)) - 2 * (x0(x) - 0.5) ** 2, "laplacian", [(0, 1)], 400, 100,
         {"ref_err": 1.8e-3}),
        ("allen-cahn1d-sin100x", lambda x: s(100 * x0(x)), "allen-cahn", [(0, two_pi)], 400, 20,
         {"ref_err": 7.7e-7}),
        ("allen-cahn1d-sin6x-cos100x", lambda x: s(6 * x0(x)) * c(100 * x0(x)), "allen-cahn", [(0, two_pi)],
         400, 20, {"ref_err": 4.2e-6}),
        ("poisson2d-sin100x-sin100y", lambda x: s(100 * x[:, 0]) * s(100 * x[:, 1]), "laplacian",
         [(0, two_pi)] * 2, 400, 20, {"ref_err": 6.5e-5, "ref_time": 8209.0}),
        ("poisson2d-sin6x-cos20x", lambda x: s(6 * x[:, 0]) * c(20 * x[:, 0]) + s(6 * x[:, 1]) * c(20 * x[:, 1]),
         "laplacian", [(0, two_pi)] * 2, 200, 20, {"ref_err": 1.1e-3}),
        ("allen-cahn2d", ac2, "allen-cahn", [(0, 1)] * 2, 400, 30, {"ref_err": 2.6e-3, "ref_time": 18244.0}),
    ]
    out: dict[str, tuple[Any, dict]] = {}
    for key, u, op, dom, n, fs, ref in rows:
        prob = manufactured_problem(u, op, domain=dom, grid=n, name=key)
        out[key] = (prob, {"freq_scale": fs, **ref})
    adv = advection(200.0)
    out["advection"] = (
        manufactured_problem(lambda x: s(x[:, 0] - 200 * x[:, 1]), adv, domain=[(0, two_pi), (0, 1)], grid=200,
                             name="advection"),
        {"freq_scale": 40, "ref_err": 1.4e-3},
    )
    return out


#: Reduced budgets for ``--quick``.
QUICK_ROWS = ("poisson1d-sin100x", "poisson1d-sin6x-cos100x", "poisson1d-sin500x", "allen-cahn1d-sin100x",
              "poisson2d-sin6x-cos20x")


def _rel_l2_on_grid(predict_grid: Any, problem: Any, n_test: int = 300) -> float:
    from sciml_plugins.gp_pde import grid_points

    axes = [torch.linspace(lo, hi, n_test, dtype=torch.float64) for lo, hi in problem.domain]
    pts = grid_points(axes)
    ref = problem.exact(pts)
    pred = predict_grid(axes, pts)
    return float((pred - ref).norm() / ref.norm())


def run_row(key: str, quick: bool = False, progress: bool | None = None) -> dict[str, Any]:
    """Solve one benchmark row; returns error, time and the solver's diagnostics."""
    from sciml_plugins.gp_pde import GPPDESolver

    problem, ref = benchmark_problems()[key]
    kw = dict(SETTINGS[key])
    if quick:
        kw["max_evals"] = min(kw["max_evals"], 40)
    t0, c0 = time.perf_counter(), time.process_time()
    sol = GPPDESolver(progress=progress, **kw).solve(problem)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    err = _rel_l2_on_grid(lambda axes, pts: sol.on_grid(axes).reshape(-1), problem)
    spec = sol.spectrum()
    return {"key": key, "err": err, "time": wall, "cpu": cpu,
            "evals": sol.diagnostics["n_evals"],
            "path": sol.diagnostics.get("path"), "ref_err": ref.get("ref_err"), "ref_time": ref.get("ref_time"),
            "active": [int(s["active"].sum()) for s in spec], "settings": kw}


def pinn_baseline(key: str, seconds: float, seed: int = 0, width: int = 64, depth: int = 3,
                  n_colloc: int = 2048) -> float:
    """Train a tanh MLP PINN on row ``key`` for ``seconds`` of wall time; returns its relative L2 error."""
    from sciml_plugins.gp_pde import boundary_mask, grid_points

    problem, _ = benchmark_problems()[key]
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    d = problem.dim
    layers: list[torch.nn.Module] = []
    size = d
    for _ in range(depth):
        layers += [torch.nn.Linear(size, width), torch.nn.Tanh()]
        size = width
    layers.append(torch.nn.Linear(size, 1))
    net = torch.nn.Sequential(*layers).double()
    lo = torch.tensor([a for a, _ in problem.domain], dtype=torch.float64)
    hi = torch.tensor([b for _, b in problem.domain], dtype=torch.float64)

    def model(x: torch.Tensor) -> torch.Tensor:
        return net(2 * (x - lo) / (hi - lo) - 1)[:, 0]

    axes = problem.axes()
    pts = grid_points(axes)
    mask = boundary_mask(problem.grid).reshape(-1)
    xb = pts[mask]
    gb = problem.exact(xb)
    f_scale = float(problem.source(pts[~mask][:: max(1, int((~mask).sum()) // 2000)]).abs().max()) or 1.0
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        x = lo + (hi - lo) * torch.rand(n_colloc, d, generator=gen, dtype=torch.float64)
        f = problem.source(x)
        res = _pinn_residual(problem.operator, model, x)
        loss = ((res - f) / f_scale).square().mean() + 200 * (model(xb) - gb).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return _rel_l2_on_grid(lambda a, p: model(p), problem)


def _pinn_residual(op: Any, model: Any, x: torch.Tensor) -> torch.Tensor:
    x = x.requires_grad_(True)
    u = model(x)
    out = torch.zeros_like(u)
    g = torch.autograd.grad(u.sum(), x, create_graph=True)[0]
    for k, c in op.terms.items():
        order = [j for j, m in enumerate(k) for _ in range(m)]
        if not order:
            term = u
        elif len(order) == 1:
            term = g[:, order[0]]
        else:
            term = torch.autograd.grad(g[:, order[0]].sum(), x, create_graph=True)[0][:, order[1]]
        out = out + float(c) * term
    if op.nonlinearity is not None:
        out = out + op.nonlinearity(u)
    return out


def _fmt(v: Any, spec: str = ".1e") -> str:
    return "" if v is None else format(v, spec)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark rows and print (and optionally write) the markdown table."""
    parser = argparse.ArgumentParser(prog="sciml bench gp_pde", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default=None, help="comma-separated row keys (default: all)")
    parser.add_argument("--quick", action="store_true", help="a few 1-D rows and a small 2-D row, small budgets")
    parser.add_argument("--no-pinn", action="store_true", help="skip the PINN baseline")
    parser.add_argument("--pinn-min-seconds", type=float, default=5.0,
                        help="lower bound of the PINN's training time (s)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--output", default=None, help="write the markdown table to this file")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="the solver's progress bars on stderr (default: only when stderr is a terminal)")
    args = parser.parse_args(list(argv) if argv is not None else None)
    if args.threads:
        torch.set_num_threads(args.threads)
    keys = list(QUICK_ROWS) if args.quick else list(SETTINGS)
    if args.rows:
        keys = [k.strip() for k in args.rows.split(",") if k.strip()]
        unknown = [k for k in keys if k not in SETTINGS]
        if unknown:
            print(f"unknown rows {unknown}; available: {', '.join(SETTINGS)}")
            return 2
    lines = ["| problem | GP-HM here: rel. L2 (final iterate) | wall time here (s) | CPU time here (s) | "
             "loss evals | active components | reference GP-HM-GM rel. L2 | reference time (s) | "
             "PINN, same wall time: rel. L2 |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    print("\n".join(lines), flush=True)
    for key in keys:
        row = run_row(key, quick=args.quick, progress=args.progress)
        pinn = None
        if not args.no_pinn:
            pinn = pinn_baseline(key, max(row["time"], args.pinn_min_seconds))
        comps = "x".join(str(a) for a in row["active"])
        line = (f"| {key} | {_fmt(row['err'])} | {row['time']:.1f} | {row['cpu']:.1f} | {row['evals']} | {comps} | "
                f"{_fmt(row['ref_err'])} | {_fmt(row['ref_time'], '.0f')} | {_fmt(pinn)} |")
        lines.append(line)
        print(line, flush=True)
    save_table("\n".join(lines), args.output)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

