"""The fitted GP-HM solution: posterior mean, derivatives, standard deviation, residuals, spectrum."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from sciml import Solution
from sciml.validation import check_tensor

from .grid_ops import eval_tensor_field, multi_mode_product, multi_mode_whiten, whiten_rows
from .kernels import grid_kernel_matrix, mixture_kernel

__all__ = ["GPPDESolution"]

_BLOCK = 256  # points per block in scattered evaluation


class GPPDESolution(Solution):
    """GP posterior of ``u`` given the collocated grid values.

    The mean is ``u(x) = k(x, X) K^{-1} U`` with the product kernel, evaluated in the whitened form
    ``(v_1 kron ... kron v_d)^T vec(W)``, ``v_j = L_j^{-1} k_j(X_j, x_j)``, ``W = (kron_j L_j^{-1}) U``
    (``K_j = L_j L_j^T``), whose terms are bounded; derivatives use the closed-form kernel derivatives. :meth:`std` is the posterior standard deviation of ``u(x)`` given the grid
    values (which the solver determines exactly): ``k(x, x) - k(x, X) K^{-1} k(X, x)``, zero at the
    collocation points (boundary included) and growing between them.

    Attributes:
        axes: collocation axes, one ``(n_j,)`` tensor per dimension.
        params: per-dimension kernel parameters ``{"log_w", "mu", "log_ls"}`` (``(Q,)`` each).
        kernel: ``"gm"`` or ``"stm"``.
        values: grid values ``U`` of shape ``grid``.
        loss_history: profiled negative log joint after each evaluation (last entry: final fit).
        diagnostics: ``residual_rms`` / ``residual_max`` (PDE residual at interior grid points),
            ``boundary_max_error``, ``wall_time`` (s), ``evals``, ``path``, ``final_loss``.
    """

    def __init__(self, axes: Sequence[Tensor], params: Sequence[dict[str, Tensor]], kernel: str, jitter: float,
                 values: Tensor, loss_history: list[float] | None = None,
                 diagnostics: dict[str, Any] | None = None, problem: Any = None) -> None:
        super().__init__(loss_history, diagnostics)
        self.axes = [a.detach().to(torch.float64) for a in axes]
        self.params = [{k: v.detach().clone() for k, v in p.items()} for p in params]
        self.kernel = kernel
        self.jitter = float(jitter)
        self.values = values.detach().clone()
        self.problem = problem
        self._prepare()

    @classmethod
    def from_fit(cls, problem: Any, params: Sequence[dict[str, Tensor]], kernel: str, jitter: float, U: Tensor,
                 history: list[float], diagnostics: dict[str, Any]) -> GPPDESolution:
        """Build the solution of a fit and fill its residual / boundary diagnostics."""
        sol = cls(problem.axes(), params, kernel, jitter, U, history, diagnostics, problem)
        from .problem import boundary_mask, grid_points

        f, g = problem.grid_data()
        mask = boundary_mask(problem.grid)
        r = sol._grid_operator(problem.operator, U) - f
        r_in = r[~mask]
        sol.diagnostics["residual_rms"] = float(r_in.square().mean().sqrt()) if r_in.numel() else 0.0
        sol.diagnostics["residual_max"] = float(r_in.abs().max()) if r_in.numel() else 0.0
        pts = grid_points(problem.axes())[mask.reshape(-1)]
        sol.diagnostics["boundary_max_error"] = float((sol(pts) - g).abs().max())
        return sol

    # ------------------------------------------------------------------ setup
    def _prepare(self) -> None:
        self.dim = len(self.axes)
        self.grid = [int(a.shape[0]) for a in self.axes]
        self._kmats = []
        self._chols = []
        for a, p in zip(self.axes, self.params):
            n = a.shape[0]
            h = float(a[1] - a[0])
            k = grid_kernel_matrix(n, h, p["log_w"], p["mu"], p["log_ls"], 0, self.kernel)
            k = k + self.jitter * k[0, 0] * torch.eye(n, dtype=k.dtype)
            self._kmats.append(k)
            self._chols.append(torch.linalg.cholesky(k))
        # The mean is evaluated in whitened form: with K_j = L_j L_j^T and W = (L_1^{-1} kron ...) U,
        # k(x, X) K^{-1} U = prod-contraction of the rows k_j(x_j, X_j) L_j^{-T} with W. Their terms are
        # bounded (|row|^2 <= k_j(0), |W|^2 = U^T K^{-1} U); the terms of k(x, X) alpha with alpha = K^{-1} U
        # reach |u| / jitter, so that sum lost about eps / jitter to cancellation and its rounding depended on
        # the BLAS summation order (CPU, thread count). Triangular solves only, never an explicit inverse.
        self._white = multi_mode_whiten(self._chols, self.values)

    def _rows(self, x: Tensor, orders: Sequence[int]) -> list[Tensor]:
        """Whitened kernel rows ``d^m k_j(x_j, X_j) L_j^{-T}`` per dimension, ``(n, n_j)`` each."""
        return [self._white_rows(j, x[:, j], orders[j]) for j in range(self.dim)]

    def _white_rows(self, j: int, t: Tensor, order: int) -> Tensor:
        p = self.params[j]
        rows = mixture_kernel(t[:, None] - self.axes[j][None, :], p["log_w"], p["mu"], p["log_ls"], order,
                              self.kernel)
        return whiten_rows(rows, self._chols[j])

    def _check_points(self, x: Tensor) -> Tensor:
        check_tensor("x", x, ndim=2)
        if x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (n, {self.dim}), got {tuple(x.shape)}")
        return x.to(torch.float64)

    # ------------------------------------------------------------------ evaluation
    def __call__(self, x: Tensor) -> Tensor:
        """Posterior mean ``u(x)`` at points ``(n, d)``; returns ``(n,)``."""
        return self.derivative(x, [0] * self.dim)

    def derivative(self, x: Tensor, orders: Sequence[int]) -> Tensor:
        """Partial derivative of the posterior mean, ``d^{sum m} u / prod dx_j^{m_j}`` at ``x`` ``(n, d)``.

        Args:
            x: points ``(n, d)``.
            orders: ``(m_1, ..., m_d)``, each 0, 1 or 2.
        """
        x = self._check_points(x)
        orders = list(orders)
        if len(orders) != self.dim or any(m not in (0, 1, 2) for m in orders):
            raise ValueError(f"orders must hold {self.dim} entries in (0, 1, 2), got {orders}")
        # kernel rows cost (points x grid x components) memory: evaluate in blocks of points
        out = [eval_tensor_field(self._rows(x[i:i + _BLOCK], orders), self._white)
               for i in range(0, x.shape[0], _BLOCK)]
        return torch.cat(out) if out else x.new_zeros(0)

    def on_grid(self, axes: Sequence[Tensor], orders: Sequence[int] | None = None) -> Tensor:
        """Mean (or a derivative) on a tensor grid given by per-dimension axes; shape ``(len(a_1), ...)``."""
        orders = list(orders) if orders is not None else [0] * self.dim
        mats = [self._white_rows(j, a.to(torch.float64), orders[j]) for j, a in enumerate(axes)]
        return multi_mode_product(mats, self._white)

    def std(self, x: Tensor) -> Tensor:
        """Posterior standard deviation of ``u(x)`` given the grid values, at ``x`` ``(n, d)``; ``(n,)``.

        For the product kernel ``k(x,x) - k(x,X) K^{-1} k(X,x) = prod_j k_j(0) - prod_j q_j(x_j)`` with
        ``q_j = k_j(x_j, X_j) K_j^{-1} k_j(X_j, x_j)``.
        """
        x = self._check_points(x)
        if x.shape[0] > _BLOCK:
            return torch.cat([self.std(x[i:i + _BLOCK]) for i in range(0, x.shape[0], _BLOCK)])
        rows = self._rows(x, [0] * self.dim)
        prior, quad = 1.0, 1.0
        for j, r in enumerate(rows):
            k0 = float(self._kmats[j][0, 0]) / (1.0 + self.jitter)  # k_j(0) without the jitter
            prior = prior * k0
            quad = quad * r.square().sum(-1)  # |k_j(x_j, X_j) L_j^{-T}|^2 = k_j(x_j, X) K_j^{-1} k_j(X, x_j)
        return (prior - quad).clamp_min(0.0).sqrt()

    def _grid_operator(self, operator: Any, U: Tensor) -> Tensor:
        """``L U + phi(U)`` at the grid points (conditional-mean derivatives)."""
        mats_m: list[dict[int, Tensor]] = []
        for j, (a, p) in enumerate(zip(self.axes, self.params)):
            h = float(a[1] - a[0])
            mats_m.append({m: torch.cholesky_solve(
                grid_kernel_matrix(a.shape[0], h, p["log_w"], p["mu"], p["log_ls"], m, self.kernel).mT,
                self._chols[j]).mT for m in (1, 2)})
        out = torch.zeros_like(U)
        for k, c in operator.terms.items():
            out = out + float(c) * multi_mode_product([mats_m[j][m] if m else None for j, m in enumerate(k)], U)
        if operator.nonlinearity is not None:
            out = out + operator.nonlinearity(U)
        return out

    def residual(self, x: Tensor, problem: Any = None) -> Tensor:
        """PDE residual ``L u(x) + phi(u(x)) - f(x)`` of the posterior mean at points ``(n, d)``.

        Needs the problem (stored by the solver; pass it again after :meth:`load`) with a callable source.
        """
        problem = problem if problem is not None else self.problem
        if problem is None or not callable(problem.source):
            raise ValueError("residual() needs a problem with a callable source (pass problem=...)")
        x = self._check_points(x)
        op = problem.operator
        out = torch.zeros(x.shape[0], dtype=torch.float64)
        for k, c in op.terms.items():
            out = out + float(c) * self.derivative(x, list(k))
        if op.nonlinearity is not None:
            out = out + op.nonlinearity(self(x))
        return out - problem.source(x)

    def boundary_error(self, x: Tensor, problem: Any = None) -> Tensor:
        """``u(x) - g(x)`` at boundary points ``(n, d)`` (callable boundary data needed)."""
        problem = problem if problem is not None else self.problem
        if problem is None or not callable(problem.boundary):
            raise ValueError("boundary_error() needs a problem with callable boundary data (pass problem=...)")
        x = self._check_points(x)
        return self(x) - problem.boundary(x)

    def spectrum(self, rel_threshold: float = 1e-3) -> list[dict[str, Tensor]]:
        """Learned spectrum per dimension, components sorted by weight.

        Returns:
            one dict per dimension with ``weight``, ``mu`` (cycles per unit), ``lengthscale`` and
            ``active`` (weight above ``rel_threshold`` times the largest: survived the pruning).
        """
        out = []
        for p in self.params:
            w = p["log_w"].exp()
            order = torch.argsort(w, descending=True)
            out.append({"weight": w[order], "mu": p["mu"][order].abs(), "lengthscale": p["log_ls"][order].exp(),
                        "active": w[order] > rel_threshold * w.max()})
        return out

    def relative_l2(self, exact: Any, n_test: int = 300) -> float:
        """Relative L2 error against ``exact(x)`` on a uniform tensor grid of ``n_test`` points per dimension."""
        axes = [torch.linspace(float(a[0]), float(a[-1]), n_test, dtype=torch.float64) for a in self.axes]
        from .problem import grid_points

        pred = self.on_grid(axes).reshape(-1)
        ref = exact(grid_points(axes))
        return float((pred - ref).norm() / ref.norm())

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to rebuild the solution (tensors and plain values)."""
        return {"axes": self.axes, "params": self.params, "kernel": self.kernel, "jitter": self.jitter,
                "values": self.values, "loss_history": self.loss_history,
                "diagnostics": {k: v for k, v in self.diagnostics.items() if isinstance(v, (int, float, str))}}

    def save(self, path: Any) -> None:
        """Write the fitted solution to ``path`` (``torch.save``)."""
        torch.save(self.state_dict(), path)

    @classmethod
    def load(cls, path: Any, problem: Any = None) -> GPPDESolution:
        """Read a solution written by :meth:`save` (``problem`` re-attaches the source for residuals)."""
        st = torch.load(path, weights_only=True)
        return cls(st["axes"], st["params"], st["kernel"], st["jitter"], st["values"], st["loss_history"],
                   st["diagnostics"], problem)

    def __repr__(self) -> str:
        return (f"GPPDESolution(grid={self.grid}, kernel={self.kernel!r}, "
                f"evals={self.diagnostics.get('evals', '?')}, path={self.diagnostics.get('path', '?')!r})")

