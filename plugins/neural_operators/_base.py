"""What every operator of this package shares: the input check, grid coordinates, save / load."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor

from sciml import Operator
from sciml.io import load_module_state, load_state, reading, save_state
from sciml.validation import check_int, check_module_dtype, check_positive_int, check_tensor

__all__ = ["GridOperator"]


class GridOperator(Operator):
    """An :class:`~sciml.Operator` on uniform grids of the unit cube, rebuilt from ``self.config``.

    Subclasses set ``save_kind`` (the save-file kind) and ``config`` (their constructor arguments).
    """

    save_kind: ClassVar[str] = ""
    config: dict[str, Any]

    def _set_io(self, in_channels: object, out_channels: object, n_dims: object, max_dims: int) -> None:
        """Check and set ``in_channels``, ``out_channels`` and ``n_dims`` (1 .. ``max_dims``)."""
        self.in_channels = check_positive_int("in_channels", in_channels)
        self.out_channels = check_positive_int("out_channels", out_channels)
        self.n_dims = check_int("n_dims", n_dims, minimum=1)
        if self.n_dims > max_dims:
            dims = [str(d) for d in range(1, max_dims + 1)]
            allowed = ", ".join(dims[:-1]) + " or " + dims[-1] if max_dims > 1 else "1"
            raise ValueError(f"n_dims must be {allowed}, got {n_dims}")

    def check_input(self, a: object) -> Tensor:
        """``a`` as a ``(batch, in_channels, *grid)`` finite floating tensor of the parameters' dtype, at
        least one point per grid dimension, else ``TypeError`` / ``ValueError`` naming ``a``."""
        if not isinstance(a, Tensor) or not a.is_floating_point():
            got = f"a {a.dtype} tensor" if isinstance(a, Tensor) else type(a).__name__
            raise TypeError(f"a must be a floating tensor, got {got}")
        if a.ndim != self.n_dims + 2 or a.shape[1] != self.in_channels:
            raise ValueError(f"a must be (batch, {self.in_channels}, *grid) with {self.n_dims} grid dimension(s), "
                             f"got shape {tuple(a.shape)}")
        if 0 in a.shape[2:]:
            raise ValueError(f"a must have at least one point per grid dimension, got shape {tuple(a.shape)}")
        return check_tensor("a", check_module_dtype("a", a, self))

    def empty_output(self, a: Tensor) -> Tensor:
        """The ``(0, out_channels, *grid)`` output of an empty batch ``a`` (layers cannot reshape 0 samples)."""
        return a.new_zeros((0, self.out_channels, *a.shape[2:]))

    def check_padded(self, name: str, grid: Sequence[int], padded: Sequence[int]) -> None:
        """``ValueError`` naming ``name`` when padding blows ``grid`` up to more than 16 times its points
        and more than 2 ** 16 points: a setting meant for far finer grids, which would only exhaust memory."""
        before, after = math.prod(grid), math.prod(padded)
        if after > 16 * before and after > 2**16:
            raise ValueError(f"{name}: the grid {tuple(grid)} would be padded to {tuple(padded)} ({after // before}x "
                             f"the points); use a smaller {name} for this grid or a finer grid")

    @staticmethod
    def with_coordinates(a: Tensor) -> Tensor:
        """``(B, C, *grid)`` -> ``(B, C + n_dims, *grid)``: the node coordinates in [0, 1] appended."""
        axes = [torch.linspace(0, 1, n, dtype=a.dtype, device=a.device) for n in a.shape[2:]]
        coords = torch.stack(torch.meshgrid(*axes, indexing="ij"))
        return torch.cat([a, coords.expand(a.shape[0], *coords.shape)], dim=1)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the hyper-parameters and weights (``load`` reads them back)."""
        save_state(path, self.save_kind, 1, {"config": self.config, "state": self.state_dict()})

    @classmethod
    def load(cls, path: str | os.PathLike[str], map_location: torch.device | str | None = None) -> GridOperator:
        """Rebuild a model written by :meth:`save`."""
        _, payload = load_state(path, cls.save_kind, (1,), map_location=map_location)
        with reading(path):
            model = cls(**payload["config"])
            load_module_state(model, payload["state"])
        return model.eval()
