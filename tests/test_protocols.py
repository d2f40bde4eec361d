"""The published-protocol estimators of benchmarks/protocols.py."""

import math

import ot
import pytest
import torch
from sciml_benchmarks.protocols import pot_sinkhorn_w2


def test_pot_sinkhorn_w2_is_pots_default_call_and_reports_underflow():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 2, dtype=torch.float64, generator=g)
    y = torch.randn(250, 2, dtype=torch.float64, generator=g) + 1.0
    cost = torch.cdist(x, y) ** 2
    ref = math.sqrt(ot.sinkhorn2(ot.unif(200), ot.unif(250), cost.numpy(), 1.0, numItermax=1000, stopThr=1e-9))
    val, failed = pot_sinkhorn_w2(x, y, reg=1.0)
    assert val == pytest.approx(ref, rel=1e-12) and not failed
    far = torch.cat([x[:100], x[100:] + 100.0])  # costs >> 37: Sinkhorn-Knopp's kernel underflows at reg 0.05
    assert pot_sinkhorn_w2(far, y)[1]
