"""The sampler benchmark's target registry (benchmarks/sampler_targets.py)."""

import math

import torch
from sciml_benchmarks.sampler_targets import BENCHMARK_TARGETS


def test_registry_dims_and_flags():
    dims = {"8-mog": 2, "40-mog-d2": 2, "40-mog-d50": 50, "25-gmm": 2, "10-mos": 2, "rings": 2, "funnel": 10,
            "funnel-slips": 10, "dw5": 5, "dw10": 10, "dw50": 50, "many-well-32": 32, "logreg-iono": 35,
            "logreg-sonar": 61}
    assert set(BENCHMARK_TARGETS) == set(dims)
    for name, d in dims.items():
        t = BENCHMARK_TARGETS[name]()
        assert t.dim == d and t.dtype == torch.float64
        assert t.has_exact_samples == (not name.startswith("logreg"))
    assert math.isclose(BENCHMARK_TARGETS["funnel-slips"]().scale, math.sqrt(3.0))  # the SLIPS code's variance 3
