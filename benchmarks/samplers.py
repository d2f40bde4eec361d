"""Samplers on the published benchmark targets at equal energy-evaluation budgets, against pyro NUTS.

Run as ``sciml bench samplers [--quick] [--targets 8-mog,rings] [--output FILE.md]``. For each
target of the published table (8-MoG, 40-MoG d=2 and d=50, rings, Neal's funnel, DW5 / DW10 /
DW50), every sampler plugin (``mult-almc``, ``mult-cdiff``, ``ula``, ``ulmc``, ``ais``, ``smc``)
draws ``--num-samples`` points (one per chain / particle), each chain spending about
``--budget`` target evaluations (a value-and-gradient call counts once, see
:class:`~sciml_plugins.diffusion._common.CountedTarget`), so every sampler uses the same total
``num_samples * budget``. Samplers whose cost per step adapts (MultALMC / MultCDiff choose their
SK-ROCK stages on the fly) are calibrated by a 32-chain pilot run first (not counted).

pyro NUTS (``pyro.infer.MCMC`` with ``NUTS``, step size and diagonal mass adapted during warm-up)
runs **one long chain** from a ``N(0, I)`` draw; it gets the same total evaluation budget unless
that exceeds ``--nuts-max-evals`` (pyro runs ~1e3 potential evaluations per second here), in
which case its budget is capped (the table reports the evaluations each method actually used),
and its draws are thinned to ``num_samples``.

Metrics (against exact samples of the target): entropic-regularised W2 with regularisation 0.05
(:func:`sciml.metrics.entropic_w2`; square root of the entropic OT cost on squared distances),
sliced Kolmogorov-Smirnov for the funnel, and mode coverage (modes hit by at least one sample,
samples assigned to the nearest component) where the target lists its modes. Weighted samplers
(AIS, SMC) are resampled by their importance weights first. Wall times are for the sampling only.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from sciml_benchmarks._report import save_table
from torch import Tensor

__all__ = ["main", "run", "Row", "PUBLISHED", "DEFAULT_TARGETS", "SAMPLERS"]

DEFAULT_TARGETS = ("8-mog", "40-mog-d2", "rings", "funnel", "dw5", "dw10", "dw50", "40-mog-d50")
SAMPLERS = ("mult-almc", "mult-cdiff", "ula", "ulmc", "ais", "smc", "nuts")

#: Published figures (Cordero-Encinar et al. 2025, Table): entropic W2 (funnel: sliced KS).
PUBLISHED: dict[str, dict[str, float]] = {
    "mult-almc": {"8-mog": 0.65, "40-mog-d2": 0.91, "40-mog-d50": 20.58, "rings": 0.18, "funnel": 0.032,
                  "dw5": 2.08, "dw10": 4.48, "dw50": 14.03},
    "mult-cdiff": {"8-mog": 0.62, "40-mog-d2": 0.93, "40-mog-d50": 20.13, "rings": 0.19, "funnel": 0.031,
                   "dw5": 1.95, "dw10": 4.23, "dw50": 13.98},
    "smc": {"8-mog": 5.26, "40-mog-d2": 4.79, "40-mog-d50": 52.17, "rings": 0.29, "funnel": 0.034,
            "dw5": 4.06, "dw10": 11.86, "dw50": 28.92},
    "ais": {"8-mog": 5.53, "40-mog-d2": 5.01, "40-mog-d50": 65.83, "rings": 0.20, "funnel": 0.040,
            "dw5": 4.11, "dw10": 12.30, "dw50": 39.20},
}

# Per-target hyper-parameters (everything else: the plugins' defaults). Step sizes follow the
# targets' curvature: rings (radial sd 0.15) and the double wells (quartic) need small steps.
_STEP = {"8-mog": 0.1, "40-mog-d2": 0.1, "40-mog-d50": 0.05, "rings": 0.01, "funnel": 0.01,
         "dw5": 0.005, "dw10": 0.005, "dw50": 0.005}
_LANGEVIN_STEP = {"8-mog": 0.05, "40-mog-d2": 0.1, "40-mog-d50": 0.1, "rings": 0.002, "funnel": 0.01,
                  "dw5": 0.01, "dw10": 0.01, "dw50": 0.01}
_FAST_INIT = {"40-mog-d2": 40.0, "40-mog-d50": 40.0, "funnel": 2.0, "dw5": 1.0, "dw10": 1.0, "dw50": 1.0}
_HORIZON = {"40-mog-d2": 6.0, "40-mog-d50": 6.0}


@dataclass
class Row:
    """One (target, sampler) measurement."""

    target: str
    sampler: str
    metric_name: str
    metric: float
    modes_covered: str
    mode_tv: float | None
    evals: int
    grad_evals: int
    seconds: float
    diverged: int
    published: float | None
    note: str = ""


def _metrics() -> tuple[Callable[..., float], Callable[..., float]]:
    """``(entropic_w2, sliced_ks)`` from :mod:`sciml.metrics`, or local POT / torch fallbacks."""
    try:
        from sciml.metrics import entropic_w2, sliced_ks

        return (lambda x, y: float(entropic_w2(x, y, reg=0.05))), (lambda x, y: float(sliced_ks(x, y)))
    except ImportError:  # pragma: no cover - sciml.metrics is part of the same release
        import ot

        def w2(x: Tensor, y: Tensor) -> float:
            a = torch.full((x.shape[0],), 1.0 / x.shape[0], dtype=torch.float64)
            b = torch.full((y.shape[0],), 1.0 / y.shape[0], dtype=torch.float64)
            cost = torch.cdist(x.double(), y.double()) ** 2
            return math.sqrt(max(float(ot.sinkhorn2(a, b, cost, 0.05, method="sinkhorn_log", numItermax=2000)), 0.0))

        def ks(x: Tensor, y: Tensor) -> float:
            g = torch.Generator().manual_seed(0)
            dirs = torch.randn(128, x.shape[1], dtype=torch.float64, generator=g)
            dirs = dirs / dirs.norm(dim=1, keepdim=True)
            px, py = (x.double() @ dirs.T).sort(0).values, (y.double() @ dirs.T).sort(0).values
            grid = torch.cat([px, py], 0)
            fx = torch.searchsorted(px.T.contiguous(), grid.T.contiguous(), right=True).double() / px.shape[0]
            fy = torch.searchsorted(py.T.contiguous(), grid.T.contiguous(), right=True).double() / py.shape[0]
            return float((fx - fy).abs().amax(1).mean())

        return w2, ks


def _mode_coverage(x: Tensor, modes: Tensor | None, weights: Tensor | None) -> tuple[str, float | None]:
    """``("hit/M", total-variation error of the nearest-mode weights)`` or ``("-", None)``."""
    if modes is None:
        return "-", None
    x = x[torch.isfinite(x).all(-1)]
    if not x.numel():
        return f"0/{modes.shape[0]}", 1.0
    idx = torch.cdist(x.double(), modes.double()).argmin(1)
    frac = torch.bincount(idx, minlength=modes.shape[0]).double() / x.shape[0]
    tv = None if weights is None else float(0.5 * (frac - weights.double() / weights.double().sum()).abs().sum())
    return f"{int((frac > 0).sum())}/{modes.shape[0]}", tv


def _resample(x: Tensor, log_w: Tensor | None, gen: torch.Generator) -> Tensor:
    if log_w is None:
        return x
    w = torch.softmax(torch.nan_to_num(log_w, nan=-math.inf), 0)
    if not bool(torch.isfinite(w).all()) or float(w.sum()) <= 0:
        return x
    return x[torch.multinomial(w, x.shape[0], replacement=True, generator=gen)]


def _config(name: str, target: str) -> dict[str, Any]:
    h = _STEP[target]
    if name == "mult-almc":
        return {"step_size": h, "fast_init_scale": _FAST_INIT.get(target, 20.0)}
    if name == "mult-cdiff":
        return {"horizon": _HORIZON.get(target, 5.0), "fast_init_scale": _FAST_INIT.get(target, 20.0)}
    if name == "ula":
        return {"step_size": _LANGEVIN_STEP[target]}
    if name == "ulmc":
        return {"step_size": _LANGEVIN_STEP[target], "friction": 1.0}
    if name in ("ais", "smc"):
        return {"step_size": _LANGEVIN_STEP[target]}
    raise KeyError(name)


def _steps_for_budget(name: str, budget: int, cfg: dict[str, Any], target: Any) -> int:
    """Number of steps so that a chain spends about ``budget`` evaluations."""
    if name in ("ula", "ulmc"):
        return max(budget - (1 if name == "ulmc" else 0), 1)
    if name == "ais":
        return max(budget - 1, 1)
    if name == "smc":
        return max((budget - 1) // 2, 1)  # two MALA moves per temperature
    import sciml

    cls = sciml.load("sampler", name)
    pilot_steps = 100
    pilot = cls(num_steps=pilot_steps, progress=False, **cfg).sample(target, 32, generator=torch.Generator().manual_seed(99))
    per_step = pilot.n_evals / 32 / pilot_steps
    return max(int(budget / per_step), 10)


def _nuts(target: Any, num_samples: int, max_evals: int, seed: int) -> tuple[Tensor, int, float, str]:
    from pyro.infer import MCMC, NUTS

    count = [0]

    def potential(params: dict[str, Tensor]) -> Tensor:
        count[0] += 1
        return -target.log_prob(params["x"])

    torch.manual_seed(seed)
    x0 = torch.randn(target.dim, dtype=target.dtype, generator=torch.Generator().manual_seed(seed))
    # pilot: evaluations per draw after adaptation
    kernel = NUTS(potential_fn=potential, adapt_step_size=True, adapt_mass_matrix=True, max_tree_depth=8)
    warmup = 200
    mc = MCMC(kernel, num_samples=100, warmup_steps=warmup, initial_params={"x": x0}, disable_progbar=True)
    mc.run()
    per_draw = max(count[0] / (warmup + 100), 1.0)
    total_draws = max(int(max_evals / per_draw) - warmup, num_samples)
    count[0] = 0
    t0 = time.perf_counter()
    kernel = NUTS(potential_fn=potential, adapt_step_size=True, adapt_mass_matrix=True, max_tree_depth=8)
    mc = MCMC(kernel, num_samples=total_draws, warmup_steps=warmup, initial_params={"x": x0}, disable_progbar=True)
    mc.run()
    seconds = time.perf_counter() - t0
    draws = mc.get_samples()["x"].reshape(-1, target.dim)
    idx = torch.linspace(0, draws.shape[0] - 1, num_samples).round().long()
    return draws[idx], count[0], seconds, f"1 chain, {total_draws} draws thinned to {num_samples}"


def run(targets: Sequence[str], samplers: Sequence[str], num_samples: int, budget: int, nuts_max_evals: int,
        seed: int = 0, log: Callable[[str], None] | None = None) -> list[Row]:
    """Run every sampler on every target; return the rows (also logged as they finish)."""
    import sciml
    from sciml.targets import BENCHMARK_TARGETS

    if log is None:
        def log(msg: str) -> None:
            print(msg, flush=True)
    w2, ks = _metrics()
    rows: list[Row] = []
    for tname in targets:
        target = BENCHMARK_TARGETS[tname]()
        ref = target.sample(num_samples, generator=torch.Generator().manual_seed(seed + 1000))
        metric_name = "sliced KS" if tname == "funnel" else "entropic W2"
        score = ks if tname == "funnel" else w2
        for name in samplers:
            note = ""
            t_start = time.perf_counter()
            if name == "nuts":
                nuts_budget = min(num_samples * budget, nuts_max_evals)
                x, evals, seconds, note = _nuts(target, num_samples, nuts_budget, seed)
                grads, diverged = evals, int((~torch.isfinite(x).all(-1)).sum())
                if nuts_budget < num_samples * budget:
                    note += f"; budget capped at {nuts_max_evals:.0e}"
            else:
                cfg = _config(name, tname)
                steps = _steps_for_budget(name, budget, cfg, target)
                sampler = sciml.load("sampler", name)(num_steps=steps, progress=False, **cfg)
                t0 = time.perf_counter()
                res = sampler.sample(target, num_samples, generator=torch.Generator().manual_seed(seed))
                seconds = time.perf_counter() - t0
                x = _resample(res.x, res.log_weights, torch.Generator().manual_seed(seed + 7))
                evals, grads, diverged = res.n_evals, res.n_grad_evals, int(res.diverged.sum())
                note = f"{steps} steps"
            finite = x[torch.isfinite(x).all(-1)]
            with warnings.catch_warnings():  # Sinkhorn's marginal-violation warning (plan rounded)
                warnings.simplefilter("ignore", RuntimeWarning)
                value = score(finite, ref) if finite.shape[0] > 1 else float("nan")
            covered, tv = _mode_coverage(x, target.modes, target.mode_weights)
            row = Row(tname, name, metric_name, value, covered, tv, int(evals), int(grads),
                      seconds, diverged, PUBLISHED.get(name, {}).get(tname), note)
            rows.append(row)
            log(f"  {tname:11s} {name:10s} {metric_name} {value:8.3f}  modes {covered:6s} "
                f"evals {evals:.2e}  {seconds:6.1f} s (with metrics {time.perf_counter() - t_start:.0f} s)  {note}")
    return rows


def to_markdown(rows: Sequence[Row], num_samples: int, budget: int) -> str:
    """The results as a markdown table."""
    lines = [f"num_samples = {num_samples}, budget = {budget} evaluations per chain "
             f"(total {num_samples * budget:.1e} per sampler; NUTS: see its row)", "",
             "| target | sampler | metric | value | published | modes covered | mode-weight TV | evaluations "
             "| gradient evals | wall time (s) | diverged | note |",
             "| --- | --- | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in rows:
        pub = "" if r.published is None else f"{r.published:g}"
        tv = "" if r.mode_tv is None else f"{r.mode_tv:.3f}"
        lines.append(f"| {r.target} | {r.sampler} | {r.metric_name} | {r.metric:.3f} | {pub} | {r.modes_covered} | {tv} | "
                     f"{r.evals:.2e} | {r.grad_evals:.2e} | {r.seconds:.1f} | {r.diverged} | {r.note} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (``sciml bench samplers``); returns the exit code."""
    parser = argparse.ArgumentParser(prog="sciml bench samplers", description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default=",".join(DEFAULT_TARGETS[:-1]),
                        help=f"comma-separated subset of {', '.join(DEFAULT_TARGETS)} (default: all but 40-mog-d50)")
    parser.add_argument("--samplers", default=",".join(SAMPLERS), help="comma-separated subset of " + ", ".join(SAMPLERS))
    parser.add_argument("--num-samples", type=int, default=1000, help="draws per sampler (= chains)")
    parser.add_argument("--budget", type=int, default=3000, help="target evaluations per chain")
    parser.add_argument("--nuts-max-evals", type=float, default=5e4, help="cap on NUTS's total evaluations")
    parser.add_argument("--quick", action="store_true", help="8-mog and rings, 300 samples, budget 500")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--output", default=None, help="also write the markdown table to this file")
    ns = parser.parse_args(argv)
    if ns.threads:
        torch.set_num_threads(ns.threads)
    targets = [t.strip() for t in ns.targets.split(",") if t.strip()]
    samplers = [s.strip() for s in ns.samplers.split(",") if s.strip()]
    num_samples, budget, nuts_max = ns.num_samples, ns.budget, int(ns.nuts_max_evals)
    if ns.quick:
        targets = targets if "--targets" in (argv or sys.argv) else ["8-mog", "rings"]
        num_samples, budget, nuts_max = 300, 500, 20000
    unknown = [t for t in targets if t not in DEFAULT_TARGETS] + [s for s in samplers if s not in SAMPLERS]
    if unknown:
        print(f"sciml bench samplers: unknown target / sampler {unknown}", file=sys.stderr)
        return 2
    if num_samples < 2 or budget < 10:
        print("sciml bench samplers: need --num-samples >= 2 and --budget >= 10", file=sys.stderr)
        return 2
    print(f"samplers benchmark: {len(targets)} targets x {len(samplers)} samplers, {num_samples} samples, "
          f"budget {budget}/chain, torch threads {torch.get_num_threads()}", flush=True)
    rows = run(targets, samplers, num_samples, budget, nuts_max, seed=ns.seed)
    table = to_markdown(rows, num_samples, budget)
    print()
    print(table)
    save_table(table, ns.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
