"""The state both trainers checkpoint: model, optimiser, learning-rate schedule, progress and history.

A checkpoint is written atomically and read back only for the same model (class and parameter
shapes) and the same settings, so a resumed run continues exactly where the interrupted one stopped.
"""

from __future__ import annotations

import io
import os
import pickle
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from ..io import load_module_state, load_state, reading, save_state
from ..validation import check_nonnegative

__all__ = ["TrainingState", "optimiser", "fingerprint", "check_checkpoint", "check_schedule", "schedule_factor",
           "finite_gradients", "CHECKPOINT_KIND", "CHECKPOINT_VERSION"]

CHECKPOINT_KIND = "training.Checkpoint"
CHECKPOINT_VERSION = 2  # 2: progress counted as "done" (epochs or steps), the trainer named


def optimiser(params: Any, name: str, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """Adam or AdamW (``name`` "adam" | "adamw")."""
    cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
    return cls(params, lr=lr, weight_decay=weight_decay)


def fingerprint(model: nn.Module, state_of: nn.Module | None = None) -> dict[str, Any]:
    """Class of ``model`` and the shapes of ``state_of``'s tensors (default ``model``): what a checkpoint
    must match. A non-tensor entry (extra state from ``get_extra_state``, or neuraloperator's
    ``_metadata``: its constructor arguments) counts by its type name."""
    held = model if state_of is None else state_of
    return {"model": f"{type(model).__module__}.{type(model).__qualname__}",
            "parameters": {k: list(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
                           for k, v in held.state_dict().items()}}


def check_checkpoint(checkpoint: object, model: nn.Module) -> str | None:
    """``checkpoint`` as a str (``None`` stays ``None``), checked before any training: a path that is not a
    folder, in a folder that exists (on the writing rank, 0), for a ``model`` whose state a checkpoint
    can hold (:func:`_check_restorable`)."""
    if checkpoint is None:
        return None
    _check_restorable(model)
    if not isinstance(checkpoint, (str, os.PathLike)):
        raise TypeError(f"checkpoint must be a str or os.PathLike path or None, got {type(checkpoint).__name__}")
    path = os.fsdecode(checkpoint)
    if os.environ.get("RANK", "0") != "0":  # only rank 0 writes it: another node need not see its folder
        return path
    if os.path.isdir(path):
        raise IsADirectoryError(f"checkpoint={path!r} is a directory, not a file to write")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise FileNotFoundError(f"checkpoint={path!r}: the folder {parent!r} does not exist")
    return path


def _check_restorable(model: nn.Module) -> None:
    """The non-tensor entries of ``model``'s state dict (extra state) must be plain values, which
    checkpoints are read back with (``torch.load(weights_only=True)``); ``ValueError`` otherwise."""
    extra = {k: v for k, v in model.state_dict().items() if not isinstance(v, torch.Tensor)}
    if not extra:
        return
    buffer = io.BytesIO()
    try:
        torch.save(extra, buffer)
        buffer.seek(0)
        torch.load(buffer, weights_only=True)
    except (pickle.PickleError, AttributeError, TypeError) as exc:
        raise ValueError(f"checkpoint: the model's state dict holds extra state ({', '.join(map(repr, extra))}) "
                         "with objects other than tensors and plain values (classes or functions: neuraloperator's "
                         "models keep their constructor arguments there), which a checkpoint cannot read back "
                         "safely; train without a checkpoint, or make get_extra_state return plain values") from exc


def schedule_factor(schedule: Callable[[float], float], t: float, where: str) -> float:
    """``schedule(t)`` as a float, else ``TypeError`` / ``ValueError`` naming ``schedule`` and ``where``:
    a learning-rate factor must be a finite real >= 0."""
    value = schedule(t)
    try:
        return check_nonnegative("schedule's factor", value)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{exc} ({where}, t = {t:.4g})") from None


def check_schedule(schedule: Callable[[float], float]) -> None:
    """Call a custom ``schedule`` at ``t = 0`` before any work; its failure is a ``TypeError`` naming it."""
    try:
        schedule(0.0)
    except Exception as exc:
        raise TypeError(f"schedule must be a function of the fraction of steps done (a float in [0, 1]) returning "
                        f"a factor of lr; schedule(0.0) raised {type(exc).__name__}: {exc}") from exc
    schedule_factor(schedule, 0.0, "at the start")


def finite_gradients(net: nn.Module) -> bool:
    """Whether every gradient of ``net`` is finite, before the optimiser applies it (one fused norm: a NaN /
    inf gradient would leave NaN weights in the caller's model)."""
    grads = [p.grad for p in net.parameters() if p.grad is not None]
    return not grads or bool(torch.isfinite(torch.nn.utils.get_total_norm(grads, foreach=True)))


class TrainingState:
    """Optimiser, ``LambdaLR`` schedule (stepped per optimiser step over ``total_steps``; every factor
    checked by :func:`schedule_factor`), ``done``
    (epochs or steps finished), ``seed`` and ``history`` of one training run of ``net``."""

    def __init__(self, net: nn.Module, trainer: str, settings: dict[str, Any], fingerprint: dict[str, Any],
                 factor: Callable[[float], float], total_steps: int, seed: int, history_keys: Sequence[str]) -> None:
        self.net, self.trainer, self.settings, self.fingerprint, self.seed = net, trainer, settings, fingerprint, seed
        self.opt = optimiser(net.parameters(), settings["optimizer"], settings["lr"], settings["weight_decay"])
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, lambda step: schedule_factor(factor, step / total_steps, f"at step {step}"))
        self.history: dict[str, list[float]] = {k: [] for k in history_keys}
        self.done = 0

    @property
    def lr(self) -> float:
        return float(self.opt.param_groups[0]["lr"])

    def record(self, **values: float) -> None:
        for key, value in values.items():
            self.history[key].append(float(value))

    def save(self, path: str) -> None:
        payload = {"model": self.net.state_dict(), "optimizer": self.opt.state_dict(),
                   "scheduler": self.sched.state_dict(), "done": self.done, "seed": self.seed,
                   "history": self.history, "trainer": self.trainer, "settings": self.settings,
                   "fingerprint": self.fingerprint}
        tmp = f"{path}.tmp{os.getpid()}"
        save_state(tmp, CHECKPOINT_KIND, CHECKPOINT_VERSION, payload)
        os.replace(tmp, path)

    def restore(self, path: str, device: torch.device) -> None:
        _, payload = load_state(path, CHECKPOINT_KIND, (CHECKPOINT_VERSION,), map_location=device)
        with reading(path):
            if payload["trainer"] != self.trainer:
                raise ValueError(f"it was written by {payload['trainer']}, not {self.trainer}")
            if payload["fingerprint"] != self.fingerprint:
                raise ValueError(f"it was written for another model ({payload['fingerprint']['model']}, or other "
                                 "parameter shapes) than the one given")
            diff = {k: (v, payload["settings"].get(k)) for k, v in self.settings.items()
                    if payload["settings"].get(k) != v}
            if diff:
                raise ValueError("it was written with other settings (given, saved): "
                                 + ", ".join(f"{k}={a!r} vs {b!r}" for k, (a, b) in diff.items()))
            load_module_state(self.net, payload["model"])
            self.opt.load_state_dict(payload["optimizer"])
            self.sched.load_state_dict(payload["scheduler"])
            self.done, self.seed, self.history = int(payload["done"]), int(payload["seed"]), payload["history"]
