"""What every flow plugin shares: the fitted-density type, the sampler base and the reverse-KL fit.

* :class:`FlowDistribution`: a fitted flow as a torch ``Distribution`` on ``R^d`` (``sample``,
  ``rsample`` where reparameterisable, ``log_prob`` at any ``(..., d)`` point, ``elbo``).
* :class:`FlowSampler`: ``fit(target) -> FlowDistribution`` and ``sample(target, n) -> Samples``.
* :func:`fit_reverse_kl`: Adam on ``E_q[log q(x) - log p(x)]`` with reparameterised draws, the
  target's gradient entering through :class:`TargetLogProb` (any target, counted per point).
"""

from __future__ import annotations

import abc
import math
import os
import time
from typing import Any

import torch
from torch import Tensor, nn
from torch.distributions import Distribution, constraints

from sciml.interfaces import Sampler, Samples
from sciml.io import SaveFileError
from sciml.progress import check_progress, progress_bar
from sciml.targets import CountedTarget, Target, TargetError, as_target
from sciml.validation import (
    check_generator,
    check_nonnegative_int,
    check_positive,
    check_positive_int,
    check_tensor,
)

__all__ = ["FlowDistribution", "ModuleFlowDistribution", "FlowSampler", "ReverseKLFlow", "TargetLogProb", "fit_reverse_kl",
           "check_finite_target", "flat_points"]


class TargetLogProb(torch.autograd.Function):
    """``log p(x)`` with ``d log p / dx`` from ``target.log_prob_and_grad`` (one counted call per batch)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, target: CountedTarget) -> Tensor:  # noqa: D102
        lp, g = target.log_prob_and_grad(x.detach())
        ctx.save_for_backward(g)
        return lp

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor, None]:  # noqa: D102
        (g,) = ctx.saved_tensors
        return grad_out[:, None] * g, None


class NonFiniteTargetError(TargetError):
    """The target's value (or gradient) was not finite at ``point`` (a list), where the flow needed it."""

    point: list[float]


def check_finite_target(name: str, step: int, x: Tensor, lp: Tensor, what: str = "target log-density") -> None:
    """Raise :class:`TargetError` naming the step and the first point where ``lp`` is not finite."""
    bad = ~torch.isfinite(lp)
    if bool(bad.any()):
        i = int(bad.nonzero()[0])
        err = NonFiniteTargetError(
            f"{name}: the {what} is {float(lp[i])} at step {step}, point {x[i].tolist()} "
            f"({int(bad.sum())} of {x.shape[0]} points of the batch); reverse-KL fitting needs a finite "
            "log-density wherever the flow puts mass (a target defined on part of R^d must be written "
            "on an unconstrained space)", sampler=name, step=step, chains=None)
        err.point = x[i].tolist()
        raise err


def flat_points(value: Any, target: Target) -> Tensor:
    """``value`` ``(..., target.dim)`` checked finite, as ``(n, target.dim)`` in the target's dtype and device."""
    if not isinstance(value, Tensor):
        raise TypeError(f"value must be a torch.Tensor, got {type(value).__name__}")
    d = target.dim
    if value.ndim == 0 or value.shape[-1] != d:
        raise ValueError(f"value must have shape (..., {d}), got {tuple(value.shape)}")
    if not (value.is_floating_point() or value.dtype in (torch.int32, torch.int64)):
        raise TypeError(f"value must be a real tensor, got {value.dtype}")
    flat = value.reshape(-1, d).to(dtype=target.dtype, device=target.device)
    check_tensor("value", flat)
    return flat


class FlowDistribution(Distribution):
    """A fitted flow ``q`` on ``R^d`` (batch shape ``()``, event shape ``(d,)``), in the target's dtype.

    Subclasses implement ``_sample_and_log_prob(n, generator, reparam)`` and ``_log_prob(x (n, d))``.
    ``diagnostics`` holds the fit's figures (``loss_history``, ``n_evals``, ``n_grad_evals``, ...).
    """

    arg_constraints: dict[str, Any] = {}
    support = constraints.real_vector

    def __init__(self, target: Target, name: str) -> None:
        self.target, self.name = target, name
        self.diagnostics: dict[str, Any] = {}
        super().__init__(torch.Size(), torch.Size([target.dim]), validate_args=False)

    @abc.abstractmethod
    def _sample_and_log_prob(self, n: int, generator: torch.Generator | None, reparam: bool) -> tuple[Tensor, Tensor]:
        """``(x (n, d), log q(x) (n,))``; differentiable in the flow's parameters when ``reparam``."""

    @abc.abstractmethod
    def _log_prob(self, x: Tensor) -> Tensor:
        """``log q(x)`` for ``x`` of shape ``(n, d)`` (finite, target dtype)."""

    def _count(self, sample_shape: torch.Size | tuple[int, ...]) -> tuple[torch.Size, int]:
        if not isinstance(sample_shape, (tuple, list, torch.Size)) or not all(
                isinstance(s, int) and not isinstance(s, bool) for s in sample_shape):
            raise TypeError(f"sample_shape must be a tuple of ints such as (n,), got {sample_shape!r}")
        if any(s < 0 for s in sample_shape):
            raise ValueError(f"sample_shape must have non-negative sizes, got {tuple(sample_shape)}")
        shape = torch.Size(sample_shape)
        return shape, math.prod(shape)

    def sample(self, sample_shape: torch.Size | tuple[int, ...] = (), *,
               generator: torch.Generator | None = None) -> Tensor:
        """Draws of shape ``sample_shape + (d,)``, no graph."""
        with torch.no_grad():
            return self.rsample(sample_shape, generator=generator)

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = (), *,
                generator: torch.Generator | None = None) -> Tensor:
        """Reparameterised draws of shape ``sample_shape + (d,)``."""
        check_generator("generator", generator)
        shape, n = self._count(sample_shape)
        x, _ = self._sample_and_log_prob(max(n, 1), generator, True)
        return x[:n].reshape(*shape, self.target.dim)

    def sample_and_log_prob(self, n: int, *, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """``n`` draws ``(n, d)`` and their log-densities ``(n,)``, computed together (no graph)."""
        n = check_positive_int("n", n)
        check_generator("generator", generator)
        with torch.no_grad():
            return self._sample_and_log_prob(n, generator, False)

    def log_prob(self, value: Tensor) -> Tensor:
        """``log q(value)`` for ``value`` of shape ``(..., d)`` -> ``(...)``; any finite point (no graph)."""
        flat = flat_points(value, self.target)
        if flat.shape[0] == 0:
            return flat.new_zeros(value.shape[:-1])
        with torch.no_grad():
            return self._log_prob(flat).reshape(value.shape[:-1])

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the fitted flow (architecture, parameters, scalar diagnostics; not the target) to ``path``."""
        from .saving import save_flow

        save_flow(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str], target: Any,
             map_location: torch.device | str | None = None) -> FlowDistribution:
        """Read a flow written by :meth:`save`, for the ``target`` it was fitted to (any form
        :func:`sciml.targets.as_target` accepts; its dtype and device are the flow's)."""
        from .saving import load_flow

        q = load_flow(path, target, map_location)
        if not isinstance(q, cls):
            raise SaveFileError(f"{os.fspath(path)!r} holds a {type(q).__name__} ({q.name}), not a {cls.__name__}")
        return q

    def elbo(self, num_samples: int = 1000, *, generator: torch.Generator | None = None) -> float:
        """Monte Carlo ELBO ``E_q[log p(x) - log q(x)]`` (nats; ``<= log Z`` of the target)."""
        x, lq = self.sample_and_log_prob(num_samples, generator=generator)
        with torch.no_grad():
            return float((self.target.log_prob(x) - lq).mean())


class ModuleFlowDistribution(FlowDistribution):
    """A :class:`FlowDistribution` around a module with ``rsample_and_log_prob(n, generator)`` and ``log_prob(x)``."""

    has_rsample = True

    def __init__(self, module: nn.Module, target: Target, name: str) -> None:
        self.module = module
        super().__init__(target, name)

    def _sample_and_log_prob(self, n: int, generator: torch.Generator | None, reparam: bool) -> tuple[Tensor, Tensor]:
        return self.module.rsample_and_log_prob(n, generator)

    def _log_prob(self, x: Tensor) -> Tensor:
        return self.module.log_prob(x)


class FlowSampler(Sampler):
    """A flow plugin: ``fit(target)`` returns a :class:`FlowDistribution`; ``sample`` fits, then draws."""

    @abc.abstractmethod
    def fit(self, target: Any, *, generator: torch.Generator | None = None) -> FlowDistribution:
        """Fit the flow to ``target`` (anything :func:`sciml.targets.as_target` accepts)."""

    def sample(self, target: Any, num_samples: int, *, generator: torch.Generator | None = None) -> Samples:
        """Fit to ``target``, then draw ``num_samples`` i.i.d. points ``(num_samples, d)``.

        The evaluation counts are the fit's (drawing from the flow evaluates no target);
        ``diagnostics`` holds the fit's (``loss_history``, ``elbo``, ``wall_time_s``, ...).
        """
        num_samples = check_positive_int("num_samples", num_samples)
        q = self.fit(target, generator=generator)
        x = q.sample((num_samples,), generator=generator)
        return Samples(x=x, n_evals=int(q.diagnostics["n_evals"]), n_grad_evals=int(q.diagnostics["n_grad_evals"]),
                       diagnostics=dict(q.diagnostics))


class ReverseKLFlow(FlowSampler):
    """A flow fitted by :func:`fit_reverse_kl`; subclasses build the module and wrap it as a distribution.

    ``anneal_steps``: steps of the annealed free energy (``None``: half of ``num_steps``; 0: none).
    """

    def __init__(self, *, num_steps: int, batch_size: int, lr: float, anneal_steps: int | None,
                 progress: bool | None) -> None:
        self.num_steps = check_positive_int("num_steps", num_steps)
        self.anneal_steps = (self.num_steps // 2 if anneal_steps is None
                             else check_nonnegative_int("anneal_steps", anneal_steps))
        if self.anneal_steps >= self.num_steps:
            raise ValueError(f"anneal_steps must be < num_steps = {self.num_steps}, got {anneal_steps}")
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.lr = check_positive("lr", lr)
        self.progress = check_progress(progress)

    @abc.abstractmethod
    def _module(self, target: Target, generator: torch.Generator | None) -> nn.Module:
        """The untrained flow: a module with ``rsample_and_log_prob(n, generator)`` and ``log_prob(x)``."""

    def fit(self, target: Any, *, generator: torch.Generator | None = None) -> FlowDistribution:
        """Fit by reverse KL; ``diagnostics``: ``loss_history`` (per step, nats), ``elbo`` (the mean
        of the last 10 % of steps' negative losses), ``num_steps``, ``n_evals``, ``n_grad_evals``, ``wall_time_s``."""
        check_generator("generator", generator)
        tgt = as_target(target)
        start = time.perf_counter()
        module = self._module(tgt, generator)
        counted = CountedTarget(tgt, self.name, 0, self.num_steps, attribute=False)
        history = fit_reverse_kl(module, counted, num_steps=self.num_steps, batch_size=self.batch_size,
                                 lr=self.lr, anneal_steps=self.anneal_steps, generator=generator, progress=self.progress, name=self.name)
        q = ModuleFlowDistribution(module, tgt, self.name)
        tail = history[-max(1, len(history) // 10):]
        q.diagnostics.update(loss_history=history, elbo=-sum(tail) / len(tail), num_steps=self.num_steps,
                             n_evals=counted.n_evals, n_grad_evals=counted.n_grad_evals,
                             wall_time_s=time.perf_counter() - start)
        return q


def fit_reverse_kl(module: nn.Module, target: CountedTarget, *, num_steps: int, batch_size: int, lr: float,
                   anneal_steps: int, generator: torch.Generator | None, progress: bool | None,
                   name: str) -> list[float]:
    """Adam (cosine-decayed ``lr``, gradient norm clipped at 10) on ``mean(log q(x) - beta_t log p(x))``.

    ``beta_t = min(1, 0.01 + t / anneal_steps)`` (Rezende and Mohamed's annealed free energy; 1
    throughout when ``anneal_steps = 0``) lets the flow spread over every mode before it contracts.

    ``module.rsample_and_log_prob(batch_size, generator)`` gives reparameterised draws and their
    log-densities. Returns the loss per step (nats, at ``beta = 1``). Raises :class:`TargetError` at the first step
    whose draws or target values are not finite (naming the step and the point).
    """
    params = [p for p in module.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, num_steps)
    history: list[float] = []
    for step in progress_bar(range(num_steps), desc=name, progress=progress):
        target.steps_done = step
        x, lq = module.rsample_and_log_prob(batch_size, generator)
        if not bool(torch.isfinite(x).all() & torch.isfinite(lq).all()):
            raise FloatingPointError(f"{name}: the flow's draws became non-finite at step {step} of {num_steps} "
                                     f"(lr = {lr} may be too large for this target)")
        lp = TargetLogProb.apply(x, target)
        check_finite_target(name, step, x.detach(), lp.detach())
        beta = min(1.0, 0.01 + step / anneal_steps) if anneal_steps else 1.0
        loss = (lq - lp).mean()
        opt.zero_grad(set_to_none=True)
        (lq - beta * lp).mean().backward()
        torch.nn.utils.clip_grad_norm_(params, 10.0)
        opt.step()
        sched.step()
        history.append(loss.item())
    target.steps_done = num_steps
    return history
