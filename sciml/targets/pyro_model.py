"""Adapter from a pyro model to a :class:`~sciml.targets.Target` on the unconstrained space."""

from __future__ import annotations

import math
import warnings
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

    Evaluations are batched when the model broadcasts: a batch of points is one trace of the model
    inside an extra outermost ``pyro.plate`` (to the left of the model's own plates), with every
    latent value given that leading batch dimension. This needs a model that indexes latent values
    from the right (``beta[..., k]``, not ``beta[k]``) and has no discrete latent sites. At
    construction the batched log-density is compared with pyro's own potential (one trace per point)
    at a few points; if it differs or raises, every evaluation falls back to one trace per point
    (:attr:`vectorized` says which). Computations run in the model's own dtype and are cast to
    :attr:`dtype`.

    Attributes:
        site_names: latent site names in flat order.
        site_shapes: unconstrained shape of each site.
        constrained_shapes: shape of each site's value in the model.
        transforms: pyro's constrained -> unconstrained transform per site.
        initial_point: ``(dim,)`` pyro's initial unconstrained point (``init_to_uniform``).
        vectorized: whether a batch of points is evaluated in one batched trace.
        laplace_preconditioning: ``True``: a posterior's scales come from its data, so samplers with
            ``precondition="auto"`` standardise it by a Laplace fit at the mode first.
    """

    laplace_preconditioning = True

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
        if not _has_only_continuous_latents(trace):
            _check_enumeration_safe(model, model_args, model_kwargs, self.constrained_shapes)
        self._sizes = [max(1, math.prod(self.site_shapes[k])) for k in self.site_names]
        first = init[self.site_names[0]]
        self.native_dtype, self.native_device = first.dtype, first.device
        self.potential_fn = potential_fn
        self.transforms = transforms
        self.model = model
        dim = sum(self._sizes)
        super().__init__(dim, dtype=self.native_dtype, device=self.native_device)
        self.initial_point = torch.cat([init[k].detach().reshape(-1) for k in self.site_names])
        self.model_args, self.model_kwargs = tuple(model_args), model_kwargs
        self.event_ranks = {k: len(trace.nodes[k]["fn"].event_shape) for k in self.site_names}
        self._plate_dim = -1 - _max_batch_dims(trace)
        self.vectorized = _has_only_continuous_latents(trace) and self._batched_matches_pyro()
        per_point = sum(site["value"].numel() for site in trace.nodes.values()
                        if site["type"] == "sample" and isinstance(site.get("value"), Tensor))
        #: Points per batched trace: bounds the memory of data-heavy models (about 2^22 values at once).
        self.chunk_size = max(16, 2**22 // max(1, per_point))

    def unflatten(self, x: Tensor) -> dict[str, Tensor]:
        """Split ``(..., dim)`` into ``{site: (..., *unconstrained_shape)}``."""
        self._check_x(x)
        parts = torch.split(x, self._sizes, dim=-1)
        return {k: p.reshape(*x.shape[:-1], *self.site_shapes[k]) for k, p in zip(self.site_names, parts)}

    def to_constrained(self, x: Tensor) -> dict[str, Tensor]:
        """Map flat unconstrained points ``(..., dim)`` to ``{site: constrained value (..., *shape)}``."""
        xn = x.to(dtype=self.native_dtype, device=self.native_device)
        return {k: self.transforms[k].inv(u) for k, u in self.unflatten(xn).items()}

    def to_inference_data(self, draws: Any) -> Any:
        """The draws as an ArviZ ``InferenceData`` whose posterior group holds every site's constrained values.

        ``draws``: :class:`~sciml.Samples` or a tensor ``(n, dim)`` (one draw per chain, as the diffusion
        samplers return them: ``n`` chains of one draw) or ``(chains, draws, dim)`` (MCMC traces), on the
        unconstrained space. Rows with NaN (diverged chains) are dropped; weighted samples are refused
        (resample them first, ArviZ has no weights).
        """
        from sciml.diagnostics import _arviz

        x = getattr(draws, "x", draws)
        if getattr(draws, "log_weights", None) is not None:
            raise ValueError("weighted samples (AIS / SMC): resample them by their log_weights first")
        if not isinstance(x, Tensor) or x.ndim not in (2, 3) or x.shape[-1] != self.dim:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"draws must be Samples or a tensor (n, {self.dim}) or (chains, draws, {self.dim}), got {got}")
        if x.ndim == 2:
            x = x[torch.isfinite(x).all(-1)].unsqueeze(1)
        elif not bool(torch.isfinite(x).all()):
            raise ValueError("the (chains, draws, dim) draws contain NaN / inf")
        if x.shape[0] == 0 or x.shape[1] == 0:
            raise ValueError("no finite draws to convert (every row is NaN / inf, or none was given)")
        values = self.to_constrained(x.detach())
        with warnings.catch_warnings():  # "more chains than draws": one draw per chain is what it is
            warnings.simplefilter("ignore", UserWarning)
            return _arviz().from_dict(posterior={k: v.detach().cpu().numpy() for k, v in values.items()})

    def log_prob(self, x: Tensor) -> Tensor:
        """``(..., dim) -> (...)``. A point the model cannot evaluate is rejected, as Stan rejects it:
        evaluation runs with pyro's argument validation off (the model was validated when the target
        was built), so a constrained value that under- or overflows onto the edge of its support
        (``exp(-800) = 0``) raises no error, and a NaN log-density there becomes ``-inf``."""
        import pyro

        self._check_x(x)
        flat = x.reshape(-1, self.dim).to(dtype=self.native_dtype, device=self.native_device)
        with pyro.validation_enabled(False):
            if self.vectorized and flat.shape[0] > 0:
                lp = torch.cat([self._batched_log_prob(c) for c in flat.split(self.chunk_size)])
            else:
                lp = self._looped_log_prob(flat)
        lp = torch.where(torch.isnan(lp), -math.inf, lp)
        return lp.reshape(x.shape[:-1]).to(dtype=x.dtype, device=x.device)

    def log_prob_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """As :meth:`Target.log_prob_and_grad`, in chunks of :attr:`chunk_size` points (bounded memory)."""
        self._check_x(x)
        flat = x.reshape(-1, self.dim)
        if flat.shape[0] <= self.chunk_size:
            return super().log_prob_and_grad(x)
        parts = [super(PyroModelTarget, self).log_prob_and_grad(c) for c in flat.split(self.chunk_size)]
        lp, g = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
        return lp.reshape(x.shape[:-1]), g.reshape(x.shape)

    def _looped_log_prob(self, flat: Tensor) -> Tensor:
        """``(n, dim) -> (n,)``: pyro's potential, one trace per point."""
        vals = []
        for row in flat:
            params = {k: p.reshape(self.site_shapes[k])
                      for k, p in zip(self.site_names, torch.split(row, self._sizes))}
            vals.append(-self.potential_fn(params))
        return torch.stack(vals) if vals else flat.new_zeros(0)

    def _batched_log_prob(self, flat: Tensor) -> Tensor:
        """``(n, dim) -> (n,)`` in one trace of the model inside a leading plate of size n."""
        import pyro
        from pyro import poutine

        n = flat.shape[0]
        values, log_det = {}, flat.new_zeros(n)
        for name, u in zip(self.site_names, torch.split(flat, self._sizes, dim=-1)):
            t, u = self.transforms[name], u.reshape(n, *self.site_shapes[name])
            x = t.inv(u)
            log_det = log_det + t.log_abs_det_jacobian(x, u).reshape(n, -1).sum(1)
            shape = self.constrained_shapes[name]
            pad = -1 - self._plate_dim - (len(shape) - self.event_ranks[name])  # size-1 dims up to the plate
            values[name] = x.reshape(n, *(1,) * pad, *shape)
        with pyro.plate("_sciml_points", n, dim=self._plate_dim):
            trace = poutine.trace(poutine.condition(self.model, values)).get_trace(*self.model_args, **self.model_kwargs)
        trace.compute_log_prob()
        log_joint = flat.new_zeros(n)
        for site in trace.nodes.values():
            if site["type"] == "sample":
                log_joint = log_joint + _per_point(site["log_prob"], n, self._plate_dim)
        return log_joint - log_det

    def _batched_matches_pyro(self) -> bool:
        """Whether the batched log-density equals pyro's potential at a few points near the initial one."""
        g = torch.Generator(device="cpu").manual_seed(0)
        noise = torch.randn(3, self.dim, generator=g, dtype=torch.float64).to(self.native_dtype)
        pts = self.initial_point.detach()[None, :] + 0.5 * noise.to(self.native_device)
        try:
            with torch.no_grad():
                batched = self._batched_log_prob(pts)
                looped = self._looped_log_prob(pts)
        except Exception:  # noqa: BLE001 (any failure of the batched trace means: loop instead)
            return False
        if batched.shape != looped.shape:
            return False
        tol = 1e3 * torch.finfo(self.native_dtype).eps * (1.0 + looped.abs())
        return bool(((batched - looped).abs() <= tol).all() | (batched == looped).all())


def _max_batch_dims(trace: Any) -> int:
    """The largest number of batch dimensions of a sample site (plates and the distributions' own)."""
    dims = [len(site["fn"].batch_shape) for site in trace.nodes.values()
            if site["type"] == "sample" and hasattr(site["fn"], "batch_shape")]
    frames = [-f.dim for site in trace.nodes.values() if site["type"] == "sample"
              for f in site["cond_indep_stack"] if f.dim is not None]
    return max(dims + frames + [0])


def _check_enumeration_safe(model: Any, args: tuple, kwargs: dict, shapes: dict[str, tuple[int, ...]]) -> None:
    """A continuous site whose shape grows when the discrete sites are enumerated (its parameters follow
    the enumerated values) would add coordinates no density confines: refuse it."""
    import pyro

    plain = pyro.poutine.trace(model).get_trace(*args, **kwargs)
    for name, shape in shapes.items():
        own = tuple(plain.nodes[name]["value"].shape)
        if own != shape:
            raise ValueError(f"the continuous site {name!r} has shape {own} in a plain run of the model but {shape} "
                             "when its discrete sites are enumerated out: its shape follows an enumerated value, "
                             "which this target does not support (marginalise the discrete site by hand, or "
                             "write the model so that enumerated values broadcast from the left)")


def _has_only_continuous_latents(trace: Any) -> bool:
    return not any(site["type"] == "sample" and not site["is_observed"] and site["fn"].has_enumerate_support
                   for site in trace.nodes.values())


def _per_point(log_prob: Tensor, n: int, plate_dim: int) -> Tensor:
    """Sum a site's log-density over every dimension but the points' plate: ``-> (n,)``."""
    if log_prob.ndim < -plate_dim:
        return log_prob.sum().expand(n)
    lp = log_prob.movedim(plate_dim, 0)
    return lp.reshape(lp.shape[0], -1).sum(1).expand(n)


def from_pyro_model(model: Any, *model_args: Any, **model_kwargs: Any) -> PyroModelTarget:
    """Target for the posterior of a pyro ``model(*model_args, **model_kwargs)`` (observed sites fixed).

    The density lives on the unconstrained space (constrained sites mapped by pyro's ``biject_to``
    transforms, log-Jacobian included); use ``target.to_constrained(x)`` to get site values.
    """
    return PyroModelTarget(model, model_args, model_kwargs)
