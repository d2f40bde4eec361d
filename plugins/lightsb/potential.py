"""The Gaussian-mixture adjusted Schrödinger potential of LightSB and its closed-form consequences.

Notation (see ``docs/plugins/lightsb.md``): the reference process is ``dX_t = sqrt(eps) dW_t`` on
``t in [0, 1]``; the plan is ``pi(x1 | x0) ∝ exp(<x0, x1> / eps) v(x1)`` with the adjusted potential

    v(y) = sum_k alpha_k N(y | r_k, eps S_k),   S_k = U_k diag(exp s_k) U_k^T,

``U_k`` orthogonal (identity for diagonal covariances). Every density, weight and normaliser is
computed in log space; the closed forms used are

* ``log C(x0) = logsumexp_k [log alpha_k + (x0^T S_k x0 + 2 r_k^T x0) / (2 eps)]``;
* ``pi(x1 | x0) = sum_k w_k(x0) N(x1 | r_k + S_k x0, eps S_k)``, ``w = softmax`` of the terms above;
* the SB drift ``g(x, t) = (m(x, t) - x) / (1 - t)`` with ``m(x, t) = E[x1 | x_t = x]``, a
  mixture of the Gaussian posteriors of ``x1`` given ``x_t`` (see :meth:`GaussianMixturePotential.posterior_mean`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["GaussianMixturePotential"]

_LOG_2PI = math.log(2.0 * math.pi)


class GaussianMixturePotential(nn.Module):
    """Gaussian-mixture adjusted potential ``v(y) = sum_k alpha_k N(y | r_k, eps S_k)``.

    Parameters (all trainable): ``raw_log_alpha`` (K,) with ``log alpha = raw_log_alpha / eps``;
    ``means`` (K, D) the ``r_k``; ``log_scales`` (K, D) the log-eigenvalues ``s_k`` of ``S_k``;
    for ``covariance="full"`` also ``skew`` (K, D, D), with the rotation
    ``U_k = base_rotation_k @ cayley(A_k - A_k^T)`` with ``cayley(B) = (I - B)^{-1} (I + B)``
    (``A_k`` the strict upper triangle of ``skew``; ``base_rotation`` is a fixed buffer, the
    identity unless set).

    Args:
        dim: dimension D.
        n_components: number of mixture components K.
        eps: reference-process variance (> 0).
        covariance: ``"diag"`` or ``"full"``.
        init_means: initial ``r_k``, shape (K, D) (typically K samples of p1).
        init_scale: initial eigenvalues of every ``S_k``.
    """

    def __init__(
        self,
        dim: int,
        n_components: int,
        eps: float,
        covariance: str = "diag",
        init_means: Tensor | None = None,
        init_scale: float = 1.0,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        if covariance not in ("diag", "full"):
            raise ValueError(f"covariance must be 'diag' or 'full', got {covariance!r}")
        self.dim, self.n_components, self.eps, self.covariance = int(dim), int(n_components), float(eps), covariance
        K, D = self.n_components, self.dim
        kw = {"dtype": dtype if dtype is not None else torch.get_default_dtype(), "device": device}
        means = torch.zeros(K, D, **kw) if init_means is None else init_means.detach().to(**kw).clone()
        self.raw_log_alpha = nn.Parameter(torch.full((K,), self.eps * math.log(1.0 / K), **kw))
        self.means = nn.Parameter(means)
        self.log_scales = nn.Parameter(torch.full((K, D), math.log(init_scale), **kw))
        if covariance == "full":
            self.skew = nn.Parameter(torch.zeros(K, D, D, **kw))
            self.register_buffer("base_rotation", torch.eye(D, **kw).expand(K, D, D).clone())
        else:
            self.skew = None
            self.base_rotation = None

    # ------------------------------------------------------------------ components
    @property
    def log_alpha(self) -> Tensor:
        """Unnormalised log mixture weights ``log alpha_k``, shape (K,)."""
        return self.raw_log_alpha / self.eps

    def rotations(self) -> Tensor | None:
        """Orthogonal ``U_k``, shape (K, D, D), or ``None`` for diagonal covariances."""
        if self.skew is None:
            return None
        upper = torch.triu(self.skew, diagonal=1)
        skew = upper - upper.transpose(-1, -2)
        eye = torch.eye(self.dim, dtype=skew.dtype, device=skew.device)
        # Cayley transform (I - A)^{-1} (I + A): orthogonal, det +1, identity at A = 0; much cheaper
        # to differentiate than the matrix exponential.
        return self.base_rotation @ torch.linalg.solve(eye - skew, eye + skew)

    def covariances(self) -> Tensor:
        """The matrices ``S_k`` (covariances of the components divided by eps), shape (K, D, D)."""
        scales = self.log_scales.exp()
        U = self.rotations()
        if U is None:
            return torch.diag_embed(scales)
        return (U * scales[:, None, :]) @ U.transpose(-1, -2)

    @staticmethod
    def _to_eig(U: Tensor | None, v: Tensor) -> Tensor:
        """``U_k^T v`` for every component: v (n, D) -> (n, K, D), or (n, K, D) -> (n, K, D)."""
        if U is None:
            return v if v.ndim == 3 else v[:, None, :]
        if v.ndim == 2:
            return torch.einsum("kdj,nd->nkj", U, v)
        return torch.einsum("kdj,nkd->nkj", U, v)

    @staticmethod
    def _from_eig(U: Tensor | None, w: Tensor) -> Tensor:
        """``U_k w_k``: (n, K, D) -> (n, K, D)."""
        if U is None:
            return w
        return torch.einsum("kdj,nkj->nkd", U, w)

    # ------------------------------------------------------------------ densities
    def component_log_density(self, y: Tensor, centres: Tensor, U: Tensor | None = None) -> Tensor:
        """``log N(y | centres_k, eps S_k)`` for every component.

        Args:
            y: points, shape (n, D).
            centres: component means, shape (K, D) or (n, K, D).
            U: rotations (computed if ``None`` and the covariance is full).
        Returns:
            shape (n, K).
        """
        if U is None and self.skew is not None:
            U = self.rotations()
        inv_scales = torch.exp(-self.log_scales)
        if U is None and centres.ndim == 2:
            # diagonal, shared centres: three matmuls, no (n, K, D) intermediate
            rs = centres * inv_scales
            quad = (y * y) @ inv_scales.T - 2.0 * (y @ rs.T) + (centres * rs).sum(-1)
        else:
            diff = y[:, None, :] - (centres if centres.ndim == 3 else centres[None])
            z = self._to_eig(U, diff)
            quad = (z * z * inv_scales).sum(-1)
        logdet = self.log_scales.sum(-1) + self.dim * math.log(self.eps)
        return -0.5 * (self.dim * _LOG_2PI + logdet) - quad / (2.0 * self.eps)

    def log_potential(self, y: Tensor) -> Tensor:
        """``log v(y)``, the log adjusted potential, shape (n,)."""
        return torch.logsumexp(self.log_alpha + self.component_log_density(y, self.means), dim=-1)

    def conditional_logits(self, x0: Tensor, U: Tensor | None = None) -> Tensor:
        """``log alpha_k + (x0^T S_k x0 + 2 r_k^T x0) / (2 eps)``, shape (n, K)."""
        if U is None and self.skew is not None:
            U = self.rotations()
        if U is None:
            xsx = (x0 * x0) @ self.log_scales.exp().T
        else:
            xe = self._to_eig(U, x0)
            xsx = (xe * xe * self.log_scales.exp()).sum(-1)
        return self.log_alpha + (xsx + 2.0 * x0 @ self.means.T) / (2.0 * self.eps)

    def log_normaliser(self, x0: Tensor) -> Tensor:
        """``log C(x0) = log ∫ exp(<x0, y> / eps) v(y) dy``, shape (n,)."""
        return torch.logsumexp(self.conditional_logits(x0), dim=-1)

    def component_means(self, x0: Tensor, U: Tensor | None = None) -> Tensor:
        """Means ``r_k + S_k x0`` of the conditional components, shape (n, K, D)."""
        if U is None and self.skew is not None:
            U = self.rotations()
        xe = self._to_eig(U, x0) * self.log_scales.exp()
        return self.means + self._from_eig(U, xe)

    def conditional_log_prob(self, x1: Tensor, x0: Tensor) -> Tensor:
        """``log pi(x1 | x0)``, shape (n,)."""
        U = self.rotations()
        logw = torch.log_softmax(self.conditional_logits(x0, U), dim=-1)
        return torch.logsumexp(logw + self.component_log_density(x1, self.component_means(x0, U), U), dim=-1)

    def sample_conditional(self, x0: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """One draw of ``x1 ~ pi(. | x0)`` per row of ``x0`` (n, D) -> (n, D)."""
        U = self.rotations()
        logits = self.conditional_logits(x0, U)
        k = torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=generator)[:, 0]
        mean = self.component_means(x0, U)[torch.arange(x0.shape[0], device=x0.device), k]
        xi = torch.randn(x0.shape, dtype=x0.dtype, device=x0.device, generator=generator)
        xi = xi * torch.exp(0.5 * self.log_scales[k]) * math.sqrt(self.eps)
        if U is not None:
            xi = torch.einsum("ndj,nj->nd", U[k], xi)
        return mean + xi

    def conditional_moments(self, x0: Tensor) -> tuple[Tensor, Tensor]:
        """Mean (n, D) and covariance (n, D, D) of the mixture ``pi(. | x0)``."""
        U = self.rotations()
        w = torch.softmax(self.conditional_logits(x0, U), dim=-1)
        mu = self.component_means(x0, U)
        mean = torch.einsum("nk,nkd->nd", w, mu)
        centred = mu - mean[:, None, :]
        cov = torch.einsum("nk,nkd,nke->nde", w, centred, centred)
        cov = cov + self.eps * torch.einsum("nk,kde->nde", w, self.covariances())
        return mean, cov

    # ------------------------------------------------------------------ dynamics
    def posterior_mean(self, x: Tensor, t: Tensor) -> Tensor:
        """``m(x, t) = E[x1 | x_t = x]`` under the bridge, for ``t`` in [0, 1).

        With ``tau = 1 - t`` and, per component, ``A_k = t / (eps tau) I + (eps S_k)^{-1}``,
        ``c_k = x / (eps tau) + (eps S_k)^{-1} r_k``: the posterior of ``x1`` is the mixture of
        ``N(A_k^{-1} c_k, A_k^{-1})`` with log-weights ``log alpha_k - 1/2 log det S_k
        - 1/2 log det A_k - r_k^T S_k^{-1} r_k / (2 eps) + 1/2 c_k^T A_k^{-1} c_k``; all in the
        eigenbasis of ``S_k``, where ``A_k`` is diagonal.

        Args:
            x: states, shape (n, D).
            t: times, shape (n,) (values in [0, 1)).
        Returns:
            shape (n, D).
        """
        U = self.rotations()
        eps = self.eps
        tau = (1.0 - t)[:, None, None]
        sig = self.log_scales.exp()  # (K, D)
        a = t[:, None, None] / (eps * tau) + 1.0 / (eps * sig)  # (n, K, D)
        r_e = self._to_eig(U, self.means[None]) if U is not None else self.means[None]  # (1, K, D)
        c = self._to_eig(U, x) / (eps * tau) + r_e / (eps * sig)
        logits = (
            self.log_alpha
            - 0.5 * self.log_scales.sum(-1)
            - 0.5 * torch.log(a).sum(-1)
            - (r_e * r_e / sig).sum(-1) / (2.0 * eps)
            + 0.5 * (c * c / a).sum(-1)
        )
        w = torch.softmax(logits, dim=-1)
        comp = self._from_eig(U, c / a)
        return torch.einsum("nk,nkd->nd", w, comp)

    def drift(self, x: Tensor, t: Tensor) -> Tensor:
        """SB drift ``g(x, t) = (m(x, t) - x) / (1 - t)``, shapes (n, D), (n,) -> (n, D)."""
        return (self.posterior_mean(x, t) - x) / (1.0 - t)[:, None]
