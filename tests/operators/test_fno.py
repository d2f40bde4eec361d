"""The FNO plugin: its layers against closed forms, the conformance kit, resolution handling, errors."""

from __future__ import annotations

import math

import pytest
import torch
from operator_problems import helmholtz_1d
from sciml_plugins.neural_operators import FNO, SpectralConv

import sciml
from sciml import SaveFileError
from sciml.testing import check_operator
from sciml.training import count_parameters, evaluate, fit


def _band_limited(n: int, size: int, modes: int, n_dims: int, seed: int = 0) -> torch.Tensor:
    """Real fields with Fourier modes |k| < modes per dimension, ``(n, 1, *[size] * n_dims)``, float64."""
    g = torch.Generator().manual_seed(seed)
    spec = torch.zeros(n, 1, *[size] * (n_dims - 1), size // 2 + 1, dtype=torch.complex128)
    lead = [torch.cat([torch.arange(modes), torch.arange(size - modes + 1, size)]) for _ in range(n_dims - 1)]
    index = (slice(None), slice(None), *torch.meshgrid(*lead, indexing="ij"), slice(0, modes)) if lead else \
        (slice(None), slice(None), slice(0, modes))
    shape = spec[index].shape
    spec[index] = torch.complex(torch.randn(shape, generator=g, dtype=torch.float64),
                                torch.randn(shape, generator=g, dtype=torch.float64))
    return torch.fft.irfftn(spec, s=[size] * n_dims, dim=tuple(range(2, 2 + n_dims)))


@pytest.mark.parametrize("n_dims", [1, 2, 3])
def test_spectral_conv_with_unit_weights_is_the_identity_on_its_modes(n_dims):
    size, modes = 16, 5
    conv = SpectralConv(1, 1, (modes,) * n_dims).double()
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[..., 0] = 1.0
    x = _band_limited(2, size, modes, n_dims)
    torch.set_grad_enabled(False)
    # float64 transforms of 16 points and back: round-off ~ log2(16) eps |x|, |x| ~ 10
    assert torch.allclose(conv(x), x, atol=1e-12)
    # a mode above the kept ones is removed
    grid = torch.arange(size, dtype=torch.float64) / size
    high = torch.cos(2 * math.pi * (modes + 1) * grid).expand(1, 1, *[size] * n_dims).contiguous()
    assert float(conv(high).abs().max()) < 1e-12
    torch.set_grad_enabled(True)


def test_parameter_count_is_the_papers():
    # 4 layers x 32 x 32 x (2 x 12) x 12 complex weights (two reals each), lifting (a, x, y) -> 32,
    # 4 skips 32 -> 32, projection 32 -> 128 -> 1: the 2,368,001 that the FNO paper's Darcy script prints
    model = sciml.load("operator", "fno")(in_channels=1, out_channels=1, n_dims=2)
    want = 4 * 2 * 32 * 32 * 12 * 12 * 2 + (3 * 32 + 32) + 4 * (32 * 32 + 32) + (32 * 128 + 128) + (128 + 1)
    assert count_parameters(model) == want == 2_368_001


@pytest.mark.parametrize("n_dims,shape", [(1, (2, 2, 37)), (2, (2, 2, 29, 30))])
def test_conformance_kit(n_dims, shape):
    model = FNO(2, 3, n_dims, width=8, modes=6, n_layers=2, projection=16)
    assert check_operator(model, shape)


def test_periodic_configuration_is_shift_equivariant():
    torch.manual_seed(0)
    model = FNO(1, 1, 2, width=8, modes=6, n_layers=3, projection=16, padding=0.0, coordinates=False).double()
    a = torch.randn(2, 1, 24, 20, dtype=torch.float64)
    shifted = torch.roll(a, shifts=(5, -3), dims=(2, 3))
    with torch.no_grad():
        assert torch.allclose(model(shifted), torch.roll(model(a), shifts=(5, -3), dims=(2, 3)), atol=1e-10)


def test_padding_scales_with_the_grid():
    model = FNO(1, 1, 2)
    # ceil(0.1 n) points (the scripts' fixed 9 at 85), then up to a size with factors 2, 3, 5, 7
    assert [n + model._pad(n) for n in (43, 85, 169, 211)] == [48, 96, 189, 240]
    assert FNO(1, 1, 2, padding=0.0)._pad(85) == 0


def test_trained_coarse_evaluates_at_twice_the_resolution():
    a, u = helmholtz_1d(160, 32)
    torch.manual_seed(0)
    model = FNO(1, 1, 1, width=8, modes=8, n_layers=2, projection=16)  # padding 0.1, coordinates
    result = fit(model, (a, u), epochs=30, batch_size=16, lr=1e-2, generator=torch.Generator().manual_seed(0),
                 progress=False)
    coarse = evaluate(result.model, helmholtz_1d(40, 32, seed=1))
    fine = evaluate(result.model, helmholtz_1d(40, 64, seed=1))
    # the learned map is a smooth multiplier: at twice the grid the error stays of the same size
    assert coarse < 0.08 and fine < 2 * coarse + 0.02


def test_bad_inputs():
    model = FNO(1, 1, 2)
    with pytest.raises(ValueError, match=r"too small for modes=\(12, 12\)"):
        model(torch.randn(1, 1, 16, 16))
    with pytest.raises(ValueError, match=r"\(batch, 1, \*grid\) with 2 grid dimension"):
        model(torch.randn(1, 1, 32))
    with pytest.raises(ValueError, match="batch, 1"):
        model(torch.randn(1, 2, 32, 32))
    with pytest.raises(TypeError, match="floating"):
        model(torch.ones(1, 1, 32, 32, dtype=torch.long))
    with pytest.raises(ValueError, match="n_dims must be 1, 2 or 3"):
        FNO(1, 1, 4)
    with pytest.raises(ValueError, match="activation"):
        FNO(activation="swish")
    with pytest.raises(ValueError, match="padding"):
        FNO(padding=-0.1)


def test_bad_inputs_are_refused_before_any_work():
    model = FNO(1, 1, 2, width=8, modes=4, n_layers=2, projection=16)
    with pytest.raises(TypeError, match=r"a is torch.float64 but the model's parameters are torch.float32.*a.float\(\)"):
        model(torch.randn(2, 1, 16, 16, dtype=torch.float64))
    with pytest.raises(TypeError, match="a is torch.float16"):
        model(torch.randn(2, 1, 16, 16).half())
    bad = torch.randn(2, 1, 16, 16)
    bad[1, 0, 3, 3] = math.inf
    with pytest.raises(ValueError, match="a has 1 non-finite entry"):
        model(bad)
    with pytest.raises(ValueError, match="at least one point per grid dimension"):
        model(torch.randn(2, 1, 0, 16))
    assert model(torch.randn(0, 1, 16, 16)).shape == (0, 1, 16, 16)  # an empty batch: an empty output
    with pytest.raises(ValueError, match="padding .* must be <= 1"):
        FNO(1, 1, 1, padding=1e20)  # fast_fft_size would search forever near 1.6e21
    with pytest.raises(TypeError, match="coordinates must be a bool"):
        FNO(coordinates="no")


def test_save_load_round_trip_and_foreign_files(tmp_path):
    model = FNO(1, 2, 1, width=8, modes=4, n_layers=2).eval()
    model.save(tmp_path / "fno.pt")
    back = FNO.load(tmp_path / "fno.pt").eval()
    a = torch.randn(3, 1, 20)
    with torch.no_grad():
        assert torch.equal(model(a), back(a))
    assert back.config == model.config
    torch.save({"state": model.state_dict()}, tmp_path / "plain.pt")
    with pytest.raises(SaveFileError, match="plain.pt"):
        FNO.load(tmp_path / "plain.pt")


@pytest.mark.parametrize("n,m", [(16, 5), (15, 8), (16, 9), (7, 1)])
def test_truncated_real_ffts_have_exact_adjoints(n, m):
    # the custom backward passes (one real FFT each instead of torch's full complex transform) against
    # finite differences; m = n // 2 + 1 includes the Nyquist coefficient of an even n
    from sciml_plugins.neural_operators.spectral import _LowIRFFT, _LowRFFT

    g = torch.Generator().manual_seed(n)
    x = torch.randn(2, 3, n, dtype=torch.float64, generator=g, requires_grad=True)
    y = torch.randn(2, 3, m, dtype=torch.complex128, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: _LowRFFT.apply(t, m), (x,))
    assert torch.autograd.gradcheck(lambda t: _LowIRFFT.apply(t, n), (y,))
    with torch.no_grad():
        assert torch.allclose(_LowRFFT.apply(x, m), torch.fft.rfft(x)[..., :m])
        assert torch.allclose(_LowIRFFT.apply(y, n), torch.fft.irfft(y, n=n))


def test_darcy_trained_at_43_evaluates_at_85(tmp_path, monkeypatch):
    # the check of the resolution-scaled padding: one Darcy set solved at 169^2 (cheap here),
    # subsampled to 43^2 for training and to 85^2 for testing the same fields
    from sciml.datasets import darcy

    monkeypatch.setenv("SCIML_DATA_DIR", str(tmp_path))
    kw = {"solve_resolution": 169, "progress": False}
    train, test, test_fine = darcy(100, 43, **kw), darcy(20, 43, seed=1, **kw), darcy(20, 85, seed=1, **kw)
    torch.manual_seed(0)
    model = FNO(1, 1, 2, width=12, modes=8, n_layers=3, projection=32)
    result = fit(model, train, test, epochs=15, batch_size=10, lr=3e-3, generator=torch.Generator().manual_seed(0),
                 progress=False)
    coarse, fine = result.test_error, evaluate(result.model, test_fine)
    # a short run learns the map well below the error of predicting zero (1.0); at twice the grid the
    # error stays of the same size (the padded domain is about the same, the coordinates the same)
    assert coarse < 0.3 and fine < 1.5 * coarse + 0.02, (coarse, fine)
