"""The gp-pde benchmark set (benchmarks/gp_pde.py): exact solutions satisfy the PDEs, settings cover every row."""

from __future__ import annotations

import torch
from sciml_benchmarks.gp_pde import SETTINGS, benchmark_problems
from sciml_plugins.gp_pde import allen_cahn, laplacian


def test_benchmark_problems_exact() -> None:
    probs = benchmark_problems()
    assert len(probs) == 11 and set(probs) == set(SETTINGS)
    prob, ref = probs["allen-cahn2d"]
    assert prob.operator.nonlinearity is not None and ref["freq_scale"] == 30 and ref["ref_err"] == 2.6e-3
    # the source of the manufactured problem satisfies the PDE with the exact solution
    x = torch.rand(5, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert torch.allclose(prob.source(x), allen_cahn(2).apply(prob.exact, x))
    prob, _ = probs["poisson1d-sin100x"]
    x1 = x[:, :1]
    assert torch.allclose(prob.source(x1), -1e4 * torch.sin(100 * x1[:, 0]))
    assert prob.operator.terms == laplacian(1).terms
