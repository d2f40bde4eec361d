"""PDE data sets for neural operators, generated here by classical solvers (nothing is downloaded).

The three benchmarks of the FNO paper (Li et al. 2021), each a function returning a
:class:`PDEData` of channel-first float32 tensors:

* :func:`darcy`: ``-div(a grad u) = 1`` on the unit square, piecewise-constant ``a`` -> ``u``.
* :func:`burgers`: ``u_t + (u^2 / 2)_x = nu u_xx`` on the periodic interval, ``u0 -> u(., 1)``.
* :func:`navier_stokes`: 2-D vorticity on the torus, the first frames -> the later ones.

Sample ``i`` depends only on ``(seed, i)`` and the recipe (not on ``n`` or the number of worker
processes); results are cached on disk under :func:`data_dir`. The solvers themselves
(:func:`solve_darcy`, :func:`solve_burgers`, :func:`solve_navier_stokes`) and the random fields
(:mod:`sciml.datasets.fields`) are public too. Guide: ``docs/datasets.md``.
"""

from ._base import PDEData, data_dir, sample_generator
from .burgers import burgers, solve_burgers
from .darcy import darcy, solve_darcy
from .fields import neumann_grf, periodic_grf
from .navier_stokes import fno_forcing, navier_stokes, solve_navier_stokes

__all__ = [
    "PDEData",
    "data_dir",
    "sample_generator",
    "darcy",
    "burgers",
    "navier_stokes",
    "solve_darcy",
    "solve_burgers",
    "solve_navier_stokes",
    "fno_forcing",
    "periodic_grf",
    "neumann_grf",
]
