"""The conformance kit accepts plugins that honour the contract and names every broken check."""

from __future__ import annotations

import time

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
        start = time.perf_counter()
        x = torch.randn(num_samples, target.dim, dtype=target.dtype, generator=generator)
        return sciml.Samples(x=x, n_evals=1, diagnostics={"wall_time_s": time.perf_counter() - start})


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
        super().__init__(loss_history=[1.0, 0.5], diagnostics={"residual": 0.0, "wall_time_s": 0.0})
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
    assert {"class contract", "generator keyword-only", "seeding [torch.float64]", "seeding [torch.float32]",
            "diagnostics keys [torch.float64]", "num_samples <= 0 raises ValueError",
            "bad generator raises TypeError", "non-finite target raises ValueError",
            "instance unchanged by sample()", "torch globals unchanged"} <= set(passed)


class PositionalGenerator(ExactGaussian):
    """Takes ``generator`` positionally."""

    def sample(self, target, num_samples, generator=None):
        return super().sample(target, num_samples, generator=generator)


class Remembers(ExactGaussian):
    """Keeps the last draws on the instance (not re-entrant)."""

    def sample(self, target, num_samples, *, generator=None):
        self.last = super().sample(target, num_samples, generator=generator)
        return self.last


class CountsCalls(ExactGaussian):
    """Mutates an existing attribute during sample()."""

    def __init__(self):
        self.calls = 0

    def sample(self, target, num_samples, *, generator=None):
        self.calls += 1
        return super().sample(target, num_samples, generator=generator)


class ChangesDefaultDtype(ExactGaussian):
    """Leaves torch's default dtype changed after sampling."""

    def sample(self, target, num_samples, *, generator=None):
        torch.set_default_dtype(torch.float64)
        return super().sample(target, num_samples, generator=generator)


class FlushesDenormals(ExactGaussian):
    """Switches flush-denormal on and leaves it on."""

    def sample(self, target, num_samples, *, generator=None):
        torch.set_flush_denormal(True)
        return super().sample(target, num_samples, generator=generator)


class LegacyDiagnostics(ExactGaussian):
    """Reports its time under a retired key."""

    def sample(self, target, num_samples, *, generator=None):
        res = super().sample(target, num_samples, generator=generator)
        res.diagnostics = {"wall_time": res.diagnostics["wall_time_s"]}
        return res


@pytest.mark.parametrize(("cls", "check", "message"), [
    (PositionalGenerator, "generator keyword-only", "keyword-only"),
    (Remembers, "instance unchanged by sample()", "added ['last']"),
    (CountsCalls, "instance unchanged by sample()", "self.calls changed (0 -> 1)"),
    (ChangesDefaultDtype, "torch globals unchanged", "default_dtype"),
    (FlushesDenormals, "torch globals unchanged", "flush_denormal: False -> True"),
    (LegacyDiagnostics, "diagnostics keys [torch.float64]", "retired key(s) ['wall_time']"),
], ids=["positional generator", "new attribute", "mutated attribute", "default dtype", "flush denormal",
        "legacy key"])
def test_each_broken_convention_fails_its_check(cls, check, message):
    if cls is FlushesDenormals and not torch.set_flush_denormal(False):
        pytest.skip("this CPU does not support flush-denormal")
    dtype = torch.get_default_dtype()
    with pytest.raises(ConformanceError) as info:
        check_sampler(cls())
    failures = info.value.failures
    assert check in failures and message in failures[check], failures
    # every other convention check passed, and the kit put the globals back
    assert {f.split(" [")[0] for f in failures} == {check.split(" [")[0]}
    assert torch.get_default_dtype() == dtype and float(torch.tensor([1e-40]) * 2) != 0.0


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


class _RandomLine(_Line):
    def __call__(self, x):
        return self.slope * x[:, 0] + torch.randn(x.shape[0], dtype=x.dtype)


class _Float64Line(_Line):
    def __call__(self, x):
        return self.slope * x[:, 0].to(torch.float64)


class _SamplingLine(_Line):
    def sample(self, x, generator=None):
        return self(x) + torch.randn(x.shape[0], dtype=x.dtype, generator=generator)


class _OldKeysLine(_Line):
    def __init__(self, slope):
        super().__init__(slope)
        self.diagnostics = {"train_time_s": 1.0}


def _solver(solution_cls, cache=False):
    class Solver(LineSolver):
        """LineSolver returning another solution type."""

        def solve(self, slope, *, generator=None):
            sol = solution_cls(super().solve(slope, generator=generator).slope)
            if cache:
                self.last_solution = sol
            return sol

    return Solver()


@pytest.mark.parametrize(("solver", "check", "message"), [
    (_solver(_RandomLine), "deterministic evaluation", "differ"),
    (_solver(_Float64Line), "evaluation follows the points' dtype and device", "torch.float32"),
    (_solver(_SamplingLine), "deterministic evaluation", "solution.sample(): `generator` must be keyword-only"),
    (_solver(_OldKeysLine), "diagnostics keys", "['train_time_s']"),
    (_solver(_Line, cache=True), "instance unchanged by solve()", "added ['last_solution']"),
], ids=["random evaluation", "fixed dtype", "positional generator", "legacy key", "cached state"])
def test_each_broken_solver_convention_fails_its_check(solver, check, message):
    with pytest.raises(ConformanceError) as info:
        check_solver(solver, (2.0,), torch.rand(10, 1, dtype=torch.float64))
    failures = info.value.failures
    assert check in failures and message in failures[check], failures
    assert set(failures) <= {check, "seeding"}  # a random evaluation also breaks seeding


def test_solver_and_surrogate_kits():
    passed = check_solver(LineSolver(), (2.0,), torch.rand(10, 1, dtype=torch.float64))
    assert {"seeding", "deterministic evaluation", "evaluation follows the points' dtype and device",
            "diagnostics keys", "instance unchanged by solve()", "torch globals unchanged"} <= set(passed)
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
