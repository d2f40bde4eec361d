"""Spectral convolution: a learned linear map on the lowest Fourier modes of a field (1-D to 3-D)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["SpectralConv", "Pointwise", "fast_fft_size"]


class Pointwise(nn.Linear):
    """A per-point linear map of the channels of ``(B, in_features, *grid)`` fields (a 1x1 convolution).

    One batched matrix product on the channel-first layout, several times faster on CPU than a 1x1
    convolution forward and backward; initialised as ``nn.Linear``.
    """

    def forward(self, x: Tensor) -> Tensor:
        flat = x.reshape(x.shape[0], x.shape[1], -1)
        weight = self.weight.expand(x.shape[0], -1, -1)
        y = torch.bmm(weight, flat) if self.bias is None else torch.baddbmm(self.bias[:, None], weight, flat)
        return y.reshape(x.shape[0], self.out_features, *x.shape[2:])


def fast_fft_size(n: int) -> int:
    """The smallest ``m >= n`` whose prime factors are 2, 3, 5 and 7 (sizes pocketFFT / cuFFT do fastest)."""
    m = max(int(n), 1)
    while True:
        k = m
        for p in (2, 3, 5, 7):
            while k % p == 0:
                k //= p
        if k == 1:
            return m
        m += 1


def _hermitian_weights(m: int, n: int, like: Tensor) -> Tensor:
    """``c_k`` for the first ``m`` rfft coefficients of a length-``n`` signal: 1 for k = 0 (and the
    Nyquist k = n / 2), else 2 (the conjugate half the real FFT leaves out)."""
    c = torch.full((m,), 2.0, dtype=like.real.dtype, device=like.device)
    c[0] = 1.0
    if n % 2 == 0 and m == n // 2 + 1:
        c[-1] = 1.0
    return c


class _LowRFFT(torch.autograd.Function):
    """``rfft(x, dim=-1)[..., :m]`` with the adjoint as its backward: one inverse real FFT of the
    ``m`` kept coefficients (torch's generic rfft backward transforms a full complex array)."""

    @staticmethod
    def forward(ctx, x: Tensor, m: int) -> Tensor:  # type: ignore[override]
        ctx.n, ctx.m = x.shape[-1], m
        return torch.fft.rfft(x, dim=-1)[..., :m]

    @staticmethod
    def backward(ctx, g: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        # d/dx of Re<g, F x>: sum_k g_k exp(+2 pi i k j / n), = n * irfft(g / c) with c_k as below
        n = ctx.n
        return n * torch.fft.irfft(g / _hermitian_weights(ctx.m, n, g), n=n, dim=-1), None


class _LowIRFFT(torch.autograd.Function):
    """``irfft(y, n, dim=-1)`` of ``m`` low coefficients, with the adjoint backward: one real FFT."""

    @staticmethod
    def forward(ctx, y: Tensor, n: int) -> Tensor:  # type: ignore[override]
        ctx.n, ctx.m = n, y.shape[-1]
        return torch.fft.irfft(y, n=n, dim=-1)

    @staticmethod
    def backward(ctx, g: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        # irfft(y)_j = (1/n) sum_k c_k Re(y_k exp(2 pi i k j / n)) (imaginary parts of k = 0 / Nyquist
        # ignored), so its adjoint is (c_k / n) rfft(g)_k, with those imaginary parts zeroed
        grad = torch.fft.rfft(g, dim=-1)[..., : ctx.m] * (_hermitian_weights(ctx.m, ctx.n, g) / ctx.n)
        edge = [0] + ([ctx.m - 1] if ctx.n % 2 == 0 and ctx.m == ctx.n // 2 + 1 else [])
        grad[..., edge] = grad[..., edge].real.to(grad.dtype)
        return grad, None


class SpectralConv(nn.Module):
    """``irfft(W . rfft(x))`` on fields ``(B, in_channels, *grid)``, keeping ``modes`` per dimension.

    The kept block of the spectrum is ``[0, m) U [n - m, n)`` along every grid dimension but the last
    and ``[0, m)`` along the last; ``W`` maps channels independently per kept mode. Transforms are done
    one dimension at a time on the kept part only (after the last dimension's real FFT, only ``m``
    columns are transformed further). The complex weights are stored as real tensors (last axis:
    real, imaginary), so parameter counts, optimisers, ``.to(dtype)`` and DistributedDataParallel see
    real parameters. Each lead grid size ``n`` needs ``2 * modes <= n``, the last ``modes <= n // 2 + 1``.
    """

    def __init__(self, in_channels: int, out_channels: int, modes: tuple[int, ...]) -> None:
        super().__init__()
        self.modes = tuple(modes)
        block = tuple(2 * m for m in self.modes[:-1]) + (self.modes[-1],)
        scale = 1.0 / (in_channels * out_channels)
        self.weight = nn.Parameter(scale * torch.rand(in_channels, out_channels, *block, 2))
        letters = "xyz"[: len(modes)]
        self._spec = f"bi{letters},io{letters}->bo{letters}"

    def check_grid(self, grid: tuple[int, ...]) -> None:
        """Raise ``ValueError`` if ``grid`` (after padding) is too small for the modes."""
        *lead, last = grid
        if any(2 * m > n for m, n in zip(self.modes[:-1], lead)) or self.modes[-1] > last // 2 + 1:
            need = tuple(2 * m for m in self.modes[:-1]) + (2 * self.modes[-1] - 2,)
            raise ValueError(f"grid {tuple(grid)} (after padding) is too small for modes={self.modes}: it needs at "
                             f"least {need} points; use a finer grid or fewer modes")

    def forward(self, x: Tensor) -> Tensor:
        grid = tuple(x.shape[2:])
        self.check_grid(grid)
        with torch.autocast(device_type=x.device.type, enabled=False):
            xf = _LowRFFT.apply(x.float() if x.dtype in (torch.float16, torch.bfloat16) else x, self.modes[-1])
            for d, m in enumerate(self.modes[:-1]):  # transform the kept columns only, keep both signs
                xf = torch.fft.fft(xf, dim=2 + d)
                xf = torch.cat([xf.narrow(2 + d, 0, m), xf.narrow(2 + d, grid[d] - m, m)], dim=2 + d)
            y = torch.einsum(self._spec, xf, torch.view_as_complex(self.weight.to(xf.real.dtype)))
            for d, m in enumerate(self.modes[:-1]):
                gap = list(y.shape)
                gap[2 + d] = grid[d] - 2 * m
                y = torch.cat([y.narrow(2 + d, 0, m), y.new_zeros(gap), y.narrow(2 + d, m, m)], dim=2 + d)
                y = torch.fft.ifft(y, dim=2 + d)
            out = _LowIRFFT.apply(y, grid[-1])
        return out.to(x.dtype)
