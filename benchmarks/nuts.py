"""pyro NUTS with counted potential evaluations: the anchor of the sampler benchmarks and examples."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

__all__ = ["NutsRun", "counted_nuts"]


@dataclass
class NutsRun:
    """One NUTS chain: ``draws`` (num_draws, dim), ``n_grad_evals`` (potential-and-gradient calls,
    warm-up included) and the wall time in seconds."""

    draws: Tensor
    n_grad_evals: int
    seconds: float


def counted_nuts(target: Any, x0: Tensor, *, warmup: int, draws: int, seed: int | None,
                 max_tree_depth: int = 10) -> NutsRun:
    """Run ``pyro.infer.NUTS`` (step size and diagonal mass adapted in warm-up) on ``target.log_prob``
    from ``x0`` (dim,), after ``torch.manual_seed(seed)`` (``None``: the global generator as it is);
    every potential evaluation is counted."""
    from pyro.infer import MCMC, NUTS

    count = [0]

    def potential(params: dict[str, Tensor]) -> Tensor:
        count[0] += 1
        return -target.log_prob(params["x"].unsqueeze(0))[0]

    if seed is not None:
        torch.manual_seed(seed)
    t0 = time.perf_counter()
    kernel = NUTS(potential_fn=potential, adapt_step_size=True, adapt_mass_matrix=True,
                  max_tree_depth=max_tree_depth)
    mc = MCMC(kernel, num_samples=draws, warmup_steps=warmup, initial_params={"x": x0}, disable_progbar=True)
    mc.run()
    return NutsRun(mc.get_samples()["x"].reshape(draws, -1), count[0], time.perf_counter() - t0)
