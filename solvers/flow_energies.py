"""Fit planar flows (K = 32) to the Rezende-Mohamed energies U1 - U4 and plot them beside the targets.

Prints KL(q || p) per energy (Monte Carlo, with the quadrature log Z) and writes a 2 x 4 figure:
the four target densities on the paper's window [-4, 4]^2 above the fitted flows' densities
(evaluated at every grid point through the flows' inverses).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import torch


def main(argv: Sequence[str] | None = None) -> int:
    """Run the example; returns 0 on success."""
    parser = argparse.ArgumentParser(prog="sciml run flow_energies", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="outputs", help="folder for the figure (default outputs/)")
    parser.add_argument("--layers", type=int, default=32)
    parser.add_argument("--steps", type=int, default=8000, help="fitting steps per energy")
    parser.add_argument("--seed", type=int, default=0)
    ns = parser.parse_args(argv)
    if ns.layers < 1 or ns.steps < 2:
        parser.error("--layers must be >= 1 and --steps >= 2")

    from sciml_solvers._figures import pyplot, save_figure

    import sciml
    from sciml.targets import energy

    Flow = sciml.load("sampler", "planar-flow")
    g = torch.linspace(-4, 4, 161, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(g, g, indexing="ij"), -1)
    plt = pyplot()
    fig, axes = plt.subplots(2, 4, figsize=(12, 6.2))
    print("| energy | KL(q || p) nats | fit s |")
    print("| --- | --- | --- |")
    for k in range(1, 5):
        target = energy(k)
        q = Flow(ns.layers, num_steps=ns.steps).fit(target, generator=torch.Generator().manual_seed(ns.seed))
        x, lq = q.sample_and_log_prob(4000, generator=torch.Generator().manual_seed(ns.seed + 1))
        kl = float((lq - target.log_prob(x)).mean()) + target.log_z
        print(f"| U{k} | {kl:.4f} | {q.diagnostics['wall_time_s']:.1f} |")
        for row, density in enumerate((torch.exp(target.log_prob(grid) - target.log_z), torch.exp(q.log_prob(grid)))):
            ax = axes[row, k - 1]
            ax.imshow(density.T.numpy(), origin="lower", extent=(-4, 4, -4, 4), cmap="viridis")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[0, k - 1].set_title(f"U{k}")
        axes[1, k - 1].set_title(f"planar K={ns.layers}, KL {kl:.3f}")
    fig.tight_layout()
    print()
    save_figure(fig, ns.out, "flow_energies", dpi=90)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
