"""The one trainer: ``fit(model, train, test)`` for operators (and any field-to-field ``nn.Module``).

One process or many under ``torchrun`` run the same code: each global batch is split across the
processes, each loss is scaled so that DistributedDataParallel's gradient average is the gradient of
the whole batch's mean loss, and every process draws the same shuffles from one seed, so a run on N
processes follows the single-process run (to floating-point summation order).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from ..io import load_module_state, load_state, reading
from ..progress import check_progress, progress_bar
from ..validation import (
    check_bool,
    check_choice,
    check_generator,
    check_module_dtype,
    check_nonnegative,
    check_positive,
    check_positive_int,
)
from . import distributed
from .losses import LOSSES
from .normalise import ChannelNormaliser, NormalisedOperator
from .schedules import SCHEDULES
from .state import (
    CHECKPOINT_KIND,
    CHECKPOINT_VERSION,
    TrainingState,
    check_checkpoint,
    check_schedule,
    fingerprint,
    finite_gradients,
)

__all__ = ["fit", "evaluate", "TrainResult", "count_parameters", "load_checkpoint_model", "DEFAULTS",
           "CHECKPOINT_KIND"]

#: What ``fit`` uses when neither the caller nor the model's ``training_defaults`` say otherwise.
DEFAULTS: dict[str, Any] = {"optimizer": "adam", "lr": 1e-3, "weight_decay": 1e-4, "schedule": "step", "loss": "l2"}


@dataclass
class TrainResult:
    """What :func:`fit` returns.

    Attributes:
        model: the trained model with its normalisers folded in (raw inputs -> raw outputs), eval mode.
        history: per epoch: ``epoch``, ``train_loss``, ``test_error`` (nan without test data), ``lr``,
            ``epoch_time_s`` (the training pass, without the test evaluation).
        test_error: relative L2 error on ``test`` after the last epoch (``None`` without test data).
        diagnostics: ``wall_time_s``, ``num_steps``, ``parameters``, ``world_size``, ``device``,
            ``resumed_from_epoch``.
    """

    model: NormalisedOperator
    history: dict[str, list[float]]
    test_error: float | None
    diagnostics: dict[str, Any] = field(default_factory=dict)


def count_parameters(model: nn.Module) -> int:
    """Real parameters of ``model``: a complex entry counts as two."""
    return sum(p.numel() * (2 if p.is_complex() else 1) for p in model.parameters())


def _pair(name: str, data: object) -> tuple[Tensor, Tensor]:
    """``(a, u)`` from a data set with ``.a`` / ``.u`` (``sciml.datasets.PDEData``) or an ``(a, u)`` pair: finite
    floating tensors of the same samples and grid, no target ``u`` identically zero."""
    if hasattr(data, "a") and hasattr(data, "u"):
        a, u = data.a, data.u  # type: ignore[attr-defined]
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        a, u = data
    else:
        raise TypeError(f"{name} must be a data set with .a and .u (sciml.datasets) or an (a, u) pair, "
                        f"got {type(data).__name__}")
    for part, x in (("a", a), ("u", u)):
        if not isinstance(x, Tensor) or not x.is_floating_point():
            raise TypeError(f"{name}.{part} must be a floating tensor, got {type(x).__name__}")
        if x.ndim < 3 or x.shape[0] == 0:
            raise ValueError(f"{name}.{part} must be (n, channels, *grid) with n >= 1, got {tuple(x.shape)}")
        if not torch.isfinite(x).all():
            bad = int((~torch.isfinite(x)).flatten(1).any(1).nonzero()[0])
            raise ValueError(f"{name}.{part} has non-finite values (first in sample {bad})")
    if a.shape[0] != u.shape[0] or a.shape[2:] != u.shape[2:]:
        raise ValueError(f"{name}.a {tuple(a.shape)} and {name}.u {tuple(u.shape)} must have the same number of "
                         "samples and the same grid")
    zero = (u.flatten(1) == 0).all(1).nonzero()[:, 0].tolist()
    if zero:  # every loss is relative: it divides by the target's norm
        raise ValueError(f"{name}.u is zero in sample(s) {zero[:10]}{' ...' if len(zero) > 10 else ''}: the "
                         "relative error divides by each target's norm; leave those samples out")
    return a, u


def _check_model(model: nn.Module, a: Tensor, u: Tensor, name: str) -> None:
    """``model`` an ``nn.Module`` whose channels, grid dimensions and parameter dtype fit the data ``name``."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    for attr, x, part in (("in_channels", a, "a"), ("out_channels", u, "u"), ("n_dims", a, "a")):
        want, got = getattr(model, attr, None), (x.ndim - 2 if attr == "n_dims" else x.shape[1])
        if want is not None and want != got:
            what = "grid dimensions" if attr == "n_dims" else "channels"
            raise ValueError(f"model has {attr}={want} but {name}.{part} has {got} {what} (shape {tuple(x.shape)})")
    check_module_dtype(f"{name}.a", a, model)


@dataclass
class _Settings:
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    loss: str
    optimizer: str
    schedule: str
    normalise: bool

    def describe(self) -> dict[str, Any]:
        return dict(self.__dict__)


_HISTORY = ("epoch", "train_loss", "test_error", "lr", "epoch_time_s")


def _settings(model: nn.Module, epochs: object, batch_size: object, given: dict[str, Any], normalise: object
              ) -> tuple[_Settings, Callable[[float], float]]:
    defaults = {**DEFAULTS, **getattr(model, "training_defaults", {})}
    chosen = {k: (defaults[k] if v is None else v) for k, v in given.items()}
    schedule = chosen["schedule"]
    if callable(schedule):
        check_schedule(schedule)
        factor, schedule_name = schedule, getattr(schedule, "__name__", "custom")
    else:
        schedule_name = check_choice("schedule", schedule, tuple(SCHEDULES))
        factor = SCHEDULES[schedule_name]
    settings = _Settings(
        epochs=check_positive_int("epochs", epochs), batch_size=check_positive_int("batch_size", batch_size),
        lr=check_positive("lr", chosen["lr"]), weight_decay=check_nonnegative("weight_decay", chosen["weight_decay"]),
        loss=check_choice("loss", chosen["loss"], tuple(LOSSES)),
        optimizer=check_choice("optimizer", chosen["optimizer"], ("adam", "adamw")), schedule=schedule_name,
        normalise=check_bool("normalise", normalise))
    return settings, factor


def _fingerprint(net: nn.Module) -> dict[str, Any]:
    return fingerprint(net.operator if isinstance(net, NormalisedOperator) else net, net)


def _batches(n: int, batch_size: int, seed: int, epoch: int, world_size: int) -> list[Tensor]:
    """This epoch's shuffled global batches (the same on every process); a last batch smaller than the
    number of processes is dropped."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 1_000_003 * epoch))
    return [b for b in perm.split(batch_size) if b.numel() >= world_size]


def evaluate(model: nn.Module, data: object, *, batch_size: int = 100, loss: str = "l2") -> float:
    """Mean per-sample relative error (``loss`` "l2" or "h1") of ``model`` on ``data`` (raw fields)."""
    a, u = _pair("data", data)
    fn = LOSSES[check_choice("loss", loss, tuple(LOSSES))]
    device = next(iter(model.parameters()), torch.empty(0)).device
    was_training = model.training
    model.eval()
    total = 0.0
    with torch.no_grad():
        for idx in torch.arange(a.shape[0]).split(check_positive_int("batch_size", batch_size)):
            pred = model(a[idx].to(device)).float()
            total += float(fn(pred, u[idx].to(device).float(), reduce=False).sum())
    model.train(was_training)
    return total / a.shape[0]


def _step(run: TrainingState, ddp: nn.Module, a: Tensor, u: Tensor, idx: Tensor, world: tuple[int, int], amp: bool,
          where: str) -> float:
    rank, size = world
    mine = idx[rank::size]
    loss_fn = LOSSES[run.settings["loss"]]
    with torch.autocast(device_type=a.device.type, dtype=torch.bfloat16, enabled=amp):
        pred = ddp(a[mine])
    per_sample = loss_fn(pred.float(), u[mine].float(), reduce=False)
    total = per_sample.sum()
    if not torch.isfinite(total):
        raise FloatingPointError(f"the training loss is not finite at {where} (lr {run.lr:.3g})"
                                 "; lower lr, or check the data and the model")
    run.opt.zero_grad(set_to_none=True)
    (total * size / idx.numel()).backward()
    if not finite_gradients(run.net):
        raise FloatingPointError(f"the gradient is not finite at {where} (lr {run.lr:.3g}), the step was not "
                                 "applied; check the model (a square root or log at 0, say) and the data")
    run.opt.step()
    run.sched.step()
    return float(total.detach())


def fit(
    model: nn.Module,
    train: object,
    test: object | None = None,
    *,
    epochs: int,
    batch_size: int = 20,
    lr: float | None = None,
    loss: str | None = None,
    optimizer: str | None = None,
    schedule: str | Callable[[float], float] | None = None,
    weight_decay: float | None = None,
    normalise: bool = True,
    checkpoint: str | os.PathLike[str] | None = None,
    resume: bool = False,
    generator: torch.Generator | None = None,
    progress: bool | None = None,
    amp: bool | None = None,
) -> TrainResult:
    """Train ``model`` (``(B, C_in, *grid) -> (B, C_out, *grid)``) on ``train`` = ``(a, u)`` fields.

    Args:
        model: an ``nn.Module`` (e.g. an ``Operator`` plugin); trained in place, on its own device.
        train, test: ``sciml.datasets`` data sets (``.a``, ``.u``) or ``(a, u)`` tensor pairs.
        epochs, batch_size: passes over ``train`` and the global batch (split across processes).
        lr, loss ("l2" | "h1" relative error), optimizer ("adam" | "adamw"), schedule ("step" | "cosine"
            | "onecycle" | "constant", or a function of the fraction of steps done -> a finite factor >= 0),
            weight_decay: ``None`` takes the model's ``training_defaults``, else :data:`DEFAULTS`.
        normalise: fit per-channel normalisers to ``train`` and fold them into the result.
        checkpoint: file written after every epoch (atomically; its folder must exist, checked up front);
            with ``resume=True`` an existing file
            is continued (same model and settings, else :class:`sciml.SaveFileError`) and the result is
            bit-for-bit that of an uninterrupted run.
        generator: seeds the shuffling (``None``: torch's global generator).
        progress: bar over epochs (``None``: when stderr is a terminal).
        amp: bfloat16 autocast, CUDA only (``None``: on for CUDA models).
    """
    a, u = _pair("train", train)
    test_pair = None if test is None else _pair("test", test)
    _check_model(model, a, u, "train")
    if test_pair is not None:
        _check_model(model, *test_pair, "test")
    settings, factor = _settings(model, epochs, batch_size, {"lr": lr, "loss": loss, "optimizer": optimizer,
                                                            "schedule": schedule, "weight_decay": weight_decay},
                                 normalise)
    generator, progress = check_generator("generator", generator), check_progress(progress)
    resume, checkpoint = check_bool("resume", resume), check_checkpoint(checkpoint, model)
    if resume and checkpoint is None:
        raise ValueError("resume=True needs a checkpoint path")
    device = distributed.local_device(next(iter(model.parameters()), torch.empty(0)).device)
    amp = device.type == "cuda" if amp is None else check_bool("amp", amp)
    if amp and device.type != "cuda":
        raise ValueError(f"amp=True needs a CUDA model, this one is on {device}")
    with distributed.process_group(device) as world:
        return _fit(model, (a, u), test_pair, settings, factor, device, world, generator, progress, amp,
                    checkpoint, resume)


def _fit(model: nn.Module, train: tuple[Tensor, Tensor], test: tuple[Tensor, Tensor] | None, settings: _Settings,
         factor: Callable[[float], float], device: torch.device, world: tuple[int, int],
         generator: torch.Generator | None, progress: bool | None, amp: bool, checkpoint: str | None,
         resume: bool) -> TrainResult:
    start = time.perf_counter()
    a, u = (x.to(device) for x in train)
    norms = (ChannelNormaliser.of(a), ChannelNormaliser.of(u)) if settings.normalise else (None, None)
    net = NormalisedOperator(model, *norms).to(device)
    batches_per_epoch = len(_batches(a.shape[0], settings.batch_size, 0, 0, world[1]))
    if batches_per_epoch == 0:
        raise ValueError(f"batch_size={settings.batch_size} with {world[1]} processes leaves no batch")
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    run = TrainingState(net, "fit", settings.describe(), _fingerprint(net), factor,
                        settings.epochs * batches_per_epoch, seed, _HISTORY)
    resumed_from = 0
    if resume and checkpoint is not None and os.path.exists(checkpoint):
        run.restore(checkpoint, device)
        resumed_from = run.done
    ddp = net
    if world[1] > 1:
        ids = [device.index] if device.type == "cuda" else None
        ddp = nn.parallel.DistributedDataParallel(net, device_ids=ids)
    net.train()
    bar = progress_bar(range(run.done, settings.epochs), total=settings.epochs, initial=run.done,
                       desc="fit", progress=progress)
    for epoch in bar:
        t0 = time.perf_counter()
        total = torch.zeros((), dtype=torch.float64)
        batches = _batches(a.shape[0], settings.batch_size, run.seed, epoch, world[1])
        for i, idx in enumerate(batches):
            total += _step(run, ddp, a, u, idx, world, amp, f"epoch {epoch}, batch {i}")
        n_used = sum(b.numel() for b in batches)
        train_loss = float(distributed.all_reduce_sum(total.to(device))) / n_used
        epoch_time = time.perf_counter() - t0
        test_error = math.nan if test is None else evaluate(net, test, batch_size=max(settings.batch_size, 1))
        net.train()
        run.done = epoch + 1
        run.record(epoch=run.done, train_loss=train_loss, test_error=test_error, lr=run.lr, epoch_time_s=epoch_time)
        bar.set_postfix(loss=f"{train_loss:.4g}", test=f"{test_error:.4g}")
        if checkpoint is not None and world[0] == 0:
            run.save(checkpoint)
        distributed.barrier()
    bar.close()
    net.eval()
    diagnostics = {"wall_time_s": time.perf_counter() - start, "num_steps": run.sched.last_epoch,
                   "parameters": count_parameters(model), "world_size": world[1], "device": str(device),
                   "resumed_from_epoch": resumed_from, "settings": settings.describe()}
    final = run.history["test_error"][-1] if test is not None and run.history["test_error"] else None
    return TrainResult(model=net, history=run.history, test_error=final, diagnostics=diagnostics)


def load_checkpoint_model(path: str | os.PathLike[str], model: nn.Module,
                          map_location: torch.device | str | None = None) -> NormalisedOperator:
    """The trained model of a :func:`fit` checkpoint, rebuilt around ``model`` (same class and shapes)."""
    _, payload = load_state(path, CHECKPOINT_KIND, (CHECKPOINT_VERSION,), map_location=map_location)
    with reading(path):
        state = payload["model"]
        norms = [ChannelNormaliser(state[f"{k}.mean"].numel()) if f"{k}.mean" in state else None
                 for k in ("inputs", "outputs")]
        net = NormalisedOperator(model, *norms)
        if payload["fingerprint"] != _fingerprint(net):
            raise ValueError(f"it holds a {payload['fingerprint']['model']} of other shapes than the model given")
        load_module_state(net, state)
    return net.eval()

