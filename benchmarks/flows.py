"""Variational flows against pyro NUTS on the 2-D flow energies and the funnels, every default, one run.

Run as ``sciml bench flows [--targets U1,...,funnel10] [--flows planar-flow,radial-flow,nsf-flow,mixflow,nuts]
[--draws 2000] [--nuts-warmup 10000] [--nuts-draws 5000] [--orbit-study banana,cross,funnel]
[--output FILE.md]``. Per target x method, seed 0, over ``--draws`` draws: ``KL(q || p)`` (nats) by
Monte Carlo with the target's exact ``log Z`` (quadrature for U1 - U4) and its standard error (for
``mixflow`` the augmented-space KL from the orbit ELBO, an upper bound on the KL of ``x``), the kernel
Stein discrepancy (IMQ, ``c = 1``, ``beta = 0.5``, :func:`sciml.metrics.ksd`), the exact W2 to as many
exact draws, the same two metrics for as many other exact draws (the floor at that sample size),
gradient evaluations and wall time of the fit (for ``mixflow`` also its tuning and the draws, which cost target
gradients; not the measurements). ``nuts``: pyro NUTS (diagonal metric,
the MixFlows protocol's ``--nuts-warmup`` / ``--nuts-draws``, started at an exact draw) thinned evenly
to ``--draws``.
The orbit study refits ``mixflow`` on each named target and reports, for ``N`` in ``ORBIT_MAPS`` at
the tuned leapfrog: the orbit ELBO, the KSD of ``--draws`` draws and the error of ``N - 1`` forward
then ``N - 1`` inverse maps. ``funnel`` is the MixFlows experiments' 2-D funnel
(:class:`sciml.targets.MixFlowsFunnel`), ``funnel10`` Neal's 10-D funnel (``x_0 ~ N(0, 9)``).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence

import torch
from sciml_benchmarks._report import finish

__all__ = ["main", "TARGETS", "ORBIT_MAPS"]

TARGETS = ("U1", "U2", "U3", "U4", "banana", "cross", "funnel", "funnel10")
ORBIT_MAPS = (10, 50, 200, 500, 1000, 2000)
_ELBO_ORBITS = 64


def _target(name: str):  # noqa: ANN202 - a sciml Target
    from sciml import targets

    if name.startswith("U"):
        return targets.energy(int(name[1:]))
    if name == "funnel10":
        return targets.funnel(10)
    return {"banana": targets.banana, "cross": targets.cross, "funnel": targets.mixflows_funnel}[name]()


def _metrics(target, x: torch.Tensor, draws: int) -> str:  # noqa: ANN001
    from sciml.metrics import ksd, wasserstein2

    exact = target.sample(draws, generator=torch.Generator().manual_seed(2))
    exact2 = target.sample(draws, generator=torch.Generator().manual_seed(3))
    return (f"{ksd(x, target.grad_log_prob(x)):.4f} | {ksd(exact, target.grad_log_prob(exact)):.4f} | "
            f"{wasserstein2(x, exact):.4f} | {wasserstein2(exact2, exact):.4f}")


def _fit(target, flow_name: str):  # noqa: ANN001, ANN202 - (fitted flow, seconds)
    import sciml

    start = time.perf_counter()
    flow = sciml.load("sampler", flow_name)(progress=False)
    q = flow.fit(target, generator=torch.Generator().manual_seed(0))
    return q, time.perf_counter() - start


def _flow_row(target_name: str, flow_name: str, draws: int) -> str:
    target = _target(target_name)
    q, seconds = _fit(target, flow_name)
    start = time.perf_counter()
    if flow_name == "mixflow":
        x = q.sample((draws,), generator=torch.Generator().manual_seed(1))
        evals = q.diagnostics["n_grad_evals"] + q.counted.n_grad_evals  # fit, tuning and the draws
        seconds += time.perf_counter() - start
        gap = -_orbit_elbos(q, _ELBO_ORBITS, 4)  # the measurement: not counted
    else:
        x, lq = q.sample_and_log_prob(draws, generator=torch.Generator().manual_seed(1))
        gap = lq - target.log_prob(x)
        evals = q.diagnostics["n_grad_evals"]
    kl, kl_se = float(gap.mean()) + target.log_z, float(gap.std()) / math.sqrt(gap.numel())
    if flow_name == "mixflow":  # the tuned leapfrog
        flow_name += f" (step {q.diagnostics['step_size']:g}, L {q.diagnostics['num_leapfrog']})"
    return (f"| {target_name} | {flow_name} | {kl:.4f} ± {kl_se:.4f} | {_metrics(target, x, draws)} | "
            f"{evals:.2e} | {seconds:.1f} |")


def _nuts_row(target_name: str, draws: int, warmup: int, nuts_draws: int) -> str:
    from sciml_benchmarks.nuts import counted_nuts

    target = _target(target_name)
    x0 = target.sample(1, generator=torch.Generator().manual_seed(7))[0]  # a typical point: no burn-in bias
    run = counted_nuts(target, x0, warmup=warmup, draws=nuts_draws, seed=0)
    x = run.draws[torch.linspace(0, nuts_draws - 1, min(draws, nuts_draws)).round().long()]
    return (f"| {target_name} | nuts | — | {_metrics(target, x, x.shape[0])} | {run.n_grad_evals:.2e} | "
            f"{run.seconds:.1f} |")


def _orbit_elbos(q, num_orbits: int, seed: int) -> torch.Tensor:  # noqa: ANN001
    """Per-orbit ELBO terms ``(num_orbits,)`` (each an unbiased ELBO estimate)."""
    with torch.no_grad():
        o = q.orbit(num_orbits, torch.Generator().manual_seed(seed))
    return (o["log_p"] - o["log_q"]).mean(-1)


def _orbit_study(target_name: str, draws: int) -> list[str]:
    from sciml.metrics import ksd

    target = _target(target_name)
    q, _ = _fit(target, "mixflow")
    lines = []
    for n_maps in ORBIT_MAPS:
        q.num_maps = n_maps
        elbo = _orbit_elbos(q, _ELBO_ORBITS, 4)
        x = q.sample((draws,), generator=torch.Generator().manual_seed(1))
        err = q.round_trip_error(_ELBO_ORBITS, generator=torch.Generator().manual_seed(5))
        lines.append(f"| {target_name} | {n_maps} | {float(elbo.mean()):.4f} ± {float(elbo.std()) / math.sqrt(elbo.numel()):.4f} | "
                     f"{ksd(x, target.grad_log_prob(x)):.4f} | {float(err.median()):.1e} | {float(err.max()):.1e} |")
        print(lines[-1], flush=True)
    return lines


def _names(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (``sciml bench flows``); returns the exit code."""
    parser = argparse.ArgumentParser(prog="sciml bench flows", description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--flows", default="planar-flow,radial-flow,nsf-flow,mixflow,nuts")
    parser.add_argument("--draws", type=int, default=2000)
    parser.add_argument("--nuts-warmup", type=int, default=10000)
    parser.add_argument("--nuts-draws", type=int, default=5000)
    parser.add_argument("--orbit-study", default="", help="targets for the mixflow N study (e.g. banana,cross,funnel)")
    parser.add_argument("--output", default=None, help="also write the markdown tables to this file")
    ns = parser.parse_args(argv)
    names, study = _names(ns.targets), _names(ns.orbit_study)
    unknown = [t for t in names + study if t not in TARGETS]
    if unknown:
        print(f"sciml bench flows: unknown targets {unknown}; choose from {list(TARGETS)}", file=sys.stderr)
        return 2
    if min(ns.draws, ns.nuts_warmup, ns.nuts_draws) < 1:
        print("sciml bench flows: --draws, --nuts-warmup and --nuts-draws must be positive", file=sys.stderr)
        return 2
    lines = ["| target | method | KL (nats) | KSD | KSD exact | W2 | W2 exact | grad evals | s |",
             "|---|---|---|---|---|---|---|---|---|"]
    print("\n".join(lines), flush=True)
    for name in names:
        for flow in _names(ns.flows):
            if flow == "nuts":
                lines.append(_nuts_row(name, ns.draws, ns.nuts_warmup, ns.nuts_draws))
            else:
                lines.append(_flow_row(name, flow, ns.draws))
            print(lines[-1], flush=True)
    if study:
        lines += ["", "| target | N | orbit ELBO | KSD | round-trip error, median | max |", "|---|---|---|---|---|---|"]
        print("\n".join(lines[-3:]), flush=True)
        for name in study:
            lines += _orbit_study(name, ns.draws)
    return finish("\n".join(lines), ns.output)


if __name__ == "__main__":
    raise SystemExit(main())
