"""The LSM plugin: patches, any grid, the conformance kit, training, save / load, errors."""

from __future__ import annotations

import pytest
import torch
from operator_problems import helmholtz_1d
from sciml_plugins.neural_operators import LSM, LatentSpectralBlock
from sciml_plugins.neural_operators.lsm import spectral_map

import sciml
from sciml import SaveFileError
from sciml.testing import check_operator
from sciml.training import fit


def test_spectral_map_is_the_sine_cosine_combination_and_its_gradients_are_exact():
    g = torch.Generator().manual_seed(0)
    t = torch.randn(3, 4, 5, dtype=torch.float64, generator=g, requires_grad=True)
    w = torch.randn(5, 2 * 6, dtype=torch.float64, generator=g, requires_grad=True)
    f = torch.arange(6, dtype=torch.float64) / 6
    angle = torch.pi * t[..., None] * f
    direct = (torch.sin(angle) * w[:, :6] + torch.cos(angle) * w[:, 6:]).sum(-1)
    # the fused map evaluates cos as sin(x + pi/2): each mode is off by the rounding of its argument
    # (~eps (1 + |x|)), summed over the modes with weights |w|; 8x margin for the other roundings
    eps = torch.finfo(torch.float64).eps
    bound = 8 * eps * ((w[:, :6].abs() + w[:, 6:].abs()) * (1 + angle.abs())).sum(-1)
    assert bool(((spectral_map(t, w, f) - direct).abs() <= bound).all())
    assert torch.autograd.gradcheck(lambda t, w: spectral_map(t, w, f), (t, w))
    # second derivatives too (physics-informed and gradient-penalty losses differentiate twice)
    assert torch.autograd.gradgradcheck(lambda t, w: spectral_map(t, w, f), (t, w))
    strided = t.transpose(0, 1)  # a non-contiguous layout
    assert torch.autograd.gradcheck(lambda t, w: spectral_map(t, w, f), (strided, w))


@pytest.mark.parametrize("n_dims,grid", [(1, (12,)), (2, (6, 9))])
def test_patches_round_trip_and_stay_local(n_dims, grid):
    block = LatentSpectralBlock(8, n_dims, patch=3, heads=2, basis=4).double().eval()
    x = torch.randn(2, 8, *grid, dtype=torch.float64)
    assert torch.equal(block._unpatch(block._patches(x), x.shape), x)
    # each patch is solved on its own: changing one patch leaves the others' outputs unchanged
    y = x.clone()
    y[(slice(None), slice(None), *[slice(0, 3)] * n_dims)] += 1.0
    with torch.no_grad():
        out_x, out_y = block(x), block(y)
    rest = (slice(None), slice(None), slice(3, None))
    assert torch.allclose(out_x[rest], out_y[rest], atol=1e-12) and not torch.allclose(out_x, out_y)


@pytest.mark.parametrize("n_dims,shape", [(1, (2, 2, 37)), (2, (2, 2, 13, 18))])
def test_conformance_kit_on_odd_grids(n_dims, shape):
    model = LSM(2, 3, n_dims, width=8, patch=2, heads=4, basis=4, projection=16)
    assert check_operator(model, shape)


def test_default_builds_on_the_paper_darcy_grid():
    model = sciml.load("operator", "lsm")(in_channels=1, out_channels=1, n_dims=2)
    assert model.multiple == 96  # 85 is padded to 96: five scales of 6-point patches
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 1, 85, 85)).shape == (1, 1, 85, 85)


def test_a_short_training_lowers_the_loss():
    a, u = helmholtz_1d(64, 32)
    torch.manual_seed(0)
    model = LSM(1, 1, 1, width=8, patch=2, heads=4, basis=4, projection=16)
    result = fit(model, (a, u), epochs=20, batch_size=8, lr=3e-3, generator=torch.Generator().manual_seed(0),
                 progress=False)
    assert result.history["train_loss"][-1] < 0.5 * result.history["train_loss"][0]


def test_save_load_and_errors(tmp_path):
    model = LSM(1, 1, 1, width=8, patch=2, heads=4, basis=4, projection=16).eval()
    model.save(tmp_path / "lsm.pt")
    back = LSM.load(tmp_path / "lsm.pt").eval()
    a = torch.randn(2, 1, 20)
    with torch.no_grad():
        assert torch.equal(model(a), back(a))
    torch.save({"x": torch.ones(1)}, tmp_path / "other.pt")
    with pytest.raises(SaveFileError, match="other.pt"):
        LSM.load(tmp_path / "other.pt")
    with pytest.raises(ValueError, match="divisible by heads"):
        LSM(width=10, heads=4)
    with pytest.raises(ValueError, match="n_dims must be 1 or 2"):
        LSM(1, 1, 3)
    with pytest.raises(ValueError, match=r"\(batch, 1, \*grid\)"):
        model(torch.randn(1, 2, 20))
    with pytest.raises(TypeError, match="floating"):
        model(torch.ones(1, 1, 20, dtype=torch.long))


def test_training_mode_inputs_that_would_break_batch_norm_are_refused():
    torch.manual_seed(0)
    model = LSM(1, 1, 1, width=8, patch=1, heads=4, basis=4, projection=16).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    bad = torch.randn(3, 1, 16)
    bad[0, 0, 4] = float("nan")
    with pytest.raises(ValueError, match="a has 1 non-finite entry"):
        model(bad)  # would spread to the other samples and into the running statistics
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="batch norm .* batch of 1"):
        model(torch.randn(1, 1, 16))
    assert model.eval()(torch.randn(1, 1, 16)).shape == (1, 1, 16)  # fine in eval mode
    assert model(torch.randn(0, 1, 16)).shape == (0, 1, 16)
    with pytest.raises(ValueError, match=r"patch: the grid \(16, 16\) would be padded to \(3200, 3200\)"):
        LSM(patch=200)(torch.randn(1, 1, 16, 16))
