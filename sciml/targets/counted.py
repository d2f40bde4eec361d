"""Per-point evaluation counting and failure reporting around a target, shared by every sampler.

:class:`CountedTarget` counts the energy and gradient evaluations a run spends, keeps non-finite
inputs away from the target, and re-raises a target's exception as :class:`TargetError` with the
run's context (sampler, steps done, the failing chain).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from sciml.targets.base import Target, TargetError

__all__ = ["CountedTarget"]


class CountedTarget:
    """A :class:`~sciml.targets.Target` with per-point evaluation counters and failure bookkeeping.

    Every call adds the number of points evaluated: :meth:`log_prob` to ``n_evals``;
    :meth:`grad` and :meth:`log_prob_and_grad` to both ``n_evals`` and ``n_grad_evals`` (an
    autograd gradient evaluates the energy on the way). Gradients are ``grad log pi = -grad V``.

    * Rows of ``x`` that are not finite (diverged chains) are not passed to the target; their
      outputs are NaN.
    * A target that raises is re-raised as :class:`TargetError` (sampler, steps completed, the
      failing chain when a batch of one point per chain is evaluated), the original as ``__cause__``.
    * Finite points where the target returns NaN or ``+inf`` (or a non-finite gradient at a finite
      log-density) are counted in ``n_bad_points`` (those of a start-up pool also in ``n_bad_pool``).
      With ``attribute`` (samplers that evaluate only chain states and MALA proposals) a batch of one
      point per chain (``num_chains`` rows) also marks them in ``bad_chains`` for the run's divergence
      monitor; samplers whose evaluations are mostly trial points of a step control (SK-ROCK stages,
      curvature probes, which redo a step that hit a non-finite value) leave it off.
      ``-inf`` (zero density) is a valid value. NaN / ``+inf`` at a MALA proposal (``proposal=True``)
      is a rejection, counted in ``n_bad_proposals``, and never marks the chain.
    * Cost: one sum of the inputs and one of the outputs per call (a finite sum proves every entry
      finite); the row-wise checks run only when a sum is not finite (``-inf`` values or a failure).
    """

    def __init__(self, target: Target, sampler: str = "sampler", num_chains: int = 0, total_steps: int = 0,
                 attribute: bool = True) -> None:
        self.target = target
        self.dim = target.dim
        self.dtype = target.dtype
        self.device = target.device
        self.n_evals = 0
        self.n_grad_evals = 0
        self.sampler, self.num_chains, self.total_steps = sampler, num_chains, total_steps
        self.steps_done = 0
        self.attribute = attribute
        self.n_bad_points = 0
        self.n_bad_pool = 0
        self.first_bad_step: int | None = None
        self.bad_chains = torch.zeros(num_chains, dtype=torch.bool, device=target.device)
        self.n_bad_proposals = 0
        self.saw_nonfinite = False  # set when a non-finite input or a flagged chain needs the monitor

    def log_prob(self, x: Tensor, *, per_chain: bool = True) -> Tensor:
        """Log-density at ``x`` ``(n, dim) -> (n,)``; counts ``n`` energy evaluations.

        ``per_chain=False``: the rows are a pool, not one point per chain (never attributed to chains).
        """
        self.n_evals += int(x.shape[0])
        bad, safe = self._screen(x)

        def evaluate(z: Tensor) -> Tensor:
            with torch.no_grad():
                return self.target.log_prob(z)

        lp = self._call(evaluate, safe, per_chain)
        if not math.isfinite(lp.sum().item()):  # a finite sum proves every value finite
            self._record(bad, lp, None, per_chain)
        return lp if bad is None else torch.where(bad, torch.full_like(lp, float("nan")), lp)

    def log_prob_and_grad(self, x: Tensor, *, at_states: bool = False,
                          proposal: bool = False) -> tuple[Tensor, Tensor]:
        """``(log pi(x), grad log pi(x))``; counts ``n`` energy and ``n`` gradient evaluations.

        ``at_states=True``: the rows are the chains' current states (or points next to them), so a
        non-finite value marks the chain even when ``attribute`` is off. ``proposal=True``: the rows
        are MALA proposals; a NaN / ``+inf`` value there is a rejection (counted in
        ``n_bad_proposals``), never a divergence of the chain.
        """
        n = int(x.shape[0])
        self.n_evals += n
        self.n_grad_evals += n
        bad, safe = self._screen(x)
        lp, g = self._call(self.target.log_prob_and_grad, safe, True)
        if not math.isfinite(lp.sum().item() + g.sum().item()):  # a finite sum proves all finite
            self._record(bad, lp, g, True, at_states, proposal)
        if bad is not None:
            nan = float("nan")
            lp = torch.where(bad, torch.full_like(lp, nan), lp)
            g = torch.where(bad.unsqueeze(-1), torch.full_like(g, nan), g)
        return lp, g

    def grad(self, x: Tensor, *, at_states: bool = False) -> Tensor:
        """``grad log pi(x)`` ``(n, dim) -> (n, dim)`` (``at_states``: see :meth:`log_prob_and_grad`)."""
        return self.log_prob_and_grad(x, at_states=at_states)[1]

    def grad_at_states(self, x: Tensor) -> Tensor:
        """``grad(x, at_states=True)``: the gradient at the chains' states."""
        return self.log_prob_and_grad(x, at_states=True)[1]

    # failures ------------------------------------------------------------------------------------
    def _screen(self, x: Tensor) -> tuple[Tensor | None, Tensor]:
        """``(bad rows or None, x with the bad rows zeroed)``; one reduction when every row is finite."""
        if math.isfinite(x.sum().item()):  # .item(): a third of the cost of bool(torch.isfinite(.))
            return None, x
        bad = ~torch.isfinite(x).all(-1)
        self.saw_nonfinite = True  # the monitor checks the states at the end of this step
        return bad, torch.where(bad.unsqueeze(-1), torch.zeros_like(x), x)

    def _record(self, bad_in: Tensor | None, lp: Tensor, g: Tensor | None, per_chain: bool,
                at_states: bool = False, proposal: bool = False) -> None:
        """Count the finite points where the target's output is NaN / +inf (or its gradient not finite).

        Called only when the fast path (a finite sum) failed: ``-inf`` values or a real failure.
        """
        broken = torch.isnan(lp) | (lp == math.inf)
        if g is not None:
            broken |= torch.isfinite(lp) & ~torch.isfinite(g).all(-1)
        if bad_in is not None:
            broken &= ~bad_in
        count = int(broken.sum())
        if not count:
            return
        if proposal:
            self.n_bad_proposals += count
            return
        self.n_bad_points += count
        if self.first_bad_step is None:
            self.first_bad_step = self.steps_done
        if not per_chain:
            self.n_bad_pool += count
        elif (self.attribute or at_states) and broken.shape[0] == self.num_chains:
            self.bad_chains |= broken
            self.saw_nonfinite = True

    def _call(self, fn: Any, x: Tensor, per_chain: bool) -> Any:
        try:
            return fn(x)
        except Exception as exc:  # any failure of user code: re-raised with the run's context
            chains = self._failing_rows(fn, x)
            if chains is not None and not (per_chain and x.shape[0] == self.num_chains):
                where = f" at point {chains[0]} of a batch of {x.shape[0]} (not one per chain)"
                chains = None
            elif chains is not None:
                where = f" at the state of chain {chains[0]}"
            else:
                where = ""
            when = (f"after {self.steps_done} of {self.total_steps} steps" if self.steps_done
                    else f"in the start-up evaluations (after 0 of {self.total_steps} steps)")
            raise TargetError(
                f"{self.sampler}: the target raised {type(exc).__name__}: {exc} -- {when}{where}. If the "
                "target is only defined on part of R^dim, return -inf outside it instead of raising",
                sampler=self.sampler, step=self.steps_done, chains=chains) from exc

    def _failing_rows(self, fn: Any, x: Tensor) -> list[int] | None:
        """The first row of ``x`` on which ``fn`` fails by itself (bisection, ~2 log2(n) calls), or
        ``None`` when the failure is not tied to one row (every row fails, or only the whole batch)."""

        def fails(rows: Tensor) -> bool:
            try:
                fn(rows)
            except Exception:  # noqa: BLE001 - probing which rows fail
                return True
            return False

        lo, hi = 0, int(x.shape[0])
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if fails(x[lo:mid]):
                hi = mid
            elif fails(x[mid:hi]):
                lo = mid
            else:
                return None
        other = 0 if lo else x.shape[0] - 1
        if hi - lo != 1 or (other != lo and fails(x[other:other + 1])):
            return None
        return [lo]
