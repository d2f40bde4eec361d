"""The LightSB solver: fits a Gaussian-mixture Schrödinger potential from samples of p0 and p1."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any, ClassVar

import torch

from sciml import Solver
from sciml.progress import check_progress
from sciml.validation import (
    check_bool,
    check_choice,
    check_generator,
    check_nonnegative,
    check_positive,
    check_positive_int,
)

from .bridge import Bridge
from .data import SampleSource, TrainingData, prepare_data, resolve_problem
from .gaussian import gaussian_basis
from .potential import GaussianMixturePotential
from .rule import FitPlan, default_plan
from .settings import Settings
from .starts import check_init_potential, new_potential
from .training import TrainingRun, best_start, train

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

    The settings left at ``None`` are chosen at ``solve`` time by the default rule
    (:func:`~sciml_plugins.lightsb.rule.default_plan`) from the dimension, ``eps`` and the training
    samples: covariance, K, warm start and step budget (a second start, a rotation into the Gaussian
    basis or a full-covariance continuation where the rule says so); the chosen plan is in
    ``bridge.diagnostics["plan"]``. A value given explicitly replaces the rule's; fixing
    ``n_components``, ``covariance`` or ``init`` (or passing ``init_potential``) also drops the rule's
    extra stages, and fixing ``init`` its number of starts.

    Args:
        eps: reference-process variance (> 0).
        n_components: K, number of mixture components (<= number of target samples).
        covariance: ``"diag"`` (``S_k = diag(exp s_k)``) or ``"full"`` (``S_k = L_k L_k^T``, ``L_k``
            lower triangular with diagonal ``exp(s_k / 2)``: a Cholesky factor).
        objective: ``"lightsb"`` or ``"matching"`` (the rule then gives the published diagonal model).
        num_steps: maximum number of optimiser steps.
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
            :func:`~sciml_plugins.lightsb.warmstart.target_cluster_init` (clusters of p1, each the target
            of a Gaussian closed form from p0, weights refitted; for large eps).
        init_spread: spread of the initial ``r_k`` around the Gaussian plan's intercept
            (``init="gaussian"`` only).
        cluster_subsample: subsample size per side of the Sinkhorn plan (``init="clusters"`` only).
        val_fraction: fraction of the given samples held out (tensor inputs) for choosing among fits
            and checkpoints; 0 disables the held-out loss (callable inputs draw ``val_size`` fresh
            samples instead).
        val_size: held-out sample count for callable inputs.
        eval_every: steps between held-out evaluations (``None``: once, at the end of the budget); the
            parameters with the best held-out loss are returned.
        patience: stop after this many evaluations without improvement (``None``: never).
        t_gap: the matching objective samples ``t ~ U[0, 1 - t_gap]``.
        progress: show a progress bar (``None``: only when stderr is a terminal).
        n_starts: number of starts tried (tensor inputs, the ``"lightsb"`` objective,
            ``val_fraction > 0``): each is trained for ``start_steps`` Adam steps (cosine decay over
            those steps), the one with the lowest held-out loss is kept and trained for ``num_steps``
            more. Every start draws its own initial means (and clustering seeds) from ``generator``; with
            ``init="targets"`` the even-numbered starts (the first included) choose the number of
            pieces from the data, the odd ones use K pieces.
        start_steps: Adam steps per start when ``n_starts > 1``.
        init_min_weight: with ``solve(..., init_potential=...)``: the components of the given potential
            whose mean gate weight ``mean_x0 w_k(x0)`` on (up to 20 000 of) the training samples of p0
            is at most this are dropped before training (0: keep all).
        flush_denormal: train with denormal floats flushed to zero (``torch.set_flush_denormal``,
            restored at the end). The gates of far components underflow into denormals, which made a
            full-covariance step 2 - 3 times slower on the CPU; values below ~1e-38 (float32) are lost.
    """

    name: ClassVar[str] = "lightsb"

    def __init__(
        self,
        eps: float = 1.0,
        n_components: int | None = None,
        covariance: str | None = None,
        *,
        objective: str = "lightsb",
        num_steps: int | None = None,
        batch_size: int | None = None,
        lr: float | None = None,
        chol_lr_scale: float | None = None,
        lr_schedule: str = "cosine",
        optimizer: str = "adam",
        init_scale: float = 1.0,
        init: str | None = None,
        init_spread: float | None = None,
        cluster_subsample: int = 1000,
        val_fraction: float = 0.05,
        val_size: int = 2048,
        eval_every: int | None = None,
        patience: int | None = None,
        t_gap: float = 0.01,
        progress: bool | None = None,
        n_starts: int | None = None,
        start_steps: int | None = None,
        init_min_weight: float = 0.0,
        flush_denormal: bool = True,
    ) -> None:
        self.eps = check_positive("eps", eps)
        self.objective = check_choice("objective", objective, ("lightsb", "matching"))
        self.lr_schedule = check_choice("lr_schedule", lr_schedule, ("cosine", "constant"))
        self.optimizer = check_choice("optimizer", optimizer, ("adam", "lbfgs"))
        # the settings the default rule chooses when left at None
        self.n_components = _optional(check_positive_int, "n_components", n_components)
        self.covariance = _optional(check_choice, "covariance", covariance, ("diag", "full"))
        self.init = _optional(check_choice, "init", init, ("identity", "gaussian", "clusters", "targets"))
        self.num_steps = _optional(check_positive_int, "num_steps", num_steps)
        self.batch_size = _optional(check_positive_int, "batch_size", batch_size)
        self.lr = _optional(check_positive, "lr", lr)
        self.init_spread = _optional(check_nonnegative, "init_spread", init_spread)
        self.n_starts = _optional(check_positive_int, "n_starts", n_starts)
        self.start_steps = _optional(check_positive_int, "start_steps", start_steps)
        self.chol_lr_scale = None if chol_lr_scale is None else check_positive("chol_lr_scale", chol_lr_scale)
        self.init_scale = check_positive("init_scale", init_scale)
        self.cluster_subsample = check_positive_int("cluster_subsample", cluster_subsample)
        self.val_fraction = check_nonnegative("val_fraction", val_fraction)
        if self.val_fraction >= 1:
            raise ValueError(f"val_fraction must be < 1, got {val_fraction}")
        self.val_size = check_positive_int("val_size", val_size)
        self.eval_every = _optional(check_positive_int, "eval_every", eval_every)
        self.patience = _optional(check_positive_int, "patience", patience)
        self.t_gap = check_positive("t_gap", t_gap)
        if self.t_gap >= 1:
            raise ValueError(f"t_gap must be < 1, got {t_gap}")
        self.progress = check_progress(progress)
        self.init_min_weight = check_nonnegative("init_min_weight", init_min_weight)
        if self.init_min_weight >= 1:
            raise ValueError(f"init_min_weight must be < 1, got {init_min_weight}")
        self.flush_denormal = check_bool("flush_denormal", flush_denormal)
        if self.n_starts is not None and self.n_starts > 1 and (objective != "lightsb" or self.val_fraction <= 0):
            raise ValueError("n_starts > 1 needs objective='lightsb' and val_fraction > 0 (starts are compared "
                             "by the held-out LightSB loss)")

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
            src = check_init_potential(self.eps, self.covariance, self.n_starts, src)
        x0, x1 = resolve_problem(x0, x1)
        data = prepare_data(x0, x1, matching=self.objective == "matching", val_fraction=self.val_fraction,
                            val_size=self.val_size, generator=generator)
        plan = self._plan(data, src)
        basis = None
        if plan.gaussian_basis:
            basis = gaussian_basis(data.train["x0"], data.train["x1"], self.eps)
            data = data.rotated(basis)
        settings = self._settings(plan)
        fit = _fit(settings, data, generator, src, second_init=plan.second_init)
        if plan.full_steps > 0:
            full = replace(settings, covariance="full", num_steps=plan.full_steps, eval_every=plan.full_steps,
                           n_starts=1, init_min_weight=1e-3)
            fit = _fit(full, data, generator, fit.potential, previous=fit)
        potential = fit.potential if basis is None else fit.potential.rotated(basis)
        return Bridge(potential, fit.history, fit.diagnostics(self.objective, plan))

    def _plan(self, data: TrainingData, src: GaussianMixturePotential | None) -> FitPlan:
        """The default rule's plan with the explicitly given settings in place of its choices."""
        tensors = self.objective == "lightsb" and not data.paired
        plan = default_plan(self.eps, data.train.get("x0") if tensors else None,
                            data.train.get("x1") if tensors else None)
        given = {name: getattr(self, name) for name in _RULE_SETTINGS if getattr(self, name) is not None}
        if src is not None:
            given.setdefault("covariance", src.covariance)
            given["n_components"] = src.n_components
        if src is not None or given.keys() & {"n_components", "covariance", "init"}:
            plan = replace(plan, second_init=None, gaussian_basis=False, full_steps=0)
        if "init" in given or src is not None:
            plan = replace(plan, n_starts=1)
        if self.val_fraction <= 0 or not tensors:  # no held-out loss to choose among fits by
            plan = replace(plan, second_init=None, n_starts=1)
        return replace(plan, **given)

    def _settings(self, plan: FitPlan) -> Settings:
        return Settings(
            eps=self.eps, n_components=plan.n_components, covariance=plan.covariance, objective=self.objective,
            num_steps=plan.num_steps, batch_size=plan.batch_size, lr=plan.lr, chol_lr_scale=self.chol_lr_scale,
            lr_schedule=self.lr_schedule, optimizer=self.optimizer, init_scale=self.init_scale, init=plan.init,
            init_spread=plan.init_spread, cluster_subsample=self.cluster_subsample,
            eval_every=self.eval_every if self.eval_every is not None else plan.num_steps, patience=self.patience,
            t_gap=self.t_gap, progress=self.progress, n_starts=plan.n_starts, start_steps=plan.start_steps,
            init_min_weight=self.init_min_weight)


#: The settings :func:`~sciml_plugins.lightsb.rule.default_plan` chooses when they are left at ``None``.
_RULE_SETTINGS = ("n_components", "covariance", "init", "num_steps", "batch_size", "lr", "init_spread", "n_starts",
                  "start_steps")


def _optional(check: Any, name: str, value: Any, *args: Any) -> Any:
    return None if value is None else check(name, value, *args)


@dataclass
class _Fit:
    """One trained stage: the potential, its run and wall time, the held-out losses of its starts."""

    potential: GaussianMixturePotential
    run: TrainingRun
    wall: float
    start_losses: list[float]
    history: list[float]
    stages: list[dict[str, Any]]

    @property
    def best_val(self) -> float:
        return self.run.best_val if self.run.val_history else math.inf

    def diagnostics(self, objective: str, plan: FitPlan) -> dict[str, Any]:
        run, use_val = self.run, bool(self.run.val_history)
        return {
            "objective": objective,
            "num_steps": sum(st["num_steps"] for st in self.stages),
            "stopped_early": run.stopped_early,
            "best_step": run.best_step if use_val else run.steps,
            "best_val_loss": run.best_val if use_val else float("nan"),
            "final_loss": self.history[-1],
            "wall_time_s": sum(st["wall_time_s"] for st in self.stages),
            "val_history": run.val_history,
            "start_val_losses": self.start_losses,
            "plan": asdict(plan),
            "stages": self.stages,
        }


def _fit(settings: Settings, data: TrainingData, generator: torch.Generator | None,
         src: GaussianMixturePotential | None = None, previous: _Fit | None = None,
         second_init: str | None = None) -> _Fit:
    """Start (from ``src`` if given, else as ``settings.init`` says: the best of ``n_starts``, or of the
    ``init`` and ``second_init`` starts) and train."""
    def start(cfg: Settings, i: int) -> GaussianMixturePotential:
        if src is not None:
            return new_potential(cfg, data, None, generator, src)
        return new_potential(cfg, data, data.initial_means(cfg.n_components, generator), generator, start_index=i)

    starts = [lambda i=i: start(settings, i) for i in range(settings.n_starts)]
    if second_init is not None:
        starts.append(lambda: start(replace(settings, init=second_init), 0))
    start_losses: list[float] = []
    if len(starts) > 1:
        potential, start_losses = best_start(settings, starts, data, generator)
    else:
        potential = starts[0]()
    run, wall = train(settings, potential, data, generator)
    init = "previous stage" if previous else settings.init
    if second_init is not None and start_losses and start_losses[-1] < min(start_losses[:-1]):
        init = second_init
    stage = {"covariance": settings.covariance, "init": init, "n_components": potential.n_components,
             "num_steps": run.steps, "wall_time_s": wall,
             "best_val_loss": run.best_val if run.val_history else float("nan")}
    before = previous.history if previous else []
    return _Fit(potential, run, wall, start_losses, before + run.history, (previous.stages if previous else []) + [stage])
