"""Fit von Mises-Fisher distributions to 32768-dimensional samples and plot fitted kappa against the truth.

Run as ``sciml run vmf_highdim [--out DIR] [--dim P] [--num-samples N] [--kappas K1,K2,...] [--seed S]``.
For each true kappa, ``N`` unit vectors are drawn from ``VonMisesFisher(mu, kappa)`` in dimension
``P`` (Wood's sampler) and :func:`sciml.distributions.fit_vmf` returns the maximum-likelihood mean
direction and kappa. The table lists the true kappa, the fit from exact statistics (R = A_p(kappa),
which must reproduce kappa to ~1e-15), the fit from the samples, the value the sample MLE is
expected to land near for finite N (A_p^{-1}(sqrt(A^2 + (1 - A^2) / N)), the high-dimensional bias
of R), the cosine between fitted and true mean, and what a SciPy-based Newton fit (ratio of
``scipy.special.ive``) returns. The figure ``vmf_highdim.png`` plots fitted against true kappa.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence

import torch

__all__ = ["main"]


def _scipy_fit(r: float, p: int) -> float:
    """Banerjee start + Newton with SciPy's ive ratio (what SciPy-based estimators do)."""
    import numpy as np
    import scipy.special as sp

    k = r * (p - r * r) / (1 - r * r)
    with np.errstate(all="ignore"):
        for _ in range(50):
            a = sp.ive(p / 2, k) / sp.ive(p / 2 - 1, k)
            step = (a - r) / (1 - a * a - (p - 1) / k * a)
            if not np.isfinite(step):
                return float("nan")
            k = k - step
            if abs(step) <= 1e-15 * abs(k):
                break
    return float(k)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the example; returns 0 on success."""
    parser = argparse.ArgumentParser(prog="sciml run vmf_highdim", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="outputs", help="folder for the figure (default outputs/)")
    parser.add_argument("--dim", type=int, default=32768, help="dimension p (default 32768)")
    parser.add_argument("--num-samples", type=int, default=400, help="samples per kappa")
    parser.add_argument("--kappas", default="300,3000,10000,30000,100000", help="comma-separated true kappas")
    parser.add_argument("--seed", type=int, default=0)
    ns = parser.parse_args(argv)
    try:
        kappas = [float(k) for k in ns.kappas.split(",") if k.strip()]
    except ValueError:
        parser.error("--kappas must be comma-separated numbers")
    if ns.dim < 2 or ns.num_samples < 2 or not kappas or any(k <= 0 for k in kappas):
        parser.error("--dim and --num-samples must be >= 2 and every kappa > 0")

    from sciml_solvers._figures import pyplot, save_figure

    plt = pyplot()

    from sciml.distributions import VonMisesFisher, fit_vmf, mean_resultant_length, vmf_kappa_mle

    p, n = ns.dim, ns.num_samples
    gen = torch.Generator().manual_seed(ns.seed)
    mu = torch.randn(p, generator=gen, dtype=torch.float64)
    mu /= mu.norm()
    rows = []
    t_start = time.perf_counter()
    for kappa in kappas:
        kt = torch.tensor(kappa, dtype=torch.float64)
        a = float(mean_resultant_length(kt, p))
        exact = float(vmf_kappa_mle(a, p))
        x = VonMisesFisher(mu, kt).sample((n,), generator=gen)
        loc, khat = fit_vmf(x)
        expected = float(vmf_kappa_mle(math.sqrt(a * a + (1 - a * a) / n), p))
        rows.append((kappa, exact, float(khat), expected, float(loc @ mu), _scipy_fit(a, p)))
        del x
    elapsed = time.perf_counter() - t_start

    print(f"von Mises-Fisher fits, p = {p}, {n} samples per kappa ({elapsed:.1f} s)")
    print()
    print("| true kappa | fit from exact R (rel. err) | fit from samples | expected for n samples "
          "| cos(mu_hat, mu) | SciPy-based fit from exact R |")
    print("| --- | --- | --- | --- | --- | --- |")
    for kappa, exact, khat, expected, cos, sci in rows:
        print(f"| {kappa:.6g} | {exact:.10g} ({abs(exact / kappa - 1):.1e}) | {khat:.6g} | {expected:.6g} "
              f"| {cos:.4f} | {sci:.6g} |")

    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    ks = [r[0] for r in rows]
    ax.loglog(ks, ks, "k-", lw=1, label="truth")
    ax.loglog(ks, [r[1] for r in rows], "o", mfc="none", ms=10, label="fit from exact statistic")
    ax.loglog(ks, [r[2] for r in rows], "x", ms=8, label=f"fit from {n} samples")
    ax.loglog(ks, [r[3] for r in rows], "+", ms=10, label="expected for finite n")
    ax.set_xlabel("true kappa")
    ax.set_ylabel("fitted kappa")
    ax.set_title(f"von Mises-Fisher fit, p = {p}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    print()
    save_figure(fig, ns.out, "vmf_highdim", dpi=120)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
