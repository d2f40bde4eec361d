"""The LightSB solver: fits a Gaussian-mixture Schrödinger potential from samples of p0 and p1."""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from sciml import Solver
from sciml.progress import check_progress
from sciml.validation import (
    check_bool,
    check_generator,
    check_nonnegative,
    check_positive,
    check_positive_int,
)

from .bridge import Bridge
from .data import SampleSource, prepare_data, resolve_problem
from .potential import GaussianMixturePotential
from .starts import check_init_potential, new_potential
from .training import best_start, train

__all__ = ["LightSB", "SampleSource"]



class LightSB(Solver):
    """Light Schrödinger Bridge (Korotin, Gushchin, Burnaev, ICLR 2024) and LightSB-M.

    Fits the adjusted potential ``v(y) = sum_k alpha_k N(y | r_k, eps S_k)`` so that the plan
    ``pi(x1 | x0) ∝ exp(<x0, x1> / eps) v(x1)`` is the entropic OT plan between ``p0`` and ``p1``
    for the cost ``|x0 - x1|^2 / 2`` with regularisation ``eps`` (equivalently, the Schrödinger
    bridge for the reference ``dX = sqrt(eps) dW`` on ``t in [0, 1]``).

    Objectives:

    * ``"lightsb"`` (default): ``mean(-log v(X1)) + mean(log C(X0))`` on independent minibatches
      of p0 and p1 (equals ``KL(pi* || pi_theta)`` up to a constant).
    * ``"matching"`` (LightSB-M): bridge matching from a given coupling ``(x0[i], x1[i])``: the
      drift of the bridge regresses the Brownian-bridge drift ``(x1 - x_t) / (1 - t)`` at
      ``x_t = t x1 + (1 - t) x0 + sqrt(eps t (1 - t)) xi``, ``t ~ U[0, 1 - t_gap]``. Any coupling
      with the right marginals (even the independent one) has the SB as minimiser in this family.

    Args:
        eps: reference-process variance (> 0).
        n_components: K, number of mixture components (<= number of target samples).
        covariance: ``"diag"`` (``S_k = diag(exp s_k)``) or ``"full"`` (``S_k = L_k L_k^T``, ``L_k``
            lower triangular with diagonal ``exp(s_k / 2)``: a Cholesky factor).
        objective: ``"lightsb"`` or ``"matching"``.
        num_steps: maximum number of Adam steps.
        batch_size: minibatch size (of each of p0 and p1).
        lr: Adam learning rate.
        chol_lr_scale: the off-diagonal Cholesky entries of full covariances use ``lr * chol_lr_scale``
            (``None``: ``1 / sqrt(D)``, which keeps the relative step of ``L_k`` comparable to the others).
        lr_schedule: ``"cosine"`` (decay to ``lr / 100`` over ``num_steps``) or ``"constant"`` (Adam).
        optimizer: ``"adam"`` (minibatches) or ``"lbfgs"`` (full batch: all training samples, or
            one fixed draw of ``batch_size`` from a sampler; one L-BFGS iteration with strong-Wolfe
            line search per step; ``lr`` is then the L-BFGS step scale, 1 is the usual choice).
            L-BFGS converges to the exact minimiser on small problems (e.g. K = 1 Gaussians).
        init_scale: initial eigenvalues of every ``S_k`` (``init="identity"``).
        init: ``"identity"`` (``S_k = init_scale I``, ``r_k`` = K samples of p1, as published) or
            ``"gaussian"``: every ``S_k`` starts at the closed-form ``S*`` of the EOT between the
            Gaussians moment-matched to the training samples (its diagonal for ``covariance="diag"``;
            for ``"full"`` ``S*`` itself), and
            ``r_k = m1 - S_k m0 + init_spread (y_k - m1)`` with ``y_k`` K samples of p1 and ``m0``,
            ``m1`` the sample means (``init_spread = 0``, K = 1, full: the exact Gaussian plan);
            ``"clusters"``: the cluster warm start of :func:`~sciml_plugins.lightsb.warmstart.cluster_init`
            (k-means pieces of p0 matched to p1 by a Sinkhorn plan on a subsample, per-piece Gaussian
            closed form, weights refitted); ``"targets"``: the warm start of
            :func:`~sciml_plugins.lightsb.warmstart.target_cluster_init` (k-means pieces of p1, each
            the target of a Gaussian closed form from the whole p0, weights refitted; for large eps).
        init_spread: spread of the initial ``r_k`` around the Gaussian plan's intercept
            (``init="gaussian"`` only).
        cluster_subsample: subsample size per side of the Sinkhorn plan (``init="clusters"`` only).
        val_fraction: fraction of the given samples held out for early stopping (tensor inputs);
            0 disables the held-out loss (callable inputs draw ``val_size`` fresh samples instead).
        val_size: held-out sample count for callable inputs.
        eval_every: steps between held-out evaluations.
        patience: stop after this many evaluations without improvement (``None``: never); the
            parameters with the best held-out loss are returned.
        t_gap: the matching objective samples ``t ~ U[0, 1 - t_gap]``.
        progress: show a progress bar (``None``: only when stderr is a terminal).
        n_starts: number of warm starts tried (``init="clusters"`` or ``"targets"``, tensor inputs, the
            ``"lightsb"`` objective, ``val_fraction > 0``): each is trained for ``start_steps`` Adam steps
            (cosine decay over those steps), the one with the lowest held-out loss is kept and trained
            for ``num_steps`` more. Every start draws its own k-means seeding from ``generator``; with
            ``init="targets"`` the even-numbered starts (the first included) choose the number of
            pieces from the data, the odd ones use K pieces.
        start_steps: Adam steps per start when ``n_starts > 1``.
        init_min_weight: with ``solve(..., init_potential=...)``: the components of the given potential
            whose mean gate weight ``mean_x0 w_k(x0)`` on (up to 20 000 of) the training samples of p0
            is at most this are dropped before training (0: keep all).
        flush_denormal: train with denormal floats flushed to zero (``torch.set_flush_denormal``,
            reset to off at the end). The gates of far components underflow into denormals, which
            made a full-covariance step about twice as slow on the CPU; values below ~1e-38
            (float32) are lost, the results are otherwise unchanged.
    """

    name: ClassVar[str] = "lightsb"

    def __init__(
        self,
        eps: float = 1.0,
        n_components: int = 10,
        covariance: str = "diag",
        *,
        objective: str = "lightsb",
        num_steps: int = 5000,
        batch_size: int = 128,
        lr: float = 1e-2,
        chol_lr_scale: float | None = None,
        lr_schedule: str = "cosine",
        optimizer: str = "adam",
        init_scale: float = 1.0,
        init: str = "identity",
        init_spread: float = 1.0,
        cluster_subsample: int = 2000,
        val_fraction: float = 0.1,
        val_size: int = 2048,
        eval_every: int = 100,
        patience: int | None = 20,
        t_gap: float = 0.01,
        progress: bool | None = None,
        n_starts: int = 1,
        start_steps: int = 500,
        init_min_weight: float = 0.0,
        flush_denormal: bool = False,
    ) -> None:
        self.eps = check_positive("eps", eps)
        self.n_components = check_positive_int("n_components", n_components)
        if covariance not in ("diag", "full"):
            raise ValueError(f"covariance must be 'diag' or 'full', got {covariance!r}")
        if objective not in ("lightsb", "matching"):
            raise ValueError(f"objective must be 'lightsb' or 'matching', got {objective!r}")
        if lr_schedule not in ("cosine", "constant"):
            raise ValueError(f"lr_schedule must be 'cosine' or 'constant', got {lr_schedule!r}")
        if optimizer not in ("adam", "lbfgs"):
            raise ValueError(f"optimizer must be 'adam' or 'lbfgs', got {optimizer!r}")
        self.covariance, self.objective, self.lr_schedule = covariance, objective, lr_schedule
        self.optimizer = optimizer
        self.num_steps = check_positive_int("num_steps", num_steps)
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.lr = check_positive("lr", lr)
        self.chol_lr_scale = None if chol_lr_scale is None else check_positive("chol_lr_scale", chol_lr_scale)
        self.init_scale = check_positive("init_scale", init_scale)
        if init not in ("identity", "gaussian", "clusters", "targets"):
            raise ValueError(f"init must be 'identity', 'gaussian', 'clusters' or 'targets', got {init!r}")
        self.cluster_subsample = check_positive_int("cluster_subsample", cluster_subsample)
        self.init = init
        self.init_spread = check_nonnegative("init_spread", init_spread)
        self.val_fraction = check_nonnegative("val_fraction", val_fraction)
        if self.val_fraction >= 1:
            raise ValueError(f"val_fraction must be < 1, got {val_fraction}")
        self.val_size = check_positive_int("val_size", val_size)
        self.eval_every = check_positive_int("eval_every", eval_every)
        self.patience = None if patience is None else check_positive_int("patience", patience)
        self.t_gap = check_positive("t_gap", t_gap)
        if self.t_gap >= 1:
            raise ValueError(f"t_gap must be < 1, got {t_gap}")
        self.progress = check_progress(progress)
        self.n_starts = check_positive_int("n_starts", n_starts)
        self.start_steps = check_positive_int("start_steps", start_steps)
        self.init_min_weight = check_nonnegative("init_min_weight", init_min_weight)
        if self.init_min_weight >= 1:
            raise ValueError(f"init_min_weight must be < 1, got {init_min_weight}")
        self.flush_denormal = check_bool("flush_denormal", flush_denormal)
        if self.n_starts > 1 and (init not in ("clusters", "targets") or objective != "lightsb" or self.val_fraction <= 0):
            raise ValueError("n_starts > 1 needs init='clusters' or 'targets', objective='lightsb' and val_fraction > 0")

    # ------------------------------------------------------------------ solve
    def solve(  # type: ignore[override]
        self,
        x0: SampleSource | Any,
        x1: SampleSource | None = None,
        *,
        generator: torch.Generator | None = None,
        init_potential: GaussianMixturePotential | Bridge | None = None,
    ) -> Bridge:
        """Fit the bridge from p0 to p1.

        Args:
            x0: samples of p0, a tensor (n0, D), or a sampler ``f(n, generator) -> (n, D)``; or, with
                ``x1`` omitted, a problem object: one with samplers ``sample_p0(n, generator)`` and
                ``sample_p1(n, generator)`` (e.g. an :class:`~sciml_plugins.lightsb.EOTBenchmark`),
                or with sample tensors as attributes ``x0`` and ``x1``.
            x1: samples of p1, a tensor (n1, D), or a sampler. For ``objective="matching"`` the
                rows of ``x0`` and ``x1`` are pairs of the coupling (tensors of equal length), or
                ``x0`` is a sampler of pairs ``f(n, generator) -> (x0, x1)`` and ``x1`` is ``None``.
            generator: seeds initialisation, minibatches and the held-out split.
            init_potential: start from a copy of this potential (or of a bridge's potential; e.g. a
                diagonal fit continued with full covariances) instead of ``init``: same ``eps`` and D;
                its components with mean gate weight at most ``init_min_weight`` are dropped, a
                diagonal potential is converted exactly for ``covariance="full"`` (full to diagonal
                raises), and ``n_components`` is ignored (the kept components are trained). Needs
                ``n_starts = 1``.

        Returns:
            The fitted :class:`Bridge`; ``loss_history`` holds the training loss per step and
            ``diagnostics`` the number of steps, best held-out loss and wall time.
        """
        if not self.flush_denormal:
            return self._solve(x0, x1, generator, init_potential)
        was_on = float(torch.tensor([1e-40], dtype=torch.float32) * 2) == 0.0  # denormals already flushed
        torch.set_flush_denormal(True)
        try:
            return self._solve(x0, x1, generator, init_potential)
        finally:
            torch.set_flush_denormal(was_on)  # the caller's setting

    def _solve(self, x0: SampleSource | Any, x1: SampleSource | None, generator: torch.Generator | None,
               init_potential: GaussianMixturePotential | Bridge | None) -> Bridge:
        check_generator("generator", generator)
        src = init_potential.potential if isinstance(init_potential, Bridge) else init_potential
        if src is not None:
            src = check_init_potential(self, src)
        x0, x1 = resolve_problem(x0, x1)
        data = prepare_data(x0, x1, matching=self.objective == "matching", val_fraction=self.val_fraction,
                            val_size=self.val_size, generator=generator)
        means = data.initial_means(self.n_components, generator)
        potential = new_potential(self, data, means, generator, src)
        start_losses: list[float] = []
        if self.n_starts > 1:
            potential, start_losses = best_start(
                self, potential, lambda i: new_potential(self, data, means, generator, start_index=i), data, generator)
        run, wall = train(self, potential, data, generator)
        use_val = bool(run.val_history)
        diagnostics: dict[str, Any] = {
            "objective": self.objective,
            "num_steps": run.steps,
            "stopped_early": run.stopped_early,
            "best_step": run.best_step if use_val else run.steps,
            "best_val_loss": run.best_val if use_val else float("nan"),
            "final_loss": run.history[-1],
            "wall_time_s": wall,
            "val_history": run.val_history,
            "start_val_losses": start_losses,
        }
        return Bridge(potential, run.history, diagnostics)
