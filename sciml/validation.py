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
    "check_dtype",
    "check_module_dtype",
    "check_choice",
    "check_probability",
    "as_tensor",
    "check_covariance",
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


def check_seed(name: str, value: object) -> int:
    """Return ``value`` as an int, or raise unless it is an integer torch can seed with (-2^63 to 2^64 - 1)."""
    value = check_int(name, value)
    if not -(2**63) <= value < 2**64:
        raise ValueError(f"{name} must be in [-2**63, 2**64), got {value}")
    return value


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


def check_dtype(name: str, dtype: object, *, allow_none: bool = False) -> torch.dtype | None:
    """Return ``dtype`` or raise ``TypeError`` unless it is a floating ``torch.dtype`` (or ``None`` if allowed)."""
    if dtype is None and allow_none:
        return None
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        allowed = "a floating torch.dtype or None" if allow_none else "a floating torch.dtype"
        raise TypeError(f"{name} must be {allowed}, got {dtype!r}")
    return dtype


_CASTS = {torch.float16: ".half()", torch.bfloat16: ".bfloat16()", torch.float32: ".float()",
          torch.float64: ".double()"}


def check_module_dtype(name: str, x: Tensor, module: torch.nn.Module) -> Tensor:
    """``x`` unchanged, or ``TypeError`` naming ``name`` and both dtypes when ``x``'s dtype is not that of
    ``module``'s floating parameters (a module without any takes every dtype)."""
    weight = next((p for p in module.parameters() if p.is_floating_point()), None)
    if weight is not None and x.dtype != weight.dtype:
        raise TypeError(f"{name} is {x.dtype} but the model's parameters are {weight.dtype}: convert the data "
                        f"({name}{_CASTS.get(weight.dtype, f'.to({weight.dtype})')}) or the model "
                        f"(model{_CASTS.get(x.dtype, f'.to({x.dtype})')})")
    return x


def check_choice(name: str, value: object, choices: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``choices``, else ``TypeError`` (not a str) / ``ValueError``."""
    choices = tuple(choices)
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, one of {choices}, got {type(value).__name__}")
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def check_probability(name: str, value: object, *, open_low: bool = True, open_high: bool = True) -> float:
    """Return ``value`` as a float in ``(0, 1)`` (an end allowed when its ``open_*`` is False), else raise."""
    v = check_real(name, value)
    low_ok = v > 0 if open_low else v >= 0
    high_ok = v < 1 if open_high else v <= 1
    if not (math.isfinite(v) and low_ok and high_ok):
        lo, hi = ("(" if open_low else "["), (")" if open_high else "]")
        raise ValueError(f"{name} must lie in {lo}0, 1{hi}, got {value}")
    return v


def as_tensor(name: str, value: object, dtype: torch.dtype | None = None,
              device: torch.device | str | None = None) -> Tensor:
    """``value`` (tensor, real number or nested list of them) as a tensor, or ``TypeError`` naming it.

    ``dtype`` (if given) applies to every value; ``device`` only to values that are not tensors yet
    (a tensor stays where it is). New tensors default to float64. Complex values are refused.
    """
    if isinstance(value, Tensor):
        if value.is_complex():
            raise TypeError(f"{name} must be real, got a {value.dtype} tensor")
        return value if dtype is None else value.to(dtype)
    if isinstance(value, (str, bytes, complex)) or value is None:
        raise TypeError(f"{name} must be a tensor, a real number or a nested list of real numbers, "
                        f"got {type(value).__name__}")
    try:
        return torch.tensor(value, dtype=dtype or torch.float64, device=device)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise TypeError(f"{name} must be a tensor, a real number or a nested list of real numbers, got "
                        f"{type(value).__name__} ({exc})") from None


def check_covariance(name: str, s: Tensor, *, definite: bool = False, eps: float | None = None) -> Tensor:
    """Symmetrised covariance matrices ``(..., d, d)``, or ``ValueError`` naming ``name``.

    Tolerance ``sqrt(eps) * max|S|`` (``eps`` of ``s``'s dtype unless given, the max over the whole
    batch) for the asymmetry and,
    with ``definite=False``, for the most negative eigenvalue (the rounding a covariance estimate
    carries, far below a genuinely indefinite matrix). ``definite=True`` asks for a Cholesky factor
    to exist instead. ``s`` must be finite and floating.
    """
    check_tensor(name, s)
    if s.ndim < 2 or s.shape[-1] != s.shape[-2]:
        raise ValueError(f"{name} must be square matrices of shape (..., d, d), got {tuple(s.shape)}")
    if s.numel() == 0:
        return s
    unit = torch.finfo(s.dtype).eps if eps is None else eps
    tol = math.sqrt(unit) * s.abs().max()  # one scale for a batch: the units are shared
    asym = (s - s.transpose(-1, -2)).abs().amax(dim=(-1, -2))
    if bool((asym > tol).any()):
        raise ValueError(f"{name} must be symmetric: max |{name} - {name}^T| = {float(asym.max()):.3e} exceeds "
                         f"sqrt(eps) * max |{name}| = {float(tol):.3e}")
    s = 0.5 * (s + s.transpose(-1, -2))
    if definite:
        info = torch.linalg.cholesky_ex(s).info
        if bool((info != 0).any()):
            bad = (info.reshape(-1) != 0).nonzero()[:, 0].tolist()
            where = f" (matrices {bad})" if s.ndim > 2 else ""
            raise ValueError(f"{name} must be positive definite{where}")
        return s
    smallest = torch.linalg.eigvalsh(s)[..., 0]
    if bool((smallest < -tol).any()):
        raise ValueError(f"{name} must be positive semi-definite: its smallest eigenvalue is "
                         f"{float(smallest.min()):.3e} (tolerance -{float(tol):.3e})")
    return s
