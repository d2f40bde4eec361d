"""The collocation system of one solve: kernel factors on the grid, the grid operator and the loss.

Model (Fang et al., ICLR 2024): ``u ~ GP(0, prod_j k_j)`` with 1-D mixture kernels (see
:mod:`.kernels`); the latent grid values ``U`` carry the prior ``N(0, K)``, ``K = K_1 kron ... kron
K_d``; derivatives at the grid are those of the conditional mean, ``d^m U / dx_j^m = K_j^{(m)}
K_j^{-1} U`` along axis ``j``, so the operator on the grid is ``A = sum_t c_t kron_j D_j^{(t_j)}``
with ``D_j^{(m)} = K_j^{(m)} K_j^{-1}``. The loss is the negative log joint

    0.5 log|K| + 0.5 U^T K^{-1} U + 0.5 tau ||A U + phi(U) - f||^2 (interior points)

plus ``0.5 log|H|`` of the interior Hessian (the negative log marginal likelihood of the PDE data
for linear operators, its Laplace approximation otherwise), with the Dirichlet data imposed exactly.
A :class:`GridSystem` is built per call of ``solve()`` and holds all per-run state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from sciml.kernels import Kronecker, kron_dense, multi_mode_product, outer_product, outer_sum

from .dense import solve_dense, solve_dense_mean_boundary
from .fast_diag import solve_fast_diagonalisation
from .kernels import grid_kernel_matrix
from .newton import elementwise_derivative
from .problem import PDEProblem, boundary_mask

__all__ = ["Factor", "GridSystem"]


@dataclass
class Factor:
    """Per-dimension kernel matrices on the grid."""

    k: Tensor  # jittered K_j
    jitter: Tensor  # the jitter added to its diagonal
    chol: Tensor
    d: dict[int, Tensor]  # order -> K_j^{(m)} K_j^{-1}


class GridSystem:
    """Problem data on the grid (divided by the data scale) and the loss of one solve.

    Attributes set by the interior solves: ``multiplier`` (boundary multiplier of the mean-boundary
    KKT solve, else ``None``) and ``info`` (Newton / GMRES counts for the diagnostics).
    """

    def __init__(self, problem: PDEProblem, f_grid: Tensor, g: Tensor, *, family: str, jitter: float,
                 residual_precision: float, newton_steps: int, dense_limit: int) -> None:
        self.op = problem.operator
        self.dtype, self.device = f_grid.dtype, f_grid.device
        self.family = family
        self.jitter = jitter
        self.newton_steps = newton_steps
        self.grid = list(problem.grid)
        self.h = problem.spacing()
        self.d = problem.dim
        self.mask = boundary_mask(self.grid).to(self.device)
        self.f = f_grid
        self.g0 = torch.zeros(self.grid, dtype=self.dtype, device=self.device)
        self.g0[self.mask] = g
        f_scale = float(f_grid[~self.mask].abs().max()) if bool((~self.mask).any()) else 1.0
        self.tau = residual_precision / max(f_scale, 1e-12) ** 2
        self.orders = sorted({m for k in self.op.terms for m in k if m > 0})
        self.path = "dense" if math.prod(self.grid) <= dense_limit else "fast-diagonalisation"
        # the Dirichlet data go on the posterior mean on 1-D dense grids; on larger dense grids the KKT
        # matrix (entries up to 1 / jitter^2) is solved only to about 1e-6 and U_b = g is imposed instead
        self.mean_boundary = self.path == "dense" and self.d == 1
        self.interior = tuple(slice(1, n - 1) for n in self.grid)
        self.multiplier: Tensor | None = None
        self.info: dict[str, Any] = {}

    def eye(self, n: int) -> Tensor:
        return torch.eye(n, dtype=self.dtype, device=self.device)

    # kernel matrices --------------------------------------------------------------------
    def factors(self, params: list[dict[str, Tensor]]) -> list[Factor]:
        out = []
        for j, p in enumerate(params):
            n, h = self.grid[j], self.h[j]
            k = grid_kernel_matrix(n, h, p["log_w"], p["mu"], p["log_ls"], 0, self.family)
            jit = self.jitter * k[0, 0]
            k = k + jit * self.eye(n)
            chol = torch.linalg.cholesky(k)
            d = {}
            for m in self.orders:
                km = grid_kernel_matrix(n, h, p["log_w"], p["mu"], p["log_ls"], m, self.family)
                d[m] = torch.cholesky_solve(km.mT, chol).mT  # K^{(m)} K^{-1}
            out.append(Factor(k, jit, chol, d))
        return out

    def apply_operator(self, fac: list[Factor], U: Tensor) -> Tensor:
        """``A U`` on the whole grid (linear part)."""
        out = torch.zeros_like(U)
        for k, c in self.op.terms.items():
            mats = [fac[j].d[m] if m > 0 else None for j, m in enumerate(k)]
            out = out + float(c) * multi_mode_product(mats, U)
        return out

    def residual(self, fac: list[Factor], U: Tensor) -> Tensor:
        r = self.apply_operator(fac, U)
        if self.op.nonlinearity is not None:
            r = r + self.op.nonlinearity(U)
        return (r - self.f)[self.interior]

    def operator_1d(self, fac: list[Factor], j: int, shift: float) -> Tensor:
        """The terms of ``A`` that differentiate only along dimension ``j`` (plus ``shift I``), ``(n_j, n_j)``."""
        B = torch.zeros_like(fac[j].k)
        for k, c in self.op.terms.items():
            if k[j] > 0 and sum(k) == k[j]:
                B = B + float(c) * fac[j].d[k[j]]
        if shift:
            B = B + shift * self.eye(B.shape[0])
        return B

    def dense_ops(self, fac: list[Factor]) -> tuple[Tensor, Tensor]:
        """Dense ``A`` and ``K^{-1}`` on the whole grid ``(N, N)``."""
        eye = [self.eye(n) for n in self.grid]
        n_tot = math.prod(self.grid)
        A = torch.zeros(n_tot, n_tot, dtype=self.dtype, device=self.device)
        for k, c in self.op.terms.items():
            mats = [fac[j].d[m] if m > 0 else eye[j] for j, m in enumerate(k)]
            A = A + float(c) * kron_dense(mats)
        kinv = kron_dense([torch.cholesky_inverse(f.chol) for f in fac])
        return A, kinv

    def mean_matrices(self, fac: list[Factor]) -> list[Tensor]:
        """Per-dimension ``(K_j - jitter_j I) K_j^{-1}``: the posterior mean at the grid is their Kronecker product times ``U``."""
        return [self.eye(f.k.shape[0]) - f.jitter * torch.cholesky_inverse(f.chol) for f in fac]

    # loss ---------------------------------------------------------------------------------
    def loss(self, params: list[dict[str, Tensor]], U: Tensor) -> Tensor:
        """Negative log marginal likelihood at grid values ``U`` (detached), differentiable in the kernel parameters."""
        fac = self.factors(params)
        kron = Kronecker([f.k for f in fac])
        U = U.detach()
        flat = U.reshape(-1)
        quad = flat @ kron.solve(flat)
        r = self.residual(fac, U)
        joint = 0.5 * kron.logdet() + 0.5 * quad + 0.5 * self.tau * (r * r).sum()
        if self.multiplier is not None:
            # boundary constraint on the posterior mean, M(theta) U = g: add lambda^T (M U - g) with
            # the multiplier of the constrained solve held fixed (envelope theorem)
            mean = multi_mode_product(self.mean_matrices(fac), U)
            joint = joint + (self.multiplier * (mean[self.mask] - self.g0[self.mask])).sum()
        return joint + 0.5 * self._logdet_hessian(fac, U)

    def _logdet_hessian(self, fac: list[Factor], U: Tensor) -> Tensor:
        """``log|H|`` of the interior Hessian ``P + tau J^T J`` (Laplace / exact marginal likelihood).

        Dense path: exact, by Cholesky. Fast-diagonalisation path: ``log|P| + sum log(1 + tau |a|^2 / pi)``
        over the modes of the 1-D interior operators (eigenvalues differentiable, mode prior
        precisions ``pi`` taken with the eigenvectors held fixed).
        """
        phi = self.op.nonlinearity
        if self.path == "dense":
            A, kinv = self.dense_ops(fac)
            inner = (~self.mask).reshape(-1)
            J = A[inner][:, inner]
            if phi is not None:
                J = J + torch.diag(elementwise_derivative(phi, U.reshape(-1)[inner]))
            H = kinv[inner][:, inner] + self.tau * J.mT @ J
            return 2.0 * torch.linalg.cholesky(H).diagonal().log().sum()
        n_in = [n - 2 for n in self.grid]
        total = U.new_zeros(())
        a_list, pi_list = [], []
        shift = float(elementwise_derivative(phi, U[self.interior]).mean()) if phi is not None else 0.0
        lin_shift = sum(float(c) for k, c in self.op.terms.items() if sum(k) == 0)
        for j, f in enumerate(fac):
            P = torch.cholesky_inverse(f.chol)[1:-1, 1:-1]
            total = total + (math.prod(n_in) / n_in[j]) * 2.0 * torch.linalg.cholesky(P).diagonal().log().sum()
            B = self.operator_1d(fac, j, lin_shift + shift if j == 0 else 0.0)[1:-1, 1:-1]
            a = torch.linalg.eigvals(B)
            with torch.no_grad():
                _, X = torch.linalg.eig(B.detach())
            pi = torch.einsum("ij,ik,kj->j", X.conj(), P.to(X.dtype), X).real
            a_list.append(a)
            pi_list.append(pi)
        a_sum = outer_sum(a_list).reshape(n_in)
        pi_prod = outer_product(pi_list).reshape(n_in)
        return total + torch.log1p(self.tau * a_sum.abs() ** 2 / pi_prod).sum()

    # interior solves ----------------------------------------------------------------------
    def solve_values(self, fac: list[Factor], warm: Tensor | None) -> Tensor:
        """Grid values minimising the loss for fixed kernels, the Dirichlet data imposed."""
        self.multiplier = None
        if self.path == "dense":
            return solve_dense_mean_boundary(self, fac) if self.mean_boundary else solve_dense(self, fac)
        return solve_fast_diagonalisation(self, fac, warm)
