"""Darcy flow on the unit square: ``-div(a grad u) = f``, ``u = 0`` on the boundary.

:func:`solve_darcy` is the discretisation (5-point finite differences on the node grid, face
coefficients by the arithmetic mean of ``a`` at the two nodes, sparse direct solve in float64);
:func:`darcy` draws the piecewise-constant coefficients of the FNO benchmark and solves with it.
Arrays are indexed ``[i, j] = (x_i, y_j)`` with ``x_i = i / (s - 1)``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import scipy.fft
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch
from torch import Tensor

from sciml.validation import check_choice, check_int, check_positive, check_real

from ._base import PDEData, check_common, check_divides, generate, sample_generator
from .fields import check_scale, neumann_grf

__all__ = ["darcy", "solve_darcy", "darcy_coefficient", "RECIPE_VERSION"]

RECIPE_VERSION = 1
"""Bumped whenever the Darcy algorithm changes the numbers (invalidates cached files)."""

_METHODS = ("nd", "mmd", "colamd", "cg")
_FLOAT32_RANGE = (1e-30, 1e30)  # coefficients whose a and u = O(1 / a) are normal float32 numbers


def darcy(n: int, resolution: int = 85, *, solve_resolution: int = 421, seed: int = 0,
          coefficients: Sequence[float] = (12.0, 3.0), alpha: float = 2.0, tau: float = 3.0,
          cache: bool = True, progress: bool | None = None, workers: int | None = None) -> PDEData:
    """The FNO Darcy data set: piecewise-constant permeability ``a`` -> pressure ``u`` (``f = 1``).

    Sample ``i`` draws ``g = neumann_grf(alpha, tau)`` on the ``solve_resolution``-node grid from its
    own generator ``(seed, i)``, sets ``a = coefficients[0]`` where ``g >= 0`` and
    ``coefficients[1]`` where ``g < 0``, solves with :func:`solve_darcy` there and keeps every
    ``r``-th node, ``r = (solve_resolution - 1) / (resolution - 1)`` (421 -> 85: every 5th).

    Args:
        n: number of samples.
        resolution: output nodes per side (boundary included).
        solve_resolution: nodes per side of the solve; ``solve_resolution - 1`` must be a multiple
            of ``resolution - 1``.
        seed: data-set seed (>= 0).
        coefficients: the two values of ``a``: the paper's 12 / 3 (its script ``demo.m`` uses 12 / 4).
        alpha, tau: decay and length scale of the Gaussian field (the threshold ignores its scale).
        cache: read and write the on-disk cache (see :func:`~sciml.datasets.data_dir`).
        progress: progress bar (``None``: when stderr is a terminal).
        workers: processes (``None``: one per CPU; ``1``: in this process). Results do not depend on it.

    Returns:
        :class:`PDEData` with ``a``, ``u`` of shape ``(n, 1, resolution, resolution)`` float32
        (``u`` includes its zero boundary).
    """
    n, seed = check_common(n, seed, cache, progress, workers)
    resolution = check_int("resolution", resolution, minimum=3)
    solve_resolution = check_int("solve_resolution", solve_resolution, minimum=3)
    check_divides("resolution", resolution, "solve_resolution", solve_resolution, nodes=True)
    high, low = _check_coefficients(coefficients)
    recipe = {"name": "darcy", "recipe_version": RECIPE_VERSION, "n": n, "seed": seed,
              "resolution": resolution, "solve_resolution": solve_resolution, "coefficients": [high, low],
              "alpha": check_positive("alpha", alpha), "tau": check_scale("tau", tau), "rhs": 1.0}
    return generate(recipe, _compute, block=1, cache=cache, progress=progress, workers=workers)


def _check_coefficients(coefficients: object) -> tuple[float, float]:
    if isinstance(coefficients, (str, bytes)) or not hasattr(coefficients, "__len__"):
        raise TypeError(f"coefficients must be a pair of positive numbers, got {type(coefficients).__name__}")
    if len(coefficients) != 2:  # type: ignore[arg-type]
        raise ValueError(f"coefficients must hold two values, got {len(coefficients)}")  # type: ignore[arg-type]
    values = tuple(check_positive(f"coefficients[{k}]", c) for k, c in enumerate(coefficients))  # type: ignore
    low, high = _FLOAT32_RANGE
    for k, c in enumerate(values):  # the data are float32, and u scales like 1 / a
        if not low <= c <= high:
            raise ValueError(f"coefficients[{k}] must lie in [{low:g}, {high:g}] (the data are float32 and u "
                             f"scales like 1 / a), got {c:g}")
    return values


def darcy_coefficient(g: Tensor, coefficients: Sequence[float] = (12.0, 3.0)) -> Tensor:
    """Threshold a field: ``coefficients[0]`` where ``g >= 0``, ``coefficients[1]`` where ``g < 0``."""
    high, low = _check_coefficients(coefficients)
    return torch.where(g >= 0, torch.tensor(high, dtype=g.dtype), torch.tensor(low, dtype=g.dtype))


def _compute(recipe: dict, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    size = recipe["solve_resolution"]
    r = (size - 1) // (recipe["resolution"] - 1)
    a_out, u_out = [], []
    for i in range(start, stop):
        g = neumann_grf(sample_generator(recipe["seed"], i), size, alpha=recipe["alpha"], tau=recipe["tau"])
        a = darcy_coefficient(g, recipe["coefficients"])
        u = solve_darcy(a, recipe["rhs"])
        a_out.append(a[::r, ::r].numpy().astype(np.float32))
        u_out.append(u[::r, ::r].numpy().astype(np.float32))
    return np.stack(a_out)[:, None], np.stack(u_out)[:, None]


# ----------------------------------------------------------------------------------------------------
# The discretisation


def solve_darcy(a: Tensor | np.ndarray, f: float | Tensor | np.ndarray = 1.0, *, method: str = "nd") -> Tensor:
    """Solve ``-div(a grad u) = f`` on the unit square, ``u = 0`` on the boundary, in float64.

    5-point finite differences on the ``s x s`` node grid ``x_i = i / (s - 1)``: the flux through
    the face between two neighbouring nodes uses the arithmetic mean of ``a`` at those nodes, and
    the ``(s - 2)^2`` interior values solve one sparse symmetric positive definite system.

    Args:
        a: ``(s, s)`` coefficient at the nodes (> 0, ``[i, j] = (x_i, y_j)``), ``s >= 3``.
        f: right-hand side, a number or ``(s, s)`` values at the nodes (boundary values unused).
        method: ``"nd"`` (SuperLU on a nested-dissection ordering of the grid, the default and the
            fastest here), ``"mmd"`` / ``"colamd"`` (SuperLU's own orderings ``MMD_AT_PLUS_A`` /
            ``COLAMD``), or ``"cg"`` (conjugate gradients preconditioned by the constant-coefficient
            Laplacian through fast sine transforms, relative residual ``1e-12``; the iteration count
            grows with the contrast of ``a``).

    Returns:
        ``(s, s)`` float64 tensor ``u`` at the nodes, zero on the boundary.
    """
    a_np = _as_grid("a", a)
    size = a_np.shape[0]
    if size < 3:
        raise ValueError(f"a must be at least 3 x 3 nodes, got {a_np.shape}")
    if not (a_np > 0).all():
        raise ValueError("a must be > 0 at every node")
    method = check_choice("method", method, _METHODS)
    h2 = 1.0 / (size - 1) ** 2
    if isinstance(f, (Tensor, np.ndarray)):
        f_np = _as_grid("f", f)
        if f_np.shape != a_np.shape:
            raise ValueError(f"f must have the shape of a {a_np.shape}, got {f_np.shape}")
        rhs = h2 * f_np[1:-1, 1:-1].ravel()
    else:
        rhs = np.full((size - 2) ** 2, h2 * check_real("f", f))
    inner = _solve(a_np, rhs, method)
    u = np.zeros_like(a_np)
    u[1:-1, 1:-1] = inner.reshape(size - 2, size - 2)
    return torch.from_numpy(u)


def _as_grid(name: str, x: object) -> np.ndarray:
    arr = x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise ValueError(f"{name} must be a square (s, s) grid, got shape {arr.shape}")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite")
    return arr


def _values(a: np.ndarray) -> np.ndarray:
    """Matrix entries (times h^2) in the order of :func:`_pattern`: diagonal, then x and y couplings."""
    fx = 0.5 * (a[1:, 1:-1] + a[:-1, 1:-1])  # face (i + 1/2, j) for i = 0..s-2, interior j
    fy = 0.5 * (a[1:-1, 1:] + a[1:-1, :-1])  # face (i, j + 1/2)
    diag = (fx[:-1] + fx[1:] + fy[:, :-1] + fy[:, 1:]).ravel()
    cx = -fx[1:-1].ravel()  # between interior rows i and i + 1
    cy = -fy[:, 1:-1].ravel()
    return np.concatenate([diag, cx, cx, cy, cy])


@functools.lru_cache(maxsize=8)
def _pattern(m: int, ordering: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The sparsity pattern of the ``m^2`` interior unknowns, shared by every coefficient field.

    Returns ``(take, indices, indptr, perm)``: CSC data is ``_values(a)[take]``; unknowns are
    renumbered by ``perm`` (new -> old; nested dissection if ``ordering``, else the identity).
    """
    idx = np.arange(m * m).reshape(m, m)
    rows = np.concatenate([idx.ravel(), idx[:-1].ravel(), idx[1:].ravel(), idx[:, :-1].ravel(), idx[:, 1:].ravel()])
    cols = np.concatenate([idx.ravel(), idx[1:].ravel(), idx[:-1].ravel(), idx[:, 1:].ravel(), idx[:, :-1].ravel()])
    perm = _nested_dissection(m) if ordering else np.arange(m * m)
    inv = np.empty_like(perm)
    inv[perm] = np.arange(m * m)
    rows, cols = inv[rows], inv[cols]
    take = np.lexsort((rows, cols))
    indptr = np.concatenate([[0], np.cumsum(np.bincount(cols, minlength=m * m))])
    return take, rows[take], indptr, perm


def _nested_dissection(m: int, leaf: int = 4) -> np.ndarray:
    """Geometric nested dissection of the ``m x m`` grid: halves first, separator lines last.

    The fill-reducing order of choice for 5-point grids (George 1973); with it SuperLU factors the
    421^2 Darcy matrix faster than with its own MMD / COLAMD orderings (see docs/datasets.md).
    """
    out: list[np.ndarray] = []

    def split(block: np.ndarray) -> None:
        rows, cols = block.shape
        if rows * cols == 0:
            return
        if rows <= leaf and cols <= leaf:
            out.append(block.ravel())
        elif rows >= cols:
            k = rows // 2
            split(block[:k])
            split(block[k + 1:])
            out.append(block[k].ravel())
        else:
            k = cols // 2
            split(block[:, :k])
            split(block[:, k + 1:])
            out.append(block[:, k].ravel())

    split(np.arange(m * m).reshape(m, m))
    return np.concatenate(out)


def _solve(a: np.ndarray, rhs: np.ndarray, method: str) -> np.ndarray:
    m = a.shape[0] - 2
    take, indices, indptr, perm = _pattern(m, method == "nd")
    matrix = sp.csc_matrix((_values(a)[take], indices, indptr), shape=(m * m, m * m))
    if method == "cg":
        return _pcg(matrix.tocsr(), rhs, m)
    spec = {"nd": "NATURAL", "mmd": "MMD_AT_PLUS_A", "colamd": "COLAMD"}[method]
    # Symmetric positive definite: no pivoting needed, keep the diagonal (SymmetricMode).
    lu = spla.splu(matrix, permc_spec=spec, diag_pivot_thresh=0.0, options={"SymmetricMode": True})
    x = np.empty_like(rhs)
    x[perm] = lu.solve(rhs[perm])
    return x


def _pcg(matrix: sp.csr_matrix, rhs: np.ndarray, m: int, rtol: float = 1e-12) -> np.ndarray:
    """CG preconditioned by the unit-coefficient Laplacian, inverted exactly by DST-I in each dimension."""
    k = np.arange(1, m + 1)
    lam1 = 4.0 * np.sin(0.5 * np.pi * k / (m + 1)) ** 2
    lam = (lam1[:, None] + lam1[None, :]) * (2 * (m + 1)) ** 2  # eigenvalues times the DST-I scaling

    def precondition(r: np.ndarray) -> np.ndarray:
        return (scipy.fft.dstn(scipy.fft.dstn(r.reshape(m, m), type=1) / lam, type=1)).ravel()

    op = spla.LinearOperator(matrix.shape, matvec=precondition, dtype=np.float64)
    x, info = spla.cg(matrix, rhs, rtol=rtol, atol=0.0, maxiter=10 * m, M=op)
    if info != 0:
        raise RuntimeError(f"conjugate gradients did not converge in {10 * m} iterations")
    return x
