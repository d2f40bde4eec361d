"""Closed-form entropic OT / Schrödinger bridge between two Gaussians (exact test oracle).

Convention as in LightSB: cost ``|x0 - x1|^2 / 2``, regularisation ``eps`` (reference process
``dX = sqrt(eps) dW``, t from 0 at p0 to 1 at p1). For ``p0 = N(m0, S0)``, ``p1 = N(m1, S1)``:

* ``D = (4 S0^{1/2} S1 S0^{1/2} + eps^2 I)^{1/2}``;
* ``C = Cov(X0, X1) = (S0^{1/2} D S0^{-1/2} - eps I) / 2``;
* ``pi*(x1 | x0) = N(m1 + S* (x0 - m0), eps S*)`` with ``S* = S0^{-1/2} (D - eps I) S0^{-1/2} / 2``;
* time marginals ``N((1 - t) m0 + t m1, (1-t)^2 S0 + t^2 S1 + t (1-t) (C + C^T + eps I))``.

All computations run in float64 (symmetric square roots by eigendecomposition).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from sciml.metrics import sqrtm_psd
from sciml.validation import check_device, check_positive, check_tensor

from .bridge import Bridge
from .potential import GaussianMixturePotential

__all__ = ["GaussianEOT", "gaussian_eot", "gaussian_bridge", "sample_eot", "gaussian_basis"]


@dataclass
class GaussianEOT:
    """Entropic OT plan between ``N(m0, S0)`` and ``N(m1, S1)`` (all float64).

    Attributes:
        m0, S0, m1, S1: the marginals, shapes (D,), (D, D).
        eps: regularisation.
        S_star: the matrix ``S*`` of the conditional plan (symmetric, (D, D)).
        C: cross-covariance ``Cov(X0, X1)``, (D, D).
        r: intercept ``m1 - S* m0`` (so ``E[x1 | x0] = r + S* x0``), (D,).
    """

    m0: Tensor
    S0: Tensor
    m1: Tensor
    S1: Tensor
    eps: float
    S_star: Tensor
    C: Tensor
    r: Tensor

    @property
    def conditional_cov(self) -> Tensor:
        """``Cov(x1 | x0) = eps S*``, (D, D)."""
        return self.eps * self.S_star

    def conditional_mean(self, x0: Tensor) -> Tensor:
        """``E[x1 | x0] = m1 + S* (x0 - m0)`` for rows of ``x0`` (n, D) -> (n, D)."""
        return (x0.to(self.r) - self.m0) @ self.S_star.T + self.m1

    def marginal(self, t: float) -> tuple[Tensor, Tensor]:
        """Mean (D,) and covariance (D, D) of the bridge at time ``t`` in [0, 1]."""
        eye = torch.eye(self.S0.shape[0], dtype=self.S0.dtype)
        mean = (1 - t) * self.m0 + t * self.m1
        cov = (1 - t) ** 2 * self.S0 + t**2 * self.S1 + t * (1 - t) * (self.C + self.C.T + self.eps * eye)
        return mean, cov


def gaussian_eot(m0: Tensor, S0: Tensor, m1: Tensor, S1: Tensor, eps: float) -> GaussianEOT:
    """Closed-form EOT / SB between ``N(m0, S0)`` and ``N(m1, S1)``.

    ``S0`` must be symmetric positive definite and ``S1`` positive semidefinite (both are
    symmetrised; ``S1``'s eigenvalues may be negative by round-off of its dtype only), else
    ``ValueError`` naming the matrix.
    """
    eps = check_positive("eps", eps)
    check_tensor("m0", m0, ndim=1)
    d = m0.shape[0]
    check_tensor("S0", S0, shape=(d, d))
    check_tensor("m1", m1, shape=(d,))
    check_tensor("S1", S1, shape=(d, d))
    unit = torch.finfo(S1.dtype).eps
    m0, S0, m1, S1 = (v.detach().to(torch.float64, copy=True).cpu() for v in (m0, S0, m1, S1))
    if int(torch.linalg.cholesky_ex(0.5 * (S0 + S0.T)).info) != 0:
        raise ValueError("S0 must be symmetric positive definite")
    lam = torch.linalg.eigvalsh(0.5 * (S1 + S1.T))
    # eigenvalues of a symmetric matrix stored with unit round-off u are exact to ~ d u |S1|
    if float(lam.min()) < -d * unit * float(lam.abs().max()):
        raise ValueError(f"S1 must be symmetric positive semidefinite, its smallest eigenvalue is {float(lam.min()):.3g}")
    eye = torch.eye(d, dtype=torch.float64)
    h = sqrtm_psd(S0)
    hi = sqrtm_psd(S0, inverse=True)
    Dm = sqrtm_psd(4 * h @ S1 @ h + eps**2 * eye)
    C = 0.5 * (h @ Dm @ hi - eps * eye)
    S_star = 0.5 * hi @ (Dm - eps * eye) @ hi
    S_star = 0.5 * (S_star + S_star.T)
    return GaussianEOT(m0, S0, m1, S1, eps, S_star, C, m1 - S_star @ m0)


def sample_eot(x0: Tensor, x1: Tensor, eps: float) -> GaussianEOT:
    """:func:`gaussian_eot` between the Gaussians moment-matched to samples ``x0`` (n0, D) and ``x1``
    (n1, D) (biased covariances); ``ValueError`` unless ``x0`` has a nonsingular sample covariance."""
    a, b = x0.detach().to(torch.float64).cpu(), x1.detach().to(torch.float64).cpu()
    d = a.shape[1]
    c0, c1 = torch.cov(a.T, correction=0).reshape(d, d), torch.cov(b.T, correction=0).reshape(d, d)
    return gaussian_eot(a.mean(0), c0, b.mean(0), c1, eps)


def gaussian_basis(x0: Tensor, x1: Tensor, eps: float) -> Tensor:
    """The eigenbasis ``U`` (D, D), float64, of ``S*`` of :func:`sample_eot` (columns: eigenvectors)."""
    return torch.linalg.eigh(sample_eot(x0, x1, eps).S_star)[1]


def gaussian_bridge(plan: GaussianEOT, dtype: torch.dtype = torch.float64,
                    device: torch.device | str | None = None) -> Bridge:
    """The exact LightSB bridge of a Gaussian plan: K = 1, full ``S = S*``, ``r = m1 - S* m0``.

    ``S*`` must be positive definite (it is when ``S1`` is); ``device`` is checked up front.
    """
    if not isinstance(plan, GaussianEOT):
        raise TypeError(f"plan must be a GaussianEOT (from gaussian_eot), got {type(plan).__name__}")
    device = check_device("device", device)
    d = plan.S_star.shape[0]
    pot = GaussianMixturePotential(d, 1, plan.eps, "full", init_means=plan.r[None], dtype=dtype, device=device)
    pot.set_covariances(plan.S_star)
    return Bridge(pot, diagnostics={"source": "gaussian closed form"})
