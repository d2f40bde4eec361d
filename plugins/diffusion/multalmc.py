"""MultALMC: multiscale annealed Langevin Monte Carlo (Cordero-Encinar, Duncan, Reich, Akyildiz 2025).

Path ``mu_l = Law(sqrt(l) X + sqrt(1 - l) Z)``, ``X ~ pi``, ``Z ~ nu`` (the reference), with ``l``
rising from ``l_delta`` to ``1 - l_delta``. The slow state ``X`` runs (over- or underdamped)
Langevin dynamics on ``mu_l``; its score is never computed but estimated by one sample of a
fast state ``Y`` that runs Langevin dynamics on

    rho_{l,x}(y) ~ nu((x - y) / sqrt(1 - l)) pi(y / sqrt(l)),

sped up by ``1 / eps``. The two identities used (checked in the docs and the tests, Gaussian
``nu``; for a general ``nu`` the first reads ``E[grad log nu((x - Y)/sqrt(1-l))] / sqrt(1-l)``):

    grad log mu_l(x) = E_rho[-(x - Y) / (1 - l)]                       (nu form, used for l < l_switch)
                     = E_rho[l^{-1/2} grad log pi(Y / sqrt(l))]        (pi form, used for l >= l_switch)

With the nu form, the pair (X, Y) at frozen ``l`` is a Langevin diffusion, preconditioned by
``diag(1, 1/eps)``, on the joint law of ``(sqrt(l) X + sqrt(1-l) Z, sqrt(l) X)``, so it keeps
the right marginals for every ``eps``. The fast process is stiff (``1/(eps (1-l))`` from the
reference, ``L/(eps l)`` from the target): it is integrated with SK-ROCK (``integrator="srock"``)
or, for a Gaussian reference, with the exponential integrator that solves the reference part
exactly (``integrator="exponential"``; the target part stays explicit). Once ``l >= 1 - l_delta``
the slow state switches to plain Langevin dynamics on ``pi``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from sciml.validation import check_nonnegative, check_positive, check_positive_int

from ._common import (
    CountedTarget,
    DiffusionSamplerBase,
    check_choice,
    check_probability,
    randn_like,
    sample_target_sir,
)
from .integrators import LipschitzTracker, ou_exponential_step, skrock_step, stages_for
from .schedules import annealing_schedule

__all__ = ["MultALMC"]


class MultALMC(DiffusionSamplerBase):
    """Multiscale annealed Langevin Monte Carlo: training-free diffusion sampler.

    Every chain carries a slow state ``X`` (returned) and a fast state ``Y`` whose Langevin
    dynamics on ``rho_{l,X}`` (``1/eps`` times faster) supplies a one-sample estimate of the
    score of the annealing path ``mu_l``. Phases: ``hold_fraction`` of the steps at
    ``l = l_delta``, then the schedule up to ``1 - l_delta``, then ``final_fraction`` of the steps
    of plain Langevin dynamics on the target.

    Args:
        num_steps: number of slow steps (all phases).
        step_size: slow step ``h`` (> 0); the paper's grid is {0.001, 0.003, 0.005}.
        eps: time-scale separation ``eps`` (> 0); paper grid {0.05, 0.07, 0.1}.
        underdamped: OBABO underdamped slow process (mass 1) instead of Euler-Maruyama.
        gamma_min: friction for the first half of the run (underdamped), paper grid {0.01, 0.07, 0.1}.
        gamma_max: friction reached linearly at the end (underdamped), default 0.5.
        l_delta: ``lambda`` at the start (held) and distance from 1 at the switch to plain Langevin.
        l_switch: switch from the nu form to the pi form of the score estimate (0.6).
        schedule: ``lambda`` schedule, a name of :data:`~sciml_plugins.diffusion.schedules.SCHEDULES`
            or a callable ``tau -> [0, 1]``.
        hold_fraction: fraction of the steps spent at ``l = l_delta`` first.
        final_fraction: fraction of the steps of plain Langevin dynamics on the target at the end.
        integrator: fast-process integrator, ``"srock"`` (SK-ROCK, ``stages`` drift evaluations per
            step) or ``"exponential"`` (Gaussian reference only, one evaluation per step).
        stages: SK-ROCK stages ``s`` (stability interval about ``1.94 s^2``); ``None`` (default)
            chooses them every step from the stiffness ``(1/(1-l) + L/l) / eps``, with the
            target's Lipschitz constant ``L`` tracked by secants of the gradients already computed.
        max_stages: cap on the adaptive number of stages.
        fast_init_scale: the fast state starts at ``Y = sqrt(l) U``, ``U ~ N(c X, (c^2 - 1) I)`` with
            ``c = fast_init_scale`` (``c = 1/sqrt(l_delta)`` is the reference kernel itself): the
            spread, in target units, over which the fast process first looks for modes.
        fast_init_candidates: ``K``; if > 0 (default 256) the fast state starts from ``rho_{l_delta, X}``
            itself: ``U ~ pi`` by pooled sampling importance resampling from a Gaussian fitted to
            the widened kernel above (:func:`~sciml_plugins.diffusion._common.sample_target_sir`,
            ``K`` log-density evaluations per chain), ``Y = sqrt(l) U`` and the slow state is
            redrawn as ``X = Y + sqrt(1 - l) Z ~ mu_{l_delta}`` (the given start only places the
            proposal; ``diagnostics["init_ess"]`` is the pool's effective sample size; if it is below the
            number of chains the pool is degenerate and the kernel start is used instead). The fast dynamics cannot move mass between separated modes, and
            the mode weights of ``rho`` in target units do not change with ``l``, so the weights the
            fast states start with are the weights returned; without this step (``K = 0``) they are
            those of the basins of attraction of the start, not of ``pi``.
        reference: ``"gaussian"`` (``nu = N(0, I)``) or ``"student-t"`` (``nu`` = multivariate
            Student t with ``df`` degrees of freedom, for heavy-tailed targets; the fast process
            then uses the state-dependent diffusion ``a(y) = 1 + |x - y|^2 / (df (1 - l))``, capped
            at ``max_diffusion``, with drift ``a grad log rho + grad a`` so ``rho`` stays invariant).
        df: degrees of freedom of the Student-t reference (> 0).
        max_diffusion: cap of the fast diffusion coefficient of the Student-t variant (>= 1).
        rescale_fast: when ``l`` moves from ``l'`` to ``l`` between steps, multiply the fast state by
            ``sqrt(l / l')`` (keep ``U = Y / sqrt(l)`` in target units) before its next step. Without it
            (``False``) a coarse early grid (``l`` 0.01 -> 0.016 is a 20 % shrink of ``U``) drags fast
            states across modes towards the origin: 8-MoG, 198 steps, ``h = 0.1``: 46 % of the fast
            states changed mode and the mode weights ranged over 0.01 - 0.28 (equal in truth).
        init_std: standard deviation of the ``N(0, init_std^2 I)`` initial slow states.
        progress: show a tqdm progress bar.

    Evaluation cost per chain: ``stages`` (SK-ROCK) or 1 (exponential) gradient evaluations per
    annealing step, plus 1 per step in the pi-form and plain-Langevin phases.
    """

    name = "mult-almc"

    def __init__(self, num_steps: int = 1000, step_size: float = 0.005, eps: float = 0.05, *,
                 underdamped: bool = False, gamma_min: float = 0.07, gamma_max: float = 0.5,
                 l_delta: float = 0.01, l_switch: float = 0.6,
                 schedule: str | Callable[[Tensor], Tensor] = "linear", hold_fraction: float = 0.1,
                 final_fraction: float = 0.05, integrator: str = "srock", stages: int | None = None,
                 max_stages: int = 40,
                 reference: str = "gaussian", df: float = 3.0, max_diffusion: float = 4.0, fast_init_scale: float = 5.0,
                 fast_init_candidates: int = 256, rescale_fast: bool = True, init_std: float = 1.0, progress: bool = True) -> None:
        super().__init__(init_std=init_std, progress=progress)
        self.num_steps = check_positive_int("num_steps", num_steps)
        self.step_size = check_positive("step_size", step_size)
        self.eps = check_positive("eps", eps)
        if not isinstance(underdamped, bool):
            raise TypeError(f"underdamped must be a bool, got {type(underdamped).__name__}")
        self.underdamped = underdamped
        self.gamma_min = check_positive("gamma_min", gamma_min)
        self.gamma_max = check_positive("gamma_max", gamma_max)
        self.l_delta = check_probability("l_delta", l_delta)
        if self.l_delta >= 0.5:
            raise ValueError(f"l_delta must be < 0.5, got {l_delta}")
        self.l_switch = check_probability("l_switch", l_switch)
        if not (callable(schedule) or isinstance(schedule, str)):
            raise TypeError(f"schedule must be a str or a callable, got {type(schedule).__name__}")
        annealing_schedule(schedule, 3, self.l_delta, 1.0 - self.l_delta)  # validates the name
        self.schedule = schedule
        self.hold_fraction = check_nonnegative("hold_fraction", hold_fraction)
        self.final_fraction = check_nonnegative("final_fraction", final_fraction)
        if self.hold_fraction + self.final_fraction >= 1.0:
            raise ValueError("hold_fraction + final_fraction must be < 1")
        self.integrator = check_choice("integrator", integrator, ("srock", "exponential"))
        self.stages = None if stages is None else check_positive_int("stages", stages)
        self.max_stages = check_positive_int("max_stages", max_stages)
        self.reference = check_choice("reference", reference, ("gaussian", "student-t"))
        self.df = check_positive("df", df)
        self.max_diffusion = check_positive("max_diffusion", max_diffusion)
        if self.max_diffusion < 1:
            raise ValueError(f"max_diffusion must be >= 1, got {max_diffusion}")
        self.fast_init_scale = check_positive("fast_init_scale", fast_init_scale)
        if self.fast_init_scale < 1:
            raise ValueError(f"fast_init_scale must be >= 1, got {fast_init_scale}")
        self.fast_init_candidates = 0 if fast_init_candidates == 0 else check_positive_int(
            "fast_init_candidates", fast_init_candidates)
        if not isinstance(rescale_fast, bool):
            raise TypeError(f"rescale_fast must be a bool, got {type(rescale_fast).__name__}")
        self.rescale_fast = rescale_fast
        if self.reference == "student-t" and self.integrator == "exponential":
            raise ValueError("integrator='exponential' needs the Gaussian reference; use 'srock' "
                             "with reference='student-t'")

    # -------------------------------------------------------------------------------------------
    def _phases(self) -> tuple[int, int, int]:
        n_hold = int(round(self.hold_fraction * self.num_steps))
        n_final = int(round(self.final_fraction * self.num_steps))
        n_anneal = max(self.num_steps - n_hold - n_final, 1)
        return n_hold, n_anneal, n_final

    def _num_iterations(self) -> int:
        return sum(self._phases())

    def lambdas(self) -> Tensor:
        """The ``lambda`` value of every step of the hold and annealing phases (float64)."""
        n_hold, n_anneal, _ = self._phases()
        ramp = annealing_schedule(self.schedule, n_anneal, self.l_delta, 1.0 - self.l_delta)
        return torch.cat([torch.full((n_hold,), self.l_delta, dtype=torch.float64), ramp])

    # reference-dependent pieces -------------------------------------------------------------------
    def _nu_score(self, x: Tensor, y: Tensor, lam: float) -> Tensor:
        """``grad_x log nu((x - y)/sqrt(1-l))`` (the nu-form one-sample score estimate)."""
        diff = x - y
        if self.reference == "gaussian":
            return -diff / (1.0 - lam)
        d = x.shape[-1]
        q = (diff * diff).sum(-1, keepdim=True) / (self.df * (1.0 - lam))
        return -((self.df + d) / self.df) * diff / ((1.0 - lam) * (1.0 + q))

    def _fast_step(self, target: CountedTarget, x: Tensor, y: Tensor, lam: float,
                   gen: torch.Generator | None) -> Tensor:
        """One step of the fast process on ``rho_{lam, x}`` (time ``h``, speed ``1/eps``)."""
        h, eps, sl = self.step_size, self.eps, math.sqrt(lam)

        def target_part(z: Tensor) -> Tensor:  # l^{-1/2} grad log pi(z / sqrt(l))
            u = z / sl
            g = target.grad(u)
            self._lip.update(u, g)
            return g / sl

        if self.stages is None:
            # local curvature of log pi at the current fast states (one directional difference per
            # chain, 2 gradient evaluations): the secant estimate alone lags behind on targets whose
            # curvature grows without bound (double wells), which makes the step unstable
            u = y / sl
            direction = randn_like(u, gen)
            direction = direction / direction.norm(dim=-1, keepdim=True).clamp_min(1e-30)
            delta = 1e-4 * (1.0 + u.norm(dim=-1, keepdim=True))
            diff = (target.grad(u + delta * direction) - target.grad(u)).norm(dim=-1, keepdim=True) / delta
            finite = diff[torch.isfinite(diff)]
            local = 2.0 * float(finite.max()) if finite.numel() else 0.0
            stiff = (1.0 / (1.0 - lam) + max(self._lip.value, local) / lam) / eps
            if self.reference == "student-t":  # the diffusion a(y) <= max_diffusion scales the drift
                stiff *= self.max_diffusion
            stages = stages_for(stiff, h, self.max_stages)
        else:
            stages = self.stages
        self._stage_counts.append(stages)

        xi = randn_like(y, gen)
        if self.reference == "gaussian":
            if self.integrator == "exponential":
                a = 1.0 / (eps * (1.0 - lam))
                return ou_exponential_step(y, a, x, target_part(y) / eps, h, 1.0 / eps, xi)

            def drift(z: Tensor) -> Tensor:
                return ((x - z) / (1.0 - lam) + target_part(z)) / eps

            return skrock_step(y, drift, h, math.sqrt(2.0 * h / eps) * xi, stages)
        # Student-t reference, tailored fast dynamics: scalar diffusion a(y) = 1 + min(q, a_max - 1),
        # q = |x - y|^2 / (df (1 - l)); drift a grad log rho + grad a keeps rho invariant. The cap a_max
        # keeps the multiplicative noise mean-square stable at large steps (grad a = 0 beyond it).
        d = y.shape[-1]
        c = 1.0 / (self.df * (1.0 - lam))
        cap = self.max_diffusion - 1.0

        def diffusion(diff: Tensor) -> tuple[Tensor, Tensor]:
            q = c * (diff * diff).sum(-1, keepdim=True)
            return 1.0 + q.clamp(max=cap), (q < cap).to(diff.dtype)

        def drift_t(z: Tensor) -> Tensor:
            diff = x - z
            a_z, inside = diffusion(diff)
            log_nu = ((self.df + d) / self.df) * diff / ((1.0 - lam) * (1.0 + c * (diff * diff).sum(-1, keepdim=True)))
            grad_a = -2.0 * c * diff * inside
            return (a_z * (log_nu + target_part(z)) + grad_a) / eps

        a0, _ = diffusion(x - y)
        return skrock_step(y, drift_t, h, torch.sqrt(2.0 * h * a0 / eps) * xi, stages)

    def _score(self, target: CountedTarget, x: Tensor, y: Tensor, lam: float) -> Tensor:
        if lam < self.l_switch:
            return self._nu_score(x, y, lam)
        sl = math.sqrt(lam)
        return target.grad(y / sl) / sl

    def _gamma(self, k: int, total: int) -> float:
        half = total // 2
        if k < half:
            return self.gamma_min
        frac = (k - half) / max(total - 1 - half, 1)
        return self.gamma_min + (self.gamma_max - self.gamma_min) * frac

    # -------------------------------------------------------------------------------------------
    def _run(self, target: CountedTarget, x0: Tensor, generator: torch.Generator | None,
             bar: Any) -> tuple[Tensor, dict[str, Any]]:
        h = self.step_size
        lams = self.lambdas()
        self._lip, self._stage_counts, self._init_ess = LipschitzTracker(), [], float("nan")
        _, _, n_final = self._phases()
        total = lams.numel() + n_final
        x = x0.clone()
        lam0 = float(lams[0])
        # fast state: Y = sqrt(l) U with U ~ N(c x, (c^2 - 1) I), a widened reference kernel (c = 1/sqrt(l)
        # is the kernel itself); its spread decides how far the fast process looks for modes.
        c = self.fast_init_scale
        if self.fast_init_candidates:
            # (X, Y) from the joint law at l_delta: U ~ pi by SIR (proposals around the given start),
            # Y = sqrt(l) U, X = sqrt(l) U + sqrt(1 - l) Z ~ mu_{l_delta}
            prop = c if c > 1.0 + 1e-6 else 1.0 / math.sqrt(lam0)
            u, self._init_ess = sample_target_sir(target, x, prop, self.fast_init_candidates, generator)
        if self.fast_init_candidates and self._init_ess >= x.shape[0]:
            y = math.sqrt(lam0) * u
            x = y + math.sqrt(1.0 - lam0) * randn_like(x, generator)
        else:  # no SIR, or a degenerate pool (ESS below the number of chains): the kernel start
            y = math.sqrt(lam0) * (c * x + math.sqrt(c * c - 1.0) * randn_like(x, generator))
        if self.stages is None:  # a first secant estimate of L from the starting points
            u0 = y / math.sqrt(lam0)
            self._lip.update(u0, target.grad(u0))
            u1 = u0 + 0.1 * randn_like(u0, generator)
            self._lip.update(u1, target.grad(u1))
        v = randn_like(x, generator) if self.underdamped else None
        score = self._score(target, x, y, lam0) if self.underdamped else None
        lam_prev = lam0
        for k, lam_t in enumerate(lams.tolist()):
            lam = float(lam_t)
            if self.rescale_fast and lam != lam_prev:
                # Y stands for sqrt(l) U with U in target units: carry U over the change of l, else a
                # coarse l grid shrinks U towards 0 by sqrt(l_old / l_new) and moves it across modes
                y = y * math.sqrt(lam / lam_prev)
            lam_prev = lam
            if not self.underdamped:
                y = self._fast_step(target, x, y, lam, generator)
                x = x + h * self._score(target, x, y, lam) + math.sqrt(2.0 * h) * randn_like(x, generator)
            else:
                assert v is not None and score is not None
                c = math.exp(-0.5 * self._gamma(k, total) * h)
                v = c * v + math.sqrt(1.0 - c * c) * randn_like(v, generator)
                v = v + 0.5 * h * score
                x = x + h * v
                y = self._fast_step(target, x, y, lam, generator)
                score = self._score(target, x, y, lam)
                v = v + 0.5 * h * score
                v = c * v + math.sqrt(1.0 - c * c) * randn_like(v, generator)
            bar.update(1)
        # plain Langevin on the target
        if n_final:
            g = target.grad(x)
            for j in range(n_final):
                if not self.underdamped:
                    x = x + h * g + math.sqrt(2.0 * h) * randn_like(x, generator)
                    g = target.grad(x)
                else:
                    assert v is not None
                    c = math.exp(-0.5 * self._gamma(lams.numel() + j, total) * h)
                    v = c * v + math.sqrt(1.0 - c * c) * randn_like(v, generator)
                    v = v + 0.5 * h * g
                    x = x + h * v
                    g = target.grad(x)
                    v = v + 0.5 * h * g
                    v = c * v + math.sqrt(1.0 - c * c) * randn_like(v, generator)
                bar.update(1)
        counts = self._stage_counts
        diagnostics = {"init_ess": getattr(self, "_init_ess", float("nan")), "lambda_final": float(lams[-1]), "num_steps": total, "lipschitz_estimate": self._lip.value,
                       "mean_stages": sum(counts) / max(len(counts), 1), "max_stages_used": max(counts, default=0)}
        return x, {"diagnostics": diagnostics}
