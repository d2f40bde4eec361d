"""Shared argument checks: each error names the argument and the problem."""

from __future__ import annotations

import math

import pytest
import torch

from sciml.validation import (
    check_bool,
    check_generator,
    check_nonnegative,
    check_positive,
    check_positive_int,
    check_tensor,
)


def test_check_tensor():
    x = torch.zeros(3, 2)
    assert check_tensor("x", x, ndim=2, shape=(None, 2)) is x
    with pytest.raises(TypeError, match="x must be a torch.Tensor, got list"):
        check_tensor("x", [1.0])
    with pytest.raises(TypeError, match="floating dtype"):
        check_tensor("x", torch.zeros(3, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"x must have 1 or 3 dimensions, got shape \(3, 2\)"):
        check_tensor("x", x, ndim=(1, 3))
    with pytest.raises(ValueError, match=r"x must have shape \(\*, 5\), got \(3, 2\)"):
        check_tensor("x", x, shape=(None, 5))
    bad = torch.tensor([1.0, math.nan, math.inf])
    with pytest.raises(ValueError, match="x has 2 non-finite entries"):
        check_tensor("x", bad)
    assert check_tensor("x", bad, finite=False) is bad


@pytest.mark.parametrize("value, exc", [(0.0, ValueError), (-1, ValueError), (math.nan, ValueError),
                                        (math.inf, ValueError), ("1", TypeError), (True, TypeError),
                                        (torch.ones(2), ValueError)])
def test_check_positive_rejects(value, exc):
    with pytest.raises(exc, match="eps"):
        check_positive("eps", value)


def test_scalar_checks_accept():
    assert check_positive("eps", torch.tensor(0.5)) == 0.5
    assert check_nonnegative("shift", 0) == 0.0
    with pytest.raises(ValueError, match="shift must be >= 0"):
        check_nonnegative("shift", -1e-3)
    assert check_positive_int("n", 3) == 3
    assert check_positive_int("n", torch.tensor(4)) == 4
    for bad, exc in [(0, ValueError), (2.0, TypeError), (False, TypeError)]:
        with pytest.raises(exc, match="n must"):
            check_positive_int("n", bad)
    g = torch.Generator()
    assert check_generator("generator", g) is g and check_generator("generator", None) is None
    with pytest.raises(TypeError, match="generator must be a torch.Generator or None, got int"):
        check_generator("generator", 0)


@pytest.mark.parametrize("bad", [0, 1, 1.0, "yes", None, torch.tensor(True)])
def test_check_bool(bad):
    assert check_bool("flag", True) is True and check_bool("flag", False) is False
    with pytest.raises(TypeError, match="flag must be a bool"):
        check_bool("flag", bad)


def test_check_tensor_finite_entries_whose_sum_overflows():
    big = torch.full((4,), 1e308, dtype=torch.float64)
    assert check_tensor("x", big) is big


def test_check_module_dtype_names_both_dtypes_and_the_cast():
    from torch import nn

    from sciml.validation import check_module_dtype

    x = torch.ones(2, 3)
    assert check_module_dtype("x", x, nn.Linear(3, 1)) is x
    assert check_module_dtype("x", x.double(), nn.Identity()) is not None  # no parameters: any dtype
    with pytest.raises(TypeError, match=r"x is torch.float64 .* torch.float32: .*x.float\(\).*model.double\(\)"):
        check_module_dtype("x", x.double(), nn.Linear(3, 1))


def test_check_int_accepts_integer_kinds_only():
    import numpy as np

    from sciml.validation import check_int, check_nonnegative_int, check_real

    for good in (3, np.int64(3), np.int32(3), torch.tensor(3)):
        assert check_int("n", good) == 3 and type(check_int("n", good)) is int
    assert check_nonnegative_int("n", 0) == 0
    for bad in (True, 3.0, np.float32(3), torch.tensor(3.0), torch.tensor(True), torch.tensor([3, 4]), "3", None):
        with pytest.raises(TypeError, match="n must be an int"):
            check_int("n", bad)
    with pytest.raises(ValueError, match="n must be >= 0, got -1"):
        check_nonnegative_int("n", -1)
    for good in (2, 2.5, np.float32(2.5), np.int64(2), torch.tensor(2.5)):
        assert check_real("s", good) == float(good)
    for bad in (True, np.True_, "2", [2.0]):
        with pytest.raises(TypeError, match="s must be a real number"):
            check_real("s", bad)
    with pytest.raises(ValueError, match="s must be finite"):
        check_real("s", math.inf)
