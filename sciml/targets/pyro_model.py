"""Adapter from a pyro model to a :class:`~sciml.targets.Target` on the unconstrained space."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from sciml.targets.base import Target

__all__ = ["PyroModelTarget", "from_pyro_model"]


class PyroModelTarget(Target):
    """Posterior of a pyro model as a density on the flat unconstrained space ``R^dim``.

    ``log_prob(x) = -potential_energy(x)`` where the potential comes from
    ``pyro.infer.mcmc.util.initialize_model``: the model's joint log-density (observed sites included,
    discrete latent sites enumerated out) at the constrained values ``T^{-1}(x)``, plus the
    log-Jacobian of ``T^{-1}``, with ``T = biject_to(support).inv`` per latent site, exactly as pyro's
    NUTS uses it. The flat vector concatenates the sites in :attr:`site_names` order, each flattened
    with its unconstrained shape :attr:`site_shapes`.

    Evaluations loop over the batch (pyro's tracing is not vectorisable with ``torch.func.vmap``), so
    they cost one model trace per point. Computations run in the model's own dtype and are cast to
    :attr:`dtype`.

    Attributes:
        site_names: latent site names in flat order.
        site_shapes: unconstrained shape of each site.
        constrained_shapes: shape of each site's value in the model.
        transforms: pyro's constrained -> unconstrained transform per site.
        initial_point: ``(dim,)`` pyro's initial unconstrained point (``init_to_uniform``).
    """

    def __init__(self, model: Any, model_args: tuple = (), model_kwargs: dict | None = None,
                 **initialize_kwargs: Any) -> None:
        from pyro.infer.mcmc.util import initialize_model

        if not callable(model):
            raise TypeError(f"model must be a callable pyro model, got {type(model).__name__}")
        model_kwargs = {} if model_kwargs is None else dict(model_kwargs)
        init, potential_fn, transforms, trace = initialize_model(
            model, model_args=tuple(model_args), model_kwargs=model_kwargs, **initialize_kwargs)
        if not init:
            raise ValueError("the pyro model has no continuous latent sample sites to sample")
        self.site_names = list(init.keys())
        self.site_shapes = {k: tuple(v.shape) for k, v in init.items()}
        self.constrained_shapes = {k: tuple(trace.nodes[k]["value"].shape) for k in self.site_names}
        self._sizes = [max(1, math.prod(self.site_shapes[k])) for k in self.site_names]
        first = init[self.site_names[0]]
        self.native_dtype, self.native_device = first.dtype, first.device
        self.potential_fn = potential_fn
        self.transforms = transforms
        self.model = model
        dim = sum(self._sizes)
        super().__init__(dim, dtype=self.native_dtype, device=self.native_device)
        self.initial_point = torch.cat([init[k].detach().reshape(-1) for k in self.site_names])

    def unflatten(self, x: Tensor) -> dict[str, Tensor]:
        """Split ``(..., dim)`` into ``{site: (..., *unconstrained_shape)}``."""
        self._check_x(x)
        parts = torch.split(x, self._sizes, dim=-1)
        return {k: p.reshape(*x.shape[:-1], *self.site_shapes[k]) for k, p in zip(self.site_names, parts)}

    def to_constrained(self, x: Tensor) -> dict[str, Tensor]:
        """Map flat unconstrained points ``(..., dim)`` to ``{site: constrained value (..., *shape)}``."""
        xn = x.to(dtype=self.native_dtype, device=self.native_device)
        return {k: self.transforms[k].inv(u) for k, u in self.unflatten(xn).items()}

    def log_prob(self, x: Tensor) -> Tensor:
        self._check_x(x)
        flat = x.reshape(-1, self.dim).to(dtype=self.native_dtype, device=self.native_device)
        vals = []
        for row in flat:
            params = {k: p.reshape(self.site_shapes[k])
                      for k, p in zip(self.site_names, torch.split(row, self._sizes))}
            vals.append(-self.potential_fn(params))
        out = torch.stack(vals) if vals else flat.new_zeros(0)
        return out.reshape(x.shape[:-1]).to(dtype=x.dtype, device=x.device)


def from_pyro_model(model: Any, *model_args: Any, **model_kwargs: Any) -> PyroModelTarget:
    """Target for the posterior of a pyro ``model(*model_args, **model_kwargs)`` (observed sites fixed).

    The density lives on the unconstrained space (constrained sites mapped by pyro's ``biject_to``
    transforms, log-Jacobian included); use ``target.to_constrained(x)`` to get site values.
    """
    return PyroModelTarget(model, model_args, model_kwargs)
