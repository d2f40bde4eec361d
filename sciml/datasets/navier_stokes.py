"""2-D incompressible Navier-Stokes in vorticity form on the unit torus.

``w_t + u . grad w = nu Laplacian w + f``, velocity ``u = (psi_y, -psi_x)`` from the stream function
``-Laplacian psi = w``. :func:`solve_navier_stokes` is a batched Fourier pseudo-spectral solver
(torch FFTs, float64, 2/3-rule dealiasing) with Crank-Nicolson on the viscous term and Heun's
predictor-corrector on advection and forcing (second order). :func:`navier_stokes` is the FNO data
set: vorticity frames from a Gaussian initial vorticity under the forcing
``f = 0.1 (sin 2 pi (x + y) + cos 2 pi (x + y))``. Arrays are indexed ``[i, j] = (x_i, y_j)``,
``x_i = i / s``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from sciml.validation import check_bool, check_int, check_positive, check_positive_int, check_tensor

from ._base import PDEData, check_common, check_divides, generate, sample_generator
from .fields import check_scale, periodic_grf

__all__ = ["navier_stokes", "solve_navier_stokes", "fno_forcing", "RECIPE_VERSION"]

RECIPE_VERSION = 1
"""Bumped whenever the Navier-Stokes algorithm changes the numbers (invalidates cached files)."""

_BLOCK = 8  # samples per batched solve: fixed, so a sample's arithmetic never depends on n


def navier_stokes(n: int, resolution: int = 64, *, solve_resolution: int | None = None, nu: float = 1e-3,
                  time: float = 20.0, record_every: float = 1.0, input_steps: int = 10,
                  sigma: float = 7.0**0.75, tau: float = 7.0, gamma: float = 2.5, forcing: bool = True,
                  step_size: float = 1e-2, seed: int = 0, cache: bool = True, progress: bool | None = None,
                  workers: int | None = None) -> PDEData:
    """The FNO Navier-Stokes data set: the first vorticity frames -> the later ones.

    Sample ``i`` draws ``w0 ~ N(0, sigma^2 (-Laplacian + tau^2 I)^(-gamma))`` (zero mean; the
    paper's ``N(0, 7^(3/2) (-Laplacian + 49 I)^(-2.5))`` by default) on ``solve_resolution^2``
    points from its own generator ``(seed, i)``, solves with :func:`solve_navier_stokes` and records
    the vorticity at ``t_j = j * record_every``, ``j = 1 .. time / record_every``, keeping every
    ``r``-th point, ``r = solve_resolution / resolution``. As in the FNO training scripts, ``a`` holds
    the first ``input_steps`` frames and ``u`` the rest; ``input_steps=0`` gives the layout of the
    generation script instead (``a = w0``, ``u`` = every frame), and with ``record_every=time`` the
    plain map ``w0 -> w(time)``.

    Args:
        n: number of samples.
        resolution: output points per side (even).
        solve_resolution: points per side of the solve (``None``: ``resolution``), a multiple of it.
        nu: viscosity (> 0).
        time: final time, a multiple of ``record_every`` (default 20, not the paper's 50: see the docs).
        record_every: time between frames (> 0).
        input_steps: frames in ``a`` (``0``: ``a`` is ``w0``), fewer than ``time / record_every``.
        sigma, tau, gamma: covariance of the initial vorticity (> 0).
        forcing: apply the FNO forcing :func:`fno_forcing` (``False``: free decay).
        step_size: largest time step; each frame interval takes ``ceil(record_every / step_size)``
            equal steps.
        seed, cache, progress, workers: as for :func:`~sciml.datasets.darcy`.

    Returns:
        :class:`PDEData`, float32: ``a`` of shape ``(n, input_steps, s, s)`` (``(n, 1, s, s)`` for
        ``input_steps=0``), ``u`` of shape ``(n, time / record_every - input_steps, s, s)``; channel
        ``c`` of ``u`` is the frame ``t = (input_steps + c + 1) * record_every``.
    """
    n, seed = check_common(n, seed, cache, progress, workers)
    resolution = check_int("resolution", resolution, minimum=8)
    if resolution % 2:
        raise ValueError(f"resolution must be even, got {resolution}")
    solve_resolution = resolution if solve_resolution is None else check_int("solve_resolution", solve_resolution,
                                                                             minimum=8)
    check_divides("resolution", resolution, "solve_resolution", solve_resolution, nodes=False)
    time, record_every = check_positive("time", time), check_positive("record_every", record_every)
    frames = round(time / record_every)
    if frames < 1 or abs(frames * record_every - time) > 1e-9 * time:
        raise ValueError(f"time ({time}) must be a positive multiple of record_every ({record_every})")
    input_steps = check_int("input_steps", input_steps, minimum=0)
    if input_steps >= frames:
        raise ValueError(f"input_steps ({input_steps}) must leave output frames: less than time / record_every "
                         f"= {frames}")
    steps_per_frame = max(1, math.ceil(record_every / check_positive("step_size", step_size) - 1e-9))
    recipe = {"name": "navier_stokes", "recipe_version": RECIPE_VERSION, "n": n, "seed": seed,
              "resolution": resolution, "solve_resolution": solve_resolution, "nu": check_positive("nu", nu),
              "time": time, "record_every": record_every, "input_steps": input_steps,
              "sigma": check_scale("sigma", sigma), "tau": check_scale("tau", tau),
              "gamma": check_positive("gamma", gamma), "forcing": check_bool("forcing", forcing),
              "steps_per_frame": steps_per_frame}
    return generate(recipe, _compute, block=_BLOCK, cache=cache, progress=progress, workers=workers)


def fno_forcing(size: int) -> Tensor:
    """``0.1 (sin 2 pi (x + y) + cos 2 pi (x + y))`` on the ``size x size`` periodic grid, float64."""
    x = torch.arange(check_int("size", size, minimum=1), dtype=torch.float64) / size
    s = 2.0 * math.pi * (x[:, None] + x[None, :])
    return 0.1 * (torch.sin(s) + torch.cos(s))


def _compute(recipe: dict, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    size = recipe["solve_resolution"]
    r = size // recipe["resolution"]
    w0 = torch.stack([periodic_grf(sample_generator(recipe["seed"], i), (size, size), sigma=recipe["sigma"],
                                   tau=recipe["tau"], gamma=recipe["gamma"]) for i in range(start, stop)])
    frames = round(recipe["time"] / recipe["record_every"])
    w = solve_navier_stokes(w0, nu=recipe["nu"], time=recipe["time"],
                            num_steps=frames * recipe["steps_per_frame"], num_frames=frames,
                            forcing=fno_forcing(size) if recipe["forcing"] else None)
    w = w[:, :, ::r, ::r].numpy().astype(np.float32)
    k = recipe["input_steps"]
    a = w0[:, None, ::r, ::r].numpy().astype(np.float32) if k == 0 else w[:, :k]
    return np.ascontiguousarray(a), np.ascontiguousarray(w[:, k:])


def solve_navier_stokes(w0: Tensor, *, nu: float, time: float, num_steps: int, num_frames: int = 1,
                        forcing: Tensor | None = None) -> Tensor:
    """Evolve the vorticity ``w0`` on the unit torus to ``time``, in float64.

    Pseudo-spectral on the ``s x s`` grid ``x_i = i / s`` with the 2/3 rule (the advection term keeps
    the modes with ``|k_x|, |k_y| <= s / 3``); each of the ``num_steps`` equal steps ``dt`` is
    Crank-Nicolson on ``nu Laplacian`` with Heun's method (explicit trapezoid) on ``f - u . grad w``.
    The mean vorticity (of ``w0`` and of ``forcing``) is set to zero, as it is on the torus.

    Args:
        w0: ``(batch, s, s)`` initial vorticity, ``s`` even.
        nu: viscosity (> 0).
        time: final time (> 0).
        num_steps: time steps, a multiple of ``num_frames``.
        num_frames: equally spaced output times ``time * (j + 1) / num_frames``.
        forcing: ``(s, s)`` time-independent forcing, or ``None``.

    Returns:
        ``(batch, num_frames, s, s)`` float64 vorticity.
    """
    check_tensor("w0", w0, ndim=3)
    size = w0.shape[-1]
    if w0.shape[-2] != size or size % 2 or size < 4:
        raise ValueError(f"w0 must be (batch, s, s) with s even and >= 4, got {tuple(w0.shape)}")
    nu, time = check_positive("nu", nu), check_positive("time", time)
    num_steps, num_frames = check_positive_int("num_steps", num_steps), check_positive_int("num_frames", num_frames)
    if num_steps % num_frames:
        raise ValueError(f"num_steps ({num_steps}) must be a multiple of num_frames ({num_frames})")
    dt = time / num_steps
    kx = torch.fft.fftfreq(size, d=1.0 / size, dtype=torch.float64)[:, None]
    ky = torch.arange(size // 2 + 1, dtype=torch.float64)[None, :]
    lap = 4.0 * math.pi**2 * (kx**2 + ky**2)  # -Laplacian
    keep = (kx.abs() <= size / 3) & (ky <= size / 3)
    inv_lap = torch.where(lap > 0, 1.0 / torch.where(lap > 0, lap, 1.0), 0.0)
    dx, dy = 2j * math.pi * kx * keep, 2j * math.pi * ky * keep  # derivatives of dealiased fields

    if forcing is None:
        f_hat = torch.zeros((), dtype=torch.complex128)
    else:
        check_tensor("forcing", forcing, shape=(size, size))
        f_hat = torch.fft.rfft2(forcing.to(torch.float64))
        f_hat[0, 0] = 0.0  # a mean would feed the mean vorticity, which is zero on the torus

    def tendency(w: Tensor) -> Tensor:  # f - u . grad w in Fourier space
        psi = w * inv_lap
        ux, uy = torch.fft.irfft2(dy * psi, s=(size, size)), torch.fft.irfft2(-dx * psi, s=(size, size))
        wx, wy = torch.fft.irfft2(dx * w, s=(size, size)), torch.fft.irfft2(dy * w, s=(size, size))
        return f_hat - keep * torch.fft.rfft2(ux * wx + uy * wy)

    explicit = 1.0 - 0.5 * dt * nu * lap
    implicit = 1.0 / (1.0 + 0.5 * dt * nu * lap)
    w = torch.fft.rfft2(w0.to(torch.float64))
    w[..., 0, 0] = 0.0
    frames = []
    for step in range(1, num_steps + 1):
        g0 = tendency(w)
        predictor = (explicit * w + dt * g0) * implicit
        w = (explicit * w + 0.5 * dt * (g0 + tendency(predictor))) * implicit
        if step % (num_steps // num_frames) == 0:
            frames.append(torch.fft.irfft2(w, s=(size, size)))
    return torch.stack(frames, dim=1)
