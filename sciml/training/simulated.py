"""Training from simulation: every step draws a fresh batch and minimises a loss on it.

``fit_simulated(model, loss, num_steps=..., batch_size=...)`` is the trainer for amortised surrogates
(there is no fixed data set, so no epochs): ``loss(model, batch_size, generator)`` simulates
``batch_size`` problems with ``generator`` (a CPU generator; the loss moves its batch to the model's
device) and returns their mean loss. Step ``t`` of process ``r``
draws from its own generator seeded by ``(seed, t, r)``, so a resumed run is bit-for-bit the
uninterrupted one. Under ``torchrun`` the batch is split across the processes (each simulates its
share), every process starts from rank 0's parameters and the gradients are averaged by one
all-reduce per step (so the loss may call the model any number of times), with the same code as one
process.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from ..progress import check_progress, progress_bar
from ..validation import (
    check_bool,
    check_choice,
    check_generator,
    check_nonnegative,
    check_positive,
    check_positive_int,
)
from . import distributed
from .schedules import SCHEDULES, cosine
from .state import TrainingState, check_checkpoint, check_schedule, fingerprint, finite_gradients

__all__ = ["fit_simulated", "SimulationResult"]

#: Loss function: ``loss(model, batch_size, generator) -> scalar tensor`` (mean over the batch).
LossFn = Callable[[nn.Module, int, torch.Generator], Tensor]


@dataclass
class SimulationResult:
    """What :func:`fit_simulated` returns.

    Attributes:
        model: the trained model (the one given, trained in place), eval mode.
        history: per step: ``step``, ``loss`` (this process's batch), ``lr``.
        diagnostics: ``wall_time_s``, ``num_steps``, ``loss_history``, ``world_size``, ``device``,
            ``resumed_from_step``, ``settings``.
    """

    model: nn.Module
    history: dict[str, list[float]]
    diagnostics: dict[str, Any] = field(default_factory=dict)


def _step_generator(seed: int, step: int, rank: int) -> torch.Generator:
    """The (CPU) generator of step ``step`` on process ``rank``."""
    return torch.Generator().manual_seed((seed + 1_000_003 * step + 7_919 * rank) % 2**63)


def fit_simulated(
    model: nn.Module,
    loss: LossFn,
    *,
    num_steps: int,
    batch_size: int,
    lr: float = 1e-3,
    weight_decay: float = 1e-2,
    optimizer: str = "adamw",
    schedule: str | Callable[[float], float] = "cosine",
    warmup: float = 0.05,
    grad_clip: float | None = 1.0,
    checkpoint: str | os.PathLike[str] | None = None,
    checkpoint_every: int = 100,
    resume: bool = False,
    generator: torch.Generator | None = None,
    progress: bool | None = None,
) -> SimulationResult:
    """Train ``model`` for ``num_steps`` optimiser steps on fresh simulated batches of ``batch_size``.

    Args:
        model: an ``nn.Module`` on its device (trained in place).
        loss: ``loss(model, batch_size, generator)`` -> mean loss of a fresh simulated batch.
        lr: the optimiser's learning rate.
        weight_decay: the optimiser's weight decay.
        optimizer: "adamw" | "adam".
        schedule: "cosine" (with a linear warm-up over the first ``warmup`` fraction of the steps),
            any other :data:`SCHEDULES` name, or a function of the fraction done -> factor.
        grad_clip: max gradient norm (``None``: off).
        checkpoint: file written every ``checkpoint_every`` steps and at the end (atomically); with
            ``resume=True`` an existing file is continued (same model and settings, else
            :class:`sciml.SaveFileError`).
        generator: seeds the run (``None``: torch's global generator).
        progress: bar over steps.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not callable(loss):
        raise TypeError(f"loss must be callable as loss(model, batch_size, generator), got {type(loss).__name__}")
    warmup = check_nonnegative("warmup", warmup)
    if warmup >= 1:
        raise ValueError(f"warmup is a fraction of the steps in [0, 1), got {warmup}")
    if callable(schedule):
        check_schedule(schedule)
        factor, schedule_name = schedule, getattr(schedule, "__name__", "custom")
    else:
        schedule_name = check_choice("schedule", schedule, tuple(SCHEDULES))
        factor = functools.partial(cosine, warmup=warmup) if schedule_name == "cosine" else SCHEDULES[schedule_name]
    settings = {"num_steps": check_positive_int("num_steps", num_steps),
                "batch_size": check_positive_int("batch_size", batch_size), "lr": check_positive("lr", lr),
                "weight_decay": check_nonnegative("weight_decay", weight_decay),
                "optimizer": check_choice("optimizer", optimizer, ("adamw", "adam")), "schedule": schedule_name,
                "warmup": warmup, "grad_clip": None if grad_clip is None else check_positive("grad_clip", grad_clip)}
    every = check_positive_int("checkpoint_every", checkpoint_every)
    generator, progress = check_generator("generator", generator), check_progress(progress)
    path = check_checkpoint(checkpoint, model)
    if check_bool("resume", resume) and path is None:
        raise ValueError("resume=True needs a checkpoint path")
    device = distributed.local_device(next(iter(model.parameters()), torch.empty(0)).device)
    with distributed.process_group(device) as world:
        if settings["batch_size"] < world[1]:
            raise ValueError(f"batch_size={batch_size} is smaller than the number of processes ({world[1]})")
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        run = TrainingState(model, "fit_simulated", settings, fingerprint(model), factor, settings["num_steps"],
                            seed, ("step", "loss", "lr"))
        resumed_from = 0
        if resume and path is not None and os.path.exists(path):
            run.restore(path, device)
            resumed_from = run.done
        return _train(run, loss, device, world, every, path, progress, resumed_from)


def _train(run: TrainingState, loss: LossFn, device: torch.device, world: tuple[int, int], every: int,
           path: str | None, progress: bool | None, resumed_from: int) -> SimulationResult:
    start = time.perf_counter()
    rank, size = world
    total, clip = run.settings["num_steps"], run.settings["grad_clip"]
    share = len(range(rank, run.settings["batch_size"], size))  # this process's part of the batch
    net: nn.Module = run.net
    distributed.broadcast_module(net)
    net.train()
    bar = progress_bar(range(run.done, total), total=total, initial=run.done, desc="fit", progress=progress)
    for step in bar:
        value = loss(net, share, _step_generator(run.seed, step, rank))
        if not isinstance(value, Tensor) or value.numel() != 1:
            raise TypeError(f"loss must return a scalar tensor, got {type(value).__name__}")
        if not torch.isfinite(value):
            raise FloatingPointError(f"the training loss is not finite at step {step} (lr {run.lr:.3g}); lower lr, "
                                     "or check the simulator and the model")
        run.opt.zero_grad(set_to_none=True)
        (value * share * size / run.settings["batch_size"]).backward()
        distributed.average_gradients(net)
        if not finite_gradients(net):
            raise FloatingPointError(f"the gradient is not finite at step {step} (lr {run.lr:.3g}), the step was "
                                     "not applied; check the simulator and the model")
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(run.net.parameters(), clip)
        run.opt.step()
        run.sched.step()
        run.done = step + 1
        run.record(step=run.done, loss=float(value.detach()), lr=run.lr)
        bar.set_postfix(loss=f"{float(value.detach()):.4g}")
        if path is not None and rank == 0 and (run.done % every == 0 or run.done == total):
            run.save(path)
    bar.close()
    distributed.barrier()
    run.net.eval()
    diagnostics = {"wall_time_s": time.perf_counter() - start, "num_steps": run.done,
                   "loss_history": list(run.history["loss"]), "world_size": size, "device": str(device),
                   "resumed_from_step": resumed_from, "settings": dict(run.settings)}
    return SimulationResult(model=run.net, history=run.history, diagnostics=diagnostics)
