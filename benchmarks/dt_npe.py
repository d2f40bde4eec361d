"""sbi's neural posterior estimation (NPE) as the amortised baseline of the distribution-transformer benchmark.

The baseline a sbi user would build for "a prior that changes at query time": one conditional
density estimator ``q(theta | prior, data)`` trained on ``(theta, prior, data)`` simulations from the
same task (meta-prior, simulator, data-set sizes) and the same number of simulated problems as the
shipped model (its recipe's steps x batch), with sbi's neural spline flow (``NPE(density_estimator="nsf")``:
5 transforms of 50 hidden units, 10 bins; sbi's default MAF is only a Gaussian on a 1-D parameter)
and sbi's training defaults (z-scored inputs, Adam 5e-4, early stopping on 10 % held out) but the
model's batch size (500) and an epoch cap. It is given every advantage the model has: the
task's exact standardisation (:meth:`Task.encode`; the posterior of the standardised problem, mapped
back, is the posterior) and the likelihood's sufficient statistics in place of the raw data
(gmm-gaussian: the standardised noise sd, the data mean being the centre; normal-variance:
``log(1 + sum z^2)`` of the standardised data), with the data-set size; prior components sorted by
weight, with the weight in place of its log (so that padding is not an outlier to z-score) and
padded with zeros to the largest count. One (theta, data) pair per problem:
what a simulator gives (the model's training also uses exact posterior draws, which a simulator
does not have).
"""

from __future__ import annotations

import math
import time

import torch

__all__ = ["NPEPosterior", "context", "train_npe"]

def _affine(enc, dim: int, batch: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """``(shift (B, d), scale (B,))`` of the task's map from standardised to inference space, read off
    ``enc.undo`` (affine and isotropic for the tasks here)."""
    from sciml_plugins.distribution_transformer import Mixture

    unit = Mixture(torch.zeros(batch, 1, dtype=dtype), torch.zeros(batch, 1, dim, dtype=dtype),
                   torch.eye(dim, dtype=dtype).expand(batch, 1, dim, dim))
    back = enc.undo(unit)
    return back.means[:, 0], back.scale_tril[:, 0, 0, 0]


def context(task, prior, z: torch.Tensor, extras: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """NPE inputs for a batch of problems: ``(context (B, C), shift (B, d), scale (B,))``, with
    ``theta_std = (theta - shift) / scale`` the standardised parameter."""
    z = z.to(torch.float64)
    b = z.shape[0]
    enc = task.encode(prior, z, extras)
    shift, scale = _affine(enc, task.dim, b, z.dtype)
    feats = enc.prior
    if feats.ndim == 3:  # mixture tokens: weights first, sorted, padded with zeros to the largest count
        feats = torch.cat([feats[..., :1].exp(), feats[..., 1:]], -1)
        order = feats[..., 0].argsort(-1, descending=True)
        feats = torch.gather(feats, 1, order[..., None].expand_as(feats))
        pad = task.components[1] - feats.shape[1]
        feats = torch.cat([feats, feats.new_zeros(b, pad, feats.shape[-1])], 1).flatten(1)
    n = z.shape[1]
    if task.name == "gmm-gaussian":
        stats = torch.log(extras["noise_scale"].to(z.dtype) / scale)[:, None]
    elif task.name == "normal-variance":
        stats = torch.log1p(enc.obs.square().sum((1, 2)))[:, None] if n else z.new_zeros(b, 1)
    else:
        raise ValueError(f"no sufficient statistics for task {task.name!r}")
    return torch.cat([feats, enc.context, stats], -1), shift, scale


class _NoTracking:
    """An sbi tracker that records nothing (sbi's default writes TensorBoard logs into ``./sbi-logs``)."""

    log_dir = None

    def log_metric(self, name: str, value: float, step: int | None = None) -> None:
        pass

    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        pass

    def log_params(self, params: dict) -> None:
        pass

    def add_figure(self, name: str, figure: object, step: int | None = None) -> None:
        pass

    def flush(self) -> None:
        pass


def train_npe(task, simulations: int, generator: torch.Generator, *, batch: int = 500, max_epochs: int = 20):
    """Simulate ``simulations`` problems (in batches of ``batch``, one size per batch as the task draws
    them) and fit sbi's default NPE; ``(density estimator, seconds simulating, seconds training, epochs)``."""
    from sbi.inference import NPE

    t0 = time.perf_counter()
    thetas, contexts = [], []
    for _ in range(math.ceil(simulations / batch)):
        p = task.simulate(batch, generator, dtype=torch.float64)
        ctx, shift, scale = context(task, p.prior, p.z, p.extras)
        thetas.append((p.theta[:, 0] - shift) / scale[:, None])
        contexts.append(ctx)
    theta, x = torch.cat(thetas)[:simulations].float(), torch.cat(contexts)[:simulations].float()
    simulated = time.perf_counter() - t0
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # sbi initialises and shuffles with torch's global generator
        inference = NPE(density_estimator="nsf", show_progress_bars=False, tracker=_NoTracking())
        t0 = time.perf_counter()
        estimator = inference.append_simulations(theta, x).train(training_batch_size=batch, max_num_epochs=max_epochs)
    epochs = inference._summary["epochs_trained"][-1]
    return estimator, simulated, time.perf_counter() - t0, int(epochs)


class NPEPosterior:
    """The fitted NPE's posteriors of a batch of problems, in inference space: ``log_prob(x (S, B, d))
    -> (S, B)`` (float64; in chunks of ``chunk`` draws), so the benchmark's KL estimators take it as
    they take a mixture."""

    def __init__(self, estimator, task, prior, z: torch.Tensor, extras: dict, chunk: int = 1000) -> None:
        self.estimator, self.chunk = estimator, chunk
        self.condition, self.shift, self.scale = context(task, prior, z, extras)
        self.condition = self.condition.float()

    def to(self, dtype: torch.dtype) -> NPEPosterior:
        return self

    @torch.no_grad()
    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        d = x.shape[-1]
        std = (x.to(torch.float64) - self.shift) / self.scale[:, None]
        out = [self.estimator.log_prob(part.float(), self.condition).double()
               for part in std.split(self.chunk, dim=0)]
        return torch.cat(out) - d * self.scale.log()

    @torch.no_grad()
    def sample(self, num: int, generator: torch.Generator) -> torch.Tensor:
        """``num`` draws of every posterior: ``(num, B, d)`` float64 (sbi samples with torch's global
        generator: seeded from ``generator`` inside a forked state)."""
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            std = self.estimator.sample((num,), self.condition).double()
        return self.shift + self.scale[:, None] * std
