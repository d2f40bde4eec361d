"""``sciml train``: train an operator plugin on a generated data set, the same under ``torchrun``.

One process::

    sciml train --model fno --data darcy --n-train 1000 --n-test 200 --epochs 100

Two processes on this machine (gloo on CPU, nccl on CUDA), the same result::

    torchrun --nproc_per_node 2 -m sciml train --model fno --data darcy --n-train 1000 --n-test 200 --epochs 100
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
from collections.abc import Sequence
from typing import Any

import torch

from ..progress import add_progress_argument
from . import distributed
from .fit import evaluate, fit

__all__ = ["main"]

#: The generators of ``sciml.datasets`` that ``--data`` accepts.
DATASETS = ("darcy", "burgers", "navier_stokes")


def _key_values(pairs: Sequence[str], flag: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"sciml train: {flag} takes key=value, got {pair!r}")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sciml train", description=__doc__.splitlines()[0])
    p.add_argument("--model", default="fno", help="operator plugin name (default fno)")
    p.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="constructor argument of the model, repeatable (e.g. --model-arg width=64)")
    p.add_argument("--data", default="darcy", choices=DATASETS, help="sciml.datasets generator (default darcy)")
    p.add_argument("--data-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="generator argument, repeatable (e.g. --data-arg resolution=43)")
    p.add_argument("--n-train", type=int, default=1000)
    p.add_argument("--n-test", type=int, default=200)
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=20)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--loss", default=None, choices=["l2", "h1"])
    p.add_argument("--schedule", default=None)
    p.add_argument("--seed", type=int, default=0, help="model initialisation and shuffling")
    p.add_argument("--device", default="cpu")
    p.add_argument("--checkpoint", default=None, help="checkpoint file (default outputs/train-MODEL-DATA.pt)")
    p.add_argument("--resume", action="store_true", help="continue the checkpoint if it exists")
    add_progress_argument(p)
    return p


def _data(name: str, n: int, kwargs: dict[str, Any]) -> Any:
    from .. import datasets

    if name not in DATASETS:
        raise SystemExit(f"sciml train: unknown data set {name!r} ({', '.join(DATASETS)})")
    return getattr(datasets, name)(n, **kwargs)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit code."""
    import sciml

    ns = _parser().parse_args(argv)
    device = distributed.local_device(torch.device(ns.device))
    checkpoint = ns.checkpoint or os.path.join("outputs", f"train-{ns.model}-{ns.data}.pt")
    with distributed.process_group(device) as (rank, size):
        data_kwargs = _key_values(ns.data_arg, "--data-arg")
        if rank == 0:  # generate (and cache) once; the others read the cache
            data = _data(ns.data, ns.n_train + ns.n_test, data_kwargs)
        distributed.barrier()
        if rank != 0:
            data = _data(ns.data, ns.n_train + ns.n_test, data_kwargs)
        train, test = data[: ns.n_train], data[ns.n_train:]
        torch.manual_seed(ns.seed)
        model = sciml.load("operator", ns.model)(in_channels=data.a.shape[1], out_channels=data.u.shape[1],
                                                 n_dims=data.a.ndim - 2, **_key_values(ns.model_arg, "--model-arg"))
        model = model.to(device)
        os.makedirs(os.path.dirname(os.path.abspath(checkpoint)), exist_ok=True)
        result = fit(model, train, test if ns.n_test else None, epochs=ns.epochs, batch_size=ns.batch_size,
                     lr=ns.lr, loss=ns.loss, schedule=ns.schedule, checkpoint=checkpoint, resume=ns.resume,
                     generator=torch.Generator().manual_seed(ns.seed), progress=ns.progress)
        if rank == 0:
            h = result.history
            test_error = evaluate(result.model, test) if ns.n_test else float("nan")
            print(f"{ns.model} on {ns.data}: {ns.n_train} train / {ns.n_test} test, {size} process(es), "
                  f"{len(h['epoch'])} epochs, train loss {h['train_loss'][-1]:.4g}, test rel. L2 {test_error:.4g}, "
                  f"{result.diagnostics['parameters']} parameters, {result.diagnostics['wall_time_s']:.1f} s; "
                  f"checkpoint {checkpoint}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
