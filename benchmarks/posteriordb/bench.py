"""Samplers on posteriordb posteriors against their gold-standard reference draws, beside pyro NUTS.

Run as ``sciml bench posteriordb [--posteriors NAME,...] [--samplers mult-almc,nuts] [--output FILE.md]``.
Every posterior of :mod:`sciml_benchmarks.posteriordb` (pyro ports of the Stan models, on the
unconstrained space) is sampled by every sampler plugin **with its defaults** (``--num-samples``
chains, one draw each; the Laplace preconditioner they apply to ``from_pyro_model`` targets counts
in their evaluations) and by pyro NUTS (``--nuts-chains`` chains of ``--nuts-warmup`` adaptation
and ``--nuts-draws`` draws, step size and diagonal mass matrix adapted, from pyro's initial point).

Metrics, on posteriordb's parameters (the constrained values in the reference's columns), against
the reference (10 000 draws of long Stan runs): ``mean err`` = max over parameters of
``|mean - ref mean| / ref sd``; ``sd ratio`` = min and max over parameters of ``sd / ref sd``; ``W2`` =
exact W2 between the standardised draws (``(theta - ref mean) / ref sd``, at most 1000) and 1000
reference draws (its floor for two exact samples of 1000 is not zero: compare with NUTS's row);
``grads`` = gradient evaluations in total; ``ESS`` = min over parameters of ArviZ's bulk ESS (the
diffusion samplers' draws: four contiguous blocks of chains treated as chains, see
:func:`sciml.diagnostics.draw_diagnostics`); wall time on this CPU. Weighted draws (AIS, SMC) are
resampled by their weights first.

``--laplace-check`` samples nothing: for each posterior it prints how well the samplers' Laplace
preconditioner fits (:func:`sciml_benchmarks.posteriordb.laplace_check`): the reference draws'
mean and sd in the fit's standard coordinates, and the negative Hessian's eigenvalues there at 20
reference draws (all ~1 where the fit holds).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from sciml_benchmarks._report import finish
from sciml_benchmarks.nuts import counted_nuts
from torch import Tensor

from . import NAMES, Posterior, laplace_check, load

SAMPLERS = ("mult-almc", "mult-cdiff", "smc", "ais", "ula", "ulmc", "nuts")


@dataclass
class Row:
    posterior: str
    sampler: str
    mean_err: float
    sd_min: float
    sd_max: float
    w2: float
    grads: int
    ess: float
    seconds: float
    note: str


def score(posterior: Posterior, target, x: Tensor) -> tuple[float, float, float, float]:  # noqa: ANN001
    """``(max mean error in ref sds, min sd ratio, max sd ratio, W2 of standardised draws)`` of ``x`` (n, dim)."""
    from sciml.metrics import wasserstein2

    ref = posterior.reference
    finite = x[torch.isfinite(x).all(-1)]
    if finite.shape[0] < 2:
        return math.nan, math.nan, math.nan, math.nan
    theta = posterior.parameters(target, finite).to(torch.float64)
    err = float(((theta.mean(0) - ref.mean) / ref.sd).abs().max())
    ratio = theta.std(0) / ref.sd
    std = (theta - ref.mean) / ref.sd
    idx = torch.linspace(0, std.shape[0] - 1, min(1000, std.shape[0])).round().long()
    w2 = wasserstein2(std[idx], (ref.draws - ref.mean) / ref.sd) if bool(torch.isfinite(std).all()) else math.nan
    return err, float(ratio.min()), float(ratio.max()), w2


def run_plugin(name: str, posterior: Posterior, num_samples: int, seed: int) -> Row:
    """One sampler plugin with its defaults on ``posterior``."""
    import sciml

    target = posterior.target()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t0 = time.perf_counter()
        res = sciml.load("sampler", name)(progress=False).sample(target, num_samples,
                                                                 generator=torch.Generator().manual_seed(seed))
        seconds = time.perf_counter() - t0
    x = res.x
    if res.log_weights is not None:
        w = torch.softmax(torch.nan_to_num(res.log_weights, nan=-math.inf), 0)
        x = x[torch.multinomial(w, x.shape[0], replacement=True, generator=torch.Generator().manual_seed(seed + 7))]
        ess = float(res.diagnostics.get("ess", math.nan))
    else:
        ess = float(res.diagnostics["ess_bulk"].min()) if "ess_bulk" in res.diagnostics else math.nan
    err, lo, hi, w2 = score(posterior, target, x)
    notes = [f"{int(res.diverged.sum())} diverged"] if res.diverged is not None and bool(res.diverged.any()) else []
    notes += [f"of them {res.diagnostics['n_low_density']} lost (low density)"] if res.diagnostics.get("n_low_density") else []
    notes += [f"{res.diagnostics['n_unresolved']} unresolved"] if res.diagnostics.get("n_unresolved") else []
    stuck = sum(c for c, a, _ in res.diagnostics.get("minor_mode_draws", []) if c > a)
    notes += [f"{stuck} draws in minor modes"] if stuck else []
    notes += ["still moving at the end"] if res.diagnostics.get("drift", {}).get("drifting") else []
    notes += ["warned"] if any(issubclass(w.category, RuntimeWarning) for w in caught) else []
    return Row(posterior.name, name, err, lo, hi, w2, res.n_grad_evals, ess, seconds, ", ".join(notes))


def run_nuts(posterior: Posterior, chains: int, warmup: int, draws: int, seed: int) -> Row:
    """pyro NUTS on the port (``chains`` chains run one after the other), gradient evaluations counted."""
    from sciml.diagnostics import chain_diagnostics

    target = posterior.target()
    runs = []
    for c in range(chains):
        torch.manual_seed(seed + c)
        x0 = target.initial_point + 0.1 * torch.randn(target.dim, dtype=target.dtype)
        runs.append(counted_nuts(target, x0, warmup=warmup, draws=draws, seed=None))
    traces, seconds, evals = [r.draws for r in runs], sum(r.seconds for r in runs), sum(r.n_grad_evals for r in runs)
    trace = torch.stack(traces)
    x = trace.reshape(-1, target.dim)
    err, lo, hi, w2 = score(posterior, target, x)
    ess = float(chain_diagnostics(posterior.parameters(target, x).reshape(chains, draws, -1))["ess_bulk"].min())
    rhat = float(chain_diagnostics(trace)["r_hat"].max())
    return Row(posterior.name, "nuts", err, lo, hi, w2, evals, ess, seconds,
               f"{chains} x ({warmup} + {draws}), max R-hat {rhat:.3f}")


def to_markdown(rows: Sequence[Row]) -> str:
    def f(v: float, fmt: str = ".3f") -> str:
        return "-" if not math.isfinite(v) else format(v, fmt)

    lines = ["| posterior | sampler | mean err (ref sd) | sd ratio | W2 (std.) | grad evals | ESS (bulk, min) "
             "| ESS / 1e3 grads | wall s | notes |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        per = 1e3 * r.ess / r.grads if r.grads and math.isfinite(r.ess) else math.nan
        lines.append(f"| {r.posterior} | {r.sampler} | {f(r.mean_err)} | {f(r.sd_min, '.2f')} - {f(r.sd_max, '.2f')} "
                     f"| {f(r.w2)} | {r.grads:.3g} | {f(r.ess, '.0f')} | {f(per, '.3g')} | {f(r.seconds, '.1f')} "
                     f"| {r.note} |")
    return "\n".join(lines)


def laplace_table(names: Sequence[str]) -> str:
    """The ``--laplace-check`` table, one row per posterior."""
    lines = ["| posterior | dim | mode from start | max abs z mean | z sd (min - max) | largest curvature (median, max) | "
             "smallest curvature (median, min) |", "|---|---|---|---|---|---|---|"]
    for name in names:
        c = laplace_check(load(name))
        sd, hi, lo = c["z_sd"], c["curvature"][:, 1], c["curvature"][:, 0]
        lines.append(f"| {name} | {sd.numel()} | {c['start']} | {float(c['z_mean'].abs().max()):.2f} | {float(sd.min()):.2f} - "
                     f"{float(sd.max()):.2f} | {float(hi.median()):.3g}, {float(hi.max()):.3g} | "
                     f"{float(lo.median()):.3g}, {float(lo.min()):.3g} |")
        print(lines[-1], flush=True)
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (``sciml bench posteriordb``); returns the exit code."""
    parser = argparse.ArgumentParser(prog="sciml bench posteriordb", description=__doc__.splitlines()[0])
    parser.add_argument("--posteriors", default=",".join(NAMES), help="comma-separated subset of " + ", ".join(NAMES))
    parser.add_argument("--samplers", default=",".join(SAMPLERS), help="comma-separated subset of " + ", ".join(SAMPLERS))
    parser.add_argument("--num-samples", type=int, default=1000, help="chains (= draws) of the sampler plugins")
    parser.add_argument("--nuts-chains", type=int, default=4)
    parser.add_argument("--nuts-warmup", type=int, default=500)
    parser.add_argument("--nuts-draws", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--laplace-check", action="store_true",
                        help="sample nothing: how well the Laplace preconditioner fits each posterior")
    parser.add_argument("--output", default=None, help="also write the markdown table to this file")
    ns = parser.parse_args(argv)
    posteriors = [p.strip() for p in ns.posteriors.split(",") if p.strip()]
    samplers = [s.strip() for s in ns.samplers.split(",") if s.strip()]
    unknown = [p for p in posteriors if p not in NAMES] + [s for s in samplers if s not in SAMPLERS]
    if unknown:
        print(f"sciml bench posteriordb: unknown posterior / sampler {unknown}", file=sys.stderr)
        return 2
    if ns.laplace_check:
        return finish(laplace_table(posteriors), ns.output)
    print(f"posteriordb benchmark: {len(posteriors)} posteriors x {len(samplers)} samplers, torch threads "
          f"{torch.get_num_threads()}", flush=True)
    rows = []
    for pname in posteriors:
        posterior = load(pname)
        for s in samplers:
            row = (run_nuts(posterior, ns.nuts_chains, ns.nuts_warmup, ns.nuts_draws, ns.seed) if s == "nuts"
                   else run_plugin(s, posterior, ns.num_samples, ns.seed))
            rows.append(row)
            print(to_markdown([row]).splitlines()[-1], flush=True)
    return finish(to_markdown(rows), ns.output)


if __name__ == "__main__":
    sys.exit(main())
