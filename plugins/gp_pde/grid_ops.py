"""Small tensor-grid helpers: mode products and per-point evaluation of Kronecker-structured fields."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["mode_product", "multi_mode_product", "multi_mode_whiten", "whiten_rows",
           "eval_tensor_field"]


def mode_product(mat: Tensor, grid: Tensor, axis: int) -> Tensor:
    """Apply ``mat`` ``(m, n)`` along ``axis`` (of size ``n``) of ``grid``; that axis becomes size ``m``."""
    out = torch.tensordot(mat, grid, dims=([1], [axis]))
    return torch.movedim(out, 0, axis)


def multi_mode_product(mats: Sequence[Tensor | None], grid: Tensor) -> Tensor:
    """``(mats[0] kron ... kron mats[d-1]) vec(grid)`` as a grid tensor (``None``: identity)."""
    out = grid
    for j, m in enumerate(mats):
        if m is not None:
            out = mode_product(m, out, j)
    return out


def multi_mode_whiten(chols: Sequence[Tensor], grid: Tensor) -> Tensor:
    """``(L_1 kron ... kron L_d)^{-1} vec(grid)`` for lower Cholesky factors ``chols[j]``: one triangular solve per mode."""
    out = grid
    for j, c in enumerate(chols):
        moved = torch.movedim(out, j, 0)
        shape = moved.shape
        sol = torch.linalg.solve_triangular(c, moved.reshape(shape[0], -1), upper=False)
        out = torch.movedim(sol.reshape(shape), 0, j)
    return out


def whiten_rows(rows: Tensor, chol: Tensor) -> Tensor:
    """``rows L^{-T}`` for kernel rows ``(m, n)`` and the lower Cholesky factor ``L`` ``(n, n)`` of ``K = L L^T``.

    With ``W = L^{-1} U`` (per mode), ``k(x, X) K^{-1} U = (k(x, X) L^{-T}) W``.
    """
    return torch.linalg.solve_triangular(chol.mT, rows, upper=True, left=False)


def eval_tensor_field(rows: Sequence[Tensor], coef: Tensor, chunk: int = 4096) -> Tensor:
    """``sum_{i_1..i_d} coef[i_1..i_d] prod_j rows[j][p, i_j]`` for each point ``p``.

    Args:
        rows: per-dimension feature rows ``(n_points, n_j)``.
        coef: grid tensor ``(n_1, ..., n_d)``.
        chunk: points per block (bounds memory to ``chunk * n_2 * ... * n_d``).

    Returns:
        ``(n_points,)``.
    """
    n = rows[0].shape[0]
    outs = []
    for s in range(0, n, chunk):
        blk = [r[s:s + chunk] for r in rows]
        t = blk[0] @ coef.reshape(coef.shape[0], -1)  # (b, n_2 * ... * n_d)
        for j in range(1, len(blk)):
            t = t.reshape(t.shape[0], blk[j].shape[1], -1)
            t = torch.einsum("bi,bik->bk", blk[j], t)
        outs.append(t.reshape(-1))
    return torch.cat(outs) if outs else rows[0].new_zeros(0)
