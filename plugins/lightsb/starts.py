"""The starting potential of a LightSB fit, for each ``init`` choice or from a given potential (the
warm-start algorithms themselves are in :mod:`~sciml_plugins.lightsb.warmstart`)."""

from __future__ import annotations

import torch
from torch import Tensor

from sciml.validation import check_tensor

from .data import TrainingData
from .potential import GaussianMixturePotential
from .settings import Settings

__all__ = ["check_init_potential", "new_potential"]


def check_init_potential(eps: float, covariance: str | None, n_starts: int | None,
                         src: object) -> GaussianMixturePotential:
    """``src`` as a potential a solver with these settings can continue (same ``eps``; a diagonal fit
    cannot take a full potential; one start)."""
    if not isinstance(src, GaussianMixturePotential):
        raise TypeError(f"init_potential must be a GaussianMixturePotential or a Bridge, got {type(src).__name__}")
    if abs(src.eps - eps) > 1e-12 * eps:
        raise ValueError(f"init_potential has eps={src.eps}, the solver eps={eps}")
    if covariance == "diag" and src.covariance == "full":
        raise ValueError("a full-covariance init_potential cannot start a diagonal fit")
    if n_starts is not None and n_starts > 1:
        raise ValueError("init_potential needs n_starts = 1")
    for pname, p in src.named_parameters():
        check_tensor(f"init_potential.{pname}", p)
    return src


def new_potential(cfg: Settings, data: TrainingData, init_means: Tensor, generator: torch.Generator | None,
                  src: GaussianMixturePotential | None = None, start_index: int = 0) -> GaussianMixturePotential:
    """A fresh potential started as ``cfg.init`` says (or a pruned copy of ``src``)."""
    x0, x1 = data.fit_samples("x0"), data.fit_samples("x1")
    if src is not None:
        return _copy_potential(cfg, src, x0, data)
    pot = GaussianMixturePotential(data.dim, cfg.n_components, cfg.eps, cfg.covariance, init_means=init_means,
                                   init_scale=cfg.init_scale, dtype=data.dtype, device=data.device)
    if cfg.init == "gaussian":
        _gaussian_start(pot, x0, x1, cfg.init_spread, init_means)
    elif cfg.init in ("clusters", "targets"):
        _cluster_start(cfg, pot, x0, x1, generator, start_index)
    return pot


def _gaussian_start(potential: GaussianMixturePotential, x0: Tensor | None, x1: Tensor | None, spread: float,
                    init_means: Tensor) -> None:
    """Every ``S_k`` at the Gaussian closed-form ``S*`` (see ``init`` in the LightSB docstring)."""
    from .gaussian import sample_eot

    if x0 is None or x1 is None:
        raise ValueError("init='gaussian' needs samples of both p0 and p1")
    a, b = x0.detach().to(torch.float64).cpu(), x1.detach().to(torch.float64).cpu()
    d = a.shape[1]
    if a.shape[0] <= d or b.shape[0] <= d:
        raise ValueError(f"init='gaussian' needs more than D={d} samples of p0 and p1 to estimate covariances")
    if int(torch.linalg.cholesky_ex(torch.cov(a.T, correction=0).reshape(d, d)).info) != 0:
        raise ValueError("init='gaussian' needs samples of p0 with a nonsingular covariance; use init='identity'")
    plan = sample_eot(a, b, potential.eps)
    m0, m1, S = plan.m0, plan.m1, plan.S_star
    if potential.covariance == "diag":
        S = torch.diag(torch.diagonal(S).clamp_min(1e-6))
    elif int(torch.linalg.cholesky_ex(S).info) != 0:
        raise ValueError("init='gaussian' with covariance='full' needs samples of p1 with a nonsingular "
                         "covariance; use init='identity'")
    potential.set_covariances(S)
    kw = {"dtype": potential.means.dtype, "device": potential.means.device}
    with torch.no_grad():
        y = init_means.detach().to(torch.float64).cpu()
        potential.means.copy_((m1 - S @ m0 + spread * (y - m1)).to(**kw))


def _cluster_start(cfg: Settings, potential: GaussianMixturePotential, x0: Tensor | None, x1: Tensor | None,
                   generator: torch.Generator | None, start_index: int) -> None:
    """:func:`~sciml_plugins.lightsb.warmstart.cluster_init` (``init="clusters"``) or
    :func:`~sciml_plugins.lightsb.warmstart.target_cluster_init` (``init="targets"``)."""
    from .warmstart import cluster_init, target_cluster_init

    init = cfg.init
    if x0 is None or x1 is None:
        raise ValueError(f"init={init!r} needs samples of both p0 and p1")
    for side_name, x in (("p0", x0), ("p1", x1)):
        if not bool((x != x[:1]).any()):
            raise ValueError(f"init={init!r} needs samples of {side_name} that are not all equal; use init='identity'")
    side = x1 if init == "targets" else x0
    if side.shape[0] < potential.n_components:
        raise ValueError(f"init={init!r} needs at least n_components={potential.n_components} samples of "
                         f"{'p1' if init == 'targets' else 'p0'}")
    gen = None
    if generator is not None:  # the warm start runs on the CPU: derive a CPU generator from the seed stream
        gen = torch.Generator().manual_seed(int(torch.randint(2**62, (1,), generator=generator, device=generator.device)))
    diagonal = potential.covariance == "diag"
    if init == "targets":
        # even-numbered starts choose the number of pieces from the data, odd ones use K pieces
        log_alpha, r, S = target_cluster_init(x0, x1, potential.n_components, cfg.eps, generator=gen,
                                              diagonal=diagonal, split_gain=None if start_index % 2 == 0 else 0.0)
    else:
        log_alpha, r, S = cluster_init(x0, x1, potential.n_components, cfg.eps, generator=gen,
                                       n_sub=cfg.cluster_subsample, diagonal=diagonal)
    potential.set_covariances(S)
    kw = {"dtype": potential.means.dtype, "device": potential.means.device}
    with torch.no_grad():
        potential.means.copy_(r.to(**kw))
        potential.raw_log_alpha.copy_((cfg.eps * (log_alpha - log_alpha.max())).to(**kw))


def _copy_potential(cfg: Settings, src: GaussianMixturePotential, x0: Tensor | None,
                    data: TrainingData) -> GaussianMixturePotential:
    """The start from ``init_potential``: prune by mean gate weight, convert, move to the data."""
    if src.dim != data.dim:
        raise ValueError(f"init_potential has D={src.dim}, the samples D={data.dim}")
    keep = None
    if cfg.init_min_weight > 0:
        if x0 is None:
            raise ValueError("init_min_weight > 0 needs samples of p0")
        with torch.no_grad():
            xs = x0[:20000].to(dtype=src.means.dtype, device=src.means.device)
            w = torch.softmax(src.conditional_logits(xs), dim=-1).mean(0)
        keep = w > cfg.init_min_weight
        if not bool(keep.any()):
            keep = w == w.max()
    pot = src.subset(keep, cfg.covariance).to(dtype=data.dtype, device=data.device)
    pot.requires_grad_(True)
    pot.train()
    return pot
