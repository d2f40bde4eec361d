"""Low-level Kronecker-structured tensor operations used by :class:`sciml.kernels.Kronecker`.

Conventions: ``K = A_1 kron A_2 kron ... kron A_d`` in :func:`torch.kron` order (the first factor
varies slowest), factor ``k`` has shape ``(*b_k, n_k, n_k)`` and ``N = prod_k n_k``. A vector of
length ``N`` is the row-major flattening of a tensor of shape ``(n_1, ..., n_d)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = [
    "kron_apply",
    "kron_dense",
    "kron_diagonal",
    "eig_grid",
    "product_range",
]


def kron_apply(mats: Sequence[Tensor | None], x: Tensor, sizes: Sequence[int] | None = None) -> Tensor:
    """Apply ``mats[0] kron ... kron mats[d-1]`` to the columns of ``x``.

    Mode-``k`` products on the grid tensor: with ``x`` viewed as ``(c, pre, n_k, post)`` the
    ``k``-th factor acts as ``A_k @ X`` (batched over ``pre``; a single GEMM for the first factor,
    ``X @ A_k^T`` for the last), so no axis permutation is ever copied (Saatci 2012, ch. 5, does
    the same contraction with a transpose per factor). Cost ``O(N c sum_k n_k)``.

    Args:
        mats: per-factor matrices ``(*b_k, n_k, n_k)``; ``None`` stands for an identity factor
            (then ``sizes`` is required).
        x: ``(..., N, c)``.
        sizes: factor sizes ``n_k`` (default: read from ``mats``).

    Returns:
        ``(..., N, c)`` (a transposed view when ``c > 1``).
    """
    if sizes is None:
        sizes = [m.shape[-1] for m in mats]  # type: ignore[union-attr]
    n_tot = x.shape[-2]
    c = x.shape[-1]
    y = x.mT.contiguous() if c > 1 else x.reshape(*x.shape[:-2], 1, n_tot)  # (..., c, N)
    batch = y.shape[:-1]  # (..., c)
    pre = 1
    for mat, n in zip(mats, sizes):
        post = n_tot // (pre * n)
        if mat is not None:
            # factor batch dimensions align with x's batch, not with the column / pre axes
            a = mat if mat.ndim == 2 else mat.unsqueeze(-3)
            if post == 1:
                y = y.reshape(*batch, pre, n) @ a.mT
            elif pre == 1:
                y = a @ y.reshape(*batch, n, post)
            else:
                a = a if mat.ndim == 2 else a.unsqueeze(-3)
                y = a @ y.reshape(*batch, pre, n, post)
            batch = y.shape[: y.ndim - (2 if post == 1 or pre == 1 else 3)]
        pre *= n
    return y.reshape(*batch, n_tot).mT


def kron_dense(mats: Sequence[Tensor]) -> Tensor:
    """Dense ``mats[0] kron ... kron mats[-1]`` with broadcasting over leading batch dimensions."""
    out = mats[0]
    for m in mats[1:]:
        a, b = out.shape[-1], m.shape[-1]
        prod = out[..., :, None, :, None] * m[..., None, :, None, :]
        out = prod.reshape(*prod.shape[:-4], a * b, a * b)
    return out


def kron_diagonal(mats: Sequence[Tensor]) -> Tensor:
    """Diagonal ``(*batch, N)`` of ``mats[0] kron ... kron mats[-1]``."""
    return eig_grid([m.diagonal(dim1=-2, dim2=-1) for m in mats])


def eig_grid(vals: Sequence[Tensor]) -> Tensor:
    """All products ``v_1[i_1] * ... * v_d[i_d]`` flattened to ``(*batch, N)`` (kron order)."""
    out = vals[0]
    for v in vals[1:]:
        prod = out[..., :, None] * v[..., None, :]
        out = prod.reshape(*prod.shape[:-2], -1)
    return out


def product_range(vals: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
    """Smallest and largest product ``prod_k v_k[i_k]`` over the grid, in ``O(sum n_k)``.

    The extremes of a product of two finite sets are attained at the sets' extremes, so
    interval multiplication is exact here.
    """
    lo, hi = vals[0].amin(-1), vals[0].amax(-1)
    for v in vals[1:]:
        m, mx = v.amin(-1), v.amax(-1)
        cands = torch.stack(torch.broadcast_tensors(lo * m, lo * mx, hi * m, hi * mx))
        lo, hi = cands.amin(0), cands.amax(0)
    return lo, hi
