"""Track a moving 2-D state with the pretrained distribution transformer and with the exact filter.

A random walk (step sd 0.5) starts from a two-component prior; every step brings 4 noisy
observations (sd 1). Both filters run the exact prediction step (every covariance gains the step
covariance); the update is the model's amortised posterior for one and the exact Gaussian-sum
(Kalman) update for the other. Prints the expected NLL of the true state per step for both over 200
tracks, and plots one track with both filters' means and 2-sd bands.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import torch


def main(argv: Sequence[str] | None = None) -> int:
    """Run the example; returns 0 on success."""
    parser = argparse.ArgumentParser(prog="sciml run sequential_fusion", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="outputs", help="folder for the figure (default outputs/)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--tracks", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    ns = parser.parse_args(argv)
    if ns.steps < 1 or ns.tracks < 1:
        parser.error("--steps and --tracks must be >= 1")

    from sciml_benchmarks.distribution_transformer import fusion_run
    from sciml_solvers._figures import pyplot, save_figure

    import sciml

    model = sciml.load("surrogate", "distribution-transformer").pretrained("gmm-gaussian")
    run = fusion_run(model, ns.tracks, ns.steps, torch.Generator().manual_seed(ns.seed))
    print("| step | NLL exact filter | NLL distribution transformer | difference |")
    print("| --- | --- | --- | --- |")
    for t, (x, exact, learned) in enumerate(run):
        a, b = -exact.log_prob(x).mean(), -learned.log_prob(x).mean()
        print(f"| {t + 1} | {float(a):.4f} | {float(b):.4f} | {float(b - a):+.4f} |")

    def moments(mix):
        w = mix.log_weights.exp()[0]
        mean = (w[:, None] * mix.means[0]).sum(0)
        cov = mix.scale_tril[0] @ mix.scale_tril[0].transpose(-1, -2)
        second = (w[:, None, None] * (cov + mix.means[0, :, :, None] * mix.means[0, :, None, :])).sum(0)
        return mean, torch.diagonal(second - mean[:, None] * mean[None]).sqrt()

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    steps = torch.arange(1, ns.steps + 1)
    for j, ax in enumerate(axes):
        truth = torch.stack([x[0, j] for x, _, _ in run])
        ax.plot(steps, truth, "k.-", label="true state")
        for k, (label, colour) in enumerate((("exact filter", "C0"), ("distribution transformer", "C1"))):
            m, s = zip(*(moments(r[1 + k]) for r in run))
            m, s = torch.stack(m)[:, j], torch.stack(s)[:, j]
            ax.plot(steps, m, color=colour, label=label)
            ax.fill_between(steps, m - 2 * s, m + 2 * s, color=colour, alpha=0.2)
        ax.set_xlabel("step")
        ax.set_ylabel(f"x{j + 1}")
    axes[0].legend()
    fig.tight_layout()
    print()
    save_figure(fig, ns.out, "sequential_fusion", dpi=100)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
