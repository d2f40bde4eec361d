"""The LightSB benchmark code (benchmarks/lightsb.py, benchmarks/lightsb_eot.py): the EOT instances'
exact plans, the cB-W2^2-UVP metric, the basis rotation, the script, and their bad inputs."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import pytest
import torch
from sciml_benchmarks.lightsb_eot import (
    EOTBenchmark,
    bures_wasserstein_sq,
    cbw2_uvp_bridge,
    make_benchmark,
    random_rotation,
    random_spd,
    sample_moments,
)
from sciml_plugins.lightsb import Bridge, GaussianMixturePotential, LightSB

from sciml.metrics import gaussian_w2_sq

F64 = torch.float64


def _gaussian_pair(d: int, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(2):
        m = torch.randn(d, generator=g, dtype=F64)
        a = torch.randn(d, d, generator=g, dtype=F64) / math.sqrt(d)
        out.append((m, a @ a.T + 0.3 * torch.eye(d, dtype=F64)))
    return tuple(m + torch.randn(n, d, generator=g, dtype=F64) @ torch.linalg.cholesky(c).T for m, c in out)  # type: ignore[return-value]


def _bridge() -> Bridge:
    g = torch.Generator().manual_seed(1)
    pot = GaussianMixturePotential(2, 3, 0.5, "diag", init_means=torch.randn(3, 2, generator=g, dtype=F64), dtype=F64)
    return Bridge(pot, [1.0], {"num_steps": 1, "objective": "lightsb", "wall_time_s": 0.0})


def test_benchmark_plan_is_exact_and_metric() -> None:
    # BW^2 in 1-D: (m1 - m2)^2 + (s1 - s2)^2
    bw = gaussian_w2_sq(torch.tensor([[1.0]]), torch.tensor([[[4.0]]]), torch.tensor([[0.0]]), torch.tensor([[[1.0]]]))
    assert abs(float(bw) - 2.0) < 1e-12
    bench = make_benchmark(1, 0.5, seed=0)
    # pi*(y | x) ∝ N(y | x, eps) phi(y): compare with quadrature
    x = torch.tensor([[0.4]], dtype=F64)
    y = torch.linspace(-25, 25, 50001, dtype=F64)[:, None]
    log_un = -(y[:, 0] - x[0, 0]) ** 2 / (2 * 0.5) + bench.potential.log_prob(y)
    log_z = torch.logsumexp(log_un, 0) + math.log(float(y[1, 0] - y[0, 0]))
    got = bench.conditional_log_prob(y[::1000], x.expand(y[::1000].shape[0], 1))
    torch.testing.assert_close(got, log_un[::1000] - log_z, rtol=1e-7, atol=1e-7)
    # the exact plan scores ~0 and a fitted LightSB scores low on a 2-D instance
    bench2 = make_benchmark(2, 1.0, seed=0)
    bridge = LightSB(eps=1.0, n_components=5, covariance="full", num_steps=1500, lr=1e-2, batch_size=256,
                     progress=False, patience=None).solve(bench2, generator=torch.Generator().manual_seed(0))
    uvp = cbw2_uvp_bridge(bridge, bench2, n_test=500, generator=torch.Generator().manual_seed(1))
    assert uvp < 1.0, uvp


def test_benchmark_and_example_scripts_run(tmp_path, capsys) -> None:
    from sciml_benchmarks.lightsb import main as bench_main
    from sciml_solvers.swiss_roll_bridge import main as example_main

    assert bench_main(["--dims", "2", "--eps", "1", "--steps", "30", "--n-test", "50", "--pool", "2000"]) == 0
    out = capsys.readouterr().out
    assert "| 1 | 2 | 0 | 50 diag |" in out and "0.05" in out  # the published figure beside ours
    assert bench_main(["--preset", "auto", "--dims", "2", "--eps", "1", "--steps", "30", "--n-test", "50",
                       "--pool", "2000"]) == 0
    out = capsys.readouterr().out
    assert "| 1 | 2 | 0 | 10 full, " in out and "(selected)" in out
    # several seeds: a row each, then median / worst over the chosen (0 - 2) and the held-out seeds
    assert bench_main(["--preset", "auto", "--dims", "2", "--eps", "1", "--steps", "20", "--n-test", "50",
                       "--pool", "1000", "--init", "gaussian", "--seeds", "2,3,4"]) == 0
    out = capsys.readouterr().out
    rows = {int(line.split("|")[3]): float(line.split("|")[5]) for line in out.splitlines()
            if line.startswith("| 1 | 2 | ") and "full" in line}
    assert sorted(rows) == [2, 3, 4]
    summary = [line for line in out.splitlines() if line.startswith("| 1 | 2 | 0.05 |")]
    held = sorted([rows[3], rows[4]])
    assert summary and f"| {rows[2]:.3f} / {rows[2]:.3f} (1) | {held[0]:.3f} / {held[1]:.3f} (2) |" in summary[0]
    assert example_main(["--steps", "20", "--n", "500", "--components", "10", "--no-progress",
                         "--out", str(tmp_path)]) == 0
    assert (tmp_path / "swiss_roll_bridge.png").stat().st_size > 10_000


def test_rotated_diagonal_bridge_is_the_same_plan() -> None:
    # training a (diagonal) model on x @ U is a model with S_k = U diag U^T: rotate_bridge must map
    # the plan exactly (log-densities and conditional moments transform with U)
    from sciml_benchmarks.lightsb import gaussian_basis, rotate_bridge

    x0, x1 = _gaussian_pair(3, 2000, seed=12)
    U = gaussian_basis(x0, x1, 0.5)
    torch.testing.assert_close(U.T @ U, torch.eye(3, dtype=F64))
    bridge = LightSB(eps=0.5, n_components=3, num_steps=50, val_fraction=0.0, progress=False).solve(
        x0 @ U, x1 @ U, generator=torch.Generator().manual_seed(0))
    back = rotate_bridge(bridge, U)
    a, b = x0[:30], x1[:30]
    torch.testing.assert_close(back.log_prob(b, a), bridge.log_prob(b @ U, a @ U), rtol=1e-9, atol=1e-9)
    m, c = back.potential.conditional_moments(a)
    m_r, c_r = bridge.potential.conditional_moments(a @ U)
    torch.testing.assert_close(m, m_r @ U.T, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(c, U @ c_r @ U.T, rtol=1e-9, atol=1e-9)
    # the same for full covariances (S_k -> U S_k U^T)
    full = bridge.potential.subset(covariance="full")
    with torch.no_grad():
        full.chol_lower.normal_(0.0, 0.2, generator=torch.Generator().manual_seed(1))
    back = rotate_bridge(Bridge(full), U)
    torch.testing.assert_close(back.log_prob(b, a), Bridge(full).log_prob(b @ U, a @ U), rtol=1e-9, atol=1e-9)
    m, c = back.potential.conditional_moments(a)
    m_r, c_r = full.conditional_moments(a @ U)
    torch.testing.assert_close(m, m_r @ U.T, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(c, U @ c_r @ U.T, rtol=1e-9, atol=1e-9)


_BAD: list[tuple[str, Callable[[], Any], type[BaseException], str]] = [
    *[(f"make_benchmark-seed={v!r}", lambda v=v: make_benchmark(2, 1.0, seed=v), TypeError, "seed")
      for v in (1.5, "0", True)],
    ("make_benchmark-dim", lambda: make_benchmark(0, 1.0), ValueError, "dim"),
    ("random_rotation-dim", lambda: random_rotation(0), ValueError, "dim"),
    ("random_spd-low>high", lambda: random_spd(2, 1.5, 0.5), ValueError, "low"),
    ("EOTBenchmark-dims", lambda: EOTBenchmark(make_benchmark(2, 1.0).p0, make_benchmark(3, 1.0).potential, 1.0),
     ValueError, "potential"),
    ("EOTBenchmark-moments-D", lambda: make_benchmark(2, 1.0).conditional_moments(torch.zeros(4, 3)), ValueError, "x"),
    ("cbw2_uvp_bridge-bench", lambda: cbw2_uvp_bridge(_bridge(), "bench"), TypeError, "bench"),  # type: ignore[arg-type]
    ("cbw2_uvp_bridge-bridge", lambda: cbw2_uvp_bridge(object(), make_benchmark(2, 1.0)), TypeError, "bridge"),  # type: ignore[arg-type]
    ("cbw2_uvp_bridge-n_samples=1", lambda: cbw2_uvp_bridge(_bridge(), make_benchmark(2, 1.0), n_test=5, n_samples=1),
     ValueError, "n_samples"),
    ("sample_moments-one-draw", lambda: sample_moments(torch.zeros(3, 1, 2)), ValueError, "samples"),
    ("bures_wasserstein_sq-shapes", lambda: bures_wasserstein_sq(torch.zeros(2), torch.eye(3), torch.zeros(2),
                                                                  torch.eye(2)), ValueError, "S1"),
]


@pytest.mark.parametrize(("run", "error", "match"), [pytest.param(r, e, m, id=i) for i, r, e, m in _BAD])
def test_bad_input(run: Callable[[], Any], error: type[BaseException], match: str) -> None:
    with pytest.raises(error, match=re.compile(match, re.S)):
        run()
