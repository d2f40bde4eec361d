"""Fast-diagonalisation interior solve for large grids with a separable operator (no mixed derivatives).

The eigendecompositions ``B_j = X_j diag(a_j) X_j^{-1}`` of the 1-D interior operators turn the
interior operator into a division on the eigenvalue grid ``a_1 (+) ... (+) a_d``, ``O(N sum n_j)``,
with the prior and residual metrics taken diagonal in that basis (exact when the 1-D interior
operators are normal). Linear operators: the mode-wise Tikhonov solution. Nonlinear: Newton's
method on the collocation equations ``A U + phi(U) = f`` from the linear solution, each Newton
system solved by GMRES preconditioned with the fast-diagonalisation inverse of ``A + c I``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from sciml.kernels import multi_mode_product, outer_product, outer_sum

from .gmres import gmres
from .newton import backtrack, elementwise_derivative

if TYPE_CHECKING:
    from .system import Factor, GridSystem

__all__ = ["solve_fast_diagonalisation"]


@dataclass
class _Modes:
    """Eigendecomposition of the 1-D interior operators ``B_j[1:-1, 1:-1] = X_j diag(a_j) X_j^{-1}``."""

    full: list[Tensor]  # B_j on the whole axis (boundary rows / columns included)
    X: list[Tensor]
    Xinv: list[Tensor]
    a_sum: Tensor  # eigenvalues of the interior operator on the interior grid: sum_j a_j[i_j]

    def to_modes(self, v: Tensor) -> Tensor:
        return multi_mode_product(self.Xinv, v.to(self.a_sum.dtype))

    def from_modes(self, v: Tensor) -> Tensor:
        return multi_mode_product(self.X, v).real

    def apply_interior(self, v: Tensor) -> Tensor:
        """The interior operator ``sum_j B_j[1:-1, 1:-1]`` applied along each axis of ``v``."""
        out = torch.zeros_like(v)
        for j, b in enumerate(self.full):
            mats: list[Tensor | None] = [None] * len(self.full)
            mats[j] = b[1:-1, 1:-1]
            out = out + multi_mode_product(mats, v)
        return out


def solve_fast_diagonalisation(sys: GridSystem, fac: list[Factor], warm: Tensor | None) -> Tensor:
    """Grid values with ``U_b = g`` by fast diagonalisation (Newton-GMRES for a nonlinearity, warm-started)."""
    d = sys.d
    lin_shift = sum(float(c) for k, c in sys.op.terms.items() if sum(k) == 0)
    g0, interior = sys.g0, sys.interior
    kinvs = [torch.cholesky_inverse(f.chol) for f in fac]
    P = [ki[1:-1, 1:-1] for ki in kinvs]
    # prior conditional mean of the interior given the boundary: -P^{-1} (K^{-1} G0)_I
    m = -multi_mode_product([torch.linalg.inv(p) for p in P], multi_mode_product(kinvs, g0)[interior])
    full, a_list, X, Xinv, pi = [], [], [], [], []
    for j in range(d):
        B = sys.operator_1d(fac, j, lin_shift if j == 0 else 0.0)
        a, X_j = torch.linalg.eig(B[1:-1, 1:-1])
        full.append(B)
        a_list.append(a)
        X.append(X_j)
        Xinv.append(torch.linalg.inv(X_j))
        pi.append(torch.einsum("ij,ik,kj->j", X_j.conj(), P[j].to(X_j.dtype), X_j).real)
    n_in = [n - 2 for n in sys.grid]
    modes = _Modes(full, X, Xinv, outer_sum(a_list).reshape(n_in))
    AG = torch.zeros_like(g0)
    for j in range(d):
        mats: list[Tensor | None] = [None] * d
        mats[j] = full[j]
        AG = AG + multi_mode_product(mats, g0)
    rhs = (sys.f - AG)[interior]
    pi_prod = outer_product(pi).reshape(n_in)
    fh, mh = modes.to_modes(rhs), modes.to_modes(m)
    a_sum = modes.a_sum
    z = (pi_prod * mh + sys.tau * a_sum.conj() * fh) / (pi_prod + sys.tau * a_sum.abs() ** 2)
    u_in = modes.from_modes(z)
    phi = sys.op.nonlinearity
    if phi is not None:
        if warm is not None:
            u_in = warm[interior].clone()
        u_in = _newton_gmres(sys, modes, rhs, u_in, phi)
    U = g0.clone()
    U[interior] = u_in
    return U


def _newton_gmres(sys: GridSystem, modes: _Modes, rhs: Tensor, u: Tensor, phi: Callable[[Tensor], Tensor]) -> Tensor:
    """Newton's method on ``A u + phi(u) = rhs`` (interior), backtracking on the residual norm."""

    def precond(v: Tensor, shift: float) -> Tensor:
        # fast-diagonalisation inverse of A + c I, c the mean slope of phi
        den = modes.a_sum + shift
        tiny = 1e-12 * float(den.abs().max())
        den = torch.where(den.abs() > tiny, den, torch.full_like(den, tiny))
        return modes.from_modes(modes.to_modes(v) / den)

    def residual(v: Tensor) -> Tensor:
        return modes.apply_interior(v) + phi(v) - rhs

    def norm_and_residual(v: Tensor) -> tuple[float, Tensor]:
        rv = residual(v)
        return float(rv.norm()), rv

    scale = max(float(rhs.abs().max()), 1e-300)
    r = residual(u)
    steps = gmres_total = 0
    for steps in range(1, sys.newton_steps + 1):  # noqa: B007
        dphi = elementwise_derivative(phi, u)
        shift = float(dphi.mean())
        delta, its = gmres(lambda v, dphi=dphi: modes.apply_interior(v) + dphi * v, -r,
                           lambda v, shift=shift: precond(v, shift), tol=1e-6, restart=30, max_iter=60)
        gmres_total += its
        t, u, _, r = backtrack(u, delta, norm_and_residual, float(r.norm()), t_min=1e-4, strict=True)
        if float(r.abs().max()) <= 1e-11 * scale or float((t * delta).norm()) <= 1e-13 * float(u.norm()):
            break
    sys.info["newton_steps"] = steps
    sys.info["newton_residual"] = float(r.abs().max()) / scale
    sys.info["gmres_iterations"] = gmres_total
    return u
