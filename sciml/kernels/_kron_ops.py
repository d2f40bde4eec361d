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
    "outer_product",
    "outer_sum",
    "mode_product",
    "multi_mode_product",
    "multi_mode_solve_triangular",
    "rowwise_kron_apply",
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
    sizes = _checked_sizes(mats, x, sizes)
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


def _checked_sizes(mats: Sequence[Tensor | None], x: Tensor, sizes: Sequence[int] | None) -> list[int]:
    """The factor sizes, ``ValueError`` / ``TypeError`` unless the factors are square, of ``x``'s dtype,
    and multiply to ``x``'s ``N`` (a mismatch would be read as another grid, silently)."""
    if not isinstance(x, Tensor) or x.ndim < 2:
        raise ValueError(f"x must be a tensor of shape (..., N, c), got {tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}")
    if sizes is None and any(m is None for m in mats):
        raise ValueError("sizes is required when a factor is None (an identity of unknown size)")
    for k, m in enumerate(mats):
        if m is None:
            continue
        if not isinstance(m, Tensor) or m.ndim < 2 or m.shape[-1] != m.shape[-2]:
            raise ValueError(f"mats[{k}] must be a square matrix (*b, n, n), got "
                             f"{tuple(m.shape) if isinstance(m, Tensor) else type(m).__name__}")
        if m.dtype != x.dtype:
            raise TypeError(f"mats[{k}] is {m.dtype} but x is {x.dtype}")
    out = [m.shape[-1] for m in mats] if sizes is None else [int(n) for n in sizes]  # type: ignore[union-attr]
    if len(out) != len(mats) or any(m is not None and m.shape[-1] != n for m, n in zip(mats, out)):
        raise ValueError(f"sizes {out} do not match the factors {[None if m is None else tuple(m.shape) for m in mats]}")
    total = 1
    for n in out:
        total *= n
    if total != x.shape[-2]:
        raise ValueError(f"the factors' sizes {out} multiply to N = {total}, but x has {x.shape[-2]} rows")
    return out


def kron_dense(mats: Sequence[Tensor]) -> Tensor:
    """Dense ``mats[0] kron ... kron mats[-1]`` of ``(*b, m_k, n_k)`` factors, ``(*b, prod m_k, prod n_k)`` (batch broadcast)."""
    out = mats[0]
    for m in mats[1:]:
        rows, cols = out.shape[-2] * m.shape[-2], out.shape[-1] * m.shape[-1]
        prod = out[..., :, None, :, None] * m[..., None, :, None, :]
        out = prod.reshape(*prod.shape[:-4], rows, cols)
    return out


def kron_diagonal(mats: Sequence[Tensor]) -> Tensor:
    """Diagonal ``(*batch, N)`` of ``mats[0] kron ... kron mats[-1]``."""
    return outer_product([m.diagonal(dim1=-2, dim2=-1) for m in mats])


def outer_product(vals: Sequence[Tensor]) -> Tensor:
    """All products ``v_1[i_1] * ... * v_d[i_d]`` of ``(*b, n_k)`` vectors, flattened to ``(*b, N)`` in kron order."""
    out = vals[0]
    for v in vals[1:]:
        prod = out[..., :, None] * v[..., None, :]
        out = prod.reshape(*prod.shape[:-2], -1)
    return out


def outer_sum(vals: Sequence[Tensor]) -> Tensor:
    """All sums ``v_1[i_1] + ... + v_d[i_d]`` of ``(*b, n_k)`` vectors, flattened to ``(*b, N)`` in kron order."""
    out = vals[0]
    for v in vals[1:]:
        tot = out[..., :, None] + v[..., None, :]
        out = tot.reshape(*tot.shape[:-2], -1)
    return out


# grid-tensor (mode-product) form: a vector of length N held as a tensor of shape (n_1, ..., n_d)

def mode_product(mat: Tensor, x: Tensor, axis: int) -> Tensor:
    """``mat`` ``(m, n)`` applied along ``axis`` (size ``n``) of the grid tensor ``x``; that axis becomes size ``m``."""
    out = torch.tensordot(mat, x, dims=([1], [axis]))
    return torch.movedim(out, 0, axis)


def multi_mode_product(mats: Sequence[Tensor | None], x: Tensor) -> Tensor:
    """``(A_1 kron ... kron A_d) vec(x)`` on a grid tensor ``x`` ``(n_1, .., n_d)``: ``A_k`` ``(m_k, n_k)`` or ``None`` (identity); returns ``(m_1, .., m_d)``."""
    out = x
    for k, mat in enumerate(mats):
        if mat is not None:
            out = mode_product(mat, out, k)
    return out


def multi_mode_solve_triangular(tris: Sequence[Tensor], x: Tensor, *, upper: bool = False) -> Tensor:
    """``(T_1 kron ... kron T_d)^{-1} vec(x)`` for triangular ``T_k`` ``(n_k, n_k)`` on a grid tensor ``x``: one triangular solve per mode."""
    out = x
    for k, tri in enumerate(tris):
        moved = torch.movedim(out, k, 0)
        shape = moved.shape
        sol = torch.linalg.solve_triangular(tri, moved.reshape(shape[0], -1), upper=upper)
        out = torch.movedim(sol.reshape(shape), 0, k)
    return out


def rowwise_kron_apply(rows: Sequence[Tensor], x: Tensor, chunk: int = 4096) -> Tensor:
    """``(r_1[p] kron ... kron r_d[p]) . vec(x)`` for each row ``p`` of ``rows[k]`` ``(P, n_k)`` and a grid tensor ``x``; returns ``(P,)``.

    (The face-splitting product of the rows applied to ``x``; evaluates a tensor-product expansion with
    coefficients ``x`` at ``P`` points. Blocks of ``chunk`` rows bound memory to ``chunk * n_2 * ... * n_d``.)
    """
    if not isinstance(chunk, int) or isinstance(chunk, bool) or chunk < 1:
        raise ValueError(f"chunk must be an int >= 1, got {chunk!r}")
    if not rows or any(r.ndim != 2 or r.shape[0] != rows[0].shape[0] for r in rows):
        raise ValueError(f"rows must be (P, n_k) matrices with the same P, got {[tuple(r.shape) for r in rows]}")
    n = rows[0].shape[0]
    outs = []
    for s in range(0, n, chunk):
        blk = [r[s:s + chunk] for r in rows]
        t = blk[0] @ x.reshape(x.shape[0], -1)  # (b, n_2 * ... * n_d)
        for k in range(1, len(blk)):
            t = t.reshape(t.shape[0], blk[k].shape[1], -1)
            t = torch.einsum("bi,bik->bk", blk[k], t)
        outs.append(t.reshape(-1))
    return torch.cat(outs) if outs else rows[0].new_zeros(0)


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
