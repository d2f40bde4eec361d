"""The samplers benchmark's budget arithmetic and published-protocol metric (no sampling runs)."""

import torch
from sciml_benchmarks.sampler_targets import BENCHMARK_TARGETS
from sciml_benchmarks.samplers import _published_metric, steps_from_pilots

from sciml.metrics import sliced_ks


def test_steps_from_pilots_linear_cost():
    # fixed 256 (SIR start) + 30 per step: 20 steps -> 856, 60 steps -> 2056; 3000 -> (3000 - 256) / 30
    assert steps_from_pilots(856.0, 2056.0, 3000) == 91


def test_steps_from_pilots_cost_falling_with_steps_stays_within_budget():
    # coarse steps cost more sub-steps: the fitted slope is negative; cost taken as proportional
    steps = steps_from_pilots(1413.3, 1197.6, 3000)
    assert steps == int(3000 / (1197.6 / 60))
    assert 10 <= steps_from_pilots(5.0, 5.0, 3000) <= 3000  # flat cost: bounded by the budget


def test_funnel_rows_use_the_slips_binned_sliced_ks():
    t = BENCHMARK_TARGETS["funnel-slips"]()
    x = t.sample(500, generator=torch.Generator().manual_seed(1))
    ref = t.sample(500, generator=torch.Generator().manual_seed(2))
    name, value = _published_metric("funnel-slips", x, ref, t)
    assert name == "sliced KS"
    assert value == sliced_ks(x, ref, generator=torch.Generator().manual_seed(0), n_bins=256)
    assert value != sliced_ks(x, ref, generator=torch.Generator().manual_seed(0))  # not the exact statistic
