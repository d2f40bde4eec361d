"""posteriordb posteriors as benchmark instances: pyro ports, their data and gold-standard reference draws.

The data and reference summaries of fourteen posteriors of posteriordb (the Stan project's
database of posteriors, BSD-3, ``data/LICENCE.md``) lie in ``data/<name>/``: the data set as
posteriordb ships it and ``reference.npz`` (per-parameter mean and sd over 10 x 1000 reference
draws of long Stan runs, and 1000 of the draws), written by :mod:`.import_posteriordb`.

``load(name)`` gives a :class:`Posterior`: ``posterior.target()`` is the density on the
unconstrained space (:func:`sciml.targets.from_pyro_model`) and ``posterior.parameters(x)`` maps
unconstrained points to the posteriordb parameters in the reference's column order.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .models import MODELS, SITES_FROM_PARAMETERS, TRANSFORMED

__all__ = ["NAMES", "Posterior", "Reference", "laplace_check", "load", "load_data", "main", "stein_check"]

DATA = Path(__file__).with_name("data")
#: the posteriordb names, in the order of the benchmark table
NAMES: tuple[str, ...] = tuple(MODELS)


@dataclass(frozen=True)
class Reference:
    """Reference draws of a posterior: ``names`` (p,), ``mean`` / ``sd`` (p,) over all ``n_draws``
    draws, ``draws`` (1000, p), float64."""

    names: tuple[str, ...]
    mean: Tensor
    sd: Tensor
    draws: Tensor
    n_draws: int


def load_data(name: str) -> dict[str, Tensor]:
    """The data set of posterior ``name`` as float64 tensors (integers included)."""
    path = DATA / _checked(name) / "data.json.zip"
    with zipfile.ZipFile(path) as z:
        raw = json.loads(z.read(z.namelist()[0]))
    return {k: torch.as_tensor(np.asarray(v, dtype=np.float64)) for k, v in raw.items()}


def _checked(name: str) -> str:
    if name not in MODELS:
        raise KeyError(f"unknown posterior {name!r}; known: {', '.join(NAMES)}")
    return name


@dataclass(frozen=True)
class Posterior:
    """One posteriordb posterior: its pyro port, data and reference."""

    name: str

    @cached_property
    def data(self) -> dict[str, Tensor]:
        return load_data(self.name)

    @cached_property
    def reference(self) -> Reference:
        with np.load(DATA / self.name / "reference.npz") as f:
            return Reference(tuple(str(v) for v in f["names"]), torch.as_tensor(f["mean"]), torch.as_tensor(f["sd"]),
                             torch.as_tensor(f["draws"]), int(f["n_draws"]))

    def model(self) -> None:
        """The pyro model with this posterior's data (no arguments)."""
        MODELS[self.name](self.data)

    def target(self):  # noqa: ANN201 (PyroModelTarget; imported lazily)
        """The posterior on the unconstrained space; its ``initial_point`` is the image of 0 (pyro's
        ``init_to_feasible``: deterministic, and a random start can make the Lotka-Volterra ODE overflow)."""
        from pyro.infer.autoguide.initialization import init_to_feasible

        from sciml.targets import PyroModelTarget

        return PyroModelTarget(MODELS[self.name], (self.data,), init_strategy=init_to_feasible)

    def parameters(self, target, x: Tensor) -> Tensor:  # noqa: ANN001
        """Unconstrained points ``x`` (n, dim) of ``target`` -> the reference's parameters (n, p)."""
        values = target.to_constrained(x)
        if self.name in TRANSFORMED:
            values = {**values, **TRANSFORMED[self.name](values, self.data)}
        n = x.shape[0]
        flat = {k: v.reshape(n, -1) for k, v in values.items()}
        cols = [flat[site][:, 0 if i is None else i - 1] for site, i in map(_split_name, self.reference.names)]
        return torch.stack(cols, dim=-1)


    def unconstrained(self, target, params: Tensor) -> Tensor:  # noqa: ANN001
        """The reference's parameters ``params`` (n, p) -> unconstrained points of ``target`` (n, dim)."""
        n = params.shape[0]
        values: dict[str, Tensor] = {}  # scalars (n,), vectors (n, k)
        vectors: dict[str, list[tuple[int, Tensor]]] = {}
        for j, (site, i) in enumerate(map(_split_name, self.reference.names)):
            if i is None:
                values[site] = params[:, j]
            else:
                vectors.setdefault(site, []).append((i, params[:, j]))
        values.update({k: torch.stack([v for _, v in sorted(c, key=lambda t: t[0])], dim=-1) for k, c in vectors.items()})
        if self.name in SITES_FROM_PARAMETERS:
            values.update(SITES_FROM_PARAMETERS[self.name](values, self.data))
        parts = [target.transforms[k](values[k].reshape(n, *target.constrained_shapes[k])).reshape(n, -1)
                 for k in target.site_names]
        return torch.cat(parts, dim=-1)


def _split_name(col: str) -> tuple[str, int | None]:
    """posteriordb's ``"theta[3]"`` -> ``("theta", 3)`` (1-based), ``"tau"`` -> ``("tau", None)``."""
    site, _, index = col.partition("[")
    return site, int(index.rstrip("]")) if index else None


def stein_check(posterior: Posterior, target=None) -> tuple[Tensor, Tensor]:  # noqa: ANN001
    """Score identities at the reference draws, on the unconstrained space of ``target``.

    For draws ``x`` of the exact posterior, ``E[grad log p(x)] = 0`` and ``E[grad log p(x) (x - m)^T] = -I``
    (boundary terms vanish on R^dim). Returns ``(z_mean (dim,), z_cov (dim, dim))``: the sample estimates
    of both identities' deviations divided by their standard errors (the reference draws are close
    to independent: posteriordb's ESS is ~ the number of draws). A port whose density differs from the
    reference posterior shows |z| of many standard errors.
    """
    target = posterior.target() if target is None else target
    x = posterior.unconstrained(target, posterior.reference.draws)
    _, g = target.log_prob_and_grad(x)
    n = x.shape[0]
    z_mean = g.mean(0) / (g.std(0) / n**0.5)
    terms = g[:, :, None] * (x - x.mean(0))[:, None, :]  # (n, dim, dim)
    eye = torch.eye(x.shape[1], dtype=x.dtype)
    z_cov = (terms.mean(0) + eye) / (terms.std(0) / n**0.5)
    return z_mean, z_cov


def laplace_check(posterior: Posterior, target=None, points: int = 20,  # noqa: ANN001
                  restarts: int | None = None) -> dict[str, Tensor | int]:
    """How well the samplers' Laplace preconditioner fits the posterior (``precondition="auto"``).

    The fit is the samplers' (:func:`sciml.targets.laplace.laplace_fit` from the target's
    ``initial_point`` and ``restarts`` random starts; ``restarts=None``: as many as the samplers use):
    ``x = mode + scale z`` with ``z ~ N(0, I)`` under the approximation. Returns
    the reference draws in those coordinates, ``z_mean`` and ``z_sd`` ``(dim,)`` (a fit that holds: ~0
    and ~1), and ``curvature`` ``(points, 2)``: the smallest and largest eigenvalue of the negative
    Hessian of ``log p`` in ``z`` at ``points`` reference draws (~1 and ~1 where the fit holds; the
    largest is the stiffness a sampler tuned for unit scale meets there).
    """
    from sciml_plugins.diffusion._common import LAPLACE_RESTARTS

    from sciml.targets.laplace import laplace_fit, laplace_starts

    target = posterior.target() if target is None else target
    starts = laplace_starts(target.initial_point.to(torch.float64), LAPLACE_RESTARTS if restarts is None else restarts)
    fit = laplace_fit(target.log_prob_and_grad, starts)
    x = posterior.unconstrained(target, posterior.reference.draws).to(torch.float64)
    z = torch.linalg.solve(fit.scale, (x - fit.mean).T).T

    def log_p(zz: Tensor) -> Tensor:
        return target.log_prob((fit.mean + fit.scale @ zz)[None].to(target.dtype))[0].to(torch.float64)

    idx = torch.linspace(0, z.shape[0] - 1, points).round().long()
    curvature = []
    for i in idx:
        ev = torch.linalg.eigvalsh(-torch.autograd.functional.hessian(log_p, z[i]))
        curvature.append(torch.stack([ev.min(), ev.max()]))
    return {"z_mean": z.mean(0), "z_sd": z.std(0), "curvature": torch.stack(curvature), "start": fit.start}


def load(name: str) -> Posterior:
    """The posterior called ``name`` (a posteriordb name, see :data:`NAMES`)."""
    return Posterior(_checked(name))


def main(argv=None) -> int:  # noqa: ANN001
    """Samplers on fourteen posteriordb posteriors against their reference draws, beside pyro NUTS."""
    from .bench import main as bench_main

    return bench_main(argv)
