"""Target densities: the :class:`Target` base class and :func:`as_target` adapters.

A target is an (unnormalised) log-density on R^dim with its gradient and, where known, exact
samples and the log normalising constant. Samplers accept anything :func:`as_target` accepts.
"""

from __future__ import annotations

import abc
import copy
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from sciml.validation import check_device, check_dtype, check_generator, check_positive_int

__all__ = [
    "Target",
    "CallableTarget",
    "DistributionTarget",
    "DuckTarget",
    "as_target",
    "check_target",
    "check_dtype_device",
    "TargetError",
]


class TargetError(RuntimeError):
    """The target's ``log_prob`` (or its gradient) raised during a sampler's (or a fit's) run.

    The message names the sampler, the number of steps completed and, when it can be known, the
    chains whose states made the target fail; the target's own exception is ``__cause__``.

    Attributes:
        sampler: the sampler's registry name.
        step: steps completed when the target raised (0: during the start-up evaluations).
        chains: indices of the chains whose states fail on their own, or ``None`` when unknown (the
            failing batch was not one point per chain, or the target fails on every single point).
    """

    def __init__(self, message: str, *, sampler: str, step: int, chains: list[int] | None) -> None:
        super().__init__(message)
        self.sampler, self.step, self.chains = sampler, step, chains


def check_dtype_device(dtype: object, device: object) -> tuple[torch.dtype, torch.device]:
    """``(dtype, device)`` of a target, checked up front (before any costly set-up).

    Raises ``TypeError`` unless ``dtype`` is a floating ``torch.dtype``; ``device`` goes through
    :func:`sciml.validation.check_device` (``DeviceUnavailableError`` for an absent CUDA / MPS
    device); ``None`` means the CPU.
    """
    dtype = check_dtype("dtype", dtype)
    dev = check_device("device", device)
    return dtype, torch.device("cpu") if dev is None else dev


class Target(abc.ABC):
    """Base class of target densities ``pi(x) ~ exp(log_prob(x))`` on ``R^dim``.

    Subclasses implement :meth:`log_prob` (batched over leading dimensions) and, when they can
    draw exact samples, ``_sample(n, generator)`` with ``has_exact_samples = True``. The gradient
    defaults to autograd; subclasses override :meth:`grad_log_prob` / :meth:`log_prob_and_grad`
    with closed forms where they have them.

    Attributes:
        dim: dimension of the state space.
        dtype: floating dtype of samples and evaluations (default ``torch.float64``).
        device: device of samples and evaluations.
        log_z: log of ``int exp(log_prob(x)) dx`` when known, else ``None``.
        modes: ``(M, dim)`` component centres for mixtures (mode coverage), else ``None``.
        mode_weights: ``(M,)`` true component weights, else ``None``.
        has_exact_samples: whether :meth:`sample` draws exact samples.
    """

    has_exact_samples: bool = False

    def __init__(
        self,
        dim: int,
        *,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
        log_z: float | None = None,
        modes: Tensor | None = None,
        mode_weights: Tensor | None = None,
    ) -> None:
        self.dim = check_positive_int("dim", dim)
        self.dtype, self.device = check_dtype_device(dtype, device)
        self.log_z = None if log_z is None else float(log_z)
        if modes is not None:
            modes = torch.as_tensor(modes, dtype=dtype, device=self.device)
            if modes.ndim != 2 or modes.shape[1] != self.dim:
                raise ValueError(f"modes must have shape (M, {self.dim}), got {tuple(modes.shape)}")
        if mode_weights is not None:
            mode_weights = torch.as_tensor(mode_weights, dtype=dtype, device=self.device)
            if modes is None or mode_weights.shape != (modes.shape[0],):
                raise ValueError("mode_weights must have shape (M,) matching modes")
        self.modes = modes
        self.mode_weights = mode_weights

    # ------------------------------------------------------------------ density
    @abc.abstractmethod
    def log_prob(self, x: Tensor) -> Tensor:
        """Log-density (unnormalised allowed): ``(..., dim) -> (...)``."""

    def grad_log_prob(self, x: Tensor) -> Tensor:
        """Gradient of :meth:`log_prob` with respect to ``x``: ``(..., dim) -> (..., dim)``."""
        return self.log_prob_and_grad(x)[1]

    def log_prob_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Return ``(log_prob(x), grad_log_prob(x))`` in one pass (autograd by default).

        The results are detached from any graph ``x`` belongs to.

        Raises:
            ValueError: ``log_prob`` returned finite values that differ across the batch but that
                autograd cannot trace back to ``x`` (it detaches ``x`` or goes through numpy): the
                gradient would silently be zero. Override this method (or :meth:`grad_log_prob`) to
                supply it. A constant density (no path to ``x``, equal values) has gradient zero.
        """
        self._check_x(x)
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            lp = self.log_prob(xg)
            if lp.shape != x.shape[:-1]:
                raise ValueError(
                    f"{type(self).__name__}.log_prob returned shape {tuple(lp.shape)} for input of "
                    f"shape {tuple(x.shape)}; expected {tuple(x.shape[:-1])}"
                )
            if lp.requires_grad:
                (g,) = torch.autograd.grad(lp.sum(), xg, allow_unused=True)
            else:
                g = None
        if g is None:
            finite = lp[torch.isfinite(lp)]
            if finite.numel() > 1 and bool(finite.amax() > finite.amin()):  # varies, yet no path to x
                raise ValueError(
                    f"{type(self).__name__}.log_prob returned values that autograd cannot trace back to its "
                    "input (it detaches x, converts to numpy, or does not use x), so its gradient is "
                    "unknown, not zero: write log_prob in torch operations on x, or supply the gradient "
                    "by overriding grad_log_prob / log_prob_and_grad")
            g = torch.zeros_like(x)  # constant (a uniform density) or not finite: zero gradient
        return lp.detach(), g.detach()

    # ------------------------------------------------------------------ sampling
    def sample(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """Draw ``n`` exact samples, shape ``(n, dim)``.

        Raises:
            NotImplementedError: when the target has no exact sampler (``has_exact_samples`` False).
        """
        n = check_positive_int("n", n)
        check_generator("generator", generator)
        if not self.has_exact_samples:
            raise NotImplementedError(
                f"{type(self).__name__} has no exact sampler (has_exact_samples is False); "
                "use a sampler plugin, e.g. sciml.load('sampler', 'mult-almc')"
            )
        return self._sample(n, generator)

    def _sample(self, n: int, generator: torch.Generator | None) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} does not implement _sample")

    # ------------------------------------------------------------------ helpers
    def _check_x(self, x: Tensor) -> None:
        if not isinstance(x, Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if not x.is_floating_point():  # an integer x would give a truncated integer log-density
            raise TypeError(f"x must be a real floating tensor, got {x.dtype}")
        if x.ndim == 0 or x.shape[-1] != self.dim:
            raise ValueError(f"x must have shape (..., {self.dim}), got {tuple(x.shape)}")

    # Random draws happen on the generator's device (so a CPU generator seeds a CUDA target too)
    # and are then moved to ``self.device``.
    def _rng_device(self, generator: torch.Generator | None) -> torch.device:
        return self.device if generator is None else generator.device

    def _randn(self, *shape: int, generator: torch.Generator | None) -> Tensor:
        return torch.randn(*shape, dtype=self.dtype, device=self._rng_device(generator),
                           generator=generator).to(self.device)

    def _rand(self, *shape: int, generator: torch.Generator | None) -> Tensor:
        return torch.rand(*shape, dtype=self.dtype, device=self._rng_device(generator),
                          generator=generator).to(self.device)

    def _categorical(self, probs: Tensor, n: int, generator: torch.Generator | None) -> Tensor:
        dev = self._rng_device(generator)
        return torch.multinomial(probs.to(dev), n, replacement=True, generator=generator).to(self.device)

    def to(self, dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> Target:
        """Return a copy whose tensors (and evaluations / samples) use ``dtype`` / ``device``."""
        dtype, device = check_dtype_device(self.dtype if dtype is None else dtype,
                                           self.device if device is None else device)
        new = copy.copy(self)
        for key, value in vars(self).items():
            setattr(new, key, _convert(value, dtype, device))
        new.dtype, new.device = dtype, device
        return new

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dim={self.dim}, dtype={self.dtype}, device={self.device})"


def _convert(value: Any, dtype: torch.dtype, device: torch.device) -> Any:
    if isinstance(value, Tensor):
        return value.to(dtype=dtype, device=device) if value.is_floating_point() else value.to(device)
    if isinstance(value, Target):
        return value.to(dtype, device)
    if isinstance(value, list):
        return [_convert(v, dtype, device) for v in value]
    if isinstance(value, tuple):
        return tuple(_convert(v, dtype, device) for v in value)
    if isinstance(value, dict):
        return {k: _convert(v, dtype, device) for k, v in value.items()}
    return value


def _check_output(name: str, lp: object, x: Tensor) -> Tensor:
    if not isinstance(lp, Tensor):
        raise TypeError(f"{name} must return a torch.Tensor, got {type(lp).__name__}")
    if lp.shape != x.shape[:-1]:
        raise ValueError(
            f"{name} returned shape {tuple(lp.shape)} for input of shape {tuple(x.shape)}; "
            f"expected {tuple(x.shape[:-1])} (one log-density per point)"
        )
    return lp


class CallableTarget(Target):
    """Target from a plain callable ``log_prob: (..., dim) -> (...)``; no exact samples."""

    def __init__(self, log_prob: Callable[[Tensor], Tensor], dim: int, *,
                 dtype: torch.dtype = torch.float64, device: torch.device | str | None = None,
                 log_z: float | None = None) -> None:
        if not callable(log_prob):
            raise TypeError(f"log_prob must be callable, got {type(log_prob).__name__}")
        super().__init__(dim, dtype=dtype, device=device, log_z=log_z)
        self.fn = log_prob

    def log_prob(self, x: Tensor) -> Tensor:
        self._check_x(x)
        return _check_output("log_prob", self.fn(x), x)


class DuckTarget(Target):
    """Wraps any object with ``log_prob`` and ``dim`` (e.g. :class:`sciml.testing.StandardNormalTarget`).

    ``dtype`` / ``device`` / ``log_z`` / ``modes`` / ``mode_weights`` are taken from the object when
    present. ``sample`` uses the object's ``sample(shape, generator=...)`` (or ``sample(n, ...)``)
    when it has one; such samples are assumed exact.
    """

    def __init__(self, obj: Any, dim: int | None = None) -> None:
        odim = getattr(obj, "dim", None)
        if odim is not None:
            odim = check_positive_int(f"{type(obj).__name__}.dim", odim)
        if dim is not None and odim is not None and odim != dim:
            raise ValueError(f"dim={dim} does not match the object's dim attribute {odim}")
        dim = odim if odim is not None else dim
        dtype = getattr(obj, "dtype", torch.float64)
        if not isinstance(dtype, torch.dtype):
            dtype = torch.float64
        super().__init__(dim, dtype=dtype, device=getattr(obj, "device", None),
                         log_z=getattr(obj, "log_z", None), modes=getattr(obj, "modes", None),
                         mode_weights=getattr(obj, "mode_weights", None))
        self.obj = obj
        self.has_exact_samples = callable(getattr(obj, "sample", None))

    def log_prob(self, x: Tensor) -> Tensor:
        self._check_x(x)
        return _check_output(f"{type(self.obj).__name__}.log_prob", self.obj.log_prob(x), x)

    def _sample(self, n: int, generator: torch.Generator | None) -> Tensor:
        try:
            s = self.obj.sample((n,), generator=generator)
        except TypeError:
            s = self.obj.sample(n, generator=generator)
        return s.to(dtype=self.dtype, device=self.device).reshape(n, self.dim)


class DistributionTarget(Target):
    """Wraps a torch / pyro ``Distribution`` with ``batch_shape == ()`` and event shape ``(d,)`` or ``()``.

    The density is normalised, so ``log_z = 0``; samples come from the distribution's ``sample``
    (exact) under ``torch.random.fork_rng`` seeded from ``generator`` when one is given, because
    ``Distribution.sample`` takes no generator. Evaluations are done in the distribution's own
    dtype and cast to :attr:`dtype` (so :meth:`to` works for every distribution).
    """

    def __init__(self, dist: torch.distributions.Distribution) -> None:
        try:
            discrete = getattr(dist.support, "is_discrete", False)
        except NotImplementedError:  # a user's Distribution need not declare its support
            discrete = False
        if discrete:
            raise TypeError(f"{type(dist).__name__} is a discrete distribution: a target is a density on R^d")
        if tuple(dist.batch_shape) != ():
            raise ValueError(
                f"distribution must have batch_shape (), got {tuple(dist.batch_shape)}; "
                "use torch.distributions.Independent to turn batch dimensions into event dimensions"
            )
        ev = tuple(dist.event_shape)
        if len(ev) > 1:
            raise ValueError(f"distribution must have event_shape (d,) or (), got {ev}")
        self.scalar_event = len(ev) == 0
        dim = 1 if self.scalar_event else ev[0]
        native = _native_dtype_device(dist)
        self.native_dtype, self.native_device = native
        super().__init__(dim, dtype=self.native_dtype, device=self.native_device, log_z=0.0)
        self.dist = dist
        self.has_exact_samples = bool(getattr(dist, "has_rsample", False)) or _has_sample(dist)

    def log_prob(self, x: Tensor) -> Tensor:
        self._check_x(x)
        xn = x.to(dtype=self.native_dtype, device=self.native_device)
        if self.scalar_event:
            xn = xn[..., 0]
        return self.dist.log_prob(xn).to(dtype=x.dtype, device=x.device)

    def _sample(self, n: int, generator: torch.Generator | None) -> Tensor:
        devices = [self.native_device] if self.native_device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            if generator is not None:
                seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
                torch.manual_seed(seed)
            s = self.dist.sample((n,))
        s = s.reshape(n, self.dim)
        return s.to(dtype=self.dtype, device=self.device)


def _has_sample(dist: Any) -> bool:
    try:
        type(dist).sample  # noqa: B018
    except AttributeError:
        return False
    return type(dist).sample is not torch.distributions.Distribution.sample


def _native_dtype_device(dist: Any) -> tuple[torch.dtype, torch.device]:
    for attr in ("loc", "mean", "low", "scale"):
        try:
            v = getattr(dist, attr)
        except Exception:  # noqa: BLE001 - some distributions have no (finite) mean
            continue
        if isinstance(v, Tensor) and v.is_floating_point():
            return v.dtype, v.device
    for v in vars(dist).values():
        if isinstance(v, Tensor) and v.is_floating_point():
            return v.dtype, v.device
    return torch.get_default_dtype(), torch.device("cpu")


def as_target(obj: Any, *, dim: int | None = None) -> Target:
    """Turn ``obj`` into a :class:`Target`.

    Accepted:

    * a :class:`Target` (returned as is; ``dim`` must match when given);
    * a torch / pyro ``Distribution`` with ``batch_shape == ()`` and event shape ``(d,)`` (or a
      scalar event, giving ``dim = 1``): log_z = 0, exact samples from its ``sample``;
    * any object with a ``log_prob`` method and a ``dim`` attribute (duck-typed; or ``dim=``);
    * a plain callable ``log_prob(x: (..., dim)) -> (...)``, which needs ``dim=``.

    Raises:
        TypeError: for anything else, or a callable without ``dim``.
        ValueError: for a dimension mismatch or an unsupported distribution shape.
    """
    if dim is not None:
        dim = check_positive_int("dim", dim)
    if isinstance(obj, Target):
        out: Target = obj
    elif isinstance(obj, torch.distributions.Distribution):
        out = DistributionTarget(obj)
    elif callable(getattr(obj, "log_prob", None)) and (getattr(obj, "dim", None) is not None or dim is not None):
        out = DuckTarget(obj, dim)
    elif callable(obj) and not hasattr(obj, "log_prob"):
        if dim is None:
            raise TypeError("as_target(callable) needs dim=: the dimension of the log-density's input")
        out = CallableTarget(obj, dim)
    else:
        raise TypeError(
            f"cannot make a target from {type(obj).__name__}: expected a sciml.targets.Target, a "
            "torch/pyro Distribution with event_shape (d,), an object with log_prob and a dim "
            "attribute, or a callable log_prob together with dim="
        )
    if dim is not None and out.dim != dim:
        raise ValueError(f"dim={dim} does not match the target's dimension {out.dim}")
    return out


def check_target(target: Target, x: Tensor | None = None) -> Tensor:
    """Evaluate ``target.log_prob`` at ``x`` (default: two standard-normal points) and check it.

    Returns the log-densities. Raises ``ValueError`` with a clear message if the output has the
    wrong shape or is not finite (useful before starting a sampler).
    """
    if not isinstance(target, Target):
        raise TypeError(f"target must be a sciml.targets.Target (see as_target), got {type(target).__name__}")
    if x is None:
        x = torch.randn(2, target.dim, dtype=target.dtype, device=target.device,
                        generator=torch.Generator(device=target.device).manual_seed(0))
    lp = _check_output(f"{type(target).__name__}.log_prob", target.log_prob(x), x)
    if not bool(torch.isfinite(lp).all()):
        raise ValueError(
            f"{type(target).__name__}.log_prob is not finite at the check points "
            f"(got {lp.tolist() if lp.numel() < 10 else 'non-finite values'})"
        )
    return lp

