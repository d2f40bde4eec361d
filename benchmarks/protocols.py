"""Estimators exactly as published benchmark code computes them (not the library's own metrics).

``pot_sinkhorn_w2`` is POT's default Sinkhorn-Knopp call as the diffusion-sampler papers' code makes
it; the library's :func:`sciml.metrics.entropic_w2` is the accurate entropic W2.
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import Tensor

__all__ = ["pot_sinkhorn_w2"]


def pot_sinkhorn_w2(x: Tensor, y: Tensor, reg: float = 0.05, max_iter: int = 1000) -> tuple[float, bool]:
    """``(sqrt(ot.sinkhorn2(a, b, C, reg)), failed)`` with uniform ``a``, ``b`` and ``C_ij = |x_i - y_j|^2``.

    With ``reg = 0.05`` the kernel ``exp(-C / reg)`` underflows for costs above ~37 (float64), and
    POT then stops on numerical errors and returns the cost of its last valid iterate, which can be
    far from the entropic plan's; ``failed`` says POT reported such errors.
    """
    import ot

    n, m = x.shape[0], y.shape[0]
    a = torch.full((n,), 1.0 / n, dtype=x.dtype)
    b = torch.full((m,), 1.0 / m, dtype=x.dtype)
    cost = torch.cdist(x, y.to(x)) ** 2
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        val = float(ot.sinkhorn2(a, b, cost, reg, numItermax=max_iter, stopThr=1e-9))
    failed = any("umerical error" in str(w.message) or "divide" in str(w.message) for w in caught)
    return math.sqrt(max(val, 0.0)), failed
