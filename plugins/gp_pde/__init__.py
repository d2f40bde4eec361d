"""GP-HM: Gaussian-process solver for high-frequency and multi-scale PDEs (``gp-pde`` plugin).

``GPPDESolver(...).solve(problem)`` returns a :class:`GPPDESolution`; problems are built with
:class:`PDEProblem` / :func:`manufactured_problem` (the GP-HM paper's benchmark set is in
``benchmarks/gp_pde.py``).
"""

from .kernels import KERNELS, derivatives_at_zero, grid_kernel_matrix, mixture_kernel
from .problem import (
    DifferentialOperator,
    PDEProblem,
    advection,
    allen_cahn,
    boundary_mask,
    grid_axes,
    grid_points,
    laplacian,
    manufactured_problem,
)
from .solution import GPPDESolution
from .solver import GPPDESolver

__all__ = [
    "GPPDESolver",
    "GPPDESolution",
    "DifferentialOperator",
    "PDEProblem",
    "laplacian",
    "allen_cahn",
    "advection",
    "manufactured_problem",
    "grid_axes",
    "grid_points",
    "boundary_mask",
    "KERNELS",
    "mixture_kernel",
    "grid_kernel_matrix",
    "derivatives_at_zero",
]
