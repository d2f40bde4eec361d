"""The fitted GP-HM solution: posterior mean, derivatives, standard deviation, residuals, spectrum."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from sciml import Solution
from sciml.io import load_state, reading, save_state
from sciml.kernels import multi_mode_product, multi_mode_solve_triangular, rowwise_kron_apply
from sciml.validation import check_nonnegative, check_positive, check_positive_int, check_tensor

from .kernels import KERNELS, grid_kernel_matrix, mixture_kernel
from .problem import PDEProblem, boundary_mask, grid_points

__all__ = ["GPPDESolution"]

_BLOCK = 256  # points per block in scattered evaluation
_KIND, _VERSION = "gp_pde.GPPDESolution", 2
# version 1 differed only in the diagnostics keys (renamed to the project's conventions on reading)
_V1_KEYS = {"wall_time": "wall_time_s", "evals": "n_grad_evals", "loss_evals": "n_evals"}


def _check_axes(axes: Any) -> list[Tensor]:
    """Collocation axes: a non-empty list of 1-D finite tensors, each increasing and uniform, >= 3 points."""
    if not isinstance(axes, (list, tuple)) or not axes:
        raise TypeError(f"axes must be a non-empty list of 1-D tensors, got {type(axes).__name__}")
    out = []
    for j, a in enumerate(axes):
        a = check_tensor(f"axes[{j}]", a, ndim=1).detach()
        eps = torch.finfo(a.dtype).eps  # the axes' own rounding: float32 axes are uniform to float32 ulps
        a = a.to(torch.float64)
        if a.shape[0] < 3:
            raise ValueError(f"axes[{j}] must hold at least 3 points, got {a.shape[0]}")
        step = a.diff()
        h = float(a[-1] - a[0]) / (a.shape[0] - 1)
        # uniform: every step equals the mean step up to the rounding of linspace (a few ulps of the coordinates)
        tol = 64 * eps * max(float(a.abs().max()), abs(h))
        if not h > 0 or float((step - h).abs().max()) > tol:
            raise ValueError(f"axes[{j}] must be increasing and uniformly spaced (a collocation grid)")
        out.append(a)
    return out


def _check_params(params: Any, dim: int) -> list[dict[str, Tensor]]:
    """Kernel parameters: one dict per dimension of finite 1-D ``log_w``, ``mu``, ``log_ls`` of equal length."""
    if not isinstance(params, (list, tuple)) or len(params) != dim:
        raise ValueError(f"params must be a list of {dim} dicts (one per dimension), got "
                         f"{len(params) if isinstance(params, (list, tuple)) else type(params).__name__}")
    out = []
    for j, p in enumerate(params):
        if not isinstance(p, dict) or set(p) != {"log_w", "mu", "log_ls"}:
            raise ValueError(f"params[{j}] must be a dict with the keys 'log_w', 'mu', 'log_ls'")
        q = p["log_w"].shape[0] if isinstance(p["log_w"], Tensor) and p["log_w"].ndim == 1 else None
        out.append({k: check_tensor(f"params[{j}][{k!r}]", v, shape=(q,)).detach().to(torch.float64).clone()
                    for k, v in p.items()})
        if not q:
            raise ValueError(f"params[{j}] must hold at least one component")
    return out


def _check_problem(problem: Any, dim: int) -> Any:
    if problem is None:
        return None
    if not isinstance(problem, PDEProblem):
        raise TypeError(f"problem must be a PDEProblem or None, got {type(problem).__name__}")
    if problem.dim != dim:
        raise ValueError(f"problem is {problem.dim}-dimensional but the solution is {dim}-dimensional")
    return problem


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
        loss_history: the loss (negative log marginal likelihood) after each L-BFGS evaluation; last entry:
            the final fit.
        diagnostics: ``wall_time_s``, ``num_steps`` (L-BFGS iterations), ``n_evals`` (loss evaluations, pruning
            candidates included), ``n_grad_evals`` (with a gradient), ``path`` (``"dense"`` or
            ``"fast-diagonalisation"``), ``final_loss``, ``data_scale``, ``residual_rms`` / ``residual_max``
            (PDE residual at interior grid points), ``boundary_max_error``; ``components`` (counts after each
            pruning pass), ``newton_steps`` (nonlinear operators), ``newton_residual`` / ``gmres_iterations``
            (nonlinear, fast-diagonalisation path).

    The solution lives on the device of ``values``; evaluation methods take points on any device and
    return tensors on the points' device and dtype (computed in float64).
    """

    def __init__(self, axes: Sequence[Tensor], params: Sequence[dict[str, Tensor]], kernel: str, jitter: float,
                 values: Tensor, loss_history: list[float] | None = None,
                 diagnostics: dict[str, Any] | None = None, problem: Any = None) -> None:
        super().__init__(loss_history, diagnostics)
        self.axes = _check_axes(axes)
        self.params = _check_params(params, len(self.axes))
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
        self.kernel = kernel
        self.jitter = check_positive("jitter", jitter)
        grid = tuple(int(a.shape[0]) for a in self.axes)
        self.values = check_tensor("values", values, shape=grid).detach().to(torch.float64).clone()
        self.device = self.values.device
        self.axes = [a.to(self.device) for a in self.axes]
        self.params = [{k: v.to(self.device) for k, v in p.items()} for p in self.params]
        self.problem = _check_problem(problem, len(self.axes))
        self._prepare()

    @classmethod
    def from_fit(cls, problem: Any, params: Sequence[dict[str, Tensor]], kernel: str, jitter: float, U: Tensor,
                 history: list[float], diagnostics: dict[str, Any]) -> GPPDESolution:
        """Build the solution of a fit and fill its residual / boundary diagnostics."""
        sol = cls(problem.axes(), params, kernel, jitter, U, history, diagnostics, problem)
        f, g = (t.to(sol.device) for t in problem.grid_data())
        mask = boundary_mask(problem.grid).to(sol.device)
        r = sol._grid_operator(problem.operator, sol.values) - f
        r_in = r[~mask]
        sol.diagnostics["residual_rms"] = float(r_in.square().mean().sqrt()) if r_in.numel() else 0.0
        sol.diagnostics["residual_max"] = float(r_in.abs().max()) if r_in.numel() else 0.0
        pts = grid_points(sol.axes)[mask.reshape(-1)]
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
            k = k + self.jitter * k[0, 0] * torch.eye(n, dtype=k.dtype, device=k.device)
            chol, info = torch.linalg.cholesky_ex(k)
            if int(info) != 0:
                raise ValueError(f"params[{len(self._chols)}] with jitter={self.jitter:g} give a kernel matrix that "
                                 "is not positive definite (raise the jitter)")
            self._kmats.append(k)
            self._chols.append(chol)
        # The mean is evaluated in whitened form: with K_j = L_j L_j^T and W = (L_1^{-1} kron ...) U,
        # k(x, X) K^{-1} U = prod-contraction of the rows k_j(x_j, X_j) L_j^{-T} with W. Their terms are
        # bounded (|row|^2 <= k_j(0), |W|^2 = U^T K^{-1} U); the terms of k(x, X) alpha with alpha = K^{-1} U
        # reach |u| / jitter, so that sum lost about eps / jitter to cancellation and its rounding depended on
        # the BLAS summation order (CPU, thread count). Triangular solves only, never an explicit inverse.
        self._white = multi_mode_solve_triangular(self._chols, self.values)

    def _rows(self, x: Tensor, orders: Sequence[int]) -> list[Tensor]:
        """Whitened kernel rows ``d^m k_j(x_j, X_j) L_j^{-T}`` per dimension, ``(n, n_j)`` each."""
        return [self._white_rows(j, x[:, j], orders[j]) for j in range(self.dim)]

    def _white_rows(self, j: int, t: Tensor, order: int) -> Tensor:
        p = self.params[j]
        rows = mixture_kernel(t[:, None] - self.axes[j][None, :], p["log_w"], p["mu"], p["log_ls"], order,
                              self.kernel)
        # rows L^{-T}: with W = L^{-1} U per mode, k(x, X) K^{-1} U = (k(x, X) L^{-T}) W
        return torch.linalg.solve_triangular(self._chols[j].mT, rows, upper=True, left=False)

    def _check_orders(self, orders: Any) -> list[int]:
        if isinstance(orders, (str, bytes)) or not isinstance(orders, Sequence):
            raise TypeError(f"orders must be a sequence of {self.dim} ints in (0, 1, 2), got {type(orders).__name__}")
        out = list(orders)
        if len(out) != self.dim or any(isinstance(m, bool) or m not in (0, 1, 2) for m in out):
            raise ValueError(f"orders must hold {self.dim} entries in (0, 1, 2), got {out}")
        return [int(m) for m in out]

    def _problem(self, problem: Any, method: str, field: str) -> Any:
        problem = _check_problem(problem, self.dim) if problem is not None else self.problem
        if problem is None or not callable(getattr(problem, field)):
            raise ValueError(f"{method}() needs a problem with a callable {field} (pass problem=...)")
        return problem

    def _check_points(self, x: Tensor) -> Tensor:
        """Points ``(n, d)`` as float64 on the solution's device."""
        check_tensor("x", x, ndim=2)
        if x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (n, {self.dim}), got {tuple(x.shape)}")
        return x.to(device=self.device, dtype=torch.float64)

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
        xs = self._check_points(x)
        orders = self._check_orders(orders)
        # kernel rows cost (points x grid x components) memory: evaluate in blocks of points
        out = [rowwise_kron_apply(self._rows(xs[i:i + _BLOCK], orders), self._white)
               for i in range(0, xs.shape[0], _BLOCK)]
        return (torch.cat(out) if out else xs.new_zeros(0)).to(device=x.device, dtype=x.dtype)

    def on_grid(self, axes: Sequence[Tensor], orders: Sequence[int] | None = None) -> Tensor:
        """Mean (or a derivative) on a tensor grid given by per-dimension axes; shape ``(len(a_1), ...)``.

        Returned on the device of ``axes[0]`` in the promoted dtype of the axes.

        Args:
            axes: one 1-D tensor of finite coordinates per dimension (any order, any spacing).
            orders: derivative orders per dimension (default: the mean).
        """
        if not isinstance(axes, (list, tuple)):
            raise TypeError(f"axes must be a list of {self.dim} 1-D tensors, got {type(axes).__name__}")
        if len(axes) != self.dim:
            raise ValueError(f"axes must hold {self.dim} 1-D tensors (one per dimension), got {len(axes)}")
        axes = [check_tensor(f"axes[{j}]", a, ndim=1) for j, a in enumerate(axes)]
        orders = self._check_orders(orders) if orders is not None else [0] * self.dim
        mats = [self._white_rows(j, a.to(device=self.device, dtype=torch.float64), orders[j])
                for j, a in enumerate(axes)]
        dtype = functools.reduce(torch.promote_types, [a.dtype for a in axes])
        return multi_mode_product(mats, self._white).to(device=axes[0].device, dtype=dtype)

    def std(self, x: Tensor) -> Tensor:
        """Posterior standard deviation of ``u(x)`` given the grid values, at ``x`` ``(n, d)``; ``(n,)``.

        For the product kernel ``k(x,x) - k(x,X) K^{-1} k(X,x) = prod_j k_j(0) - prod_j q_j(x_j)`` with
        ``q_j = k_j(x_j, X_j) K_j^{-1} k_j(X_j, x_j)``.
        """
        xs = self._check_points(x)
        if xs.shape[0] > _BLOCK:
            return torch.cat([self.std(x[i:i + _BLOCK]) for i in range(0, x.shape[0], _BLOCK)])
        rows = self._rows(xs, [0] * self.dim)
        prior, quad = 1.0, 1.0
        for j, r in enumerate(rows):
            k0 = float(self._kmats[j][0, 0]) / (1.0 + self.jitter)  # k_j(0) without the jitter
            prior = prior * k0
            quad = quad * r.square().sum(-1)  # |k_j(x_j, X_j) L_j^{-T}|^2 = k_j(x_j, X) K_j^{-1} k_j(X, x_j)
        return (prior - quad).clamp_min(0.0).sqrt().to(device=x.device, dtype=x.dtype)

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
        problem = self._problem(problem, "residual", "source")
        self._check_points(x)
        xs = x.to(torch.float64)  # float64 on the points' device (where the problem's functions are called)
        op = problem.operator
        out = torch.zeros(xs.shape[0], dtype=torch.float64, device=xs.device)
        for k, c in op.terms.items():
            out = out + float(c) * self.derivative(xs, list(k))
        if op.nonlinearity is not None:
            out = out + op.nonlinearity(self(xs))
        return (out - problem.source(xs)).to(x.dtype)

    def boundary_error(self, x: Tensor, problem: Any = None) -> Tensor:
        """``u(x) - g(x)`` at boundary points ``(n, d)`` (callable boundary data needed)."""
        problem = self._problem(problem, "boundary_error", "boundary")
        self._check_points(x)
        xs = x.to(torch.float64)
        return (self(xs) - problem.boundary(xs)).to(x.dtype)

    def spectrum(self, rel_threshold: float = 1e-3) -> list[dict[str, Tensor]]:
        """Learned spectrum per dimension, components sorted by weight.

        Returns:
            one dict per dimension with ``weight``, ``mu`` (cycles per unit), ``lengthscale`` and
            ``active`` (weight above ``rel_threshold`` times the largest: survived the pruning).
        """
        rel_threshold = check_nonnegative("rel_threshold", rel_threshold)
        out = []
        for p in self.params:
            w = p["log_w"].exp()
            order = torch.argsort(w, descending=True)
            out.append({"weight": w[order], "mu": p["mu"][order].abs(), "lengthscale": p["log_ls"][order].exp(),
                        "active": w[order] > rel_threshold * w.max()})
        return out

    def relative_l2(self, exact: Any, n_test: int = 300) -> float:
        """Relative L2 error ``|u - exact| / |exact|`` on a uniform tensor grid of ``n_test`` points per dimension.

        ``exact(x)`` maps points ``(n, d)`` to ``(n,)`` (or ``(n, 1)``). An exact solution that is 0 on the test grid
        gives ``inf`` (0 where the mean is 0 too).
        """
        if not callable(exact):
            raise TypeError(f"exact must be a callable u(x) on points (n, {self.dim}), got {type(exact).__name__}")
        n_test = check_positive_int("n_test", n_test)
        axes = [torch.linspace(float(a[0]), float(a[-1]), n_test, dtype=torch.float64, device=self.device)
                for a in self.axes]
        pts = grid_points(axes)
        pred = self.on_grid(axes).reshape(-1)
        ref = exact(pts)
        if not isinstance(ref, Tensor):
            raise TypeError(f"exact(x) must return a tensor, got {type(ref).__name__}")
        if ref.ndim == 2 and ref.shape[1] == 1:
            ref = ref[:, 0]
        check_tensor("exact(x)", ref, shape=(pts.shape[0],))
        num, den = float((pred - ref).norm()), float(ref.norm())
        if den == 0.0:
            return 0.0 if num == 0.0 else math.inf
        return num / den

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to rebuild the solution (tensors and plain values)."""
        return {"axes": self.axes, "params": self.params, "kernel": self.kernel, "jitter": self.jitter,
                "values": self.values, "loss_history": self.loss_history,
                "diagnostics": {k: v for k, v in self.diagnostics.items() if isinstance(v, (int, float, str))}}

    def save(self, path: Any) -> None:
        """Write the fitted solution to ``path`` (:func:`sciml.io.save_state`, kind ``gp_pde.GPPDESolution``, v2)."""
        save_state(path, _KIND, _VERSION, self.state_dict())

    @classmethod
    def load(cls, path: Any, problem: Any = None, map_location: Any = None) -> GPPDESolution:
        """Read a solution written by :meth:`save`.

        Args:
            path: the file.
            problem: re-attaches the problem (its source and boundary functions) for :meth:`residual`.
            map_location: passed to :func:`torch.load` (a device this machine lacks raises
                :class:`sciml.DeviceUnavailableError`).

        Reads format versions 1 and 2 (version 1 files get their diagnostics keys renamed: ``wall_time``,
        ``evals``, ``loss_evals`` become ``wall_time_s``, ``n_grad_evals``, ``n_evals``).

        Raises:
            FileNotFoundError: no such file.
            SaveFileError: the file is empty, damaged, not a sciml file, of another kind or a newer version,
                or holds invalid content (non-finite tensors, inconsistent shapes, axes not increasing and
                uniform, an unknown kernel, a jitter <= 0), with the file named.
        """
        version, st = load_state(path, _KIND, (1, _VERSION), map_location)
        with reading(path):
            if not isinstance(st["loss_history"], list) or not isinstance(st["diagnostics"], dict):
                raise TypeError("loss_history must be a list and diagnostics a dict")
            diagnostics = st["diagnostics"]
            if version == 1:
                diagnostics = {_V1_KEYS.get(k, k): v for k, v in diagnostics.items()}
            return cls(st["axes"], st["params"], st["kernel"], st["jitter"], st["values"],
                       [float(v) for v in st["loss_history"]], diagnostics, problem)

    def __repr__(self) -> str:
        return (f"GPPDESolution(grid={self.grid}, kernel={self.kernel!r}, "
                f"n_evals={self.diagnostics.get('n_evals', '?')}, path={self.diagnostics.get('path', '?')!r})")

