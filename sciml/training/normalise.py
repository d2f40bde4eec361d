"""Per-channel normalisers and the wrapper that folds them into a trained operator.

Statistics are one mean and one standard deviation per channel (over samples and grid points), not
per grid point as the original FNO scripts use, so a normalised operator still accepts any grid size.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["ChannelNormaliser", "NormalisedOperator"]


class ChannelNormaliser(nn.Module):
    """``encode(x) = (x - mean) / std`` per channel of ``(n, channels, *grid)`` fields, ``decode`` its inverse.

    Args:
        channels: number of channels.
        eps: added to the standard deviation (a constant channel maps to zero, not to inf).
    """

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = float(eps)
        self.register_buffer("mean", torch.zeros(channels))
        self.register_buffer("std", torch.ones(channels))

    @classmethod
    def of(cls, x: Tensor, eps: float = 1e-6) -> ChannelNormaliser:
        """The normaliser whose statistics are those of ``x`` (computed in float64)."""
        norm = cls(x.shape[1], eps).to(x.dtype)
        per_channel = x.detach().transpose(0, 1).reshape(x.shape[1], -1).double()
        norm.mean.copy_(per_channel.mean(1))
        norm.std.copy_(per_channel.std(1, correction=0) + eps)
        return norm

    def _shape(self, v: Tensor, x: Tensor) -> Tensor:
        """``v`` (per channel) broadcastable against ``x``; ``TypeError`` / ``ValueError`` unless ``x`` is a
        floating ``(n, channels, *grid)`` tensor (an integer one would truncate the statistics)."""
        if not isinstance(x, Tensor) or not x.is_floating_point():
            got = f"a {x.dtype} tensor" if isinstance(x, Tensor) else type(x).__name__
            raise TypeError(f"the normaliser needs a floating tensor, got {got}")
        if x.ndim < 2 or x.shape[1] != v.numel():
            raise ValueError(f"the normaliser needs (n, {v.numel()}, *grid) fields, got shape {tuple(x.shape)}")
        return v.to(x.dtype).reshape(1, -1, *([1] * (x.ndim - 2)))

    def encode(self, x: Tensor) -> Tensor:
        return (x - self._shape(self.mean, x)) / self._shape(self.std, x)

    def decode(self, x: Tensor) -> Tensor:
        return x * self._shape(self.std, x) + self._shape(self.mean, x)


class NormalisedOperator(nn.Module):
    """``operator`` between raw fields: inputs encoded, outputs decoded, at any grid size.

    ``forward(a)`` takes ``(batch, in_channels, *grid)`` raw inputs and returns raw outputs
    ``(batch, out_channels, *grid)``; ``a`` goes through the operator's ``check_input`` (if it has one)
    before it is normalised. ``operator`` is the trained model; the normalisers are buffers,
    so ``state_dict`` holds everything.
    """

    def __init__(self, operator: nn.Module, inputs: ChannelNormaliser | None,
                 outputs: ChannelNormaliser | None) -> None:
        super().__init__()
        self.operator = operator
        self.inputs = inputs
        self.outputs = outputs
        for attr in ("in_channels", "out_channels", "n_dims"):
            if hasattr(operator, attr):
                setattr(self, attr, getattr(operator, attr))

    def forward(self, a: Tensor) -> Tensor:
        check = getattr(self.operator, "check_input", None)
        if callable(check):  # the operator's own message for a bad input, not the normaliser's
            check(a)
        x = self.inputs.encode(a) if self.inputs is not None else a
        y = self.operator(x)
        return self.outputs.decode(y) if self.outputs is not None else y
