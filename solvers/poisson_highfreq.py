"""High-frequency Poisson equations in 1-D and 2-D solved with the GP-HM Gaussian-process solver.

    sciml run poisson_highfreq [--out outputs/] [--max-evals 40]

Solves ``u'' = f`` with ``u = sin(100 x)`` on ``[0, 2 pi]`` (400 grid points) and
``Delta u = f`` with ``u = sin(100 x) sin(100 y)`` on ``[0, 2 pi]^2`` (400 x 400 grid), prints the
relative L2 error of the final iterate on 300 test points per dimension with the wall time, and
writes ``poisson_highfreq.png``: solution, error and posterior standard deviation.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence

import torch

__all__ = ["main"]


def _u1(x: torch.Tensor) -> torch.Tensor:
    return torch.sin(100 * x[:, 0])


def _u2(x: torch.Tensor) -> torch.Tensor:
    return torch.sin(100 * x[:, 0]) * torch.sin(100 * x[:, 1])


def _mean_and_std(sol, pts: torch.Tensor, progress: bool | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior mean and std at ``pts`` in blocks, with a progress bar: the figure's slow phase (tens of seconds)."""
    from sciml.progress import progress_bar

    blocks = pts.split(1024)
    mean, std = [], []
    for blk in progress_bar(blocks, total=len(blocks), desc="figure: 2-D mean and std", progress=progress):
        mean.append(sol(blk))
        std.append(sol.std(blk))
    return torch.cat(mean), torch.cat(std)


def main(argv: Sequence[str] | None = None) -> int:
    """Solve both problems, print the error table and write the figure; returns 0."""
    from sciml_plugins.gp_pde import grid_points, manufactured_problem

    import sciml

    parser = argparse.ArgumentParser(prog="sciml run poisson_highfreq", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="outputs", help="folder for the figure (default: outputs/)")
    parser.add_argument("--max-evals", type=int, default=150, help="kernel-optimisation budget of the 1-D solve")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bars on stderr (default: only when stderr is a terminal)")
    args = parser.parse_args(list(argv) if argv is not None else None)

    GP = sciml.load("solver", "gp-pde")
    two_pi = 2 * math.pi
    p1 = manufactured_problem(_u1, "laplacian", domain=[(0.0, two_pi)], grid=400, name="1-D sin(100x)")
    p2 = manufactured_problem(_u2, "laplacian", domain=[(0.0, two_pi)] * 2, grid=400, name="2-D sin(100x)sin(100y)")

    rows = []
    t0 = time.perf_counter()
    s1 = GP(freq_scale=20, max_evals=args.max_evals, progress=args.progress).solve(p1)
    rows.append((p1.name, "400", s1.relative_l2(_u1), time.perf_counter() - t0, s1))
    t0 = time.perf_counter()
    s2 = GP(freq_scale=20, max_evals=0, progress=args.progress).solve(p2)
    rows.append((p2.name, "400 x 400", s2.relative_l2(_u2), time.perf_counter() - t0, s2))

    print(f"{'problem':<26} {'grid':>10} {'rel. L2 (300/dim)':>18} {'time (s)':>9}  learned frequency")
    for name, grid, err, sec, sol in rows:
        mu = float(sol.spectrum()[0]["mu"][0])
        learned = (f"{mu:.4f} (exact {100 / two_pi:.4f})" if sol.diagnostics.get("n_evals", 0)
                   else "initial kernel (no optimisation)")
        print(f"{name:<26} {grid:>10} {err:>18.2e} {sec:>9.1f}  {learned}")

    from sciml_solvers._figures import pyplot, save_figure

    plt = pyplot()

    fig, ax = plt.subplots(2, 3, figsize=(13, 7))
    # matplotlib gets numpy arrays (torch tensors go through a deprecated __array__ path)
    x = torch.linspace(0.0, 0.5, 600, dtype=torch.float64)[:, None]  # a window: 8 periods
    xs, exact, mean = x[:, 0].numpy(), _u1(x).numpy(), s1(x).detach().numpy()
    ax[0, 0].plot(xs, exact, "k-", lw=2.5, alpha=0.4, label="exact")
    ax[0, 0].plot(xs, mean, "C0--", lw=1, label="GP-HM mean")
    g = s1.axes[0][s1.axes[0] <= 0.5]
    ax[0, 0].scatter(g.numpy(), _u1(g[:, None]).numpy(), s=8, c="C3", label="grid")
    ax[0, 0].set_title("1-D: solution on [0, 0.5]")
    ax[0, 0].legend(fontsize=7)
    ax[0, 1].plot(xs, mean - exact)
    ax[0, 1].set_title("1-D: error u - u_exact")
    ax[0, 2].semilogy(xs, s1.std(x).clamp_min(1e-16).detach().numpy())
    ax[0, 2].set_title("1-D: posterior std (0 at grid points up to jitter)")
    axes = [torch.linspace(0.0, 0.5, 150, dtype=torch.float64)] * 2
    pts = grid_points(axes)
    mean2, std2 = _mean_and_std(s2, pts, args.progress)
    ext = (0, 0.5, 0, 0.5)
    for k, (vals, title) in enumerate([(s2.on_grid(axes), "2-D: solution on [0, 0.5]^2"),
                                       ((mean2 - _u2(pts)).reshape(150, 150), "2-D: error"),
                                       (std2.reshape(150, 150), "2-D: posterior std")]):
        im = ax[1, k].imshow(vals.detach().T.numpy(), origin="lower", extent=ext, cmap="RdBu_r" if k < 2 else "viridis")
        ax[1, k].set_title(title)
        fig.colorbar(im, ax=ax[1, k], fraction=0.046)
    fig.tight_layout()
    save_figure(fig, args.out, "poisson_highfreq")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
