"""`make gpu-check` on a machine without a GPU: one clear line, exit 0, nothing installed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from sciml_benchmarks import gpu_check

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present: the check would run")


def test_module_skips_cleanly(capsys):
    assert gpu_check.skip_reason() is not None
    assert gpu_check.main([]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("gpu-check: skipped: no CUDA device visible to torch")


def test_script_skips_cleanly():
    env = dict(os.environ, PYTHON=sys.executable)
    had_venv = (ROOT / ".venv-gpu").exists()
    res = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh")], capture_output=True, text=True,
                         env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"gpu-check: skipped: no CUDA device visible to {sys.executable}")
    assert (ROOT / ".venv-gpu").exists() == had_venv
