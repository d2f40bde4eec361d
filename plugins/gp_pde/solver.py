"""The GP-HM solver: grid collocation with mixture product kernels, grid values eliminated exactly.

The pieces: :mod:`.system` (kernel factors on the grid, the grid operator and the loss),
:mod:`.dense` and :mod:`.fast_diag` (the interior solves), :mod:`.newton` and :mod:`.gmres` (their
iterations), :mod:`.optimise` (L-BFGS and pruning of the kernel parameters). This module checks the
arguments, normalises the data and assembles the :class:`~.solution.GPPDESolution`.
"""

from __future__ import annotations

import math
import time
import warnings

import torch
from torch import Tensor

from sciml import Solver
from sciml.progress import check_progress
from sciml.validation import (
    check_device,
    check_dtype,
    check_generator,
    check_nonnegative,
    check_nonnegative_int,
    check_positive,
    check_positive_int,
    check_real,
)

from .kernels import KERNELS, derivatives_at_zero
from .optimise import KernelFit
from .problem import PDEProblem
from .solution import GPPDESolution
from .system import GridSystem

__all__ = ["GPPDESolver"]


class GPPDESolver(Solver):
    """GP-HM: Gaussian-process solver for high-frequency and multi-scale PDEs on a box (Fang et al., ICLR 2024).

    ``solve(problem)`` models ``u`` as a GP with a product of per-dimension mixture kernels
    (log-domain weights, Jeffreys prior), collocates the PDE on the problem's full grid with the
    Dirichlet data imposed exactly, eliminates the grid values exactly for fixed kernels and fits the
    kernel parameters by L-BFGS and pruning on the negative log marginal likelihood of the PDE data.
    Grids of at most ``dense_limit`` points are solved densely, larger ones (operators without mixed
    derivatives) by fast diagonalisation. The instance holds only the settings.

    Args:
        n_components: mixture components ``Q`` per dimension: the number of frequencies the kernel can hold.
        freq_scale: initial frequencies ``mu = linspace(0, 1, Q) * freq_scale`` (cycles per unit length), a
            float or one per dimension: the highest frequency expected in the solution.
        kernel: ``"gm"`` (spectral mixture) or ``"stm"`` (Matern-5/2 x cosine): smooth or rougher solutions.
        log_lengthscale: initial log-lengthscale of every component (the initial spectral width).
        residual_precision: precision ``tau`` of the PDE residual relative to ``max|f|^2``: lower it for noisy
            source data.
        jitter: added to each kernel factor, relative to its diagonal ``k_j(0)``: raise it when a factorisation fails.
        max_evals: budget of loss evaluations of the kernel fit (each one a full interior solve; 0 keeps the
            initial kernel): the accuracy / time trade-off.
        newton_steps: most Newton steps per interior solve for nonlinear operators: bounds the cost on large grids.
        dense_limit: grids with at most this many points are solved densely (memory ``O(N^2)``).
        init_noise: random perturbation of the initial frequencies, relative to their spacing (drawn from
            ``solve``'s ``generator``): restarts from different seeds.
        device: where the solve runs and the solution lives (``None``: CPU).
        dtype: only ``torch.float64``: the kernel factors have condition numbers near ``1 / jitter`` (1e8 by
            default) and the residual precision reaches 1e16, beyond float32.
        progress: a progress bar of the kernel fit on stderr; ``None``: shown when stderr is a terminal.
    """

    name = "gp-pde"

    def __init__(self, n_components: int = 30, freq_scale: float | list[float] = 20.0, kernel: str = "gm",
                 log_lengthscale: float = 0.0, residual_precision: float = 1e16, jitter: float = 1e-8,
                 max_evals: int = 150, newton_steps: int = 60, dense_limit: int = 2048,
                 init_noise: float = 0.0, *, device: torch.device | str | None = None,
                 dtype: torch.dtype = torch.float64, progress: bool | None = None) -> None:
        self.n_components = check_positive_int("n_components", n_components)
        fs = freq_scale if isinstance(freq_scale, (list, tuple)) else [freq_scale]
        if not fs:
            raise ValueError("freq_scale must be a number or a non-empty list (one per dimension), got []")
        self.freq_scale = [check_positive("freq_scale", f) for f in fs]
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
        self.kernel = kernel
        self.log_lengthscale = check_real("log_lengthscale", log_lengthscale)
        self.residual_precision = check_positive("residual_precision", residual_precision)
        self.jitter = check_positive("jitter", jitter)
        self.max_evals = check_nonnegative_int("max_evals", max_evals)
        self.newton_steps = check_positive_int("newton_steps", newton_steps)
        self.dense_limit = check_positive_int("dense_limit", dense_limit)
        self.init_noise = check_nonnegative("init_noise", init_noise)
        self.device = check_device("device", device)
        self.dtype = check_dtype("dtype", dtype)
        if self.dtype != torch.float64:
            raise ValueError(f"dtype must be torch.float64, got {dtype}: the kernel factors have condition numbers "
                             "near 1 / jitter (1e8 by default), which float32 cannot solve accurately")
        self.progress = check_progress(progress)

    def solve(self, problem: PDEProblem, *, generator: torch.Generator | None = None) -> GPPDESolution:
        """Solve ``problem`` and return a :class:`GPPDESolution` (on ``device``, float64).

        Args:
            problem: a :class:`~sciml_plugins.gp_pde.PDEProblem`.
            generator: seeds the perturbation of the initial frequencies (``init_noise > 0``).

        Raises:
            TypeError: ``problem`` is not a PDEProblem or ``generator`` not a Generator.
            ValueError: non-finite source or boundary data, wrong shapes, a freq_scale list of
                the wrong length, a large grid with mixed derivatives, or kernel matrices that are
                not positive definite at the final kernel.
        """
        if not isinstance(problem, PDEProblem):
            raise TypeError(f"problem must be a PDEProblem, got {type(problem).__name__}")
        check_generator("generator", generator)
        fs = self._frequency_scales(problem)
        device = self.device or torch.device("cpu")
        f_grid, g = (t.to(device) for t in problem.grid_data(self.dtype))
        n_tot = math.prod(problem.grid)
        if n_tot > self.dense_limit and not problem.operator.separable:
            raise ValueError(f"grid of {n_tot} points with mixed derivatives: only the dense path "
                             f"(N <= dense_limit={self.dense_limit}) supports mixed terms")
        t0 = time.perf_counter()
        params = self._init_params(fs, device, generator)
        scale = self._data_scale(problem, f_grid, g, params)
        system = GridSystem(problem, f_grid / scale, g / scale, family=self.kernel, jitter=self.jitter,
                            residual_precision=self.residual_precision, newton_steps=self.newton_steps,
                            dense_limit=self.dense_limit)
        fit = KernelFit(system, params, self.max_evals, self.progress)
        if self.max_evals > 0:
            fit.run()
        try:
            with torch.no_grad():
                U = system.solve_values(system.factors(params), fit.values)
                loss = float(system.loss(params, U))
        except torch.linalg.LinAlgError as exc:
            raise ValueError(f"the kernel matrices (or the interior system) are not positive definite with "
                             f"jitter={self.jitter:g} (relative to k(0)): raise jitter (default 1e-8)") from exc
        diagnostics = {"wall_time_s": time.perf_counter() - t0, "num_steps": fit.lbfgs_steps, "n_evals": fit.evals,
                       "n_grad_evals": fit.grad_evals, "path": system.path, "final_loss": loss,
                       "data_scale": scale, **system.info}
        if fit.components:
            diagnostics["components"] = fit.components
        return GPPDESolution.from_fit(problem, params, self.kernel, self.jitter, U * scale, [*fit.history, loss],
                                      diagnostics)

    def _frequency_scales(self, problem: PDEProblem) -> list[float]:
        """``freq_scale`` per dimension; warns where it exceeds the grid's Nyquist limit."""
        d = problem.dim
        fs = self.freq_scale * d if len(self.freq_scale) == 1 else self.freq_scale
        if len(fs) != d:
            raise ValueError(f"freq_scale has {len(fs)} entries for a {d}-dimensional problem")
        for j, (f_j, nyq) in enumerate(zip(fs, problem.nyquist())):
            if f_j > nyq:
                warnings.warn(f"dimension {j}: kernel frequencies up to freq_scale={f_j:g} exceed the grid's "
                              f"Nyquist limit {nyq:g} cycles per unit (spacing {problem.spacing()[j]:.4g}); "
                              "refine the grid or lower freq_scale", UserWarning, stacklevel=3)
        return fs

    def _init_params(self, fs: list[float], device: torch.device,
                     generator: torch.Generator | None) -> list[dict[str, Tensor]]:
        q, dtype = self.n_components, self.dtype
        out = []
        for f_j in fs:
            mu = torch.linspace(0, 1, q, dtype=dtype) * f_j
            if self.init_noise > 0 and q > 1:
                gen_device = generator.device if generator is not None else torch.device("cpu")
                noise = torch.randn(q, dtype=dtype, generator=generator, device=gen_device).cpu()
                mu = mu + self.init_noise * (f_j / (q - 1)) * noise
            out.append({"log_w": torch.full((q,), math.log(1.0 / q), dtype=dtype, device=device),
                        "mu": mu.to(device), "log_ls": torch.full((q,), self.log_lengthscale, dtype=dtype, device=device)})
        return out

    def _data_scale(self, problem: PDEProblem, f_grid: Tensor, g: Tensor, params: list[dict[str, Tensor]]) -> float:
        """Magnitude ``c`` by which the data are divided (``f / c``, ``g / c``) and the grid values multiplied back.

        Linear operators: the scale of ``u`` that the data imply under the initial prior, by matching second
        moments, ``c = max(rms(g) / sqrt(k(0)), rms(f) / sqrt(var(L u)))``, the prior variances in closed form
        (``k(0) = prod_j k_j(0)``, ``var(L u) = sum_{t, t'} c_t c_t' prod_j (-1)^{t'_j} k_j^{(t_j + t'_j)}(0)``).
        ``c`` is proportional to the data, so data scaled by any ``s > 0`` pose the same normalised problem up
        to rounding. Nonlinear operators: 1 (``phi(s u) != s phi(u)``). Zero data: 1.
        """
        if not problem.operator.linear:
            return 1.0
        kd = [derivatives_at_zero(p["log_w"], p["mu"], p["log_ls"], self.kernel) for p in params]
        k0 = math.prod(k[0] for k in kd)
        terms = list(problem.operator.terms.items())
        var_lu = sum(c1 * c2 * math.prod((-1) ** b * k[a + b] for k, a, b in zip(kd, t1, t2))
                     for t1, c1 in terms for t2, c2 in terms)
        c = math.sqrt(float(g.square().mean()) / k0) if g.numel() else 0.0
        if var_lu > 0.0:
            c = max(c, math.sqrt(float(f_grid.square().mean()) / var_lu))
        return c if c > 0.0 and math.isfinite(c) else 1.0
