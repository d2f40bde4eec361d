"""LightSB's training: the two objectives, the choice among warm starts, and the optimisation loop
with held-out early stopping."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from sciml.progress import progress_bar

from .data import TrainingData
from .potential import GaussianMixturePotential
from .settings import Settings

__all__ = ["Objective", "TrainingRun", "best_start", "train"]


def cosine_schedule(opt: torch.optim.Optimizer, total: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Cosine decay of each parameter group's lr from 1 to 1/100 of it over ``total`` steps."""
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: 0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * min(i, total) / total)))


def param_groups(cfg: Settings, potential: GaussianMixturePotential) -> list[dict[str, Any]]:
    """Adam parameter groups: the off-diagonal Cholesky entries use ``lr * chol_lr_scale``."""
    groups: list[dict[str, Any]] = [{"params": [potential.raw_log_alpha, potential.means, potential.log_scales]}]
    if potential.chol_lower is not None:
        # Adam moves each of the D (D - 1) / 2 off-diagonal entries by ~lr, i.e. L_k by
        # ~lr * D / sqrt(2) in Frobenius norm against |L_k| ~ sqrt(D): scale by 1 / sqrt(D)
        scale = cfg.chol_lr_scale if cfg.chol_lr_scale is not None else 1.0 / math.sqrt(potential.dim)
        groups.append({"params": [potential.chol_lower], "lr": cfg.lr * scale})
    return groups


def _short_fit(cfg: Settings, potential: GaussianMixturePotential, data: TrainingData,
               generator: torch.Generator | None) -> float:
    """Train a candidate start for ``start_steps`` Adam steps (cosine decay); its held-out loss."""
    opt = torch.optim.Adam(param_groups(cfg, potential), lr=cfg.lr, fused=True)
    sched = cosine_schedule(opt, cfg.start_steps)
    for _ in range(cfg.start_steps):
        loss = potential.lightsb_loss(*data.batch(cfg.batch_size, generator))
        if not torch.isfinite(loss):
            return math.inf
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    with torch.no_grad():
        return float(potential.lightsb_loss(data.val["x0"], data.val["x1"]))


def best_start(cfg: Settings, starts: list[Callable[[], GaussianMixturePotential]], data: TrainingData,
               generator: torch.Generator | None) -> tuple[GaussianMixturePotential, list[float]]:
    """Of the potentials the ``starts`` build (in order), each trained for ``start_steps`` Adam steps, the
    one with the lowest held-out loss, and all their held-out losses."""
    if not ("x0" in data.train and "x1" in data.train):
        raise ValueError("several starts need sample tensors x0 and x1")
    best, losses = None, []
    for build in starts:
        cand = build()
        losses.append(_short_fit(cfg, cand, data, generator))
        if best is None or losses[-1] < min(losses[:-1]):
            best = cand
    assert best is not None
    return best, losses


@dataclass
class Objective:
    """The training loss of ``potential`` on a batch ``(a, b)`` of p0 / p1 samples (pairs for matching).

    Matching draws its times and noise from ``generator`` unless ``aux = (t, xi)`` fixes them.
    """

    potential: GaussianMixturePotential
    matching: bool
    eps: float
    t_gap: float
    data: TrainingData
    generator: torch.Generator | None

    def __call__(self, a: Tensor, b: Tensor, aux: tuple[Tensor, Tensor] | None = None) -> Tensor:
        if not self.matching:
            return self.potential.lightsb_loss(a, b)
        t, xi = aux if aux is not None else self.data.times_and_noise(a.shape[0], 1 - self.t_gap, self.generator)
        tc = t[:, None]
        xt = tc * b + (1 - tc) * a + torch.sqrt(self.eps * tc * (1 - tc)) * xi
        # drift error (m - x_t)/(1-t) - (x1 - x_t)/(1-t) = (m - x1)/(1-t)
        err = (self.potential.posterior_mean(xt, t) - b) / (1 - tc)
        return 0.5 * (err * err).sum(-1).mean() / self.eps


@dataclass
class TrainingRun:
    """The state of one optimisation run: loss histories and the best held-out parameters."""

    history: list[float] = field(default_factory=list)
    val_history: list[float] = field(default_factory=list)
    best_val: float = math.inf
    best_state: dict[str, Tensor] | None = None
    best_step: int = 0
    bad: int = 0
    steps: int = 0
    stopped_early: bool = False
    flat: int = 0  # successive full-batch steps that left the loss unchanged

    def record(self, loss: float, full_batch: bool) -> None:
        if full_batch:
            flat = self.history and abs(loss - self.history[-1]) <= 1e-12 * max(1.0, abs(loss))
            self.flat = self.flat + 1 if flat else 0
        self.history.append(loss)

    def evaluate(self, v: float, step: int, potential: GaussianMixturePotential, patience: int | None) -> None:
        """Record the held-out loss ``v`` after ``step`` steps; keep the best parameters; stop on patience."""
        self.val_history.append(v)
        if v < self.best_val:
            self.best_val, self.best_step, self.bad = v, step, 0
            self.best_state = copy.deepcopy(potential.state_dict())
        else:
            self.bad += 1
        self.stopped_early = patience is not None and self.bad >= patience


def _optimiser(cfg: Settings, objective: Objective, generator: torch.Generator | None) -> tuple[
        torch.optim.Optimizer, Any, tuple[Tensor, Tensor] | None, tuple[Tensor, Tensor] | None]:
    """``(optimiser, lr schedule or None, full batch or None, its fixed matching times / noise or None)``."""
    potential, data = objective.potential, objective.data
    if cfg.optimizer == "adam":
        opt = torch.optim.Adam(param_groups(cfg, potential), lr=cfg.lr, fused=True)
        return opt, cosine_schedule(opt, cfg.num_steps) if cfg.lr_schedule == "cosine" else None, None, None
    lbfgs = torch.optim.LBFGS(potential.parameters(), lr=cfg.lr, max_iter=1, max_eval=25, history_size=50,
                              line_search_fn="strong_wolfe", tolerance_grad=0.0, tolerance_change=0.0)
    full = data.full_batch(cfg.batch_size, generator)
    aux = data.times_and_noise(full[0].shape[0], 1 - cfg.t_gap, generator) if objective.matching else None
    return lbfgs, None, full, aux


def _step(opt: torch.optim.Optimizer, objective: Objective, batch: Any, full: Any, full_aux: Any) -> Tensor:
    """One optimiser step; the loss before it (an Adam step is skipped on a non-finite loss)."""
    if full is not None:
        def closure() -> Tensor:
            opt.zero_grad(set_to_none=True)
            value = objective(full[0], full[1], full_aux)
            value.backward()
            return value
        return opt.step(closure).detach()  # type: ignore[union-attr]
    loss = objective(*batch())
    if torch.isfinite(loss):
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return loss


def train(cfg: Settings, potential: GaussianMixturePotential, data: TrainingData,
          generator: torch.Generator | None) -> tuple[TrainingRun, float]:
    """Train ``potential`` in place (best held-out parameters loaded at the end); the run and its wall time."""
    objective = Objective(potential, cfg.objective == "matching", cfg.eps, cfg.t_gap, data, generator)
    use_val = "x0" in data.val and "x1" in data.val  # a tensor side with val_fraction = 0 has no held-out part
    val_aux = None  # fixed times and noise for a deterministic held-out matching loss
    if use_val and objective.matching:
        val_aux = data.times_and_noise(data.val["x0"].shape[0], 1 - cfg.t_gap, generator)
    opt, sched, full, full_aux = _optimiser(cfg, objective, generator)
    run = TrainingRun()
    start = time.perf_counter()
    bar = progress_bar(range(cfg.num_steps), desc="LightSB", progress=cfg.progress)
    for step in bar:
        loss = _step(opt, objective, lambda: data.batch(cfg.batch_size, generator), full, full_aux)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"LightSB loss became non-finite at step {step}; lower lr or check the data scale")
        if sched is not None:
            sched.step()
        run.steps = step + 1
        run.record(float(loss.detach()), full is not None)
        last = step + 1 == cfg.num_steps or run.flat >= 5  # L-BFGS has converged to round-off
        if use_val and ((step + 1) % cfg.eval_every == 0 or last):
            with torch.no_grad():
                run.evaluate(float(objective(data.val["x0"], data.val["x1"], val_aux)), step + 1, potential,
                             cfg.patience)
            bar.set_postfix(loss=f"{run.history[-1]:.4g}", val=f"{run.val_history[-1]:.4g}")
        if run.stopped_early or run.flat >= 5:
            break
    bar.close()
    if run.best_state is not None:
        potential.load_state_dict(run.best_state)
    return run, time.perf_counter() - start
