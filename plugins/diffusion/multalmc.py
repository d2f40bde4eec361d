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

from sciml.targets import CountedTarget
from sciml.validation import (
    check_bool,
    check_choice,
    check_nonnegative,
    check_nonnegative_int,
    check_positive,
    check_positive_int,
    check_probability,
)

from ._common import DiffusionSamplerBase, RunMonitor, randn_like
from .integrators import (
    LipschitzTracker,
    local_curvature,
    obabo_step,
    ou_exponential_step,
    skrock_stability_length,
    skrock_step,
    stages_for,
)
from .multiscale import ChainControl, FastProcess, PathSecants, control_diagnostics, fast_start, finite_rows
from .schedules import annealing_schedule

__all__ = ["MultALMC"]

#: cap of the Student-t variant's fast diffusion coefficient ``a(y)``: keeps the multiplicative noise
#: mean-square stable at large steps
_MAX_DIFFUSION = 4.0


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
            target's Lipschitz constant ``L`` tracked by secants of the gradients already computed;
            every step is then controlled chain by chain
            (:class:`~sciml_plugins.diffusion.multiscale.ChainControl`): a chain that became
            non-finite or left its stability interval is redone from its old state by sub-steps.
        max_stages: cap on the adaptive number of stages.
        max_substeps: cap on the sub-step tries of a redone chain per step; a chain that has not
            covered the step's time by then stops short (``diagnostics["truncated_chain_steps"]``,
            ``["unresolved_chains"]``; ``["fast_time_lost"]`` ``(n,)``: the fraction of each chain's
            checked fast time not covered).
        fast_init_scale: the fast state starts at ``Y = sqrt(l) U``, ``U ~ N(c X, (c^2 - 1) I)`` with
            ``c = fast_init_scale`` (``c = 1/sqrt(l_delta)`` is the reference kernel itself): the
            spread, in target units, over which the fast process first looks for modes.
        fast_init_candidates: ``K``; if > 0 (default 256) the fast state starts from ``rho_{l_delta, X}``
            itself: ``U ~ pi`` by pooled sampling importance resampling from a Gaussian fitted to
            the widened kernel above (:func:`~sciml_plugins.diffusion.multiscale.sample_target_sir`,
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
            at 4 to keep the multiplicative noise mean-square stable, with drift ``a grad log rho + grad a`` so ``rho`` stays invariant).
        df: degrees of freedom of the Student-t reference (> 0).
        init_std: standard deviation of the ``N(0, init_std^2 I)`` initial slow states.
        progress: show a progress bar (``None``: only when stderr is a terminal).

    Evaluation cost per chain: ``stages`` (SK-ROCK) or 1 (exponential) gradient evaluations per
    annealing step, plus 1 per step in the pi-form and plain-Langevin phases.
    """

    name = "mult-almc"
    _attribute_failures = False  # stages / probes are trial points: the step control redoes them

    def __init__(self, num_steps: int = 1000, step_size: float = 0.005, eps: float = 0.05, *,
                 underdamped: bool = False, gamma_min: float = 0.07, gamma_max: float = 0.5,
                 l_delta: float = 0.01, l_switch: float = 0.6,
                 schedule: str | Callable[[Tensor], Tensor] = "linear", hold_fraction: float = 0.1,
                 final_fraction: float = 0.05, integrator: str = "srock", stages: int | None = None,
                 max_stages: int = 40, max_substeps: int = 64,
                 reference: str = "gaussian", df: float = 3.0, fast_init_scale: float = 5.0,
                 fast_init_candidates: int = 256, init_std: float = 1.0,
                 precondition: str = "auto", max_evals: int | None = None, progress: bool | None = None) -> None:
        super().__init__(init_std=init_std,
                         precondition=precondition, max_evals=max_evals, progress=progress)
        self.num_steps = check_positive_int("num_steps", num_steps)
        self.step_size = check_positive("step_size", step_size)
        self.eps = check_positive("eps", eps)
        self.underdamped = check_bool("underdamped", underdamped)
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
        self.max_substeps = check_positive_int("max_substeps", max_substeps)
        self.reference = check_choice("reference", reference, ("gaussian", "student-t"))
        self.df = check_positive("df", df)
        self.fast_init_scale = check_positive("fast_init_scale", fast_init_scale)
        if self.fast_init_scale < 1:
            raise ValueError(f"fast_init_scale must be >= 1, got {fast_init_scale}")
        self.fast_init_candidates = check_nonnegative_int("fast_init_candidates", fast_init_candidates)
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

    def _drift_window(self) -> int | None:
        n_hold, n_anneal, n_final = self._phases()
        return n_hold + n_anneal if n_final >= 10 else None  # the plain Langevin phase on the target

    def lambdas(self) -> Tensor:
        """The ``lambda`` value of every step of the hold and annealing phases (float64)."""
        n_hold, n_anneal, _ = self._phases()
        ramp = annealing_schedule(self.schedule, n_anneal, self.l_delta, 1.0 - self.l_delta)
        return torch.cat([torch.full((n_hold,), self.l_delta, dtype=torch.float64), ramp])

    def _run(self, target: CountedTarget, x0: Tensor, generator: torch.Generator | None,
             monitor: RunMonitor) -> tuple[Tensor, dict[str, Any]]:
        return _Run(self, target, generator, x0).run(x0, monitor)


class _Run:
    """One MultALMC run: the sampler's settings ``cfg`` and the run's state (the Lipschitz tracker,
    stage counts and step-control counters)."""

    def __init__(self, cfg: MultALMC, target: CountedTarget, generator: torch.Generator | None, x0: Tensor) -> None:
        self.cfg, self.target, self.generator = cfg, target, generator
        self.lip, self.stage_counts, self.init_ess = LipschitzTracker(), [], float("nan")
        self.control = ChainControl(x0.shape[0], cfg.max_substeps, x0)

    # reference-dependent pieces -------------------------------------------------------------------
    def nu_score(self, x: Tensor, y: Tensor, lam: float) -> Tensor:
        """``grad_x log nu((x - y)/sqrt(1-l))`` (the nu-form one-sample score estimate)."""
        diff = x - y
        if self.cfg.reference == "gaussian":
            return -diff / (1.0 - lam)
        d = x.shape[-1]
        q = (diff * diff).sum(-1, keepdim=True) / (self.cfg.df * (1.0 - lam))
        return -((self.cfg.df + d) / self.cfg.df) * diff / ((1.0 - lam) * (1.0 + q))

    def fast_step(self, target: CountedTarget, x: Tensor, y: Tensor, lam: float,
                  gen: torch.Generator | None) -> Tensor:
        """One step of the fast process on ``rho_{lam, x}`` (time ``h``, speed ``1/eps``)."""
        h, eps, sl = self.cfg.step_size, self.cfg.eps, math.sqrt(lam)
        proc = _FastProcess(self, x, lam)
        probe = None
        if self.cfg.stages is None:
            # local curvature of log pi at the current fast states (one directional difference per
            # chain, 2 gradient evaluations): the secant estimate alone lags behind on targets whose
            # curvature grows without bound (double wells), which makes the step unstable
            u = y / sl
            direction = randn_like(u, gen)
            direction = direction / direction.norm(dim=-1, keepdim=True).clamp_min(1e-30)
            delta = 1e-4 * (1.0 + u.norm(dim=-1, keepdim=True))
            diff = (target.grad(u + delta * direction) - target.grad_at_states(u)).norm(dim=-1, keepdim=True) / delta
            finite = diff[torch.isfinite(diff)]
            local = 2.0 * float(finite.max()) if finite.numel() else 0.0
            stiff = (1.0 / (1.0 - lam) + max(self.lip.value, local) / lam) / eps
            if self.cfg.reference == "student-t":  # the diffusion a(y) <= _MAX_DIFFUSION scales the drift
                stiff *= _MAX_DIFFUSION
            stages = stages_for(stiff, h, self.cfg.max_stages)
            if self.cfg.integrator == "srock":
                lip_i = 2.0 * diff.squeeze(-1)
                capped = 0.8 * skrock_stability_length(stages) < h * stiff
                if capped:
                    # the global estimate is beyond max_stages: no stage count makes the step stable for
                    # every chain, so take the stages that cover 90 % of the chains' own stiffness and
                    # check every chain in full (the control redoes the others in sub-steps)
                    ok = torch.isfinite(lip_i)
                    if bool(ok.any()):
                        typical = float(torch.quantile(proc.stiffness(lip_i[ok]), 0.9))
                        stages = max(stages_for(typical, h, self.cfg.max_stages), 2)
                probe = (direction, lip_i, capped)
        else:
            stages = self.cfg.stages
        self.stage_counts.append(stages)

        xi = randn_like(y, gen)
        if self.cfg.reference == "gaussian" and self.cfg.integrator == "exponential":
            a = 1.0 / (eps * (1.0 - lam))
            u = y / sl
            g = target.grad_at_states(u)
            self.lip.update(u, g)
            return ou_exponential_step(y, a, x, (g / sl) / eps, h, 1.0 / eps, xi)
        path = PathSecants(y.shape[0], y) if probe is not None else None
        noise = torch.sqrt(2.0 * h * proc.diffusion(None, y) / eps) * xi
        y_new = skrock_step(y, proc.drift(None, path, track=True), h, noise, stages)
        if probe is None:
            return y_new
        assert path is not None
        direction, lip_i, capped = probe
        if not capped:  # the stages cover every chain's start stiffness: the free check
            return self.control.check_path(proc, y, y_new, h, stages, path.value, direction, lip_i, gen)
        rows = finite_rows(y)
        if rows.numel() == 0:
            return y_new
        # the probe's random direction sees only ~1/sqrt(dim) of a dominant eigenvalue (the funnel's
        # x0 direction): one power iteration at the start sharpens it (2 gradients per chain)
        c0, d0 = local_curvature(target.grad, y[rows] / sl, direction[rows], iterations=1)
        lip0 = torch.maximum(torch.nan_to_num(2.0 * c0, nan=0.0, posinf=0.0),
                             torch.nan_to_num(lip_i[rows], nan=0.0, posinf=0.0))
        return self.control.check_full(proc, rows, y, y_new, h, stages, path.value, d0, lip0, gen)[0]

    def score(self, target: CountedTarget, x: Tensor, y: Tensor, lam: float) -> Tensor:
        if lam < self.cfg.l_switch:
            return self.nu_score(x, y, lam)
        sl = math.sqrt(lam)
        return target.grad_at_states(y / sl) / sl

    def gamma(self, k: int, total: int) -> float:
        half = total // 2
        if k < half:
            return self.cfg.gamma_min
        frac = (k - half) / max(total - 1 - half, 1)
        return self.cfg.gamma_min + (self.cfg.gamma_max - self.cfg.gamma_min) * frac

    # -------------------------------------------------------------------------------------------
    def start(self, x: Tensor, lam0: float) -> tuple[Tensor, Tensor]:
        """Starting ``(X, Y)`` at ``l = lam0``: ``Y = sqrt(l) U``, ``U`` from :func:`fast_start` (the SIR
        draws of ``pi``, then ``X = Y + sqrt(1 - l) Z ~ mu_l``; or the widened kernel around ``X``)."""
        cfg, gen = self.cfg, self.generator
        c = cfg.fast_init_scale
        sir_scale = c if c > 1.0 + 1e-6 else 1.0 / math.sqrt(lam0)
        first = fast_start(self.target, x, c, cfg.fast_init_candidates, gen, sir_scale=sir_scale)
        self.init_ess = first.ess
        y = math.sqrt(lam0) * first.u
        if first.from_target:
            x = y + math.sqrt(1.0 - lam0) * randn_like(x, gen)
        if cfg.stages is None:  # a first secant estimate of L from the starting points
            u0 = y / math.sqrt(lam0)
            self.lip.update(u0, self.target.grad_at_states(u0))
            u1 = u0 + 0.1 * randn_like(u0, gen)
            self.lip.update(u1, self.target.grad(u1))
        return x, y

    def run(self, x0: Tensor, monitor: RunMonitor) -> tuple[Tensor, dict[str, Any]]:
        cfg, target, gen = self.cfg, self.target, self.generator
        h, lams = cfg.step_size, cfg.lambdas()
        total = cfg._num_iterations()
        lam_prev = float(lams[0])
        x, y = self.start(x0.clone(), lam_prev)
        v = randn_like(x, gen) if cfg.underdamped else None
        score = self.score(target, x, y, lam_prev) if cfg.underdamped else None
        for k, lam in enumerate(lams.tolist()):
            if lam != lam_prev:
                # Y stands for sqrt(l) U with U in target units: carry U over the change of l (else a
                # coarse l grid shrinks U towards 0 and moves it across modes), and the reference noise
                # Z = (X - Y) / sqrt(1 - l) with it: (U, Z) -> (X, Y) pushes pi x nu onto the joint law
                # at l, so a pair stationary at l' stays stationary at l
                y_new = y * math.sqrt(lam / lam_prev)
                x = y_new + math.sqrt((1.0 - lam) / (1.0 - lam_prev)) * (x - y)
                y = y_new
            lam_prev = lam
            if v is None:
                y = self.fast_step(target, x, y, lam, gen)
                x = x + h * self.score(target, x, y, lam) + math.sqrt(2.0 * h) * randn_like(x, gen)
                x, y = monitor.end_step(x, y)
            else:
                assert score is not None

                def slow_force(x_new: Tensor, lam: float = lam) -> Tensor:  # the fast step, then the score estimate
                    nonlocal y
                    y = self.fast_step(target, x_new, y, lam, gen)
                    return self.score(target, x_new, y, lam)

                x, v, score = obabo_step(x, v, score, slow_force, h, self.gamma(k, total), gen)
                x, y, v = monitor.end_step(x, y, v)
            if monitor.stopped:
                break
        if not monitor.stopped:
            x = self.final_phase(x, v, lams.numel(), total, monitor)
        return x, {"diagnostics": self.diagnostics(float(lams[-1]), total)}

    def final_phase(self, x: Tensor, v: Tensor | None, first: int, total: int, monitor: RunMonitor) -> Tensor:
        """Plain (over- or underdamped) Langevin dynamics on the target, steps ``first .. total - 1``."""
        h, target, gen = self.cfg.step_size, self.target, self.generator
        g = target.grad_at_states(x) if total > first else None
        for k in range(first, total):
            assert g is not None
            if v is None:
                x = x + h * g + math.sqrt(2.0 * h) * randn_like(x, gen)
                g = target.grad_at_states(x)
                x = monitor.end_step(x)
            else:
                x, v, g = obabo_step(x, v, g, target.grad_at_states, h, self.gamma(k, total), gen)
                x, v = monitor.end_step(x, v)
            if monitor.stopped:
                break
        return x

    def diagnostics(self, lambda_final: float, total: int) -> dict[str, Any]:
        counts = self.stage_counts
        return {"init_ess": self.init_ess, "lambda_final": lambda_final, "num_steps": total,
                "lipschitz_estimate": self.lip.value, "mean_stages": sum(counts) / max(len(counts), 1),
                "max_stages_used": max(counts, default=0), **control_diagnostics(self.control)}


class _FastProcess(FastProcess):
    """MultALMC's fast process on ``rho_{lam, x}`` at one step: a fast state ``z`` is ``sqrt(lam)`` times
    a target point; the Gaussian reference gives unit diffusion, the Student-t one the state-dependent
    ``a(z)`` below."""

    def __init__(self, run: _Run, x: Tensor, lam: float) -> None:
        super().__init__(run.target, run.cfg.eps, math.sqrt(lam))
        self.run, self.x, self.lam = run, x, lam
        self.student = run.cfg.reference == "student-t"
        self.df = run.cfg.df
        self.c = 1.0 / (self.df * (1.0 - lam))  # Student t: q = c |x - z|^2

    def stiffness(self, lip: Tensor) -> Tensor:
        stiff = (1.0 / (1.0 - self.lam) + lip / self.lam) / self.eps
        return stiff * _MAX_DIFFUSION if self.student else stiff

    def drift(self, rows: Tensor | None, path: PathSecants | None = None,
              track: bool = False) -> Callable[[Tensor], Tensor]:
        x = self.x if rows is None else self.x[rows]
        eps, lam, sl = self.eps, self.lam, self.scale

        def target_part(z: Tensor) -> Tensor:  # l^{-1/2} grad log pi(z / sqrt(l))
            u = z / sl
            g = self.target.grad(u)
            if track:
                self.run.lip.update(u, g)
            if path is not None:
                path.update(u, g)
            return g / sl

        if not self.student:
            return lambda z: ((x - z) / (1.0 - lam) + target_part(z)) / eps
        # Student-t reference, tailored fast dynamics: scalar diffusion a(y) = 1 + min(q, a_max - 1),
        # q = |x - y|^2 / (df (1 - l)); drift a grad log rho + grad a keeps rho invariant. The cap a_max
        # keeps the multiplicative noise mean-square stable at large steps (grad a = 0 beyond it).
        d, c, cap, df = x.shape[-1], self.c, _MAX_DIFFUSION - 1.0, self.df

        def drift_t(z: Tensor) -> Tensor:
            diff = x - z
            q = c * (diff * diff).sum(-1, keepdim=True)
            a_z, inside = 1.0 + q.clamp(max=cap), (q < cap).to(diff.dtype)
            log_nu = ((df + d) / df) * diff / ((1.0 - lam) * (1.0 + q))
            grad_a = -2.0 * c * diff * inside
            return (a_z * (log_nu + target_part(z)) + grad_a) / eps

        return drift_t

    def diffusion(self, rows: Tensor | None, z: Tensor) -> Tensor:
        if not self.student:
            return super().diffusion(rows, z)
        diff = (self.x if rows is None else self.x[rows]) - z
        return 1.0 + (self.c * (diff * diff).sum(-1, keepdim=True)).clamp(max=_MAX_DIFFUSION - 1.0)
