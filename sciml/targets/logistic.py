"""Synthetic Bayesian logistic regression with a known generating weight vector and a test set."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from sciml.targets.base import Target, check_dtype_device
from sciml.validation import check_positive, check_positive_int, check_seed, check_tensor

__all__ = ["LogisticRegression", "logistic_regression"]


class LogisticRegression(Target):
    """Posterior of Bayesian logistic regression, ``x = (w_1..w_p, b)`` with ``dim = p + 1``.

    ``log pi(x) = sum_i log sigmoid(s_i (X_i w + b)) + log N(w; 0, prior_scale^2 I) + log N(b; 0,
    intercept_scale^2)`` with labels ``s_i = 2 y_i - 1``. Unnormalised posterior: no ``log_z`` and no
    exact samples; the gradient is in closed form.

    Args:
        x_train: ``(n, p)`` features.
        y_train: ``(n,)`` labels in {0, 1}.
        x_test: held-out features for :meth:`test_log_likelihood` (optional).
        y_test: held-out labels.
        prior_scale: prior standard deviation of the weights.
        intercept_scale: prior standard deviation of the intercept.
        true_weights: the generating ``(p + 1,)`` parameter, when known.
    """

    def __init__(self, x_train: Tensor, y_train: Tensor, x_test: Tensor | None = None,
                 y_test: Tensor | None = None, *, prior_scale: float = 1.0, intercept_scale: float = 2.5,
                 true_weights: Tensor | None = None, dtype: torch.dtype = torch.float64,
                 device: torch.device | str | None = None) -> None:
        check_dtype_device(dtype, device)
        if (x_test is None) != (y_test is None):
            raise ValueError("x_test and y_test must be given together (test features and their labels)")
        x_train = check_tensor("x_train", torch.as_tensor(x_train, dtype=dtype), ndim=2)
        n, p = x_train.shape
        y_train = check_tensor("y_train", torch.as_tensor(y_train, dtype=dtype), shape=(n,))
        if not bool(((y_train == 0) | (y_train == 1)).all()):
            raise ValueError("y_train must contain only 0 and 1")
        super().__init__(p + 1, dtype=dtype, device=device)
        self.prior_scale = check_positive("prior_scale", prior_scale)
        self.intercept_scale = check_positive("intercept_scale", intercept_scale)
        self.x_train = x_train.to(self.device)
        self.y_train = y_train.to(self.device)
        self.x_test = self.y_test = None
        if x_test is not None:
            x_test = check_tensor("x_test", torch.as_tensor(x_test, dtype=dtype), shape=(None, p))
            y_test = check_tensor("y_test", torch.as_tensor(y_test, dtype=dtype), shape=(x_test.shape[0],))
            self.x_test, self.y_test = x_test.to(self.device), y_test.to(self.device)
        self.true_weights = None if true_weights is None else torch.as_tensor(true_weights, dtype=dtype).to(
            self.device)
        self._prior_var = torch.full((p + 1,), self.prior_scale**2, dtype=dtype, device=self.device)
        self._prior_var[-1] = self.intercept_scale**2
        self._prior_const = -0.5 * (p + 1) * math.log(2 * math.pi) - p * math.log(self.prior_scale) - math.log(
            self.intercept_scale)

    def _loglik(self, x: Tensor, feats: Tensor, labels: Tensor) -> Tensor:
        logits = x[..., :-1] @ feats.T + x[..., -1:]  # (..., n)
        signs = 2 * labels - 1
        return F.logsigmoid(signs * logits)  # (..., n)

    def log_prior(self, x: Tensor) -> Tensor:
        """Log prior density ``(..., dim) -> (...)`` (normalised)."""
        return self._prior_const - 0.5 * (x * x / self._prior_var).sum(-1)

    def log_prob(self, x: Tensor) -> Tensor:
        self._check_x(x)
        return self._loglik(x, self.x_train, self.y_train).sum(-1) + self.log_prior(x)

    def log_prob_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        self._check_x(x)
        x = x.detach()
        logits = x[..., :-1] @ self.x_train.T + x[..., -1:]
        signs = 2 * self.y_train - 1
        lp = F.logsigmoid(signs * logits).sum(-1) + self.log_prior(x)
        resid = signs * torch.sigmoid(-signs * logits)  # (..., n): d/dlogit log sigmoid(s * logit)
        g = torch.cat([resid @ self.x_train, resid.sum(-1, keepdim=True)], dim=-1) - x / self._prior_var
        return lp, g

    def test_log_likelihood(self, samples: Tensor, *, kind: str = "mean", include_prior: bool = False) -> float:
        """Held-out log-likelihood of posterior samples ``(S, dim)``.

        Args:
            kind: ``"mean"``: ``(1/S) sum_s sum_i log p(y_i | x_i, w_s)`` (average over samples of the
                test-set log-likelihood); ``"predictive"``: ``sum_i log (1/S) sum_s p(y_i | x_i, w_s)``
                (log posterior predictive).
            include_prior: with ``kind="mean"``, add the log prior density of each sample: this is what
                the SLIPS benchmark code reports as "mean_pred_log_prob" (its test-set target's log_prob).
        """
        if self.x_test is None:
            raise ValueError("this target has no test data (x_test, y_test)")
        check_tensor("samples", samples, shape=(None, self.dim))
        if samples.shape[0] == 0:
            raise ValueError("samples is empty: the test log-likelihood needs at least one sample")
        s = samples.to(dtype=self.dtype, device=self.device)
        ll = self._loglik(s, self.x_test, self.y_test)  # (S, n_test)
        if kind == "mean":
            per = ll.sum(-1)
            if include_prior:
                per = per + self.log_prior(s)
            return float(per.mean())
        if kind == "predictive":
            if include_prior:
                raise ValueError("include_prior applies to kind='mean' only")
            return float((torch.logsumexp(ll, 0) - math.log(s.shape[0])).sum())
        raise ValueError(f"kind must be 'mean' or 'predictive', got {kind!r}")


def logistic_regression(n_train: int = 280, dim: int = 35, seed: int = 0, *, n_test: int | None = None,
                        dtype: torch.dtype = torch.float64,
                        device: torch.device | str | None = None) -> LogisticRegression:
    """Synthetic Bayesian logistic regression, well specified.

    ``dim - 1`` features ``N(0, 1)`` standardised with the training mean / std, generating parameter
    ``(w, b)`` drawn from the prior (``w ~ N(0, I)``, ``b ~ N(0, 2.5^2)``), labels ``Bernoulli(sigmoid(X w
    + b))``. ``n_test`` defaults to ``n_train // 4`` (an 80/20 split). Seeded by ``seed``.
    """
    n_train = check_positive_int("n_train", n_train)
    if n_train < 2:
        raise ValueError(f"n_train must be >= 2 (the features are standardised by the training std), got {n_train}")
    dim = check_positive_int("dim", dim)
    if dim < 2:
        raise ValueError(f"dim must be >= 2 (features + intercept), got {dim}")
    n_test = n_train // 4 if n_test is None else check_positive_int("n_test", n_test)
    seed = check_seed("seed", seed)
    check_dtype_device(dtype, device)
    gen = torch.Generator().manual_seed(seed)
    p = dim - 1
    x = torch.randn(n_train + n_test, p, dtype=torch.float64, generator=gen)
    mu, sd = x[:n_train].mean(0), x[:n_train].std(0)
    x = (x - mu) / sd
    w = torch.randn(p, dtype=torch.float64, generator=gen)
    b = 2.5 * torch.randn((), dtype=torch.float64, generator=gen)
    probs = torch.sigmoid(x @ w + b)
    y = (torch.rand(n_train + n_test, dtype=torch.float64, generator=gen) < probs).to(torch.float64)
    return LogisticRegression(x[:n_train], y[:n_train], x[n_train:], y[n_train:],
                              true_weights=torch.cat([w, b[None]]), dtype=dtype, device=device)
