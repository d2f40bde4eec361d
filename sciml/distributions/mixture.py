"""Gaussian mixtures with diagonal or full covariances: component log-densities, score, sampling.

:func:`gaussian_log_prob` is the one implementation of ``log N(x | mu_k, c Sigma_k)`` for a set of
components, used by :class:`GaussianMixture`, the mixture targets and the LightSB potential.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.distributions import Distribution, constraints

from sciml.validation import as_tensor, check_covariance, check_generator, check_tensor

__all__ = ["GaussianMixture", "gaussian_log_prob"]

_LOG_2PI = math.log(2.0 * math.pi)


def gaussian_log_prob(x: Tensor, means: Tensor, *, scale_tril: Tensor | None = None,
                      variances: Tensor | None = None, scale: float = 1.0) -> Tensor:
    """``log N(x | means_k, scale * Sigma_k)`` for every component ``k``: ``(..., D) -> (..., K)``.

    ``Sigma_k = L_k L_k^T`` with ``scale_tril`` ``(K, D, D)`` lower triangular, or
    ``diag(variances_k)`` with ``variances`` ``(K, D)`` (exactly one of the two). ``means`` is
    ``(K, D)`` or, per point, ``(..., K, D)``. No argument checks: this is a hot path.

    Diagonal covariances with shared ``(K, D)`` centres use ``|x|^2 - 2 x.m + |m|^2`` (matrix
    products, no ``(..., K, D)`` intermediate), which loses accuracy when ``|x|`` is large against
    the component's scale; pass the centres broadcast to ``(..., K, D)`` for the difference form.
    """
    if (scale_tril is None) == (variances is None):
        raise ValueError("give exactly one of scale_tril and variances")
    d = x.shape[-1]
    if scale_tril is None:
        inv = 1.0 / variances
        if means.ndim == 2:  # shared centres: matmuls, no (..., K, D) intermediate
            rs = means * inv
            quad = (x * x) @ inv.T - 2.0 * (x @ rs.T) + (means * rs).sum(-1)
        else:
            diff = x[..., None, :] - means
            quad = (diff * diff / variances).sum(-1)
        logdet = variances.log().sum(-1)
    else:
        lead = x.shape[:-1]
        centres = means if means.ndim == 2 else means.reshape(-1, *means.shape[-2:])
        diff = x.reshape(-1, 1, d) - centres  # (n, K, D)
        z = torch.linalg.solve_triangular(scale_tril, diff.permute(1, 2, 0), upper=False)  # (K, D, n)
        quad = (z * z).sum(1).T.reshape(*lead, scale_tril.shape[0])
        logdet = 2.0 * torch.log(torch.diagonal(scale_tril, dim1=-2, dim2=-1)).sum(-1)
    return -0.5 * (d * (_LOG_2PI + math.log(scale)) + logdet + quad / scale)


class GaussianMixture(Distribution):
    """``sum_k w_k N(means_k, Sigma_k)`` on ``R^D`` with diagonal or full covariances.

    Args:
        weights: ``(K,)`` nonnegative weights with a positive sum (normalised here).
        means: ``(K, D)`` component means.
        covariances: ``(K, D)`` diagonal variances (> 0) or ``(K, D, D)`` symmetric positive
            definite matrices; ``None`` with ``scale_tril``.
        scale_tril: ``(K, D, D)`` lower-triangular Cholesky factors instead of ``covariances``.

    Tensors keep the dtype and device of ``means`` (float64 for lists). Invalid arguments raise
    ``ValueError`` / ``TypeError`` naming them.
    """

    arg_constraints: dict = {}
    support = constraints.real_vector
    has_rsample = False

    def __init__(self, weights: Tensor, means: Tensor, covariances: Tensor | None = None, *,
                 scale_tril: Tensor | None = None) -> None:
        means = check_tensor("means", as_tensor("means", means), ndim=2)
        k, d = means.shape
        if k < 1 or d < 1:
            raise ValueError(f"means must have shape (K >= 1, D >= 1), got {tuple(means.shape)}")
        kw = {"dtype": means.dtype, "device": means.device}
        w = check_tensor("weights", as_tensor("weights", weights, **kw), shape=(k,))
        if bool((w < 0).any()) or not float(w.sum()) > 0:
            raise ValueError("weights must be nonnegative with a positive sum")
        self.means, self.log_weights = means, (w / w.sum()).log()
        self.variances: Tensor | None = None
        self.scale_tril: Tensor | None = None
        if (covariances is None) == (scale_tril is None):
            raise ValueError("give exactly one of covariances and scale_tril")
        if scale_tril is not None:
            L = check_tensor("scale_tril", as_tensor("scale_tril", scale_tril, **kw), shape=(k, d, d))
            diag = torch.diagonal(L, dim1=-2, dim2=-1)
            if not bool((diag > 0).all()):
                raise ValueError("scale_tril must have a positive diagonal")
            self.scale_tril = torch.tril(L)
        else:
            c = as_tensor("covariances", covariances, **kw)
            if c.shape == (k, d):
                check_tensor("covariances", c)
                if not bool((c > 0).all()):
                    raise ValueError("covariances given as (K, D) variances must be > 0")
                self.variances = c
            elif c.shape == (k, d, d):
                c = check_covariance("covariances", c, definite=True)
                self.scale_tril = torch.linalg.cholesky(c)
            else:
                raise ValueError(f"covariances must have shape (K, D) = ({k}, {d}) or (K, D, D), got {tuple(c.shape)}")
        super().__init__(batch_shape=torch.Size(), event_shape=torch.Size([d]), validate_args=False)

    @property
    def dim(self) -> int:
        """Dimension D."""
        return int(self.means.shape[1])

    @property
    def num_components(self) -> int:
        """Number of components K."""
        return int(self.means.shape[0])

    @property
    def weights(self) -> Tensor:
        """Normalised weights, ``(K,)``."""
        return self.log_weights.exp()

    @property
    def covariance_matrices(self) -> Tensor:
        """``Sigma_k``, ``(K, D, D)``."""
        if self.variances is not None:
            return torch.diag_embed(self.variances)
        return self.scale_tril @ self.scale_tril.transpose(-1, -2)

    @property
    def mean(self) -> Tensor:
        return self.weights @ self.means

    @property
    def variance(self) -> Tensor:
        w = self.weights
        second = torch.diagonal(self.covariance_matrices, dim1=-2, dim2=-1) + self.means**2
        return w @ second - self.mean**2

    def component_log_probs(self, x: Tensor) -> Tensor:
        """``log w_k + log N(x | means_k, Sigma_k)``, ``(..., D) -> (..., K)``."""
        return self.log_weights + gaussian_log_prob(x, self.means, scale_tril=self.scale_tril,
                                                     variances=self.variances)

    def log_prob(self, x: Tensor) -> Tensor:
        """Log-density, ``(..., D) -> (...)``."""
        return torch.logsumexp(self.component_log_probs(x), dim=-1)

    def log_prob_and_score(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Log-density ``(...)`` and its gradient ``(..., D)`` in closed form (responsibility-weighted)."""
        comp = self.component_log_probs(x)
        resp = torch.softmax(comp, dim=-1)
        if self.variances is not None:
            grads = (self.means - x[..., None, :]) / self.variances  # (..., K, D)
            score = (resp[..., None] * grads).sum(-2)
        else:
            lead, d = x.shape[:-1], x.shape[-1]
            diff = (self.means - x.reshape(-1, 1, d)).permute(1, 2, 0)  # (K, D, n)
            prec = torch.cholesky_solve(diff, self.scale_tril)  # Sigma_k^{-1} (mu_k - x)
            score = torch.einsum("nk,kdn->nd", resp.reshape(-1, self.num_components), prec).reshape(*lead, d)
        return torch.logsumexp(comp, dim=-1), score

    def sample(self, sample_shape: int | torch.Size | tuple[int, ...] = (), *,
               generator: torch.Generator | None = None) -> Tensor:
        """Draws of shape ``(*sample_shape, D)`` (an int ``n`` means ``(n,)``); the random numbers come
        from ``generator``'s device."""
        check_generator("generator", generator)
        if isinstance(sample_shape, int) and not isinstance(sample_shape, bool):
            sample_shape = (sample_shape,)
        try:
            shape = torch.Size(sample_shape)
        except TypeError:
            raise TypeError(f"sample_shape must be a tuple of ints, got {type(sample_shape).__name__}") from None
        if any(n < 0 for n in shape):
            raise ValueError(f"sample_shape must hold non-negative sizes, got {tuple(shape)}")
        n, d = shape.numel(), self.means.shape[1]
        if n == 0:
            return self.means.new_empty(*shape, d)
        dev = self.means.device if generator is None else generator.device
        idx = torch.multinomial(self.weights.to(dev), n, replacement=True, generator=generator).to(self.means.device)
        z = torch.randn(n, d, dtype=self.means.dtype, device=dev, generator=generator).to(self.means.device)
        if self.variances is not None:
            x = self.means[idx] + self.variances[idx].sqrt() * z
        else:
            x = torch.empty_like(z)
            for k in range(self.num_components):  # per component: no (n, D, D) gather of the factors
                rows = idx == k
                x[rows] = self.means[k] + z[rows] @ self.scale_tril[k].T
        return x.reshape(*shape, d)
