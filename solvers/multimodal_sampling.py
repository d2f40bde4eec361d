"""Sample the 40-mode Gaussian mixture with MultALMC and with pyro NUTS; plot both against the truth.

Run as ``sciml run multimodal_sampling [--out DIR] [--num-samples N] [--steps K] [--seed S]``.
The target is 40-MoG in 2-D (40 unit-variance components, means uniform in [-40, 40]^2, equal
weights; :func:`sciml.targets.mog40`). MultALMC runs ``N`` chains from ``N(0, I)``; NUTS
(``pyro.infer.MCMC``) runs one chain of ``N`` draws after warm-up, from a ``N(0, I)`` draw. The
printed table gives, per method, the modes covered, the total-variation error of the mode weights
(samples assigned to the nearest component), the target evaluations and the wall time; the figure
``multimodal_sampling.png`` shows exact samples, MultALMC and NUTS side by side.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import torch
from torch import Tensor

from sciml.metrics import mode_counts, mode_weight_error
from sciml.progress import add_progress_argument

__all__ = ["main"]


def _mode_stats(x: Tensor, modes: Tensor, weights: Tensor) -> tuple[int, float]:
    x = x[torch.isfinite(x).all(-1)].double()
    return int((mode_counts(x, modes.double()) > 0).sum()), mode_weight_error(x, modes.double(), weights.double())


def _nuts(target: object, n: int, seed: int) -> tuple[Tensor, int, float]:
    from pyro.infer import MCMC, NUTS

    count = [0]

    def potential(params: dict[str, Tensor]) -> Tensor:
        count[0] += 1
        return -target.log_prob(params["x"])  # type: ignore[attr-defined]

    torch.manual_seed(seed)
    x0 = torch.randn(2, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    mc = MCMC(NUTS(potential_fn=potential, max_tree_depth=8), num_samples=n, warmup_steps=300,
              initial_params={"x": x0}, disable_progbar=True)
    t0 = time.perf_counter()
    mc.run()
    return mc.get_samples()["x"].reshape(n, 2), count[0], time.perf_counter() - t0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the example; returns 0 on success."""
    parser = argparse.ArgumentParser(prog="sciml run multimodal_sampling", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="outputs", help="folder for the figure (default outputs/)")
    parser.add_argument("--num-samples", type=int, default=500, help="draws per method")
    parser.add_argument("--steps", type=int, default=300, help="MultALMC slow steps")
    parser.add_argument("--seed", type=int, default=0)
    add_progress_argument(parser)
    ns = parser.parse_args(argv)
    if ns.num_samples < 2 or ns.steps < 1:
        parser.error("--num-samples must be >= 2 and --steps >= 1")

    from sciml_solvers._figures import pyplot, save_figure

    plt = pyplot()

    import sciml
    from sciml.targets import mog40

    target = mog40(2, seed=0)
    truth = target.sample(ns.num_samples, generator=torch.Generator().manual_seed(ns.seed + 1))
    sampler = sciml.load("sampler", "mult-almc")(num_steps=ns.steps, step_size=0.1, fast_init_scale=40.0,
                                                 progress=ns.progress)
    t0 = time.perf_counter()
    res = sampler.sample(target, ns.num_samples, generator=torch.Generator().manual_seed(ns.seed))
    t_almc = time.perf_counter() - t0
    x_nuts, nuts_evals, t_nuts = _nuts(target, ns.num_samples, ns.seed)

    rows = [("exact", truth, 0, 0.0), ("MultALMC", res.x, res.n_evals, t_almc), ("NUTS (pyro)", x_nuts, nuts_evals, t_nuts)]
    print(f"40-MoG (d=2), {ns.num_samples} draws per method")
    print(f"{'method':12s} {'modes':>7s} {'weight TV':>10s} {'evaluations':>12s} {'time (s)':>9s}")
    for name, x, evals, secs in rows:
        hit, tv = _mode_stats(x, target.modes, target.mode_weights)
        print(f"{name:12s} {hit:4d}/40 {tv:10.3f} {evals:12.2e} {secs:9.1f}")

    fig, axes = plt.subplots(1, 3, figsize=(13, 4.4), sharex=True, sharey=True)
    for ax, (name, x, _, _) in zip(axes, rows):
        ax.scatter(target.modes[:, 0], target.modes[:, 1], s=40, facecolors="none", edgecolors="0.6", lw=0.8)
        ax.scatter(x[:, 0], x[:, 1], s=3, alpha=0.5, color="C3" if name != "exact" else "C0")
        ax.set_title(name)
        ax.set_xlim(-50, 50)
        ax.set_ylim(-50, 50)
        ax.set_aspect("equal")
    fig.suptitle("40-MoG: component means (circles) and samples")
    fig.tight_layout()
    save_figure(fig, ns.out, "multimodal_sampling")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
