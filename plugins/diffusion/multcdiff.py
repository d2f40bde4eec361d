"""MultCDiff: multiscale controlled reverse-OU diffusion (Cordero-Encinar, Duncan, Reich, Akyildiz 2025).

Forward noising ``dX = -X ds + sqrt(2) dB`` from ``X_0 ~ pi`` has marginals
``q_s = int N(e^{-s} y, sigma_s^2 I) pi(dy)``, ``sigma_s^2 = 1 - e^{-2s}``. By Tweedie's formula
``grad log q_s(x) = (e^{-s} E[Y | X_s = x] - x) / sigma_s^2`` where the posterior is
``p_s(y | x) ~ pi(y) N(x; e^{-s} y, sigma_s^2 I)``. The reverse process (time ``t = T - s``)

    dX = [X + 2 (e^{-s} Y - X) / sigma_s^2] dt + sqrt(2) dB            (slow)
    dY = eps^{-1} [grad log pi(Y) + e^{-s} (X - e^{-s} Y) / sigma_s^2] dt + sqrt(2/eps) dB'   (fast)

replaces the posterior mean by the fast state ``Y``, which runs Langevin dynamics on
``p_s(. | X)`` ``1/eps`` times faster. Both processes are stiff as ``s -> 0``
(``sigma_s^2 -> 0``): the slow one is integrated with the exponential integrator (its drift is
linear in ``X`` given ``Y``), the fast one with the exponential integrator on its Gaussian part
(``integrator="exponential"``, one gradient per step) or with SK-ROCK (``integrator="srock"``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from sciml.validation import check_nonnegative, check_positive, check_positive_int

from ._common import CountedTarget, DiffusionSamplerBase, check_choice, randn_like
from .integrators import ou_exponential_step, skrock_step
from .schedules import annealing_schedule

__all__ = ["MultCDiff"]


class MultCDiff(DiffusionSamplerBase):
    """Multiscale controlled diffusion: reverse OU process whose score comes from a fast Langevin state.

    The diffusion time ``s`` runs from ``horizon`` down to ``s_min`` over ``num_steps`` steps
    (``schedule`` sets the spacing of ``s``: ``"geometric"`` refines near ``s = 0`` where the
    dynamics is stiff); optionally ``final_steps`` steps of plain Langevin dynamics on the target
    follow. Returns the slow states.

    Args:
        num_steps: number of reverse-time steps.
        horizon: ``T``, the diffusion time the reverse process starts from (``q_T ~ N(0, I)``).
        s_min: diffusion time where the reverse process stops (> 0).
        eps: time-scale separation ``eps`` (> 0).
        schedule: spacing of the diffusion times (``"geometric"``, ``"linear"``, ``"cosine"``, or a
            callable ``tau -> [0, 1]``).
        integrator: fast-process integrator, ``"exponential"`` (1 gradient per step; the target
            part is explicit, stable while ``h L / eps < 2``) or ``"srock"`` (SK-ROCK, ``stages``
            gradients per step).
        stages: SK-ROCK stages.
        fast_init_scale: the fast state starts from the likelihood kernel
            ``N(c x, (c^2 - 1) I)`` with ``c = min(e^T, fast_init_scale)`` (how far it looks for modes).
        final_steps: plain (unadjusted) Langevin steps on the target at the end.
        final_step_size: step of those Langevin steps.
        init_std: standard deviation of the ``N(0, init_std^2 I)`` initial slow states.
        progress: show a tqdm progress bar.
    """

    name = "mult-cdiff"

    def __init__(self, num_steps: int = 500, horizon: float = 5.0, s_min: float = 0.01, eps: float = 0.05, *,
                 schedule: str | Callable[[Tensor], Tensor] = "geometric", integrator: str = "srock",
                 stages: int = 5, fast_init_scale: float = 10.0, final_steps: int = 0,
                 final_step_size: float = 0.01, reference: str = "gaussian", init_std: float = 1.0,
                 progress: bool = True) -> None:
        super().__init__(init_std=init_std, progress=progress)
        self.num_steps = check_positive_int("num_steps", num_steps)
        self.horizon = check_positive("horizon", horizon)
        self.s_min = check_positive("s_min", s_min)
        if self.s_min >= self.horizon:
            raise ValueError(f"s_min ({s_min}) must be < horizon ({horizon})")
        self.eps = check_positive("eps", eps)
        if not (callable(schedule) or isinstance(schedule, str)):
            raise TypeError(f"schedule must be a str or a callable, got {type(schedule).__name__}")
        annealing_schedule(schedule, 3, self.s_min, self.horizon)
        self.schedule = schedule
        self.integrator = check_choice("integrator", integrator, ("srock", "exponential"))
        self.stages = check_positive_int("stages", stages)
        self.fast_init_scale = check_positive("fast_init_scale", fast_init_scale)
        if self.fast_init_scale < 1:
            raise ValueError(f"fast_init_scale must be >= 1, got {fast_init_scale}")
        if isinstance(final_steps, bool) or not isinstance(final_steps, int) or final_steps < 0:
            raise ValueError(f"final_steps must be an int >= 0, got {final_steps!r}")
        self.final_steps = final_steps
        self.final_step_size = check_positive("final_step_size", final_step_size)
        if check_choice("reference", reference, ("gaussian", "student-t")) != "gaussian":
            raise ValueError("MultCDiff supports reference='gaussian' only: with a Student-t reference "
                             "the noising process has no Gaussian transition (no Tweedie formula); "
                             "use MultALMC(reference='student-t') for heavy-tailed targets")
        self.reference = reference
        check_nonnegative("final_step_size", final_step_size)

    def _num_iterations(self) -> int:
        return self.num_steps + self.final_steps

    def diffusion_times(self) -> Tensor:
        """Diffusion times ``s_0 = T > s_1 > ... > s_N = s_min`` (float64, ``num_steps + 1`` values)."""
        return annealing_schedule(self.schedule, self.num_steps + 1, self.s_min, self.horizon).flip(0)

    def _fast_step(self, target: CountedTarget, x: Tensor, y: Tensor, s: float, h: float,
                   gen: torch.Generator | None) -> Tensor:
        eps = self.eps
        e = math.exp(-s)
        var = -math.expm1(-2.0 * s)
        xi = randn_like(y, gen)
        if self.integrator == "exponential":
            a = e * e / (var * eps)
            return ou_exponential_step(y, a, x / e, target.grad(y) / eps, h, 1.0 / eps, xi)

        def drift(z: Tensor) -> Tensor:
            return (target.grad(z) + e * (x - e * z) / var) / eps

        return skrock_step(y, drift, h, math.sqrt(2.0 * h / eps) * xi, self.stages)

    def _run(self, target: CountedTarget, x0: Tensor, generator: torch.Generator | None,
             bar: Any) -> tuple[Tensor, dict[str, Any]]:
        times = self.diffusion_times().tolist()
        x = x0.clone()
        c = min(math.exp(times[0]), self.fast_init_scale)
        y = c * x + math.sqrt(c * c - 1.0) * randn_like(x, generator)
        for k in range(self.num_steps):
            s, h = times[k], times[k] - times[k + 1]
            y = self._fast_step(target, x, y, s, h, generator)
            e = math.exp(-s)
            var = -math.expm1(-2.0 * s)
            b = 2.0 / var - 1.0  # slow drift = -b X + 2 e Y / var
            centre = 2.0 * e * y / (var * b)
            x = ou_exponential_step(x, b, centre, 0.0, h, 1.0, randn_like(x, generator))
            bar.update(1)
        hf = self.final_step_size
        for _ in range(self.final_steps):
            x = x + hf * target.grad(x) + math.sqrt(2.0 * hf) * randn_like(x, generator)
            bar.update(1)
        return x, {"diagnostics": {"s_final": times[-1]}}
