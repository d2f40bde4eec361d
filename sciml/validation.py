"""Argument checks shared by the core and plugins: clear errors before any heavy work.

Each check raises ``ValueError`` (bad values or shapes) or ``TypeError`` (bad types) with a
message that names the argument.
"""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "check_tensor",
    "check_real",
    "check_positive",
    "check_nonnegative",
    "check_int",
    "check_positive_int",
    "check_nonnegative_int",
    "check_bool",
    "check_generator",
    "check_device",
    "DeviceUnavailableError",
]


class DeviceUnavailableError(RuntimeError):
    """A device was asked for that this machine (or this torch build) does not have."""


def check_tensor(
    name: str,
    x: object,
    *,
    ndim: int | Sequence[int] | None = None,
    shape: Sequence[int | None] | None = None,
    finite: bool = True,
    floating: bool = True,
) -> Tensor:
    """Check that ``x`` is a tensor of the given rank / shape with finite floating entries.

    Args:
        name: argument name used in error messages.
        x: the value to check.
        ndim: allowed number of dimensions (an int or several).
        shape: expected shape; ``None`` entries match any size.
        finite: require every entry to be finite.
        floating: require a floating dtype.

    Returns:
        ``x`` unchanged.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if floating and not x.is_floating_point():
        raise TypeError(f"{name} must have a floating dtype, got {x.dtype}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if x.ndim not in allowed:
            raise ValueError(
                f"{name} must have {' or '.join(map(str, allowed))} dimensions, "
                f"got shape {tuple(x.shape)}"
            )
    if shape is not None:
        if x.ndim != len(shape) or any(
            s is not None and s != d for s, d in zip(shape, x.shape)
        ):
            want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
            raise ValueError(f"{name} must have shape {want}, got {tuple(x.shape)}")
    # A finite sum proves every entry finite and is ~10x cheaper than isfinite().all(); an
    # overflowing sum of finite entries falls through to the exact check.
    if finite and x.numel() and not bool(torch.isfinite(x.sum())) and not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"{name} has {bad} non-finite entr{'y' if bad == 1 else 'ies'} (NaN or inf)")
    return x


def check_real(name: str, value: object) -> float:
    """Return ``value`` as a finite float (Python or NumPy number, one-element tensor; not a bool)."""
    return _as_float(name, value)


def _as_float(name: str, value: object) -> float:
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise ValueError(f"{name} must be a scalar, got shape {tuple(value.shape)}")
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def check_positive(name: str, value: object) -> float:
    """Return ``value`` as a float, or raise unless it is a finite number > 0."""
    v = _as_float(name, value)
    if v <= 0:
        raise ValueError(f"{name} must be > 0, got {v}")
    return v


def check_nonnegative(name: str, value: object) -> float:
    """Return ``value`` as a float, or raise unless it is a finite number >= 0."""
    v = _as_float(name, value)
    if v < 0:
        raise ValueError(f"{name} must be >= 0, got {v}")
    return v


def check_int(name: str, value: object, *, minimum: int | None = None) -> int:
    """Return ``value`` as an int (Python, NumPy or 0-d integer tensor; not a bool), at least ``minimum``.

    Raises ``TypeError`` for a non-integer (floats included, even 2.0) and ``ValueError`` below
    ``minimum``.
    """
    if isinstance(value, Tensor) and value.numel() == 1 and not value.is_floating_point() \
            and value.dtype != torch.bool:
        value = int(value.item())
    if isinstance(value, (bool, Tensor)) or not hasattr(type(value), "__index__"):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    value = operator.index(value)  # type: ignore[arg-type]
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_positive_int(name: str, value: object) -> int:
    """Return ``value`` as an int, or raise unless it is an integer >= 1 (see :func:`check_int`)."""
    return check_int(name, value, minimum=1)


def check_nonnegative_int(name: str, value: object) -> int:
    """Return ``value`` as an int, or raise unless it is an integer >= 0 (see :func:`check_int`)."""
    return check_int(name, value, minimum=0)


def check_bool(name: str, value: object) -> bool:
    """Return ``value`` or raise ``TypeError`` unless it is a ``bool`` (not 0 / 1 or a tensor)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return value


def check_generator(name: str, generator: object) -> torch.Generator | None:
    """Return ``generator`` or raise unless it is ``None`` or a ``torch.Generator``."""
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"{name} must be a torch.Generator or None, got {type(generator).__name__}")
    return generator


def check_device(name: str, device: object) -> torch.device | None:
    """Return ``device`` as a ``torch.device`` (``None`` stays ``None``), or raise up front.

    Raises ``TypeError`` unless it is ``None``, a str or a ``torch.device``; ``ValueError`` for a
    string torch does not parse; :class:`DeviceUnavailableError` when a CUDA (or MPS) device is asked
    for and torch cannot reach it, instead of torch's error at first use.
    """
    if device is None:
        return None
    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"{name} must be None, a str or a torch.device, got {type(device).__name__}")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"{name}={device!r} is not a device torch knows ({exc})") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch build has no CUDA support" if torch.version.cuda is None else "no CUDA device is visible"
            raise DeviceUnavailableError(f"{name}={device!r} was asked for, but {why}; use device='cpu'")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise DeviceUnavailableError(f"{name}={device!r} was asked for, but only {count} CUDA device(s) exist")
    elif dev.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise DeviceUnavailableError(f"{name}={device!r} was asked for, but MPS is not available; use device='cpu'")
    return dev
