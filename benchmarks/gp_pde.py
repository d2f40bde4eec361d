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
import time
from collections.abc import Sequence
from typing import Any

import torch
from sciml_benchmarks._report import save_table

__all__ = ["main", "SETTINGS", "run_row", "pinn_baseline"]

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
    from sciml_plugins.gp_pde import GPPDESolver, benchmark_problems

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
            "evals": sol.diagnostics.get("loss_evals", sol.diagnostics.get("evals", 0)),
            "path": sol.diagnostics.get("path"), "ref_err": ref.get("ref_err"), "ref_time": ref.get("ref_time"),
            "active": [int(s["active"].sum()) for s in spec], "settings": kw}


def pinn_baseline(key: str, seconds: float, seed: int = 0, width: int = 64, depth: int = 3,
                  n_colloc: int = 2048) -> float:
    """Train a tanh MLP PINN on row ``key`` for ``seconds`` of wall time; returns its relative L2 error."""
    from sciml_plugins.gp_pde import benchmark_problems, boundary_mask, grid_points

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

