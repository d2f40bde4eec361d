"""Fourier neural operator (Li et al. 2021), 1-D to 3-D, with padding that scales with the grid."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sciml.validation import check_bool, check_choice, check_nonnegative, check_positive_int

from ._base import GridOperator
from .spectral import Pointwise, SpectralConv, fast_fft_size

__all__ = ["FNO"]

_ACTIVATIONS = {"gelu": F.gelu, "relu": F.relu, "tanh": torch.tanh}


class FNO(GridOperator):
    """Fourier neural operator: lift ``(a, x)`` to ``width`` channels, ``n_layers`` Fourier layers, project.

    Each layer is ``act(SpectralConv(v) + W v)`` (no activation after the last), as in the paper's
    scripts; lifting, ``W`` and the projection are per-point linear maps. Inputs ``(B, in_channels, *grid)`` on a uniform grid of the unit cube; outputs
    ``(B, out_channels, *grid)`` on the same grid, at any grid size the modes fit.

    Args:
        in_channels: channels of the input fields.
        out_channels: channels of the output fields.
        n_dims: grid dimensions (1-3).
        width: channels of the Fourier layers (paper: 32).
        modes: Fourier modes kept per dimension and sign (paper: 12; 16 for Burgers).
        n_layers: Fourier layers (paper: 4).
        projection: hidden channels of the two-layer projection (paper: 128).
        padding: zeros appended at the end of every grid dimension, as a fraction of its size
            (at least ``ceil(padding * n)`` points, up to the next size with prime factors 2, 3, 5, 7,
            where FFTs are fast), so a non-periodic problem sees about the same padded domain at every
            resolution; 0 for periodic data, at most 1 (doubling the domain already removes every
            wrap-around of a kernel as wide as the grid).
        activation: "gelu" (the current scripts; the paper used ReLU) | "relu" | "tanh".
        coordinates: append the grid coordinates as input channels (the paper does).
    """

    name: ClassVar[str] = "fno"
    save_kind: ClassVar[str] = "neural_operators.FNO"
    #: The paper's optimiser: Adam, lr 1e-3, weight decay 1e-4, x0.5 five times over the run.
    training_defaults: ClassVar[dict[str, Any]] = {"optimizer": "adam", "lr": 1e-3, "weight_decay": 1e-4,
                                                   "schedule": "step", "loss": "l2"}

    def __init__(self, in_channels: int = 1, out_channels: int = 1, n_dims: int = 2, *, width: int = 32,
                 modes: int = 12, n_layers: int = 4, projection: int = 128, padding: float = 0.1,
                 activation: str = "gelu", coordinates: bool = True) -> None:
        super().__init__()
        self._set_io(in_channels, out_channels, n_dims, 3)
        self.padding = check_nonnegative("padding", padding)
        if self.padding > 1:
            raise ValueError(f"padding is a fraction of the grid size and must be <= 1 (1 doubles the domain), "
                             f"got {padding}")
        self.coordinates = check_bool("coordinates", coordinates)
        self.config = {"in_channels": self.in_channels, "out_channels": self.out_channels, "n_dims": self.n_dims,
                       "width": check_positive_int("width", width), "modes": check_positive_int("modes", modes),
                       "n_layers": check_positive_int("n_layers", n_layers),
                       "projection": check_positive_int("projection", projection), "padding": self.padding,
                       "activation": check_choice("activation", activation, tuple(_ACTIVATIONS)),
                       "coordinates": self.coordinates}
        self._act = _ACTIVATIONS[activation]
        lifted = self.in_channels + (self.n_dims if self.coordinates else 0)
        self.lift = Pointwise(lifted, width)
        self.spectral = nn.ModuleList(SpectralConv(width, width, (modes,) * self.n_dims) for _ in range(n_layers))
        self.skip = nn.ModuleList(Pointwise(width, width) for _ in range(n_layers))
        self.project = nn.Sequential(Pointwise(width, projection), nn.GELU(), Pointwise(projection, self.out_channels))

    def _check_input(self, a: Tensor) -> None:
        self.check_input(a)
        grid = tuple(n + self._pad(n) for n in a.shape[2:])
        self.spectral[0].check_grid(grid)

    def _pad(self, n: int) -> int:
        """Points appended to a dimension of ``n``: ``ceil(padding * n)``, rounded up to a fast FFT size."""
        if self.padding == 0:
            return 0
        return fast_fft_size(n + math.ceil(self.padding * n)) - n

    def forward(self, a: Tensor) -> Tensor:
        """``(B, in_channels, *grid)`` -> ``(B, out_channels, *grid)``."""
        self._check_input(a)
        if a.shape[0] == 0:
            return self.empty_output(a)
        grid = a.shape[2:]
        v = self.lift(self.with_coordinates(a) if self.coordinates else a)
        v = F.pad(v, [p for n in reversed(grid) for p in (0, self._pad(n))])
        for i, (spectral, skip) in enumerate(zip(self.spectral, self.skip)):
            v = spectral(v) + skip(v)
            if i < len(self.spectral) - 1:
                v = self._act(v)
        v = v[(slice(None), slice(None), *(slice(0, n) for n in grid))]
        return self.project(v)
