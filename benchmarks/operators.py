"""Neural operators side by side on generated Darcy and Burgers data: our FNO, MgNO and LSM against neuraloperator's FNO.

Run as ``sciml bench operators [--problems darcy,burgers] [--epochs N] [--output FILE.md]``. Both
models are trained by ``sciml.training.fit`` on the same data (``sciml.datasets``: train seed 0,
test seed 1), with the same epochs, batch, optimiser (Adam, lr 1e-3, weight decay 1e-4), schedule
(x0.5 five times over the run) and loss (relative L2), each in its own process (peak memory is that
process's resident-set growth during training). neuraloperator's model is built with its documented
constructor and fed tensors, never its downloaders; its configuration is the paper's (hidden channels
32 / 64, n_modes counting both signs: 24 = the paper's 12). Columns: test relative L2 at the training
resolution and at about twice it (Darcy 211 from the same 421 solves, Burgers 2048 from the same 8192
ones), real parameters (complex weights count twice), median seconds per epoch, peak memory.
MgNO (``sciml-mgno``) and LSM (``sciml-lsm``) get the same data, epochs and batch, and the optimiser
settings each declares (``training_defaults``; MgNO: Adam, one-cycle to 5e-4, weight decay 1e-4,
relative L2; LSM: Adam 5e-4, weight decay 1e-4, step decay, relative L2); MgNO pads circularly on the
periodic Burgers data.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import queue as queues
import resource
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from sciml_benchmarks._report import finish

__all__ = ["main", "PROBLEMS", "MODELS", "Row"]

#: Data and model settings per problem (the FNO paper's: Darcy width 32 / 12 modes, Burgers 64 / 16).
PROBLEMS: dict[str, dict[str, Any]] = {
    "darcy": {"generator": "darcy", "resolution": 85, "fine": 211, "n_dims": 2,
              "ours": {"width": 32, "modes": 12}, "theirs": {"n_modes": (24, 24), "hidden_channels": 32},
              "mgno": {}, "lsm": {}},
    "burgers": {"generator": "burgers", "resolution": 1024, "fine": 2048, "n_dims": 1,
                "ours": {"width": 64, "modes": 16, "padding": 0.0},  # periodic data: no padding
                "theirs": {"n_modes": (32,), "hidden_channels": 64},
                "mgno": {"padding_mode": "circular"}, "lsm": {}},
}
MODELS = ("sciml-fno", "neuralop-fno", "sciml-mgno", "sciml-lsm")
#: Our operators other than the FNO, each trained with the settings it declares.
OWN_SETTINGS = {"sciml-mgno": "mgno", "sciml-lsm": "lsm"}
#: The FNO paper's optimiser for both FNOs; MgNO and LSM train with their own declared defaults, as a
#: user who gives none gets them.
FNO_SETTINGS = {"lr": 1e-3, "weight_decay": 1e-4, "schedule": "step", "loss": "l2", "optimizer": "adam"}


@dataclass
class Row:
    problem: str
    model: str
    test_error: float
    fine_error: float
    parameters: int
    epoch_s: float
    peak_mb: float
    epochs: int


def _data(problem: str, n: int, seed: int, resolution: int) -> Any:
    import sciml.datasets as datasets

    return getattr(datasets, PROBLEMS[problem]["generator"])(n, resolution=resolution, seed=seed, progress=False)


def _model(problem: str, name: str) -> torch.nn.Module:
    cfg = PROBLEMS[problem]
    if name == "sciml-fno" or name in OWN_SETTINGS:
        import sciml

        plugin = OWN_SETTINGS.get(name, "fno")
        kwargs = cfg["ours"] if plugin == "fno" else cfg[plugin]
        return sciml.load("operator", plugin)(in_channels=1, out_channels=1, n_dims=cfg["n_dims"], **kwargs)
    from neuralop.models import FNO as NeuralopFNO

    return NeuralopFNO(in_channels=1, out_channels=1, n_layers=4, **cfg["theirs"])


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _train_one(problem: str, name: str, n_train: int, n_test: int, epochs: int, threads: int, seed: int,
               queue: Any) -> None:
    from sciml.training import count_parameters, evaluate, fit

    torch.set_num_threads(threads)
    cfg = PROBLEMS[problem]
    train = _data(problem, n_train, 0, cfg["resolution"])
    test = _data(problem, n_test, 1, cfg["resolution"])
    fine = _data(problem, n_test, 1, cfg["fine"])
    torch.manual_seed(seed)
    model = _model(problem, name)
    before = _peak_mb()
    settings = {} if name in OWN_SETTINGS else FNO_SETTINGS
    result = fit(model, train, test, epochs=epochs, batch_size=20, generator=torch.Generator().manual_seed(seed),
                 progress=False, **settings)
    queue.put(Row(problem, name, float(result.test_error), evaluate(result.model, fine, batch_size=20),
                  count_parameters(model), statistics.median(result.history["epoch_time_s"]),
                  _peak_mb() - before, epochs))


def run(problem: str, name: str, n_train: int, n_test: int, epochs: int, threads: int, seed: int = 0) -> Row:
    """Train one model on one problem in a fresh process (``seed``: initialisation and shuffles); its figures.
    ``RuntimeError`` when that process ends without them (its traceback is on stderr)."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_train_one, args=(problem, name, n_train, n_test, epochs, threads, seed, queue))
    proc.start()
    while True:
        alive = proc.is_alive()  # before the wait: a row put just before the exit is read by a later one
        try:
            row = queue.get(timeout=1.0 if alive else 10.0)
            break
        except queues.Empty:
            if not alive:
                code = proc.exitcode
                why = f"killed by signal {-code}" if code < 0 else f"exit code {code} (a traceback, if any, is above)"
                raise RuntimeError(f"{name} on {problem}: its training process ended with no result, {why}") from None
    proc.join()
    return row


def to_markdown(rows: Sequence[Row]) -> str:
    lines = ["| problem | model | epochs | test rel. L2 | at ~2x resolution | parameters | s / epoch | peak MB |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        fine = PROBLEMS[r.problem]["fine"]
        lines.append(f"| {r.problem} {PROBLEMS[r.problem]['resolution']} | {r.model} | {r.epochs} | "
                     f"{r.test_error:.4f} | {r.fine_error:.4f} ({fine}) | {r.parameters:,} | {r.epoch_s:.1f} | "
                     f"{r.peak_mb:.0f} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (``sciml bench operators``); returns the exit code."""
    parser = argparse.ArgumentParser(prog="sciml bench operators", description=__doc__.splitlines()[0])
    parser.add_argument("--problems", default="darcy,burgers")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs per model (default: the CPU budget, darcy 6 / burgers 30)")
    parser.add_argument("--n-train", type=int, default=1000)
    parser.add_argument("--n-test", type=int, default=200)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--seed", type=int, default=0, help="model initialisation and shuffles (the data are fixed)")
    parser.add_argument("--output", default=None, help="also write the markdown table to this file")
    ns = parser.parse_args(argv)
    budget = {"darcy": 6, "burgers": 30}
    rows = []
    for problem in [p.strip() for p in ns.problems.split(",") if p.strip()]:
        if problem not in PROBLEMS:
            print(f"sciml bench operators: unknown problem {problem!r} ({', '.join(PROBLEMS)})", file=sys.stderr)
            return 2
        cfg = PROBLEMS[problem]  # generate (and cache) the data here, so each training process only reads it
        for n, seed, resolution in ((ns.n_train, 0, cfg["resolution"]), (ns.n_test, 1, cfg["resolution"]),
                                    (ns.n_test, 1, cfg["fine"])):
            _data(problem, n, seed, resolution)
        for name in [m.strip() for m in ns.models.split(",") if m.strip()]:
            row = run(problem, name, ns.n_train, ns.n_test, ns.epochs or budget[problem], ns.threads, ns.seed)
            rows.append(row)
            print(to_markdown([row]).splitlines()[-1], flush=True)
    return finish(to_markdown(rows), ns.output)


if __name__ == "__main__":
    sys.exit(main())
