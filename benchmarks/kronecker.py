"""Kronecker algebra: sciml Kronecker vs linear_operator KroneckerProductLinearOperator vs dense torch.

Run as ``sciml bench kronecker [--quick] [--output FILE.md]``. One run compares, on 2-D grids
(48^2 .. 1000^2) and 3-D grids (16^3 .. 128^3) of exponential-kernel (Matern-1/2) factors, for
mat-vec, solve with ``K`` and with ``K + s^2 I``, and log-determinants:

* ``sciml``: :class:`sciml.kernels.Kronecker` (eigen path; Cholesky path for the unshifted solve);
* ``linear_operator`` with default settings (``max_cholesky_size = 800``);
* ``linear_operator`` with ``settings.max_cholesky_size(10**12)`` ("exact settings");
* dense torch (Cholesky of the formed ``N x N`` matrix, not timed) where ``N <= --max-dense``.

Every timed call starts cold (a fresh operator, so factorisations are included), except the
``sciml (eigh, cached)`` rows, which reuse the cached factor eigendecompositions (the situation of
repeated solves with fixed hyperparameters). Reported: the
median wall time of the repeats, the ratio to sciml's time for the same task, the peak memory
increase during the call, and the relative residual ``||(K + s^2 I) x - b|| / ||b||`` of every
solve (residuals computed with sciml's mat-vec in float64). Memory on CPU is the increase of the
process' peak resident set size over the call (Linux ``VmHWM``, reset before each call through
``/proc/self/clear_refs``); on CUDA it is ``torch.cuda.max_memory_allocated`` over the call.
On CUDA the table ends with the fused CuPy eigenvalue-grid division against the torch composition.
"""

from __future__ import annotations

import argparse
import gc
import math
import re
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch
from sciml_benchmarks._measure import timed as _timed
from sciml_benchmarks._report import save_table
from torch import Tensor

from sciml.progress import add_progress_argument, progress_bar

__all__ = ["main", "run", "Row", "exp_kernel_factor"]


@dataclass
class Row:
    """One measured (grid, task, implementation) entry of the table."""

    grid: str
    task: str
    impl: str
    seconds: float | None
    repeats: int
    peak_mb: float | None
    error: float | None
    error_kind: str
    note: str = ""
    ratio: float | None = None


def exp_kernel_factor(n: int, lengthscale: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    """``exp(-|x_i - x_j| / l)`` on ``n`` equispaced points of [0, 1] (symmetric positive definite)."""
    x = torch.linspace(0.0, 1.0, n, dtype=dtype, device=device)
    return torch.exp(-(x[:, None] - x[None, :]).abs() / lengthscale)


# ---------------------------------------------------------------------- one grid
def _bench_grid(sizes: Sequence[int], args: argparse.Namespace, device: torch.device) -> list[Row]:
    from linear_operator import settings
    from linear_operator.operators import DenseLinearOperator, KroneckerProductLinearOperator

    from sciml.kernels import Kronecker

    gc.collect()  # once per grid: a full collection costs ~0.5 s with torch and linear_operator loaded
    dtype = torch.float64
    d = len(sizes)
    grid = "x".join(map(str, sizes)) if len(set(sizes)) > 1 else f"{sizes[0]}^{d}"
    n_tot = math.prod(sizes)
    s2 = args.shift
    fs = [exp_kernel_factor(n, args.lengthscale, dtype, device) for n in sizes]
    gen = torch.Generator(device=device).manual_seed(0)
    b = torch.randn(n_tot, dtype=dtype, device=device, generator=gen)
    ref_op = Kronecker(fs)
    dense_fits = n_tot <= args.max_dense
    dense = ref_op.to_dense().clone() if dense_fits else None
    dense_note = f"N x N = {n_tot**2 * 8 / 2**30:.1f} GiB, not formed"
    rows: list[Row] = []

    def residual(x: Tensor, shift: float) -> float:
        with torch.no_grad():
            r = ref_op.matmul(x.reshape(-1)) + shift * x.reshape(-1) - b
        return float(r.norm() / b.norm())

    def lo_op(shift: float):  # noqa: ANN202
        kp = KroneckerProductLinearOperator(*[DenseLinearOperator(f) for f in fs])
        return kp if shift == 0 else kp.add_diagonal(torch.tensor(shift, dtype=dtype, device=device))

    exact: Callable[[], AbstractContextManager] = lambda: settings.max_cholesky_size(10**12)  # noqa: E731
    default: Callable[[], AbstractContextManager] = nullcontext

    def add(task: str, impl: str, fn: Callable[[], Tensor], check: Callable[[Tensor], float] | None,
            kind: str, ctx: Callable[[], AbstractContextManager] = nullcontext, note: str = "") -> None:
        def call() -> Tensor:
            with ctx(), warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")
                return fn()

        try:
            out, sec, reps, peak = _timed(call, device, args.repeats, args.budget)
        except Exception as exc:  # report, do not abort the whole table
            rows.append(Row(grid, task, impl, None, 0, None, None, kind, f"failed: {type(exc).__name__}: {exc}"[:90]))
            return
        err = check(out) if check is not None else None
        rows.append(Row(grid, task, impl, sec, reps, peak, err, kind, note))

    def skip(task: str, impl: str, note: str) -> None:
        rows.append(Row(grid, task, impl, None, 0, None, None, "", note))

    # ---- mat-vec
    ref_mv = ref_op.matmul(b)

    def mv_err(out: Tensor) -> float:
        return float((out.reshape(-1) - ref_mv).norm() / ref_mv.norm())

    add("matvec", "sciml", lambda: Kronecker(fs).matmul(b), None, "")
    add("matvec", "linear_operator", lambda: lo_op(0.0).matmul(b), mv_err, "rel. diff.")
    if dense is not None:
        add("matvec", "dense torch", lambda: dense @ b, mv_err, "rel. diff.")
    else:
        skip("matvec", "dense torch", dense_note)

    # ---- solves
    for shift in (0.0, s2):
        task = "solve K" if shift == 0 else f"solve K+{shift:g}I"

        def res(out: Tensor, shift: float = shift) -> float:
            return residual(out, shift)

        add(task, "sciml (eigh)", lambda shift=shift: Kronecker(fs).solve(b, shift), res, "residual")
        ref_op.solve(b, shift)  # fills the eigendecomposition cache of ref_op
        add(task, "sciml (eigh, cached)", lambda shift=shift: ref_op.solve(b, shift), res, "residual",
            note="factor eigendecompositions reused")
        if shift == 0:
            add(task, "sciml (cholesky)", lambda: Kronecker(fs).solve(b, method="cholesky"), res, "residual")
        add(task, "linear_operator default", lambda shift=shift: lo_op(shift).solve(b), res, "residual", default)
        if shift != 0 and not dense_fits:
            skip(task, "linear_operator exact", f"forms the dense N x N Cholesky ({dense_note.split(',')[0]})")
        else:
            add(task, "linear_operator exact", lambda shift=shift: lo_op(shift).solve(b), res, "residual", exact)
        if dense is not None:
            def dense_solve(shift: float = shift) -> Tensor:
                a = dense + shift * torch.eye(n_tot, dtype=dtype, device=device) if shift else dense
                return torch.cholesky_solve(b[:, None], torch.linalg.cholesky(a))[:, 0]

            add(task, "dense torch", dense_solve, res, "residual")
        else:
            skip(task, "dense torch", dense_note)

    # ---- log-determinants
    for shift in (0.0, s2):
        task = "logdet K" if shift == 0 else f"logdet K+{shift:g}I"
        ref_ld = float(ref_op.logdet(shift))

        def ld_err(out: Tensor, ref_ld: float = ref_ld) -> float:
            return abs(float(out) - ref_ld) / abs(ref_ld)

        add(task, "sciml", lambda shift=shift: Kronecker(fs).logdet(shift), None, "")
        add(task, "linear_operator default", lambda shift=shift: lo_op(shift).logdet(), ld_err, "rel. diff.", default)
        add(task, "linear_operator exact", lambda shift=shift: lo_op(shift).logdet(), ld_err, "rel. diff.", exact)
        if dense is not None:
            def dense_logdet(shift: float = shift) -> Tensor:
                a = dense + shift * torch.eye(n_tot, dtype=dtype, device=device) if shift else dense
                return 2 * torch.linalg.cholesky(a).diagonal().log().sum()

            add(task, "dense torch", dense_logdet, ld_err, "rel. diff.")
        else:
            skip(task, "dense torch", dense_note)

    # ratios to sciml (eigh) per task
    base: dict[str, float] = {}
    for r in rows:
        if r.impl in ("sciml", "sciml (eigh)") and r.seconds:
            base[r.task] = r.seconds
    for r in rows:
        if r.seconds is not None and r.task in base:
            r.ratio = r.seconds / base[r.task]
    return rows


def _bench_grid_division(sizes: Sequence[int], args: argparse.Namespace, device: torch.device) -> list[Row]:
    """CUDA only: fused CuPy division by the eigenvalue grid vs the torch composition."""
    from sciml.kernels import outer_product
    from sciml.kernels._kron_cupy import cupy_ready, divide_by_grid_cupy

    d = len(sizes)
    grid = f"{sizes[0]}^{d}"
    gen = torch.Generator(device=device).manual_seed(1)
    vals = [torch.rand(n, dtype=torch.float64, device=device, generator=gen) + 0.1 for n in sizes]
    y = torch.randn(math.prod(sizes), 1, dtype=torch.float64, device=device, generator=gen)
    rows = []
    ref, sec, reps, peak = _timed(lambda: y / (outer_product(vals) + args.shift).unsqueeze(-1), device,
                                  args.repeats, args.budget)
    rows.append(Row(grid, "grid division", "torch (grid materialised)", sec, reps, peak, None, ""))
    if cupy_ready():
        out, sec, reps, peak = _timed(lambda: divide_by_grid_cupy(y, vals, args.shift), device,  # type: ignore[arg-type,return-value]
                                      args.repeats, args.budget)
        err = float((out - ref).norm() / ref.norm())
        rows.append(Row(grid, "grid division", "CuPy fused kernel", sec, reps, peak, err, "rel. diff.",
                        "ratio to the torch composition"))
    else:
        rows.append(Row(grid, "grid division", "CuPy fused kernel", None, 0, None, None, "", "CuPy unavailable"))
    rows[-1].ratio = rows[-1].seconds / rows[0].seconds if rows[-1].seconds and rows[0].seconds else None
    rows[0].ratio = 1.0
    return rows


def _fmt(x: float | None, spec: str) -> str:
    return "" if x is None else format(x, spec)


def format_table(rows: Sequence[Row]) -> str:
    """Markdown table of the measured rows."""
    lines = [
        "| grid | N | task | implementation | time (s, median) | time / sciml | peak mem. (MB) | "
        "error | repeats | note |",
        "|---|---:|---|---|---:|---:|---:|---|---:|---|",
    ]
    for r in rows:
        sizes = [int(s) for s in re.findall(r"\d+", r.grid)]
        n_tot = sizes[0] ** sizes[1] if "^" in r.grid else math.prod(sizes)
        err = f"{r.error_kind} {r.error:.1e}" if r.error is not None else ""
        lines.append(
            f"| {r.grid} | {n_tot:,} | {r.task} | {r.impl} | {_fmt(r.seconds, '.4f')} | {_fmt(r.ratio, '.2f')} "
            f"| {_fmt(r.peak_mb, '.0f')} | {err} | {r.repeats or ''} | {r.note} |"
        )
    return "\n".join(lines)


def run(grids: Sequence[Sequence[int]], args: argparse.Namespace, progress: bool | None = None) -> list[Row]:
    """Benchmark every grid; returns the rows (see :class:`Row`)."""
    device = torch.device(args.device)
    rows: list[Row] = []
    for sizes in progress_bar(list(grids), desc="kronecker grids", progress=progress):
        rows += _bench_grid(sizes, args, device)
    if device.type == "cuda":
        for sizes in ([1000, 1000], [128, 128, 128]):
            rows += _bench_grid_division(sizes, args, device)
    return rows


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sciml bench kronecker", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small grids only (about a minute)")
    p.add_argument("--repeats", type=int, default=5, help="at most this many cold calls per entry (median)")
    p.add_argument("--budget", type=float, default=1.0,
                   help="stop repeating an entry once its calls took this many seconds")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--shift", type=float, default=1e-2, help="s^2 of the shifted solve / logdet")
    p.add_argument("--lengthscale", type=float, default=0.1, help="exponential-kernel length scale")
    p.add_argument("--max-dense", type=int, default=4096, help="largest N for which dense torch runs")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--output", help="also write the markdown table to this file")
    add_progress_argument(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the markdown table; returns an exit code."""
    args = _parser().parse_args(argv)
    if args.repeats < 1:
        print("sciml bench kronecker: --repeats must be >= 1", file=sys.stderr)
        return 2
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("sciml bench kronecker: --device cuda requested but CUDA is not available", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    if args.quick:
        grids = [[40, 40], [200, 200], [12, 12, 12], [32, 32, 32]]
    else:
        grids = [[48, 48], [200, 200], [500, 500], [1000, 1000], [16, 16, 16], [32, 32, 32],
                 [64, 64, 64], [128, 128, 128]]
    t0 = time.perf_counter()
    rows = run(grids, args, progress=args.progress)
    header = (
        f"device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} thread(s), float64, "
        f"exponential-kernel factors (l = {args.lengthscale}), s^2 = {args.shift:g}, "
        f"repeats <= {args.repeats}; total {time.perf_counter() - t0:.0f} s"
    )
    table = format_table(rows)
    print(header)
    print()
    print(table)
    save_table(header + "\n\n" + table, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
