"""Tensor attention: exact (blocked, online softmax) against the materialised formula, its custom
backward by gradcheck, the polynomial method within its stated bound, bounded memory, the Khatri-Rao
helpers, the CuPy kernel's C body on the host compiler, and clear errors."""

from __future__ import annotations

import ctypes
import math
import shutil
import subprocess
import sys
import textwrap
from contextlib import nullcontext

import numpy as np
import pytest
import torch

from sciml.kernels import (
    _attention_cupy,
    entry_bound,
    khatri_rao,
    khatri_rao_gram,
    naive_tensor_attention,
    num_monomials,
    poly_degree,
    poly_error_bound,
    tensor_attention,
)

F64, F32 = torch.float64, torch.float32


def _inputs(lead, n, m1, m2, d, e, *, seed=0, dtype=F64, low=-1.0, high=1.0):
    g = torch.Generator().manual_seed(seed)

    def u(*shape):
        return (low + (high - low) * torch.rand(*shape, generator=g, dtype=F64)).to(dtype)

    return u(*lead, n, d), u(*lead, m1, d), u(*lead, m2, d), u(*lead, m1, e), u(*lead, m2, e)


def _value_scale(v1, v2):
    return float((v1.unsqueeze(-2) * v2.unsqueeze(-3)).abs().max())


@pytest.mark.parametrize("lead,n,m1,m2,d,e,block", [((), 1, 1, 1, 1, 1, 1), ((), 9, 7, 5, 3, 2, 11),
                                                    ((2,), 6, 13, 4, 5, 3, 17), ((2, 3), 5, 4, 6, 2, 4, 2**17),
                                                    ((), 33, 20, 31, 8, 6, 64), ((5,), 4, 3, 7, 2, 2, 10)])
def test_exact_matches_the_materialised_formula(lead, n, m1, m2, d, e, block):
    q, k1, k2, v1, v2 = _inputs(lead, n, m1, m2, d, e, seed=n + m1, low=-2.0, high=2.0)
    ref = naive_tensor_attention(q, k1, k2, v1, v2)
    out = tensor_attention(q, k1, k2, v1, v2, block_elements=block)
    assert out.shape == (*lead, n, e)
    # both sum at most m1 m2 positive weights of bounded size: relative error ~ eps log(m1 m2)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12 * _value_scale(v1, v2))
    out = tensor_attention(q, k1, k2, v1, v2, scale=0.7, block_elements=block)
    torch.testing.assert_close(out, naive_tensor_attention(q, k1, k2, v1, v2, scale=0.7), rtol=1e-12,
                               atol=1e-12 * _value_scale(v1, v2))


def test_exact_with_masks_and_broadcast_batches():
    q, k1, k2, v1, v2 = _inputs((3,), 7, 6, 5, 4, 2, seed=1)
    g = torch.Generator().manual_seed(2)
    masks = [torch.rand(3, 7, 6, 5, generator=g) > 0.4,
             torch.tril(torch.ones(7, 6, dtype=torch.bool))[:, :, None],  # (n, m1, 1): broadcast over k
             torch.ones(6, 5, dtype=torch.bool).triu()]                    # (m1, m2): the same for every query
    masks[0][:, :, 0, 0] = True  # every query keeps a pair
    # values are products of U(-1, 1) entries (|v1 v2| <= 1): the 1e-12 relative bound above in absolute terms
    for mask in masks:
        out = tensor_attention(q, k1, k2, v1, v2, mask=mask, block_elements=9)
        ref = naive_tensor_attention(q, k1, k2, v1, v2, mask=mask)
        torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-13)
    # keys shared by the batch, queries per batch row
    out = tensor_attention(q, k1[0], k2[0], v1[0], v2[0])
    torch.testing.assert_close(out, naive_tensor_attention(q, k1[0].expand(3, 6, 4), k2[0].expand(3, 5, 4),
                                                           v1[0].expand(3, 6, 2), v2[0].expand(3, 5, 2)),
                               rtol=1e-12, atol=1e-13)


def test_float32_exact_is_as_accurate_as_float32_allows():
    q, k1, k2, v1, v2 = _inputs((2,), 20, 15, 10, 8, 4, seed=3, dtype=F32)
    out = tensor_attention(q, k1, k2, v1, v2, block_elements=50)
    ref = naive_tensor_attention(*(x.double() for x in (q, k1, k2, v1, v2)))
    assert out.dtype == F32
    # logits carry ~d eps32 relative error (|logit| <= 1 here), the weighted sums ~log2(m1 m2) eps32 more
    tol = (8 + math.log2(150) + 4) * torch.finfo(F32).eps * _value_scale(v1, v2)
    assert float((out.double() - ref).abs().max()) < tol


def test_the_custom_backward_passes_gradcheck():
    q, k1, k2, v1, v2 = (x.requires_grad_() for x in _inputs((2,), 4, 3, 5, 3, 2, seed=4))
    assert torch.autograd.gradcheck(lambda *a: tensor_attention(*a, block_elements=7), (q, k1, k2, v1, v2))
    mask = torch.rand(2, 4, 3, 5, generator=torch.Generator().manual_seed(5)) > 0.3
    mask[..., 0, 0] = True
    assert torch.autograd.gradcheck(lambda *a: tensor_attention(*a, mask=mask, scale=1.3, block_elements=4),
                                    (q, k1, k2, v1, v2))
    # broadcast keys: their gradients sum over the batch
    kk1 = k1[0].detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: tensor_attention(a, b, k2, v1, v2), (q, kk1))
    # and the gradients equal autograd through the materialised formula
    out = tensor_attention(q, k1, k2, v1, v2, block_elements=5)
    ref = naive_tensor_attention(q, k1, k2, v1, v2)
    w = torch.randn(out.shape, generator=torch.Generator().manual_seed(6), dtype=F64)
    for a, b in zip(torch.autograd.grad((out * w).sum(), (q, k1, k2, v1, v2)),
                    torch.autograd.grad((ref * w).sum(), (q, k1, k2, v1, v2))):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("width", [0.3, 0.7, 1.0])
def test_poly_stays_within_its_stated_bound(width):
    q, k1, k2, v1, v2 = _inputs((2,), 12, 10, 9, 3, 2, seed=7, low=-width, high=width)
    q = q * 3  # entries of q up to 3 width: scale 1/3 keeps the logits near width^3
    bound = entry_bound(q, k1, k2)
    ref = naive_tensor_attention(q, k1, k2, v1, v2)
    scale = _value_scale(v1, v2)
    assert math.isfinite(poly_error_bound(bound, 13))  # B = 3 width^3 <= 3: the check bites at high degree
    for degree in (1, 2, 4, 6, 9, 13):
        stated = poly_error_bound(bound, degree)
        warns = pytest.warns(RuntimeWarning, match="guarantees nothing") if math.isinf(stated) else nullcontext()
        with warns:  # a degree whose Taylor error can exceed 1 says so
            err = float((tensor_attention(q, k1, k2, v1, v2, method="poly", degree=degree) - ref).abs().max())
        assert err <= stated * scale + 1e-14, (width, degree, err, stated)
    # the bound is a bound on the logits, and degree=None picks the smallest degree meeting tol
    logits = torch.einsum("...it,...jt,...kt->...ijk", q, k1, k2) / 3
    assert float(logits.abs().max()) <= bound
    for tol in (1e-3, 1e-8):
        g = poly_degree(bound, tol)
        assert poly_error_bound(bound, g) <= tol and (g == 0 or poly_error_bound(bound, g - 1) > tol)
        err = float((tensor_attention(q, k1, k2, v1, v2, method="poly", tol=tol) - ref).abs().max())
        assert err <= tol * scale + 1e-14


def test_poly_monomials_are_every_monomial_once_with_its_multinomial_weight(monkeypatch):
    """The slice-built features of degree <= 5 in 4 variables against the sorted index tuples, each
    product of x with 1 / alpha!, on the buffered (no-grad) and the autograd path; and the result does
    not depend on the chunking of the rows."""
    import itertools

    from sciml.kernels import attention

    d, degree = 4, 5
    x = torch.rand(1, 3, d, generator=torch.Generator().manual_seed(11), dtype=F64) + 0.5
    starts, inv_fact = attention._monomial_tables(d, degree)
    feats, inv = attention._features(x.mT, starts)[0], torch.cat(inv_fact)
    combos = [c for p in range(degree + 1) for c in itertools.combinations_with_replacement(range(d), p)]
    assert feats.shape == (num_monomials(d, degree), 3) == (len(combos), 3)
    ref = torch.stack([x[0, :, list(c)].prod(-1) for c in combos])
    ref_inv = torch.tensor([1.0 / math.prod(math.factorial(c.count(v)) for v in set(c)) for c in combos], dtype=F64)
    order, ref_order = torch.sort(feats[:, 0]).indices, torch.sort(ref[:, 0]).indices  # distinct values
    # products of at most 5 factors (and 1 / alpha! by at most 5 divisions) in another order: a few ulps
    torch.testing.assert_close(feats[order], ref[ref_order], rtol=1e-14, atol=0.0)
    torch.testing.assert_close(inv[order], ref_inv[ref_order], rtol=1e-14, atol=0.0)
    tracked = attention._features(x.mT.clone().requires_grad_(), starts)[0]  # the autograd path: same order
    torch.testing.assert_close(tracked.detach(), feats, rtol=1e-15, atol=0.0)  # the same products, same order
    small = _inputs((), 40, 30, 20, 3, 2, seed=12, low=-1.0, high=1.0)
    whole = tensor_attention(*small, method="poly", degree=6)
    monkeypatch.setattr(attention, "_POLY_BLOCK", 7 * num_monomials(3, 6))  # chunks of 7 rows
    # the same float64 sums over 20 - 40 rows in another grouping: |error| <~ 40 eps (|v| <= 1, normalised weights)
    torch.testing.assert_close(tensor_attention(*small, method="poly", degree=6), whole, rtol=1e-12, atol=1e-13)


def test_poly_gradients_follow_autograd():
    q, k1, k2, v1, v2 = (x.requires_grad_() for x in _inputs((), 5, 4, 3, 2, 2, seed=8, low=-0.5, high=0.5))
    assert torch.autograd.gradcheck(lambda *a: tensor_attention(*a, method="poly", degree=5), (q, k1, k2, v1, v2))


def test_auto_takes_poly_when_it_is_cheaper_and_exact_otherwise(monkeypatch):
    from sciml.kernels import attention

    calls = []
    real_poly = attention._poly
    monkeypatch.setattr(attention, "_poly", lambda *a: calls.append(a[6]) or real_poly(*a))
    small = _inputs((), 300, 300, 300, 2, 2, seed=9, low=-1.0, high=1.0)
    ref = naive_tensor_attention(*small)
    out = tensor_attention(*small, method="auto", tol=1e-9)
    assert calls == [poly_degree(entry_bound(*small[:3]), 1e-9)]
    assert float((out - ref).abs().max()) <= 1e-9 * _value_scale(*small[3:])
    mask = torch.ones(300, 300, 300, dtype=torch.bool)
    tensor_attention(*small, method="auto", mask=mask)
    wide = _inputs((), 6, 5, 4, 16, 2, seed=10, low=-3.0, high=3.0)  # large entries: no useful degree
    tensor_attention(*wide, method="auto")
    tensor_attention(*small, method="auto", degree=1, tol=1e-9)  # a given degree not certified to tol
    assert len(calls) == 1


def test_khatri_rao_helpers_match_explicit_products():
    g = torch.Generator().manual_seed(11)
    a, b = torch.randn(2, 4, 3, generator=g, dtype=F64), torch.randn(2, 5, 3, generator=g, dtype=F64)
    c, e = torch.randn(2, 4, 2, generator=g, dtype=F64), torch.randn(2, 5, 2, generator=g, dtype=F64)
    kr = khatri_rao(a, b)
    assert kr.shape == (2, 20, 3)
    for j in range(4):
        for k in range(5):
            assert torch.equal(kr[:, j * 5 + k], a[:, j] * b[:, k])
    torch.testing.assert_close(khatri_rao_gram(a, b, c, e), khatri_rao(a, b).mT @ khatri_rao(c, e),
                               rtol=1e-13, atol=1e-13)
    # the attention's logits are Q (K1 kr K2)^T / d
    q = torch.randn(2, 6, 3, generator=g, dtype=F64)
    v = torch.randn(2, 20, 1, generator=g, dtype=F64)
    p = torch.softmax(q @ kr.mT / 3, -1)
    out = tensor_attention(q, a, b, torch.ones(2, 4, 1, dtype=F64), v.reshape(2, 4, 5)[:, 0, :, None])
    torch.testing.assert_close(out, p @ khatri_rao(torch.ones(2, 4, 1, dtype=F64), v.reshape(2, 4, 5)[:, 0, :, None]),
                               rtol=1e-12, atol=1e-13)
    with pytest.raises(ValueError, match="columns"):
        khatri_rao(a, c)
    with pytest.raises(ValueError, match="do not pair"):
        khatri_rao_gram(a, b, e, c)


def test_exact_memory_stays_bounded_at_n_1024(tmp_path):
    # an address-space limit 1 GiB above the process's size after import: the n^3 = 1.07e9 logits
    # (8.6 GB in float64) cannot be allocated, the blocked method needs ~1 MB per block
    script = textwrap.dedent("""
        import resource, torch
        from sciml.kernels import tensor_attention
        g = torch.Generator().manual_seed(0)
        xs = [torch.rand(1024, d, dtype=torch.float64, generator=g) for d in (2, 2, 2, 1, 1)]
        tensor_attention(*[x[:4] for x in xs])
        size = next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmSize"))
        resource.setrlimit(resource.RLIMIT_AS, (size + 2**30, resource.RLIM_INFINITY))
        out = tensor_attention(*xs)
        ref_row = torch.softmax((xs[0][:1] * 0.5) @ (xs[1][:, None, :] * xs[2][None]).reshape(-1, 2).T, -1)
        want = ref_row @ (xs[3][:, None, :] * xs[4][None]).reshape(-1, 1)
        assert torch.allclose(out[:1], want, rtol=1e-12, atol=0), (out[:1], want)
        try:
            torch.empty(1024, 1024, 128, dtype=torch.float64)
        except RuntimeError:
            print("limited")
    """)
    if not sys.platform.startswith("linux"):
        pytest.skip("the address-space limit is read from /proc")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                         env={"OMP_NUM_THREADS": "1", "PATH": ""})
    assert run.returncode == 0, run.stderr[-2000:]
    assert "limited" in run.stdout  # the limit was in force


def test_bad_inputs_get_clear_errors():
    q, k1, k2, v1, v2 = _inputs((), 4, 3, 2, 2, 2)
    with pytest.raises(ValueError, match="shapes do not match"):
        tensor_attention(q, k1, k2, v1[:2], v2)
    with pytest.raises(ValueError, match="shapes do not match"):
        tensor_attention(q, k1[:, :1], k2, v1, v2)
    with pytest.raises(TypeError, match="share dtype"):
        tensor_attention(q.float(), k1, k2, v1, v2)
    with pytest.raises(TypeError, match="float32 or float64"):
        tensor_attention(q.long(), k1.long(), k2.long(), v1.long(), v2.long())
    with pytest.raises(ValueError, match="q must have shape"):
        tensor_attention(q[0], k1, k2, v1, v2)
    with pytest.raises(ValueError, match="empty"):
        tensor_attention(q[:0], k1, k2, v1, v2)
    with pytest.raises(ValueError, match="finite"):
        tensor_attention(q, k1, k2.clone().fill_(math.nan), v1, v2)
    with pytest.raises(ValueError, match="method"):
        tensor_attention(q, k1, k2, v1, v2, method="fast")
    with pytest.raises(ValueError, match="scale"):
        tensor_attention(q, k1, k2, v1, v2, scale=0.0)
    with pytest.raises(ValueError, match="block_elements"):
        tensor_attention(q, k1, k2, v1, v2, block_elements=0)
    with pytest.raises(ValueError, match="degree"):
        tensor_attention(q, k1, k2, v1, v2, method="poly", degree=-1)
    with pytest.raises(ValueError, match="batch"):
        tensor_attention(q.expand(2, 4, 2), k1.expand(3, 3, 2), k2, v1, v2)
    mask = torch.ones(4, 3, 2, dtype=torch.bool)
    with pytest.raises(ValueError, match="does not take a mask"):
        tensor_attention(q, k1, k2, v1, v2, method="poly", mask=mask)
    with pytest.raises(TypeError, match="bool"):
        tensor_attention(q, k1, k2, v1, v2, mask=mask.double())
    with pytest.raises(ValueError, match="does not broadcast"):
        tensor_attention(q, k1, k2, v1, v2, mask=mask[:, :2])
    empty_row = mask.clone()
    empty_row[2] = False
    with pytest.raises(ValueError, match="query 2"):
        tensor_attention(q, k1, k2, v1, v2, mask=empty_row)
    big = [x * 40 for x in (q, k1, k2)]
    with pytest.raises(ValueError, match="no degree"):
        tensor_attention(*big, v1, v2, method="poly")
    with pytest.raises(ValueError, match="tol"):
        poly_degree(1.0, 0.0)
    with pytest.raises(ValueError, match="degree must be <= MAX_DEGREE = 24, got 1000"):
        tensor_attention(q, k1, k2, v1, v2, method="poly", degree=1000)
    wide = [torch.full((2, 64), 0.01, dtype=torch.float64)] * 5
    with pytest.raises(ValueError, match="degree 24 in d = 64 variables has 2.36e\\+21 monomials"):
        tensor_attention(*wide, method="poly", degree=24)


def test_overflowing_logits_are_named_not_nan():
    ones = torch.ones(2, 3)
    for args, kw in (((-1e13 * ones, 1e13 * ones, 1e13 * ones, ones, ones), {}),  # float32: -inf logits, no mask
                     ((ones, ones, ones, ones, ones), {"scale": 1e39})):       # +inf logits
        with pytest.raises(ValueError, match="overflow torch.float32 .*use float64 or a smaller scale"):
            tensor_attention(*args, **kw)
    out = tensor_attention(*(x.double() for x in (-1e13 * ones, 1e13 * ones, 1e13 * ones, ones, ones)))
    assert torch.allclose(out, torch.ones(2, 3, dtype=torch.float64))  # the same logits fit in float64


def test_helpers_check_their_inputs():
    a = torch.ones(3, 4)
    with pytest.raises(ValueError, match="q must have shape .*rows >= 1, d >= 1"):
        entry_bound(torch.ones(3, 0), torch.ones(2, 0), torch.ones(2, 0))
    with pytest.raises(ValueError, match="q must have shape"):
        entry_bound(torch.ones(0, 4), a, a)
    with pytest.raises(ValueError, match="share their last dimension d"):
        entry_bound(a, torch.ones(2, 3), a)
    with pytest.raises(TypeError, match="q must have a floating dtype"):
        entry_bound(a.long(), a, a)
    with pytest.raises(ValueError, match="non-finite"):
        entry_bound(a * math.nan, a, a)
    with pytest.raises(ValueError, match="leading \\(batch\\) dimensions of a .* and b .* do not broadcast"):
        khatri_rao(torch.ones(2, 3, 4), torch.ones(3, 3, 4))
    with pytest.raises(TypeError, match="a and c must share dtype"):
        khatri_rao_gram(a, a, a.double(), a.double())
    with pytest.raises(TypeError, match="a must be a floating or complex tensor"):
        khatri_rao(a.long(), a.long())
    with pytest.raises(ValueError, match="d must be >= 0"):
        num_monomials(-1, 3)
    with pytest.raises(TypeError, match="degree must be an int"):
        num_monomials(3, 2.5)


# ------------------------------------------------------------------------------ CuPy path
_HARNESS = r"""
#include <stdlib.h>
void run(const T* q, const T* k1, const T* k2, const T* v1, const T* v2, T* out, T* lse,
         int b, int n, int m1, int m2, int d, int e, T scale, int nt) {
    T* mx = malloc(nt * sizeof(T)); T* sm = malloc(nt * sizeof(T)); T* acc = malloc(nt * MAX_WIDTH * sizeof(T));
    for (int bb = 0; bb < b; ++bb) for (int i = 0; i < n; ++i) {
        long long row = (long long)bb * n + i;
        for (int t = 0; t < nt; ++t)  /* the block's threads, one after another */
            ta_partial(q + row * d, k1 + (long long)bb * m1 * d, k2 + (long long)bb * m2 * d,
                       v1 + (long long)bb * m1 * e, v2 + (long long)bb * m2 * e, m1, m2, d, e, scale, t, nt,
                       &mx[t], &sm[t], acc + t * MAX_WIDTH);
        for (int half = nt / 2; half > 0; half >>= 1)
            for (int t = 0; t < half; ++t)
                ta_merge(&mx[t], &sm[t], acc + t * MAX_WIDTH, mx[t + half], sm[t + half], acc + (t + half) * MAX_WIDTH, e);
        for (int c = 0; c < e; ++c) out[row * e + c] = acc[c] / sm[0];
        lse[row] = mx[0] + log(sm[0]);
    }
    free(mx); free(sm); free(acc);
}
"""


@pytest.mark.parametrize("ctype,dtype,rtol", [("double", F64, 1e-12), ("float", F32, 2e-5)])
def test_cupy_kernel_source_on_the_host_compiler(tmp_path, ctype, dtype, rtol):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    src = tmp_path / "k.c"
    src.write_text(f"#define T {ctype}\n" + _attention_cupy.HOST_PREAMBLE + _attention_cupy.kernel_source() + _HARNESS)
    lib = tmp_path / "k.so"
    subprocess.run([cc, "-O2", "-shared", "-fPIC", "-o", str(lib), str(src), "-lm"], check=True)
    run = ctypes.CDLL(str(lib)).run
    # m1 = 70 > THREADS: some threads take two keys; m1 < THREADS in the second case: some take none
    for b, n, m1, m2, d, e in ((2, 5, 70, 9, 6, 3), (1, 3, 7, 4, 2, 5)):
        xs = [x.contiguous() for x in _inputs((b,), n, m1, m2, d, e, seed=m1, dtype=dtype, low=-2.0, high=2.0)]
        arrays = [x.numpy() for x in xs]
        out = np.empty((b, n, e), dtype=arrays[0].dtype)
        lse = np.empty((b, n), dtype=arrays[0].dtype)
        ptr = ctypes.POINTER(ctypes.c_double if ctype == "double" else ctypes.c_float)
        scal = (ctypes.c_double if ctype == "double" else ctypes.c_float)(1.0 / d)
        run(*(a.ctypes.data_as(ptr) for a in (*arrays, out, lse)), *(ctypes.c_int(v) for v in (b, n, m1, m2, d, e)),
            scal, ctypes.c_int(_attention_cupy.THREADS))
        ref = naive_tensor_attention(*(x.double() for x in xs)).numpy()
        logits = torch.einsum("bit,bjt,bkt->bijk", *(x.double() for x in xs[:3])) / d
        ref_lse = torch.logsumexp(logits.flatten(-2), -1).numpy()
        np.testing.assert_allclose(out, ref, rtol=rtol, atol=rtol * _value_scale(*xs[3:]))
        np.testing.assert_allclose(lse, ref_lse, rtol=rtol, atol=rtol)


def test_cpu_tensors_never_reach_cupy():
    xs = _inputs((1,), 2, 2, 2, 2, 2)
    assert _attention_cupy.exact_forward_cupy(*xs, 0.5) is None


@pytest.mark.gpu
def test_gpu_matches_cpu():
    xs = _inputs((2,), 40, 30, 20, 8, 4, seed=12)
    cpu = tensor_attention(*xs)
    cuda = [x.cuda().requires_grad_() for x in xs]
    assert _attention_cupy.cupy_ready(), "the fused kernel should run on a CUDA machine with CuPy"
    out = tensor_attention(*cuda)
    torch.testing.assert_close(out.cpu(), cpu.detach(), rtol=1e-12, atol=1e-13)
    grads = torch.autograd.grad(out.sum(), cuda)
    cpu_in = [x.clone().requires_grad_() for x in xs]
    want = torch.autograd.grad(tensor_attention(*cpu_in).sum(), cpu_in)
    for a, b in zip(grads, want):
        torch.testing.assert_close(a.cpu(), b, rtol=1e-10, atol=1e-12)
    out32 = tensor_attention(*(x.detach().float() for x in cuda))
    assert float((out32.double().cpu() - cpu).abs().max()) < 1e-5
