"""The GPU check: GPU tests plus the GPU halves of the Bessel and Kronecker benchmarks, one summary.

Run on a machine with a CUDA GPU as ``make gpu-check`` (which prepares an environment with the
``gpu`` extra, see ``benchmarks/gpu_check.sh``), or directly as ``sciml bench gpu_check``. Without a
CUDA device visible to torch it prints one ``gpu-check: skipped: ...`` line and exits 0. Each part runs
in its own process with a time limit, so one failing part still leaves the others' figures; the exit
code is 1 when any part failed. Budget: well under 5 minutes on one GPU.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["main", "skip_reason"]

# The repository root (benchmarks/ is installed editable, so its folder sits in the clone).
_ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Part:
    name: str
    status: str  # ok / failed / timeout
    seconds: float
    summary: str


def skip_reason() -> str | None:
    """Why the check cannot run here (no torch, no CUDA device), or ``None`` when it can."""
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        build = torch.version.cuda or "none (a CPU build)"
        return f"no CUDA device visible to torch {torch.__version__} (CUDA build: {build})"
    return None


def _run(name: str, cmd: list[str], timeout: float, pick: str) -> Part:
    """Run ``cmd``; the summary is the last output line matching the regex ``pick``."""
    t0 = time.perf_counter()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=_ROOT)
    except subprocess.TimeoutExpired as exc:
        tail = (exc.stdout or "") if isinstance(exc.stdout, str) else ""
        return Part(name, "timeout", time.perf_counter() - t0, f"over {timeout:.0f} s; " + tail[-200:])
    out = res.stdout + res.stderr
    print(f"\n===== {name}: {' '.join(cmd)}\n{out.rstrip()}", flush=True)
    lines = [ln for ln in out.splitlines() if re.search(pick, ln)]
    summary = lines[-1].strip() if lines else (out.strip().splitlines() or ["(no output)"])[-1]
    return Part(name, "ok" if res.returncode == 0 else f"failed (exit {res.returncode})",
                time.perf_counter() - t0, summary[:160])


def _parts(quick: bool) -> list[tuple[str, list[str], float, str]]:
    py = sys.executable
    n = "1000000" if quick else "10000000"
    return [
        ("gpu tests", [py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "gpu", str(_ROOT / "tests")], 150,
         r"passed|failed|error|skipped"),
        ("bessel benchmark (cuda)", [py, "-m", "sciml_benchmarks.bessel", "--device", "cuda", "--n", n,
                                     "--repeats", "3", "--mpmath-points", "100"], 120, r"sciml CPU / sciml"),
        ("kronecker benchmark (cuda)", [py, "-m", "sciml_benchmarks.kronecker", "--device", "cuda", "--quick",
                                        "--repeats", "3", "--no-progress"], 120, r"^device "),
        ("tensor attention benchmark (cuda)", [py, "-m", "sciml_benchmarks.tensor_attention", "--device", "cuda",
                                               "--sizes", "256,1024" if quick else "256,1024,4096", "--dims", "8,32",
                                               "--degrees", "6,10", "--repeats", "3", "--exact-queries", "1024"],
         240, r"^\| \d+ \| \d+ \| [\d.]+x"),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sciml bench gpu_check", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1e6 Bessel points instead of 1e7")
    args = parser.parse_args(argv)
    reason = skip_reason()
    if reason is not None:
        print(f"gpu-check: skipped: {reason}")
        return 0
    import torch

    gpu = torch.cuda.get_device_name(0)
    try:
        import cupy

        cupy_line = f"CuPy {cupy.__version__}"
    except ImportError:
        cupy_line = "CuPy not installed (the kernels fall back to torch; install the gpu extra)"
    parts = [_run(*p) for p in _parts(args.quick)]
    print(f"\ngpu-check on {gpu}, torch {torch.__version__} (CUDA {torch.version.cuda}), {cupy_line}, "
          f"Python {platform.python_version()}, host CPU {platform.processor() or platform.machine()}\n")
    print("| part | status | time (s) | summary |\n| --- | --- | --- | --- |")
    for p in parts:
        print(f"| {p.name} | {p.status} | {p.seconds:.0f} | {p.summary.replace('|', '/')} |")
    return 0 if all(p.status == "ok" for p in parts) else 1


if __name__ == "__main__":
    raise SystemExit(main())
