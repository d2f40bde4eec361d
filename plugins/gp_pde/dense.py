"""Dense interior solves (grids of at most ``dense_limit`` points): fixed boundary values or data on the mean.

For fixed kernels the loss is quadratic in the grid values for linear operators: one linear solve
with the interior Hessian ``H = (K^{-1})_II + tau A_II^T A_II``. For a nonlinearity ``phi``,
Gauss-Newton (:func:`.newton.gauss_newton`) on the same loss, started from the solution linearised at
``u = 0`` (warm starts from earlier kernels can lead Gauss-Newton to a spurious branch).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from sciml.kernels import kron_dense

from .newton import elementwise_derivative, gauss_newton

if TYPE_CHECKING:
    from .system import Factor, GridSystem

__all__ = ["solve_dense", "solve_dense_mean_boundary"]


def solve_dense(sys: GridSystem, fac: list[Factor]) -> Tensor:
    """Interior values with the boundary values fixed to the data, ``U_b = g``; returns the grid ``U``."""
    A, kinv = sys.dense_ops(fac)
    inner = (~sys.mask).reshape(-1)
    bnd = sys.mask.reshape(-1)
    g = sys.g0.reshape(-1)[bnd]
    A_ii, A_ib = A[inner][:, inner], A[inner][:, bnd]
    P = kinv[inner][:, inner]
    prior_rhs = -kinv[inner][:, bnd] @ g
    f_i = sys.f.reshape(-1)[inner] - A_ib @ g
    tau = sys.tau
    phi = sys.op.nonlinearity
    if phi is None:
        H = P + tau * A_ii.T @ A_ii
        u_i = torch.linalg.solve(H, prior_rhs + tau * A_ii.T @ f_i)
    else:
        zero = torch.zeros_like(f_i)
        phi0, slope0 = phi(zero).detach(), elementwise_derivative(phi, zero)
        J0 = A_ii + torch.diag(slope0)
        u_i = torch.linalg.solve(P + tau * J0.T @ J0, prior_rhs + tau * J0.T @ (f_i - phi0))

        def residual(v: Tensor) -> Tensor:
            return A_ii @ v + phi(v) - f_i

        def objective(v: Tensor) -> Tensor:
            r = residual(v)
            return 0.5 * v @ (P @ v) - prior_rhs @ v + 0.5 * tau * r @ r

        def direction(v: Tensor) -> Tensor:
            J = A_ii + torch.diag(elementwise_derivative(phi, v))
            grad = P @ v - prior_rhs + tau * J.T @ residual(v)
            return -torch.linalg.solve(P + tau * J.T @ J, grad)

        u_i, sys.info["newton_steps"] = gauss_newton(u_i, objective, direction, sys.newton_steps)
    U = sys.g0.clone().reshape(-1)
    U[inner] = u_i
    return U.reshape(sys.grid)


def _kkt(M: Tensor, H: Tensor, rhs: Tensor, rhs_c: Tensor) -> tuple[Tensor, Tensor]:
    """Solve ``[[H, M^T], [M, 0]] [x; lam] = [rhs; rhs_c]``; returns ``(x, lam)``.

    The constraint rows are scaled to the size of ``H`` (an unscaled KKT matrix mixes entries of
    order ``1 / jitter`` and 1 and loses digits in the pivoting).
    """
    n, nb = H.shape[0], M.shape[0]
    sc = float(H.diagonal().abs().max())
    top = torch.cat([H, sc * M.T], 1)
    bottom = torch.cat([sc * M, torch.zeros(nb, nb, dtype=H.dtype, device=H.device)], 1)
    sol = torch.linalg.solve(torch.cat([top, bottom], 0), torch.cat([rhs, sc * rhs_c]))
    return sol[:n], sc * sol[n:]


def solve_dense_mean_boundary(sys: GridSystem, fac: list[Factor]) -> Tensor:
    """All grid values with the Dirichlet data on the posterior mean, ``M U = g`` (a KKT solve).

    With the jitter the grid values are noisy observations of the latent function: fixing ``U_b = g``
    lets the mean miss the data by ``jitter * (K^{-1} U)_b``. Sets ``sys.multiplier`` (the constraint's
    multiplier, for the envelope-theorem gradient of the loss).
    """
    A, kinv = sys.dense_ops(fac)
    inner = (~sys.mask).reshape(-1)
    bnd = sys.mask.reshape(-1)
    g = sys.g0.reshape(-1)[bnd]
    M = kron_dense(sys.mean_matrices(fac))[bnd]
    A_i = A[inner]
    f_i = sys.f.reshape(-1)[inner]
    tau = sys.tau
    phi = sys.op.nonlinearity

    def jacobian(v: Tensor) -> Tensor:
        J = A_i.clone()
        J[:, inner] += torch.diag(elementwise_derivative(phi, v[inner]))
        return J

    if phi is None:
        u, _ = _kkt(M, kinv + tau * A_i.T @ A_i, tau * A_i.T @ f_i, g)
    else:
        zero = torch.zeros_like(f_i)
        phi0 = phi(zero).detach()
        J0 = jacobian(torch.zeros_like(sys.f.reshape(-1)))
        u, _ = _kkt(M, kinv + tau * J0.T @ J0, tau * J0.T @ (f_i - phi0), g)

        def objective(v: Tensor) -> Tensor:
            r = A_i @ v + phi(v[inner]) - f_i
            return 0.5 * v @ (kinv @ v) + 0.5 * tau * r @ r

        def direction(v: Tensor) -> Tensor:
            J = jacobian(v)
            r = A_i @ v + phi(v[inner]) - f_i
            delta, _ = _kkt(M, kinv + tau * J.T @ J, -(kinv @ v + tau * J.T @ r), g - M @ v)
            return delta

        u, sys.info["newton_steps"] = gauss_newton(u, objective, direction, sys.newton_steps)
    # multiplier: M^T lam = -grad J at the solution, in the least-squares sense through the small
    # normal equations (M M^T is close to the identity); torch.linalg.lstsq was not bitwise
    # reproducible between calls, which changed the L-BFGS path
    r = A_i @ u - f_i
    J = A_i
    if phi is not None:
        r = r + phi(u[inner])
        J = jacobian(u)
    sys.multiplier = torch.linalg.solve(M @ M.T, -(M @ (kinv @ u + tau * J.T @ r)))
    return u.reshape(sys.grid)
