"""The von Mises-Fisher distribution on the unit sphere S^{p-1}, stable in any dimension p.

Density f(x) = C_p(kappa) exp(kappa mu^T x) with
log C_p(kappa) = (p/2 - 1) log kappa - (p/2) log(2 pi) - log I_{p/2-1}(kappa); the log-Bessel
function and the ratio A_p(kappa) = I_{p/2}(kappa) / I_{p/2-1}(kappa) come from
:mod:`sciml.kernels.bessel`, so nothing overflows at p = 32768 or kappa = 1e5.
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import Tensor
from torch.distributions import Distribution, constraints

from sciml.kernels.bessel import log_bessel_ratio, log_iv
from sciml.validation import check_generator, check_positive, check_positive_int, check_tensor

__all__ = ["VonMisesFisher", "fit_vmf", "vmf_kappa_mle", "mean_resultant_length"]


#: Newton on A_p(kappa) = R stops once |A_p(kappa) - R| is this many eps of R: the ratio is only that
#: accurate, and for large kappa / p (ill-conditioned) the relative step never gets below ``tol``.
_RESIDUAL_EPS = 8.0


def _check_dimension(p: object) -> int:
    p = check_positive_int("p", p)
    if p < 2:
        raise ValueError(f"p must be >= 2, got {p}")
    return p


def mean_resultant_length(kappa: Tensor | float, p: int) -> Tensor:
    """A_p(kappa) = I_{p/2}(kappa) / I_{p/2-1}(kappa) = E[mu^T x] (no cancellation, any p).

    ``kappa >= 0`` (a tensor, keeping its dtype, or a Python number / list, float64); p >= 2.
    A_p(0) = 0 and A_p(inf) = 1. Raises ``ValueError`` for NaN or negative ``kappa``.
    """
    p = _check_dimension(p)
    if isinstance(kappa, bool) or not isinstance(kappa, (Tensor, int, float, list, tuple)):
        raise TypeError(f"kappa must be a torch.Tensor or a real number, got {type(kappa).__name__}")
    k = kappa if isinstance(kappa, Tensor) and kappa.is_floating_point() else torch.as_tensor(kappa, dtype=torch.float64)
    if bool(torch.isnan(k).any()) or bool((k < 0).any()):
        raise ValueError("kappa must be >= 0 and not NaN")
    return log_bessel_ratio(torch.as_tensor(p / 2.0 - 1.0, dtype=k.dtype), k)


def _standard_gamma(alpha: Tensor, generator: torch.Generator | None) -> Tensor:
    """Gamma(alpha, 1) draws (Marsaglia-Tsang, vectorised rejection) that honour ``generator``."""
    boost = alpha < 1.0
    a = torch.where(boost, alpha + 1.0, alpha)
    d = a - 1.0 / 3.0
    c = 1.0 / torch.sqrt(9.0 * d)
    out = torch.empty_like(a)
    todo = torch.arange(a.numel(), device=a.device)
    d_flat, c_flat = d.reshape(-1), c.reshape(-1)
    for _ in range(1000):
        m = todo.numel()
        z = torch.randn(m, generator=generator, dtype=a.dtype, device=a.device)
        u = torch.rand(m, generator=generator, dtype=a.dtype, device=a.device)
        dd, cc = d_flat[todo], c_flat[todo]
        v = (1.0 + cc * z) ** 3
        ok = (v > 0) & (torch.log(u) < 0.5 * z * z + dd - dd * v + dd * torch.log(v.clamp_min(1e-300)))
        out.view(-1)[todo[ok]] = (dd * v)[ok]
        todo = todo[~ok]
        if todo.numel() == 0:
            break
    if bool(boost.any()):
        u = torch.rand(a.shape, generator=generator, dtype=a.dtype, device=a.device)
        out = torch.where(boost, out * u ** (1.0 / alpha), out)
    return out


def _wood_w(kappa: Tensor, p: int, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
    """Wood (1994) rejection sampler for w = mu^T x; returns (w, 1 - w) to keep 1 - w accurate."""
    m = p - 1.0
    sq = torch.sqrt(4.0 * kappa * kappa + m * m)
    b = m / (2.0 * kappa + sq)
    one_minus_b = (2.0 * kappa + 4.0 * kappa * kappa / (sq + m)) / (2.0 * kappa + sq)
    x0 = one_minus_b / (1.0 + b)
    one_minus_x0 = 2.0 * b / (1.0 + b)
    log1m_x0sq = torch.log(one_minus_x0) + torch.log1p(x0)
    flat = [t.reshape(-1) for t in (kappa, b, one_minus_b, x0, one_minus_x0, log1m_x0sq)]
    n = flat[0].numel()
    w_out = torch.empty(n, dtype=kappa.dtype, device=kappa.device)
    omw_out = torch.empty_like(w_out)
    todo = torch.arange(n, device=kappa.device)
    half = torch.full((1,), m / 2.0, dtype=kappa.dtype, device=kappa.device)
    for _ in range(10000):
        k, bb, omb, xx0, omx0, l1m = (t[todo] for t in flat)
        g1 = _standard_gamma(half.expand(todo.numel()).clone(), generator)
        g2 = _standard_gamma(half.expand(todo.numel()).clone(), generator)
        z = g1 / (g1 + g2)  # Beta((p-1)/2, (p-1)/2)
        denom = 1.0 - omb * z
        omw = 2.0 * bb * z / denom  # 1 - w
        w = 1.0 - omw
        u = torch.rand(todo.numel(), generator=generator, dtype=kappa.dtype, device=kappa.device)
        # kappa (w - x0) + (p-1) [log(1 - x0 w) - log(1 - x0^2)] >= log u
        crit = k * (omx0 - omw) + m * (torch.log(omx0 + xx0 * omw) - l1m)
        ok = crit >= torch.log(u)
        w_out[todo[ok]] = w[ok]
        omw_out[todo[ok]] = omw[ok]
        todo = todo[~ok]
        if todo.numel() == 0:
            break
    else:  # pragma: no cover - acceptance rate is >= ~0.5 for every kappa and p
        raise RuntimeError("Wood's rejection sampler did not accept within 10000 rounds")
    return w_out.reshape(kappa.shape), omw_out.reshape(kappa.shape)


def _sample_shape(sample_shape: object) -> torch.Size:
    """``sample_shape`` as a ``torch.Size`` of non-negative ints, or a clear error."""
    if isinstance(sample_shape, Tensor) or not isinstance(sample_shape, (tuple, list, torch.Size)):
        raise TypeError(f"sample_shape must be a tuple of ints (e.g. (n,)), got {type(sample_shape).__name__}")
    if any(isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in sample_shape):
        raise ValueError(f"sample_shape must hold non-negative ints, got {tuple(sample_shape)}")
    return torch.Size(sample_shape)


class VonMisesFisher(Distribution):
    """von Mises-Fisher distribution on the unit sphere in R^p.

    Args:
        loc: mean direction, shape ``(*batch, p)`` with p >= 2; normalised to unit length.
        concentration: kappa > 0, shape broadcastable to ``batch``.
        validate_args: as in :class:`torch.distributions.Distribution`.

    ``log_prob`` uses log-space Bessel functions (stable for any p, tested at p = 32768);
    ``rsample``/``sample`` draw with Wood's algorithm (the gradient of ``rsample`` flows to ``loc``
    through the Householder map; kappa is treated as fixed by the sampler); ``mean`` is
    A_p(kappa) mu and ``entropy`` is -log C_p(kappa) - kappa A_p(kappa).
    """

    arg_constraints = {"loc": constraints.real_vector, "concentration": constraints.positive}
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, loc: Tensor, concentration: Tensor | float, validate_args: bool | None = None) -> None:
        check_tensor("loc", loc, finite=True)
        if loc.ndim < 1 or loc.shape[-1] < 2:
            raise ValueError(f"loc must have shape (*batch, p) with p >= 2, got {tuple(loc.shape)}")
        if isinstance(concentration, bool) or not isinstance(concentration, (Tensor, int, float)):
            raise TypeError(f"concentration must be a torch.Tensor or a real number, got {type(concentration).__name__}")
        kappa = torch.as_tensor(concentration, dtype=loc.dtype, device=loc.device)
        if bool(torch.isnan(kappa).any()) or bool((kappa <= 0).any()) or bool(torch.isinf(kappa).any()):
            raise ValueError("concentration must be finite and > 0")
        norm = loc.norm(dim=-1, keepdim=True)
        if bool((norm == 0).any()):
            raise ValueError("loc must be non-zero")
        try:
            batch = torch.broadcast_shapes(loc.shape[:-1], kappa.shape)
        except RuntimeError:
            raise ValueError(f"concentration (shape {tuple(kappa.shape)}) does not broadcast with the batch shape "
                             f"of loc {tuple(loc.shape[:-1])}") from None
        self.p = int(loc.shape[-1])
        self.loc = (loc / norm).expand(*batch, self.p)
        self.concentration = kappa.expand(batch)
        # nothing to validate in an empty batch (and torch's constraint check cannot reshape one)
        validate = validate_args if math.prod(batch) else False
        super().__init__(batch_shape=batch, event_shape=(self.p,), validate_args=validate)

    # -- normaliser and moments -------------------------------------------------------------
    def log_normalizer(self) -> Tensor:
        """log C_p(kappa), shape ``batch_shape``."""
        nu = self.p / 2.0 - 1.0
        k = self.concentration
        return nu * torch.log(k) - (self.p / 2.0) * math.log(2.0 * math.pi) - log_iv(torch.as_tensor(nu, dtype=k.dtype), k)

    def mean_resultant_length(self) -> Tensor:
        """A_p(kappa) = E[mu^T x]."""
        return mean_resultant_length(self.concentration, self.p)

    @property
    def mean(self) -> Tensor:
        return self.mean_resultant_length().unsqueeze(-1) * self.loc

    @property
    def mode(self) -> Tensor:
        return self.loc

    def entropy(self) -> Tensor:
        return -self.log_normalizer() - self.concentration * self.mean_resultant_length()

    def log_prob(self, value: Tensor) -> Tensor:
        """log f(value) for unit vectors ``value`` of shape ``(..., p)`` broadcastable with the batch."""
        if not isinstance(value, Tensor):
            raise TypeError(f"value must be a torch.Tensor, got {type(value).__name__}")
        if value.ndim < 1 or value.shape[-1] != self.p:
            raise ValueError(f"value must have shape (..., {self.p}), got {tuple(value.shape)}")
        try:
            torch.broadcast_shapes(value.shape[:-1], self.batch_shape)
        except RuntimeError:
            raise ValueError(f"value has batch shape {tuple(value.shape[:-1])}, which does not broadcast with "
                             f"the batch shape {tuple(self.batch_shape)}") from None
        if self._validate_args:
            self._validate_sample(value)
        return self.log_normalizer() + self.concentration * (value * self.loc).sum(-1)

    def expand(self, batch_shape: torch.Size, _instance: VonMisesFisher | None = None) -> VonMisesFisher:
        batch_shape = torch.Size(batch_shape)
        return VonMisesFisher(self.loc.expand(*batch_shape, self.p), self.concentration.expand(batch_shape))

    # -- sampling ------------------------------------------------------------------------------
    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = (), *,
                generator: torch.Generator | None = None) -> Tensor:
        """Draw ``sample_shape + batch_shape + (p,)`` unit vectors (Wood 1994 + Householder)."""
        check_generator("generator", generator)
        shape = _sample_shape(sample_shape) + self.batch_shape
        kappa = self.concentration.detach().expand(shape)
        w, omw = _wood_w(kappa, self.p, generator)
        out = torch.empty(*shape, self.p, dtype=self.loc.dtype, device=self.loc.device)
        tangent = out[..., 1:]
        tangent.normal_(generator=generator)  # uniform direction on S^{p-2} after normalising
        sin = torch.sqrt(omw * (2.0 - omw)).unsqueeze(-1)  # sqrt(1 - w^2) without cancellation
        tangent.mul_(sin / tangent.norm(dim=-1, keepdim=True))
        out[..., 0] = w
        # Householder reflection mapping e_1 to loc: H y = y - 2 u (u^T y) / (u^T u), u = e_1 - loc
        u = -self.loc
        u = u.clone()
        u[..., 0] += 1.0
        uu = (u * u).sum(-1, keepdim=True)
        safe = uu > 1e-30
        proj = (out * u).sum(-1, keepdim=True) * torch.where(safe, 2.0 / torch.where(safe, uu, 1.0), 0.0)
        return out - proj * u

    def sample(self, sample_shape: torch.Size | tuple[int, ...] = (), *,
               generator: torch.Generator | None = None) -> Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape, generator=generator)


# ------------------------------------------------------------------------------------------ fit
def vmf_kappa_mle(r: Tensor | float, p: int, *, tol: float = 1e-15, max_iter: int = 100) -> Tensor:
    """Maximum-likelihood kappa from the mean resultant length R: solve A_p(kappa) = R.

    Banerjee et al. (2005) start kappa0 = R (p - R^2) / (1 - R^2), then Newton with
    A_p'(kappa) = 1 - A_p^2 - (p - 1) A_p / kappa, computed in float64. R = 0 gives 0, R = 1 gives inf.

    Args:
        r: mean resultant length(s) in [0, 1], any shape (a tensor or Python number / list).
        p: dimension (>= 2).
        tol: stop when every relative Newton step is below ``tol`` (> 0), or the residual
            ``|A_p(kappa) - R|`` is at the rounding level of A_p (8 eps of R; for large kappa the
            relative step cannot get below ``tol``).
        max_iter: Newton iteration cap (>= 1).

    Warns:
        RuntimeWarning: Newton did not converge within ``max_iter`` iterations; the last iterate
            is returned.
    """
    p = _check_dimension(p)
    tol = check_positive("tol", tol)
    max_iter = check_positive_int("max_iter", max_iter)
    if isinstance(r, bool) or not isinstance(r, (Tensor, int, float, list, tuple)):
        raise TypeError(f"r must be a torch.Tensor or a real number, got {type(r).__name__}")
    r_t = r if isinstance(r, Tensor) else torch.tensor(r, dtype=torch.float64)  # Python floats are float64
    dtype = r_t.dtype if r_t.is_floating_point() else torch.float64
    r64 = r_t.to(torch.float64)
    if bool(torch.isnan(r64).any()) or bool(((r64 < 0) | (r64 > 1)).any()):
        raise ValueError("r must lie in [0, 1]")
    interior = (r64 > 0) & (r64 < 1)
    rr = torch.where(interior, r64, 0.5)
    kappa = rr * (p - rr * rr) / (1.0 - rr * rr)
    nu = torch.tensor(p / 2.0 - 1.0, dtype=torch.float64)
    done = False
    for _ in range(max_iter):
        a = log_bessel_ratio(nu, kappa)
        deriv = 1.0 - a * a - (p - 1.0) * a / kappa
        step = (a - rr) / deriv
        new = kappa - step
        new = torch.where(new > 0, new, 0.5 * kappa)  # safeguard: stay positive
        rel_step = (new - kappa).abs() / new
        at_rounding = (a - rr).abs() <= _RESIDUAL_EPS * torch.finfo(torch.float64).eps * rr
        done = bool(((rel_step <= tol) | at_rounding | ~interior).all())
        kappa = new
        if done:
            break
    if not done:
        worst = float(torch.where(interior, rel_step, 0.0).max())
        warnings.warn(f"vmf_kappa_mle: Newton did not converge within max_iter={max_iter} iterations (largest "
                      f"relative step {worst:.1e} > tol={tol:.1e}); returning the last iterate", RuntimeWarning,
                      stacklevel=2)
    kappa = torch.where(interior, kappa, torch.where(r64 >= 1, math.inf, 0.0))
    return kappa.to(dtype)


def fit_vmf(x: Tensor, *, tol: float = 1e-15, max_iter: int = 100) -> tuple[Tensor, Tensor]:
    """Maximum-likelihood von Mises-Fisher fit to unit vectors.

    Args:
        x: samples, shape ``(n, p)`` (rows are normalised to unit length; zero rows are an error).
        tol: Newton stopping tolerance (relative step, see :func:`vmf_kappa_mle`), > 0.
        max_iter: Newton iteration cap, >= 1; a ``RuntimeWarning`` says when it was reached
            without convergence.

    Returns:
        ``(loc, kappa)``: the mean direction (shape ``(p,)``) and the concentration (scalar tensor),
        in the dtype of ``x`` (computed in float64).
    """
    check_tensor("x", x, ndim=2)
    tol = check_positive("tol", tol)
    max_iter = check_positive_int("max_iter", max_iter)
    n, p = x.shape
    if n < 1 or p < 2:
        raise ValueError(f"x must have shape (n >= 1, p >= 2), got {tuple(x.shape)}")
    x64 = x.to(torch.float64)
    norms = x64.norm(dim=1, keepdim=True)
    if bool((norms == 0).any()):
        raise ValueError("x has zero rows; expected unit vectors")
    mean = (x64 / norms).mean(0)
    r = mean.norm()
    loc = mean / r if float(r) > 0 else torch.zeros_like(mean)
    kappa = vmf_kappa_mle(r.clamp(0.0, 1.0), p, tol=tol, max_iter=max_iter)
    return loc.to(x.dtype), kappa.to(x.dtype)
