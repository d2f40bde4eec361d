"""Relative L2 and H1 errors of fields on regular grids, the losses operators are trained and scored with."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["relative_l2", "relative_h1", "LOSSES"]


def _check_pair(pred: Tensor, true: Tensor) -> None:
    if not isinstance(pred, Tensor) or not isinstance(true, Tensor):
        raise TypeError(f"pred and true must be tensors, got {type(pred).__name__}, {type(true).__name__}")
    if not pred.is_floating_point() or not true.is_floating_point():
        raise TypeError(f"pred and true must be floating tensors, got {pred.dtype}, {true.dtype}")
    if pred.shape != true.shape:
        raise ValueError(f"pred and true must have the same shape, got {tuple(pred.shape)} and {tuple(true.shape)}")
    if pred.ndim < 2 or pred.shape[0] == 0:
        raise ValueError(f"pred must be (n, channels, *grid) with n >= 1, got shape {tuple(pred.shape)}")


def _per_sample_sq(x: Tensor) -> Tensor:
    return x.flatten(1).square().sum(1)


def relative_l2(pred: Tensor, true: Tensor, *, reduce: bool = True) -> Tensor:
    """Mean over samples of ``||pred_i - true_i|| / ||true_i||`` (norms over channels and grid).

    Args:
        pred: ``(n, channels, *grid)``.
        true: the same shape as ``pred``.
        reduce: return the mean (a scalar) or the ``(n,)`` per-sample errors.
    """
    _check_pair(pred, true)
    err = (_per_sample_sq(pred - true) / _per_sample_sq(true).clamp_min(torch.finfo(true.dtype).tiny)).sqrt()
    return err.mean() if reduce else err


def _grad_sq(x: Tensor) -> Tensor:
    """Per-sample sum of squared forward differences over the grid dimensions, spacing ``1 / size``."""
    total = x.new_zeros(x.shape[0])
    for dim in range(2, x.ndim):
        total = total + _per_sample_sq(torch.diff(x, dim=dim) * x.shape[dim])
    return total


def relative_h1(pred: Tensor, true: Tensor, *, reduce: bool = True) -> Tensor:
    """Mean over samples of the relative H1 error (L2 plus finite-difference gradient terms).

    ``sqrt((|e|^2 + |grad e|^2) / (|u|^2 + |grad u|^2))`` with ``e = pred - true``, forward differences
    on a grid of spacing ``1 / size`` per dimension (the unit domain); the common cell-size factor of
    both integrals cancels. Shapes as :func:`relative_l2`.
    """
    _check_pair(pred, true)
    e = pred - true
    num = _per_sample_sq(e) + _grad_sq(e)
    den = _per_sample_sq(true) + _grad_sq(true)
    err = (num / den.clamp_min(torch.finfo(true.dtype).tiny)).sqrt()
    return err.mean() if reduce else err


#: The trainer's ``loss=`` choices.
LOSSES = {"l2": relative_l2, "h1": relative_h1}
