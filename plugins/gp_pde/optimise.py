"""The kernel fit: L-BFGS on the profiled loss, alternated with pruning of mixture components.

For fixed kernel parameters the grid values are found exactly (:meth:`.system.GridSystem.solve_values`),
so only the ``3 Q d`` kernel parameters are optimised; the gradient of the profiled loss is the
partial gradient at the optimal values (envelope theorem). When L-BFGS stalls (or the budget is down
to one pruning pass), backward elimination by the marginal likelihood drops the lightest components
(the Jeffreys prior on the weights does this only slowly under gradient steps), then L-BFGS resumes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from sciml.progress import progress_bar

from .system import GridSystem

__all__ = ["KernelFit", "prune_components"]

Params = list[dict[str, Tensor]]


class KernelFit:
    """One kernel optimisation (per-run state: the budget used, the warm start, the loss history).

    Args:
        system: the collocation system of this solve.
        params: initial kernel parameters, replaced in place by the fitted (possibly pruned) ones.
        max_evals: budget of loss evaluations (L-BFGS plus pruning candidates).
        progress: passed to :func:`sciml.progress.progress_bar`.
    """

    def __init__(self, system: GridSystem, params: Params, max_evals: int, progress: bool | None) -> None:
        self.system = system
        self.params = params
        self.max_evals = max_evals
        self.progress = progress
        self.history: list[float] = []
        self.values: Tensor | None = None  # grid values at the last evaluation (warm start)
        self.evals = 0  # every loss evaluation (the budget's count)
        self.grad_evals = 0  # L-BFGS loss-and-gradient evaluations
        self.lbfgs_steps = 0
        self.components: list[list[int]] = []
        self._leaves: list[Tensor] = []
        self._bar: Any = None

    def run(self) -> None:
        """Spend the budget: L-BFGS until it stalls, a pruning pass, L-BFGS again, ..."""
        self._bar = progress_bar(total=self.max_evals, desc="gp-pde", progress=self.progress)
        try:
            while True:
                # keep enough of the budget for one pruning pass (one loss per candidate); budgets
                # leaving fewer than 10 L-BFGS evaluations keep no reserve
                reserve = sum(int(p["log_w"].numel()) for p in self.params) - len(self.params) + 1
                if reserve <= 1:
                    self._lbfgs(self.max_evals)
                    break
                self._lbfgs(self.max_evals - (reserve if self.max_evals - reserve >= 10 else 0))
                if self.evals >= self.max_evals:
                    break
                pruned = prune_components(self.params, self.value, lambda: self.evals < self.max_evals)
                if pruned is None:
                    self._lbfgs(self.max_evals)  # no pruning helps: the rest of the budget goes to L-BFGS
                    break
                self.params[:] = pruned
                self.components.append([int(p["log_w"].numel()) for p in self.params])
        finally:
            self._bar.close()
            self._release()

    def value(self, cand: Params) -> float:
        """Loss at candidate parameters (no gradient); ``inf`` where a factorisation fails."""
        self.evals += 1
        self._bar.update(1)
        system = self.system
        try:
            with torch.no_grad():
                U = system.solve_values(system.factors(cand), self.values)
                return float(system.loss(cand, U))
        except torch.linalg.LinAlgError:
            return float("inf")

    def _closure(self, opt: torch.optim.Optimizer) -> Tensor:
        opt.zero_grad()
        system = self.system
        # a factorisation that fails (in the solve or in the loss) is an infinite loss: the line search backs off
        try:
            with torch.no_grad():
                U = system.solve_values(system.factors(self.params), self.values)
            loss = system.loss(self.params, U)
            loss.backward()
        except torch.linalg.LinAlgError:
            for p in self._leaves:
                p.grad = torch.zeros_like(p)
            return torch.tensor(float("inf"), dtype=system.dtype, device=system.device)
        self.values = U
        self.evals += 1
        self.grad_evals += 1
        self.history.append(float(loss.detach()))
        self._bar.update(1)
        self._bar.set_postfix(loss=f"{self.history[-1]:.4g}")
        return loss

    def _lbfgs(self, limit: int) -> None:
        """L-BFGS (strong Wolfe), restarted while it makes progress, until ``limit`` evaluations are spent."""
        self._leaves = [p.requires_grad_(True) for dim in self.params for p in dim.values()]
        best = float("inf")
        while self.evals < limit:
            opt = torch.optim.LBFGS(self._leaves, lr=1.0, max_iter=limit - self.evals, max_eval=limit - self.evals,
                                    history_size=20, line_search_fn="strong_wolfe", tolerance_grad=1e-10,
                                    tolerance_change=1e-12)
            before = self.evals
            opt.step(lambda opt=opt: self._closure(opt))
            self.lbfgs_steps += int(opt.state[self._leaves[0]].get("n_iter", 0))
            cur = self.history[-1] if self.history else float("inf")
            if self.evals - before < 3 or not cur < best - 1e-9 * abs(best):
                break
            best = cur
        self._release()

    def _release(self) -> None:
        for p in self._leaves:
            p.requires_grad_(False)
            p.grad = None


def prune_components(params: Params, value: Callable[[Params], float],
                     budget_left: Callable[[], bool]) -> Params | None:
    """Backward elimination of mixture components by the marginal likelihood.

    For each dimension, the candidates keep the ``m`` heaviest components (``m = 1 .. Q_j - 1``)
    and leave the other dimensions unchanged. Returns the candidate of lowest loss if it is below
    the loss of the current parameters, else ``None``.
    """
    with torch.no_grad():
        params = [{k: v.detach().clone() for k, v in p.items()} for p in params]
        best, best_val = None, value(params)
        for j, p in enumerate(params):
            q = int(p["log_w"].numel())
            order = torch.argsort(p["log_w"], descending=True, stable=True)
            for m in range(1, q):
                if not budget_left():
                    break
                keep = order[:m].sort().values
                cand = list(params)
                cand[j] = {k: v[keep].clone() for k, v in p.items()}
                val = value(cand)
                if val < best_val - 1e-9 * abs(best_val):
                    best, best_val = cand, val
    return best
