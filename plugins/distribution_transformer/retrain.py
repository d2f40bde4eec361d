"""Retrain a shipped distribution-transformer model: ``python -m sciml_plugins.distribution_transformer.retrain
TASK [--out FILE] [--checkpoint FILE]`` (also under ``torchrun``). ``RECIPES`` holds the exact settings
of each shipped file; with the defaults the run reproduces it (on the same CPU and thread count)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from sciml.progress import add_progress_argument
from sciml.training import world

from .plugin import DistributionTransformer

__all__ = ["RECIPES", "main"]

#: Training settings of the shipped models (model configuration: the paper's defaults). ``seed``
#: seeds the initialisation (torch's global generator) and the simulations.
RECIPES: dict[str, dict] = {
    "gmm-gaussian": {"num_steps": 6000, "batch_size": 500, "lr": 3e-3, "seed": 0},
    "normal-variance": {"num_steps": 3000, "batch_size": 500, "lr": 3e-3, "seed": 0},
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sciml_plugins.distribution_transformer.retrain",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("task", choices=sorted(RECIPES))
    parser.add_argument("--out", default=None, help="file to write (default: the shipped file, in place)")
    parser.add_argument("--checkpoint", default=None, help="checkpoint file, resumed when it exists")
    parser.add_argument("--num-steps", type=int, default=None, help="override the recipe (a different model)")
    add_progress_argument(parser)
    ns = parser.parse_args(argv)
    recipe = dict(RECIPES[ns.task])
    if ns.num_steps is not None:
        recipe["num_steps"] = ns.num_steps
    seed = recipe.pop("seed")
    out = Path(ns.out) if ns.out else Path(__file__).parent / "pretrained" / f"{ns.task}.pt"
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    model = DistributionTransformer(ns.task).fit(**recipe, checkpoint=ns.checkpoint,
                                          resume=ns.checkpoint is not None,
                                          generator=torch.Generator().manual_seed(seed), progress=ns.progress)
    if world()[0] == 0:
        model.save(out)
        losses = model.diagnostics["loss_history"]
        tail = sum(losses[-100:]) / len(losses[-100:])
        print(f"{ns.task}: {recipe['num_steps']} steps in {time.perf_counter() - t0:.0f} s, mean loss of the last "
              f"100 steps {tail:.4f}; wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
