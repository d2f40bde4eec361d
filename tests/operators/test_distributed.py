"""Two-process DistributedDataParallel training (gloo, CPU) follows the single-process run."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).parent


def _run(launch, cmd: list[str], out: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE)}
    done = launch(cmd + [str(out)], env)
    assert done.returncode == 0, done.stderr[-3000:]
    return torch.load(out, weights_only=True)


@pytest.mark.slow
def test_two_gloo_processes_match_one(tmp_path, launch):
    script = str(HERE / "ddp_fit.py")
    one = _run(launch, [sys.executable, script], tmp_path / "one.pt")
    two = _run(launch, [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", script],
               tmp_path / "two.pt")
    assert (one["world_size"], two["world_size"]) == (1, 2)
    # float64 throughout: the runs differ only in the order gradients are summed (round-off ~1e-16,
    # carried through 12 Adam steps of size <= lr = 1e-2)
    for name, p in one["state"].items():
        assert torch.allclose(p, two["state"][name], rtol=0, atol=1e-10), name
    for key in ("train_loss", "test_error"):
        assert torch.allclose(torch.tensor(one["history"][key]), torch.tensor(two["history"][key]), rtol=1e-10)
