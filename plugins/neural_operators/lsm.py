"""Latent spectral models (LSM, Wu et al. 2023): a U-shaped trunk whose skip features are solved in a
latent space of a few tokens with learned sine / cosine basis operators. 1-D and 2-D, any device."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sciml.validation import check_positive_int

from ._base import GridOperator
from .spectral import Pointwise

__all__ = ["LSM", "LatentSpectralBlock", "spectral_map"]


class _SpectralMap(torch.autograd.Function):
    """:func:`spectral_map` with a hand-written backward. The sines and cosines are one ``sin`` call
    (``cos x = sin(x + pi / 2)``), saved for the backward, whose derivative in ``t`` is the same
    product with the weights rotated (``d/dx [sin, cos] = [cos, -sin]``): two passes over the
    ``(..., C, 2M)`` modes each way, where autograd through ``cat`` and an ``einsum`` (a batched
    matrix-vector product in torch) took about twice the time. Under ``create_graph=True`` the
    backward recomputes the modes from ``t`` with differentiable operations, so higher derivatives
    are exact too."""

    @staticmethod
    def forward(ctx, tokens: Tensor, weight: Tensor, frequencies: Tensor) -> Tensor:  # noqa: ANN001
        rate = math.pi * torch.cat([frequencies, frequencies])  # (2M,)
        shift = torch.cat([torch.zeros_like(frequencies), torch.full_like(frequencies, math.pi / 2)])
        modes = torch.sin(torch.addcmul(shift, tokens[..., None], rate))  # (..., C, 2M): [sin, cos]
        ctx.save_for_backward(tokens, modes, weight, rate, shift)
        return (modes * weight).sum(-1)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor, None]:  # noqa: ANN001
        tokens, modes, weight, rate, shift = ctx.saved_tensors
        if torch.is_grad_enabled():  # a graph of the backward is asked for: modes as a function of t
            modes = torch.sin(torch.addcmul(shift, tokens[..., None], rate))
        m = rate.shape[0] // 2
        rotated = torch.cat([-weight[:, m:], weight[:, :m]], -1) * rate  # sum_j w_j d/dt mode_j = modes . this
        grad_tokens = grad * (modes * rotated).sum(-1)
        flat = modes.reshape(-1, *weight.shape)
        grad_weight = (flat * grad.reshape(-1, weight.shape[0], 1)).sum(0)
        return grad_tokens, grad_weight, None


def spectral_map(tokens: Tensor, weight: Tensor, frequencies: Tensor) -> Tensor:
    """``out[..., c] = sum_k weight[c, k] sin(pi f_k t_c) + weight[c, M + k] cos(pi f_k t_c)`` for
    ``tokens`` ``t`` ``(..., C)``, ``weight`` ``(C, 2M)``, ``frequencies`` ``f`` ``(M,)`` (constants):
    LSM's learned sine / cosine basis operator, with an explicit backward."""
    return _SpectralMap.apply(tokens, weight.to(tokens.dtype), frequencies.to(tokens.dtype))



def _layers(n_dims: int) -> tuple[type, type, type]:
    return ({1: nn.Conv1d, 2: nn.Conv2d}[n_dims], {1: nn.BatchNorm1d, 2: nn.BatchNorm2d}[n_dims],
            {1: nn.MaxPool1d, 2: nn.MaxPool2d}[n_dims])


class _DoubleConv(nn.Sequential):
    """(3x3 convolution, batch norm, ReLU) twice."""

    def __init__(self, n_dims: int, cin: int, cout: int, mid: int | None = None) -> None:
        conv, norm, _ = _layers(n_dims)
        mid = cout if mid is None else mid
        super().__init__(conv(cin, mid, 3, padding=1, bias=False), norm(mid), nn.ReLU(inplace=True),
                         conv(mid, cout, 3, padding=1, bias=False), norm(cout), nn.ReLU(inplace=True))


class _Down(nn.Sequential):
    def __init__(self, n_dims: int, cin: int, cout: int) -> None:
        super().__init__(_layers(n_dims)[2](2), _DoubleConv(n_dims, cin, cout))


class _Up(nn.Module):
    """Upsample the coarse field by 2 ((bi)linear), concatenate the skip field, double convolution."""

    def __init__(self, n_dims: int, cin: int, cout: int) -> None:
        super().__init__()
        self.mode = {1: "linear", 2: "bilinear"}[n_dims]
        self.conv = _DoubleConv(n_dims, cin, cout, cin // 2)

    def forward(self, coarse: Tensor, skip: Tensor) -> Tensor:
        up = F.interpolate(coarse, size=skip.shape[2:], mode=self.mode, align_corners=True)
        return self.conv(torch.cat([skip, up], dim=1))


class LatentSpectralBlock(nn.Module):
    """The neural spectral block: ``(B, C, *grid) -> (B, C, *grid)``, grid divisible by ``patch``.

    The field is cut into patches of ``patch`` points per dimension; in each patch ``tokens`` learned
    latent tokens attend to the points (multi-head, ``heads`` heads), the tokens are transformed by a
    learned combination of ``sin(k pi t)``, ``cos(k pi t)`` (k = 0 .. basis - 1, scaled by 1 / basis)
    of their own entries plus a residual, and the points attend back to the tokens (plus a residual).
    """

    def __init__(self, channels: int, n_dims: int, *, basis: int = 12, tokens: int = 4, patch: int = 6,
                 heads: int = 8) -> None:
        super().__init__()
        if channels % heads:
            raise ValueError(f"channels ({channels}) must be divisible by heads ({heads})")
        self.channels, self.n_dims, self.patch, self.heads, self.tokens = channels, n_dims, patch, heads, tokens
        self.register_buffer("frequencies", torch.arange(basis, dtype=torch.float32) / basis, persistent=False)
        self.basis_weight = nn.Parameter(torch.rand(channels, 2 * basis) / channels)
        self.latent = nn.Parameter(torch.rand(heads, tokens, channels // heads) / channels)
        self.to_keys_values = Pointwise(channels, 2 * channels)
        self.to_queries = Pointwise(channels, channels)

    def _patches(self, x: Tensor) -> Tensor:
        """``(B, C, *grid)`` -> ``(B * patches, patch ** n_dims, C)``."""
        b, c, *grid = x.shape
        p = self.patch
        shape = [b, c] + [s for n in grid for s in (n // p, p)]
        x = x.reshape(shape)
        d = self.n_dims
        order = [0] + [2 + 2 * i for i in range(d)] + [3 + 2 * i for i in range(d)] + [1]
        return x.permute(order).reshape(-1, p**d, c)

    def _unpatch(self, x: Tensor, shape: torch.Size) -> Tensor:
        b, c, *grid = shape
        p, d = self.patch, self.n_dims
        x = x.reshape([b] + [n // p for n in grid] + [p] * d + [c])
        order = [0, 2 * d + 1] + [v for i in range(d) for v in (1 + i, 1 + d + i)]
        return x.permute(order).reshape(shape)

    def _split_heads(self, x: Tensor) -> Tensor:  # (N, L, C) -> (N, heads, L, C / heads)
        return x.reshape(x.shape[0], x.shape[1], self.heads, -1).transpose(1, 2)

    def forward(self, x: Tensor) -> Tensor:
        patches = self._patches(x)                                              # (N, L, C)
        kv = self._patches(self.to_keys_values(x))                              # (N, L, 2C)
        keys, values = self._split_heads(kv[..., : self.channels]), self._split_heads(kv[..., self.channels:])
        latent = self.latent.expand(patches.shape[0], -1, -1, -1)               # (N, heads, T, C / heads)
        latent = latent + F.scaled_dot_product_attention(latent, keys, values, scale=1.0)
        tokens = latent.transpose(1, 2).reshape(patches.shape[0], self.tokens, self.channels)  # (N, T, C)
        tokens = tokens + spectral_map(tokens, self.basis_weight, self.frequencies)
        queries = self._split_heads(self._patches(self.to_queries(x)))          # (N, heads, L, C / heads)
        latent = self._split_heads(tokens)                                      # (N, heads, T, C / heads)
        out = F.scaled_dot_product_attention(queries, latent, latent, scale=1.0)
        out = out.transpose(1, 2).reshape(patches.shape) + patches
        return self._unpatch(out, x.shape)


class LSM(GridOperator):
    """Latent spectral model: lift ``(a, x)`` to ``width``, a 5-scale U-Net whose skips pass through
    :class:`LatentSpectralBlock` s, then a two-layer projection.

    Inputs ``(B, in_channels, *grid)`` of any size: padded with zeros at the end of every dimension
    to a multiple of ``16 * patch`` (the coarsest scale must hold whole patches; 85 -> 96 for the
    paper's Darcy setting) and cropped back. Defaults are the paper's Darcy model (width 64, 12 basis
    functions, 4 tokens, patches of 6).

    Args:
        in_channels: channels of the input fields.
        out_channels: channels of the output fields.
        n_dims: grid dimensions (1, 2).
        width: channels at the finest scale (the scales have width, 2, 4, 8, 8 times it).
        basis: basis functions of the spectral blocks.
        tokens: tokens of the spectral blocks.
        patch: patch size of the spectral blocks.
        heads: attention heads of the spectral blocks.
        projection: hidden channels of the output projection (the paper's 128).
    """

    name: ClassVar[str] = "lsm"
    save_kind: ClassVar[str] = "neural_operators.LSM"
    #: The paper's training: Adam, lr 5e-4, weight decay 1e-4, step decay, relative L2 loss.
    training_defaults: ClassVar[dict[str, Any]] = {"optimizer": "adam", "lr": 5e-4, "weight_decay": 1e-4,
                                                   "schedule": "step", "loss": "l2"}

    def __init__(self, in_channels: int = 1, out_channels: int = 1, n_dims: int = 2, *, width: int = 64,
                 basis: int = 12, tokens: int = 4, patch: int = 6, heads: int = 8, projection: int = 128) -> None:
        super().__init__()
        self._set_io(in_channels, out_channels, n_dims, 2)
        self.config = {"in_channels": self.in_channels, "out_channels": self.out_channels, "n_dims": self.n_dims,
                       "width": check_positive_int("width", width), "basis": check_positive_int("basis", basis),
                       "tokens": check_positive_int("tokens", tokens), "patch": check_positive_int("patch", patch),
                       "heads": check_positive_int("heads", heads),
                       "projection": check_positive_int("projection", projection)}
        if width % heads:
            raise ValueError(f"width ({width}) must be divisible by heads ({heads})")
        self.multiple = 16 * patch
        d, w = self.n_dims, width
        widths = [w, 2 * w, 4 * w, 8 * w, 8 * w]
        self.lift = Pointwise(self.in_channels + d, w)
        self.inc = _DoubleConv(d, w, w)
        self.down = nn.ModuleList(_Down(d, a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.up = nn.ModuleList([_Up(d, 16 * w, 4 * w), _Up(d, 8 * w, 2 * w), _Up(d, 4 * w, w), _Up(d, 2 * w, w)])
        self.blocks = nn.ModuleList(LatentSpectralBlock(c, d, basis=basis, tokens=tokens, patch=patch, heads=heads)
                                    for c in widths)
        self.out = _layers(d)[0](w, w, kernel_size=1)
        self.project = nn.Sequential(Pointwise(w, projection), nn.GELU(), Pointwise(projection, self.out_channels))

    def forward(self, a: Tensor) -> Tensor:
        """``(B, in_channels, *grid)`` -> ``(B, out_channels, *grid)``."""
        self.check_input(a)
        if a.shape[0] == 0:
            return self.empty_output(a)
        grid = a.shape[2:]
        padded = [n + (-n) % self.multiple for n in grid]
        self.check_padded("patch", grid, padded)
        if self.training and a.shape[0] * math.prod(n // 16 for n in padded) == 1:
            raise ValueError(f"in training mode LSM's batch norm needs more than one value per channel, but a batch "
                             f"of 1 on the grid {tuple(grid)} leaves one point at the coarsest scale: train with "
                             "batches of at least 2 (or patch >= 2), or call model.eval() to evaluate")
        v = self.lift(self.with_coordinates(a))
        v = F.pad(v, [p for n, m in zip(reversed(grid), reversed(padded)) for p in (0, m - n)])
        scales = [self.inc(v)]
        for down in self.down:
            scales.append(down(scales[-1]))
        skips = [block(s) for block, s in zip(self.blocks, scales)]
        v = skips[-1]
        for up, skip in zip(self.up, reversed(skips[:-1])):
            v = up(v, skip)
        v = self.out(v)[(slice(None), slice(None), *(slice(0, n) for n in grid))]
        return self.project(v)
