"""Schrödinger bridge from a 2-D Gaussian to a Swiss roll with LightSB (samples and trajectories).

Fits ``LightSB`` (diagonal covariances) between ``N(0, I)`` and a noisy Swiss roll, prints the
training time and the exact empirical W2 distance between bridge samples and held-out Swiss-roll
samples (beside the same distance between two independent Swiss-roll sets, the sampling floor),
and writes ``swiss_roll_bridge.png`` with samples, bridge marginals and SDE trajectories.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence

import torch

import sciml
from sciml.metrics import wasserstein2
from sciml.progress import add_progress_argument

__all__ = ["main", "swiss_roll"]


def swiss_roll(n: int, generator: torch.Generator | None = None, noise: float = 0.25) -> torch.Tensor:
    """``n`` points of a 2-D Swiss roll scaled to unit-order coordinates, shape (n, 2), float32."""
    u = torch.rand(n, generator=generator)
    t = 1.5 * math.pi * (1 + 2 * u)
    pts = torch.stack([t * torch.cos(t), t * torch.sin(t)], dim=1)
    pts = pts + noise * torch.randn(n, 2, generator=generator)
    return pts / 5.0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the example; returns 0 on success."""
    parser = argparse.ArgumentParser(prog="sciml run swiss_roll_bridge", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="outputs", help="directory for the figure (default: outputs/)")
    parser.add_argument("--eps", type=float, default=0.01, help="reference-process variance")
    parser.add_argument("--components", type=int, default=100, help="number of mixture components K")
    parser.add_argument("--steps", type=int, default=2000, help="Adam steps")
    parser.add_argument("--n", type=int, default=8000, help="training samples per side")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    add_progress_argument(parser)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from sciml_solvers._figures import pyplot, save_figure

    plt = pyplot()

    gen = torch.Generator().manual_seed(args.seed)
    x0 = torch.randn(args.n, 2, generator=gen)
    x1 = swiss_roll(args.n, gen)
    LightSB = sciml.load("solver", "lightsb")
    solver = LightSB(eps=args.eps, n_components=args.components, covariance="diag", num_steps=args.steps,
                     batch_size=256, lr=1e-2, init="identity", init_scale=0.1, progress=args.progress)
    start = time.perf_counter()
    bridge = solver.solve(x0, x1, generator=gen)
    train_s = time.perf_counter() - start

    n_eval = 1000
    x0_test = torch.randn(n_eval, 2, generator=gen)
    y_model = bridge.sample(x0_test, generator=gen)
    y_true, y_true2 = swiss_roll(n_eval, gen), swiss_roll(n_eval, gen)
    w2_model, w2_floor = wasserstein2(y_model.double(), y_true.double()), wasserstein2(y_true2.double(), y_true.double())
    w2_source = wasserstein2(x0_test.double(), y_true.double())

    print(f"LightSB Gaussian -> Swiss roll  (eps={args.eps}, K={args.components}, {bridge.diagnostics['num_steps']} steps)")
    print(f"{'quantity':<42}{'value':>10}")
    print(f"{'training time [s]':<42}{train_s:>10.1f}")
    print(f"{'best held-out loss':<42}{bridge.diagnostics['best_val_loss']:>10.4f}")
    print(f"{'W2(bridge samples, Swiss roll)':<42}{w2_model:>10.4f}")
    print(f"{'W2(Swiss roll, Swiss roll) (sampling floor)':<42}{w2_floor:>10.4f}")
    print(f"{'W2(source N(0, I), Swiss roll)':<42}{w2_source:>10.4f}")

    n_paths = 40
    path = bridge.trajectory(x0_test[:n_paths], num_steps=100, generator=gen)
    fig, axes = plt.subplots(1, 3, figsize=(15, 5))
    ax = axes[0]
    ax.scatter(*x0_test.T, s=3, alpha=0.4, label="p0 = N(0, I)")
    ax.scatter(*y_true.T, s=3, alpha=0.4, label="p1 (Swiss roll)")
    ax.set_title("source and target samples")
    ax.legend(loc="lower left", fontsize=8, markerscale=3)
    ax = axes[1]
    for t, c in zip((0.25, 0.5, 0.75), ("tab:blue", "tab:purple", "tab:red")):
        ax.scatter(*bridge.sample_at(t, x0_test, generator=gen).T, s=2, alpha=0.3, color=c, label=f"t = {t}")
    ax.scatter(*y_model.T, s=3, alpha=0.6, color="black", label="t = 1 (bridge samples)")
    ax.set_title("bridge marginals (exact Brownian-bridge sampling)")
    ax.legend(loc="lower left", fontsize=8, markerscale=3)
    ax = axes[2]
    ax.scatter(*y_true.T, s=2, alpha=0.15, color="tab:orange")
    for i in range(n_paths):
        ax.plot(path[:, i, 0], path[:, i, 1], lw=0.7, color="tab:green", alpha=0.8)
    ax.scatter(*path[0].T, s=10, color="tab:blue", label="start")
    ax.scatter(*path[-1].T, s=10, color="black", label="end (Euler-Maruyama, 100 steps)")
    ax.set_title("SDE trajectories")
    ax.legend(loc="lower left", fontsize=8)
    for ax in axes:
        ax.set_aspect("equal")
        ax.set_xlim(-3.5, 3.5)
        ax.set_ylim(-3.5, 3.5)
    fig.suptitle(f"LightSB, eps = {args.eps}, K = {args.components}")
    fig.tight_layout()
    save_figure(fig, args.out, "swiss_roll_bridge")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
