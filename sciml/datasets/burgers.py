"""Viscous Burgers on the periodic unit interval: ``u_t + (u^2 / 2)_x = nu u_xx``.

:func:`solve_burgers` is a batched Fourier pseudo-spectral solver (torch FFTs, float64): the
viscous term is integrated exactly and the nonlinear term by the fourth-order exponential
time-differencing Runge-Kutta scheme ETDRK4 (Cox and Matthews 2002; coefficients by contour
integrals, Kassam and Trefethen 2005), 2/3-rule dealiased, fixed step. :func:`burgers` is the FNO
data set ``u(., 0) -> u(., time)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from sciml.validation import check_int, check_positive, check_positive_int, check_tensor

from ._base import PDEData, check_common, check_divides, generate, sample_generator
from .fields import check_scale, periodic_grf

__all__ = ["burgers", "solve_burgers", "RECIPE_VERSION"]

RECIPE_VERSION = 1
"""Bumped whenever the Burgers algorithm changes the numbers (invalidates cached files)."""

_BLOCK = 8  # samples per batched solve: fixed, so a sample's arithmetic never depends on n


def burgers(n: int, resolution: int = 1024, *, solve_resolution: int = 8192, nu: float = 0.1, seed: int = 0,
            sigma: float = 25.0, tau: float = 5.0, gamma: float = 2.0, time: float = 1.0,
            step_size: float = 1e-3, cache: bool = True, progress: bool | None = None,
            workers: int | None = None) -> PDEData:
    """The FNO Burgers data set: ``u0 -> u(., time)`` on the periodic unit interval.

    Sample ``i`` draws ``u0 ~ N(0, sigma^2 (-d^2/dx^2 + tau^2)^(-gamma))`` (zero-mean fields,
    :func:`~sciml.datasets.fields.periodic_grf`) on ``solve_resolution`` points from its own
    generator ``(seed, i)``, solves with :func:`solve_burgers` there, and keeps every ``r``-th
    point, ``r = solve_resolution / resolution``. The defaults are the paper's (``nu = 0.1``,
    ``N(0, 625 (-Laplacian + 25 I)^-2)``, 8192 points).

    Args:
        n: number of samples.
        resolution: output points (``x_j = j / resolution``).
        solve_resolution: points of the solve, an even multiple of ``resolution``.
        nu: viscosity (> 0).
        seed: data-set seed (>= 0).
        sigma, tau, gamma: covariance of the initial condition (> 0).
        time: final time (> 0).
        step_size: largest time step; the solver takes ``ceil(time / step_size)`` equal steps (at least one).
        cache, progress, workers: as for :func:`~sciml.datasets.darcy`.

    Returns:
        :class:`PDEData` with ``a = u0`` and ``u = u(., time)``, both ``(n, 1, resolution)`` float32.
    """
    n, seed = check_common(n, seed, cache, progress, workers)
    resolution = check_int("resolution", resolution, minimum=4)
    solve_resolution = check_int("solve_resolution", solve_resolution, minimum=8)
    if solve_resolution % 2:
        raise ValueError(f"solve_resolution must be even, got {solve_resolution}")
    check_divides("resolution", resolution, "solve_resolution", solve_resolution, nodes=False)
    time = check_positive("time", time)
    num_steps = max(1, math.ceil(time / check_positive("step_size", step_size) - 1e-9))
    recipe = {"name": "burgers", "recipe_version": RECIPE_VERSION, "n": n, "seed": seed,
              "resolution": resolution, "solve_resolution": solve_resolution, "nu": check_positive("nu", nu),
              "sigma": check_scale("sigma", sigma), "tau": check_scale("tau", tau),
              "gamma": check_positive("gamma", gamma), "time": time, "num_steps": num_steps}
    return generate(recipe, _compute, block=_BLOCK, cache=cache, progress=progress, workers=workers)


def _compute(recipe: dict, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    size = recipe["solve_resolution"]
    r = size // recipe["resolution"]
    u0 = torch.stack([periodic_grf(sample_generator(recipe["seed"], i), (size,), sigma=recipe["sigma"],
                                   tau=recipe["tau"], gamma=recipe["gamma"]) for i in range(start, stop)])
    try:
        u = solve_burgers(u0, nu=recipe["nu"], time=recipe["time"], num_steps=recipe["num_steps"])[:, 0]
    except ValueError as exc:  # in the names burgers() takes
        raise ValueError(f"{exc}; for burgers(): decrease step_size or sigma") from None
    return (u0[:, None, ::r].numpy().astype(np.float32), u[:, None, ::r].numpy().astype(np.float32))


def solve_burgers(u0: Tensor, *, nu: float, time: float, num_steps: int, num_frames: int = 1) -> Tensor:
    """Solve ``u_t + (u^2 / 2)_x = nu u_xx`` on the periodic unit interval from ``u0``, in float64.

    Fourier pseudo-spectral in space (``s`` points ``x_j = j / s``, nonlinear term 2/3-dealiased:
    modes ``|k| > s / 3`` of ``u^2`` are dropped, as is the Nyquist mode), ETDRK4 in time with
    ``num_steps`` equal steps of ``time / num_steps``. The spatial mean of ``u`` is conserved exactly.

    Args:
        u0: ``(batch, s)`` initial values (``s`` even, >= 4).
        nu: viscosity (> 0).
        time: final time (> 0).
        num_steps: time steps, a multiple of ``num_frames``.
        num_frames: number of equally spaced times returned, ``time * (j + 1) / num_frames``.

    Returns:
        ``(batch, num_frames, s)`` float64; the last frame is ``u(., time)``. An empty batch gives an
        empty result; a solution that becomes non-finite (a time step too large for ``u0``) a ``ValueError``.
    """
    check_tensor("u0", u0, ndim=2)
    size = u0.shape[-1]
    if size < 4 or size % 2:
        raise ValueError(f"u0 must have an even number of points >= 4, got {size}")
    nu, time = check_positive("nu", nu), check_positive("time", time)
    num_steps, num_frames = check_positive_int("num_steps", num_steps), check_positive_int("num_frames", num_frames)
    if num_steps % num_frames:
        raise ValueError(f"num_steps ({num_steps}) must be a multiple of num_frames ({num_frames})")
    if u0.shape[0] == 0:
        return u0.new_zeros((0, num_frames, size), dtype=torch.float64)
    dt = time / num_steps
    k = torch.arange(size // 2 + 1, dtype=torch.float64)
    # d/dx of u^2 / 2, dealiased; zero at k = 0, so the mean never changes.
    nonlinear = torch.where(k <= size // 3, -1j * math.pi * k, torch.zeros((), dtype=torch.complex128))
    coef = _etdrk4(-nu * (2.0 * math.pi * k) ** 2, dt)

    def rhs(v: Tensor) -> Tensor:
        return nonlinear * torch.fft.rfft(torch.fft.irfft(v, n=size) ** 2)

    v = torch.fft.rfft(u0.to(torch.float64))
    frames = []
    for step in range(1, num_steps + 1):
        v = _etdrk4_step(v, rhs, coef)
        if step % (num_steps // num_frames) == 0:
            frames.append(torch.fft.irfft(v, n=size))
    out = torch.stack(frames, dim=1)
    if not bool(torch.isfinite(out).all()):  # NaN / inf persist through the FFTs: the end tells
        raise ValueError(f"the solution became non-finite: the time step time / num_steps = {dt:.3g} is too large "
                         "for this u0; increase num_steps or lower the amplitude of u0")
    return out


def _etdrk4(lin: Tensor, dt: float, points: int = 32) -> tuple[Tensor, ...]:
    """ETDRK4 coefficients ``(E, E2, Q, f1, f2, f3)`` for the diagonal linear operator ``lin``.

    The phi-function combinations are averaged over ``points`` points of a unit circle around each
    ``z = dt * lin`` in the upper half plane (real part), which avoids their cancellation near 0.
    """
    z = (dt * lin).to(torch.complex128)[:, None]
    roots = torch.exp(1j * math.pi * (torch.arange(points, dtype=torch.float64) + 0.5) / points)
    zr = z + roots[None, :]
    ez, ez2 = torch.exp(zr), torch.exp(zr / 2)

    def mean(x: Tensor) -> Tensor:
        return dt * x.mean(dim=1).real

    q = mean((ez2 - 1) / zr)
    f1 = mean((-4 - zr + ez * (4 - 3 * zr + zr**2)) / zr**3)
    f2 = mean((2 + zr + ez * (zr - 2)) / zr**3)
    f3 = mean((-4 - 3 * zr - zr**2 + ez * (4 - zr)) / zr**3)
    e, e2 = torch.exp(dt * lin), torch.exp(dt * lin / 2)
    return e, e2, q, f1, f2, f3


def _etdrk4_step(v: Tensor, rhs: Callable[[Tensor], Tensor], coef: tuple[Tensor, ...]) -> Tensor:
    e, e2, q, f1, f2, f3 = coef
    nv = rhs(v)
    a = e2 * v + q * nv
    na = rhs(a)
    b = e2 * v + q * na
    nb = rhs(b)
    c = e2 * a + q * (2 * nb - nv)
    nc = rhs(c)
    return e * v + f1 * nv + 2 * f2 * (na + nb) + f3 * nc
