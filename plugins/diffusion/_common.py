"""Shared plumbing of the diffusion-sampler plugins.

Target wrapping (:func:`sciml.targets.as_target`), per-point evaluation counting, argument and
start-up checks, random draws that follow the target's dtype / device, progress bars and
divergence tracking. Nothing here is specific to one algorithm.
"""

from __future__ import annotations

import abc
import math
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from sciml.interfaces import Sampler, Samples
from sciml.targets import Target, as_target
from sciml.validation import check_bool, check_generator, check_positive, check_positive_int

__all__ = ["CountedTarget", "DiffusionSamplerBase", "check_probability", "check_choice", "logmeanexp"]


class CountedTarget:
    """A :class:`~sciml.targets.Target` with per-point evaluation counters.

    Every call adds the number of points evaluated: :meth:`log_prob` to ``n_evals``;
    :meth:`grad` and :meth:`log_prob_and_grad` to both ``n_evals`` and ``n_grad_evals`` (an
    autograd gradient evaluates the energy on the way). Gradients are ``grad log pi = -grad V``.
    Non-finite inputs (diverged chains) are evaluated too: their outputs are non-finite and
    stay so, which is how divergence is detected.
    """

    def __init__(self, target: Target) -> None:
        self.target = target
        self.dim = target.dim
        self.dtype = target.dtype
        self.device = target.device
        self.n_evals = 0
        self.n_grad_evals = 0

    def log_prob(self, x: Tensor) -> Tensor:
        """Log-density at ``x`` ``(n, dim) -> (n,)``; counts ``n`` energy evaluations."""
        self.n_evals += int(x.shape[0])
        bad = ~torch.isfinite(x).all(-1)
        safe = torch.where(bad.unsqueeze(-1), torch.zeros_like(x), x)
        try:
            with torch.no_grad():
                lp = self.target.log_prob(safe)
        except (ValueError, RuntimeError):
            lp = self._rowwise(safe)[0]
        return torch.where(bad, torch.full_like(lp, float("nan")), lp)

    def log_prob_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(log pi(x), grad log pi(x))``; counts ``n`` energy and ``n`` gradient evaluations.

        Rows of ``x`` that are not finite (diverged chains) are not passed to the target (a
        distribution validating its argument would raise); their outputs are NaN.
        """
        n = int(x.shape[0])
        self.n_evals += n
        self.n_grad_evals += n
        bad = ~torch.isfinite(x).all(-1)
        safe = torch.where(bad.unsqueeze(-1), torch.zeros_like(x), x) if bool(bad.any()) else x
        try:
            lp, g = self.target.log_prob_and_grad(safe)
        except (ValueError, RuntimeError):
            # a point outside the target's domain (e.g. a pyro distribution validating a parameter):
            # evaluate row by row; rows that fail become NaN, i.e. diverged chains
            lp, g = self._rowwise(safe)
        if bool(bad.any()):
            nan = float("nan")
            lp = torch.where(bad, torch.full_like(lp, nan), lp)
            g = torch.where(bad.unsqueeze(-1), torch.full_like(g, nan), g)
        return lp, g

    def _rowwise(self, x: Tensor) -> tuple[Tensor, Tensor]:
        lps, gs = [], []
        for row in x:
            try:
                lp, g = self.target.log_prob_and_grad(row.unsqueeze(0))
            except (ValueError, RuntimeError):
                lp = torch.full((1,), float("nan"), dtype=x.dtype, device=x.device)
                g = torch.full((1, x.shape[-1]), float("nan"), dtype=x.dtype, device=x.device)
            lps.append(lp.reshape(1))
            gs.append(g.reshape(1, -1))
        return torch.cat(lps), torch.cat(gs)

    def grad(self, x: Tensor) -> Tensor:
        """``grad log pi(x)`` ``(n, dim) -> (n, dim)``."""
        return self.log_prob_and_grad(x)[1]


def check_probability(name: str, value: object, *, open_low: bool = True, open_high: bool = True) -> float:
    """Return ``value`` as a float in (0, 1) (ends allowed when not ``open_*``), else raise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    v = float(value)
    low_ok = v > 0 if open_low else v >= 0
    high_ok = v < 1 if open_high else v <= 1
    if not (math.isfinite(v) and low_ok and high_ok):
        lo, hi = ("(" if open_low else "["), (")" if open_high else "]")
        raise ValueError(f"{name} must lie in {lo}0, 1{hi}, got {value}")
    return v


def check_choice(name: str, value: object, choices: tuple[str, ...]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise ``ValueError`` / ``TypeError``."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, one of {choices}, got {type(value).__name__}")
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def logmeanexp(a: Tensor) -> float:
    """``log(mean(exp(a)))`` over the finite entries of a 1-D tensor, computed stably."""
    a = a[torch.isfinite(a)]
    if a.numel() == 0:
        return float("nan")
    return float(torch.logsumexp(a, 0) - math.log(a.numel()))


class DiffusionSamplerBase(Sampler):
    """Common ``sample`` driver: validation, target wrapping, initialisation, bookkeeping.

    Subclasses implement ``_run(target, x0, generator, bar) -> (x, extras)`` where ``target`` is
    a :class:`CountedTarget`, ``x0`` the ``(n, dim)`` initial states drawn from
    ``N(0, init_std^2 I)`` (or the user's ``init``), and ``extras`` a dict of optional
    :class:`~sciml.Samples` fields (``log_weights``, ``log_z``, ``diagnostics``).
    """

    def __init__(self, *, init_std: float = 1.0, progress: bool = True) -> None:
        self.init_std = check_positive("init_std", init_std)
        self.progress = check_bool("progress", progress)

    # subclasses -----------------------------------------------------------------------------
    @abc.abstractmethod
    def _num_iterations(self) -> int:
        """Length of the progress bar (slow steps, temperatures, ...)."""

    @abc.abstractmethod
    def _run(self, target: CountedTarget, x0: Tensor, generator: torch.Generator | None,
             bar: Any) -> tuple[Tensor, dict[str, Any]]:
        """Run the chains from ``x0`` and return the final states and the extra Samples fields."""

    # driver ----------------------------------------------------------------------------------
    def sample(self, target: Any, num_samples: int, *, generator: torch.Generator | None = None,
               init: Tensor | None = None) -> Samples:
        """Draw ``num_samples`` points from ``target``.

        Args:
            target: a :mod:`sciml.targets` target, a torch / pyro ``Distribution`` with event
                shape ``(dim,)``, or any object with ``log_prob`` and ``dim``.
            num_samples: number of chains / particles (= returned draws), an int >= 1.
            generator: source of randomness (on the target's device); equal seeds give equal draws.
            init: optional initial states ``(num_samples, dim)``; default ``N(0, init_std^2 I)``.

        Returns:
            :class:`~sciml.Samples` with ``x`` ``(num_samples, dim)`` in the target's dtype and on
            its device, per-point ``n_evals`` / ``n_grad_evals`` and the ``diverged`` mask.

        Raises:
            ValueError: non-positive ``num_samples``; ``init`` of the wrong shape; a target whose
                ``log_prob`` returns the wrong shape or non-finite values at the start.
            TypeError: ``generator`` not a ``torch.Generator``; ``target`` not usable.
        """
        num_samples = check_positive_int("num_samples", num_samples)
        check_generator("generator", generator)
        tgt = as_target(target)
        counted = CountedTarget(tgt)
        if init is None:
            x0 = self.init_std * torch.randn(num_samples, tgt.dim, dtype=tgt.dtype, device=tgt.device,
                                             generator=generator)
        else:
            if not isinstance(init, Tensor):
                raise TypeError(f"init must be a torch.Tensor, got {type(init).__name__}")
            if tuple(init.shape) != (num_samples, tgt.dim):
                raise ValueError(f"init must have shape (num_samples, dim) = {(num_samples, tgt.dim)}, "
                                 f"got {tuple(init.shape)}")
            x0 = init.to(dtype=tgt.dtype, device=tgt.device)
        self._check_start(tgt, x0)
        with tqdm(total=self._num_iterations(), disable=not self.progress, desc=self.name,
                  leave=False) as bar:
            x, extras = self._run(counted, x0, generator, bar)
        diverged = ~torch.isfinite(x).all(dim=-1)
        diagnostics = dict(extras.pop("diagnostics", {}))
        diagnostics["n_diverged"] = int(diverged.sum())
        diagnostics["evals_per_chain"] = counted.n_evals / num_samples
        diagnostics["grad_evals_per_chain"] = counted.n_grad_evals / num_samples
        return Samples(x=x.detach(), n_evals=int(counted.n_evals), n_grad_evals=int(counted.n_grad_evals),
                       diverged=diverged, diagnostics=diagnostics, **extras)

    @staticmethod
    def _check_start(tgt: Target, x0: Tensor) -> None:
        """Evaluate the target on the first few starting points: shape and finiteness."""
        probe = x0[: min(8, x0.shape[0])]
        name = f"target.log_prob ({type(getattr(tgt, 'obj', getattr(tgt, 'dist', tgt))).__name__})"
        try:
            with torch.no_grad():
                lp = tgt.log_prob(probe)
        except (RuntimeError, IndexError) as exc:  # e.g. a dimension mismatch inside the target
            raise ValueError(f"{name} failed on inputs of shape {tuple(probe.shape)} "
                             f"(dimension mismatch?): {exc}") from exc
        if not isinstance(lp, Tensor) or tuple(lp.shape) != (probe.shape[0],):
            got = tuple(lp.shape) if isinstance(lp, Tensor) else type(lp).__name__
            raise ValueError(f"{name} must return shape (n,) = ({probe.shape[0]},) for inputs "
                             f"(n, dim) = {tuple(probe.shape)}, got {got}")
        if not bool(torch.isfinite(lp).all()):
            raise ValueError(f"{name} is not finite at the starting points (NaN or inf); "
                             "check the target or pass a finite `init`")


def randn_like(x: Tensor, generator: torch.Generator | None) -> Tensor:
    """Standard normal draws with the shape, dtype and device of ``x``."""
    return torch.randn(x.shape, dtype=x.dtype, device=x.device, generator=generator)


__all__ += ["randn_like"]


def sample_target_sir(target: CountedTarget, x: Tensor, proposal_scale: float, num_candidates: int,
                      generator: torch.Generator | None) -> tuple[Tensor, float]:
    """Approximate draws of ``pi`` by pooled sampling importance resampling (SIR), one per chain.

    The fast state of MultALMC / MultCDiff has to start from the conditional law of the clean
    variable given the slow state; its modes are those of ``pi`` and the fast Langevin dynamics
    cannot move mass between separated modes, so the mode weights the fast states start with are
    the ones the sampler returns: they must come from ``pi``, not from the basins of attraction of
    an arbitrary start. A pool of ``n * num_candidates`` points is drawn from the Gaussian
    ``N(c m, (c^2 s^2 + c^2 - 1) I)`` (``m``, ``s^2``: mean and mean per-coordinate variance of the
    ``n`` starting points ``x``, ``c = proposal_scale``), weighted by ``pi / N(...)`` and ``n``
    points are resampled (systematic resampling: each pool point is picked ``floor(n W_i)`` or
    ``ceil(n W_i)`` times, so the mode weights carry no multinomial noise beyond the pool's own).
    Costs ``num_candidates`` log-density evaluations per chain.
    Like any importance sampler from a Gaussian it degrades with the dimension (the weights
    degenerate); the effective sample size is returned in ``ess``.

    Args:
        target: the counted target.
        x: ``(n, dim)`` starting points (they set the proposal's centre and spread).
        proposal_scale: ``c >= 1``.
        num_candidates: pool points per chain (>= 1).
        generator: source of randomness.

    Returns:
        ``(u, ess)``: ``(n, dim)`` draws in target units and the pool's effective sample size.
    """
    n, d = x.shape
    c = proposal_scale
    centre = c * x.mean(0)
    spread = c * float(x.var(0).mean()) ** 0.5 if n > 1 else 0.0
    std = math.sqrt(spread * spread + c * c - 1.0) if c > 1.0 else max(spread, 1.0)
    z = torch.randn((n * num_candidates, d), dtype=x.dtype, device=x.device, generator=generator)
    u = centre + std * z
    logw = target.log_prob(u) + 0.5 * (z * z).sum(-1)
    logw = torch.where(torch.isfinite(logw), logw, torch.full_like(logw, -float("inf")))
    w = torch.exp(logw - logw.max())
    ess = float(w.sum() ** 2 / (w * w).sum())
    return u[systematic_resample(logw, generator, n)], ess


def systematic_resample(log_w: Tensor, generator: torch.Generator | None, n: int | None = None) -> Tensor:
    """``n`` indices (default ``len(log_w)``) drawn by systematic resampling from log-weights ``(N,)``.

    One uniform offset ``u ~ U(0, 1/n)`` and the points ``u + k/n``, ``k = 0..n-1``, pushed through
    the inverse CDF of the normalised weights: index ``i`` appears ``floor(n W_i)`` or
    ``ceil(n W_i)`` times (unbiased, far less variance than multinomial draws). ``-inf`` weights are
    never picked.
    """
    n = log_w.shape[0] if n is None else n
    w = torch.softmax(log_w, 0)
    cdf = torch.cumsum(w, 0)
    cdf[-1] = 1.0
    offset = 1.0 - torch.rand(1, dtype=w.dtype, device=w.device, generator=generator)  # in (0, 1]
    u = (offset + torch.arange(n, dtype=w.dtype, device=w.device)) / n
    return torch.searchsorted(cdf, u).clamp_(max=log_w.shape[0] - 1)


__all__ += ["sample_target_sir", "systematic_resample"]
