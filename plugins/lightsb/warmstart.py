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

import torch
from scipy.cluster.vq import kmeans2
from torch import Tensor

from sciml.distributions import gaussian_log_prob
from sciml.metrics import sinkhorn

from .gaussian import gaussian_eot

__all__ = ["kmeans", "principal_directions", "sinkhorn_plan", "cluster_init", "target_cluster_init", "refit_log_alpha"]


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


def _seeds(x: Tensor, k: int, greedy: bool, generator: torch.Generator | None) -> Tensor:
    """``k`` initial centres among the rows of ``x`` (n, m), the first drawn uniformly.

    ``greedy``: greedy k-means++ (of ``2 + round(log k)`` rows drawn with probability proportional to
    the squared distance to the nearest centre so far, the one that lowers the sum of those squared
    distances most); else farthest-first (the row farthest from the centres so far), which never
    misses a small cluster far from the others.
    """
    sq = (x * x).sum(1)
    first = int(torch.randint(x.shape[0], (1,), generator=generator))
    centres = [first]
    near = (sq - 2 * x @ x[first] + sq[first]).clamp_min(0)
    for _ in range(1, k):
        if float(near.sum()) <= 0:  # fewer distinct rows than k: repeat one
            centres.append(centres[-1])
            continue
        if greedy:
            cand = torch.multinomial(near, 2 + round(math.log(k)), replacement=True, generator=generator)
        else:
            cand = near.argmax().reshape(1)
        d2 = (sq[None] - 2 * x[cand] @ x.T + sq[cand, None]).clamp_min(0)  # (candidates, n)
        after = torch.minimum(near[None], d2)
        best = int(after.sum(1).argmin())
        centres.append(int(cand[best]))
        near = after[best]
    return x[centres]


def _partition_log_lik(z: Tensor, lab: Tensor, k: int) -> float:
    """Log-likelihood of the rows of ``z`` (n, m) under the Gaussian mixture of the partition ``lab``
    (each part its own mean, full covariance and weight; hard assignments). Unlike the k-means cost it
    rewards separating a small far cluster over splitting one Gaussian blob."""
    n, m = z.shape
    total = 0.0
    ridge = 1e-6 * float(z.var(0).sum()) / m * torch.eye(m, dtype=z.dtype)
    for j in range(k):
        part = z[lab == j]
        if part.shape[0] <= m:  # too few rows for a covariance: score as the whole-sample Gaussian
            part_cov = torch.cov(z.T, correction=0).reshape(m, m)
        else:
            part_cov = torch.cov(part.T, correction=0).reshape(m, m)
        if part.shape[0] == 0:
            continue
        logdet = torch.linalg.slogdet(part_cov + ridge).logabsdet
        total += part.shape[0] * (math.log(part.shape[0] / n) - 0.5 * float(logdet))
    return total


def principal_directions(x: Tensor) -> Tensor:
    """The principal directions of the rows of ``x`` (n, D) (of up to 20 000 of them), as the columns
    of a (D, min(n, D)) float64 matrix, in decreasing order of variance."""
    a = x.detach().to(torch.float64).cpu()
    return torch.linalg.svd((a - a.mean(0))[:20000], full_matrices=False).Vh.T


def kmeans(x: Tensor, k: int, *, generator: torch.Generator | None = None, n_iter: int = 30,
           n_init: int = 4, directions: Tensor | None = None) -> tuple[Tensor, Tensor, float]:
    """k-means of the rows of ``x`` (n, D): ``(centroids (k, D), labels (n,), within-cluster sum of squares)``.

    The rows are clustered in the span of their top ``min(D, 2 k)`` principal directions, where the
    separations between clusters lie (in high dimension the within-cluster spread of the other
    directions hides a small, far cluster from the seeding). ``n_init`` runs, alternately seeded
    farthest-first and greedy k-means++, each followed by at most ``n_iter`` Lloyd steps of SciPy's
    ``kmeans2`` (an empty cluster keeps its previous centroid); kept is the partition with the highest
    log-likelihood as a Gaussian mixture (:func:`_partition_log_lik`), not the lowest sum of squares,
    which may prefer splitting a large blob to separating a small cluster. Centroids and sum of
    squares are those of the partition in the full space. Seeded from ``generator``; ``directions``:
    :func:`principal_directions` of ``x`` if already computed.
    """
    a = x.detach().to(torch.float64).cpu()
    centred = a - a.mean(0)
    basis = (principal_directions(a) if directions is None else directions)[:, : min(a.shape[1], 2 * k)]
    z = centred @ basis
    best: tuple[Tensor, float] | None = None
    for run in range(n_init):
        seeds = _seeds(z, k, run % 2 == 1, generator)
        with warnings.catch_warnings():  # empty clusters: kmeans2 keeps the old centroid and warns
            warnings.simplefilter("ignore", UserWarning)
            cent_np, _ = kmeans2(z.numpy(), seeds.numpy(), iter=n_iter, minit="matrix")
        lab = torch.cat([torch.cdist(c, torch.from_numpy(cent_np)).argmin(1) for c in z.split(4096)])
        score = _partition_log_lik(z, lab, k)
        if best is None or score > best[1]:
            best = (lab, score)
    assert best is not None
    lab = best[0]
    counts = torch.bincount(lab, minlength=k).to(a.dtype)
    sums = torch.zeros(k, a.shape[1], dtype=a.dtype).index_add_(0, lab, a)
    # an empty part (repeated seeds) gets the overall mean
    cent = torch.where(counts[:, None] > 0, sums / counts.clamp_min(1)[:, None], a.mean(0))
    return cent.to(x.dtype), lab, float(((a - cent[lab]) ** 2).sum())


def _nearest_sq(x: Tensor, cent: Tensor) -> Tensor:
    """Squared distance of every row of ``x`` (n, D) to its nearest row of ``cent`` (k, D): (n,)."""
    return torch.cat([torch.cdist(c, cent).pow(2).min(1).values for c in x.split(4096)])


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
    cent, lab_s, _ = kmeans(xs, K, generator=generator)
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
    directions = principal_directions(ys)
    for k in range(1, K + 1) if gain > 0 else (K,):  # split_gain = 0: K pieces directly
        cent, lab, cost = kmeans(ys, k, generator=generator, directions=directions)
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
