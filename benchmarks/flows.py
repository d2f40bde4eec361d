"""Variational flows on the 2-D flow energies: planar, radial, zuko NSF (every default), one run.

Run as ``sciml bench flows [--targets U1,U2,U3,U4,banana,cross,funnel] [--flows planar-flow,radial-flow,nsf-flow]
[--draws 2000] [--output FILE.md]``. Per target x flow, seed 0: ``KL(q || p)`` (nats) by Monte Carlo
over ``--draws`` draws of ``q`` with the target's exact ``log Z`` (quadrature for U1 - U4), its
Monte Carlo standard error, the kernel Stein discrepancy (IMQ, ``c = 1``, ``beta = 0.5``,
:func:`sciml.metrics.ksd`) of the draws, and of as many exact draws (the floor at that sample size),
the exact W2 to as many exact draws, gradient evaluations of the fit and its wall time.
``funnel`` is the MixFlows experiments' 2-D funnel (:class:`sciml.targets.MixFlowsFunnel`).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence

import torch
from sciml_benchmarks._report import finish

__all__ = ["main", "TARGETS"]

TARGETS = ("U1", "U2", "U3", "U4", "banana", "cross", "funnel")


def _target(name: str):  # noqa: ANN202 - a sciml Target
    from sciml import targets

    if name.startswith("U"):
        return targets.energy(int(name[1:]))
    return {"banana": targets.banana, "cross": targets.cross, "funnel": targets.mixflows_funnel}[name]()


def _row(target_name: str, flow_name: str, draws: int) -> str:
    import sciml
    from sciml.metrics import ksd, wasserstein2

    target = _target(target_name)
    start = time.perf_counter()
    q = sciml.load("sampler", flow_name)().fit(target, generator=torch.Generator().manual_seed(0))
    seconds = time.perf_counter() - start
    x, lq = q.sample_and_log_prob(draws, generator=torch.Generator().manual_seed(1))
    gap = lq - target.log_prob(x)
    kl = float(gap.mean()) + target.log_z
    kl_se = float(gap.std()) / math.sqrt(draws)
    exact = target.sample(draws, generator=torch.Generator().manual_seed(2))
    exact2 = target.sample(draws, generator=torch.Generator().manual_seed(3))
    return (f"| {target_name} | {flow_name} | {kl:.4f} ± {kl_se:.4f} | {ksd(x, target.grad_log_prob(x)):.4f} | "
            f"{ksd(exact, target.grad_log_prob(exact)):.4f} | {wasserstein2(x, exact):.4f} | "
            f"{wasserstein2(exact2, exact):.4f} | {q.diagnostics['n_grad_evals']:.2e} | {seconds:.1f} |")


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (``sciml bench flows``); returns the exit code."""
    parser = argparse.ArgumentParser(prog="sciml bench flows", description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--flows", default="planar-flow,radial-flow,nsf-flow")
    parser.add_argument("--draws", type=int, default=2000)
    parser.add_argument("--output", default=None, help="also write the markdown table to this file")
    ns = parser.parse_args(argv)
    names = [t.strip() for t in ns.targets.split(",") if t.strip()]
    unknown = [t for t in names if t not in TARGETS]
    if unknown:
        print(f"sciml bench flows: unknown targets {unknown}; choose from {list(TARGETS)}", file=sys.stderr)
        return 2
    lines = ["| target | flow | KL (nats) | KSD | KSD exact | W2 | W2 exact | grad evals | fit s |",
             "|---|---|---|---|---|---|---|---|---|"]
    print("\n".join(lines), flush=True)
    for name in names:
        for flow in [f.strip() for f in ns.flows.split(",") if f.strip()]:
            lines.append(_row(name, flow, ns.draws))
            print(lines[-1], flush=True)
    return finish("\n".join(lines), ns.output)


if __name__ == "__main__":
    raise SystemExit(main())
