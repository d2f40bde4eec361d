"""The Gaussian-mixture adjusted Schrödinger potential of LightSB and its closed-form consequences.

Notation (see ``docs/plugins/lightsb.md``): the reference process is ``dX_t = sqrt(eps) dW_t`` on
``t in [0, 1]``; the plan is ``pi(x1 | x0) ∝ exp(<x0, x1> / eps) v(x1)`` with the adjusted potential

    v(y) = sum_k alpha_k N(y | r_k, eps S_k),   S_k = L_k L_k^T,

``L_k`` lower triangular with diagonal ``exp(s_k / 2)`` (``L_k`` diagonal for diagonal covariances,
so that ``S_k = diag(exp s_k)``; in both cases ``log det S_k = sum(s_k)``). Every density, weight
and normaliser is computed in log space; the closed forms used are

* ``log C(x0) = logsumexp_k [log alpha_k + (x0^T S_k x0 + 2 r_k^T x0) / (2 eps)]`` with
  ``x0^T S_k x0 = |L_k^T x0|^2``;
* ``log N(y | r_k, eps S_k)`` through the triangular solve ``L_k^{-1} (y - r_k)``;
* ``pi(x1 | x0) = sum_k w_k(x0) N(x1 | r_k + S_k x0, eps S_k)``, ``w = softmax`` of the terms above;
* the SB drift ``g(x, t) = (m(x, t) - x) / (1 - t)`` with ``m(x, t) = E[x1 | x_t = x]``, a
  mixture of the Gaussian posteriors of ``x1`` given ``x_t`` (see :meth:`GaussianMixturePotential.posterior_mean`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from sciml.distributions import gaussian_log_prob
from sciml.validation import check_device, check_dtype, check_positive, check_positive_int, check_tensor

__all__ = ["GaussianMixturePotential"]


def _describe(x: object) -> str:
    return f"a {x.dtype} tensor" if isinstance(x, Tensor) else type(x).__name__


class GaussianMixturePotential(nn.Module):
    """Gaussian-mixture adjusted potential ``v(y) = sum_k alpha_k N(y | r_k, eps S_k)``.

    Parameters (all trainable): ``raw_log_alpha`` (K,) with ``log alpha = raw_log_alpha / eps``;
    ``means`` (K, D) the ``r_k``; ``log_scales`` (K, D), the ``s_k``; for ``covariance="diag"``
    ``S_k = diag(exp s_k)``; for ``covariance="full"`` also ``chol_lower`` (K, D, D), whose strict
    lower triangle (the rest is ignored) is the off-diagonal part of the Cholesky factor
    ``L_k = tril(chol_lower_k, -1) + diag(exp(s_k / 2))`` of ``S_k = L_k L_k^T``. Every symmetric
    positive definite ``S_k`` has exactly one such parametrisation, and densities, normalisers and
    log-determinants cost triangular solves and products only.

    Args:
        dim: dimension D.
        n_components: number of mixture components K.
        eps: reference-process variance (> 0).
        covariance: ``"diag"`` or ``"full"``.
        init_means: initial ``r_k``, shape (K, D) (typically K samples of p1), finite.
        init_scale: initial eigenvalues of every ``S_k`` (``S_k = init_scale * I``, > 0).
        dtype: a floating dtype (``None``: torch's default).
        device: where the parameters live (checked up front with :func:`sciml.validation.check_device`).

    The constructor and :meth:`set_covariances` check their arguments; the evaluation methods do
    not (they are the training hot path): :class:`~sciml_plugins.lightsb.Bridge` checks the points
    it is given before calling them.
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
        self.dim = check_positive_int("dim", dim)
        self.n_components = check_positive_int("n_components", n_components)
        self.eps, self.covariance = check_positive("eps", eps), covariance
        init_scale = check_positive("init_scale", init_scale)
        check_dtype("dtype", dtype, allow_none=True)
        K, D = self.n_components, self.dim
        if init_means is not None:
            check_tensor("init_means", init_means, shape=(K, D))
        kw = {"dtype": dtype if dtype is not None else torch.get_default_dtype(), "device": check_device("device", device)}
        means = torch.zeros(K, D, **kw) if init_means is None else init_means.detach().to(**kw).clone()
        self.raw_log_alpha = nn.Parameter(torch.full((K,), self.eps * math.log(1.0 / K), **kw))
        self.means = nn.Parameter(means)
        self.log_scales = nn.Parameter(torch.full((K, D), math.log(init_scale), **kw))
        if covariance == "full":
            self.chol_lower = nn.Parameter(torch.zeros(K, D, D, **kw))
            # the strict lower triangle as a multiplicative mask (several times faster than torch.tril on the CPU)
            self.register_buffer("_strict_lower", torch.ones(D, D, **kw).tril_(-1), persistent=False)
        else:
            self.chol_lower = None

    # ------------------------------------------------------------------ components
    @property
    def log_alpha(self) -> Tensor:
        """Unnormalised log mixture weights ``log alpha_k``, shape (K,)."""
        return self.raw_log_alpha / self.eps

    def cholesky_factors(self) -> Tensor | None:
        """Lower-triangular ``L_k`` with ``S_k = L_k L_k^T``, shape (K, D, D); ``None`` for diagonal."""
        if self.chol_lower is None:
            return None
        return self.chol_lower * self._strict_lower + torch.diag_embed(torch.exp(0.5 * self.log_scales))

    def covariances(self) -> Tensor:
        """The matrices ``S_k`` (covariances of the components divided by eps), shape (K, D, D)."""
        L = self.cholesky_factors()
        if L is None:
            return torch.diag_embed(self.log_scales.exp())
        return L @ L.transpose(-1, -2)

    def set_covariances(self, S: Tensor) -> None:
        """Set every ``S_k`` (in place, no gradient): ``S`` (D, D) for all components or (K, D, D).

        Full covariances store the Cholesky factor of ``S_k`` (symmetrised first), which must be
        positive definite; diagonal ones keep the diagonal of ``S_k`` only, which must be positive.
        Raises ``ValueError`` (naming ``S``) otherwise, or for non-finite entries.
        """
        K, D = self.n_components, self.dim
        check_tensor("S", S, ndim=(2, 3))
        S = S.detach().to(torch.float64).cpu()
        if S.ndim == 2:
            S = S.expand(K, D, D)
        if S.shape != (K, D, D):
            raise ValueError(f"S must have shape ({D}, {D}) or ({K}, {D}, {D}), got {tuple(S.shape)}")
        S = 0.5 * (S + S.transpose(-1, -2))
        kw = {"dtype": self.means.dtype, "device": self.means.device}
        with torch.no_grad():
            if self.chol_lower is None:
                diag = torch.diagonal(S, dim1=-2, dim2=-1)
                if not bool((diag > 0).all()):
                    raise ValueError("S must have a positive diagonal (diagonal covariances are positive definite)")
                self.log_scales.copy_(diag.log().to(**kw))
            else:
                L, info = torch.linalg.cholesky_ex(S)
                if bool((info != 0).any()):
                    bad = (info != 0).nonzero()[:, 0].tolist()
                    raise ValueError(f"S must be symmetric positive definite; component(s) {bad} are not")
                d = torch.diagonal(L, dim1=-2, dim2=-1)
                self.log_scales.copy_((2.0 * d.log()).to(**kw))
                self.chol_lower.copy_(torch.tril(L, diagonal=-1).to(**kw))

    def subset(self, keep: Tensor | None = None, covariance: str | None = None) -> GaussianMixturePotential:
        """A copy of some components (``S_k``, ``r_k``, ``alpha_k`` unchanged), same dtype and device.

        Args:
            keep: indices (or a boolean mask of shape (K,)) of the components to copy; ``None``: all.
                Dropping components changes the plan unless their gates are negligible.
            covariance: ``"full"`` or ``"diag"`` of the copy (``None``: this potential's). A diagonal
                ``S_k`` becomes the Cholesky factor ``diag(exp(s_k / 2))`` exactly; full to diagonal
                is not supported.
        Returns:
            a new :class:`GaussianMixturePotential` with the kept components, in their order.
        """
        cov = self.covariance if covariance is None else covariance
        if cov not in ("diag", "full"):
            raise ValueError(f"covariance must be 'diag' or 'full', got {covariance!r}")
        if cov == "diag" and self.covariance == "full":
            raise ValueError("a full-covariance potential cannot be copied as a diagonal one")
        if keep is not None and not (isinstance(keep, Tensor) and (keep.dtype == torch.bool or not (
                keep.is_floating_point() or keep.is_complex()))):
            raise TypeError(f"keep must be None, an integer tensor of indices or a boolean mask, got {_describe(keep)}")
        idx = torch.arange(self.n_components, device=self.means.device) if keep is None else keep
        if idx.dtype == torch.bool:
            if idx.shape != (self.n_components,):
                raise ValueError(f"a boolean keep must have shape ({self.n_components},), got {tuple(idx.shape)}")
            idx = idx.nonzero()[:, 0]
        idx = idx.to(device=self.means.device, dtype=torch.long)
        if idx.ndim != 1 or idx.numel() < 1:
            raise ValueError("keep must select at least one component")
        if int(idx.min()) < 0 or int(idx.max()) >= self.n_components:
            raise ValueError(f"keep has indices outside [0, {self.n_components})")
        out = GaussianMixturePotential(self.dim, int(idx.numel()), self.eps, cov, init_means=self.means[idx],
                                       dtype=self.means.dtype, device=self.means.device)
        with torch.no_grad():
            out.raw_log_alpha.copy_(self.raw_log_alpha[idx])
            out.log_scales.copy_(self.log_scales[idx])
            if self.chol_lower is not None and out.chol_lower is not None:
                out.chol_lower.copy_(self.chol_lower[idx])
        return out

    def rotated(self, basis: Tensor) -> GaussianMixturePotential:
        """This potential, fitted on samples ``x @ basis`` of both sides (``basis`` (D, D) orthogonal),
        in the original coordinates: ``S_k -> U S_k U^T``, ``r_k -> U r_k``, ``alpha_k`` unchanged
        (``<x0, x1>`` is invariant, so the plan is the same). A full-covariance copy, same dtype and device."""
        check_tensor("basis", basis, shape=(self.dim, self.dim))
        u = basis.detach().to(torch.float64).cpu()
        kw = {"dtype": self.means.dtype, "device": self.means.device}
        means = (self.means.detach().to(torch.float64).cpu() @ u.T).to(**kw)
        out = GaussianMixturePotential(self.dim, self.n_components, self.eps, "full", init_means=means, **kw)
        out.set_covariances(u @ self.covariances().detach().to(torch.float64).cpu() @ u.T)
        with torch.no_grad():
            out.raw_log_alpha.copy_(self.raw_log_alpha)
        return out

    def eigh(self) -> tuple[Tensor | None, Tensor]:
        """Eigendecomposition ``S_k = U_k diag(lam_k) U_k^T``: ``(U, lam)``, shapes (K, D, D), (K, D).

        ``U`` is ``None`` for diagonal covariances (``lam = exp(s_k)``).
        """
        if self.chol_lower is None:
            return None, self.log_scales.exp()
        lam, U = torch.linalg.eigh(self.covariances())
        return U, lam.clamp_min(torch.finfo(lam.dtype).tiny)

    # ------------------------------------------------------------------ densities
    def component_log_density(self, y: Tensor, centres: Tensor, L: Tensor | None = None) -> Tensor:
        """``log N(y | centres_k, eps S_k)`` for every component.

        Args:
            y: points, shape (n, D).
            centres: component means, shape (K, D) or (n, K, D).
            L: Cholesky factors (computed if ``None`` and the covariance is full).
        Returns:
            shape (n, K).
        """
        if L is None and self.chol_lower is not None:
            L = self.cholesky_factors()
        if L is None:
            return gaussian_log_prob(y, centres, variances=self.log_scales.exp(), scale=self.eps)
        return gaussian_log_prob(y, centres, scale_tril=L, scale=self.eps)

    def log_potential(self, y: Tensor, L: Tensor | None = None) -> Tensor:
        """``log v(y)``, the log adjusted potential, shape (n,) (``L``: the Cholesky factors, if computed)."""
        return torch.logsumexp(self.log_alpha + self.component_log_density(y, self.means, L), dim=-1)

    def _lt_x(self, L: Tensor, x0: Tensor) -> Tensor:
        """``L_k^T x0`` for every component: (n, D) -> (n, K, D)."""
        return torch.einsum("kdj,nd->nkj", L, x0)

    def conditional_logits(self, x0: Tensor, L: Tensor | None = None) -> Tensor:
        """``log alpha_k + (x0^T S_k x0 + 2 r_k^T x0) / (2 eps)``, shape (n, K)."""
        if L is None and self.chol_lower is not None:
            L = self.cholesky_factors()
        if L is None:
            xsx = (x0 * x0) @ self.log_scales.exp().T
        else:
            v = self._lt_x(L, x0)
            xsx = (v * v).sum(-1)
        return self.log_alpha + (xsx + 2.0 * x0 @ self.means.T) / (2.0 * self.eps)

    def log_normaliser(self, x0: Tensor) -> Tensor:
        """``log C(x0) = log ∫ exp(<x0, y> / eps) v(y) dy``, shape (n,)."""
        return torch.logsumexp(self.conditional_logits(x0), dim=-1)

    def lightsb_loss(self, x0: Tensor, x1: Tensor) -> Tensor:
        """The LightSB objective ``mean log C(x0) - mean log v(x1)`` on independent samples (scalar);
        equals ``KL(pi* || pi_theta)`` up to a constant. ``x0`` (n0, D), ``x1`` (n1, D)."""
        L = self.cholesky_factors()  # once for both terms
        return (torch.logsumexp(self.conditional_logits(x0, L), dim=-1).mean()
                - self.log_potential(x1, L).mean())

    def component_means(self, x0: Tensor, L: Tensor | None = None) -> Tensor:
        """Means ``r_k + S_k x0`` of the conditional components, shape (n, K, D)."""
        if L is None and self.chol_lower is not None:
            L = self.cholesky_factors()
        if L is None:
            return self.means + x0[:, None, :] * self.log_scales.exp()
        return self.means + torch.einsum("kdj,nkj->nkd", L, self._lt_x(L, x0))

    def conditional_log_prob(self, x1: Tensor, x0: Tensor) -> Tensor:
        """``log pi(x1 | x0)``, shape (n,)."""
        L = self.cholesky_factors()
        logw = torch.log_softmax(self.conditional_logits(x0, L), dim=-1)
        return torch.logsumexp(logw + self.component_log_density(x1, self.component_means(x0, L), L), dim=-1)

    def sample_conditional(self, x0: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """One draw of ``x1 ~ pi(. | x0)`` per row of ``x0`` (n, D) -> (n, D)."""
        L = self.cholesky_factors()
        logits = self.conditional_logits(x0, L)
        k = torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=generator)[:, 0]
        mean = self.component_means(x0, L)[torch.arange(x0.shape[0], device=x0.device), k]
        xi = torch.randn(x0.shape, dtype=x0.dtype, device=x0.device, generator=generator) * math.sqrt(self.eps)
        if L is None:
            return mean + xi * torch.exp(0.5 * self.log_scales[k])
        return mean + torch.einsum("ndj,nj->nd", L[k], xi)

    def conditional_moments(self, x0: Tensor) -> tuple[Tensor, Tensor]:
        """Mean (n, D) and covariance (n, D, D) of the mixture ``pi(. | x0)``."""
        L = self.cholesky_factors()
        w = torch.softmax(self.conditional_logits(x0, L), dim=-1)
        mu = self.component_means(x0, L)
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
        - 1/2 log det A_k - r_k^T S_k^{-1} r_k / (2 eps) + 1/2 c_k^T A_k^{-1} c_k``.

        Diagonal covariances, and full ones without gradients, work in the eigenbasis of ``S_k``
        (where ``A_k`` is diagonal). Full covariances with gradients (the matching objective) use
        ``A_k^{-1} c_k = (a S_k + I)^{-1} (S_k x / tau + r_k)``, ``a = t / tau``, by a batched
        Cholesky solve, whose gradient stays finite when eigenvalues of ``S_k`` coincide.

        Args:
            x: states, shape (n, D).
            t: times, shape (n,) (values in [0, 1)).
        Returns:
            shape (n, D).
        """
        if self.chol_lower is not None and torch.is_grad_enabled() and self.chol_lower.requires_grad:
            return self._posterior_mean_direct(x, t)
        U, sig = self.eigh()
        eps = self.eps
        tau = (1.0 - t)[:, None, None]
        a = t[:, None, None] / (eps * tau) + 1.0 / (eps * sig)  # (n, K, D)
        if U is None:
            r_e, x_e = self.means[None], x[:, None, :]
        else:
            r_e = torch.einsum("kdj,kd->kj", U, self.means)[None]  # (1, K, D)
            x_e = torch.einsum("kdj,nd->nkj", U, x)
        c = x_e / (eps * tau) + r_e / (eps * sig)
        logits = (
            self.log_alpha
            - 0.5 * self.log_scales.sum(-1)
            - 0.5 * torch.log(a).sum(-1)
            - (r_e * r_e / sig).sum(-1) / (2.0 * eps)
            + 0.5 * (c * c / a).sum(-1)
        )
        w = torch.softmax(logits, dim=-1)
        comp = c / a if U is None else torch.einsum("kdj,nkj->nkd", U, c / a)
        return torch.einsum("nk,nkd->nd", w, comp)

    def _posterior_mean_direct(self, x: Tensor, t: Tensor) -> Tensor:
        # Same log-weights as posterior_mean without the eigendecomposition; the constant
        # D/2 log eps and the log det S_k (which cancels against log det A_k) are dropped.
        L = self.cholesky_factors()
        assert L is not None
        S = L @ L.transpose(-1, -2)
        tau = 1.0 - t
        a = (t / tau)[:, None, None, None]
        eye = torch.eye(self.dim, dtype=x.dtype, device=x.device)
        Lm = torch.linalg.cholesky(a * S + eye)  # (n, K, D, D)
        s_x = torch.einsum("kdj,nkj->nkd", L, self._lt_x(L, x))  # S_k x, (n, K, D)
        rhs = s_x / tau[:, None, None] + self.means
        m = torch.cholesky_solve(rhs[..., None], Lm)[..., 0]  # (n, K, D)
        sinv_r = torch.cholesky_solve(self.means[..., None], L)[..., 0]  # (K, D)
        c = x[:, None, :] / tau[:, None, None] + sinv_r
        logdet_m = 2.0 * torch.log(torch.diagonal(Lm, dim1=-2, dim2=-1)).sum(-1)
        logits = (
            self.log_alpha
            - 0.5 * logdet_m
            - (self.means * sinv_r).sum(-1) / (2.0 * self.eps)
            + 0.5 * (c * m).sum(-1) / self.eps
        )
        w = torch.softmax(logits, dim=-1)
        return torch.einsum("nk,nkd->nd", w, m)

    def drift(self, x: Tensor, t: Tensor) -> Tensor:
        """SB drift ``g(x, t) = (m(x, t) - x) / (1 - t)``, shapes (n, D), (n,) -> (n, D)."""
        return (self.posterior_mean(x, t) - x) / (1.0 - t)[:, None]
