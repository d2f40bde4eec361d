"""log I_v(x) and log K_v(x): SciPy (log(ive) + x, log(kve) - x) against sciml on the same points.

Run as ``sciml bench bessel [--n 1000000] [--repeats 5] [--mpmath-points 200] [--threads 1]
[--device cuda]``; with ``--device cuda`` the GPU half (the CuPy kernels, through CUDA tensors) is
timed too, on the same points, and checked against the same mpmath subsample.
The points are seeded: v log-uniform in [0.1, 1e4], x log-uniform in [1e-3, 1e4] (the range of the
reference note). Each method is timed ``--repeats`` times, interleaved, and the median is reported
(wall clock, float64, ``torch.set_num_threads(--threads)``). Non-finite fraction is over all points;
the maximum relative error of the logarithm is measured against mpmath (50 digits; see
``sciml.kernels._bessel_reference``) on a seeded subsample, over the points where each method
returned a finite value. Prints a markdown table (and writes it to ``--output`` if given).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence

import numpy as np
from sciml_benchmarks._report import save_table

__all__ = ["main", "run"]


def _points(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    v = 10 ** rng.uniform(-1, 4, n)
    x = 10 ** rng.uniform(-3, 4, n)
    return v, x


def run(n: int = 10**6, repeats: int = 5, mpmath_points: int = 200, threads: int = 1, seed: int = 0,
        device: str = "cpu") -> str:
    """Run the comparison and return the markdown table (``device="cuda"`` adds the GPU rows)."""
    import mpmath as mp
    import scipy
    import scipy.special as sp
    import torch

    from sciml.kernels._bessel_reference import log_i, log_k
    from sciml.kernels.bessel import log_iv, log_kv

    torch.set_num_threads(threads)
    v, x = _points(n, seed)
    vt, xt = torch.from_numpy(v), torch.from_numpy(x)

    def scipy_i() -> np.ndarray:
        with np.errstate(all="ignore"):
            return np.log(sp.ive(v, x)) + x

    def scipy_k() -> np.ndarray:
        with np.errstate(all="ignore"):
            return np.log(sp.kve(v, x)) - x

    methods: dict[str, Callable[[], object]] = {
        "scipy I": scipy_i,
        "scipy K": scipy_k,
        "sciml I": lambda: log_iv(vt, xt),
        "sciml K": lambda: log_kv(vt, xt),
    }
    libs = ["scipy", "sciml"]
    if device != "cpu":
        vd, xd = vt.to(device), xt.to(device)
        methods[f"sciml-{device} I"] = lambda: _synced(log_iv(vd, xd))
        methods[f"sciml-{device} K"] = lambda: _synced(log_kv(vd, xd))
        libs.append(f"sciml-{device}")
        _synced(log_iv(vd[:10], xd[:10]))  # compile / load the kernels before timing
    times: dict[str, list[float]] = {k: [] for k in methods}
    results: dict[str, np.ndarray] = {}
    for _ in range(repeats):
        for name, fn in methods.items():
            t0 = time.perf_counter()
            out = fn()
            times[name].append(time.perf_counter() - t0)
            results[name] = out.cpu().numpy() if isinstance(out, torch.Tensor) else out
    med = {k: statistics.median(t) for k, t in times.items()}

    mp.mp.dps = 50
    rng = np.random.default_rng(seed + 1)
    sub = rng.choice(n, size=min(mpmath_points, n), replace=False)
    ref_i = np.array([float(log_i(float(v[i]), float(x[i]))) for i in sub])
    ref_k = np.array([float(log_k(float(v[i]), float(x[i]))) for i in sub])

    def max_rel(vals: np.ndarray, ref: np.ndarray) -> float:
        fin = np.isfinite(vals)
        return float(np.max(np.abs(vals[fin] - ref[fin]) / np.abs(ref[fin]))) if fin.any() else float("nan")

    rows = []
    for lib in libs:
        ri, rk = results[f"{lib} I"], results[f"{lib} K"]
        rows.append(
            f"| {lib} | {med[f'{lib} I']:.3f} | {med[f'{lib} K']:.3f} "
            f"| {100 * np.mean(~np.isfinite(ri)):.1f} % | {100 * np.mean(~np.isfinite(rk)):.1f} % "
            f"| {max_rel(ri[sub], ref_i):.1e} | {max_rel(rk[sub], ref_k):.1e} |"
        )
    speed_i = med["scipy I"] / med["sciml I"]
    speed_k = med["scipy K"] / med["sciml K"]
    lines = [
        f"{n} points, v log-uniform in [0.1, 1e4], x log-uniform in [1e-3, 1e4] (seed {seed}); float64, "
        f"{threads} thread(s), median of {repeats} interleaved runs; SciPy {scipy.__version__}, "
        f"torch {torch.__version__}; error vs mpmath (50 digits) on {len(sub)} points (finite values only).",
        "",
        "| method | log I time (s) | log K time (s) | non-finite I | non-finite K | max rel err I | max rel err K |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *rows,
        "",
        f"Time ratio SciPy / sciml: log I {speed_i:.2f}x, log K {speed_k:.2f}x (> 1 means sciml is faster).",
    ]
    if device != "cpu":
        gi, gk = med["sciml I"] / med[f"sciml-{device} I"], med["sciml K"] / med[f"sciml-{device} K"]
        lines.append(f"Time ratio sciml CPU / sciml {device}: log I {gi:.1f}x, log K {gk:.1f}x "
                     f"(GPU time includes the kernel only, not the copy back).")
    return "\n".join(lines)


def _synced(out: object) -> object:
    import torch

    torch.cuda.synchronize()
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sciml bench bessel", description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10**6, help="number of points (default 1e6)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats, median reported")
    parser.add_argument("--mpmath-points", type=int, default=200, help="subsample checked against mpmath")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=None, help="also write the table to this file")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda to add the GPU half")
    args = parser.parse_args(argv)
    if args.n < 1 or args.repeats < 1 or args.mpmath_points < 0 or args.threads < 1:
        parser.error("--n, --repeats and --threads must be >= 1 and --mpmath-points >= 0")
    if args.device != "cpu":
        import torch

        if not torch.cuda.is_available():
            parser.error(f"--device {args.device} asked for, but torch sees no CUDA device")
    table = run(args.n, args.repeats, args.mpmath_points, args.threads, args.seed, args.device)
    print(table)
    save_table(table, args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
