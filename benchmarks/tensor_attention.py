"""Tensor attention: naive torch vs the blocked exact method vs the polynomial method, one run.

Run as ``sciml bench tensor_attention [--sizes 64,...,4096] [--dims 8,16,32,64] [--degrees 4,6,8,10]
[--device cpu|cuda] [--output FILE.md]``. Inputs: ``q, k1, k2, v1, v2`` of shape ``(n, d)`` (``m1 = m2 = n``,
``e = d``), entries uniform on ``[-1, 1]`` (so ``|<q_i, k1_j * k2_k>| / d <= 1``), float64, seed 0.
Per ``(n, d)``: ``naive`` (:func:`sciml.kernels.naive_tensor_attention`, the ``n^3`` logits
materialised) where its ``4 n^3`` float64 entries fit in ``--naive-max-gb`` (with it ``floor``: the
exact method's matrix products and exps alone, the least time any method doing these sums needs), ``exact``
(:func:`sciml.kernels.tensor_attention`) and ``poly`` at each degree whose ``C(d + g, g)`` monomials
are at most ``--max-monomials``: the median time of up to ``--repeats`` calls, the peak memory
increase (:mod:`sciml_benchmarks._measure`), and the largest error against the exact method (the exact
method against naive where naive runs) relative to ``max |out|`` and to ``max |v1_j * v2_k|`` (the
scale of the polynomial method's guarantee); the summary's accuracy test uses the first, stricter one. Above ``--exact-queries`` queries the exact method runs on the first ``--exact-queries``
queries only and its time is scaled by ``n / exact-queries`` (its cost is the same for every query);
the poly errors are then measured on those queries. The table ends with the speed-ups.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

import torch
from sciml_benchmarks._measure import timed
from sciml_benchmarks._report import finish

from sciml.kernels import naive_tensor_attention, tensor_attention
from sciml.kernels.attention import _BLOCK, _blocks, entry_bound, num_monomials, poly_error_bound

__all__ = ["main"]


def _inputs(n: int, d: int, device: torch.device) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [(2 * torch.rand(n, d, generator=g, dtype=torch.float64) - 1).to(device) for _ in range(5)]


def _floor(q: torch.Tensor, k1: torch.Tensor, k2: torch.Tensor, v2: torch.Tensor) -> Callable[[], torch.Tensor]:
    """The exact method's arithmetic alone: its logits products, ``exp`` and value products, block by
    block at its own block shapes, without the softmax bookkeeping. No method doing these sums runs
    faster; where naive is not well above this floor, no speed-up over naive is left to take."""
    n, d = q.shape
    _, bq, bj = _blocks(1, n, n, n, _BLOCK)
    a = (q[:bq, None] * k1[None, :bj]).reshape(bq * bj, d)
    w2 = torch.cat([v2, torch.ones_like(v2[:, :1])], 1)
    k2t = k2.T

    def run() -> torch.Tensor:
        for _ in range(-(-n // bq) * -(-n // bj)):
            out = (a @ k2t).exp_() @ w2
        return out
    return run


def _errors(a: torch.Tensor, b: torch.Tensor, v1: torch.Tensor, v2: torch.Tensor) -> tuple[float, float]:
    """``max |a - b|`` relative to ``max |b|`` and to ``max |v1_j * v2_k|`` (the scale of the poly bound)."""
    err = float((a - b).abs().max())
    return err / float(b.abs().max()), err / float((v1.abs().amax(0) * v2.abs().amax(0)).max())


def _cell(n: int, d: int, ns: argparse.Namespace, device: torch.device) -> tuple[list[str], dict[str, float]]:
    xs = _inputs(n, d, device)
    rows, times = [], {}
    sub = n if n <= ns.exact_queries else ns.exact_queries
    q_sub = xs[0][:sub]
    exact, t_exact, reps, mem = timed(lambda: tensor_attention(q_sub, *xs[1:]), device, ns.repeats, ns.budget)
    t_exact *= n / sub
    times["exact"] = t_exact
    naive_err = "— | —"
    if 4 * n**3 * 8 <= ns.naive_max_gb * 2**30:
        naive, t_naive, nrep, nmem = timed(lambda: naive_tensor_attention(*xs), device, ns.repeats, ns.budget)
        times["naive"] = t_naive
        naive_err = " | ".join(f"{v:.1e}" for v in _errors(exact, naive[:sub], *xs[3:]))
        rows.append(f"| {n} | {d} | naive | {t_naive:.4g} | {nrep} | {_mb(nmem)} | — | — | |")
        _, times["floor"], frep, _ = timed(_floor(xs[0], xs[1], xs[2], xs[4]), device, ns.repeats, ns.budget)
        rows.append(f"| {n} | {d} | floor: the exact method's products and exps alone | {times['floor']:.4g} | "
                    f"{frep} | — | — | — | |")
    note = f"timed on {sub} queries, scaled" if sub < n else ""
    rows.append(f"| {n} | {d} | exact | {t_exact:.4g} | {reps} | {_mb(mem)} | {naive_err} | {note} |")
    bound = entry_bound(*xs[:3])
    for g in ns.degrees:
        if num_monomials(d, g) > ns.max_monomials:
            continue
        out, t_poly, prep, pmem = timed(lambda g=g: tensor_attention(*xs, method="poly", degree=g), device,
                                        ns.repeats, ns.budget)
        err, err_v = _errors(out[:sub], exact, *xs[3:])
        times[f"poly {g}"] = t_poly
        times[f"err {g}"] = err
        times[f"bound {g}"] = poly_error_bound(bound, g)
        rows.append(f"| {n} | {d} | poly, degree {g} | {t_poly:.4g} | {prep} | {_mb(pmem)} | {err:.1e} | {err_v:.1e} | "
                    f"bound {poly_error_bound(bound, g):.1e}, {num_monomials(d, g)} monomials |")
    return rows, times


def _mb(v: float | None) -> str:
    return "—" if v is None else f"{v:.0f}"


def _summary(results: dict[tuple[int, int], dict[str, float]], tol: float, degrees: list[int]) -> list[str]:
    lines = ["", f"| n | d | exact / naive speed-up | naive / floor | fastest poly measured <= {tol:g} | speed-up over exact | "
             f"fastest poly certified <= {tol:g} | speed-up over exact |", "|---|---|---|---|---|---|---|---|"]
    for (n, d), t in results.items():
        naive = f"{t['naive'] / t['exact']:.2f}x | {t['naive'] / t['floor']:.2f}x" if "naive" in t else "— | —"
        cells = []
        for key in ("err", "bound"):
            ok = [(t[f"poly {g}"], g) for g in degrees if f"{key} {g}" in t and t[f"{key} {g}"] <= tol]
            cells += [f"degree {min(ok)[1]}", f"{t['exact'] / min(ok)[0]:.1f}x"] if ok else ["—", "—"]
        lines.append(f"| {n} | {d} | {naive} | {' | '.join(cells)} |")
    return lines


def _ints(text: str) -> list[int]:
    return [int(t) for t in text.split(",") if t.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (``sciml bench tensor_attention``); returns the exit code."""
    parser = argparse.ArgumentParser(prog="sciml bench tensor_attention", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="64,128,256,512,1024,2048,4096")
    parser.add_argument("--dims", default="8,16,32,64")
    parser.add_argument("--degrees", default="4,6,8,10,12")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--budget", type=float, default=20.0, help="seconds of repeats per cell before stopping early")
    parser.add_argument("--naive-max-gb", type=float, default=12.0)
    parser.add_argument("--max-monomials", type=int, default=200_000)
    parser.add_argument("--exact-queries", type=int, default=256)
    parser.add_argument("--tol", type=float, default=1e-6)
    parser.add_argument("--output", default=None)
    ns = parser.parse_args(argv)
    try:
        sizes, dims, ns.degrees = _ints(ns.sizes), _ints(ns.dims), _ints(ns.degrees)
    except ValueError:
        print("sciml bench tensor_attention: --sizes, --dims and --degrees take comma-separated ints", file=sys.stderr)
        return 2
    if min([*sizes, *dims, ns.repeats, ns.exact_queries], default=0) < 1 or any(g < 0 for g in ns.degrees):
        print("sciml bench tensor_attention: sizes, dims, repeats and exact-queries must be positive", file=sys.stderr)
        return 2
    device = torch.device(ns.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("sciml bench tensor_attention: --device cuda but no CUDA device is visible", file=sys.stderr)
        return 2
    small = _inputs(8, 2, device)  # first calls load kernels and allocator pools: not timed
    naive_tensor_attention(*small), tensor_attention(*small), tensor_attention(*small, method="poly", degree=2)
    lines = ["| n | d | method | seconds | repeats | peak MB | error / max abs out | error / max abs v1 v2 | |",
             "|---|---|---|---|---|---|---|---|---|"]
    print("\n".join(lines), flush=True)
    results = {}
    for n in sizes:
        for d in dims:
            rows, results[(n, d)] = _cell(n, d, ns, device)
            lines += rows
            print("\n".join(rows), flush=True)
    lines += _summary(results, ns.tol, ns.degrees)
    return finish("\n".join(lines), ns.output)


if __name__ == "__main__":
    raise SystemExit(main())
