"""Optional CuPy path: the exact tensor-attention forward pass fused in one CUDA kernel.

One thread block per (batch row, query) and ``THREADS`` threads: thread ``t`` takes the keys
``j = t, t + THREADS, ...``, forms ``a = q_i * k1_j`` once per ``j``, runs over every ``k`` with its own
running maximum, sum and ``e`` output sums (the online softmax), and the block merges the threads'
states in shared memory. Nothing of size ``m1 m2`` is written; the kernel also returns each query's
log-sum-exp, which the torch backward pass uses. Limits: ``d, e <= MAX_WIDTH``, float32 / float64;
otherwise the torch path runs on the CUDA tensors.

The per-thread part and the merge are C functions (:func:`kernel_source`) that compile with NVRTC and
with a host C compiler (the tests check the arithmetic on machines without a GPU). CuPy is probed once;
on any failure one ``RuntimeWarning`` says why and the torch path is used.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor

__all__ = ["kernel_source", "exact_forward_cupy", "cupy_ready", "THREADS", "MAX_WIDTH", "GPU_PREAMBLE",
           "HOST_PREAMBLE"]

THREADS = 64
MAX_WIDTH = 64

_BODY = r"""
/* one thread's share: keys j = t, t + nt, ...; state (mx, sm, acc[0..e)) */
DEVFN void ta_partial(const T* qi, const T* k1, const T* k2, const T* v1, const T* v2,
                      int m1, int m2, int d, int e, T scale, int t, int nt,
                      T* mx_out, T* sm_out, T* acc) {
    T a[MAX_WIDTH];
    T mx = -SCIML_INF, sm = 0;
    for (int c = 0; c < e; ++c) acc[c] = 0;
    for (int j = t; j < m1; j += nt) {
        for (int s = 0; s < d; ++s) a[s] = qi[s] * k1[(long long)j * d + s];
        for (int k = 0; k < m2; ++k) {
            T l = 0;
            for (int s = 0; s < d; ++s) l += a[s] * k2[(long long)k * d + s];
            l *= scale;
            if (l > mx) {
                T f = exp(mx - l);
                sm *= f;
                for (int c = 0; c < e; ++c) acc[c] *= f;
                mx = l;
            }
            T p = exp(l - mx);
            sm += p;
            for (int c = 0; c < e; ++c) acc[c] += p * v1[(long long)j * e + c] * v2[(long long)k * e + c];
        }
    }
    *mx_out = mx;
    *sm_out = sm;
}

/* merge state b into state a */
DEVFN void ta_merge(T* mx_a, T* sm_a, T* acc_a, T mx_b, T sm_b, const T* acc_b, int e) {
    T m = *mx_a > mx_b ? *mx_a : mx_b;
    if (m == -SCIML_INF) return;
    T fa = exp(*mx_a - m), fb = exp(mx_b - m);
    *sm_a = *sm_a * fa + sm_b * fb;
    for (int c = 0; c < e; ++c) acc_a[c] = acc_a[c] * fa + acc_b[c] * fb;
    *mx_a = m;
}
"""

_KERNEL = r"""
extern "C" __global__ void sciml_tensor_attention(
        const T* q, const T* k1, const T* k2, const T* v1, const T* v2, T* out, T* lse,
        int n, int m1, int m2, int d, int e, T scale) {
    __shared__ T s_mx[THREADS];
    __shared__ T s_sm[THREADS];
    __shared__ T s_acc[THREADS * MAX_WIDTH];
    const int i = blockIdx.x, b = blockIdx.y, t = threadIdx.x;
    const long long row = (long long)b * n + i;
    T* acc = s_acc + t * MAX_WIDTH;
    ta_partial(q + row * d, k1 + (long long)b * m1 * d, k2 + (long long)b * m2 * d,
               v1 + (long long)b * m1 * e, v2 + (long long)b * m2 * e, m1, m2, d, e, scale, t, THREADS,
               &s_mx[t], &s_sm[t], acc);
    __syncthreads();
    for (int half = THREADS / 2; half > 0; half >>= 1) {
        if (t < half)
            ta_merge(&s_mx[t], &s_sm[t], acc, s_mx[t + half], s_sm[t + half], s_acc + (t + half) * MAX_WIDTH, e);
        __syncthreads();
    }
    if (t == 0) {
        for (int c = 0; c < e; ++c) out[row * e + c] = acc[c] / s_sm[0];
        lse[row] = s_mx[0] + log(s_sm[0]);
    }
}
"""

#: Macros for NVRTC; ``T`` is defined per dtype when compiling.
GPU_PREAMBLE = (f"#define DEVFN __device__\n#define THREADS {THREADS}\n#define MAX_WIDTH {MAX_WIDTH}\n"
                "#define SCIML_INF __longlong_as_double(0x7ff0000000000000LL)\n")
#: The same for a host C compiler (the tests).
HOST_PREAMBLE = f"#include <math.h>\n#define DEVFN static\n#define MAX_WIDTH {MAX_WIDTH}\n#define SCIML_INF INFINITY\n"

_STATE: dict[str, Any] = {"probed": False, "ok": False, "kernels": {}, "cupy": None}
_TYPES = {torch.float64: "double", torch.float32: "float"}


def kernel_source() -> str:
    """The C body (``ta_partial``, ``ta_merge``); needs ``T`` and a preamble's macros."""
    return _BODY


def _build(cupy: Any) -> dict[torch.dtype, Any]:
    kernels = {}
    for dtype, ctype in _TYPES.items():
        src = f"#define T {ctype}\n" + GPU_PREAMBLE + _BODY + _KERNEL
        kernels[dtype] = cupy.RawKernel(src, "sciml_tensor_attention")
    return kernels


def cupy_ready() -> bool:
    """Whether the fused kernel runs here (probed once on a tiny problem; warns once when it cannot)."""
    if _STATE["probed"]:
        return bool(_STATE["ok"])
    _STATE["probed"] = True
    if not torch.cuda.is_available():
        return False
    try:
        import cupy  # noqa: PLC0415

        _STATE.update(kernels=_build(cupy), cupy=cupy)
        for dtype in _TYPES:  # out = 1 and lse = 1 for one query, one pair, all ones
            x = torch.ones(1, 1, 1, dtype=dtype, device="cuda")
            out, lse = _launch(x, x, x, x, x, 1.0)
            if abs(float(out) - 1.0) > 1e-6 or abs(float(lse) - 1.0) > 1e-6:
                raise RuntimeError(f"{dtype} probe returned out {float(out)}, lse {float(lse)}; expected 1, 1")
        _STATE["ok"] = True
    except Exception as exc:  # ImportError, CUDA driver / NVRTC errors ...
        warnings.warn(f"sciml.kernels.tensor_attention: the fused CuPy kernel is unavailable "
                      f"({type(exc).__name__}: {exc}); using the torch path on CUDA tensors instead.",
                      RuntimeWarning, stacklevel=3)
    return bool(_STATE["ok"])


def _launch(q: Tensor, k1: Tensor, k2: Tensor, v1: Tensor, v2: Tensor, scale: float) -> tuple[Tensor, Tensor]:
    cupy = _STATE["cupy"]
    b, n, d = q.shape
    m1, m2, e = k1.shape[1], k2.shape[1], v1.shape[2]
    xs = [x.detach().contiguous() for x in (q, k1, k2, v1, v2)]  # DLPack refuses tensors that require grad
    out = torch.empty(b, n, e, dtype=q.dtype, device=q.device)
    lse = torch.empty(b, n, dtype=q.dtype, device=q.device)
    cast = cupy.float64 if q.dtype == torch.float64 else cupy.float32
    stream = cupy.cuda.ExternalStream(torch.cuda.current_stream(q.device).cuda_stream)
    with cupy.cuda.Device(q.device.index or 0), stream:
        _STATE["kernels"][q.dtype](
            (n, b), (THREADS,),
            (*(cupy.from_dlpack(x) for x in xs), cupy.from_dlpack(out), cupy.from_dlpack(lse),
             cupy.int32(n), cupy.int32(m1), cupy.int32(m2), cupy.int32(d), cupy.int32(e), cast(scale)))
    return out, lse


def exact_forward_cupy(q: Tensor, k1: Tensor, k2: Tensor, v1: Tensor, v2: Tensor,
                       scale: float) -> tuple[Tensor, Tensor] | None:
    """``(out (b, n, e), lse (b, n))`` for CUDA inputs ``(b, ., .)``, or ``None`` to use the torch path."""
    if not q.is_cuda or q.dtype not in _TYPES or max(q.shape[-1], v1.shape[-1]) > MAX_WIDTH:
        return None
    if q.shape[0] > 65535 or not cupy_ready():
        return None
    return _launch(q, k1, k2, v1, v2, scale)
