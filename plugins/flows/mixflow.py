"""``mixflow``: the Hamiltonian MixFlow (Xu, Chen and Campbell 2023) on torch.

The flow lives on the augmented space ``s = (x, rho, u)`` (``x, rho`` in ``R^d``, ``u`` in ``[0, 1)``)
with target ``pi(x) m(rho) 1[0 <= u < 1]``, ``m`` the standard Laplace density. One map
``T = refresh o leapfrog^L`` preserves that target:

* leapfrog with kinetic energy ``|rho|_1`` (so ``x += eps * sign(rho)``), per-coordinate steps
  ``eps``; volume preserving;
* the deterministic refresh, coordinate ``i`` with ``u_i = (u + i delta) mod 1``:
  ``rho_i <- F^-1((F(rho_i) + zeta(x_i, u_i)) mod 1)``, ``zeta(x, u) = (sin(2x + u) + 1) / 2``, then
  ``u <- (u + d delta) mod 1``, ``delta = pi / 16``; ``log|det| = sum_i |rho_i'| - |rho_i|``.

``q_N = (1/N) sum_{n<N} (T^n)_# q0`` with ``q0`` a mean-field Gaussian in ``x`` (fitted by reverse KL)
times ``m(rho)`` times ``Unif(u)``: exact draws (``T^n`` of a ``q0`` draw, ``n`` uniform), the exact
augmented density anywhere from ``N - 1`` inverse steps, the density of ``x`` by integrating ``(rho, u)``
out over a scrambled Sobol set, and the unbiased ELBO from one forward and one backward orbit of length
``N`` (the sliding-window log-sum-exp). Everything is in the target's dtype (float64 by default).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from typing import Any, ClassVar

import torch
from torch import Tensor

from sciml.interfaces import Samples
from sciml.targets import CountedTarget, Target, TargetError, as_target
from sciml.validation import check_generator, check_positive, check_positive_int, check_tensor

from .base import (
    FlowDistribution,
    FlowSampler,
    NonFiniteTargetError,
    check_finite_target,
    fit_reverse_kl,
    flat_points,
)
from .layered import LayeredFlow

__all__ = ["MixFlow", "MixFlowDistribution", "HamiltonianMap", "AugmentedTarget"]

_DELTA = math.pi / 16
_LOG_HALF = -math.log(2.0)


def laplace_cdf(r: Tensor) -> Tensor:
    """Standard Laplace CDF: relative accuracy on the left tail, absolute (``1 - p`` to ~1e-16) on the right."""
    return torch.where(r < 0, 0.5 * torch.exp(torch.clamp(r, max=0.0)), 1.0 - 0.5 * torch.exp(-torch.clamp(r, min=0.0)))


def laplace_icdf(p: Tensor) -> Tensor:
    """Inverse of :func:`laplace_cdf` on ``(0, 1)``."""
    return torch.where(p < 0.5, torch.log(2.0 * torch.clamp(p, max=0.5)), -torch.log(2.0 - 2.0 * torch.clamp(p, min=0.5)))


def _open_unit(p: Tensor) -> Tensor:
    """``p`` moved into the open interval ``(0, 1)`` of its dtype (uniform draws can be exactly 0)."""
    info = torch.finfo(p.dtype)
    return torch.clamp(p, info.tiny, 1.0 - info.eps / 2)


def laplace_log_prob(r: Tensor) -> Tensor:
    """``sum_i log m(r_i)`` over the last dimension."""
    return (_LOG_HALF - r.abs()).sum(-1)


class AugmentedTarget(Target):
    """``pi(x) m(rho) 1[0 <= u < 1]`` on ``R^(2d+1)`` (``s = (x, rho, u)``); same ``log Z`` as ``pi``."""

    def __init__(self, target: Target) -> None:
        self.base = target
        super().__init__(2 * target.dim + 1, dtype=target.dtype, device=target.device, log_z=target.log_z)

    def split(self, s: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(x, rho, u)`` of states ``(..., 2d+1)``."""
        d = self.base.dim
        return s[..., :d], s[..., d:2 * d], s[..., 2 * d]

    def log_prob(self, s: Tensor) -> Tensor:  # noqa: D102
        x, rho, u = self.split(s)
        inside = (u >= 0) & (u < 1)
        lp = self.base.log_prob(x) + laplace_log_prob(rho)
        return torch.where(inside, lp, torch.full_like(lp, -math.inf))


class HamiltonianMap:
    """``T`` and ``T^-1`` on batches of states ``(x, rho, u, log pi(x), grad log pi(x))``.

    ``eps`` ``(d,)`` are the leapfrog steps, ``num_leapfrog`` the steps per map; every leapfrog step
    costs one counted gradient evaluation per state.
    """

    def __init__(self, target: CountedTarget, eps: Tensor, num_leapfrog: int) -> None:
        self.target, self.eps, self.num_leapfrog = target, eps, num_leapfrog
        self.shifts = torch.arange(eps.shape[0], dtype=eps.dtype, device=eps.device) * _DELTA

    def evaluate(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(log pi(x), grad log pi(x))``, checked finite."""
        lp, g = self.target.log_prob_and_grad(x)
        check_finite_target("mixflow", self.target.steps_done, x, lp + g.sum(-1),
                            "target log-density or its gradient")
        return lp, g

    def _leapfrog(self, x: Tensor, rho: Tensor, lp: Tensor, g: Tensor, sign: float) -> tuple[Tensor, ...]:
        eps = sign * self.eps
        for _ in range(self.num_leapfrog):
            rho = rho + 0.5 * eps * g
            x = x + eps * torch.sign(rho)
            lp, g = self.evaluate(x)
            rho = rho + 0.5 * eps * g
        return x, rho, lp, g

    def _zeta(self, x: Tensor, u: Tensor) -> Tensor:
        ui = torch.remainder(u[:, None] + self.shifts, 1.0)
        return 0.5 * (torch.sin(2.0 * x + ui) + 1.0)

    def forward(self, x: Tensor, rho: Tensor, u: Tensor, lp: Tensor, g: Tensor) -> tuple[tuple[Tensor, ...], Tensor]:
        """``(T(state), log|det J_T(state)|)``."""
        x, mid, lp, g = self._leapfrog(x, rho, lp, g, 1.0)
        rho = laplace_icdf(torch.remainder(laplace_cdf(mid) + self._zeta(x, u), 1.0))
        u = torch.remainder(u + x.shape[-1] * _DELTA, 1.0)
        return (x, rho, u, lp, g), (rho.abs() - mid.abs()).sum(-1)

    def inverse(self, x: Tensor, rho: Tensor, u: Tensor, lp: Tensor, g: Tensor) -> tuple[tuple[Tensor, ...], Tensor]:
        """``(T^-1(state), log|det J_{T^-1}(state)|)``."""
        u = torch.remainder(u - x.shape[-1] * _DELTA, 1.0)
        mid = laplace_icdf(torch.remainder(laplace_cdf(rho) - self._zeta(x, u), 1.0))
        log_det = (mid.abs() - rho.abs()).sum(-1)
        x, mid, lp, g = self._leapfrog(x, mid, lp, g, -1.0)
        return (x, mid, u, lp, g), log_det


@contextlib.contextmanager
def _at_query_points() -> Iterator[None]:
    """A target value that is not finite on the orbit of a query point: an error about the query."""
    try:
        yield
    except NonFiniteTargetError as exc:  # other target failures keep their type and cause
        raise ValueError("mixflow: log q_N is not available at these points: the inverse maps from them reach a "
                         "point where the target's log-density or gradient is not finite, and the maps need both "
                         f"(the first such point: {exc.point})") from exc


class MixFlowDistribution(FlowDistribution):
    """A fitted MixFlow ``q_N``: a distribution on ``R^d`` (``x``) with the exact density on the augmented space.

    ``sample((n,))`` -> ``x`` ``(n, d)``; ``sample_augmented((n,))`` -> states ``(n, 2d + 1)``;
    ``log_prob_augmented(s)`` is exact; ``log_prob(x)`` is the log of the density of ``x`` with the
    momentum and ``u`` integrated out by ``num_momenta`` scrambled Sobol points (an unbiased estimate
    of the density, deterministic, consistent as ``num_momenta`` grows); ``elbo(num_orbits)`` is the
    unbiased orbit estimator on the augmented space (nats, ``<= log Z`` of the target).
    """

    has_rsample = False

    def __init__(self, target: Target, q0: LayeredFlow, eps: Tensor, num_leapfrog: int, num_maps: int,
                 name: str = "mixflow", num_momenta: int = 256) -> None:
        self.q0, self.num_maps = q0, check_positive_int("num_maps", num_maps)
        self.num_momenta = check_positive_int("num_momenta", num_momenta)
        eps = check_tensor("eps", eps, shape=(target.dim,))
        if not bool((eps > 0).all()):
            raise ValueError(f"eps (the leapfrog steps) must be > 0, got {eps.tolist()}")
        num_leapfrog = check_positive_int("num_leapfrog", num_leapfrog)
        self.augmented = AugmentedTarget(target)
        self.counted = CountedTarget(target, name, 0, 0, attribute=False)
        self.map = HamiltonianMap(self.counted, eps, num_leapfrog)
        super().__init__(target, name)

    # ---------------------------------------------------------------- the reference q0
    def _q0_sample(self, n: int, generator: torch.Generator | None) -> tuple[Tensor, ...]:
        t = self.target
        dev = t.device if generator is None else generator.device
        with torch.no_grad():
            x, _ = self.q0.rsample_and_log_prob(n, generator)
        rho = laplace_icdf(_open_unit(torch.rand(n, t.dim, dtype=t.dtype, device=dev, generator=generator).to(t.device)))
        u = torch.rand(n, dtype=t.dtype, device=dev, generator=generator).to(t.device)
        lp, g = self.map.evaluate(x)
        return x, rho, u, lp, g

    def _q0_log_prob(self, x: Tensor, rho: Tensor, u: Tensor) -> Tensor:
        """``log q0`` at states whose ``u`` lies in ``[0, 1)`` (the maps keep it there)."""
        with torch.no_grad():
            return self.q0._base_log_prob(x) + laplace_log_prob(rho)

    # ---------------------------------------------------------------- draws
    def sample(self, sample_shape: torch.Size | tuple[int, ...] = (), *,
               generator: torch.Generator | None = None) -> Tensor:
        """i.i.d. draws of ``x``, shape ``sample_shape + (d,)``."""
        return self.sample_augmented(sample_shape, generator=generator)[..., :self.target.dim]

    def sample_augmented(self, sample_shape: torch.Size | tuple[int, ...] = (), *,
                         generator: torch.Generator | None = None) -> Tensor:
        """i.i.d. augmented states ``(x, rho, u)``, shape ``sample_shape + (2d + 1,)``."""
        check_generator("generator", generator)
        shape, n = self._count(sample_shape)
        with torch.no_grad():
            s = self.draw(max(n, 1), generator)
        return s[:n].reshape(*shape, self.augmented.dim)

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = (), *,
                generator: torch.Generator | None = None) -> Tensor:
        """Not available: a MixFlow's draws are not reparameterised (use :meth:`sample`)."""
        raise NotImplementedError("mixflow draws are not reparameterised; use sample()")

    def _sample_and_log_prob(self, n: int, generator: torch.Generator | None, reparam: bool) -> tuple[Tensor, Tensor]:
        x = self.draw(n, generator)[:, :self.target.dim]
        return x, self._log_prob(x)

    def draw(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` i.i.d. augmented states ``(n, 2d + 1)``: ``T^k`` of a ``q0`` draw, ``k`` uniform below ``N``."""
        k = torch.randint(0, self.num_maps, (n,), generator=generator,
                          device="cpu" if generator is None else generator.device).to(self.target.device)
        state = list(self._q0_sample(n, generator))
        for step in range(int(k.max()) if n else 0):
            idx = (k > step).nonzero().squeeze(-1)
            self.counted.steps_done = step
            moved, _ = self.map.forward(*(v[idx] for v in state))
            for v, m in zip(state, moved):
                v[idx] = m
        return torch.cat([state[0], state[1], state[2][:, None]], -1)

    # ---------------------------------------------------------------- densities
    def log_prob_augmented(self, value: Tensor) -> Tensor:
        """Exact ``log q_N(s)`` for states ``(..., 2d + 1)`` -> ``(...)`` (``N - 1`` inverse maps each)."""
        flat = flat_points(value, self.augmented)
        with torch.no_grad(), _at_query_points():
            return self._augmented_log_prob(flat).reshape(value.shape[:-1])

    def _augmented_log_prob(self, s: Tensor) -> Tensor:
        x, rho, u = self.augmented.split(s)
        inside = (u >= 0) & (u < 1)  # the maps wrap u into [0, 1): the support is checked here, once
        lp, g = self.map.evaluate(x)
        state = (x, rho, u, lp, g)
        terms = [self._q0_log_prob(x, rho, u)]
        log_det = torch.zeros_like(lp)
        for _ in range(self.num_maps - 1):
            state, step_det = self.map.inverse(*state)
            log_det = log_det + step_det
            terms.append(self._q0_log_prob(*state[:3]) + log_det)
        lq = torch.logsumexp(torch.stack(terms, -1), -1) - math.log(self.num_maps)
        return torch.where(inside, lq, torch.full_like(lq, -math.inf))

    def marginal_log_prob(self, x: Tensor, num_momenta: int | None = None, *, seed: int = 0) -> Tensor:
        """``log (1/M) sum_m q_N(x, rho_m, u_m) / m(rho_m)`` for ``x`` ``(n, d)``, ``(rho_m, u_m)`` the
        ``M = num_momenta`` (``None``: the distribution's) points of a Sobol sequence scrambled by ``seed``
        mapped through the Laplace quantile; ``M (N - 1) L`` gradient evaluations per point."""
        flat = flat_points(x, self.target)
        m = self.num_momenta if num_momenta is None else check_positive_int("num_momenta", num_momenta)
        d, t = self.target.dim, self.target
        v = torch.quasirandom.SobolEngine(d + 1, scramble=True, seed=seed).draw(m, dtype=torch.float64)
        v = _open_unit(v.to(dtype=t.dtype, device=t.device))
        rho, u = laplace_icdf(v[:, :d]), v[:, d]
        block = max(1, 2**18 // m)
        out = []
        with torch.no_grad(), _at_query_points():
            for xb in flat.split(block):
                s = torch.cat([xb[:, None, :].expand(-1, m, d), rho.expand(xb.shape[0], m, d),
                               u.expand(xb.shape[0], m)[..., None]], -1).reshape(-1, 2 * d + 1)
                terms = (self._augmented_log_prob(s) - laplace_log_prob(s[:, d:2 * d])).reshape(-1, m)
                out.append(torch.logsumexp(terms, -1) - math.log(m))
        return torch.cat(out).reshape(x.shape[:-1])

    def _log_prob(self, x: Tensor) -> Tensor:
        return self.marginal_log_prob(x)

    def orbit(self, num_orbits: int, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """One forward and one backward orbit of length ``N`` from each of ``num_orbits`` ``q0`` draws.

        Returns ``states`` ``(num_orbits, N, 2d+1)`` (``T^n s_0``), ``log_q`` ``(num_orbits, N)``
        (``log q_N`` at each, by the sliding-window log-sum-exp) and ``log_p`` (augmented target).
        """
        n_maps = self.num_maps
        state = self._q0_sample(check_positive_int("num_orbits", num_orbits), generator)
        c = torch.zeros_like(state[3])  # log|det| of T^n at s_0
        fwd, a_fwd, cs = [state], [self._q0_log_prob(*state[:3])], [c]
        for _ in range(n_maps - 1):
            state, det = self.map.forward(*state)
            c = c + det
            fwd.append(state)
            cs.append(c)
            a_fwd.append(self._q0_log_prob(*state[:3]) + c)
        c_n = torch.stack(cs, -1)
        state, c, a_bwd = fwd[0], torch.zeros_like(c), []
        for _ in range(n_maps - 1):
            state, det = self.map.inverse(*state)
            c = c + det
            a_bwd.append(self._q0_log_prob(*state[:3]) + c)
        a_pos = torch.stack(a_fwd, -1)  # j = 0 .. N-1
        inf = torch.full_like(a_pos[:, :1], -math.inf)
        # a_neg[:, m] is j = m - N + 1 (m = 0 .. N-2); the window of n is j in [n - N + 1, n]
        a_neg = torch.stack(a_bwd[::-1], -1) if a_bwd else inf[:, :0]
        suffix = torch.cat([torch.logcumsumexp(a_neg.flip(-1), -1).flip(-1), inf], -1)
        log_q = torch.logaddexp(suffix, torch.logcumsumexp(a_pos, -1)) - c_n - math.log(n_maps)
        states = torch.stack([torch.cat([st[0], st[1], st[2][:, None]], -1) for st in fwd], 1)
        log_p = torch.stack([st[3] + laplace_log_prob(st[1]) for st in fwd], -1)
        return {"states": states, "log_q": log_q, "log_p": log_p}

    def round_trip_error(self, num_orbits: int, *, generator: torch.Generator | None = None) -> Tensor:
        """``max_i |s_i - (T^-(N-1) T^(N-1) s)_i|`` ``(num_orbits,)`` from ``q0`` draws ``s``: the
        floating-point error of the orbits that densities and ELBOs rest on (round-off when usable)."""
        num_orbits = check_positive_int("num_orbits", num_orbits)
        check_generator("generator", generator)
        with torch.no_grad():
            start = self._q0_sample(num_orbits, generator)
            state = start
            for _ in range(self.num_maps - 1):
                state, _ = self.map.forward(*state)
            for _ in range(self.num_maps - 1):
                state, _ = self.map.inverse(*state)
        err = torch.cat([(a - b).abs().reshape(num_orbits, -1) for a, b in zip(start[:3], state[:3])], -1)
        return err.max(-1).values

    def elbo(self, num_samples: int = 16, *, generator: torch.Generator | None = None) -> float:
        """Unbiased ELBO from ``num_samples`` orbits (each ``2 (N - 1) L`` gradient evaluations)."""
        return float(self.orbit_elbos(num_samples, generator=generator).mean())

    def orbit_elbos(self, num_orbits: int, *, generator: torch.Generator | None = None) -> Tensor:
        """One unbiased ELBO estimate per orbit ``(num_orbits,)``: the orbit's mean of ``log p - log q_N``."""
        num_orbits = check_positive_int("num_orbits", num_orbits)
        check_generator("generator", generator)
        with torch.no_grad():
            o = self.orbit(num_orbits, generator)
        return (o["log_p"] - o["log_q"]).mean(-1)


class MixFlow(FlowSampler):
    """Hamiltonian MixFlow: ``MixFlow(num_maps=500).fit(target)`` -> :class:`MixFlowDistribution`.

    ``q0``: a mean-field Gaussian fitted by reverse KL (``ref_steps`` Adam steps, batch 256, lr 1e-2,
    annealed over the first half). Leapfrog steps ``eps = step_size * scale(q0)`` per coordinate;
    ``step_size`` and ``num_leapfrog`` left ``None`` are tuned by the orbit ELBO over ``step_grid`` x
    ``leapfrog_grid`` (``tune_orbits`` orbits of ``tune_maps`` maps, ``None``: ``num_maps``, or 500 when
    ``num_maps`` is tuned; the same ``q0`` draws for every setting). ``num_maps=None`` then tunes ``N``
    over ``maps_grid``: the smallest ``N`` whose ELBO is within one standard error of the best (draws
    cost ``N L / 2`` gradient evaluations each, so the cheaper of equally good ``N``).
    ``num_momenta``: the Sobol points of the fitted flow's ``log_prob(x)``. The leapfrog does not
    preserve the target exactly, so a step that is too large makes the ELBO fall as ``N`` grows: tune at
    the ``N`` used.
    """

    name: ClassVar[str] = "mixflow"

    def __init__(self, num_maps: int | None = 500, *, step_size: float | None = None,
                 num_leapfrog: int | None = None, ref_steps: int = 2000, tune_orbits: int = 32,
                 tune_maps: int | None = None,
                 step_grid: tuple[float, ...] = (0.0025, 0.005, 0.01, 0.02, 0.04),
                 leapfrog_grid: tuple[int, ...] = (10, 25, 50), maps_grid: tuple[int, ...] = (50, 100, 200, 500, 1000),
                 num_momenta: int = 256, progress: bool | None = None) -> None:
        self.num_maps = None if num_maps is None else check_positive_int("num_maps", num_maps)
        self.num_momenta = check_positive_int("num_momenta", num_momenta)
        self.step_size = None if step_size is None else check_positive("step_size", step_size)
        self.num_leapfrog = None if num_leapfrog is None else check_positive_int("num_leapfrog", num_leapfrog)
        self.ref_steps = check_positive_int("ref_steps", ref_steps)
        self.tune_orbits = check_positive_int("tune_orbits", tune_orbits)
        default_tune = 500 if num_maps is None else self.num_maps
        self.tune_maps = default_tune if tune_maps is None else check_positive_int("tune_maps", tune_maps)
        if not step_grid or not leapfrog_grid or not maps_grid:
            raise ValueError("step_grid, leapfrog_grid and maps_grid must not be empty")
        self.step_grid = tuple(check_positive("step_grid", h) for h in step_grid)
        self.leapfrog_grid = tuple(check_positive_int("leapfrog_grid", n) for n in leapfrog_grid)
        self.maps_grid = tuple(sorted(check_positive_int("maps_grid", n) for n in maps_grid))
        self.progress = progress

    def fit(self, target: Any, *, generator: torch.Generator | None = None) -> MixFlowDistribution:
        """Fit ``q0``, tune the leapfrog (and ``N`` if ``num_maps=None``) by the ELBO, return ``q_N``;
        ``diagnostics``: ``elbo_grid`` (``{(step_size, num_leapfrog): elbo}``), ``maps_elbo``
        (``{N: (elbo, standard error)}`` when ``N`` was tuned), ``step_size``, ``num_leapfrog``,
        ``num_maps``, ``n_evals``, ``n_grad_evals`` (fit and tuning), ``wall_time_s``."""
        check_generator("generator", generator)
        tgt = as_target(target)
        start = time.perf_counter()
        q0 = LayeredFlow(tgt.dim, [], dtype=tgt.dtype, device=tgt.device)
        counted = CountedTarget(tgt, self.name, 0, self.ref_steps, attribute=False)
        fit_reverse_kl(q0, counted, num_steps=self.ref_steps, batch_size=256, lr=1e-2,
                       anneal_steps=self.ref_steps // 2, generator=generator, progress=self.progress, name=self.name)
        scale = torch.exp(q0.log_scale.detach())
        # common random numbers: every setting is scored on the same q0 draws
        seed = int(torch.randint(0, 2**62, (1,), generator=generator,
                                 device="cpu" if generator is None else generator.device))
        scores = _Scores(tgt, q0, scale, self.tune_orbits, seed, generator, [counted.n_evals, counted.n_grad_evals])
        steps = self.step_grid if self.step_size is None else (self.step_size,)
        leaps = self.leapfrog_grid if self.num_leapfrog is None else (self.num_leapfrog,)
        grid: dict[tuple[float, int], float] = {}
        if len(steps) * len(leaps) > 1:
            grid = {(h, n_leap): scores.mean(h, n_leap, self.tune_maps) for h in steps for n_leap in leaps}
            h, n_leap = self._best(grid, "leapfrog setting of the tuning grid", "step_size / num_leapfrog or a smaller step_grid")
        else:
            h, n_leap = steps[0], leaps[0]
        maps_elbo: dict[int, tuple[float, float]] = {}
        n_maps = self.num_maps
        if n_maps is None:
            maps_elbo = {n: scores.mean_and_se(h, n_leap, n) for n in self.maps_grid}
            best = self._best({n: v[0] for n, v in maps_elbo.items()}, "number of maps of maps_grid", "num_maps")
            n_maps = min(n for n, (v, _) in maps_elbo.items() if v >= maps_elbo[best][0] - maps_elbo[best][1])
        q = MixFlowDistribution(tgt, q0, h * scale, n_leap, n_maps, num_momenta=self.num_momenta)
        q.diagnostics.update(elbo_grid=grid, maps_elbo=maps_elbo, step_size=h, num_leapfrog=n_leap, num_maps=n_maps,
                             n_evals=scores.evals[0], n_grad_evals=scores.evals[1],
                             wall_time_s=time.perf_counter() - start)
        return q

    def _best(self, scores: dict[Any, float], what: str, remedy: str) -> Any:
        finite = {key: v for key, v in scores.items() if math.isfinite(v)}
        if not finite:
            raise TargetError(f"{self.name}: every {what} met a non-finite target value; give {remedy}",
                              sampler=self.name, step=0, chains=None)
        return max(finite, key=finite.__getitem__)

    def sample(self, target: Any, num_samples: int, *, generator: torch.Generator | None = None) -> Samples:
        """Fit, then draw ``num_samples`` i.i.d. ``x`` ``(num_samples, d)``; the counts include the draws'
        leapfrog steps (``diagnostics["n_grad_evals_sampling"]``)."""
        num_samples = check_positive_int("num_samples", num_samples)
        q = self.fit(target, generator=generator)
        x = q.sample((num_samples,), generator=generator)
        diag = dict(q.diagnostics, n_grad_evals_sampling=q.counted.n_grad_evals)
        return Samples(x=x, n_evals=int(diag["n_evals"]) + q.counted.n_evals,
                       n_grad_evals=int(diag["n_grad_evals"]) + q.counted.n_grad_evals, diagnostics=diag)

    def __repr__(self) -> str:
        return (f"MixFlow(num_maps={self.num_maps}, step_size={self.step_size}, num_leapfrog={self.num_leapfrog}, "
                f"ref_steps={self.ref_steps})")


class _Scores:
    """Orbit ELBOs of trial flows on one set of ``q0`` draws (the seed), their evaluations counted in ``evals``."""

    def __init__(self, target: Target, q0: LayeredFlow, scale: Tensor, num_orbits: int, seed: int,
                 generator: torch.Generator | None, evals: list[int]) -> None:
        self.target, self.q0, self.scale, self.num_orbits, self.seed = target, q0, scale, num_orbits, seed
        self.device = target.device if generator is None else generator.device
        self.evals = evals

    def terms(self, h: float, n_leap: int, n_maps: int) -> Tensor | None:
        """Per-orbit ELBOs, or ``None`` when the leapfrog met a non-finite target value."""
        trial = MixFlowDistribution(self.target, self.q0, h * self.scale, n_leap, n_maps)
        try:
            return trial.orbit_elbos(self.num_orbits, generator=torch.Generator(self.device).manual_seed(self.seed))
        except TargetError:
            return None
        finally:
            self.evals[0] += trial.counted.n_evals
            self.evals[1] += trial.counted.n_grad_evals

    def mean(self, h: float, n_leap: int, n_maps: int) -> float:
        t = self.terms(h, n_leap, n_maps)
        return -math.inf if t is None else float(t.mean())

    def mean_and_se(self, h: float, n_leap: int, n_maps: int) -> tuple[float, float]:
        t = self.terms(h, n_leap, n_maps)
        if t is None:
            return -math.inf, math.inf
        return float(t.mean()), float(t.std()) / math.sqrt(t.numel()) if t.numel() > 1 else 0.0
