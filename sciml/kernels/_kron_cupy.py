"""Optional CuPy path: fused division by the Kronecker eigenvalue grid on CUDA tensors.

``divide_by_grid(y, vals, shift)`` computes ``y[..., i, c] / (prod_k vals_k[i_k] + shift)`` in one
elementwise pass: each thread decodes its grid multi-index from the flat index and reads the d
factor eigenvalues, so the ``N``-long grid of products is never written to memory. The torch
fallback materialises the grid (``d - 1`` outer products) and then divides.

CuPy is probed once (import, a tiny kernel launch); on any failure the torch path is used and a
single :class:`RuntimeWarning` says why. Non-CUDA tensors never touch CuPy.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

__all__ = ["cupy_ready", "divide_by_grid_cupy", "MAX_FUSED_FACTORS"]

MAX_FUSED_FACTORS = 4

_STATE: dict[str, Any] = {"probed": False, "ok": False, "kernel": None, "cupy": None}

_OPERATION = r"""
long long g = (i / ncol) % ntot;
long long i4 = g % n4; g /= n4;
long long i3 = g % n3; g /= n3;
long long i2 = g % n2; g /= n2;
z = y / (l1[g] * l2[i2] * l3[i3] * l4[i4] + s);
"""


def _build_kernel(cupy: Any) -> Any:
    return cupy.ElementwiseKernel(
        "T y, raw T l1, raw T l2, raw T l3, raw T l4, int64 n2, int64 n3, int64 n4, "
        "int64 ncol, int64 ntot, T s",
        "T z",
        _OPERATION,
        "sciml_kron_divide_by_grid",
    )


def cupy_ready() -> bool:
    """Whether the fused CuPy kernel can run (probed once; warns once when it cannot)."""
    if _STATE["probed"]:
        return bool(_STATE["ok"])
    _STATE["probed"] = True
    reason = ""
    if not torch.cuda.is_available():
        return False  # CPU-only machine: nothing to warn about
    try:
        import cupy  # noqa: PLC0415

        kernel = _build_kernel(cupy)
        one = cupy.ones(1, dtype=cupy.float64)
        out = kernel(one * 2.0, one, one, one, one, 1, 1, 1, 1, 1, 1.0)
        if abs(float(out[0]) - 1.0) > 1e-12:
            raise RuntimeError(f"probe kernel returned {float(out[0])}, expected 1.0")
        _STATE.update(ok=True, kernel=kernel, cupy=cupy)
    except Exception as exc:  # ImportError, CUDARuntimeError, NVRTC compile errors ...
        reason = f"{type(exc).__name__}: {exc}"
    if not _STATE["ok"]:
        warnings.warn(
            "sciml.kernels.Kronecker: the fused CuPy eigenvalue-grid kernel is unavailable "
            f"({reason}); using the torch path on CUDA tensors instead.",
            RuntimeWarning,
            stacklevel=3,
        )
    return bool(_STATE["ok"])


def divide_by_grid_cupy(y: Tensor, vals: Sequence[Tensor], shift: float) -> Tensor | None:
    """``y / (grid + shift)`` with ``y`` of shape ``(..., N, c)`` and unbatched ``vals``.

    Returns ``None`` when the fused path does not apply (not CUDA, CuPy unusable, batched
    eigenvalues, more than four factors, or a dtype other than float32/float64).
    """
    if not y.is_cuda or len(vals) > MAX_FUSED_FACTORS or any(v.ndim != 1 for v in vals):
        return None
    if y.dtype not in (torch.float32, torch.float64) or not cupy_ready():
        return None
    cupy = _STATE["cupy"]
    kernel = _STATE["kernel"]
    ls = [v.contiguous() for v in vals]
    ones = torch.ones(1, dtype=y.dtype, device=y.device)
    while len(ls) < MAX_FUSED_FACTORS:
        ls.append(ones)
    sizes = [int(v.shape[0]) for v in ls]
    ntot = 1
    for n in sizes:
        ntot *= n
    yc = y.contiguous()
    out = torch.empty_like(yc)
    stream = cupy.cuda.ExternalStream(torch.cuda.current_stream(y.device).cuda_stream)
    with cupy.cuda.Device(y.device.index or 0), stream:
        kernel(
            cupy.from_dlpack(yc),
            *(cupy.from_dlpack(v) for v in ls),
            sizes[1], sizes[2], sizes[3], int(y.shape[-1]), ntot, float(shift),
            cupy.from_dlpack(out),
        )
    return out
