"""Multigrid neural operator (MgNO, He, Liu and Xu 2023): layers of a learned multigrid V-cycle, 1-D and 2-D."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sciml.validation import check_choice, check_positive_int

from ._base import GridOperator

__all__ = ["MgNO", "VCycle"]

_ACTIVATIONS = {"gelu": F.gelu, "relu": F.relu, "tanh": torch.tanh, "silu": F.silu}
_PADDING_MODES = ("zeros", "circular", "reflect")
_MAX_LEVELS = 12  # a multiple of 2 ** 11 = 2048 points per dimension: more than any grid here coarsens to


def _conv(n_dims: int, cin: int, cout: int, *, stride: int = 1, padding_mode: str = "zeros") -> nn.Module:
    cls = {1: nn.Conv1d, 2: nn.Conv2d}[n_dims]
    return cls(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False, padding_mode=padding_mode)


class VCycle(nn.Module):
    """One multigrid V-cycle with learned operators: ``(B, f_channels, *grid) -> (B, u_channels, *grid)``.

    Level 0 starts from ``u = S f``; every other smoothing step is ``u <- u + S (f - A u)`` with its own
    3x3 convolutions ``A`` (u -> f) and ``S`` (f -> u). Going down, ``u`` and ``f`` are restricted by
    stride-2 3x3 convolutions; going up, each level adds the prolongation (a 4x4 stride-2 transposed
    convolution, with the same boundary as the other convolutions) of the level below. No post-smoothing. Grid sizes must be divisible by
    ``2 ** (len(smoothing) - 1)``.

    Args:
        u_channels: channels of the solution.
        f_channels: channels of the right-hand side.
        smoothing: smoothing steps per level, finest first (MgNO's Darcy setting: 1, 1, 1, 1, 1, 2).
        n_dims: 1 or 2.
        padding_mode: boundary condition of the 3x3 convolutions: "zeros" (Dirichlet-like),
            "circular" (periodic), "reflect".
    """

    def __init__(self, u_channels: int, f_channels: int, smoothing: Sequence[int], n_dims: int,
                 padding_mode: str = "zeros") -> None:
        super().__init__()
        pm = padding_mode
        self.smoothers = nn.ModuleList()
        for level, steps in enumerate(smoothing):
            blocks = nn.ModuleList()
            for step in range(steps):
                block = nn.ModuleDict({"S": _conv(n_dims, f_channels, u_channels, padding_mode=pm)})
                if level or step:  # the very first step starts from u = 0: no A
                    block["A"] = _conv(n_dims, u_channels, f_channels, padding_mode=pm)
                blocks.append(block)
            self.smoothers.append(blocks)
        coarser = len(smoothing) - 1
        self.restrict_u = nn.ModuleList(_conv(n_dims, u_channels, u_channels, stride=2, padding_mode=pm)
                                        for _ in range(coarser))
        self.restrict_f = nn.ModuleList(_conv(n_dims, f_channels, f_channels, stride=2, padding_mode=pm)
                                        for _ in range(coarser))
        tconv = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d}[n_dims]
        self.prolong = nn.ModuleList(tconv(u_channels, u_channels, kernel_size=4, stride=2, bias=False)
                                     for _ in range(coarser))
        self._pad_mode = {"zeros": "constant", "circular": "circular", "reflect": "reflect"}[padding_mode]

    def _prolongate(self, level: int, coarse: Tensor) -> Tensor:
        """The 4x4 stride-2 transposed convolution ``m -> 2 m`` with the boundary of ``padding_mode``: the
        coarse field is padded by one cell (zeros / periodically / reflected), transformed without
        padding, and the ``2 m`` points over the original cells are kept (for zeros this is exactly
        ``ConvTranspose(padding=1)``; for circular it wraps, so the cycle stays periodic)."""
        padded = F.pad(coarse, [1, 1] * (coarse.ndim - 2), mode=self._pad_mode)
        fine = self.prolong[level](padded)
        return fine[(slice(None), slice(None), *(slice(3, 3 + 2 * m) for m in coarse.shape[2:]))]

    def forward(self, f: Tensor) -> Tensor:
        levels: list[Tensor] = []
        u: Tensor | None = None
        for level, blocks in enumerate(self.smoothers):
            if level:
                u, f = self.restrict_u[level - 1](u), self.restrict_f[level - 1](f)
            for block in blocks:
                u = block["S"](f) if u is None else u + block["S"](f - block["A"](u))
            levels.append(u)
        for level in range(len(levels) - 2, -1, -1):
            levels[level] = levels[level] + self._prolongate(level, levels[level + 1])
        return levels[0]


class MgNO(GridOperator):
    """Multigrid neural operator: ``n_layers`` of ``act(VCycle(u) + W u + b)``, then a 1x1 projection.

    Inputs ``(B, in_channels, *grid)`` of any size: padded at the end of every dimension to a multiple of
    ``2 ** (levels - 1)`` (zeros, or reflected for ``padding_mode="reflect"``; a periodic problem
    needs a divisible size) and cropped back. Defaults are the paper's rough-Darcy model (width 24, 4
    layers, 6 levels, one smoothing step per level and two at the coarsest: 572,661 parameters).

    Args:
        in_channels: channels of the input fields.
        out_channels: channels of the output fields.
        n_dims: grid dimensions (1 or 2).
        width: channels of the hidden fields.
        n_layers: V-cycle layers.
        levels: multigrid levels per V-cycle (grids down to ``n / 2 ** (levels - 1)``), at most 12.
        smoothing: steps per level, finest first (default ``1, ..., 1, 2``).
        padding_mode: "zeros" (Dirichlet-like boundaries) | "circular" (periodic) | "reflect".
        activation: "gelu" | "relu" | "tanh" | "silu".
    """

    name: ClassVar[str] = "mgno"
    save_kind: ClassVar[str] = "neural_operators.MgNO"
    #: The paper's optimiser (Adam, weight decay 1e-4, one-cycle schedule peaking at 5e-4) with the relative
    #: L2 loss: the paper's H1 loss goes with per-point normalisers; with the trainer's per-channel ones
    #: the output normaliser adds a constant field that H1 barely sees (measured on Darcy: test L2 error
    #: 0.78 after 8 epochs with H1, 0.093 with L2; docs/plugins/neural_operators.md).
    training_defaults: ClassVar[dict[str, Any]] = {"optimizer": "adam", "lr": 5e-4, "weight_decay": 1e-4,
                                                   "schedule": "onecycle", "loss": "l2"}

    def __init__(self, in_channels: int = 1, out_channels: int = 1, n_dims: int = 2, *, width: int = 24,
                 n_layers: int = 4, levels: int = 6, smoothing: Sequence[int] | None = None,
                 padding_mode: str = "zeros", activation: str = "gelu") -> None:
        super().__init__()
        self._set_io(in_channels, out_channels, n_dims, 2)
        levels = check_positive_int("levels", levels)
        if levels > _MAX_LEVELS:
            raise ValueError(f"levels must be <= {_MAX_LEVELS} (grids are padded to a multiple of 2 ** (levels - 1)), "
                             f"got {levels}")
        if smoothing is not None and not isinstance(smoothing, Sequence):
            raise TypeError(f"smoothing must be a sequence of {levels} ints (one per level), got "
                            f"{type(smoothing).__name__}")
        smoothing = (1,) * (levels - 1) + (2,) if smoothing is None else tuple(smoothing)
        if len(smoothing) != levels or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in smoothing):
            raise ValueError(f"smoothing must be {levels} ints >= 1 (one per level), got {smoothing!r}")
        self.padding_mode = check_choice("padding_mode", padding_mode, _PADDING_MODES)
        self.config = {"in_channels": self.in_channels, "out_channels": self.out_channels, "n_dims": self.n_dims,
                       "width": check_positive_int("width", width), "n_layers": check_positive_int("n_layers", n_layers),
                       "levels": levels, "smoothing": list(smoothing), "padding_mode": self.padding_mode,
                       "activation": check_choice("activation", activation, tuple(_ACTIVATIONS))}
        self._act = _ACTIVATIONS[activation]
        self.multiple = 2 ** (levels - 1)
        conv1 = {1: nn.Conv1d, 2: nn.Conv2d}[self.n_dims]
        channels = [self.in_channels] + [width] * n_layers
        self.cycles = nn.ModuleList(VCycle(width, c, smoothing, self.n_dims, self.padding_mode) for c in channels[:-1])
        self.linear = nn.ModuleList(conv1(c, width, kernel_size=1) for c in channels[:-1])
        self.project = conv1(width, self.out_channels, kernel_size=1, bias=False)

    def _padding(self, grid: Sequence[int]) -> list[int]:
        pads = [(-n) % self.multiple for n in grid]
        if self.padding_mode == "circular" and any(pads):
            raise ValueError(f"grid {tuple(grid)}: with padding_mode='circular' every size must be a multiple of "
                             f"2 ** (levels - 1) = {self.multiple} (padding would break the periodicity)")
        if self.padding_mode == "reflect" and any(p >= n for p, n in zip(pads, grid)):
            raise ValueError(f"grid {tuple(grid)} is too small to reflect-pad to a multiple of {self.multiple}")
        return pads

    def forward(self, a: Tensor) -> Tensor:
        """``(B, in_channels, *grid)`` -> ``(B, out_channels, *grid)``."""
        self.check_input(a)
        if a.shape[0] == 0:
            return self.empty_output(a)
        grid = tuple(a.shape[2:])
        pads = self._padding(grid)
        self.check_padded("levels", grid, [n + p for n, p in zip(grid, pads)])
        spec = [p for pad in reversed(pads) for p in (0, pad)]
        u = F.pad(a, spec, mode="reflect") if self.padding_mode == "reflect" and any(pads) else F.pad(a, spec)
        for cycle, linear in zip(self.cycles, self.linear):
            u = self._act(cycle(u) + linear(u))
        u = u[(slice(None), slice(None), *(slice(0, n) for n in grid))]
        return self.project(u)
