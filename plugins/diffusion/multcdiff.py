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

Underdamped variant (``underdamped=True``): the critically damped forward process
``dX = V ds, dV = (-X - 2 V) ds + 2 dB`` (mass 1, friction 2, ``Gamma^2 = 4 M``) started from
``V_0 ~ N(0, I)`` has, per coordinate, ``Z_s = (X_s, V_s) | X_0 = y ~ N(a_s y, I - a_s a_s^T)`` with
``a_s = e^{-s} (1 + s, -s)`` (``N(0, I)`` is stationary, ``exp(F s) = e^{-s} [[1+s, s], [-s, 1-s]]``).
With ``r^2 = |a_s|^2``, Tweedie gives ``grad_v log q_s(z) = a_v (E[Y|z] - a.z) / (1 - r^2) - v`` and
the posterior ``pi(y) N(y; a.z / r^2, (1 - r^2) / r^2)``. The reverse dynamics

    dX = -V dt,   dV = [X - 2 V + 4 a_v (Y - a_x X - a_v V) / (1 - r^2)] dt + 2 dB

is linear in ``(X, V)`` given the fast state ``Y``; each step integrates it exactly with frozen
coefficients (matrix exponentials, Van Loan's formula for the noise covariance), which keeps it
stable although ``1 - r^2 ~ 4 s^3 / 3`` makes it very stiff near ``s = 0``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from sciml.targets import CountedTarget
from sciml.validation import (
    check_bool,
    check_choice,
    check_nonnegative_int,
    check_positive,
    check_positive_int,
)

from ._common import DiffusionSamplerBase, RunMonitor, randn_like
from .integrators import (
    local_curvature,
    ou_exponential_step,
    skrock_step,
    stages_for,
)
from .multiscale import ChainControl, FastProcess, PathSecants, control_diagnostics, fast_start, finite_rows
from .schedules import annealing_schedule

__all__ = ["MultCDiff"]

#: factor on the measured local curvature: the power iteration bounds the largest Hessian eigenvalue
#: from below, and the state moves during the step
_CURVATURE_SAFETY = 2.0


class MultCDiff(DiffusionSamplerBase):
    """Multiscale controlled diffusion: reverse OU process whose score comes from a fast Langevin state.

    The diffusion time ``s`` runs from ``horizon`` down to ``s_min`` over ``num_steps`` steps
    (``schedule`` sets the spacing of ``s``: ``"geometric"`` refines near ``s = 0`` where the
    dynamics is stiff); optionally ``final_steps`` steps of plain Langevin dynamics on the target
    follow. Returns the fast states (``return_state="fast"``, exact ``pi``-marginal) or the slow ones.

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
        underdamped: use the critically damped (position, velocity) forward process instead of OU.
        stages: SK-ROCK stages; ``None`` (default) chooses them each step from the per-chain
            stiffness ``stiff_i = (L_i + k) / eps`` (``k`` the precision ratio of the Gaussian factor,
            ``L_i`` twice the local curvature of ``log pi`` at chain ``i``'s fast state, by one power
            iteration of finite-difference Hessian-vector products per step, 2 gradients,
            :func:`~sciml_plugins.diffusion.integrators.local_curvature`): ``s`` covers the 90 %
            quantile of ``stiff_i``, and every step is checked chain by chain
            (:class:`~sciml_plugins.diffusion.multiscale.ChainControl`): a chain it does not cover,
            that left its stability region or became non-finite is redone from its old state by
            sub-steps. When a single stage suffices, or only the Gaussian part is too stiff for
            ``max_stages`` (``max L_i h / eps < 1.6``), the step uses the exponential integrator.
        max_stages: cap on the adaptive number of stages.
        max_substeps: cap on the sub-step tries of a redone chain per step; a chain that has not
            covered the step's time by then stops short and is reported in
            ``diagnostics["unresolved_chains"]`` (mask) / ``["n_unresolved"]`` /
            ``["truncated_chain_steps"]`` / ``["fast_time_lost"]`` (per chain, the fraction of its
            checked fast time not covered), never hidden.
        fast_init_scale: the fast state starts from the likelihood kernel
            ``N(c x, (c^2 - 1) I)`` with ``c = min(e^T, fast_init_scale)`` (how far it looks for modes).
        fast_init_candidates: ``K``; if > 0 (default 256) the fast state starts from ``pi`` instead:
            pooled sampling importance resampling from a Gaussian fitted to that kernel
            (:func:`~sciml_plugins.diffusion.multiscale.sample_target_sir`, ``K`` log-density
            evaluations per chain), and (overdamped) the slow state is redrawn as
            ``X = e^{-T} Y + sigma_T Z``, so ``(X, Y)`` starts from the joint law at ``s = T``. The
            fast dynamics cannot move mass between separated modes, so the mode weights the fast
            states start with are the weights returned; with ``K = 0`` they are those of the basins
            of attraction of the start, not of ``pi``. ``diagnostics["init_ess"]``: the pool's
            effective sample size; below the number of chains the pool is degenerate and the kernel
            start is used instead.
        final_steps: plain (unadjusted) Langevin steps on the target at the end.
        final_step_size: step of those Langevin steps.
        return_state: ``"fast"`` (default) returns the fast states ``Y``: at diffusion time ``s`` the
            pair ``(X, Y) ~ q_s(x) p_s(y | x)`` has ``Y``-marginal exactly ``pi``, whereas ``X`` is a
            draw of ``q_{s_min}``, ``pi`` blurred by noise of variance ``1 - e^{-2 s_min}``;
            ``"slow"`` returns ``X``. The plain Langevin steps, when asked for, move the returned state.
        init_std: standard deviation of the ``N(0, init_std^2 I)`` initial slow states.
        progress: show a progress bar (``None``: only when stderr is a terminal).
    """

    name = "mult-cdiff"
    _attribute_failures = False  # stages / probes are trial points: the step control redoes them

    def __init__(self, num_steps: int = 500, horizon: float = 5.0, s_min: float = 0.01, eps: float = 0.05, *,
                 underdamped: bool = False, schedule: str | Callable[[Tensor], Tensor] = "geometric",
                 integrator: str = "srock", stages: int | None = None, max_stages: int = 40,
                 max_substeps: int = 64, fast_init_scale: float = 5.0, fast_init_candidates: int = 256, final_steps: int = 0,
                 final_step_size: float = 0.01, return_state: str = "fast", init_std: float = 1.0,
                 precondition: str = "auto", max_evals: int | None = None,
                 progress: bool | None = None) -> None:
        super().__init__(init_std=init_std, precondition=precondition, max_evals=max_evals,
                         progress=progress)
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
        self.stages = None if stages is None else check_positive_int("stages", stages)
        self.max_stages = check_positive_int("max_stages", max_stages)
        self.max_substeps = check_positive_int("max_substeps", max_substeps)
        self.underdamped = check_bool("underdamped", underdamped)
        self.fast_init_scale = check_positive("fast_init_scale", fast_init_scale)
        if self.fast_init_scale < 1:
            raise ValueError(f"fast_init_scale must be >= 1, got {fast_init_scale}")
        self.fast_init_candidates = check_nonnegative_int("fast_init_candidates", fast_init_candidates)
        self.final_steps = check_nonnegative_int("final_steps", final_steps)
        self.final_step_size = check_positive("final_step_size", final_step_size)
        self.return_state = check_choice("return_state", return_state, ("fast", "slow"))

    def _num_iterations(self) -> int:
        return self.num_steps + self.final_steps

    def diffusion_times(self) -> Tensor:
        """Diffusion times ``s_0 = T > s_1 > ... > s_N = s_min`` (float64, ``num_steps + 1`` values)."""
        return annealing_schedule(self.schedule, self.num_steps + 1, self.s_min, self.horizon).flip(0)

    def _run(self, target: CountedTarget, x0: Tensor, generator: torch.Generator | None,
             monitor: RunMonitor) -> tuple[Tensor, dict[str, Any]]:
        return _Run(self, target, generator, x0).run(x0, monitor)


class _Run:
    """One MultCDiff run: the sampler's settings ``cfg`` and the run's state (the curvature probe's
    direction and cache, stage counts, the step control)."""

    def __init__(self, cfg: MultCDiff, target: CountedTarget, generator: torch.Generator | None, x0: Tensor) -> None:
        self.cfg, self.target, self.generator = cfg, target, generator
        self.stage_counts: list[float] = []
        self.n_exponential = 0
        self.lip_max, self.lip_q90 = 0.0, []
        self.direction: Tensor | None = None
        self.first_probe, self.cache = True, None
        self.control = ChainControl(x0.shape[0], cfg.max_substeps, x0)
        self.init_ess = float("nan")

    def fast_step(self, target: CountedTarget, y: Tensor, k: float, m: Tensor, h: float,
                  gen: torch.Generator | None) -> Tensor:
        """Fast Langevin step on ``pi(y) N(y; m, I / k)`` (time ``h``, speed ``1/eps``).

        SK-ROCK with the stiffness estimated per chain: ``L_i`` is twice the local curvature of
        ``log pi`` at the chain's fast state (power iteration on finite-difference Hessian-vector
        products along a direction carried over steps; measured at the end of the previous step),
        ``stiff_i = (L_i + k) / eps``. The number of stages covers the 90 % quantile of ``stiff_i``;
        the step is then checked chain by chain and the chains it does not cover are redone by
        sub-steps (:class:`~sciml_plugins.diffusion.multiscale.ChainControl`).
        """
        eps = self.cfg.eps
        if self.cfg.integrator == "exponential" or self.cfg.stages is not None:
            self.stage_counts.append(self.cfg.stages or 1)
            if self.cfg.integrator == "exponential" or self.cfg.stages == 1:
                return ou_exponential_step(y, k / eps, m, target.grad_at_states(y) / eps, h, 1.0 / eps, randn_like(y, gen))
            proc = _FastProcess(target, eps, k, m)
            return skrock_step(y, proc.drift(None), h, math.sqrt(2.0 * h / eps) * randn_like(y, gen), self.cfg.stages)

        curv = self.start_curvature(target, y, gen)
        lip = _CURVATURE_SAFETY * curv  # (n,); NaN on non-finite chains
        ok = torch.isfinite(lip)
        if not bool(ok.any()):  # every chain diverged: nothing left to integrate
            self.stage_counts.append(1)
            return y + float("nan")
        lip = torch.where(ok, lip, torch.zeros_like(lip))
        stiff = (lip + k) / eps
        self.lip_max = max(self.lip_max, float(lip.max()))
        self.lip_q90.append(float(torch.quantile(lip[ok], 0.9)))
        s_need = stages_for(float(stiff.max()), h, self.cfg.max_stages + 1)
        if s_need == 1 or (s_need > self.cfg.max_stages and float(lip.max()) * h / eps < 1.6):
            # a single stage suffices, or only the Gaussian part is stiff: it is solved exactly and the
            # explicit target part is stable (h L / eps < 2)
            self.stage_counts.append(1)
            if s_need > 1:
                self.n_exponential += 1
            return ou_exponential_step(y, k / eps, m, target.grad_at_states(y) / eps, h, 1.0 / eps, randn_like(y, gen))
        typical = float(torch.quantile(stiff, 0.9))
        stages = max(min(stages_for(typical, h, self.cfg.max_stages), s_need), 2)
        self.stage_counts.append(stages)
        proc = _FastProcess(target, eps, k, m)
        path = PathSecants(y.shape[0], y)
        y_new = skrock_step(y, proc.drift(None, path), h, math.sqrt(2.0 * h / eps) * randn_like(y, gen), stages)
        rows = finite_rows(y)
        assert self.direction is not None
        y_new, c_end, d_end = self.control.check_full(proc, rows, y, y_new, h, stages, path.value,
                                                      self.direction[rows], lip[rows], gen)
        curv_end = torch.full_like(curv, float("nan"))
        curv_end[rows] = c_end
        dir_end = self.direction.clone()
        dir_end[rows] = d_end
        self.cache = (y_new, curv_end, dir_end)  # the next step's start estimate
        return y_new

    def start_curvature(self, target: CountedTarget, y: Tensor, gen: torch.Generator | None) -> Tensor:
        """Curvature of ``log pi`` at the fast states ``y`` (``(n,)``, NaN on non-finite chains): the one
        measured at the end of the previous step, else one power iteration (3 at the first step)."""
        if self.cache is not None and self.cache[0] is y:
            curv, self.direction = self.cache[1], self.cache[2]
        else:
            if self.direction is None:
                self.direction = randn_like(y, gen)
            iters = 3 if self.first_probe else 1
            self.first_probe = False
            curv, self.direction = local_curvature(target.grad_at_states, y, self.direction, iterations=iters)
        self.cache = None
        return curv

    def run(self, x0: Tensor, monitor: RunMonitor) -> tuple[Tensor, dict[str, Any]]:
        cfg, gen = self.cfg, self.generator
        times = cfg.diffusion_times().tolist()
        run = self.run_underdamped if cfg.underdamped else self.run_overdamped
        x, y = run(x0.clone(), times, monitor)
        if cfg.return_state == "fast":
            x = y
        hf = cfg.final_step_size
        for _ in range(0 if monitor.stopped else cfg.final_steps):
            x = x + hf * self.target.grad_at_states(x) + math.sqrt(2.0 * hf) * randn_like(x, gen)
            x = monitor.end_step(x)
            if monitor.stopped:
                break
        return x, {"diagnostics": self.diagnostics(times[-1])}

    def run_overdamped(self, x: Tensor, times: list[float], monitor: RunMonitor) -> tuple[Tensor, Tensor]:
        """The reverse OU process: exponential slow steps, the fast state from the start at ``s = T``."""
        cfg, gen = self.cfg, self.generator
        first = fast_start(self.target, x, min(math.exp(times[0]), cfg.fast_init_scale), cfg.fast_init_candidates, gen)
        self.init_ess, y = first.ess, first.u
        if first.from_target:  # (X, Y) from the joint law at s = T
            x = math.exp(-times[0]) * y + math.sqrt(-math.expm1(-2.0 * times[0])) * randn_like(x, gen)
        for k in range(cfg.num_steps):
            s, h = times[k], times[k] - times[k + 1]
            e = math.exp(-s)
            var = -math.expm1(-2.0 * s)
            y = self.fast_step(self.target, y, e * e / var, x / e, h, gen)
            b = 2.0 / var - 1.0  # slow drift = -b X + 2 e Y / var
            centre = 2.0 * e * y / (var * b)
            x = ou_exponential_step(x, b, centre, 0.0, h, 1.0, randn_like(x, gen))
            x, y = monitor.end_step(x, y)
            if monitor.stopped:
                break
        return x, y

    def diagnostics(self, s_final: float) -> dict[str, Any]:
        counts, q90 = self.stage_counts, self.lip_q90
        return {"init_ess": self.init_ess, "s_final": s_final,
                "lipschitz_estimate": max(q90) if q90 else float("nan"),
                "max_local_lipschitz": self.lip_max,
                "mean_stages": sum(counts) / len(counts) if counts else 1.0,
                "exponential_fallback_steps": self.n_exponential, **control_diagnostics(self.control)}

    def run_underdamped(self, x: Tensor, times: list[float], monitor: RunMonitor) -> tuple[Tensor, Tensor]:
        """The critically damped reverse process: exact slow steps of the linear SDE in ``(X, V)``."""
        cfg, gen = self.cfg, self.generator
        v = randn_like(x, gen)
        ax, av, omr = _damped_coefficients(times[0])
        r2 = 1.0 - omr
        proj = (ax * x + av * v) / math.sqrt(r2)  # a.z / r ~ N(0, 1) under q_T
        # (X, V) kept with the SIR start: at s = T the posterior is ~ pi (|a|^2 ~ 3e-3 at T = 5)
        first = fast_start(self.target, x, min(1.0 / math.sqrt(r2), cfg.fast_init_scale), cfg.fast_init_candidates,
                           gen, kernel_centre=proj)
        self.init_ess, y = first.ess, first.u
        for k in range(cfg.num_steps):
            s, h = times[k], times[k] - times[k + 1]
            ax, av, omr = _damped_coefficients(s)
            r2 = 1.0 - omr
            y = self.fast_step(self.target, y, r2 / omr, (ax * x + av * v) / r2, h, gen)
            (p00, p01, g0, r00, r01), (p10, p11, g1, r10, r11) = _damped_slow_step(ax, av, omr, h)
            n1, n2 = randn_like(x, gen), randn_like(x, gen)
            x, v = (p00 * x + p01 * v + g0 * y + r00 * n1 + r01 * n2,
                    p10 * x + p11 * v + g1 * y + r10 * n1 + r11 * n2)
            x, v, y = monitor.end_step(x, v, y)
            if monitor.stopped:
                break
        return x, y


def _damped_coefficients(s: float) -> tuple[float, float, float]:
    """``(a_x, a_v, 1 - |a|^2)`` of the critically damped forward process at diffusion time ``s``."""
    e = math.exp(-s)
    ax, av = e * (1.0 + s), -e * s
    one_minus_r2 = -math.expm1(-2.0 * s) - 2.0 * e * e * s * (1.0 + s)  # 1 - |a|^2, stable
    return ax, av, max(one_minus_r2, 1e-300)


def _damped_slow_step(ax: float, av: float, omr: float, h: float) -> list[list[float]]:
    """One exact step of the slow linear SDE ``d(X, V) = (B (X, V) + b Y) dt + (0, 2) dB`` with frozen
    coefficients: rows ``[e^{Bh} row, (int_0^h e^{Bu} du b) entry, noise square-root row]`` for X and V
    (Van Loan's formula for the noise covariance)."""
    big = torch.tensor([[0.0, -1.0, 0.0], [1.0 - 4.0 * av * ax / omr, -2.0 - 4.0 * av * av / omr, 4.0 * av / omr],
                        [0.0, 0.0, 0.0]], dtype=torch.float64) * h
    aug = torch.linalg.matrix_exp(big)  # [[e^{Bh}, int_0^h e^{Bu} du b], [0, 1]]
    bmat = big[:2, :2]
    q = torch.tensor([[0.0, 0.0], [0.0, 4.0]], dtype=torch.float64) * h
    van_loan = torch.linalg.matrix_exp(torch.cat([torch.cat([-bmat, q], 1),
                                                  torch.cat([torch.zeros(2, 2, dtype=torch.float64), bmat.T], 1)], 0))
    phi = van_loan[2:, 2:].T  # = e^{Bh}
    cov = phi @ van_loan[:2, 2:]
    cov = 0.5 * (cov + cov.T)
    evals, evecs = torch.linalg.eigh(cov)
    root = evecs * evals.clamp(min=0.0).sqrt()
    return torch.cat([aug[:2, :3], root], 1).tolist()


class _FastProcess(FastProcess):
    """MultCDiff's fast process on ``pi(y) N(y; m, I / k)`` (rows of ``m``: chains), in target units."""

    def __init__(self, target: CountedTarget, eps: float, k: float, m: Tensor) -> None:
        super().__init__(target, eps)
        self.k, self.m = k, m

    def stiffness(self, lip: Tensor) -> Tensor:
        return (lip + self.k) / self.eps

    def steady_floor(self, h: Tensor | float, length: float) -> Tensor | float:
        """``(L + k) / eps`` has no floor of its own (``k`` is small far from ``s = 0``): a step that starts
        at a zero of the curvature would fail a plain factor-10 test whatever its length, so a rise to
        less than a tenth of the stability interval counts as steady."""
        return 0.01 * length / h

    def drift(self, rows: Tensor | None, path: PathSecants | None = None,
              track: bool = False) -> Callable[[Tensor], Tensor]:
        m, k, eps = (self.m if rows is None else self.m[rows]), self.k, self.eps

        def f(z: Tensor) -> Tensor:
            g = self.target.grad(z)
            if path is not None:
                path.update(z, g)
            return (g + k * (m - z)) / eps

        return f
