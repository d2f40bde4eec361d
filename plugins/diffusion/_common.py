"""Shared plumbing of the diffusion-sampler plugins.

Target wrapping (:func:`sciml.targets.as_target`), per-point evaluation counting, argument and
start-up checks, random draws that follow the target's dtype / device, progress bars and
divergence tracking. Nothing here is specific to one algorithm.
"""

from __future__ import annotations

import abc
import math
import time
import warnings
from typing import Any

import torch
from torch import Tensor

from sciml.diagnostics import draw_diagnostics, ensemble_drift, low_density_draws
from sciml.interfaces import Sampler, Samples
from sciml.metrics import mode_assignment
from sciml.progress import check_progress, progress_bar
from sciml.targets import Target, as_target
from sciml.targets.counted import CountedTarget
from sciml.targets.laplace import Laplace, LaplaceError, StandardisedTarget, laplace_fit, laplace_starts
from sciml.validation import (
    check_choice,
    check_generator,
    check_positive,
    check_positive_int,
    check_tensor,
)

__all__ = ["DiffusionSamplerBase", "logmeanexp"]


def logmeanexp(a: Tensor) -> float:
    """``log(mean(exp(a)))`` of a 1-D tensor of log weights, computed stably.

    ``-inf`` is a zero weight and counts in the mean (as in :func:`sciml.metrics.log_z_estimates`);
    NaN and ``+inf`` entries (diverged chains) are left out. ``-inf`` when every counted weight is
    zero, NaN when no entry is counted.
    """
    a = a[~torch.isnan(a) & (a != math.inf)]
    if a.numel() == 0:
        return float("nan")
    return float(torch.logsumexp(a, 0) - math.log(a.numel()))


LAPLACE_RESTARTS = 4
"""Random starts of the Laplace preconditioner's mode search beside the target's initial point: a
posterior can have local modes (Lotka-Volterra's, from pyro's initial point, is 40 nats below the
posterior's bulk), and one L-BFGS run finds the nearest."""

DIVERGENCE_FACTOR = 1e8
"""A chain is diverged once ``max_j |x_j|`` exceeds ``DIVERGENCE_FACTOR`` times the run's scale.

1e8 initial scales is absurd for any legitimate chain (a Cauchy draw beyond 1e8 has probability ~6e-9),
while a hopeless step size grows geometrically and reaches it within a few steps."""


def _minor_mode_draws(z: Tensor, pre: StandardisedTarget, fit: Laplace) -> list[tuple[int, float, float]]:
    """For each other mode the Laplace starts reached: ``(draws nearest it, the count its Laplace mass
    allows, its mass gap in nats)``. ``z`` are the draws in the fit's coordinates (diverged rows NaN);
    the allowance is ``max(3, 10 n exp(-gap))`` for ``n`` finite draws, so that a count above it means
    chains stuck in a mode the posterior gives almost no mass."""
    finite = z[torch.isfinite(z).all(-1)]
    centres = torch.cat([torch.zeros_like(z[:1]), pre.to_z(torch.stack([m for m, _ in fit.other_modes]))])
    n = finite.shape[0]
    nearest = mode_assignment(finite, centres) if n else torch.zeros(0, dtype=torch.long)
    out = []
    for k, (_, log_ev) in enumerate(fit.other_modes, start=1):
        gap = fit.log_evidence - log_ev
        out.append((int((nearest == k).sum()), max(3.0, 10.0 * n * math.exp(-gap)), gap))
    return out


def _minor_mode_message(name: str, counts: list[tuple[int, float, float]], finite: int) -> str:
    stuck = [(c, g) for c, a, g in counts if c > a]
    parts = ", ".join(f"{c} near a mode {g:.0f} nats of Laplace mass below the main one" for c, g in stuck)
    return (f"{name}: of {finite} finite draws, {parts}: those chains are stuck in local modes the posterior "
            "gives almost no mass, so the draws are not from the posterior (more steps, or drop / inspect "
            "them: diagnostics['minor_mode_draws'] has the counts)")


def _low_density_rows(target: CountedTarget, x: Tensor) -> Tensor:
    """Mask of the finite final draws ``x`` that :func:`~sciml.diagnostics.low_density_draws` flags (NaN,
    ``-inf`` or far below the other draws' log-density). One counted evaluation per finite draw."""
    finite = torch.isfinite(x).all(-1)
    low = torch.zeros_like(finite)
    if bool(finite.any()):
        low[finite] = low_density_draws(target.log_prob(x[finite], per_chain=False))
    return low


def _low_density_message(name: str, low: Tensor, diagnostics: dict[str, Any]) -> str:
    unresolved = diagnostics.get("unresolved_chains")
    both = int((low & unresolved.to(low.device)).sum()) if isinstance(unresolved, Tensor) else 0
    also = f" ({both} of them unresolved at some step)" if both else ""
    return (f"{name}: {int(low.sum())} of {low.numel()} draws{also} ended where the target's log-density is "
            "non-finite or far below the other draws' (sciml.diagnostics.low_density_draws): chains the "
            "dynamics lost, not posterior draws. They are returned as diverged (NaN rows, marked in "
            "Samples.diverged); diagnostics['low_density_draws'] keeps their values (rows "
            "diagnostics['low_density_chains']) for a target whose posterior truly has such draws")


def _drift_message(name: str, drift: dict[str, Any], window: int, preconditioned: bool) -> str | None:
    """The warning for chains still moving over the last ``window`` steps, else ``None``."""
    if not drift.get("drifting"):
        return None
    flagged = drift["flagged"].nonzero().squeeze(1).tolist()
    t = torch.maximum(drift["t_mean"].abs(), drift["t_var"].abs())
    j = max(flagged, key=lambda i: float(t[i]))
    space = "the run's Laplace-standardised coordinates" if preconditioned else "the target's coordinates"
    bias, ratio = float(drift["projected_bias"][j]), float(drift["projected_sd_ratio"][j])
    where = (f"extrapolated, its mean {bias:+.2f} sd from the draws' and its sd {ratio:.2f}x theirs"
             if math.isfinite(bias) and math.isfinite(ratio) and ratio > 0 else
             "no fixed point to extrapolate to (the chains moved together, not towards a stationary law)")
    return (f"{name}: the chains were still moving over the last {window} steps (sciml.diagnostics."
            f"ensemble_drift) in {len(flagged)} of the {t.numel()} coordinates ({space}); the clearest, "
            f"coordinate {j} (t = {float(t[j]):.1f}): {where}. The draws "
            "have not forgotten their start: run longer (num_steps) or start closer (init); "
            "diagnostics['drift'] has every coordinate")


def target_scale(target: Target) -> float:
    """A size of the region the target lives in, from what it exposes (else 0).

    ``max |modes|`` for targets with modes, ``max(|mean| + stddev)`` of a wrapped torch distribution;
    non-finite or unavailable figures count as 0.
    """
    values: list[float] = []
    modes = getattr(target, "modes", None)
    if isinstance(modes, Tensor) and modes.numel():
        values.append(float(modes.abs().max()))
    dist = getattr(target, "dist", None)
    if dist is not None:
        try:
            values.append(float((dist.mean.abs() + dist.stddev).max()))
        except Exception:  # noqa: BLE001 - distributions without a (finite) mean or stddev
            pass
    finite = [v for v in values if math.isfinite(v)]
    return max(finite, default=0.0)


class RunMonitor:
    """Per-run bookkeeping of a sampler: progress bar, completed steps, divergence and early stop.

    A chain is diverged once one of its states is non-finite or beyond ``bound`` (``max_j |x_j|``), or
    the target returned NaN / ``+inf`` at its state (``CountedTarget.bad_chains``). The mask is sticky:
    its rows are set to NaN in the states passed to :meth:`end_step`, so they are never evaluated
    again and never weighted. Once every chain has diverged the run stops (``stopped``).
    """

    def __init__(self, target: CountedTarget, num_chains: int, total: int, bound: float, bar: Any,
                 check_every: int = 16, max_evals: int | None = None, snapshot_at: int | None = None) -> None:
        self.target, self.total, self.bound, self.bar = target, total, bound, bar
        self.check_every, self.max_evals = check_every, max_evals
        self.snapshot_at, self.snapshot = snapshot_at, None  # the states after step ``snapshot_at``
        self.steps = 0
        self.diverged = torch.zeros(num_chains, dtype=torch.bool, device=target.device)
        self.n_flagged = 0
        self.stopped_at: int | None = None
        self.budget_spent_at: int | None = None

    @property
    def stopped(self) -> bool:
        """Whether every chain has diverged or the evaluation budget is spent (the sampler's loop breaks)."""
        return self.stopped_at is not None or self.budget_spent_at is not None

    def end_step(self, *states: Tensor) -> Any:
        """Close a step: advance the bar, flag diverged chains in ``states`` ``(n, d)`` and return the
        states with the diverged rows set to NaN (one tensor if one was given)."""
        self.steps += 1
        self.target.steps_done = self.steps
        self.bar.update(1)
        if self.target.saw_nonfinite or self.steps % self.check_every == 0 or self.steps >= self.total \
                or self.steps == self.snapshot_at:
            states = self.flag(*states)
        if self.steps == self.snapshot_at:
            self.snapshot = states[0].detach().clone()
        if self.max_evals is not None and self.target.n_evals >= self.max_evals and self.steps < self.total:
            self.budget_spent_at = self.steps
        return states[0] if len(states) == 1 else states

    def flag(self, *states: Tensor) -> tuple[Tensor, ...]:
        """Flag chains that diverged in ``states`` (or at which the target failed); NaN their rows."""
        self.target.saw_nonfinite = False
        bad = self.target.bad_chains.clone()
        self.target.bad_chains.zero_()
        for x in states:
            bad |= ~(x.abs().amax(-1) <= self.bound)  # NaN compares False: flagged
        new = bad & ~self.diverged
        if not bool(new.any()):
            return states
        self.n_flagged += int(new.sum())
        self.diverged |= new
        if bool(self.diverged.all()) and self.stopped_at is None:
            self.stopped_at = self.steps
        return tuple(self._nan_rows(x, new) for x in states)

    @staticmethod
    def _nan_rows(x: Tensor, rows: Tensor) -> Tensor:
        """``x`` with ``rows`` set to NaN; ``x`` itself when they already are (a sampler may cache by identity)."""
        if not bool((rows & ~torch.isnan(x).all(-1)).any()):
            return x
        return torch.where(rows.unsqueeze(-1), torch.full_like(x, float("nan")), x)

    def reindex(self, idx: Tensor) -> None:
        """Follow a resampling of the chains (``new[i] = old[idx[i]]``)."""
        self.diverged = self.diverged[idx]
        self.target.bad_chains = self.target.bad_chains[idx]

    def report(self, num_chains: int, weighted: bool) -> str | None:
        """The warning text for a run with diverged chains or target failures, else ``None``."""
        parts = []
        if self.n_flagged:
            n_div = int(self.diverged.sum())
            events = (f"; {self.n_flagged} divergence events, counting resampled copies that diverged again"
                      if self.n_flagged != n_div else "")
            parts.append(f"{n_div} of {num_chains} chains diverged (a non-finite state, a state beyond "
                         f"|x| = {self.bound:.3g}, i.e. {DIVERGENCE_FACTOR:.0e} x (initial spread + target "
                         f"scale), or a NaN / +inf target value at the state){events}")
        if self.stopped_at is not None:
            parts.append(f"the run stopped after {self.stopped_at} of {self.total} steps because every chain "
                         "had diverged (step_size too large, or a broken target)")
        if self.budget_spent_at is not None:
            parts.append(f"the run stopped after {self.budget_spent_at} of {self.total} steps because the "
                         f"evaluation budget max_evals={self.max_evals} was spent: the draws are those of an "
                         "unfinished run (for an annealing sampler, of an intermediate distribution, not the "
                         "target; its log-weights and log Z are dropped)")
        tgt = self.target
        if tgt.n_bad_points and (self.n_flagged or tgt.n_bad_pool or tgt.attribute):
            parts.append(f"the target returned non-finite values (NaN or +inf log-density, or a non-finite "
                         f"gradient) at {self.target.n_bad_points} finite points, first after "
                         f"{self.target.first_bad_step} steps")
        if tgt.n_bad_proposals:
            parts.append(f"the target returned NaN / +inf at {tgt.n_bad_proposals} MALA proposals (counted "
                         "as rejections; the chains were not marked)")
        if not parts:
            return None
        tail = "; diverged chains are NaN rows in Samples.x, marked in Samples.diverged" if self.n_flagged else ""
        if weighted and self.n_flagged:
            tail += (", and are excluded from log_weights (-inf) and log_z: log_z is then an estimate over the "
                     "surviving chains only and is biased (the diverged chains' share of Z is left out)")
        return f"{self.target.sampler}: " + "; ".join(parts) + tail


class DiffusionSamplerBase(Sampler):
    """Common ``sample`` driver: validation, target wrapping, initialisation, bookkeeping.

    Subclasses implement ``_run(target, x0, generator, monitor) -> (x, extras)``, keeping the run's
    state in local objects (the instance is the settings only and stays unchanged), where ``target`` is
    a :class:`CountedTarget`, ``x0`` the ``(n, dim)`` initial states drawn from
    ``N(0, init_std^2 I)`` (or the user's ``init``), ``monitor`` the run's :class:`RunMonitor` (the
    loop calls ``monitor.end_step(states)`` once per step and stops when ``monitor.stopped``), and
    ``extras`` a dict of optional :class:`~sciml.Samples` fields (``log_weights``, ``log_z``,
    ``diagnostics``).
    """

    #: whether every target evaluation is at a chain's state or MALA proposal (a non-finite value there
    #: marks the chain diverged); ``False`` for samplers evaluating trial points of a step control
    _attribute_failures = True
    #: steps between two divergence checks of the states (a non-finite input or value is acted on at
    #: the end of its step); AIS / SMC check every temperature (weights, resampling)
    _check_every = 16

    def __init__(self, *, init_std: float = 1.0, precondition: str = "auto", max_evals: int | None = None,
                 progress: bool | None = None) -> None:
        self.init_std = check_positive("init_std", init_std)
        self.precondition = check_choice("precondition", precondition, ("auto", "laplace", "none"))
        self.max_evals = None if max_evals is None else check_positive_int("max_evals", max_evals)
        self.progress = check_progress(progress)

    # subclasses -----------------------------------------------------------------------------
    @abc.abstractmethod
    def _num_iterations(self) -> int:
        """Length of the progress bar (slow steps, temperatures, ...)."""

    @abc.abstractmethod
    def _run(self, target: CountedTarget, x0: Tensor, generator: torch.Generator | None,
             monitor: RunMonitor) -> tuple[Tensor, dict[str, Any]]:
        """Run the chains from ``x0`` and return the final states and the extra Samples fields."""

    def _drift_window(self) -> int | None:
        """The step after which the chains run on the target alone and should be stationary (their
        states then and at the end feed :func:`sciml.diagnostics.ensemble_drift`); ``None``: no check."""
        return None

    # driver ----------------------------------------------------------------------------------
    def sample(self, target: Any, num_samples: int, *, generator: torch.Generator | None = None,
               init: Tensor | None = None) -> Samples:
        """Draw ``num_samples`` points from ``target``.

        Args:
            target: a :mod:`sciml.targets` target, a torch / pyro ``Distribution`` with event
                shape ``(dim,)``, or any object with ``log_prob`` and ``dim``.
            num_samples: number of chains / particles (= returned draws), an int >= 1.
            generator: source of randomness (on the target's device); equal seeds give equal draws.
            init: optional finite initial states ``(num_samples, dim)`` (converted to the target's
                dtype); default ``N(0, init_std^2 I)``.

        Returns:
            :class:`~sciml.Samples` with ``x`` ``(num_samples, dim)`` in the target's dtype and on
            its device, per-point ``n_evals`` / ``n_grad_evals`` and the ``diverged`` mask (diverged
            chains are NaN rows; for unweighted draws of a finished run this includes the lost chains
            :func:`sciml.diagnostics.low_density_draws` flags at the end, one counted evaluation per
            draw); ``diagnostics`` holds ``n_diverged``, ``n_low_density`` (of them, the lost
            chains; ``low_density_chains`` their mask, ``low_density_draws`` their values
            ``(n_low_density, dim)``), ``stopped_at_step`` (``None``
            unless every chain diverged and the run stopped early), ``divergence_bound``,
            ``n_nonfinite_target_points`` and ``n_nonfinite_proposals`` (NaN / +inf MALA proposals, rejected),
            ``preconditioner`` (``"laplace"`` / ``"none"``), ``preconditioner_start`` (the Laplace
            mode's start: 0 the initial point, 1 - 4 a random start), ``minor_mode_draws`` (where the
            starts reached other modes, unweighted draws: per mode, the draws nearest it, the count its
            Laplace mass allows and the mass gap in nats; a count above the allowance warns),
            ``budget_spent_at_step`` (``None`` unless
            ``max_evals`` stopped the run), ``drift`` (samplers that end on the target alone, ULA /
            ULMC over their second half and MultALMC over its final phase:
            :func:`sciml.diagnostics.ensemble_drift` of the states then and at the end, in the run's
            (preconditioned) coordinates) and, for
            unweighted draws, ArviZ's ``r_hat``, ``ess_bulk``, ``ess_tail`` ``(dim,)``
            (:func:`sciml.diagnostics.draw_diagnostics`).

        Warns:
            RuntimeWarning: when chains diverged or were lost (low density), the target returned
                NaN / ``+inf`` values, chains are stuck in minor modes, or they were still drifting
                at the end.

        Raises:
            ValueError: non-positive ``num_samples``; ``init`` of the wrong shape or not finite; a
                target whose ``log_prob`` returns the wrong shape, non-finite values or fails at
                the start.
            TypeError: ``num_samples`` not an int; ``generator`` not a ``torch.Generator``; ``init``
                not a tensor; ``target`` not usable.
            TargetError: the target raised during the run.
        """
        num_samples = check_positive_int("num_samples", num_samples)
        check_generator("generator", generator)
        tgt = as_target(target)
        init = self._checked_init(tgt, num_samples, init)
        start = time.perf_counter()
        fit_counts = CountedTarget(tgt, self.name, 0, 0, attribute=False)
        pre, fit = self._preconditioner(tgt, fit_counts, init)
        run_target = tgt if pre is None else pre
        x0 = self._initial_states(run_target, pre, num_samples, init, generator)
        total = self._num_iterations()
        counted = CountedTarget(run_target, self.name, num_samples, total, self._attribute_failures)
        counted.n_evals, counted.n_grad_evals = fit_counts.n_evals, fit_counts.n_grad_evals
        bound = DIVERGENCE_FACTOR * (float(x0.abs().max()) + self.init_std + target_scale(run_target))
        with progress_bar(total=total, desc=self.name, progress=self.progress) as bar:
            monitor = RunMonitor(counted, num_samples, total, bound, bar, self._check_every, self.max_evals,
                                 self._drift_window())
            x, extras = self._run(counted, x0, generator, monitor)
            x = monitor.flag(x)[0]  # the last check (runs may end between two checks)
        weighted = "log_weights" in extras
        low = torch.zeros(num_samples, dtype=torch.bool, device=x.device)
        if extras.get("log_weights") is None and monitor.budget_spent_at is None:  # finished, unweighted
            low = _low_density_rows(counted, x)
        if monitor.budget_spent_at is not None:  # the weights of a cut-short annealing are not valid
            extras.pop("log_weights", None)
            extras.pop("log_z", None)
        dropped, x = x[low], RunMonitor._nan_rows(x, low)
        diverged = ~torch.isfinite(x).all(dim=-1)
        diagnostics = dict(extras.pop("diagnostics", {}))
        messages = [monitor.report(num_samples, weighted)]
        if bool(low.any()):
            messages.append(_low_density_message(self.name, low, diagnostics))
        if fit is not None and fit.other_modes and extras.get("log_weights") is None:
            diagnostics["minor_mode_draws"] = _minor_mode_draws(x, pre, fit)
            if any(c > a for c, a, _ in diagnostics["minor_mode_draws"]):
                messages.append(_minor_mode_message(self.name, diagnostics["minor_mode_draws"],
                                                    int((~diverged).sum())))
        if monitor.snapshot is not None and not monitor.stopped:
            diagnostics["drift"] = ensemble_drift(monitor.snapshot, x.detach())  # the run's coordinates
            messages.append(_drift_message(self.name, diagnostics["drift"], total - monitor.snapshot_at,
                                           pre is not None))
        for message in filter(None, messages):
            warnings.warn(message, RuntimeWarning, stacklevel=2)
        x, dropped = self._to_target_space(pre, x, dropped, extras)
        if extras.get("log_weights") is None:  # weighted draws: their ESS is the weights' (diagnostics["ess"])
            diagnostics.update(draw_diagnostics(x, diverged))
        diagnostics.update(
            preconditioner="none" if pre is None else "laplace", preconditioner_evals=fit_counts.n_evals,
            preconditioner_start=None if fit is None else fit.start,
            budget_spent_at_step=monitor.budget_spent_at, wall_time_s=time.perf_counter() - start,
            n_diverged=int(diverged.sum()), n_low_density=int(low.sum()), low_density_chains=low,
            low_density_draws=dropped.detach(), stopped_at_step=monitor.stopped_at, divergence_bound=bound,
            n_nonfinite_target_points=counted.n_bad_points, n_nonfinite_proposals=counted.n_bad_proposals,
            evals_per_chain=counted.n_evals / num_samples, grad_evals_per_chain=counted.n_grad_evals / num_samples)
        return Samples(x=x.detach(), n_evals=int(counted.n_evals), n_grad_evals=int(counted.n_grad_evals),
                       diverged=diverged, diagnostics=diagnostics, **extras)

    def _checked_init(self, tgt: Target, num_samples: int, init: Tensor | None) -> Tensor | None:
        """The user's ``init`` checked (shape, finite, usable start) and in the target's dtype / device."""
        if init is None:
            return None
        check_tensor("init", init, shape=(num_samples, tgt.dim), floating=False)
        init = init.to(dtype=tgt.dtype, device=tgt.device)
        check_tensor("init", init)  # finite in the target's dtype too
        self._check_start(tgt, init)
        return init

    def _initial_states(self, run_target: Target, pre: StandardisedTarget | None, num_samples: int,
                        init: Tensor | None, generator: torch.Generator | None) -> Tensor:
        """``(num_samples, dim)`` starts in the run's coordinates: ``init`` (standardised when
        preconditioned), else ``N(0, init_std^2 I)`` there, checked on the run's target."""
        if init is not None:
            return init if pre is None else pre.to_z(init)
        x0 = self.init_std * torch.randn(num_samples, run_target.dim, dtype=run_target.dtype,
                                         device=run_target.device, generator=generator)
        self._check_start(run_target, x0)
        return x0

    @staticmethod
    def _to_target_space(pre: StandardisedTarget | None, x: Tensor, dropped: Tensor,
                         extras: dict[str, Any]) -> tuple[Tensor, Tensor]:
        """Map the run's draws (and the dropped ones) back from standardised coordinates, with the weights
        and normaliser: ``p_z = pi(mean + scale z)``, so ``Z_z = Z / |det scale|``."""
        if pre is None:
            return x, dropped
        for key in ("log_weights", "log_z"):
            if extras.get(key) is not None:
                extras[key] = extras[key] + pre.log_det
        return pre.to_x(x), pre.to_x(dropped)

    def _preconditioner(self, tgt: Target, counted: CountedTarget, init: Tensor | None
                        ) -> tuple[StandardisedTarget | None, Laplace | None]:
        """The Laplace-standardised target (``precondition="laplace"``, or ``"auto"`` for targets that set
        ``laplace_preconditioning``), fitted from the target's ``initial_point`` (else the mean of ``init``,
        else 0) and :data:`LAPLACE_RESTARTS` fixed random starts (:func:`laplace_starts`), the mode with
        the most Laplace mass kept, with the fit (:class:`~sciml.targets.laplace.Laplace`); ``(None, None)``
        without preconditioning. ``"auto"`` warns and runs unpreconditioned when the fit fails."""
        if self.precondition == "none" or (self.precondition == "auto"
                                           and not getattr(tgt, "laplace_preconditioning", False)):
            return None, None
        start = getattr(tgt, "initial_point", None)
        if start is None:
            start = init.mean(0) if init is not None else torch.zeros(tgt.dim, dtype=tgt.dtype, device=tgt.device)
        try:
            starts = laplace_starts(start.to(dtype=tgt.dtype, device=tgt.device), LAPLACE_RESTARTS)
            fit = laplace_fit(counted.log_prob_and_grad, starts)
        except (LaplaceError, torch.linalg.LinAlgError) as exc:
            if self.precondition == "laplace":
                raise ValueError(f"{self.name}: precondition='laplace' failed: {exc}") from exc
            warnings.warn(f"{self.name}: the Laplace preconditioner failed ({exc}); sampling without it",
                          RuntimeWarning, stacklevel=3)
            return None, None
        return StandardisedTarget(tgt, fit.mean, fit.scale), fit

    @staticmethod
    def _check_start(tgt: Target, x0: Tensor) -> None:
        """Evaluate the target on the first few starting points: shape and finiteness."""
        probe = x0[: min(8, x0.shape[0])]
        name = f"target.log_prob ({type(getattr(tgt, 'obj', getattr(tgt, 'dist', tgt))).__name__})"
        try:
            with torch.no_grad():
                lp = tgt.log_prob(probe)
        except Exception as exc:  # any failure of user code, e.g. a dimension mismatch inside the target
            raise ValueError(f"{name} failed on the first starting points, shape {tuple(probe.shape)} "
                             f"(a dimension mismatch, or the target cannot be evaluated there): {exc}") from exc
        if not isinstance(lp, Tensor) or tuple(lp.shape) != (probe.shape[0],):
            got = tuple(lp.shape) if isinstance(lp, Tensor) else type(lp).__name__
            raise ValueError(f"{name} must return shape (n,) = ({probe.shape[0]},) for inputs "
                             f"(n, dim) = {tuple(probe.shape)}, got {got}")
        if bool((torch.isnan(lp) | (lp == math.inf)).any()):
            raise ValueError(f"{name} is NaN or +inf at the starting points; check the target or pass "
                             "another `init` (-inf, a zero density outside the support, is allowed)")
        if bool((lp == -math.inf).all()):
            raise ValueError(f"{name} is -inf (zero density) at all of the first {probe.shape[0]} starting "
                             "points; pass an `init` inside the support or a larger init_std")


__all__ += ["RunMonitor", "DIVERGENCE_FACTOR", "target_scale"]


def randn_like(x: Tensor, generator: torch.Generator | None) -> Tensor:
    """Standard normal draws with the shape, dtype and device of ``x``."""
    return torch.randn(x.shape, dtype=x.dtype, device=x.device, generator=generator)


__all__ += ["randn_like"]


def systematic_resample(log_w: Tensor, generator: torch.Generator | None, n: int | None = None) -> Tensor:
    """``n`` indices (default ``len(log_w)``) drawn by systematic resampling from log-weights ``(N,)``.

    One uniform offset ``u ~ U(0, 1/n)`` and the points ``u + k/n``, ``k = 0..n-1``, pushed through
    the inverse CDF of the normalised weights: index ``i`` appears ``floor(n W_i)`` or
    ``ceil(n W_i)`` times (unbiased, far less variance than multinomial draws). ``-inf`` weights are
    never picked.
    """
    n = log_w.shape[0] if n is None else n
    w = torch.softmax(log_w, 0)
    cdf = torch.cumsum(w, 0)
    cdf[-1] = 1.0
    offset = 1.0 - torch.rand(1, dtype=w.dtype, device=w.device, generator=generator)  # in (0, 1]
    u = (offset + torch.arange(n, dtype=w.dtype, device=w.device)) / n
    return torch.searchsorted(cdf, u).clamp_(max=log_w.shape[0] - 1)


__all__ += ["systematic_resample"]
