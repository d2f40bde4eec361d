"""Kronecker-product operators ``K = A_1 kron ... kron A_d`` with exact solves and log-determinants.

Mat-vecs cost ``O(N sum_k n_k)`` (``N = prod_k n_k``) and never form ``K``. Solves and
log-determinants of ``K + s^2 I`` use one symmetric eigendecomposition per factor
(``A_k = Q_k diag(l_k) Q_k^T``): the eigenvalues of ``K`` are all products ``prod_k l_k[i_k]`` and
its eigenvectors are ``Q = Q_1 kron ... kron Q_d`` (Saatci 2012, ch. 5).

Gradients of :meth:`Kronecker.solve` and :meth:`Kronecker.logdet` (to the factors, the right-hand
side and the shift) are written in closed form in the eigenbasis from
``d logdet K = tr(K^{-1} dK)`` and ``d(K^{-1} b) = -K^{-1} dK K^{-1} b``. With
``dK = A_1 kron .. dA_k .. kron A_d`` these only involve ``Q_k``, the eigenvalues and the
Kronecker products of eigenvalues, never the eigenvector derivative, so there are no
``1 / (l_i - l_j)`` terms: repeated or clustered eigenvalues (e.g. a factor on a symmetric grid or
an identity factor) are handled exactly as well-separated ones.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from ..validation import check_tensor
from ._kron_cupy import divide_by_grid_cupy
from ._kron_ops import kron_apply, kron_dense, kron_diagonal, outer_product, product_range

__all__ = ["Kronecker"]

_METHODS = ("eigh", "cholesky")
_REFINE_COND = 1e7  # auto-refine the eigen solve above this condition number


def _broadcast(*shapes: Sequence[int]) -> torch.Size:
    """NumPy broadcasting of shapes; ``ValueError`` when they do not broadcast.

    (``torch.broadcast_shapes`` goes through ``torch._refs``, whose first import costs seconds.)
    """
    ndim = max((len(s) for s in shapes), default=0)
    out = [1] * ndim
    for shape in shapes:
        for i, n in enumerate(shape, start=ndim - len(shape)):
            if n != 1:
                if out[i] not in (1, n):
                    raise ValueError(f"shapes {[tuple(s) for s in shapes]} do not broadcast")
                out[i] = n
    return torch.Size(out)


def _sum_to(t: Tensor, shape: torch.Size) -> Tensor:
    """Sum broadcast dimensions of a gradient back to ``shape``."""
    if t.shape == shape:
        return t
    return t.sum_to_size(shape)


def _divide_by_grid(y: Tensor, vals: Sequence[Tensor], shift: float) -> Tensor:
    """``y[..., i, :] / (prod_k vals_k[i_k] + shift)`` for ``y`` of shape ``(..., N, c)``."""
    out = divide_by_grid_cupy(y, vals, shift) if y.is_cuda else None
    if out is None:
        out = y / (outer_product(vals) + shift).unsqueeze(-1)
    return out


class _EigCache:
    """Per-factor eigendecompositions ``(Q_k, l_k)`` of the symmetrised, detached factors."""

    def __init__(self, mats: list[Tensor], qs: list[Tensor], ls: list[Tensor]) -> None:
        self.mats = mats  # the symmetrised factors that were decomposed (for refinement residuals)
        self.qs = qs
        self.ls = ls
        self.qts = [q.mT for q in qs]

    def condition(self, shift: float) -> float:
        """Largest condition number of ``K + shift I`` over the batch (``inf`` if not definite)."""
        lo, hi = product_range(self.ls)
        lo, hi = lo + shift, hi + shift
        if bool((lo <= 0).any()):
            return math.inf
        return float((hi / lo).max())

    def inverse(self, b: Tensor, shift: float, refine: int) -> tuple[Tensor, Tensor]:
        """``(x, Q^T x)`` with ``x = (K + shift I)^{-1} b``, plus ``refine`` refinement steps.

        Each refinement step re-solves for the residual ``b - (K + shift I) x`` with the same
        eigendecomposition (classical iterative refinement): the eigen solve alone leaves a
        residual of order ``cond * eps``, one step brings it to the mat-vec's rounding level.
        """
        xt = _divide_by_grid(kron_apply(self.qts, b), self.ls, shift)
        x = kron_apply(self.qs, xt)
        for _ in range(refine):
            r = b - kron_apply(self.mats, x)
            if shift:
                r = r - shift * x
            dt = _divide_by_grid(kron_apply(self.qts, r), self.ls, shift)
            xt = xt + dt
            x = x + kron_apply(self.qs, dt)
        return x, xt


class _EigSolve(torch.autograd.Function):
    """x = (K + s I)^{-1} b through the factor eigendecompositions, closed-form backward."""

    @staticmethod
    def forward(ctx: Any, b: Tensor, shift: Tensor, eig: _EigCache, refine: int, *factors: Tensor) -> Tensor:
        s = float(shift)
        x, xt = eig.inverse(b, s, refine)  # x = Q (Lambda + s)^{-1} Q^T b, xt = Q^T x
        ctx.eig = eig
        ctx.refine = refine
        ctx.s = s
        ctx.b_shape = b.shape
        ctx.shift_shape = shift.shape
        ctx.factor_shapes = [f.shape for f in factors]
        ctx.save_for_backward(xt)
        return x

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor | None, ...]:
        (xt,) = ctx.saved_tensors
        eig: _EigCache = ctx.eig
        need_b, need_s = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        need_f = ctx.needs_input_grad[4:]
        v, vt = eig.inverse(g, ctx.s, ctx.refine)  # v = (K + sI)^{-1} g, vt = Q^T v
        grad_b = _sum_to(v, ctx.b_shape) if need_b else None
        grad_s = None
        if need_s:
            # dL/ds = -v^T x = -(Q^T v)^T (Q^T x)
            grad_s = (-(vt * xt).sum()).reshape(ctx.shift_shape)
        grads_f: list[Tensor | None] = []
        sizes = [q.shape[-1] for q in eig.qs]
        for k, need in enumerate(need_f):
            if not need:
                grads_f.append(None)
                continue
            # dL/dA_k = -Q_k M_k Q_k^T, M_k[p, q] = sum_{i_-k, cols} vt[.., p, ..] xt[.., q, ..] W_k[i_-k]
            # with W_k = prod_{m != k} l_m on the grid (the other factors in their eigenbasis).
            w = outer_product([eig.ls[m] if m != k else torch.ones_like(eig.ls[k]) for m in range(len(sizes))])
            a = _grid_axis_last(vt * w.unsqueeze(-1), sizes, k)
            bb = _grid_axis_last(xt, sizes, k)
            m_k = a.mT @ bb  # (..., n_k, n_k)
            grad = -(eig.qs[k] @ m_k @ eig.qts[k])
            grad = 0.5 * (grad + grad.mT)  # the forward used (A + A^T) / 2
            grads_f.append(_sum_to(grad, ctx.factor_shapes[k]))
        return (grad_b, grad_s, None, None, *grads_f)


class _EigLogdet(torch.autograd.Function):
    """logdet(K + s I) from the factor eigenvalues, closed-form backward."""

    @staticmethod
    def forward(ctx: Any, shift: Tensor, eig: _EigCache, batch_shape: torch.Size, *factors: Tensor) -> Tensor:
        s = float(shift)
        n_total = math.prod(v.shape[-1] for v in eig.ls)
        if s == 0.0:
            # K is positive definite (checked by the caller), so det K = |det K| = prod_k |det A_k|^(N / n_k):
            # factors with negative eigenvalues (e.g. -I kron -I = I) contribute log |l|
            out = sum((n_total // v.shape[-1]) * torch.log(v.abs()).sum(-1) for v in eig.ls)
        else:
            out = torch.log(outer_product(eig.ls) + s).sum(-1)
        out = torch.as_tensor(out).expand(batch_shape).clone()
        ctx.eig = eig
        ctx.s = s
        ctx.shift_shape = shift.shape
        ctx.factor_shapes = [f.shape for f in factors]
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor | None, ...]:
        eig: _EigCache = ctx.eig
        sizes = [v.shape[-1] for v in eig.ls]
        need_s = ctx.needs_input_grad[0]
        need_f = ctx.needs_input_grad[3:]
        inv = 1.0 / (outer_product(eig.ls) + ctx.s)  # (*batch, N)
        grad_s = (g * inv.sum(-1)).sum().reshape(ctx.shift_shape) if need_s else None
        grads_f: list[Tensor | None] = []
        for k, need in enumerate(need_f):
            if not need:
                grads_f.append(None)
                continue
            # d/dA_k = Q_k diag(w_k) Q_k^T, w_k[p] = sum_{i: i_k = p} prod_{m != k} l_m / (prod_m l_m + s)
            w = outer_product([eig.ls[m] if m != k else torch.ones_like(eig.ls[k]) for m in range(len(sizes))])
            wk = _grid_axis_last((w * inv).unsqueeze(-1), sizes, k).sum(-2)  # (*batch, n_k)
            wk = wk * g.unsqueeze(-1)
            grad = (eig.qs[k] * wk.unsqueeze(-2)) @ eig.qts[k]
            grad = 0.5 * (grad + grad.mT)
            grads_f.append(_sum_to(grad, ctx.factor_shapes[k]))
        return (grad_s, None, None, *grads_f)


def _grid_axis_last(t: Tensor, sizes: Sequence[int], k: int) -> Tensor:
    """``(..., N, c)`` -> ``(..., (N / n_k) * c, n_k)`` with grid axis ``k`` moved last."""
    batch = t.shape[:-2]
    c = t.shape[-1]
    grid = t.reshape(*batch, *sizes, c)
    nb = len(batch)
    moved = grid.movedim(nb + k, -1)
    return moved.reshape(*batch, -1, sizes[k])


class Kronecker:
    """Kronecker product ``K = A_1 kron A_2 kron ... kron A_d`` of square factors (``torch.kron`` order).

    Factor ``k`` has shape ``(*b_k, n_k, n_k)``; the batch shapes broadcast to the operator's
    :attr:`batch_shape` and ``K`` has shape ``(*batch_shape, N, N)`` with ``N = prod_k n_k``.
    Vectors are indexed in row-major grid order (the first factor varies slowest), i.e. a field
    ``u`` on a grid ``(n_1, ..., n_d)`` corresponds to ``u.reshape(-1)``.

    * :meth:`matmul` works for any square factors, with autograd to ``x`` and the factors.
    * :meth:`solve` / :meth:`logdet` act on ``K + shift * I`` (``shift = s^2 >= 0``) and need
      symmetric factors. They use the eigendecompositions of ``(A_k + A_k^T) / 2``, cached on the
      factors' identity and version counter (an in-place update of a factor invalidates the
      cache). Gradients flow to ``b``, ``shift`` and the factors through a closed-form backward
      that has no eigenvalue-gap terms (safe for repeated eigenvalues); first-order only. Above
      condition number ``1e7`` a solve adds one step of iterative refinement (``refine=``).
    * ``solve(..., method="cholesky")`` uses per-factor Cholesky factors (``shift`` must be 0);
      its gradients come from autograd through :func:`torch.linalg.cholesky`.

    On CUDA tensors the same code runs on the GPU; the division by the eigenvalue grid uses a fused
    CuPy kernel when CuPy works (torch fallback, one warning otherwise).

    Args:
        factors: a sequence of ``d >= 1`` square floating tensors (or ``linear_operator``
            operators, densified), all of one dtype and device; or a
            ``linear_operator.operators.KroneckerProductLinearOperator``.

    Raises:
        TypeError: ``factors`` is not a sequence of tensors, or dtypes differ.
        ValueError: a factor is not square, has non-finite entries, batch shapes do not
            broadcast, or factors live on different devices.

    Example:
        >>> A = torch.eye(3, dtype=torch.float64) * 2
        >>> B = torch.eye(4, dtype=torch.float64)
        >>> K = Kronecker([A, B])
        >>> K.solve(torch.ones(12, dtype=torch.float64), shift=1.0)[:2]
        tensor([0.3333, 0.3333], dtype=torch.float64)
    """

    def __init__(self, factors: Sequence[Tensor] | Any) -> None:
        factors = _coerce_factors(factors)
        self._factors: tuple[Tensor, ...] = factors
        self._sizes: tuple[int, ...] = tuple(int(f.shape[-1]) for f in factors)
        self._n = math.prod(self._sizes)
        try:
            self._batch_shape = _broadcast(*(f.shape[:-2] for f in factors))
        except ValueError as exc:
            shapes = [tuple(f.shape) for f in factors]
            raise ValueError(f"factors have batch shapes that do not broadcast: {shapes}") from exc
        self._eig_key: tuple | None = None
        self._eig: _EigCache | None = None
        self._chol_key: tuple | None = None
        self._chol: list[Tensor] | None = None

    # ------------------------------------------------------------------ basic properties
    @property
    def factors(self) -> tuple[Tensor, ...]:
        """The factors ``(A_1, ..., A_d)``, as given."""
        return self._factors

    @property
    def sizes(self) -> tuple[int, ...]:
        """Factor sizes ``(n_1, ..., n_d)`` (the grid shape)."""
        return self._sizes

    @property
    def batch_shape(self) -> torch.Size:
        """Broadcast batch shape of the factors."""
        return self._batch_shape

    @property
    def shape(self) -> torch.Size:
        """``(*batch_shape, N, N)``."""
        return torch.Size((*self._batch_shape, self._n, self._n))

    @property
    def dtype(self) -> torch.dtype:
        """Floating dtype of the factors."""
        return self._factors[0].dtype

    @property
    def device(self) -> torch.device:
        """Device of the factors."""
        return self._factors[0].device

    def __len__(self) -> int:
        return self._n

    def __repr__(self) -> str:
        return (f"Kronecker(sizes={self._sizes}, batch_shape={tuple(self._batch_shape)}, "
                f"dtype={self.dtype}, device={self.device})")

    # ------------------------------------------------------------------ structure
    def transpose(self) -> Kronecker:
        """``K^T = A_1^T kron ... kron A_d^T``."""
        return Kronecker([f.mT for f in self._factors])

    @property
    def T(self) -> Kronecker:  # noqa: N802 (mirrors torch)
        """Alias of :meth:`transpose`."""
        return self.transpose()

    @property
    def mT(self) -> Kronecker:  # noqa: N802
        """Alias of :meth:`transpose` (batch dimensions are kept)."""
        return self.transpose()

    def to_dense(self) -> Tensor:
        """The dense ``(*batch_shape, N, N)`` matrix (``O(N^2)`` memory: tests and small cases)."""
        return kron_dense(self._factors).expand(self.shape)

    def diagonal(self) -> Tensor:
        """``diag(K)`` of shape ``(*batch_shape, N)``."""
        return kron_diagonal(self._factors).expand(*self._batch_shape, self._n)

    # ------------------------------------------------------------------ mat-vec
    def _as_columns(self, name: str, x: object, vector: bool | None) -> tuple[Tensor, bool]:
        x = _check(name, x)
        if x.dtype != self.dtype:
            raise TypeError(f"{name} has dtype {x.dtype}, the factors have {self.dtype}")
        if x.device != self.device:
            raise ValueError(f"{name} is on {x.device}, the factors on {self.device}")
        if x.ndim == 0:
            raise ValueError(f"{name} must have shape (..., {self._n}) or (..., {self._n}, k), got ()")
        if vector is None:
            # torch.matmul semantics: (..., N, k) when the second-to-last dimension is N
            vector = x.ndim == 1 or x.shape[-2] != self._n
        if vector:
            if x.shape[-1] != self._n:
                raise ValueError(f"{name} has length {x.shape[-1]} in its last dimension; the operator "
                                 f"has N = {self._n} (sizes {self._sizes}): expected shape (..., {self._n}) "
                                 f"or (..., {self._n}, k)")
            return x.unsqueeze(-1), True
        if x.shape[-2] != self._n:  # pragma: no cover - guarded above
            raise ValueError(f"{name} must have shape (..., {self._n}, k), got {tuple(x.shape)}")
        return x, False

    def _check_batch(self, name: str, x: Tensor) -> None:
        try:
            _broadcast(x.shape[:-2], self._batch_shape)
        except ValueError as exc:
            raise ValueError(f"{name} has batch shape {tuple(x.shape[:-2])}, which does not broadcast "
                             f"with the operator's batch shape {tuple(self._batch_shape)}") from exc

    def matmul(self, x: Tensor) -> Tensor:
        """``K x`` for ``x`` of shape ``(..., N)`` or ``(..., N, k)``, in ``O(N k sum n_i)``.

        A tensor whose second-to-last dimension equals ``N`` is read as ``(..., N, k)`` (as in
        :func:`torch.matmul`); otherwise the last dimension must be ``N``. Use :meth:`matvec` to
        force the vector reading. Differentiable in ``x`` and the factors.
        """
        cols, vec = self._as_columns("x", x, None)
        self._check_batch("x", cols)
        out = kron_apply(self._factors, cols)
        return out.squeeze(-1) if vec else out

    def matvec(self, x: Tensor) -> Tensor:
        """``K x`` for a (batch of) vector(s) ``x`` of shape ``(..., N)``."""
        cols, _ = self._as_columns("x", x, True)
        self._check_batch("x", cols)
        return kron_apply(self._factors, cols).squeeze(-1)

    def __matmul__(self, x: Tensor) -> Tensor:
        return self.matmul(x)

    # ------------------------------------------------------------------ eigendecomposition
    def _key(self) -> tuple:
        return tuple((id(f), f._version, f.data_ptr()) for f in self._factors)

    def _eigcache(self) -> _EigCache:
        key = self._key()
        if self._eig is None or self._eig_key != key:
            mats, qs, ls = [], [], []
            for i, f in enumerate(self._factors):
                a = f.detach()
                _check_symmetric(f"factors[{i}]", a)
                a = 0.5 * (a + a.mT)
                ev, q = torch.linalg.eigh(a)
                mats.append(a)
                qs.append(q)
                ls.append(ev)
            self._eig = _EigCache(mats, qs, ls)
            self._eig_key = key
        return self._eig

    def eig(self) -> list[tuple[Tensor, Tensor]]:
        """Per-factor eigenpairs ``[(l_k, Q_k), ...]`` of the symmetrised factors (cached, detached).

        ``l_k`` has shape ``(*b_k, n_k)`` in ascending order and ``A_k = Q_k diag(l_k) Q_k^T``.
        """
        cache = self._eigcache()
        return list(zip(cache.ls, cache.qs))

    def eigvals(self) -> Tensor:
        """All eigenvalues of ``K``, ``(*batch_shape, N)`` in grid (not sorted) order (detached)."""
        return outer_product(self._eigcache().ls).expand(*self._batch_shape, self._n)

    def apply_eigen_fn(self, b: Tensor, fn: Callable[[Tensor], Tensor]) -> Tensor:
        """``Q diag(fn(lambda)) Q^T b`` with ``lambda`` the eigenvalue grid of ``K`` (see :meth:`eigvals`).

        Useful for spectral preconditioners and matrix functions (``fn = lambda l: 1 / (l + s)``
        is the solve, ``torch.sqrt`` a square root). ``fn`` receives ``(*b, N)`` and must return a
        tensor broadcastable to it. Differentiable in ``b`` (and through ``fn``), not in the factors.

        Args:
            b: ``(..., N)`` or ``(..., N, k)``.
            fn: function of the eigenvalue grid.
        """
        if not callable(fn):
            raise TypeError(f"fn must be a callable of the eigenvalue grid, got {type(fn).__name__}")
        cols, vec = self._as_columns("b", b, None)
        self._check_batch("b", cols)
        cache = self._eigcache()
        lam = outer_product(cache.ls)
        scale = fn(lam)
        if not isinstance(scale, Tensor):
            raise TypeError(f"fn must return a torch.Tensor, got {type(scale).__name__}")
        out = kron_apply(cache.qs, kron_apply(cache.qts, cols) * scale.unsqueeze(-1))
        return out.squeeze(-1) if vec else out

    # ------------------------------------------------------------------ solve / logdet
    def _shift(self, shift: object) -> Tensor:
        if isinstance(shift, Tensor):
            if shift.numel() != 1:
                raise ValueError(f"shift must be a scalar, got shape {tuple(shift.shape)}")
            t = shift.reshape(()).to(dtype=self.dtype, device=self.device)  # differentiable cast
            val = float(t.detach())
        else:
            if isinstance(shift, bool) or not isinstance(shift, (int, float)):
                raise TypeError(f"shift must be a real number or a scalar tensor, got {type(shift).__name__}")
            val = float(shift)
            t = torch.tensor(val, dtype=self.dtype, device=self.device)
        if not math.isfinite(val):
            raise ValueError(f"shift must be finite, got {val}")
        if val < 0:
            raise ValueError(f"shift (= s^2) must be >= 0, got {val}")
        return t

    def solve(self, b: Tensor, shift: float | Tensor = 0.0, *, method: str = "eigh",
              refine: int | None = None) -> Tensor:
        """Solve ``(K + shift * I) x = b`` exactly.

        Args:
            b: right-hand side ``(..., N)`` or ``(..., N, k)`` (read as in :meth:`matmul`).
            shift: ``s^2 >= 0`` (a float or a scalar tensor, possibly requiring grad).
            method: ``"eigh"`` (per-factor eigendecompositions, any ``shift``, symmetric factors) or
                ``"cholesky"`` (per-factor Cholesky, ``shift`` must be 0, positive-definite factors).
            refine: iterative-refinement steps of the eigen solve (each costs about one mat-vec
                and one more eigen-basis round trip). ``None``: one step when the condition
                number of ``K + shift I`` (known exactly from the factor eigenvalues) exceeds
                ``1e7``, none otherwise. The eigen solve alone leaves a relative residual growing
                like ``cond * eps``; one step brings it down to the mat-vec rounding level.
                Ignored by ``method="cholesky"``.

        Returns:
            ``x`` with the broadcast shape of ``b`` and the operator batch.

        Raises:
            ValueError: bad shapes, non-finite ``b``, negative ``shift``, non-symmetric factors,
                a singular system (``shift = 0`` and a zero factor eigenvalue), or a factor that is
                not positive definite for ``method="cholesky"``.
        """
        if method not in _METHODS:
            raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
        if refine is not None and (isinstance(refine, bool) or not isinstance(refine, int) or refine < 0):
            raise ValueError(f"refine must be None or an int >= 0, got {refine!r}")
        cols, vec = self._as_columns("b", b, None)
        self._check_batch("b", cols)
        s = self._shift(shift)
        if method == "cholesky":
            if float(s.detach()) != 0.0:
                raise ValueError(f"method='cholesky' needs shift == 0, got shift={float(s.detach())}; "
                                 "use method='eigh' for K + shift * I")
            out = self._chol_apply(cols)
        else:
            cache = self._eigcache()
            if float(s.detach()) == 0.0:
                for i, v in enumerate(cache.ls):
                    if bool((v == 0).any()):
                        raise ValueError(f"K is singular: factors[{i}] has a zero eigenvalue (use shift > 0)")
            if refine is None:
                refine = 1 if cache.condition(float(s.detach())) > _REFINE_COND else 0
            out = _EigSolve.apply(cols, s, cache, refine, *self._factors)
        return out.squeeze(-1) if vec else out

    def logdet(self, shift: float | Tensor = 0.0) -> Tensor:
        """``log det(K + shift * I)`` of shape ``batch_shape`` (a 0-dim tensor when unbatched).

        Needs ``K + shift * I`` positive definite (checked exactly in ``O(sum n_k)`` from the factor
        eigenvalue ranges); the factors themselves need not be (``(-A) kron (-B) = A kron B``). With
        ``shift = 0`` it is ``sum_k (N / n_k) log |det A_k|``.

        Raises:
            ValueError: negative ``shift``, non-symmetric factors, or ``K + shift * I`` not
                positive definite.
        """
        s = self._shift(shift)
        cache = self._eigcache()
        lo, _ = product_range(cache.ls)
        smallest = float((lo + float(s.detach())).min())
        if not smallest > 0:
            raise ValueError("K + shift * I is not positive definite (smallest eigenvalue "
                             f"{smallest:.3e}); logdet needs a positive-definite matrix")
        return _EigLogdet.apply(s, cache, self._batch_shape, *self._factors)

    # ------------------------------------------------------------------ Cholesky path
    def _chol_factors(self) -> list[Tensor]:
        grad = torch.is_grad_enabled() and any(f.requires_grad for f in self._factors)
        key = self._key()
        if not grad and self._chol is not None and self._chol_key == key:
            return self._chol
        chols = []
        for i, f in enumerate(self._factors):
            _check_symmetric(f"factors[{i}]", f.detach())
            lower, info = torch.linalg.cholesky_ex(f)
            if bool((info != 0).any()):
                raise ValueError(f"factors[{i}] is not positive definite (Cholesky failed at leading minor "
                                 f"{int(info.max())}); use method='eigh', possibly with shift > 0")
            chols.append(lower)
        if not grad:
            self._chol, self._chol_key = chols, key
        return chols

    def _chol_apply(self, cols: Tensor) -> Tensor:
        chols = self._chol_factors()
        # (kron A_k)^{-1} = kron A_k^{-1}; apply A_k^{-1} = L_k^{-T} L_k^{-1} along each grid axis.
        c = cols.shape[-1]
        y = cols
        for lower, n in zip(chols, self._sizes):
            y = y.reshape(*y.shape[:-2], n, -1)
            y = torch.cholesky_solve(y, lower).mT.contiguous()
        y = y.reshape(*y.shape[:-2], c, -1)
        return y.mT

    # ------------------------------------------------------------------ linear_operator interop
    def to_linear_operator(self) -> Any:
        """The equivalent ``linear_operator.operators.KroneckerProductLinearOperator`` (dense factors)."""
        from linear_operator.operators import DenseLinearOperator, KroneckerProductLinearOperator

        ops = [DenseLinearOperator(f.expand(*self._batch_shape, *f.shape[-2:])) for f in self._factors]
        return KroneckerProductLinearOperator(*ops)

    @classmethod
    def from_linear_operator(cls, op: Any) -> Kronecker:
        """Build from a ``KroneckerProductLinearOperator`` (its factors are densified)."""
        from linear_operator.operators import KroneckerProductLinearOperator

        if not isinstance(op, KroneckerProductLinearOperator):
            raise TypeError(f"op must be a KroneckerProductLinearOperator, got {type(op).__name__}")
        return cls([lo.to_dense() for lo in op.linear_ops])


def _check(name: str, x: object) -> Tensor:
    """:func:`check_tensor` with a cheap finiteness test first.

    A finite sum proves every entry finite (an inf or NaN entry makes every later partial sum inf
    or NaN), so the full element-wise test (about 10x slower) only runs when the sum is not
    finite: then it either raises with the count of bad entries or the sum merely overflowed.
    """
    x = check_tensor(name, x, finite=False)
    if x.numel() and not bool(torch.isfinite(x.sum())):
        check_tensor(name, x)
    return x


def _check_symmetric(name: str, a: Tensor) -> None:
    scale = float(a.abs().max()) if a.numel() else 0.0
    asym = float((a - a.mT).abs().max()) if a.numel() else 0.0
    tol = math.sqrt(torch.finfo(a.dtype).eps) * max(scale, torch.finfo(a.dtype).tiny)
    if asym > tol:
        raise ValueError(f"{name} is not symmetric (max |A - A^T| = {asym:.3e}, max |A| = {scale:.3e}); "
                         "solve and logdet need symmetric factors")


def _coerce_factors(factors: object) -> tuple[Tensor, ...]:
    # linear_operator objects can only exist if linear_operator was imported: do not import it here
    lo_mod = sys.modules.get("linear_operator.operators")
    if lo_mod is not None and isinstance(factors, lo_mod.KroneckerProductLinearOperator):
        factors = list(factors.linear_ops)
    if isinstance(factors, Tensor) or not isinstance(factors, Sequence) or isinstance(factors, str):
        raise TypeError(f"factors must be a sequence of square tensors, got {type(factors).__name__}")
    if len(factors) == 0:
        raise ValueError("factors must contain at least one matrix")
    out = []
    for i, f in enumerate(factors):
        if lo_mod is not None and isinstance(f, lo_mod.LinearOperator):
            f = f.to_dense()
        f = _check(f"factors[{i}]", f)
        if f.ndim < 2 or f.shape[-1] != f.shape[-2]:
            raise ValueError(f"factors[{i}] must be square with shape (..., n, n), got {tuple(f.shape)}")
        if f.shape[-1] == 0:
            raise ValueError(f"factors[{i}] is empty (shape {tuple(f.shape)})")
        out.append(f)
    dtypes = {f.dtype for f in out}
    if len(dtypes) > 1:
        raise TypeError(f"factors must share one dtype, got {[str(f.dtype) for f in out]}")
    devices = {f.device for f in out}
    if len(devices) > 1:
        raise ValueError(f"factors must be on one device, got {[str(f.device) for f in out]}")
    return tuple(out)
