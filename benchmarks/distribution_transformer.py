"""Distribution transformer against exact posteriors and pyro SVI on 1000 fresh problems per task.

Run as ``sciml bench distribution_transformer [--problems 1000] [--svi-steps 2000] [--npe-epochs 5]
[--tasks ...] [--model TASK=FILE] [--output FILE.md]``.
Problems are drawn from each task's meta-prior with a benchmark seed no training run uses, in
groups of 50 (one data-set size and component count per group, as the task simulates them). KL to
the exact posterior: ``gmm-gaussian`` by Monte Carlo from the exact posterior (10^4 draws per
problem, the paper's protocol; the standard error is over problems, Monte Carlo noise included),
``normal-variance`` by quadrature, ``gp-lengthscale`` by the trapezoidal rule on the task's
256-point grid of log l (its reference, whose time is given too). ``wider``: gmm-gaussian priors from a wider meta-prior than
trained on (means ~ N(0, 4^2 I), covariances ~ InverseWishart(3, I), the paper's example), to show
how the model degrades. Time: every group of the 1000 problems, summed, and one batch of 1000
problems at the largest size (16 observations, 4 components). pyro SVI: a guide of the model's
form (a mixture of as many full-covariance / 1-D Gaussians), initialised at the prior (the learned
prior fit for normal-variance: a 5-component fit to the prior), lr 0.1 (the paper's SVI setting)
with pyro's ``ClippedAdam`` (gradient norm 10; component sds kept above 1e-3 on log v); a group
whose run turns NaN (the score-function gradient of a far-out draw) is refit at lr 0.01 and counted
in the note; ``TraceGraph_ELBO`` (the mixture guide is not reparameterisable), vectorised over the
problems of a group. Mixture SVI with the stratified ELBO: the same guide and start, fitted with
the estimator a careful user would write instead (every component's expectation taken by
reparameterised draws, 8 per component, weights differentiated exactly; Adam lr 0.05; plain torch,
since pyro's ELBOs give a mixture guide only score-function gradients). Sequential fusion (``fusion``): 200 tracks of a 2-D random walk (step sd
0.5) from a 2-component prior, 4 observations of sd 1 per step, 10 steps, the model's posterior
(after the exact prediction step) as the next prior, against the exact Gaussian-sum (Kalman) filter:
expected NLL of the true state per step and the KL between the two filters. pyro NUTS (500 warm-up,
1000 draws) on a subset: the first problem of each of the first 20 groups (``--nuts``); its draws have no
density, so this subset is compared by the W2 distance of 1000 draws to 1000 exact draws, in units
of the exact posterior's sd (column ``W2``: median and worst problem, for every method on the same subset; ``exact`` is the
W2 between two independent sets of exact draws: the noise floor). sbi's NPE (``--npe-epochs``,
:mod:`sciml_benchmarks.dt_npe`): one neural spline flow per task, conditioned on the prior and the
data's sufficient statistics, trained on as many simulated problems as the shipped model, with its
own generator (the other rows are unchanged by it); its time is that of 1000 draws per problem.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from sciml_benchmarks._report import finish

__all__ = ["main", "Row"]

SEED = 2026_12_04  # benchmark problems; the shipped models were trained from seed 0
GROUP = 50


@dataclass
class Row:
    task: str
    method: str
    kl_mean: float
    kl_se: float
    kl_median: float
    seconds: float  # for the problems of the row
    problems: int
    note: str = ""
    w2: tuple[float, ...] = ()  # per problem of the NUTS subset: standardised W2 to exact draws


def _groups(task, problems: int, generator: torch.Generator) -> list:
    return [task.simulate(GROUP, generator, dtype=torch.float64) for _ in range(problems // GROUP)]


def _summary(task: str, method: str, kl: torch.Tensor, seconds: float, note: str = "") -> Row:
    kl = kl.double()
    return Row(task, method, float(kl.mean()), float(kl.std() / math.sqrt(kl.numel())), float(kl.median()),
               seconds, kl.numel(), note)


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


# -- gmm-gaussian ---------------------------------------------------------------------------------


def _gmm_rows(model, problems: int, svi_steps: int, nuts: int, g: torch.Generator, wider: bool = False,
              npe=None) -> list[Row]:
    from sciml_plugins.distribution_transformer import GMMGaussian
    from sciml_plugins.distribution_transformer.mixtures import from_distribution, mixture_kl
    from sciml_plugins.distribution_transformer.tasks import gmm_gaussian_posterior

    task = GMMGaussian()
    if wider:  # the paper's example meta-prior, with means twice as spread as trained on
        task.mean_scale, task.cov_df, task.cov_scale = 4.0, 3, 1.0
    groups = _groups(task, problems, g)
    exact = [gmm_gaussian_posterior(p.prior, p.z, p.extras["noise_scale"]) for p in groups]
    name = "gmm-gaussian (wider)" if wider else "gmm-gaussian"
    kls, seconds = [], 0.0
    for p, e in zip(groups, exact):
        q, s = _timed(lambda p=p: model.predict(p.prior.distribution(), p.z, noise_scale=p.extras["noise_scale"]))
        seconds += s
        kls.append(mixture_kl(e, from_distribution("q", q), 10_000, g)[0])
    subset = [(_one(p.prior, 0), p.z[0], p.extras["noise_scale"][0], _one(e, 0))
              for p, e in zip(groups[:nuts], exact[:nuts])]
    rows = [_summary(name, "distribution transformer", torch.cat(kls), seconds)]
    rows[0].w2 = _subset_w2([(from_distribution("q", model.predict(pr.distribution(), z[None], noise_scale=s[None])), e)
                             for pr, z, s, e in subset], g)
    if npe is not None:
        row, fitted = _npe_row(name, npe, task, groups, lambda q, i: mixture_kl(exact[i], q, 10_000, npe.generator)[0])
        row.w2 = _subset_w2_npe(fitted, subset, npe.generator)
        rows.append(row)
    if wider:
        return rows
    big = task.simulate(problems, g, n=16, components=4, dtype=torch.float64)
    model.predict(big.prior.distribution(), big.z, noise_scale=big.extras["noise_scale"])  # warm-up
    times = [_timed(lambda: model.predict(big.prior.distribution(), big.z, noise_scale=big.extras["noise_scale"]))[1]
             for _ in range(5)]
    rows.append(Row(name, "distribution transformer, one batch (n 16, K 4)", math.nan, math.nan, math.nan,
                    statistics.median(times), problems, "median of 5"))
    if svi_steps:
        kls, seconds, fitted, refits = [], 0.0, [], 0
        for p, e in zip(groups, exact):
            (q, refit), s = _timed(lambda p=p: _with_refit(_svi_gmm, p, svi_steps))
            refits += refit
            seconds += s
            kls.append(mixture_kl(e, q, 10_000, g)[0])
            fitted.append(q)
        rows.append(_summary(name, f"pyro SVI ({svi_steps} steps)", torch.cat(kls), seconds,
                             f"{refits} of {len(groups)} groups refit at lr 0.01"))
        if subset:
            rows[-1].w2 = _subset_w2([(_one(q, 0), e) for q, (*_, e) in zip(fitted, subset)], g)
    if svi_steps:
        kls, seconds, fitted = [], 0.0, []
        for p, e in zip(groups, exact):
            target = _OnePosterior(p.prior, p.z, p.extras["noise_scale"])
            q, s = _timed(lambda p=p, target=target: svi_stratified(target.log_prob_batch, p.prior, svi_steps, g))
            seconds += s
            kls.append(mixture_kl(e, q, 10_000, g)[0])
            fitted.append(q)
        rows.append(_summary(name, f"mixture SVI, stratified ELBO ({svi_steps} steps)", torch.cat(kls), seconds))
        if subset:
            rows[-1].w2 = _subset_w2([(_one(q, 0), e) for q, (*_, e) in zip(fitted, subset)], g)
    if subset:
        rows.append(_nuts_row(name, subset, g))
        floor = Row(name, "exact (two sets of exact draws)", math.nan, math.nan, math.nan, math.nan, len(subset))
        floor.w2 = _subset_w2([(e, e) for *_, e in subset], g)
        rows.append(floor)
    return rows


@dataclass
class NPE:
    """sbi's NPE trained for one task (:mod:`sciml_benchmarks.dt_npe`), with its own generator (the other
    rows' draws stay as they were without it) and a note on its training."""

    estimator: object
    generator: torch.Generator
    note: str


def _train_npe(task_name: str, epochs: int) -> NPE:
    from sciml_benchmarks.dt_npe import train_npe
    from sciml_plugins.distribution_transformer.retrain import RECIPES
    from sciml_plugins.distribution_transformer.tasks import TASKS

    recipe = RECIPES[task_name]
    sims = recipe["num_steps"] * recipe["batch_size"]  # the shipped model's simulated problems
    g = torch.Generator().manual_seed(SEED + 1)
    estimator, sim_s, train_s, trained = train_npe(TASKS[task_name](), sims, g, batch=recipe["batch_size"],
                                                   max_epochs=epochs)
    return NPE(estimator, g, f"NSF, {sims:.1e} simulations, {trained} epochs: "
                             f"{sim_s:.0f} s simulating + {train_s:.0f} s training; seconds: 1000 draws per problem")


def _npe_row(name: str, npe: NPE, task, groups, kl_of) -> tuple[Row, list]:
    """NPE's row on the benchmark groups: KL by ``kl_of(posterior, group index)``; the time is that of
    the inputs plus 1000 draws of every posterior (a flow has no closed-form posterior to hand over)."""
    from sciml_benchmarks.dt_npe import NPEPosterior

    kls, seconds, fitted = [], 0.0, []
    for i, p in enumerate(groups):
        def run(p=p):
            q = NPEPosterior(npe.estimator, task, p.prior, p.z, p.extras)
            q.sample(1000, npe.generator)
            return q
        q, s = _timed(run)
        seconds += s
        kls.append(kl_of(q, i))
        fitted.append(q)
    return _summary(name, "sbi NPE, same simulations", torch.cat(kls), seconds, npe.note), fitted


def _subset_w2_npe(fitted, subset, g: torch.Generator) -> tuple[float, ...]:
    """:func:`_subset_w2` for NPE posteriors: problem 0 of each of the subset's groups."""
    return tuple(_standardised_w2(q.sample(1000, g)[:, 0], e.sample(1000, g)[:, 0])
                 for q, (*_, e) in zip(fitted, subset))


def _one(mix, b: int):
    """Problem ``b`` of a mixture batch as a batch of one."""
    from sciml_plugins.distribution_transformer import Mixture

    return Mixture(mix.log_weights[b:b + 1], mix.means[b:b + 1], mix.scale_tril[b:b + 1])


def _standardised_w2(draws: torch.Tensor, exact: torch.Tensor) -> float:
    from sciml.metrics import wasserstein2

    scale = exact.std(0).mean()
    return wasserstein2(draws / scale, exact / scale)


def _subset_w2(pairs, g: torch.Generator) -> tuple[float, ...]:
    """Standardised W2 between 1000 draws of each method's posterior and 1000 exact draws, per pair."""
    return tuple(_standardised_w2(q.sample(1000, g)[:, 0], e.sample(1000, g)[:, 0]) for q, e in pairs)


class _OnePosterior:
    """Unnormalised log posterior of one gmm-gaussian problem, for NUTS."""

    def __init__(self, prior, z: torch.Tensor, sigma: torch.Tensor) -> None:
        self.prior, self.z, self.sigma = prior, z, sigma

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """One problem (prior a batch of one, ``z`` ``(n, 2)``): ``x`` ``(m, 2)`` -> ``(m,)``."""
        lik = -0.5 * (x[:, None, :] - self.z).square().sum((-1, -2)) / self.sigma**2
        return self.prior.log_prob(x[:, None, :])[:, 0] + lik

    def log_prob_batch(self, x: torch.Tensor) -> torch.Tensor:
        """A batch (prior of ``B``, ``z`` ``(B, n, 2)``): ``x`` ``(S, B, 2)`` -> ``(S, B)``."""
        lik = -0.5 * (x[:, :, None, :] - self.z).square().sum((-1, -2)) / self.sigma**2
        return self.prior.log_prob(x) + lik


def _nuts_row(name: str, subset, g: torch.Generator) -> Row:
    from sciml_benchmarks.nuts import counted_nuts

    w2, seconds = [], 0.0
    for i, (prior, z, sigma, exact) in enumerate(subset):
        x0 = z.mean(0) if z.shape[0] else (prior.log_weights.exp()[0, :, None] * prior.means[0]).sum(0)
        run = counted_nuts(_OnePosterior(prior, z, sigma), x0, warmup=500, draws=1000, seed=i)
        seconds += run.seconds
        w2.append(_standardised_w2(run.draws, exact.sample(1000, g)[:, 0]))
    row = Row(name, "pyro NUTS (500 + 1000)", math.nan, math.nan, math.nan, seconds, len(subset),
              "time for the subset only")
    row.w2 = tuple(w2)
    return row


def svi_stratified(log_joint, init, steps: int, generator: torch.Generator, *, lr: float = 0.05,
                   draws: int = 8):
    """Mixture VI with the stratified, reparameterised ELBO ``sum_k w_k E_eps[log p(m_k + L_k eps) - log q(.)]``
    (exact in the component, pathwise within it), Adam, vectorised over the batch of ``init``
    (a :class:`Mixture`, the starting guide); ``log_joint(x (S, B, d)) -> (S, B)``. The fitted mixture."""
    from sciml_plugins.distribution_transformer import Mixture

    logits = init.log_weights.clone().requires_grad_()
    means = init.means.clone().requires_grad_()
    d = init.dim
    rows, cols = torch.tril_indices(d, d, -1)
    log_diag = torch.diagonal(init.scale_tril, dim1=-2, dim2=-1).log().clone().requires_grad_()
    lower = init.scale_tril[..., rows, cols].clone().requires_grad_()
    opt = torch.optim.Adam([logits, means, log_diag, lower], lr=lr)

    def guide() -> Mixture:
        tril = torch.diag_embed(log_diag.exp())
        off = torch.zeros_like(tril)
        off[..., rows, cols] = lower
        return Mixture(torch.log_softmax(logits, -1), means, tril + off)

    b, k = init.log_weights.shape
    for _ in range(steps):
        q = guide()
        eps = torch.randn(draws, b, k, d, 1, generator=generator, dtype=means.dtype)
        x = q.means + (q.scale_tril @ eps)[..., 0]  # (S, B, K, d): draws of every component
        flat = x.transpose(1, 2).reshape(draws * k, b, d)
        gap = (log_joint(flat) - q.log_prob(flat)).reshape(draws, k, b).mean(0).T  # (B, K)
        loss = -(q.log_weights.exp() * gap).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        q = guide()
        return Mixture(q.log_weights.clone(), q.means.clone(), q.scale_tril.clone())


def _with_refit(fit, p, steps: int, *args):
    """``fit`` at lr 0.1; at lr 0.01 if that run turns NaN: ``(result, refitted)``."""
    try:
        return fit(p, steps, *args, lr=0.1), 0
    except ValueError:  # pyro's argument check of a NaN parameter
        return fit(p, steps, *args, lr=0.01), 1


def _pyro_svi(model, guide, steps: int, lr: float) -> dict[str, torch.Tensor]:
    """``steps`` of pyro SVI (``TraceGraph_ELBO``, ``ClippedAdam``) from a clear parameter store; the
    fitted parameters, constrained and detached."""
    import pyro
    from pyro.infer import SVI, TraceGraph_ELBO

    pyro.clear_param_store()
    svi = SVI(model, guide, pyro.optim.ClippedAdam({"lr": lr, "clip_norm": 10.0}), TraceGraph_ELBO())
    for _ in range(steps):
        svi.step()
    return {k: v.detach().clone() for k, v in pyro.get_param_store().items()}


def _svi_gmm(p, steps: int, *, lr: float):
    import pyro
    import pyro.distributions as dist
    from sciml_plugins.distribution_transformer import Mixture
    from torch.distributions import constraints

    prior = p.prior
    b = prior.means.shape[0]
    prior_dist, sigma = prior.distribution(), p.extras["noise_scale"]

    def model():
        with pyro.plate("problems", b):
            x = pyro.sample("x", prior_dist)
            pyro.sample("z", dist.Normal(x[:, None, :], sigma[:, None, None]).to_event(2), obs=p.z)

    def guide():
        logits = pyro.param("logits", prior.log_weights.clone())
        loc = pyro.param("loc", prior.means.clone())
        tril = pyro.param("tril", prior.scale_tril.clone(), constraint=constraints.lower_cholesky)
        with pyro.plate("problems", b):
            pyro.sample("x", dist.MixtureSameFamily(dist.Categorical(logits=logits),
                                                    dist.MultivariateNormal(loc, scale_tril=tril)))

    store = _pyro_svi(model, guide, steps, lr)
    return Mixture(torch.log_softmax(store["logits"], -1), store["loc"], store["tril"])


# -- normal-variance ------------------------------------------------------------------------------


def _variance_rows(model, problems: int, svi_steps: int, g: torch.Generator, npe: NPE | None = None) -> list[Row]:
    from sciml_plugins.distribution_transformer import NormalVariance
    from sciml_plugins.distribution_transformer.tasks import normal_variance_kl

    task = NormalVariance()
    groups = _groups(task, problems, g)
    post = [(p.prior[:, 0] + p.z.shape[1] / 2, p.prior[:, 1] + 0.5 * p.z.square().sum((1, 2))) for p in groups]
    kls, seconds, fits = [], 0.0, []
    for p, (a, b) in zip(groups, post):
        q, s = _timed(lambda p=p: model.predict(p.prior, p.z))
        seconds += s
        mix = _base_mixture(q)
        kls.append(normal_variance_kl(mix, a, b))
        fits.append(_prior_fit(model, p))
    rows = [_summary("normal-variance", "distribution transformer", torch.cat(kls), seconds)]
    if svi_steps:
        kls, seconds, refits = [], 0.0, 0
        for p, (a, b), init in zip(groups, post, fits):
            (q, refit), s = _timed(lambda p=p, init=init: _with_refit(_svi_variance, p, svi_steps, init))
            refits += refit
            seconds += s
            kls.append(normal_variance_kl(q, a, b))
        rows.append(_summary("normal-variance", f"pyro SVI ({svi_steps} steps)", torch.cat(kls), seconds,
                             f"{refits} of {len(groups)} groups refit at lr 0.01"))
        kls, seconds = [], 0.0
        for p, (a, b), init in zip(groups, post, fits):
            q, s = _timed(lambda p=p, init=init: svi_stratified(_variance_log_joint(p), init, svi_steps, g))
            seconds += s
            kls.append(normal_variance_kl(q, a, b))
        rows.append(_summary("normal-variance", f"mixture SVI, stratified ELBO ({svi_steps} steps)", torch.cat(kls),
                             seconds))
    if npe is not None:
        rows.append(_npe_row("normal-variance", npe, task, groups, lambda q, i: normal_variance_kl(q, *post[i]))[0])
    return rows


# -- gp-lengthscale -------------------------------------------------------------------------------


def _lengthscale_rows(model, problems: int, g: torch.Generator) -> list[Row]:
    """The model against the quadrature reference (256 points of log l): KL, and the time of each."""
    from sciml_plugins.distribution_transformer.tasks import (
        GPLengthscale,
        gp_lengthscale_grid_posterior,
        grid_kl,
    )

    task = GPLengthscale()
    grid = task.grid()
    kls, seconds, exact_seconds = [], 0.0, 0.0
    for p in _groups(task, problems, g):
        x, y = p.z[..., 0], p.z[..., 1]
        log_p, s = _timed(lambda p=p, x=x, y=y: gp_lengthscale_grid_posterior(p.prior, x, y, grid, task.noise_var))
        exact_seconds += s
        q, s = _timed(lambda p=p: model.predict(p.prior, p.z))
        seconds += s
        kls.append(grid_kl(_base_mixture(q), grid, log_p))
    return [_summary("gp-lengthscale", "distribution transformer", torch.cat(kls), seconds),
            Row("gp-lengthscale", "quadrature on the grid (the reference)", math.nan, math.nan, math.nan,
                exact_seconds, problems, "256 GP marginal likelihoods per problem")]


def _variance_log_joint(p):
    from sciml_plugins.distribution_transformer.tasks import inverse_gamma_log_variance_log_prob

    alpha, beta, z2, n = p.prior[:, 0], p.prior[:, 1], p.z.square().sum((1, 2)), p.z.shape[1]

    def log_joint(theta: torch.Tensor) -> torch.Tensor:  # (S, B, 1) -> (S, B)
        t = theta[..., 0].clamp(-300.0, 300.0)
        return inverse_gamma_log_variance_log_prob(t, alpha, beta) - 0.5 * n * t - 0.5 * z2 * torch.exp(-t)

    return log_joint


def _base_mixture(q):
    from sciml_plugins.distribution_transformer.mixtures import from_distribution

    return from_distribution("q", q.base_dist)


def _prior_fit(model, p):
    return _base_mixture(model.predict(p.prior, p.z[:, :0]))


def _svi_variance(p, steps: int, init, *, lr: float):
    import pyro
    import pyro.distributions as dist
    from sciml_plugins.distribution_transformer import Mixture
    from sciml_plugins.distribution_transformer.tasks import inverse_gamma_log_variance_log_prob
    from torch.distributions import constraints

    alpha, beta = p.prior[:, 0], p.prior[:, 1]
    b = alpha.shape[0]

    def model():  # the log-variance prior as a factor: finite for any draw (the exp of InverseGamma overflows)
        with pyro.plate("problems", b):
            theta = pyro.sample("theta", dist.ImproperUniform(constraints.real, (b,), ()))
            t = theta.clamp(-300.0, 300.0)
            pyro.factor("prior", inverse_gamma_log_variance_log_prob(t, alpha, beta))
            pyro.sample("z", dist.Normal(0.0, torch.exp(0.5 * t)[:, None]).to_event(1), obs=p.z[..., 0])

    def guide():
        logits = pyro.param("logits", init.log_weights.clone())
        loc = pyro.param("loc", init.means[..., 0].clone())
        scale = pyro.param("scale", init.scale_tril[..., 0, 0].clone(), constraint=constraints.greater_than(1e-3))
        with pyro.plate("problems", b):
            pyro.sample("theta", dist.MixtureSameFamily(dist.Categorical(logits=logits), dist.Normal(loc, scale)))

    s = _pyro_svi(model, guide, steps, lr)
    return Mixture(torch.log_softmax(s["logits"], -1), s["loc"][..., None], s["scale"][..., None, None])


# -- sequential fusion ----------------------------------------------------------------------------


def fusion_run(model, tracks: int, steps: int, g: torch.Generator, *, step_scale: float = 0.5, noise: float = 1.0,
               per_step: int = 4):
    """Filter ``tracks`` random walks with the model and exactly; per step: the true states, the two
    filters' posteriors (:class:`Mixture` s)."""
    from sciml_plugins.distribution_transformer import Mixture
    from sciml_plugins.distribution_transformer.mixtures import from_distribution
    from sciml_plugins.distribution_transformer.tasks import gmm_gaussian_posterior, random_walk_prediction

    f64 = torch.float64
    prior = Mixture(torch.log(torch.tensor([0.3, 0.7], dtype=f64)).expand(tracks, 2),
                    torch.tensor([[-2.0, 0.0], [2.0, 1.0]], dtype=f64).expand(tracks, 2, 2),
                    torch.linalg.cholesky(torch.tensor([[[1.0, 0.6], [0.6, 1.0]], [[1.5, -0.5], [-0.5, 0.8]]],
                                                       dtype=f64)).expand(tracks, 2, 2, 2))
    x = prior.sample(1, g)[0]
    sigma = torch.full((tracks,), noise, dtype=f64)
    exact, learned, out = prior, prior, []
    for t in range(steps):
        if t:
            x = x + step_scale * torch.randn(x.shape, generator=g, dtype=f64)
            exact, learned = random_walk_prediction(exact, step_scale), random_walk_prediction(learned, step_scale)
        z = x[:, None] + noise * torch.randn(tracks, per_step, 2, generator=g, dtype=f64)
        exact = gmm_gaussian_posterior(exact, z, sigma)
        learned = from_distribution("q", model.predict(learned.distribution(), z, noise_scale=sigma))
        out.append((x.clone(), exact, learned))
    return out


def _fusion_rows(model, g: torch.Generator) -> list[Row]:
    from sciml_plugins.distribution_transformer.mixtures import mixture_kl

    run, seconds = _timed(lambda: fusion_run(model, 200, 10, g))
    nll_gap = torch.stack([(e.log_prob(x) - q.log_prob(x)) for x, e, q in run])  # (steps, tracks)
    kl = torch.stack([mixture_kl(e, q, 10_000, g)[0] for _, e, q in run])
    per_step = nll_gap.mean(1)
    note = ("NLL(model) - NLL(exact) per step: " + " ".join(f"{v:+.3f}" for v in per_step.tolist())
            + f"; worst step {float(per_step.abs().max()):.4f} nats")
    return [_summary("fusion (10 steps)", "distribution transformer vs exact filter", kl.flatten(), seconds, note)]


def to_markdown(rows: Sequence[Row]) -> str:
    lines = ["| task | method | mean KL (± se) | median KL | W2 (NUTS subset): median (max) | seconds | problems | note |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        kl = "" if math.isnan(r.kl_mean) else f"{r.kl_mean:.2e} ± {r.kl_se:.1e}"
        med = "" if math.isnan(r.kl_median) else f"{r.kl_median:.2e}"
        w2 = f"{statistics.median(r.w2):.3f} (max {max(r.w2):.3g})" if r.w2 else ""
        sec = "" if math.isnan(r.seconds) else f"{r.seconds:.4g}"
        lines.append(f"| {r.task} | {r.method} | {kl} | {med} | {w2} | {sec} | {r.problems} | {r.note} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (``sciml bench distribution_transformer``); returns the exit code."""
    parser = argparse.ArgumentParser(prog="sciml bench distribution_transformer", description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="gmm-gaussian,normal-variance,wider,fusion",
                        help="also gp-lengthscale (no shipped model: give one with --model)")
    parser.add_argument("--model", action="append", default=[], metavar="TASK=FILE",
                        help="score this saved model instead of the shipped one for TASK (repeatable)")
    parser.add_argument("--problems", type=int, default=1000, help="problems per task (a multiple of 50)")
    parser.add_argument("--svi-steps", type=int, default=2000, help="0 leaves SVI out")
    parser.add_argument("--nuts", type=int, default=20, help="problems of the NUTS subset (0 leaves NUTS out)")
    parser.add_argument("--npe-epochs", type=int, default=5,
                        help="epoch cap of sbi's NPE baseline (trained once per task; 0 leaves it out)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--output", default=None, help="also write the markdown table to this file")
    ns = parser.parse_args(argv)
    if ns.problems < GROUP or ns.problems % GROUP:
        parser.error(f"--problems must be a positive multiple of {GROUP}")
    files = dict(m.partition("=")[::2] for m in ns.model)
    if any(not task or not path for task, path in files.items()):
        parser.error("--model takes TASK=FILE")
    import sciml

    torch.set_num_threads(ns.threads)
    DT = sciml.load("surrogate", "distribution-transformer")

    def model_for(task: str):
        if task in files:
            return DT.load(files[task])
        if task not in DT.pretrained():
            parser.error(f"no shipped model for {task}: give one with --model {task}=FILE")
        return DT.pretrained(task)

    g = torch.Generator().manual_seed(SEED)
    rows: list[Row] = []
    npe: dict[str, NPE] = {}

    def npe_for(name: str) -> NPE | None:
        if ns.npe_epochs and name not in npe:
            npe[name] = _train_npe(name, ns.npe_epochs)
        return npe.get(name)

    for task in [t.strip() for t in ns.tasks.split(",") if t.strip()]:
        if task in ("gmm-gaussian", "wider"):
            new = _gmm_rows(model_for("gmm-gaussian"), ns.problems, ns.svi_steps, min(ns.nuts, ns.problems // GROUP),
                            g, wider=task == "wider", npe=npe_for("gmm-gaussian"))
        elif task == "normal-variance":
            new = _variance_rows(model_for("normal-variance"), ns.problems, ns.svi_steps, g,
                                 npe_for("normal-variance"))
        elif task == "gp-lengthscale":
            new = _lengthscale_rows(model_for("gp-lengthscale"), ns.problems, g)
        elif task == "fusion":
            new = _fusion_rows(model_for("gmm-gaussian"), g)
        else:
            print(f"sciml bench distribution_transformer: unknown task {task!r}", file=sys.stderr)
            return 2
        for row in new:
            print(to_markdown([row]).splitlines()[-1], flush=True)
        rows += new
    return finish(to_markdown(rows), ns.output)


if __name__ == "__main__":
    sys.exit(main())
