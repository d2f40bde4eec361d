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

    assert bench_main(["--preset", "published", "--dims", "2", "--eps", "1", "--steps", "30", "--n-test", "50",
                       "--pool", "2000"]) == 0
    out = capsys.readouterr().out
    assert "| 1 | 2 | 0 | 50 diag, identity, 30 steps, batch 128, lr 0.01 |" in out and "0.05" in out
    # the default: the solver's own rule (D = 2: two full fits, kept by held-out loss)
    assert bench_main(["--dims", "2", "--eps", "1", "--steps", "30", "--n-test", "50", "--pool", "2000"]) == 0
    out = capsys.readouterr().out
    assert "| 1 | 2 | 0 | 10 full, " in out and "held-out loss chose it over the gaussian / clusters" in out
    # several seeds: a row each, then median / worst over the chosen (0 - 4) and the held-out seeds
    assert bench_main(["--dims", "2", "--eps", "1", "--steps", "20", "--n-test", "50",
                       "--pool", "1000", "--init", "gaussian", "--seeds", "4,5,10"]) == 0
    out = capsys.readouterr().out
    rows = {int(line.split("|")[3]): float(line.split("|")[5]) for line in out.splitlines()
            if line.startswith("| 1 | 2 | ") and "full" in line}
    assert sorted(rows) == [4, 5, 10]
    summary = [line for line in out.splitlines() if line.startswith("| 1 | 2 | 0.05 |")]
    held = sorted([rows[5], rows[10]])
    assert summary and f"| {rows[4]:.3f} / {rows[4]:.3f} (1) | {held[0]:.3f} / {held[1]:.3f} (2) |" in summary[0]
    assert example_main(["--steps", "20", "--n", "500", "--components", "10", "--no-progress",
                         "--out", str(tmp_path)]) == 0
    assert (tmp_path / "swiss_roll_bridge.png").stat().st_size > 10_000


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


def test_exact_bridge_has_the_benchmark_plan() -> None:
    from sciml_benchmarks.lightsb import exact_bridge

    bench = make_benchmark(3, 0.7, seed=2)
    x = bench.sample_p0(50, torch.Generator().manual_seed(0))
    m, c = exact_bridge(bench).conditional_moments(x)
    m_true, c_true = bench.conditional_moments(x)
    torch.testing.assert_close(m, m_true, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(c, c_true, rtol=1e-9, atol=1e-9)
