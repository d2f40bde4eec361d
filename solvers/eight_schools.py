"""Eight schools (non-centred) in pyro, sampled by MultALMC and by pyro NUTS, against posteriordb's reference.

Run as ``sciml run eight_schools [--out DIR] [--num-samples N] [--steps K] [--nuts-draws D] [--seed S]``.
The classic hierarchical model (Rubin 1981; the non-centred form of posteriordb's
``eight_schools_noncentered``): ``mu ~ N(0, 5)``, ``tau ~ HalfCauchy(5)``, ``theta_j = mu + tau
theta~_j`` with ``theta~_j ~ N(0, 1)``, ``y_j ~ N(theta_j, sigma_j)``. The model goes through
:func:`sciml.targets.from_pyro_model`; ``mult-almc`` (its defaults: Laplace-preconditioned,
``--steps`` slow steps) draws ``N`` points, pyro NUTS runs one chain of ``D`` draws after ``D``
warm-up steps. Printed: posterior means and sds of ``mu`` and ``tau`` beside the reference (10 000
draws of long Stan runs), gradient evaluations, wall time and ArviZ's diagnostics. The figure
``eight_schools.png``: the marginal of ``tau`` and the funnel (``log tau`` against ``theta_1``).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import torch

__all__ = ["main", "model"]

Y = (28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0)
SIGMA = (15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0)


def model(y: torch.Tensor, sigma: torch.Tensor) -> None:
    """The non-centred eight-schools model; latent values are indexed from the right so it batches."""
    import pyro
    import pyro.distributions as dist

    zero = torch.zeros((), dtype=y.dtype)
    mu = pyro.sample("mu", dist.Normal(zero, 5.0))
    tau = pyro.sample("tau", dist.HalfCauchy(zero + 5.0))
    theta_trans = pyro.sample("theta_trans", dist.Normal(zero, 1.0).expand([y.shape[-1]]).to_event(1))
    theta = mu[..., None] + tau[..., None] * theta_trans
    pyro.sample("y", dist.Normal(theta, sigma).to_event(1), obs=y)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the example; returns 0 on success."""
    parser = argparse.ArgumentParser(prog="sciml run eight_schools", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="outputs", help="folder for the figure (default outputs/)")
    parser.add_argument("--num-samples", type=int, default=1000, help="MultALMC chains (= draws)")
    parser.add_argument("--steps", type=int, default=1000, help="MultALMC slow steps (its default 1000)")
    parser.add_argument("--nuts-draws", type=int, default=1000, help="NUTS warm-up steps and draws")
    parser.add_argument("--seed", type=int, default=0)
    ns = parser.parse_args(argv)
    if ns.num_samples < 16 or ns.steps < 10 or ns.nuts_draws < 10:
        parser.error("--num-samples must be >= 16, --steps and --nuts-draws >= 10")

    from sciml_benchmarks.nuts import counted_nuts
    from sciml_benchmarks.posteriordb import load
    from sciml_solvers._figures import pyplot, save_figure

    import sciml
    from sciml.diagnostics import chain_diagnostics
    from sciml.targets import from_pyro_model

    plt = pyplot()
    y, sigma = torch.tensor(Y, dtype=torch.float64), torch.tensor(SIGMA, dtype=torch.float64)
    target = from_pyro_model(model, y, sigma)
    t0 = time.perf_counter()
    res = sciml.load("sampler", "mult-almc")(num_steps=ns.steps).sample(
        target, ns.num_samples, generator=torch.Generator().manual_seed(ns.seed))
    almc_s = time.perf_counter() - t0
    nuts = counted_nuts(target, target.initial_point.clone(), warmup=ns.nuts_draws, draws=ns.nuts_draws, seed=ns.seed)
    nuts_x, nuts_grads, nuts_s = nuts.draws, nuts.n_grad_evals, nuts.seconds
    ref = load("eight_schools-eight_schools_noncentered").reference
    col = {name: i for i, name in enumerate(ref.names)}

    def summary(x: torch.Tensor) -> dict[str, torch.Tensor]:
        v = target.to_constrained(x[torch.isfinite(x).all(-1)])
        return {"mu": v["mu"], "tau": v["tau"], "theta1": v["mu"] + v["tau"] * v["theta_trans"][:, 0]}

    runs = {"mult-almc": summary(res.x), "NUTS": summary(nuts_x)}
    print(f"eight schools: mult-almc {ns.num_samples} chains x {ns.steps} steps, NUTS {ns.nuts_draws} + "
          f"{ns.nuts_draws} steps, against posteriordb's reference ({ref.n_draws} draws)")
    print()
    print("| method | mu mean | mu sd | tau mean | tau sd | grad evals | wall s | min ESS (bulk) | max R-hat |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    rm, rs = ref.mean, ref.sd
    print(f"| reference | {rm[col['mu']]:.2f} | {rs[col['mu']]:.2f} | {rm[col['tau']]:.2f} | {rs[col['tau']]:.2f} "
          "| - | - | - | - |")
    half = ns.nuts_draws // 2  # the chain's two halves as two chains (split R-hat)
    nuts_diag = chain_diagnostics(nuts_x[: 2 * half].reshape(2, half, target.dim))
    diag = {"mult-almc": (res.diagnostics.get("ess_bulk"), res.diagnostics.get("r_hat"), res.n_grad_evals, almc_s),
            "NUTS": (nuts_diag["ess_bulk"], nuts_diag["r_hat"], nuts_grads, nuts_s)}
    for name, v in runs.items():
        ess, rhat, grads, secs = diag[name]
        ess_s = "-" if ess is None else f"{float(ess.min()):.0f}"
        rhat_s = "-" if rhat is None else f"{float(rhat.max()):.3f}"
        print(f"| {name} | {v['mu'].mean():.2f} | {v['mu'].std():.2f} | {v['tau'].mean():.2f} | {v['tau'].std():.2f} "
              f"| {grads:.3g} | {secs:.1f} | {ess_s} | {rhat_s} |")

    ref_tau, ref_theta1 = ref.draws[:, col["tau"]], ref.draws[:, col["theta[1]"]]
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 4.2))
    bins = torch.linspace(-6.0, 4.5, 43)
    ax0.hist(ref_tau.log().numpy(), bins=bins.numpy(), density=True, histtype="stepfilled", alpha=0.3,
             color="k", label="reference")
    for name, v in runs.items():
        ax0.hist(v["tau"].log().numpy(), bins=bins.numpy(), density=True, histtype="step", lw=1.5, label=name)
    ax0.set_xlabel("log tau")
    ax0.set_ylabel("density")
    ax0.set_title("marginal of tau")
    ax0.legend(fontsize=8)
    ax1.scatter(ref_theta1.numpy(), ref_tau.log().numpy(), s=3, c="k", alpha=0.3, label="reference")
    for name, v in runs.items():
        ax1.scatter(v["theta1"].numpy(), v["tau"].log().numpy(), s=3, alpha=0.4, label=name)
    ax1.set_xlabel("theta_1")
    ax1.set_ylabel("log tau")
    ax1.set_title("the funnel")
    ax1.legend(fontsize=8, markerscale=3)
    fig.tight_layout()
    print()
    save_figure(fig, ns.out, "eight_schools", dpi=110)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
