"""PDE problems for the GP-HM solver: a box, a full grid, an operator, a source and Dirichlet data.

A problem is ``L u + phi(u) = f`` in the open box and ``u = g`` on its boundary, where ``L`` is a
constant-coefficient combination of partial derivatives up to second order (mixed terms allowed),
written as a dict from derivative multi-indices to coefficients, and ``phi`` an optional pointwise
nonlinearity. Examples in two dimensions:

* Laplacian: ``{(2, 0): 1.0, (0, 2): 1.0}`` (see :func:`laplacian`);
* advection ``u_t + 200 u_x`` with ``x`` first: ``{(1, 0): 200.0, (0, 1): 1.0}``;
* a mixed term ``u_xy``: ``{(1, 1): 1.0}``.

:func:`manufactured_problem` derives ``f`` and ``g`` from a torch function ``u(x)`` by automatic
differentiation (the GP-HM paper's benchmark set, with its published figures, lives in
``benchmarks/gp_pde.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from sciml.validation import check_positive_int, check_real, check_tensor

__all__ = [
    "DifferentialOperator",
    "PDEProblem",
    "laplacian",
    "allen_cahn",
    "advection",
    "manufactured_problem",
    "grid_axes",
    "grid_points",
    "boundary_mask",
]

Field = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class DifferentialOperator:
    """``L u + phi(u)``: constant-coefficient derivatives up to order two plus a pointwise term.

    Attributes:
        terms: maps a multi-index ``(m_1, ..., m_d)`` (``m_j`` derivatives in dimension ``j``,
            ``sum m_j <= 2``) to its coefficient; ``(0, ..., 0)`` is a zeroth-order term ``c u``.
        nonlinearity: ``phi(u)`` applied elementwise (a torch function, differentiable), or
            ``None`` for a linear operator. Allen-Cahn uses ``phi(u) = u^3 - u``.
        name: label used in tables.
    """

    terms: dict[tuple[int, ...], float]
    nonlinearity: Callable[[Tensor], Tensor] | None = None
    name: str = "operator"

    def __post_init__(self) -> None:
        if not isinstance(self.terms, dict) or not self.terms:
            raise ValueError("terms must be a non-empty dict {multi-index: coefficient}")
        if not all(isinstance(k, tuple) for k in self.terms):
            raise TypeError("terms must map multi-index tuples (m_1, ..., m_d) to coefficients, got keys "
                            f"{[k for k in self.terms if not isinstance(k, tuple)]}")
        dims = {len(k) for k in self.terms}
        if len(dims) != 1:
            raise ValueError(f"all multi-indices in terms must have the same length, got {sorted(dims)}")
        for k, v in self.terms.items():
            if not all(isinstance(m, int) and m >= 0 for m in k) or sum(k) > 2:
                raise ValueError(f"multi-index {k} must hold non-negative ints with total order <= 2")
            if not isinstance(v, (int, float)) or not math.isfinite(float(v)):
                raise ValueError(f"coefficient of {k} must be a finite number, got {v!r}")
        if self.nonlinearity is not None and not callable(self.nonlinearity):
            raise TypeError("nonlinearity must be callable or None")

    @property
    def dim(self) -> int:
        """Number of space(-time) dimensions."""
        return len(next(iter(self.terms)))

    @property
    def linear(self) -> bool:
        """Whether the operator has no nonlinearity."""
        return self.nonlinearity is None

    @property
    def separable(self) -> bool:
        """No mixed derivatives: every term differentiates in at most one dimension."""
        return all(sum(1 for m in k if m > 0) <= 1 for k in self.terms)

    def apply(self, u: Field, x: Tensor) -> Tensor:
        """Evaluate ``L u + phi(u)`` at points ``x`` ``(n, d)`` for a torch function ``u`` by autograd."""
        x = x.detach().clone().requires_grad_(True)
        val = u(x)
        if val.ndim == 2 and val.shape[-1] == 1:
            val = val[:, 0]
        out = torch.zeros_like(val)
        grads: dict[int, Tensor] = {}

        def grad(y: Tensor, j: int) -> Tensor:
            # a y without a graph (u affine in x_j, or constant) has derivative 0
            if not y.requires_grad:
                return torch.zeros_like(val)
            (gx,) = torch.autograd.grad(y.sum(), x, create_graph=True, allow_unused=True)
            return torch.zeros_like(val) if gx is None else gx[:, j]

        def first(j: int) -> Tensor:
            if j not in grads:
                grads[j] = grad(val, j)
            return grads[j]

        for k, c in self.terms.items():
            order = [j for j, m in enumerate(k) for _ in range(m)]
            if not order:
                term = val
            elif len(order) == 1:
                term = first(order[0])
            else:
                term = grad(first(order[0]), order[1])
            out = out + float(c) * term
        if self.nonlinearity is not None:
            out = out + self.nonlinearity(val)
        return out.detach()


def laplacian(dim: int) -> DifferentialOperator:
    """The Laplacian in ``dim`` dimensions (Poisson problems ``Delta u = f``)."""
    dim = check_positive_int("dim", dim)
    return DifferentialOperator({tuple(2 if i == j else 0 for i in range(dim)): 1.0 for j in range(dim)},
                                name="poisson")


def _allen_cahn_phi(u: Tensor) -> Tensor:
    return u * (u * u - 1.0)


def allen_cahn(dim: int) -> DifferentialOperator:
    """Allen-Cahn operator ``Delta u + u (u^2 - 1)`` in ``dim`` dimensions."""
    base = laplacian(dim)
    return DifferentialOperator(dict(base.terms), nonlinearity=_allen_cahn_phi, name="allen-cahn")


def advection(beta: float) -> DifferentialOperator:
    """Advection ``u_t + beta u_x`` on points ``(x, t)`` (x first); ``beta`` a finite real number."""
    return DifferentialOperator({(1, 0): check_real("beta", beta), (0, 1): 1.0}, name="advection")


def grid_axes(domain: Sequence[tuple[float, float]], grid: Sequence[int],
              dtype: torch.dtype = torch.float64) -> list[Tensor]:
    """Per-dimension uniform axes with endpoints included."""
    return [torch.linspace(lo, hi, n, dtype=dtype) for (lo, hi), n in zip(domain, grid)]


def grid_points(axes: Sequence[Tensor]) -> Tensor:
    """All points of the tensor grid in row-major order, shape ``(prod n_j, d)``."""
    mesh = torch.meshgrid(*axes, indexing="ij")
    return torch.stack([m.reshape(-1) for m in mesh], dim=-1)


def boundary_mask(grid: Sequence[int]) -> Tensor:
    """Boolean tensor of shape ``grid``: True on the boundary of the box."""
    mask = torch.zeros(tuple(grid), dtype=torch.bool)
    for j, n in enumerate(grid):
        idx = [slice(None)] * len(grid)
        for end in (0, n - 1):
            idx[j] = end
            mask[tuple(idx)] = True
    return mask


@dataclass
class PDEProblem:
    """A Dirichlet problem on a box with a full collocation grid.

    Attributes:
        operator: the :class:`DifferentialOperator`.
        domain: ``[(lo_1, hi_1), ..., (lo_d, hi_d)]``.
        grid: points per dimension (endpoints included), each >= 3.
        source: ``f`` as a function of points ``(n, d) -> (n,)`` or as values on the grid,
            shape ``grid``.
        boundary: ``g`` as a function of points ``(n, d) -> (n,)`` or as values at the boundary
            grid points, shape ``(n_boundary,)`` in the row-major order of
            ``grid_points(...)[boundary_mask(grid).reshape(-1)]``.
        exact: the exact solution ``u(x)`` if known (used only for reporting errors).
        name: label used in tables.
    """

    operator: DifferentialOperator
    domain: list[tuple[float, float]]
    grid: list[int]
    source: Field | Tensor
    boundary: Field | Tensor
    exact: Field | None = None
    name: str = "pde"
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.operator, DifferentialOperator):
            raise TypeError(f"operator must be a DifferentialOperator, got {type(self.operator).__name__}")
        d = self.operator.dim
        try:
            self.domain = [(float(lo), float(hi)) for lo, hi in self.domain]
        except (TypeError, ValueError) as exc:
            raise ValueError("domain must be a sequence of (lo, hi) pairs") from exc
        if len(self.domain) != d:
            raise ValueError(f"domain has {len(self.domain)} intervals but the operator is {d}-dimensional")
        for lo, hi in self.domain:
            if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
                raise ValueError(f"domain interval ({lo}, {hi}) must be finite with hi > lo")
        if isinstance(self.grid, int):
            self.grid = [self.grid] * d
        if isinstance(self.grid, (str, bytes)) or not isinstance(self.grid, Sequence):
            raise TypeError(f"grid must be an int or a sequence of ints, got {type(self.grid).__name__}")
        self.grid = [check_positive_int("grid", int(n) if isinstance(n, int) else n) for n in self.grid]
        if len(self.grid) != d:
            raise ValueError(f"grid has {len(self.grid)} sizes but the operator is {d}-dimensional")
        if min(self.grid) < 3:
            raise ValueError(f"grid needs at least 3 points per dimension, got {self.grid}")
        shape = tuple(self.grid)
        if isinstance(self.source, Tensor):
            check_tensor("source", self.source, shape=shape)
        elif not callable(self.source):
            raise TypeError("source must be a callable f(x) or a tensor of the grid's shape")
        n_b = int(boundary_mask(self.grid).sum())
        if isinstance(self.boundary, Tensor):
            check_tensor("boundary", self.boundary, shape=(n_b,))
        elif not callable(self.boundary):
            raise TypeError(f"boundary must be a callable g(x) or a tensor of shape ({n_b},)")
        if self.exact is not None and not callable(self.exact):
            raise TypeError(f"exact must be a callable u(x) or None, got {type(self.exact).__name__}")

    @property
    def dim(self) -> int:
        """Number of dimensions."""
        return self.operator.dim

    def axes(self, dtype: torch.dtype = torch.float64) -> list[Tensor]:
        """The collocation axes."""
        return grid_axes(self.domain, self.grid, dtype)

    def spacing(self) -> list[float]:
        """Grid spacing per dimension."""
        return [(hi - lo) / (n - 1) for (lo, hi), n in zip(self.domain, self.grid)]

    def nyquist(self) -> list[float]:
        """Highest frequency (cycles per unit length) each grid dimension resolves: ``1 / (2 h)``."""
        return [0.5 / h for h in self.spacing()]

    def grid_data(self, dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor]:
        """``(F, G)``: source values on the grid (shape ``grid``) and boundary values ``(n_boundary,)``.

        Raises:
            ValueError: the source or boundary function returns a wrong shape or non-finite values.
        """
        pts = grid_points(self.axes(dtype))
        mask = boundary_mask(self.grid).reshape(-1)
        if isinstance(self.source, Tensor):
            f = self.source.to(dtype)
        else:
            f = _eval_field("source", self.source, pts).reshape(self.grid)
        if isinstance(self.boundary, Tensor):
            g = self.boundary.to(dtype)
        else:
            g = _eval_field("boundary", self.boundary, pts[mask])
        return f, g


def _eval_field(name: str, fn: Field, pts: Tensor) -> Tensor:
    val = fn(pts)
    if not isinstance(val, Tensor):
        raise TypeError(f"{name}(x) must return a tensor, got {type(val).__name__}")
    if val.ndim == 2 and val.shape[-1] == 1:
        val = val[:, 0]
    return check_tensor(f"{name}(x)", val.detach().to(pts.dtype), shape=(pts.shape[0],))


def manufactured_problem(u_exact: Field, operator: DifferentialOperator | str = "laplacian",
                         domain: Sequence[tuple[float, float]] | None = None,
                         grid: int | Sequence[int] = 64, name: str = "manufactured") -> PDEProblem:
    """Build a Dirichlet problem whose exact solution is ``u_exact``.

    The source ``f = L u + phi(u)`` is computed by torch autograd at whatever points the solver
    asks for, and the boundary data is ``u_exact`` itself on the boundary.

    Args:
        u_exact: torch function of points ``x`` ``(n, d)`` returning ``(n,)`` (float64 in,
            float64 out; built from differentiable torch operations).
        operator: a :class:`DifferentialOperator`, or ``"laplacian"`` / ``"allen-cahn"``
            (dimension taken from ``domain``).
        domain: ``[(lo, hi)] * d``; required for the string operators.
        grid: points per dimension (an int for all dimensions, or one per dimension).
        name: label used in tables.

    Example:
        >>> prob = manufactured_problem(lambda x: torch.sin(6 * x[:, 0]), "laplacian",
        ...                             domain=[(0.0, 1.0)], grid=64)
    """
    if not callable(u_exact):
        raise TypeError("u_exact must be a callable u(x) on points of shape (n, d)")
    if isinstance(operator, str):
        if domain is None:
            raise ValueError("domain is required when operator is given by name")
        d = len(domain)
        if d == 0:
            raise ValueError("domain must hold at least one (lo, hi) interval, got an empty sequence")
        makers = {"laplacian": laplacian, "poisson": laplacian, "allen-cahn": allen_cahn}
        if operator not in makers:
            raise ValueError(f"operator must be a DifferentialOperator or one of {sorted(makers)}")
        operator = makers[operator](d)
    if domain is None:
        raise ValueError("domain is required")
    op = operator

    def source(x: Tensor) -> Tensor:
        return op.apply(u_exact, x)

    def boundary(x: Tensor) -> Tensor:
        val = u_exact(x)
        return val[:, 0] if val.ndim == 2 else val

    return PDEProblem(operator=op, domain=list(domain), grid=list(grid) if not isinstance(grid, int) else grid,
                      source=source, boundary=boundary, exact=boundary, name=name)
