"""What MultALMC and MultCDiff share: the start of the fast state and the per-chain step control.

Both samplers pair a slow state ``X`` with a fast state that runs Langevin dynamics on the conditional
law of the clean variable given ``X``. Its modes are those of ``pi`` and the fast dynamics cannot
move mass between separated modes, so the fast states have to start with the mode weights of ``pi``:
:func:`fast_start` draws them by sampling importance resampling (:func:`sample_target_sir`) and falls
back to a widened reference kernel around the slow state when the importance pool is degenerate.

The fast process is stiff, and how stiff differs from chain to chain (a funnel's neck, a quartic
wall). Its SK-ROCK steps are controlled chain by chain by :class:`ChainControl`: each step is checked
a posteriori from the gradients it computed (and, where asked, from the curvature at its two ends),
and a chain that left its stability region is redone from its old state by adaptive sub-steps. A
sampler describes its fast process to the control as a :class:`FastProcess`.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from sciml.targets import CountedTarget

from ._common import randn_like, systematic_resample
from .integrators import local_curvature, skrock_stability_length, skrock_step

__all__ = ["FastStart", "fast_start", "sample_target_sir", "PathSecants", "FastProcess", "ChainControl",
           "control_diagnostics", "finite_rows"]


@dataclass(frozen=True)
class FastStart:
    """Starting fast states ``u`` ``(n, dim)`` in target units; ``from_target`` when they are the SIR draws
    of ``pi`` (the caller then redraws the slow state from the joint law), ``ess`` the pool's effective
    sample size (NaN without SIR)."""

    u: Tensor
    from_target: bool
    ess: float


def fast_start(target: CountedTarget, x: Tensor, scale: float, num_candidates: int, generator: torch.Generator | None,
               *, kernel_centre: Tensor | None = None, sir_scale: float | None = None) -> FastStart:
    """The fast states' start: ``pi`` by SIR from ``num_candidates`` pool points per chain around ``x``
    (proposal scale ``sir_scale``, default ``scale``) when the pool's ESS reaches the number of chains;
    otherwise (or with ``num_candidates = 0``) the kernel ``N(c m, (c^2 - 1) I)``, ``c = scale``, around
    ``m = kernel_centre`` (default ``x``)."""
    ess = float("nan")
    if num_candidates:
        u, ess = sample_target_sir(target, x, scale if sir_scale is None else sir_scale, num_candidates, generator)
        if ess >= x.shape[0]:
            return FastStart(u, True, ess)
    centre = x if kernel_centre is None else kernel_centre
    return FastStart(scale * centre + math.sqrt(scale * scale - 1.0) * randn_like(x, generator), False, ess)


def sample_target_sir(target: CountedTarget, x: Tensor, proposal_scale: float, num_candidates: int,
                      generator: torch.Generator | None) -> tuple[Tensor, float]:
    """Approximate draws of ``pi`` by pooled sampling importance resampling (SIR), one per chain.

    The fast state of MultALMC / MultCDiff has to start from the conditional law of the clean
    variable given the slow state; its modes are those of ``pi`` and the fast Langevin dynamics
    cannot move mass between separated modes, so the mode weights the fast states start with are
    the ones the sampler returns: they must come from ``pi``, not from the basins of attraction of
    an arbitrary start. A pool of ``n * num_candidates`` points is drawn from the Gaussian
    ``N(c m, (c^2 s^2 + c^2 - 1) I)`` (``m``, ``s^2``: mean and mean per-coordinate variance of the
    ``n`` starting points ``x``, ``c = proposal_scale``), weighted by ``pi / N(...)`` and ``n``
    points are resampled (systematic resampling: each pool point is picked ``floor(n W_i)`` or
    ``ceil(n W_i)`` times, so the mode weights carry no multinomial noise beyond the pool's own).
    Costs ``num_candidates`` log-density evaluations per chain.
    Like any importance sampler from a Gaussian it degrades with the dimension (the weights
    degenerate); the effective sample size is returned in ``ess``.

    Args:
        target: the counted target.
        x: ``(n, dim)`` starting points (they set the proposal's centre and spread).
        proposal_scale: ``c >= 1``.
        num_candidates: pool points per chain (>= 1).
        generator: source of randomness.

    Returns:
        ``(u, ess)``: ``(n, dim)`` draws in target units and the pool's effective sample size.
    """
    n, d = x.shape
    c = proposal_scale
    centre = c * x.mean(0)
    spread = c * float(x.var(0).mean()) ** 0.5 if n > 1 else 0.0
    std = math.sqrt(spread * spread + c * c - 1.0) if c > 1.0 else max(spread, 1.0)
    z = torch.randn((n * num_candidates, d), dtype=x.dtype, device=x.device, generator=generator)
    u = centre + std * z
    logw = target.log_prob(u, per_chain=False) + 0.5 * (z * z).sum(-1)
    logw = torch.where(torch.isfinite(logw), logw, torch.full_like(logw, -float("inf")))
    w = torch.exp(logw - logw.max())
    ess = float(w.sum() ** 2 / (w * w).sum())
    return u[systematic_resample(logw, generator, n)], ess


class PathSecants:
    """Per-row maximum of the directional secant curvatures ``-<g_j - g_{j-1}, du> / |du|^2``
    (``du = u_j - u_{j-1}``) of ``log pi`` between successive gradient evaluations (the stages of one
    step): the stiffness the step actually crossed, which the curvature at its two end points can miss
    (a stage that dives into the funnel's neck and is thrown back out to a flat region). Only concave
    (restoring) curvature limits the stability interval; convex stretches (between the modes of a
    mixture) count as 0. Non-finite rows get ``inf``."""

    def __init__(self, n: int, like: Tensor) -> None:
        self.value = torch.zeros(n, dtype=like.dtype, device=like.device)
        self._last: tuple[Tensor, Tensor] | None = None

    def update(self, u: Tensor, g: Tensor) -> None:
        if self._last is not None:
            step = u - self._last[0]
            du2 = (step * step).sum(-1)
            du = du2.sqrt()
            r = (-((g - self._last[1]) * step).sum(-1)).clamp_min(0.0) / du2.clamp_min(1e-300)
            r = torch.where(torch.isfinite(r), r, torch.full_like(r, math.inf))
            self.value = torch.maximum(self.value, torch.where(du > 0, r, torch.zeros_like(r)))
        self._last = (u, g)


class FastProcess(abc.ABC):
    """The fast process of one step, ``dY = f(Y) dt + sqrt(2 a(Y) / eps) dB`` on the rows (chains) of
    the batch, as the step control needs it. A fast state ``z`` is the target point ``z / scale``."""

    def __init__(self, target: CountedTarget, eps: float, scale: float = 1.0) -> None:
        self.target, self.eps, self.scale = target, eps, scale

    @abc.abstractmethod
    def drift(self, rows: Tensor | None, path: PathSecants | None = None,
              track: bool = False) -> Callable[[Tensor], Tensor]:
        """``f`` for the rows ``rows`` of the batch (``None``: all); ``path`` records the secants of
        ``log pi`` between its evaluations, ``track`` feeds the sampler's own curvature estimate."""

    def diffusion(self, rows: Tensor | None, z: Tensor) -> Tensor:
        """The ``(m, 1)`` scalar diffusion coefficient ``a(z)`` of the rows (1 unless overridden)."""
        return torch.ones(z.shape[0], 1, dtype=z.dtype, device=z.device)

    @abc.abstractmethod
    def stiffness(self, lip: Tensor) -> Tensor:
        """Per-row stiffness (spectral radius of ``f``'s Jacobian) from ``L`` = twice the curvature of ``log pi``."""

    def steady_floor(self, h: Tensor | float, length: float) -> Tensor | float:
        """The stiffness a rise over a step of ``h`` (stability interval ``length``) is measured from, at
        least: 0 (a plain factor-10 test) for a stiffness bounded below by the process itself."""
        return 0.0


class ChainControl:
    """Per-chain stability control of the SK-ROCK steps of one run; counts what it redid.

    ``redone``: chain-steps redone by sub-steps; ``rejected``: sub-steps rejected; ``truncated``:
    chain-steps that did not cover the step's time within ``max_substeps`` tries (their fast clock ran
    slower on that step, which keeps the fast process's law invariant); ``unresolved``: the ``(n,)``
    mask of chains truncated at some step; ``lost_time``: ``(n,)`` the fast time each chain's
    truncated steps did not cover, out of ``checked_time`` (the time of the steps checked);
    ``substep_evals``: gradients spent on sub-steps.
    """

    def __init__(self, n: int, max_substeps: int, like: Tensor) -> None:
        self.max_substeps = max_substeps
        self.redone = self.rejected = self.truncated = self.substep_evals = 0
        self.unresolved = torch.zeros(n, dtype=torch.bool, device=like.device)
        self.lost_time = torch.zeros(n, dtype=like.dtype, device=like.device)
        self.checked_time = 0.0

    def check_path(self, proc: FastProcess, y_old: Tensor, y: Tensor, h: float, stages: int, path: Tensor,
                   direction: Tensor, lip: Tensor, generator: torch.Generator | None) -> Tensor:
        """The check of a step whose stages cover every chain's start stiffness (free: from the gradients
        the step computed): a chain that became non-finite or whose stages crossed a concave curvature
        beyond the stability interval (``path``, :class:`PathSecants`) is redone by :meth:`substeps`
        (start curvature estimate ``lip``, probe ``direction``)."""
        self.checked_time += h
        rows = finite_rows(y_old)
        if rows.numel() == 0:
            return y
        sp = proc.stiffness(path[rows])
        ok = torch.isfinite(y[rows]).all(-1) & (h * sp <= skrock_stability_length(stages))
        redo = rows[~ok]
        if redo.numel():
            y = y.clone()
            lip0 = torch.nan_to_num(lip[redo], nan=0.0, posinf=0.0)
            y[redo] = self.substeps(proc, redo, y_old[redo], h, stages, direction[redo], lip0, generator)[0]
        return y

    def check_full(self, proc: FastProcess, rows: Tensor, y_old: Tensor, y: Tensor, h: float, stages: int,
                   path: Tensor, direction: Tensor, lip0: Tensor,
                   generator: torch.Generator | None) -> tuple[Tensor, Tensor, Tensor]:
        """The check of a step whose stages need not cover every chain (the finite-start ``rows``, their
        start estimate ``lip0`` along ``direction``).

        The curvature is measured again at the end of the step (one power iteration of finite-difference
        Hessian-vector products along ``direction``, 2 gradients). A chain is redone from its old state
        by :meth:`substeps` when its start stiffness is beyond the step's stability interval
        (``h stiff_i > 0.8 L_s``), its end or path stiffness beyond ``L_s``, its stiffness changed by
        more than a factor 10 over the step (the stability argument assumes a roughly constant
        Jacobian; the funnel's ``exp(-x0)`` curvature can fall by orders of magnitude while an
        unresolved step throws ``x0`` far out, where the end curvature looks harmless; see
        :func:`_steady`), or it became non-finite.

        Returns:
            ``(y, curvature, direction)``: the states, and for ``rows`` the curvature of ``log pi`` at
            their end states and its direction (the next step's start estimate).
        """
        self.checked_time += h
        length = skrock_stability_length(stages)
        c1, d1 = local_curvature(proc.target.grad, y[rows] / proc.scale, direction, iterations=1)
        s0, s1, sp = proc.stiffness(lip0), proc.stiffness(2.0 * c1), proc.stiffness(path[rows])
        ok = (h * s0 <= 0.8 * length) & (h * s1 <= length) & (h * sp <= length) & _steady(proc, s0, s1, h, length)
        ok &= torch.isfinite(y[rows]).all(-1)
        bad = ~ok
        redo = rows[bad]
        if redo.numel():
            y = y.clone()
            y[redo], c1[bad], d1[bad] = self.substeps(proc, redo, y_old[redo], h, stages, direction[bad], lip0[bad],
                                                      generator)
        return y, c1, d1

    def substeps(self, proc: FastProcess, rows: Tensor, y: Tensor, h: float, stages: int, direction: Tensor,
                 lip: Tensor, generator: torch.Generator | None) -> tuple[Tensor, Tensor, Tensor]:
        """A fast step of time ``h`` for the chains ``rows`` (states ``y``) by SK-ROCK sub-steps, each row
        with its own step.

        A sub-step of ``h_i`` is tried (``h_i <= 0.8 L_s / stiff_i``, and at most 4 times the last
        accepted one); it is accepted if the end state is finite, its stiffness (curvature at the end
        along ``direction``, and the path secants) is within the stability interval and steady
        (:func:`_steady`); otherwise it is rejected and ``h_i`` divided by 4 (fresh noise: a small bias
        traded for stability). Each try costs ``stages + 2`` gradients. After ``max_substeps`` tries a
        row that has not covered ``h`` stops there (counted in ``truncated`` / ``unresolved``).

        Returns:
            ``(y, curvature, direction)`` of the rows at their end states.
        """
        self.redone += int(rows.numel())
        length = skrock_stability_length(stages)
        reach = 0.8 * length
        m = y.shape[0]
        y, d = y.clone(), direction.clone()
        s = proc.stiffness(lip)
        curv = 0.5 * lip.clone()
        left = torch.full((m,), h, dtype=y.dtype, device=y.device)
        h_try = torch.minimum(left, reach / s)
        for _ in range(self.max_substeps):
            act = (left > 1e-9 * h).nonzero().squeeze(-1)
            if act.numel() == 0:
                break
            ha = torch.minimum(h_try[act], left[act])
            path = PathSecants(int(act.numel()), y)
            ya = y[act]
            noise = torch.sqrt(2.0 * ha.unsqueeze(-1) * proc.diffusion(rows[act], ya) / proc.eps) * randn_like(ya, generator)
            y_new = skrock_step(ya, proc.drift(rows[act], path), ha.unsqueeze(-1), noise, stages)
            sp = proc.stiffness(path.value)
            self.substep_evals += int(act.numel()) * (stages + 2)
            c_new, d_new = local_curvature(proc.target.grad, y_new / proc.scale, d[act], iterations=1)
            s_new = proc.stiffness(2.0 * c_new)
            s_old = s[act]
            good = (torch.isfinite(y_new).all(-1) & (ha * s_new <= length) & (ha * sp <= length)
                    & _steady(proc, s_old, s_new, ha, length))
            acc, rej = act[good], act[~good]
            y[acc], d[acc], s[acc], curv[acc] = y_new[good], d_new[good], s_new[good], c_new[good]
            left[acc] = left[acc] - ha[good]
            h_try[acc] = torch.minimum(4.0 * ha[good], reach / s_new[good])
            h_try[rej] = ha[~good] / 4.0
            self.rejected += int(rej.numel())
        short = left > 1e-9 * h
        self.truncated += int(short.sum())
        self.unresolved[rows[short]] = True
        self.lost_time[rows[short]] += left[short].to(self.lost_time.dtype)
        return y, curv, d


def control_diagnostics(c: ChainControl) -> dict[str, Any]:
    """The step control's counts as a sampler's diagnostics; ``fast_time_lost`` ``(n,)`` is the
    fraction of its checked fast time a chain did not cover (0 for a chain never truncated)."""
    lost = c.lost_time / c.checked_time if c.checked_time > 0 else torch.zeros_like(c.lost_time)
    return {"redone_chain_steps": c.redone, "truncated_chain_steps": c.truncated, "substep_evals": c.substep_evals,
            "rejected_substeps": c.rejected, "unresolved_chains": c.unresolved.clone(),
            "n_unresolved": int(c.unresolved.sum()), "fast_time_lost": lost}


def _steady(proc: FastProcess, s_start: Tensor, s_end: Tensor, h: Tensor | float, length: float) -> Tensor:
    """Rows whose stiffness changed by at most a factor 10 over a step of ``h``: the stability argument
    assumes a roughly constant Jacobian. A rise is measured from at least the process's
    :meth:`FastProcess.steady_floor`."""
    floor = torch.clamp(torch.as_tensor(proc.steady_floor(h, length), dtype=s_start.dtype), min=0.0)
    return (s_end <= 10.0 * torch.maximum(s_start, floor)) & (s_start <= 10.0 * s_end)


def finite_rows(y: Tensor) -> Tensor:
    """Indices of the rows (chains) of ``y`` that are finite."""
    return torch.arange(y.shape[0], device=y.device)[torch.isfinite(y).all(-1)]
