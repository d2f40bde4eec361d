"""A small operator-learning problem with an exact answer, shared by the trainer and operator tests.

``a``: random periodic fields with a few Fourier modes; ``u``: the solution of ``-u'' + u = a`` on the
unit circle (a Fourier multiplier ``1 / (1 + (2 pi k)^2)``), which one spectral layer represents.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def helmholtz_1d(n: int, size: int = 64, *, modes: int = 6, seed: int = 0,
                 dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    """``(a, u)`` of shape ``(n, 1, size)``."""
    g = torch.Generator().manual_seed(seed)
    coef = torch.randn(n, modes, 2, generator=g, dtype=torch.float64) / torch.arange(1, modes + 1)[:, None]
    x = torch.arange(size, dtype=torch.float64) / size
    k = torch.arange(1, modes + 1, dtype=torch.float64)
    phase = 2 * math.pi * k[:, None] * x[None, :]
    a = (coef[..., 0, None] * torch.cos(phase) + coef[..., 1, None] * torch.sin(phase)).sum(1)
    u = (coef[..., 0, None] * torch.cos(phase) + coef[..., 1, None] * torch.sin(phase))
    u = (u / (1 + (2 * math.pi * k[:, None]) ** 2)).sum(1)
    return a[:, None].to(dtype), u[:, None].to(dtype)
