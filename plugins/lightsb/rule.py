"""The default configuration rule of a LightSB fit: model, warm start and step budget from the
dimension, ``eps`` and the training samples (what ``LightSB(eps)`` does with the settings left to it).

The rule reads two numbers: the dimension D and the *noise fraction*

    rho = tr(eps S*) / tr Cov(p1)

of the closed-form plan between the Gaussians moment-matched to the samples (``eps S*`` is that
plan's conditional covariance): the share of the target's variance that is noise given ``x0``,
0 for a deterministic map (small ``eps``) and 1 for the independent coupling (large ``eps``). It
does not change when both sides are rescaled together with ``eps``. The reasoning and the
measurements behind every branch are in ``docs/plugins/lightsb.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .gaussian import sample_eot

__all__ = ["FitPlan", "default_plan", "noise_fraction", "LOW_DIM", "LARGE_NOISE", "SMALL_NOISE"]

#: Up to this dimension every fit uses full covariances (Gaussian closed-form or cluster start).
LOW_DIM = 32
#: Above ``LOW_DIM``: at ``rho >= LARGE_NOISE`` the components are clusters of ``p1`` (target-cluster start).
LARGE_NOISE = 0.4
#: Above ``LOW_DIM``: below this ``rho`` the published setting (diagonal, identity start).
SMALL_NOISE = 0.08


@dataclass(frozen=True)
class FitPlan:
    """The training strategy of one fit.

    Attributes:
        covariance, n_components, init, num_steps, batch_size, lr, init_spread, n_starts, start_steps:
            as the :class:`~sciml_plugins.lightsb.LightSB` arguments of the same names.
        second_init: also fit from this start (same settings, same held-out split) and keep the fit
            with the lower held-out LightSB loss (``None``: one fit).
        gaussian_basis: train on the samples rotated into the eigenbasis of the Gaussian ``S*``
            (a diagonal ``S_k`` there is a full one in the original coordinates; exact back-rotation).
        full_steps: after the fit, keep its components with mean gate weight above 1e-3 on p0,
            convert them exactly to full covariances and train those for this many more steps (0: none).
    """

    covariance: str
    n_components: int
    init: str
    num_steps: int
    batch_size: int = 128
    lr: float = 1e-2
    init_spread: float = 0.3
    n_starts: int = 1
    start_steps: int = 300
    second_init: str | None = None
    gaussian_basis: bool = False
    full_steps: int = 0


#: Without two sample tensors that determine covariances (samplers, too few samples, or the
#: matching objective): the published diagonal model.
FALLBACK = FitPlan("diag", 50, "identity", 10000)


def noise_fraction(x0: Tensor, x1: Tensor, eps: float) -> float:
    """``rho = tr(eps S*) / tr Cov(x1)`` for the Gaussians moment-matched to ``x0`` (n0, D) and ``x1`` (n1, D).

    Needs more than D rows on each side and a nonsingular sample covariance of ``x0``.
    """
    c1_trace = float(torch.var(x1.detach().to(torch.float64).cpu(), dim=0, correction=0).sum())
    return float(torch.trace(sample_eot(x0, x1, eps).conditional_cov)) / max(c1_trace, 1e-300)


def _has_covariances(x0: Tensor | None, x1: Tensor | None) -> bool:
    if x0 is None or x1 is None:
        return False
    d = x0.shape[1]
    if min(x0.shape[0], x1.shape[0]) <= 10 * d:
        return False
    a = x0.detach().to(torch.float64).cpu()
    return int(torch.linalg.cholesky_ex(torch.cov(a.T, correction=0).reshape(d, d)).info) == 0


def default_plan(eps: float, x0: Tensor | None, x1: Tensor | None) -> FitPlan:
    """The plan for training samples ``x0`` (n0, D) and ``x1`` (n1, D) (``None``: a sampler side).

    * D <= ``LOW_DIM``: full covariances, K = 10, batch 256, lr ``1e-2 min(1, 10 rho)``; three
      Gaussian closed-form starts (spread ``min(1, 5 rho)``, each with its own means) and the
      cluster start, each trained 1000 steps, the one with the lowest held-out loss trained 5000 more.
    * ``rho >= LARGE_NOISE``: full covariances, K = 5, the target-cluster start (best of 4 starts
      of 300 steps by held-out loss), 3000 steps, lr 3e-3.
    * ``SMALL_NOISE <= rho < LARGE_NOISE``: diagonal K = 50 in the Gaussian basis from the Gaussian
      start (spread 0.3), then full covariances from the components that carry weight; 4000 + 3000
      steps (3000 + 2000 at D >= 128, where a full step costs ~D^2).
    * ``rho < SMALL_NOISE``: the published setting, diagonal K = 50, identity start, 10 000 steps.

    Sampler inputs and samples that cannot determine covariances (at most 10 D rows) get the
    published setting.
    """
    if not _has_covariances(x0, x1):
        return FALLBACK
    assert x0 is not None and x1 is not None
    d, rho = x0.shape[1], noise_fraction(x0, x1, eps)
    if d <= LOW_DIM:
        return FitPlan("full", 10, "gaussian", 5000, batch_size=256, lr=1e-2 * min(1.0, 10 * rho),
                       init_spread=min(1.0, 5 * rho), n_starts=3, start_steps=1000, second_init="clusters")
    if rho >= LARGE_NOISE:
        return FitPlan("full", 5, "targets", 3000, lr=3e-3, n_starts=2 if d >= 128 else 4)
    if rho >= SMALL_NOISE:
        steps, full = (3000, 2000) if d >= 128 else (4000, 3000)
        return FitPlan("diag", 50, "gaussian", steps, gaussian_basis=True, full_steps=full)
    return FALLBACK
