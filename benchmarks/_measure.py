"""Time and peak memory of one call, shared by the benchmarks that report both.

Memory on CPU is the increase of the process' peak resident set size over the call (Linux ``VmHWM``,
reset before each call through ``/proc/self/clear_refs``; ``None`` where that is unavailable); on CUDA
it is ``torch.cuda.max_memory_allocated`` over the call.
"""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["measure", "timed"]

def _vm(field: str) -> float | None:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            m = re.search(rf"{field}:\s+(\d+)", fh.read())
        return int(m.group(1)) / 1024.0 if m else None
    except OSError:
        return None


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def measure(fn: Callable[[], Tensor], device: torch.device) -> tuple[Tensor, float, float | None]:
    """Run ``fn`` once: (result, seconds, peak memory increase in MB or None)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        t0 = time.perf_counter()
        out = fn()
        torch.cuda.synchronize(device)
        dt = time.perf_counter() - t0
        peak = (torch.cuda.max_memory_allocated(device) - base) / 2**20
        return out, dt, peak
    ok = _reset_peak()
    base = _vm("VmRSS")
    t0 = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t0
    hwm = _vm("VmHWM")
    peak = hwm - base if ok and hwm is not None and base is not None else None
    return out, dt, peak


def timed(fn: Callable[[], Tensor], device: torch.device, repeats: int,
           budget_s: float) -> tuple[Tensor, float, int, float | None]:
    """Median time over up to ``repeats`` cold calls.

    Stops early after three calls once ``budget_s`` seconds are spent, or after one or two calls
    that took more than ``4 * budget_s``.
    """
    times: list[float] = []
    peaks: list[float] = []
    out = None
    spent = 0.0
    for i in range(repeats):
        out, dt, peak = measure(fn, device)
        times.append(dt)
        if peak is not None:
            peaks.append(peak)
        spent += dt
        if spent > budget_s and i >= 2 or spent > 4 * budget_s:
            break
    assert out is not None
    return out, statistics.median(times), len(times), (max(peaks) if peaks else None)
