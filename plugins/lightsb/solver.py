"""The LightSB solver: fits a Gaussian-mixture Schrödinger potential from samples of p0 and p1."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor

from sciml import Solver
from sciml.progress import check_progress, progress_bar
from sciml.validation import (
    check_bool,
    check_generator,
    check_nonnegative,
    check_positive,
    check_positive_int,
    check_tensor,
)

from .bridge import Bridge
from .potential import GaussianMixturePotential

__all__ = ["LightSB", "SampleSource"]

#: Samples of a distribution: a tensor ``(n, D)`` or a callable ``f(n, generator) -> (n, D)``.
SampleSource = Tensor | Callable[[int, torch.Generator | None], Tensor]



def _cosine_schedule(opt: torch.optim.Optimizer, total: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Cosine decay of each parameter group's lr from 1 to 1/100 of it over ``total`` steps."""
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: 0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * min(i, total) / total)))


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

    # ------------------------------------------------------------------ data handling
    @staticmethod
    def _check_samples(name: str, x: Tensor) -> Tensor:
        """Finite float32 / float64 samples (n, D), n, D >= 1; returned detached (training never
        back-propagates into the caller's tensors)."""
        check_tensor(name, x, ndim=2)
        if x.dtype not in (torch.float32, torch.float64):
            raise TypeError(f"{name} must be float32 or float64, got {x.dtype}")
        if x.shape[0] < 1 or x.shape[1] < 1:
            raise ValueError(f"{name} must have at least one row and one column, got {tuple(x.shape)}")
        return x.detach()

    @staticmethod
    def _call(name: str, src: Callable[..., Any], n: int, generator: torch.Generator | None) -> Any:
        """``src(n, generator)``; a ``TypeError`` (e.g. a wrong signature) says which sampler and how it is called."""
        try:
            return src(n, generator)
        except TypeError as exc:
            raise TypeError(f"calling the sampler {name}(n, generator) raised TypeError: {exc} "
                            "(a sampler is called as f(n, generator) and returns an (n, D) tensor)") from exc

    def _draw(self, name: str, src: SampleSource, n: int, generator: torch.Generator | None,
              dim: int | None = None) -> Tensor:
        x = self._check_samples(f"samples drawn from {name}", self._call(name, src, n, generator))
        if x.shape[0] != n or (dim is not None and x.shape[1] != dim):
            raise ValueError(f"{name}(n, generator) must return shape ({n}, {dim or 'D'}), got {tuple(x.shape)}")
        return x

    def _gaussian_init(self, potential: GaussianMixturePotential, x0: Tensor | None, x1: Tensor | None,
                       init_means: Tensor) -> None:
        """Start every ``S_k`` at the Gaussian closed-form ``S*`` (see ``init`` in the class doc)."""
        from .gaussian import gaussian_eot

        if x0 is None or x1 is None:
            raise ValueError("init='gaussian' needs samples of both p0 and p1")
        a, b = x0.detach().to(torch.float64).cpu(), x1.detach().to(torch.float64).cpu()
        d = a.shape[1]
        m0, m1 = a.mean(0), b.mean(0)
        if a.shape[0] <= d or b.shape[0] <= d:
            raise ValueError(f"init='gaussian' needs more than D={d} samples of p0 and p1 to estimate covariances")
        c0 = torch.cov(a.T, correction=0).reshape(d, d)
        c1 = torch.cov(b.T, correction=0).reshape(d, d)
        if int(torch.linalg.cholesky_ex(c0).info) != 0:
            raise ValueError("init='gaussian' needs samples of p0 with a nonsingular covariance; use init='identity'")
        plan = gaussian_eot(m0, c0, m1, c1, self.eps)
        S = plan.S_star
        if potential.covariance == "diag":
            S = torch.diag(torch.diagonal(S).clamp_min(1e-6))
        elif int(torch.linalg.cholesky_ex(S).info) != 0:
            raise ValueError("init='gaussian' with covariance='full' needs samples of p1 with a nonsingular "
                             "covariance; use init='identity'")
        potential.set_covariances(S)
        kw = {"dtype": potential.means.dtype, "device": potential.means.device}
        with torch.no_grad():
            y = init_means.detach().to(torch.float64).cpu()
            potential.means.copy_((m1 - S @ m0 + self.init_spread * (y - m1)).to(**kw))

    def _cluster_init(self, potential: GaussianMixturePotential, x0: Tensor | None, x1: Tensor | None,
                      generator: torch.Generator | None, start_index: int = 0) -> None:
        """Start from :func:`~sciml_plugins.lightsb.warmstart.cluster_init` (``init="clusters"``) or
        :func:`~sciml_plugins.lightsb.warmstart.target_cluster_init` (``init="targets"``)."""
        from .warmstart import cluster_init, target_cluster_init

        if x0 is None or x1 is None:
            raise ValueError(f"init={self.init!r} needs samples of both p0 and p1")
        for side_name, x in (("p0", x0), ("p1", x1)):
            if not bool((x != x[:1]).any()):
                raise ValueError(f"init={self.init!r} needs samples of {side_name} that are not all equal; "
                                 "use init='identity'")
        side = x1 if self.init == "targets" else x0
        if side.shape[0] < potential.n_components:
            raise ValueError(f"init={self.init!r} needs at least n_components={potential.n_components} samples of "
                             f"{'p1' if self.init == 'targets' else 'p0'}")
        gen = None
        if generator is not None:  # the warm start runs on the CPU: derive a CPU generator from the seed stream
            gen = torch.Generator().manual_seed(int(torch.randint(2**62, (1,), generator=generator, device=generator.device)))
        if self.init == "targets":
            # even-numbered starts choose the number of pieces from the data, odd ones use K pieces
            log_alpha, r, S = target_cluster_init(x0, x1, potential.n_components, self.eps, generator=gen,
                                                  diagonal=potential.covariance == "diag",
                                                  split_gain=None if start_index % 2 == 0 else 0.0)
        else:
            log_alpha, r, S = cluster_init(x0, x1, potential.n_components, self.eps, generator=gen, n_sub=self.cluster_subsample,
                                           diagonal=potential.covariance == "diag")
        potential.set_covariances(S)
        kw = {"dtype": potential.means.dtype, "device": potential.means.device}
        with torch.no_grad():
            potential.means.copy_(r.to(**kw))
            potential.raw_log_alpha.copy_((self.eps * (log_alpha - log_alpha.max())).to(**kw))

    def _copy_potential(self, src: GaussianMixturePotential, x0: Tensor | None, dim: int,
                        dtype: torch.dtype | None, device: torch.device | None) -> GaussianMixturePotential:
        """The start from ``init_potential``: prune by mean gate weight, convert, move to the data."""
        if src.dim != dim:
            raise ValueError(f"init_potential has D={src.dim}, the samples D={dim}")
        keep = None
        if self.init_min_weight > 0:
            if x0 is None:
                raise ValueError("init_min_weight > 0 needs samples of p0")
            with torch.no_grad():
                xs = x0[:20000].to(dtype=src.means.dtype, device=src.means.device)
                w = torch.softmax(src.conditional_logits(xs), dim=-1).mean(0)
            keep = w > self.init_min_weight
            if not bool(keep.any()):
                keep = w == w.max()
        pot = src.subset(keep, self.covariance).to(dtype=dtype, device=device)
        pot.requires_grad_(True)
        pot.train()
        return pot

    def _param_groups(self, potential: GaussianMixturePotential, dim: int) -> list[dict[str, Any]]:
        """Adam parameter groups: the off-diagonal Cholesky entries use ``lr * chol_lr_scale``."""
        groups: list[dict[str, Any]] = [{"params": [potential.raw_log_alpha, potential.means, potential.log_scales]}]
        if potential.chol_lower is not None:
            # Adam moves each of the D (D - 1) / 2 off-diagonal entries by ~lr, i.e. L_k by
            # ~lr * D / sqrt(2) in Frobenius norm against |L_k| ~ sqrt(D): scale by 1 / sqrt(D)
            scale = self.chol_lr_scale if self.chol_lr_scale is not None else 1.0 / math.sqrt(dim)
            groups.append({"params": [potential.chol_lower], "lr": self.lr * scale})
        return groups

    def _short_fit(self, potential: GaussianMixturePotential, train: dict[str, Tensor], val: dict[str, Tensor],
                   generator: torch.Generator | None, rdev: Any) -> float:
        """Train a candidate start for ``start_steps`` Adam steps (cosine decay); its held-out loss."""
        opt = torch.optim.Adam(self._param_groups(potential, train["x0"].shape[1]), lr=self.lr)
        total = self.start_steps
        sched = _cosine_schedule(opt, total)
        a_all, b_all = train["x0"], train["x1"]
        for _ in range(total):
            ia = torch.randint(a_all.shape[0], (self.batch_size,), generator=generator, device=rdev).to(a_all.device)
            ib = torch.randint(b_all.shape[0], (self.batch_size,), generator=generator, device=rdev).to(b_all.device)
            # index_select: the same rows as a_all[ia], ~9 instead of ~40 us on a 200 000-row pool
            loss = potential.lightsb_loss(a_all.index_select(0, ia), b_all.index_select(0, ib))
            if not torch.isfinite(loss):
                return math.inf
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        with torch.no_grad():
            return float(potential.lightsb_loss(val["x0"], val["x1"]))

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
        src_pot = init_potential.potential if isinstance(init_potential, Bridge) else init_potential
        if src_pot is not None:
            if not isinstance(src_pot, GaussianMixturePotential):
                raise TypeError("init_potential must be a GaussianMixturePotential or a Bridge, got "
                                f"{type(init_potential).__name__}")
            if abs(src_pot.eps - self.eps) > 1e-12 * self.eps:
                raise ValueError(f"init_potential has eps={src_pot.eps}, the solver eps={self.eps}")
            if self.covariance == "diag" and src_pot.covariance == "full":
                raise ValueError("a full-covariance init_potential cannot start a diagonal fit")
            if self.n_starts > 1:
                raise ValueError("init_potential needs n_starts = 1")
            for pname, p in src_pot.named_parameters():
                check_tensor(f"init_potential.{pname}", p)
        if x1 is None and not callable(x0) and not isinstance(x0, Tensor):
            problem = x0
            if callable(getattr(problem, "sample_p0", None)) and callable(getattr(problem, "sample_p1", None)):
                x0, x1 = problem.sample_p0, problem.sample_p1
            elif isinstance(getattr(problem, "x0", None), Tensor) and isinstance(getattr(problem, "x1", None), Tensor):
                x0, x1 = problem.x0, problem.x1
            else:
                raise TypeError("a problem object needs sample_p0 / sample_p1 samplers or x0 / x1 tensors, got "
                                f"{type(problem).__name__}")
        paired_sampler = self.objective == "matching" and callable(x0) and x1 is None
        if not paired_sampler:
            for name, src in (("x0", x0), ("x1", x1)):
                if not isinstance(src, Tensor) and not callable(src):
                    raise TypeError(f"{name} must be a torch.Tensor or a callable sampler, got {type(src).__name__}")
        dtype = device = None
        dim = None
        # ---- fixed tensors: validate, split off the held-out part
        data: dict[str, Tensor] = {}
        for name, src in (("x0", x0), ("x1", x1)):
            if isinstance(src, Tensor):
                data[name] = self._check_samples(name, src)
        if "x0" in data and "x1" in data:
            if data["x0"].shape[1] != data["x1"].shape[1]:
                raise ValueError(f"x0 and x1 must have the same dimension, got {data['x0'].shape[1]} and {data['x1'].shape[1]}")
            if data["x0"].dtype != data["x1"].dtype:
                raise TypeError(f"x0 and x1 must have the same dtype, got {data['x0'].dtype} and {data['x1'].dtype}")
            if data["x0"].device != data["x1"].device:
                raise ValueError("x0 and x1 must be on the same device")
        if self.objective == "matching" and not paired_sampler:
            if not ("x0" in data and "x1" in data):
                raise TypeError("objective='matching' needs paired tensors x0, x1 or a pair sampler x0 with x1=None")
            if data["x0"].shape[0] != data["x1"].shape[0]:
                raise ValueError("objective='matching' needs a coupling: x0 and x1 must have the same number of rows, "
                                 f"got {data['x0'].shape[0]} and {data['x1'].shape[0]}")
        if data:
            ref = next(iter(data.values()))
            dtype, device, dim = ref.dtype, ref.device, ref.shape[1]

        # probe samplers for dim / dtype (and reuse the draw as the held-out set)
        val: dict[str, Tensor] = {}
        if paired_sampler:
            pair = self._call("x0", x0, self.val_size, generator)
            if not (isinstance(pair, tuple) and len(pair) == 2):
                raise TypeError("a pair sampler must return a tuple (x0, x1)")
            a = self._check_samples("x0 drawn from the pair sampler", pair[0])
            b = self._check_samples("x1 drawn from the pair sampler", pair[1])
            if a.shape != b.shape:
                raise ValueError(f"the pair sampler returned shapes {tuple(a.shape)} and {tuple(b.shape)}")
            val["x0"], val["x1"] = a, b
            dtype, device, dim = a.dtype, a.device, a.shape[1]
        else:
            for name, src in (("x0", x0), ("x1", x1)):
                if not isinstance(src, Tensor):
                    v = self._draw(name, src, self.val_size, generator, dim)
                    if dim is not None and v.shape[1] != dim:
                        raise ValueError(f"x0 and x1 must have the same dimension, got {dim} and {v.shape[1]}")
                    if dtype is not None and v.dtype != dtype:
                        raise TypeError(f"x0 and x1 must have the same dtype, got {dtype} and {v.dtype}")
                    val[name] = v
                    dtype, device, dim = v.dtype, v.device, v.shape[1]
        assert dim is not None
        # random draws happen on the generator's device (a CUDA generator for CUDA data)
        rdev = generator.device if generator is not None else device
        use_val = bool(val) or self.val_fraction > 0
        train: dict[str, Tensor] = {}
        if data:
            n_rows = {k: v.shape[0] for k, v in data.items()}
            perms = {}
            if self.objective == "matching":
                perm = torch.randperm(n_rows["x0"], generator=generator, device=rdev).to(device)
                perms = {"x0": perm, "x1": perm}
            else:
                for k in data:
                    perms[k] = torch.randperm(n_rows[k], generator=generator, device=rdev).to(device)
            for k, x in data.items():
                n_val = int(math.floor(self.val_fraction * x.shape[0])) if self.val_fraction > 0 else 0
                if self.val_fraction > 0 and (n_val < 1 or n_val >= x.shape[0]):
                    raise ValueError(f"{k} has {x.shape[0]} rows: too few to hold out val_fraction={self.val_fraction}")
                xp = x[perms[k]]
                if n_val:
                    val[k], train[k] = xp[:n_val], xp[n_val:]
                else:
                    train[k] = xp

        # ---- initialisation: means from K samples of p1
        K = self.n_components
        if "x1" in train:
            if K > train["x1"].shape[0]:
                raise ValueError(f"n_components={K} exceeds the number of target samples ({train['x1'].shape[0]}"
                                 f"{' after the held-out split' if self.val_fraction > 0 else ''})")
            init = train["x1"][torch.randperm(train["x1"].shape[0], generator=generator, device=rdev)[:K].to(device)]
        elif paired_sampler:
            init = self._call("x0", x0, K, generator)[1]
        else:
            init = self._draw("x1", x1, K, generator, dim)
        def new_potential(start_index: int = 0) -> GaussianMixturePotential:
            if src_pot is not None:
                return self._copy_potential(src_pot, train.get("x0", val.get("x0")), dim, dtype, device)
            pot = GaussianMixturePotential(dim, K, self.eps, self.covariance, init_means=init,
                                           init_scale=self.init_scale, dtype=dtype, device=device)
            if self.init == "gaussian":
                self._gaussian_init(pot, train.get("x0", val.get("x0")), train.get("x1", val.get("x1")), init)
            elif self.init in ("clusters", "targets"):
                self._cluster_init(pot, train.get("x0", val.get("x0")), train.get("x1", val.get("x1")), generator,
                                   start_index)
            return pot

        potential = new_potential()
        start_losses: list[float] = []
        if self.n_starts > 1:
            if not ("x0" in train and "x1" in train):
                raise ValueError("n_starts > 1 needs sample tensors x0 and x1")
            best_start = potential
            start_losses.append(self._short_fit(potential, train, val, generator, rdev))
            for i in range(1, self.n_starts):
                cand = new_potential(i)
                start_losses.append(self._short_fit(cand, train, val, generator, rdev))
                if start_losses[-1] < min(start_losses[:-1]):
                    best_start = cand
            potential = best_start

        def batch() -> tuple[Tensor, Tensor]:  # index_select: see _short_fit
            if paired_sampler:
                return x0(self.batch_size, generator)  # type: ignore[operator,return-value]
            if self.objective == "matching":
                idx = torch.randint(train["x0"].shape[0], (self.batch_size,), generator=generator, device=rdev).to(device)
                return train["x0"].index_select(0, idx), train["x1"].index_select(0, idx)
            out = []
            for k, src in (("x0", x0), ("x1", x1)):
                if k in train:
                    idx = torch.randint(train[k].shape[0], (self.batch_size,), generator=generator, device=rdev).to(device)
                    out.append(train[k].index_select(0, idx))
                else:
                    out.append(self._draw(k, src, self.batch_size, generator, dim))
            return out[0], out[1]

        # fixed times and noise for a deterministic held-out matching loss
        val_aux: tuple[Tensor, Tensor] | None = None
        if use_val and self.objective == "matching":
            n_v = val["x0"].shape[0]
            tv = torch.rand(n_v, generator=generator, dtype=dtype, device=rdev).to(device) * (1 - self.t_gap)
            xiv = torch.randn(val["x0"].shape, generator=generator, dtype=dtype, device=rdev).to(device)
            val_aux = (tv, xiv)

        def loss_fn(a: Tensor, b: Tensor, aux: tuple[Tensor, Tensor] | None = None) -> Tensor:
            if self.objective == "lightsb":
                return potential.lightsb_loss(a, b)
            if aux is None:
                t = torch.rand(a.shape[0], generator=generator, dtype=dtype, device=rdev).to(device) * (1 - self.t_gap)
                xi = torch.randn(a.shape, generator=generator, dtype=dtype, device=rdev).to(device)
            else:
                t, xi = aux
            tc = t[:, None]
            xt = tc * b + (1 - tc) * a + torch.sqrt(self.eps * tc * (1 - tc)) * xi
            # drift error (m - x_t)/(1-t) - (x1 - x_t)/(1-t) = (m - x1)/(1-t)
            err = (potential.posterior_mean(xt, t) - b) / (1 - tc)
            return 0.5 * (err * err).sum(-1).mean() / self.eps

        sched = None
        full: tuple[Tensor, Tensor] | None = None
        full_aux: tuple[Tensor, Tensor] | None = None
        if self.optimizer == "lbfgs":
            opt: torch.optim.Optimizer = torch.optim.LBFGS(
                potential.parameters(), lr=self.lr, max_iter=1, max_eval=25, history_size=50, line_search_fn="strong_wolfe",
                tolerance_grad=0.0, tolerance_change=0.0)
            if paired_sampler:
                full = x0(self.batch_size, generator)  # type: ignore[operator,assignment]
            else:
                full = tuple(train[k] if k in train else self._draw(k, src, self.batch_size, generator, dim)
                             for k, src in (("x0", x0), ("x1", x1)))  # type: ignore[assignment]
            if self.objective == "matching":
                assert full is not None
                n_f = full[0].shape[0]
                full_aux = (torch.rand(n_f, generator=generator, dtype=dtype, device=rdev).to(device) * (1 - self.t_gap),
                            torch.randn(full[0].shape, generator=generator, dtype=dtype, device=rdev).to(device))
        else:
            opt = torch.optim.Adam(self._param_groups(potential, dim), lr=self.lr)
            if self.lr_schedule == "cosine":
                sched = _cosine_schedule(opt, self.num_steps)

        history: list[float] = []
        val_history: list[float] = []
        best_val, best_state, best_step, bad = math.inf, None, 0, 0
        stopped_early = False
        start = time.perf_counter()
        bar = progress_bar(range(self.num_steps), desc="LightSB", progress=self.progress)
        step, flat = 0, 0
        for step in bar:
            if full is not None:
                def closure() -> Tensor:
                    opt.zero_grad(set_to_none=True)
                    val_ = loss_fn(full[0], full[1], full_aux)
                    val_.backward()
                    return val_
                loss = opt.step(closure).detach()  # type: ignore[arg-type,union-attr]  (loss before the step)
                if history and abs(float(loss) - history[-1]) <= 1e-12 * max(1.0, abs(float(loss))):
                    flat += 1
                else:
                    flat = 0
            else:
                a, b = batch()
                loss = loss_fn(a, b)
                if torch.isfinite(loss):
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
            if not torch.isfinite(loss):
                raise FloatingPointError(f"LightSB loss became non-finite at step {step}; lower lr or check the data scale")
            if sched is not None:
                sched.step()
            history.append(float(loss.detach()))
            last = step + 1 == self.num_steps or flat >= 5  # L-BFGS has converged to round-off
            if use_val and ((step + 1) % self.eval_every == 0 or last):
                with torch.no_grad():
                    v = float(loss_fn(val["x0"], val["x1"], val_aux))
                val_history.append(v)
                if v < best_val:
                    best_val, best_step, bad = v, step + 1, 0
                    best_state = copy.deepcopy(potential.state_dict())
                else:
                    bad += 1
                bar.set_postfix(loss=f"{history[-1]:.4g}", val=f"{v:.4g}")
                if self.patience is not None and bad >= self.patience:
                    stopped_early = True
                    break
            if flat >= 5:
                break
        bar.close()
        if best_state is not None:
            potential.load_state_dict(best_state)
        diagnostics: dict[str, Any] = {
            "objective": self.objective,
            "num_steps": step + 1,
            "stopped_early": stopped_early,
            "best_step": best_step if use_val else step + 1,
            "best_val_loss": best_val if use_val else float("nan"),
            "final_loss": history[-1],
            "wall_time_s": time.perf_counter() - start,
            "val_history": val_history,
            "start_val_losses": start_losses,
        }
        return Bridge(potential, history, diagnostics)
