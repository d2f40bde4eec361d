"""Warm starts for LightSB (``init="clusters"`` and ``init="targets"``), built from the training samples only.

``init="targets"`` (:func:`target_cluster_init`) clusters ``p1`` alone and maps the whole ``p0`` to
every piece (suited to large ``eps``, see there). The rest of this docstring describes
``init="clusters"`` (:func:`cluster_init`).

The LightSB potential with K components is a mixture of K affine-Gaussian conditionals
``N(r_k + S_k x0, eps S_k)``, each the exact EOT plan between its own source and target pieces. The
warm start estimates those pieces directly:

1. k-means (SciPy's ``kmeans2``, k-means++ seeding) splits a subsample of ``p0`` into K clusters;
2. a discrete entropic OT plan (log-domain Sinkhorn, cost ``|x0 - x1|^2 / 2``, regularisation
   ``eps``, annealed from a large value down to ``eps``) between the subsample of ``p0`` and one of
   ``p1`` gives every cluster its weighted set of target points;
3. per cluster, the closed-form Gaussian EOT between the moment-matched source and target pieces
   gives ``S_k`` and ``r_k = b_k - S_k a_k`` (``a_k``, ``b_k`` the piece means), and
   ``log alpha_k`` is chosen so that the gate logit of component k at ``a_k`` is the log mass of
   the cluster.

Adam then trains all parameters from there. Everything here runs on the CPU, in float64 except
the Sinkhorn iterations (float32).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from scipy.cluster.vq import kmeans2
from torch import Tensor

from sciml.distributions import gaussian_log_prob
from sciml.metrics import sinkhorn

from .gaussian import gaussian_eot

__all__ = ["kmeans", "sinkhorn_plan", "cluster_init", "target_cluster_init", "refit_log_alpha"]


def _piece_plan(m0: Tensor, c0: Tensor, m1: Tensor, c1: Tensor, eps: float, diagonal: bool) -> tuple[Tensor, Tensor]:
    """``(S_k (D, D), r_k (D,))`` of the Gaussian EOT plan ``N(r_k + S_k x0, eps S_k)`` between the
    moment-matched Gaussians ``N(m0, c0)`` and ``N(m1, c1)`` (``S_k`` reduced to its diagonal if asked)."""
    s_k = gaussian_eot(m0, c0, m1, c1, eps).S_star
    if diagonal:
        s_k = torch.diag(torch.diagonal(s_k).clamp_min(1e-6))
    return s_k, m1 - s_k @ m0


def _component_logits(x0: Tensor, x1: Tensor, r: Tensor, S: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """Per-component log-terms without ``log alpha``: ``q (n0, K)`` of the normaliser,
    ``(x0^T S_k x0 + 2 r_k^T x0) / (2 eps)``, and ``log N(x1 | r_k, eps S_k)`` ``(n1, K)`` of the potential."""
    L = torch.linalg.cholesky(S)
    q = (torch.einsum("kdj,nd->nkj", L, x0).pow(2).sum(-1) + 2 * x0 @ r.T) / (2 * eps)
    return q, gaussian_log_prob(x1, r, scale_tril=L, scale=eps)


def kmeans(x: Tensor, k: int, *, generator: torch.Generator | None = None, n_iter: int = 30) -> Tensor:
    """k-means centroids (k, D) of the rows of ``x`` (n, D): SciPy's ``kmeans2`` (k-means++ seeding,
    then at most ``n_iter`` Lloyd steps; an empty cluster keeps its previous centroid), seeded from
    ``generator``."""
    seed = int(torch.randint(2**62, (1,), generator=generator))
    with warnings.catch_warnings():  # empty clusters: kmeans2 keeps the old centroid and warns
        warnings.simplefilter("ignore", UserWarning)
        cent, _ = kmeans2(x.detach().cpu().numpy(), k, iter=n_iter, minit="++", rng=np.random.default_rng(seed))
    return torch.from_numpy(cent).to(x.dtype)


def sinkhorn_plan(x: Tensor, y: Tensor, eps: float, n_iter: int = 150) -> Tensor:
    """Entropic OT plan (n, m) between uniform weights on rows of ``x`` (n, D) and ``y`` (m, D).

    Cost ``|x - y|^2 / 2``, regularisation ``eps``: :func:`sciml.metrics.sinkhorn` with a fixed budget,
    the regularisation annealed geometrically from the median cost to ``eps`` over the first half of
    the ``n_iter`` iterations, one iteration per level (in the dtype of ``x``; a rough plan suffices).
    """
    cost = 0.5 * ((x * x).sum(-1)[:, None] - 2 * x @ y.T + (y * y).sum(-1)[None])
    start = max(float(cost.median()), eps)
    half = max(1, n_iter // 2)
    scaling = (eps / start) ** (1.0 / half) if start > eps else 0.5
    return sinkhorn(cost, eps, max_iter=max(1, n_iter - half), tol=0.0, start=start, scaling=scaling,
                    stage_iter=1).plan


def cluster_init(
    x0: Tensor,
    x1: Tensor,
    n_components: int,
    eps: float,
    *,
    generator: torch.Generator | None = None,
    n_sub: int = 2000,
    n_fit: int = 5000,
    diagonal: bool = False,
) -> tuple[Tensor, Tensor, Tensor]:
    """Warm-start parameters ``(log_alpha (K,), r (K, D), S (K, D, D))``, float64 (see module doc).

    Args:
        x0: samples of p0, (n0, D).
        x1: samples of p1, (n1, D).
        n_components: K.
        eps: regularisation.
        generator: seeds the subsamples and the k-means seeding.
        n_sub: subsample size per side for the Sinkhorn plan.
        n_fit: subsample size per side for refitting the weights.
        diagonal: keep only the diagonal of each ``S_k`` (for diagonal-covariance potentials).
    """
    a = x0.detach().to(torch.float64).cpu()
    b = x1.detach().to(torch.float64).cpu()
    d, K = a.shape[1], n_components
    ns = min(n_sub, a.shape[0], b.shape[0])
    xs = a[torch.randperm(a.shape[0], generator=generator)[:ns]]
    ys = b[torch.randperm(b.shape[0], generator=generator)[:ns]]
    cent = kmeans(xs, K, generator=generator)
    lab_s = ((xs[:, None, :] - cent[None]) ** 2).sum(-1).argmin(1)
    plan = sinkhorn_plan(xs.float(), ys.float(), eps).to(torch.float64)  # float32: a rough plan suffices
    # source pieces from the whole sample (nearest centroid), target pieces from the plan
    lab = torch.cat([(c_[:, None, :] - cent[None]).pow(2).sum(-1).argmin(1) for c_ in a.split(8192)])
    # target piece centres from the plan, then the whole target sample split by the nearest centre
    wy_all = torch.stack([plan[lab_s == k].sum(0) for k in range(K)])  # (K, ns)
    cent_y = (wy_all @ ys) / wy_all.sum(1, keepdim=True).clamp_min(1e-300)
    lab_y = torch.cat([(c_[:, None, :] - cent_y[None]).pow(2).sum(-1).argmin(1) for c_ in b.split(8192)])
    eye = torch.eye(d, dtype=torch.float64)
    tr0 = float(torch.cov(a.T, correction=0).reshape(d, d).trace()) / d
    tr1 = float(torch.cov(b.T, correction=0).reshape(d, d).trace()) / d
    log_alpha = torch.empty(K, dtype=torch.float64)
    r = torch.empty(K, d, dtype=torch.float64)
    S = torch.empty(K, d, d, dtype=torch.float64)
    for k in range(K):
        sel, sel_y = lab == k, lab_y == k
        mass = float(wy_all[k].sum())
        if int(sel.sum()) <= d or int(sel_y.sum()) <= d:  # degenerate piece: fall back to the global moments
            sel, sel_y = torch.ones_like(sel), torch.ones_like(sel_y)
        mass = max(mass, 1e-12)
        m0 = a[sel].mean(0)
        c0 = torch.cov(a[sel].T, correction=0).reshape(d, d) + 1e-6 * tr0 * eye
        m1 = b[sel_y].mean(0)
        c1 = torch.cov(b[sel_y].T, correction=0).reshape(d, d) + 1e-6 * tr1 * eye
        S[k], r[k] = _piece_plan(m0, c0, m1, c1, eps, diagonal)
        log_alpha[k] = math.log(mass) - (m0 @ S[k] @ m0 + 2 * r[k] @ m0) / (2 * eps)
    # refit the weights with S_k, r_k fixed: the LightSB loss as a function of log alpha alone
    xq = a[torch.randperm(a.shape[0], generator=generator)[:n_fit]]
    yq = b[torch.randperm(b.shape[0], generator=generator)[:n_fit]]
    return refit_log_alpha(xq, yq, log_alpha, r, S, eps), r, S


def refit_log_alpha(x0: Tensor, x1: Tensor, log_alpha: Tensor, r: Tensor, S: Tensor, eps: float) -> Tensor:
    """Minimise the LightSB loss over ``log alpha`` (K,) alone, with ``r`` (K, D) and ``S`` (K, D, D) fixed.

    The loss ``mean_x0 logsumexp_k(log alpha_k + q_k(x0)) - mean_x1 logsumexp_k(log alpha_k + n_k(x1))``
    is convex in ``log alpha`` (L-BFGS from ``log_alpha``); ``x0`` (n0, D), ``x1`` (n1, D), float64.
    """
    q0, log_n = _component_logits(x0, x1, r, S, eps)
    la = log_alpha.clone().requires_grad_(True)
    opt = torch.optim.LBFGS([la], lr=1.0, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        opt.zero_grad()
        loss = torch.logsumexp(la + q0, 1).mean() - torch.logsumexp(la + log_n, 1).mean()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return la.detach()


def target_cluster_init(
    x0: Tensor,
    x1: Tensor,
    n_components: int,
    eps: float,
    *,
    generator: torch.Generator | None = None,
    n_fit: int = 10000,
    diagonal: bool = False,
    split_gain: float | None = None,
    copy_shift: float = 0.3,
    n_refine: int = 1,
) -> tuple[Tensor, Tensor, Tensor]:
    """Warm start from pieces of ``p1``: ``(log_alpha (K,), r (K, D), S (K, D, D))``, float64.

    For large ``eps`` the conditional mean ``r_k + S_k x0`` of a component of the plan depends only
    weakly on ``x0`` (``S_k`` is small), so the target samples of one component form one cluster of
    ``p1``. The start: k-means (SciPy's ``kmeans2``) splits a subsample of ``p1`` into pieces, their
    number the smallest ``k <= K`` whose next split lowers the k-means cost by less than a fraction
    ``split_gain`` (splitting one Gaussian blob gains little in high dimension, separating two
    blobs much); per piece, ``S_k`` is the closed-form Gaussian EOT matrix between the moment-matched Gaussian of
    the whole ``p0`` sample and that of the piece, ``r_k = b_k - S_k a`` (``a`` the mean of ``p0``,
    ``b_k`` of the piece); the weights are then fitted by :func:`refit_log_alpha`. Every step uses
    the training samples only. With fewer pieces than K, the remaining components copy the largest
    pieces (mass shared, intercept shifted by ``copy_shift`` times a draw of ``N(0, eps S_k)``, so
    that training can separate them).

    Args:
        x0: samples of p0, (n0, D).
        x1: samples of p1, (n1, D).
        n_components: K.
        eps: regularisation.
        generator: seeds the subsamples and the k-means seeding.
        n_fit: subsample size per side (k-means, moments, weights).
        diagonal: keep only the diagonal of each ``S_k``.
        split_gain: relative k-means cost reduction below which no further piece is split off
            (``None``: ``2 / D``; splitting one Gaussian blob gains about ``2 / (pi D)`` to ``1.5 / D``;
            0 always uses K pieces).
        copy_shift: intercept shift of the copies, in units of the component's spread.
        n_refine: refinement passes: the source piece of component k becomes ``p0`` weighted by the
            start's gate ``w_k(x0)``, the target piece ``p1`` weighted by its responsibility
            ``alpha_k N(x1 | r_k, eps S_k) / v(x1)`` (the component label of a plan pair depends on
            ``x1`` alone), then the Gaussian closed form and the weights are refitted (a piece and
            its copies: summed weights, one closed form, the copies keep their shifts).
    """
    a = x0.detach().to(torch.float64).cpu()
    b = x1.detach().to(torch.float64).cpu()
    d, K = a.shape[1], n_components
    xs = a[torch.randperm(a.shape[0], generator=generator)[:n_fit]]
    ys = b[torch.randperm(b.shape[0], generator=generator)[:n_fit]]
    # the number of pieces: the smallest k whose next split lowers the k-means cost by less than
    # `split_gain` (splitting one Gaussian blob in D dimensions gains only ~ 2 / (pi D) of its cost)
    gain = 2.0 / d if split_gain is None else split_gain
    best: tuple[Tensor, Tensor] | None = None
    prev_cost = math.inf
    for k in range(1, K + 1):
        cent = kmeans(ys, k, generator=generator)
        lab = torch.cat([((c_[:, None, :] - cent[None]) ** 2).sum(-1).argmin(1) for c_ in ys.split(2048)])
        cost = float(((ys - cent[lab]) ** 2).sum())
        if best is not None and cost > (1.0 - gain) * prev_cost:
            break
        best, prev_cost = (cent, lab), cost
    assert best is not None
    cent, lab = best
    n_pieces = cent.shape[0]
    eye = torch.eye(d, dtype=torch.float64)
    m0 = xs.mean(0)
    c0 = torch.cov(xs.T, correction=0).reshape(d, d)
    c0 = c0 + 1e-6 * float(c0.trace()) / d * eye
    tr1 = float(torch.cov(ys.T, correction=0).reshape(d, d).trace()) / d
    log_alpha = torch.empty(K, dtype=torch.float64)
    r = torch.empty(K, d, dtype=torch.float64)
    S = torch.empty(K, d, d, dtype=torch.float64)
    sizes = torch.bincount(lab, minlength=n_pieces)
    # K components: piece k for k < n_pieces, then copies of the largest pieces (intercepts perturbed)
    owner = list(range(n_pieces)) + [int(i) for i in sizes.argsort(descending=True).repeat(K)[: K - n_pieces]]
    copies = torch.bincount(torch.tensor(owner), minlength=n_pieces)
    shift = torch.zeros(K, d, dtype=torch.float64)
    for k in range(K):
        sel = lab == owner[k]
        if int(sel.sum()) <= d:  # degenerate piece: fall back to the whole sample
            sel = torch.ones_like(sel)
        m1 = ys[sel].mean(0)
        c1 = torch.cov(ys[sel].T, correction=0).reshape(d, d) + 1e-6 * tr1 * eye
        S[k], r[k] = _piece_plan(m0, c0, m1, c1, eps, diagonal)
        if k >= n_pieces:  # a copy: shift the intercept by a draw of the component's spread
            noise = torch.randn(d, dtype=torch.float64, generator=generator)
            shift[k] = copy_shift * math.sqrt(eps) * (torch.linalg.cholesky(S[k]) @ noise)
            r[k] = r[k] + shift[k]
        mass = float(sel.double().mean()) / float(copies[owner[k]])
        log_alpha[k] = math.log(max(mass, 1e-12)) - (m0 @ S[k] @ m0 + 2 * r[k] @ m0) / (2 * eps)
    log_alpha = refit_log_alpha(xs, ys, log_alpha, r, S, eps)
    for _ in range(n_refine):
        q, log_n = _component_logits(xs, ys, r, S, eps)
        gate, res = torch.softmax(log_alpha + q, 1), torch.softmax(log_alpha + log_n, 1)
        for k in range(n_pieces):  # a piece and its copies share the weights and the closed form
            members = [j for j in range(K) if owner[j] == k]
            w0, w1 = gate[:, members].sum(1), res[:, members].sum(1)
            if min(float(w0.sum()), float(w1.sum())) <= d:  # too little mass for the moments: keep
                continue
            m0k = w0 @ xs / w0.sum()
            m1k = w1 @ ys / w1.sum()
            c0k = ((xs - m0k).T * w0) @ (xs - m0k) / w0.sum() + 1e-6 * tr1 * eye
            c1k = ((ys - m1k).T * w1) @ (ys - m1k) / w1.sum() + 1e-6 * tr1 * eye
            s_k, r_k = _piece_plan(m0k, c0k, m1k, c1k, eps, diagonal)
            for j in members:
                S[j], r[j] = s_k, r_k + shift[j]
        log_alpha = refit_log_alpha(xs, ys, log_alpha, r, S, eps)
    return log_alpha, r, S
