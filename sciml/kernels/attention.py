"""Tensor (Kronecker) attention: softmax attention over pairs of keys (Alman and Song, "How to Capture
Higher-order Correlations?").

For queries ``q`` ``(..., n, d)``, keys ``k1`` ``(..., m1, d)``, ``k2`` ``(..., m2, d)`` and values ``v1``
``(..., m1, e)``, ``v2`` ``(..., m2, e)``::

    out_i = sum_{j,k} softmax_{(j,k)}(scale * <q_i, k1_j * k2_k>) * (v1_j * v2_k)

(``*`` elementwise), i.e. ``D^-1 exp(scale Q (K1 ⊘ K2)^T) (V1 ⊘ V2)`` with ``⊘`` the
:func:`khatri_rao` product; ``scale = None`` is ``1 / d``. Methods:

* ``"exact"``: blocked over ``(query, j)`` with a running maximum and sum (online softmax): at most
  ``block_elements`` logits in memory, never the ``n x m1 m2`` matrix; the backward pass recomputes the
  blocks (a custom autograd function). On CUDA tensors a fused CuPy kernel runs the forward pass.
* ``"poly"``: ``exp`` replaced by its Taylor polynomial of degree ``g`` and the sums reordered by the
  mixed-product identity, ``O((n + m1 + m2) r e)`` for ``r = C(d + g, g)`` monomials. With ``B`` a
  bound on ``|scale <q_i, k1_j * k2_k>|`` (:func:`entry_bound`), every output entry is within
  ``2 eps / (1 - eps) * max |v1_j * v2_k|`` of the exact one, ``eps = e^B B^(g+1) / (g+1)!``
  (:func:`poly_error_bound`); ``degree = None`` picks the smallest ``g`` meeting ``tol``. The bound
  only stays useful for small ``B``: for entries of order ``(log n)^(1/3)`` and above the degree (and
  ``r``) explodes, as the paper's hardness result says it must.
* ``"auto"``: ``poly`` when it is available (no mask, a degree of at most ``MAX_DEGREE`` meets ``tol``)
  and its operation count is below a quarter of the exact one, else ``exact``.
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import Any

import torch
from torch import Tensor

from ..validation import (
    check_choice,
    check_nonnegative,
    check_nonnegative_int,
    check_positive,
    check_positive_int,
    check_real,
    check_tensor,
)

__all__ = ["tensor_attention", "khatri_rao", "khatri_rao_gram", "entry_bound", "poly_error_bound", "poly_degree",
           "naive_tensor_attention", "num_monomials", "MAX_DEGREE"]

MAX_DEGREE = 24
_METHODS = ("exact", "poly", "auto")
_BLOCK = 2**17  # logits per block: ~1 MB in float64, cache-sized
_MAX_MONOMIALS = 2**24  # columns of the polynomial method's moment tables (~1 GB per batch row and value column)
_POLY_BLOCK = 2**21  # monomial features per chunk of rows: ~16 MB in float64 (larger chunks leave the cache)


def khatri_rao(a: Tensor, b: Tensor) -> Tensor:
    """Row ``(j, k)`` (index ``j * m2 + k``) is ``a_j * b_k``: ``(..., m1, d), (..., m2, d) -> (..., m1 m2, d)``."""
    _check_pair(a, b)
    out = a.unsqueeze(-2) * b.unsqueeze(-3)
    return out.reshape(*out.shape[:-3], a.shape[-2] * b.shape[-2], a.shape[-1])


def khatri_rao_gram(a: Tensor, b: Tensor, c: Tensor, e: Tensor) -> Tensor:
    """``khatri_rao(a, b)^T khatri_rao(c, e) = (a^T c) * (b^T e)`` without forming either product.

    ``a`` ``(..., m1, p)``, ``c`` ``(..., m1, s)``, ``b`` ``(..., m2, p)``, ``e`` ``(..., m2, s)`` -> ``(..., p, s)``.
    """
    _check_pair(a, b)
    _check_pair(c, e, "c", "e")
    if a.shape[-2] != c.shape[-2] or b.shape[-2] != e.shape[-2]:
        raise ValueError(f"shapes {tuple(a.shape)}, {tuple(b.shape)}, {tuple(c.shape)}, {tuple(e.shape)} do not "
                         "pair: a, c must share rows and b, e must share rows")
    if a.dtype != c.dtype or a.device != c.device:
        raise TypeError(f"a and c must share dtype and device, got {a.dtype} on {a.device} and {c.dtype} on {c.device}")
    try:
        torch.broadcast_shapes(*(x.shape[:-2] for x in (a, b, c, e)))
    except RuntimeError as exc:
        raise ValueError("the leading (batch) dimensions of a, b, c, e do not broadcast: "
                         f"{[tuple(x.shape[:-2]) for x in (a, b, c, e)]}") from exc
    return (a.mT @ c) * (b.mT @ e)


def _shape(x: Any) -> Any:
    return tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__


def _check_pair(a: Tensor, b: Tensor, an: str = "a", bn: str = "b") -> None:
    for name, x in ((an, a), (bn, b)):
        if not isinstance(x, Tensor) or x.ndim < 2:
            raise ValueError(f"{name} must be a tensor of shape (..., rows, columns), got {_shape(x)}")
        if not (x.is_floating_point() or x.is_complex()):
            raise TypeError(f"{name} must be a floating or complex tensor, got {x.dtype}")
    if a.dtype != b.dtype or a.device != b.device:
        raise TypeError(f"{an} and {bn} must share dtype and device, got {a.dtype} on {a.device} and {b.dtype} on {b.device}")
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(f"{an} and {bn} must have the same number of columns, got {tuple(a.shape)} and {tuple(b.shape)}")
    try:
        torch.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except RuntimeError as exc:
        raise ValueError(f"the leading (batch) dimensions of {an} {tuple(a.shape)} and {bn} {tuple(b.shape)} "
                         "do not broadcast") from exc


# ---------------------------------------------------------------- the reference

def naive_tensor_attention(q: Tensor, k1: Tensor, k2: Tensor, v1: Tensor, v2: Tensor, *, scale: float | None = None,
                           mask: Tensor | None = None) -> Tensor:
    """The formula, materialised (``n m1 m2`` logits): the reference for tests and benchmarks."""
    s = 1.0 / q.shape[-1] if scale is None else scale
    logits = s * torch.einsum("...it,...jt,...kt->...ijk", q, k1, k2)
    if mask is not None:
        logits = logits.masked_fill(~mask, -math.inf)
    p = torch.softmax(logits.flatten(-2), -1).reshape(logits.shape)
    return torch.einsum("...ijk,...jc,...kc->...ic", p, v1, v2)


# ---------------------------------------------------------------- checks

def _broadcast_inputs(q: Tensor, k1: Tensor, k2: Tensor, v1: Tensor, v2: Tensor,
                      mask: Tensor | None) -> tuple[torch.Size, list[Tensor], Tensor | None]:
    names = ("q", "k1", "k2", "v1", "v2")
    xs = (q, k1, k2, v1, v2)
    for name, x in zip(names, xs):
        if not isinstance(x, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if x.ndim < 2:
            raise ValueError(f"{name} must have shape (..., rows, features), got {tuple(x.shape)}")
        if x.dtype not in (torch.float32, torch.float64):
            raise TypeError(f"{name} must be float32 or float64, got {x.dtype}")
    if len({x.dtype for x in xs}) > 1 or len({x.device for x in xs}) > 1:
        raise TypeError(f"q, k1, k2, v1, v2 must share dtype and device, got {[str(x.dtype) for x in xs]}, "
                        f"{[str(x.device) for x in xs]}")
    n, d = q.shape[-2:]
    (m1, d1), (m2, d2), (m1v, e), (m2v, e2) = k1.shape[-2:], k2.shape[-2:], v1.shape[-2:], v2.shape[-2:]
    if d1 != d or d2 != d or m1v != m1 or m2v != m2 or e2 != e:
        raise ValueError(f"shapes do not match: q (..., n, d) {tuple(q.shape)}, k1 (..., m1, d) {tuple(k1.shape)}, "
                         f"k2 (..., m2, d) {tuple(k2.shape)}, v1 (..., m1, e) {tuple(v1.shape)}, "
                         f"v2 (..., m2, e) {tuple(v2.shape)}")
    if min(n, d, m1, m2, e) == 0:
        raise ValueError(f"empty input: n = {n}, d = {d}, m1 = {m1}, m2 = {m2}, e = {e} must all be >= 1")
    for name, x in zip(names, xs):
        check_tensor(name, x)
    try:
        lead = torch.Size(torch.broadcast_shapes(*(x.shape[:-2] for x in xs)))
    except RuntimeError as exc:
        raise ValueError(f"the leading (batch) dimensions do not broadcast: {[tuple(x.shape[:-2]) for x in xs]}") from exc
    if mask is not None:
        if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
            raise TypeError(f"mask must be a bool tensor (True: attend), got {_shape(mask)}")
        try:
            full = torch.broadcast_shapes(mask.shape, (*lead, n, m1, m2))
        except RuntimeError as exc:
            raise ValueError(f"mask of shape {tuple(mask.shape)} does not broadcast to (..., n, m1, m2) = "
                             f"{(*lead, n, m1, m2)}") from exc
        lead = torch.Size(full[:-3])
        mask = mask.to(q.device).expand(full).reshape(-1, n, m1, m2)
    flat = [x.expand(*lead, *x.shape[-2:]).reshape(-1, *x.shape[-2:]) for x in xs]
    return lead, flat, mask


def _scale(scale: float | None, d: int) -> float:
    if scale is None:
        return 1.0 / d
    value = check_real("scale", scale)
    if value == 0:
        raise ValueError("scale must be non-zero (or None for 1 / d)")
    return value


# ---------------------------------------------------------------- exact, blocked

def _blocks(b: int, n: int, m1: int, m2: int, budget: int) -> tuple[int, int, int]:
    """Batch, query and ``j`` block sizes with ``bb * bq * bj * m2 <= budget`` (or one of each when ``m2`` alone exceeds it)."""
    bb = max(1, min(b, budget // m2))
    bq = max(1, min(n, budget // (bb * m2)))
    bj = max(1, min(m1, budget // (bb * bq * m2)))
    return bb, bq, bj


def _mm(x: Tensor, y: Tensor) -> Tensor:
    """``(b, bq, bj, r) @ (b, r, s) -> (b, bq, bj, s)``."""
    return (x.flatten(1, 2) @ y).reshape(*x.shape[:3], y.shape[-1])


def _logits(qc: Tensor, k1c: Tensor, k2: Tensor, maskc: Tensor | None) -> tuple[Tensor, Tensor]:
    """``(A, L)`` for scaled queries ``qc``: ``A = qc_i * k1_j`` ``(b, bq, bj, d)``, logits ``A k2^T`` ``(b, bq, bj, m2)``."""
    a = qc.unsqueeze(2) * k1c.unsqueeze(1)
    logits = _mm(a, k2.mT)
    if maskc is not None:
        logits = logits.masked_fill_(~maskc, -math.inf)
    return a, logits


def _mask_block(mask: Tensor | None, qs: slice, js: slice) -> Tensor | None:
    return None if mask is None else mask[:, qs, js]


def _with_ones(v: Tensor) -> Tensor:
    return torch.cat([v, torch.ones_like(v[..., :1])], -1)


def _exact_forward(q: Tensor, k1: Tensor, k2: Tensor, v1: Tensor, v2: Tensor, scale: float, mask: Tensor | None,
                   budget: int) -> tuple[Tensor, Tensor]:
    """``(out (b, n, e), logsumexp of each row's logits (b, n))`` by the online softmax."""
    bb, bq, bj = _blocks(q.shape[0], q.shape[1], k1.shape[1], k2.shape[1], budget)
    parts = [_forward_chunk(*(x[r:r + bb] for x in (q, k1, k2, v1, v2)),
                            scale, None if mask is None else mask[r:r + bb], bq, bj, r)
             for r in range(0, q.shape[0], bb)]
    return torch.cat([o for o, _ in parts]), torch.cat([lse for _, lse in parts])


def _forward_chunk(q: Tensor, k1: Tensor, k2: Tensor, v1: Tensor, v2: Tensor, scale: float, mask: Tensor | None,
                   bq: int, bj: int, row0: int) -> tuple[Tensor, Tensor]:
    n, m1 = q.shape[1], k1.shape[1]
    qs_all, w1, w2 = scale * q, _with_ones(v1), _with_ones(v2)  # the last column sums the weights
    outs, lses = [], []
    for q0 in range(0, n, bq):
        qs = slice(q0, min(n, q0 + bq))
        qc = qs_all[:, qs]
        run_max = torch.full(qc.shape[:2], -math.inf, dtype=q.dtype, device=q.device)
        run = torch.zeros(*qc.shape[:2], w1.shape[-1], dtype=q.dtype, device=q.device)
        for j0 in range(0, m1, bj):
            js = slice(j0, min(m1, j0 + bj))
            _, logits = _logits(qc, k1[:, js], k2, _mask_block(mask, qs, js))
            new_max = torch.maximum(run_max, logits.amax((2, 3)))
            safe = torch.where(torch.isfinite(new_max), new_max, torch.zeros_like(new_max))
            p = logits.sub_(safe[..., None, None]).exp_()
            run = run * torch.exp(run_max - safe)[..., None] + (_mm(p, w2) * w1[:, None, js]).sum(2)
            run_max = new_max
        total = run[..., -1]
        _check_rows(run_max, total, mask is not None, row0, q0)
        outs.append(run[..., :-1] / total[..., None])
        lses.append(run_max + torch.log(total))
    return torch.cat(outs, 1), torch.cat(lses, 1)


def _check_rows(run_max: Tensor, total: Tensor, masked: bool, row0: int, q0: int) -> None:
    """Each query's running maximum and weight sum are finite and the sum positive, else: every pair
    masked (a mask that leaves the query nothing), or logits that overflow the dtype (inf, or inf - inf)."""
    broken = ~torch.isfinite(run_max) | ~torch.isfinite(total) | (total == 0)
    if not bool(broken.any()):
        return
    b, i = (int(t) for t in broken.nonzero()[0])
    where = f"batch row {row0 + b}, query {q0 + i}"
    if masked and bool(run_max[b, i] == -math.inf):
        raise ValueError(f"tensor_attention: the mask leaves a query with no (j, k) pair to attend to ({where})")
    raise ValueError(f"tensor_attention: the logits scale * <q_i, k1_j * k2_k> overflow {run_max.dtype} "
                     f"(max {torch.finfo(run_max.dtype).max:.1e}; {where}): use float64 or a smaller scale")


def _exact_backward(q: Tensor, k1: Tensor, k2: Tensor, v1: Tensor, v2: Tensor, scale: float, mask: Tensor | None,
                    budget: int, out: Tensor, lse: Tensor, grad: Tensor) -> tuple[Tensor, ...]:
    """Gradients to ``q, k1, k2, v1, v2``, recomputing each block's probabilities from ``lse``."""
    bb, bq, bj = _blocks(q.shape[0], q.shape[1], k1.shape[1], k2.shape[1], budget)
    parts = [_backward_chunk(*(x[r:r + bb] for x in (q, k1, k2, v1, v2, out, lse, grad)), scale,
                             None if mask is None else mask[r:r + bb], bq, bj)
             for r in range(0, q.shape[0], bb)]
    return tuple(torch.cat(g) for g in zip(*parts))


def _backward_chunk(q: Tensor, k1: Tensor, k2: Tensor, v1: Tensor, v2: Tensor, out: Tensor, lse: Tensor,
                    grad: Tensor, scale: float, mask: Tensor | None, bq: int, bj: int) -> tuple[Tensor, ...]:
    n, m1 = q.shape[1], k1.shape[1]
    qs_all = scale * q
    dq, dk1, dk2 = torch.zeros_like(q), torch.zeros_like(k1), torch.zeros_like(k2)
    dv1, dv2 = torch.zeros_like(v1), torch.zeros_like(v2)
    delta = (grad * out).sum(-1)  # sum_jk P dP per query
    for q0 in range(0, n, bq):
        qs = slice(q0, min(n, q0 + bq))
        qc, gc = qs_all[:, qs], grad[:, qs]
        for j0 in range(0, m1, bj):
            js = slice(j0, min(m1, j0 + bj))
            a, logits = _logits(qc, k1[:, js], k2, _mask_block(mask, qs, js))
            p = logits.sub_(lse[:, qs, None, None]).exp_()
            g_v1 = gc.unsqueeze(2) * v1[:, None, js]                     # dO_i * v1_j (b, bq, bj, e)
            dlogits = p * (_mm(g_v1, v2.mT) - delta[:, qs, None, None])  # (b, bq, bj, m2)
            g = _mm(dlogits, k2)                                         # sum_k dL_ijk k2_k
            dq[:, qs] += scale * (g * k1[:, None, js]).sum(2)
            dk1[:, js] += (g * qc.unsqueeze(2)).sum(1)
            dk2 += dlogits.flatten(1, 2).mT @ a.flatten(1, 2)
            dv1[:, js] += (_mm(p, v2) * gc.unsqueeze(2)).sum(1)
            dv2 += p.flatten(1, 2).mT @ g_v1.flatten(1, 2)
    return dq, dk1, dk2, dv1, dv2


class _ExactTensorAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, q: Tensor, k1: Tensor, k2: Tensor, v1: Tensor, v2: Tensor, scale: float,
                mask: Tensor | None, budget: int) -> Tensor:
        from ._attention_cupy import exact_forward_cupy

        fused = exact_forward_cupy(q, k1, k2, v1, v2, scale) if q.is_cuda and mask is None else None
        out, lse = fused if fused is not None else _exact_forward(q, k1, k2, v1, v2, scale, mask, budget)
        ctx.save_for_backward(q, k1, k2, v1, v2, out, lse)
        ctx.scale, ctx.mask, ctx.budget = scale, mask, budget
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        q, k1, k2, v1, v2, out, lse = ctx.saved_tensors
        grads = _exact_backward(q, k1, k2, v1, v2, ctx.scale, ctx.mask, ctx.budget, out, lse, grad.contiguous())
        return (*(g if need else None for g, need in zip(grads, ctx.needs_input_grad[:5])), None, None, None)


# ---------------------------------------------------------------- polynomial

def entry_bound(q: Tensor, k1: Tensor, k2: Tensor, scale: float | None = None) -> float:
    """``B >= |scale <q_i, k1_j * k2_k>|`` for every ``i, j, k`` (batch included), ``O((n + m1 + m2) d)``:
    the least of ``sum_t max_i |q_it| max_j |k1_jt| max_k |k2_kt|`` and the Cauchy-Schwarz bounds
    ``max |q_i|_2 max |k1_j|_2 max |k2_k|_inf`` (and with ``k1``, ``k2`` swapped), times ``|scale|``."""
    for name, x in (("q", q), ("k1", k1), ("k2", k2)):
        check_tensor(name, x)
        if x.ndim < 2 or 0 in x.shape[-2:]:
            raise ValueError(f"{name} must have shape (..., rows >= 1, d >= 1), got {tuple(x.shape)}")
    if not q.shape[-1] == k1.shape[-1] == k2.shape[-1]:
        raise ValueError(f"q, k1, k2 must share their last dimension d, got {tuple(q.shape)}, {tuple(k1.shape)}, "
                         f"{tuple(k2.shape)}")
    s = _scale(scale, q.shape[-1])
    rows = [x.detach().reshape(-1, x.shape[-1]) for x in (q, k1, k2)]
    per = [x.abs().amax(0) for x in rows]
    norm = [float(torch.linalg.vector_norm(x, dim=-1).max()) for x in rows]
    top = [float(p.max()) for p in per]
    return abs(s) * min(float((per[0] * per[1] * per[2]).sum()), norm[0] * norm[1] * top[2], norm[0] * norm[2] * top[1])


def poly_error_bound(bound: float, degree: int) -> float:
    # Taylor: T_g(x) = e^x (1 + delta), |delta| = e^(xi - x) |x|^(g+1) / (g+1)! <= e^B B^(g+1) / (g+1)! = eps
    # (xi between 0 and x). Weights off by factors in [1 - eps, 1 + eps] move the normalised weights
    # by at most 2 eps / (1 - eps) in total, so each output entry moves by that times max |v1_j * v2_k|.
    """The guaranteed error of ``method="poly"`` at entry bound ``bound`` and ``degree``, relative to
    ``max |v1_j * v2_k|``: ``2 eps / (1 - eps)`` with ``eps = e^B B^(g+1) / (g+1)!`` (``inf`` if ``eps >= 1``)."""
    bound = check_nonnegative("bound", bound)
    degree = check_nonnegative_int("degree", degree)
    if bound == 0:
        return 0.0
    log_eps = bound + (degree + 1) * math.log(bound) - math.lgamma(degree + 2)
    eps = math.exp(min(log_eps, 50.0))
    return math.inf if eps >= 1 else 2 * eps / (1 - eps)


def poly_degree(bound: float, tol: float) -> int | None:
    """The smallest degree whose :func:`poly_error_bound` is ``<= tol`` (``None`` above ``MAX_DEGREE``)."""
    tol = check_positive("tol", tol)
    return next((g for g in range(MAX_DEGREE + 1) if poly_error_bound(bound, g) <= tol), None)


@functools.lru_cache(maxsize=32)
def _monomial_tables(d: int, degree: int) -> tuple[list[list[int]], list[Tensor]]:
    """Monomials of ``d`` variables by degree, ordered by their smallest variable: degree ``p``'s
    monomials with smallest variable ``i`` are ``x_i`` times the degree ``p - 1`` monomials of the
    variables ``i .. d - 1``, which form a suffix of that degree (so each block is one slice). Returns
    per degree ``p = 1 .. degree`` the ``d`` suffix starts, and ``1 / alpha!`` per degree (degree 0 first)."""
    starts: list[list[int]] = []
    inv_fact = [torch.ones(1, dtype=torch.float64)]
    lead = torch.full((1,), d, dtype=torch.long)  # smallest variable of each monomial (d: none)
    lead_count = torch.zeros(1, dtype=torch.long)  # its power
    for _ in range(degree):
        st = torch.searchsorted(lead, torch.arange(d)).tolist()  # lead is non-decreasing
        counts = [1 + torch.where(lead[s:] == i, lead_count[s:], 0) for i, s in enumerate(st)]
        inv_fact.append(torch.cat([inv_fact[-1][s:] / c for s, c in zip(st, counts)]))
        lead = torch.cat([torch.full_like(c, i) for i, c in enumerate(counts)])
        lead_count = torch.cat(counts)
        starts.append(st)
    return starts, inv_fact


def num_monomials(d: int, degree: int) -> int:
    """``C(d + degree, degree)``: monomials of degree at most ``degree`` in ``d`` variables."""
    d, degree = check_nonnegative_int("d", d), check_nonnegative_int("degree", degree)
    return math.comb(d + degree, degree)


def _features(xt: Tensor, starts: list[list[int]]) -> Tensor:
    """Every monomial of degree ``0 .. g`` of the columns of ``xt`` ``(b, d, rows)`` -> ``(b, r, rows)``
    (in the order of :func:`_monomial_tables`: contiguous slices, no gathers). Without autograd the
    slices are written into one buffer: per-slice temporaries fragment the heap (~0.9 GB of RSS at
    ``n = 4096, d = 32``)."""
    if torch.is_grad_enabled() and xt.requires_grad:
        prev = torch.ones(xt.shape[0], 1, xt.shape[-1], dtype=xt.dtype, device=xt.device)
        feats = [prev]
        for st in starts:
            prev = torch.cat([xt[:, i:i + 1] * prev[:, s:] for i, s in enumerate(st)], 1)
            feats.append(prev)
        return torch.cat(feats, 1)
    sizes = [1]
    for st in starts:
        sizes.append(sum(sizes[-1] - s for s in st))
    out = xt.new_empty(xt.shape[0], sum(sizes), xt.shape[-1])
    out[:, 0] = 1.0
    lo = pos = 0
    for st, size in zip(starts, sizes):
        hi, pos = lo + size, lo + size
        for i, s in enumerate(st):
            torch.mul(xt[:, i:i + 1], out[:, lo + s:hi], out=out[:, pos:pos + size - s])
            pos += size - s
        lo = hi
    return out


def _poly(q: Tensor, k1: Tensor, k2: Tensor, v1: Tensor, v2: Tensor, scale: float, degree: int) -> Tensor:
    """Polynomial attention on flattened inputs ``(b, ., .)`` -> ``(b, n, e)`` (autograd through torch).

    ``sum_{j,k} <q_i, k1_j * k2_k>^p (w1_j * w2_k) = sum_{|alpha| = p} p! / alpha! q_i^alpha
    (sum_j k1_j^alpha w1_j) * (sum_k k2_k^alpha w2_k)``, with ``w = (v, 1)`` so the last column is the
    normaliser; rows are taken in chunks of about :data:`_POLY_BLOCK` feature entries.
    """
    starts, inv_fact = _monomial_tables(q.shape[-1], degree)
    coef = torch.cat([f * scale**p for p, f in enumerate(inv_fact)]).to(dtype=q.dtype, device=q.device)
    rows = max(1, _POLY_BLOCK // max(1, q.shape[0] * coef.shape[0]))

    def moments(k: Tensor, v: Tensor) -> Tensor:  # sum_j k_j^alpha (v_j, 1): (b, r, e + 1)
        chunks = zip(k.split(rows, 1), _with_ones(v).split(rows, 1))
        kc, wc = next(chunks)
        total = _features(kc.mT, starts) @ wc
        for kc, wc in chunks:  # in place: a new (r, e + 1) table per chunk fragments the heap (~0.9 GB RSS)
            total.add_(_features(kc.mT, starts) @ wc)
        return total

    m = moments(k1, v1) * moments(k2, v2) * coef[:, None]
    acc = torch.cat([_features(qc.mT, starts).mT @ m for qc in q.split(rows, 1)], 1)
    return acc[..., :-1] / acc[..., -1:]


# ---------------------------------------------------------------- the entry point

def tensor_attention(q: Tensor, k1: Tensor, k2: Tensor, v1: Tensor, v2: Tensor, *, scale: float | None = None,
                     method: str = "exact", degree: int | None = None, tol: float = 1e-6, mask: Tensor | None = None,
                     block_elements: int = _BLOCK) -> Tensor:
    """Tensor attention ``(..., n, e)`` of ``q (..., n, d)``, ``k1 (..., m1, d)``, ``k2 (..., m2, d)``,
    ``v1 (..., m1, e)``, ``v2 (..., m2, e)`` (leading dimensions broadcast; float32 / float64; autograd).

    ``scale``: the logits' factor (``None``: ``1 / d``). ``method``: ``"exact"`` | ``"poly"`` |
    ``"auto"`` (see the module). ``degree``: the polynomial's degree (``None``: the smallest meeting
    ``tol``, the guaranteed error relative to ``max |v1_j * v2_k|``). ``mask``: bool, broadcastable to
    ``(..., n, m1, m2)``, ``True`` where a pair may be attended (exact only; a query left with no pair
    is an error). ``block_elements``: the most logits held at once by the exact method.

    Raises ``ValueError`` for logits that overflow the dtype (exact), a degree above ``MAX_DEGREE`` or
    with more than ``2**24`` monomials (poly); warns when a given degree guarantees nothing (its Taylor
    error bound is infinite at the inputs' entry bound).
    """
    method = check_choice("method", method, _METHODS)
    block_elements = check_positive_int("block_elements", block_elements)
    degree = None if degree is None else check_nonnegative_int("degree", degree)
    if degree is not None and degree > MAX_DEGREE:
        raise ValueError(f"degree must be <= MAX_DEGREE = {MAX_DEGREE}, got {degree}")
    tol = check_positive("tol", tol)
    if method == "poly" and mask is not None:
        raise ValueError("method='poly' does not take a mask (the reordered sums see no (j, k) pair); use 'exact'")
    lead, (qf, k1f, k2f, v1f, v2f), maskf = _broadcast_inputs(q, k1, k2, v1, v2, mask)
    s = _scale(scale, q.shape[-1])
    n, e = q.shape[-2], v1.shape[-1]
    g = None if method == "exact" or mask is not None else _poly_plan(qf, k1f, k2f, v1f, s, degree, tol, method)
    if g is not None:
        return _poly(qf, k1f, k2f, v1f, v2f, s, g).reshape(*lead, n, e)
    out = _ExactTensorAttention.apply(qf, k1f, k2f, v1f, v2f, s, maskf, block_elements)
    return out.reshape(*lead, n, e)


def _poly_plan(q: Tensor, k1: Tensor, k2: Tensor, v1: Tensor, scale: float, degree: int | None, tol: float,
               method: str) -> int | None:
    """The degree ``poly`` runs at, or ``None`` for ``exact`` (``auto``: only a degree certified to ``tol``
    whose operation count is below a quarter of the exact one's)."""
    bound = entry_bound(q, k1, k2, scale)
    g = degree if degree is not None else poly_degree(bound, tol)
    if method == "poly":
        if g is None:
            raise ValueError(f"method='poly': no degree <= {MAX_DEGREE} meets tol = {tol} at entry bound "
                             f"{bound:.3g} (the bound grows like e^B B^(g+1) / (g+1)!); use 'exact', a larger "
                             "tol, or give degree")
        r = num_monomials(q.shape[-1], g)
        if r > _MAX_MONOMIALS:
            raise ValueError(f"method='poly': degree {g} in d = {q.shape[-1]} variables has {r:.3g} monomials (at most "
                             f"{_MAX_MONOMIALS} are allowed: each is a column of the moment tables); use 'exact' "
                             "or a lower degree")
        if math.isinf(poly_error_bound(bound, g)):
            warnings.warn(f"tensor_attention: degree {g} guarantees nothing at entry bound {bound:.3g} (its Taylor "
                          "error e^B B^(g+1) / (g+1)! is >= 1): the result may be far from the exact one; use "
                          "method='exact', or degree=None to have it chosen from tol", RuntimeWarning, stacklevel=3)
        return g
    if g is None or poly_error_bound(bound, g) > tol:
        return None
    (n, d), m1, m2, e = q.shape[-2:], k1.shape[-2], k2.shape[-2], v1.shape[-1]
    cost_poly = (n + m1 + m2) * num_monomials(d, g) * (e + 1 + g)
    return g if 4 * cost_poly < n * m1 * m2 * (2 * d + e) else None
