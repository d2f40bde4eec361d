"""The conformance kit accepts plugins that honour the contract and names every broken check."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import sciml
from sciml.testing import (
    ConformanceError,
    check_operator,
    check_plugin_class,
    check_sampler,
    check_solver,
    check_surrogate,
)
from sciml.validation import check_generator, check_positive_int, check_tensor


class ExactGaussian(sciml.Sampler):
    """Exact draws from a standard normal target (for testing the kit)."""

    name = "exact-gaussian"

    def sample(self, target, num_samples, *, generator=None):
        num_samples = check_positive_int("num_samples", num_samples)
        check_generator("generator", generator)
        if not torch.isfinite(target.log_prob(torch.zeros(1, target.dim, dtype=target.dtype))).all():
            raise ValueError("target.log_prob is not finite at the initial point")
        x = torch.randn(num_samples, target.dim, dtype=target.dtype, generator=generator)
        return sciml.Samples(x=x, n_evals=1)


class Sloppy(sciml.Sampler):
    """Ignores the generator, returns the wrong shape and float32 always."""

    name = "sloppy"

    def sample(self, target, num_samples, *, generator=None):
        return sciml.Samples(x=torch.randn(num_samples + 1, target.dim), n_evals=-1)


class PointwiseOperator(sciml.Operator):
    """A 1x1 convolution: maps (B, C_in, *grid) to (B, C_out, *grid) pointwise."""

    name = "pointwise"

    def __init__(self, in_channels: int = 2, out_channels: int = 3) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.n_dims = in_channels, out_channels, 2
        self.conv = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, a):
        if a.ndim != 4 or a.shape[1] != self.in_channels:
            raise ValueError(f"a must have shape (B, {self.in_channels}, H, W), got {tuple(a.shape)}")
        return self.conv(a)


class BatchMixingOperator(PointwiseOperator):
    """Mixes batch rows (breaks the contract) and does not validate channels."""

    name = "batch-mixing"

    def forward(self, a):
        out = self.conv(a[:, : self.in_channels])
        return out + out.mean(0, keepdim=True)


class _Line(sciml.Solution):
    def __init__(self, slope):
        super().__init__(loss_history=[1.0, 0.5], diagnostics={"residual": 0.0})
        self.slope = slope

    def __call__(self, x):
        return self.slope * x[:, 0]


class LineSolver(sciml.Solver):
    """Fits u(x) = a x through the origin by least squares on noisy data it draws."""

    name = "line"

    def solve(self, slope, *, generator=None):
        noise = torch.randn(32, generator=generator, dtype=torch.float64)
        x = torch.linspace(0, 1, 32, dtype=torch.float64)
        y = slope * x + 0.01 * noise
        return _Line(float((x * y).sum() / (x * x).sum()))


class Ridge(sciml.Surrogate):
    """Ridge regression surrogate y ~ X w."""

    name = "ridge"

    def __init__(self, alpha: float = 1e-3) -> None:
        self.alpha = alpha
        self.w = None

    def fit(self, x, y, *, generator=None):
        x, y = check_tensor("x", x, ndim=2), check_tensor("y", y, ndim=1)
        a = x.T @ x + self.alpha * torch.eye(x.shape[1], dtype=x.dtype)
        self.w = torch.linalg.solve(a, x.T @ y)
        return self

    def predict(self, x):
        return x @ self.w

    def state_dict(self):
        return {"w": self.w.clone()}

    def load_state_dict(self, state):
        self.w = state["w"].clone()


def test_good_sampler_passes_every_check():
    passed = check_sampler(ExactGaussian())
    assert {"class contract", "seeding [torch.float64]", "seeding [torch.float32]",
            "num_samples <= 0 raises ValueError", "bad generator raises TypeError",
            "non-finite target raises ValueError"} <= set(passed)


def test_sloppy_sampler_fails_with_every_broken_check_named():
    with pytest.raises(ConformanceError) as info:
        check_sampler(Sloppy())
    failures = info.value.failures
    assert "x has shape (65, 2), want (64, 2)" in failures["result type and shape [torch.float64]"]
    assert "equal seeds gave different samples" in failures["seeding [torch.float32]"]
    assert "num_samples <= 0 raises ValueError" in failures
    assert "bad generator raises TypeError" in failures
    assert "non-finite target raises ValueError" in failures
    assert "Sloppy failed" in str(info.value)


def test_operator_kit():
    assert "gradients" in check_operator(PointwiseOperator(), (3, 2, 8, 8))
    with pytest.raises(ConformanceError) as info:
        check_operator(BatchMixingOperator(), (3, 2, 8, 8))
    assert set(info.value.failures) == {"deterministic, batch-independent", "wrong channel count raises ValueError"}


def test_solver_and_surrogate_kits():
    assert "seeding" in check_solver(LineSolver(), (2.0,), torch.rand(10, 1, dtype=torch.float64))
    x = torch.randn(50, 3, dtype=torch.float64)
    y = x @ torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    assert "state_dict round trip" in check_surrogate(Ridge, (x, y), (x[:5],))


def test_class_contract_names_problems():
    class Unnamed(sciml.Sampler):
        def sample(self, target, num_samples, *, generator=None):
            return None

    with pytest.raises(ConformanceError) as info:
        check_plugin_class(Unnamed)
    assert set(info.value.failures) == {"identity", "docstring"}


def test_samples_and_solution_types():
    s = sciml.Samples(x=torch.zeros(7, 3))
    assert (s.num_samples, s.dim, s.n_evals, s.log_weights, s.diagnostics) == (7, 3, 0, None, {})
    with pytest.raises(TypeError):
        sciml.Solution()  # abstract: __call__ must be defined
    sol = _Line(2.0)
    assert sol.loss_history == [1.0, 0.5] and sol(torch.ones(4, 1)).tolist() == [2.0] * 4
