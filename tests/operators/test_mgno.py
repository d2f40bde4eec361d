"""The MgNO plugin: the paper's size, any grid, boundary modes, training, save / load, errors."""

from __future__ import annotations

import pytest
import torch
from operator_problems import helmholtz_1d
from sciml_plugins.neural_operators import MgNO, VCycle

import sciml
from sciml import SaveFileError
from sciml.testing import check_operator
from sciml.training import count_parameters, evaluate, fit


def test_prolongation_with_zero_padding_is_the_papers_transposed_convolution():
    cycle = VCycle(3, 2, (1, 1), 2).double()
    ref = torch.nn.ConvTranspose2d(3, 3, kernel_size=4, stride=2, padding=1, bias=False).double()
    ref.weight.data.copy_(cycle.prolong[0].weight.data)
    coarse = torch.randn(2, 3, 5, 7, dtype=torch.float64)
    with torch.no_grad():
        assert torch.allclose(cycle._prolongate(0, coarse), ref(coarse), atol=1e-12)


def test_default_is_the_papers_rough_darcy_model():
    # width 24, 4 layers, 6 levels, smoothing 1, 1, 1, 1, 1, 2 (the schedule the public script really
    # runs), 1x1 projection without bias: the 572,661 parameters MgNO reports
    model = sciml.load("operator", "mgno")(in_channels=1, out_channels=1, n_dims=2)
    assert count_parameters(model) == 572_661
    assert model.training_defaults["schedule"] == "onecycle" and model.training_defaults["loss"] == "l2"


@pytest.mark.parametrize("n_dims,shape", [(1, (2, 2, 37)), (2, (2, 2, 29, 30)), (2, (1, 2, 16, 16))])
def test_conformance_kit_on_odd_and_non_power_of_two_grids(n_dims, shape):
    model = MgNO(2, 3, n_dims, width=6, n_layers=2, levels=3)
    assert check_operator(model, shape)


@pytest.mark.parametrize("mode", ["zeros", "reflect"])
def test_padding_crops_back_and_a_sample_does_not_see_its_neighbours(mode):
    torch.manual_seed(0)
    model = MgNO(1, 1, 2, width=6, n_layers=2, levels=4, padding_mode=mode).double().eval()
    a = torch.randn(3, 1, 21, 26, dtype=torch.float64)
    with torch.no_grad():
        out = model(a)
        assert out.shape == (3, 1, 21, 26)
        assert torch.allclose(model(a[1:2]), out[1:2], atol=1e-12, rtol=0)


def test_circular_padding_is_equivariant_to_shifts_of_the_coarsest_cell():
    # stride-2 restriction makes the V-cycle equivariant to shifts by multiples of 2^(levels - 1)
    torch.manual_seed(0)
    model = MgNO(1, 1, 2, width=6, n_layers=2, levels=3, padding_mode="circular").double().eval()
    a = torch.randn(2, 1, 16, 24, dtype=torch.float64)
    with torch.no_grad():
        for shift in [(4, 0), (8, -12), (-4, 20)]:
            shifted = model(torch.roll(a, shift, dims=(2, 3)))
            assert torch.allclose(shifted, torch.roll(model(a), shift, dims=(2, 3)), atol=1e-10), shift
        zero = MgNO(1, 1, 2, width=6, n_layers=2, levels=3, padding_mode="zeros").double().eval()
        zero.load_state_dict(model.state_dict())
        # with zero padding the boundary is a wall: the same weights are not shift-equivariant
        assert not torch.allclose(zero(torch.roll(a, (4, 0), dims=(2, 3))), torch.roll(zero(a), (4, 0), dims=(2, 3)),
                                  atol=1e-6)
    with pytest.raises(ValueError, match="multiple of 2 \\*\\* \\(levels - 1\\) = 4"):
        model(torch.randn(1, 1, 18, 24, dtype=torch.float64))


def test_a_short_training_lowers_the_loss():
    a, u = helmholtz_1d(96, 64)
    torch.manual_seed(0)
    model = MgNO(1, 1, 1, width=8, n_layers=2, levels=4, padding_mode="circular")
    result = fit(model, (a, u), helmholtz_1d(32, 64, seed=1), epochs=15, batch_size=8, lr=3e-3,
                 generator=torch.Generator().manual_seed(0), progress=False)
    h = result.history
    assert result.diagnostics["settings"]["loss"] == "l2" and result.diagnostics["settings"]["schedule"] == "onecycle"
    # far below the untrained model's error (~1) and the mean predictor's
    assert h["train_loss"][-1] < 0.3 * h["train_loss"][0] and result.test_error < 0.2
    assert result.test_error == pytest.approx(evaluate(result.model, helmholtz_1d(32, 64, seed=1)), rel=1e-5)


def test_save_load_round_trip_and_errors(tmp_path):
    model = MgNO(1, 2, 1, width=4, n_layers=2, levels=3, smoothing=(2, 1, 1)).eval()
    model.save(tmp_path / "mgno.pt")
    back = MgNO.load(tmp_path / "mgno.pt").eval()
    a = torch.randn(2, 1, 20)
    with torch.no_grad():
        assert torch.equal(model(a), back(a))
    torch.save(model.state_dict(), tmp_path / "weights.pt")  # a plain state dict is not a save file
    with pytest.raises(SaveFileError, match="weights.pt"):
        MgNO.load(tmp_path / "weights.pt")
    with pytest.raises(ValueError, match="smoothing must be 3 ints"):
        MgNO(levels=3, smoothing=(1, 1))
    with pytest.raises(ValueError, match="padding_mode"):
        MgNO(padding_mode="replicate")
    with pytest.raises(ValueError, match="n_dims must be 1 or 2"):
        MgNO(1, 1, 3)
    with pytest.raises(ValueError, match=r"\(batch, 1, \*grid\)"):
        MgNO(1, 1, 2)(torch.randn(1, 1, 8))
    with pytest.raises(ValueError, match="too small to reflect-pad"):
        MgNO(1, 1, 1, levels=4, padding_mode="reflect")(torch.randn(1, 1, 3))


def test_absurd_levels_empty_batches_and_bad_smoothing_get_clear_errors():
    with pytest.raises(ValueError, match="levels must be <= 12"):
        MgNO(levels=16)
    with pytest.raises(ValueError, match=r"levels: the grid \(16, 16\) would be padded to \(2048, 2048\)"):
        MgNO(1, 1, 2, width=4, n_layers=1, levels=12)(torch.randn(1, 1, 16, 16))
    with pytest.raises(TypeError, match="smoothing must be a sequence of 2 ints"):
        MgNO(levels=2, smoothing=5)
    model = MgNO(1, 1, 2, width=4, n_layers=1, levels=3)
    assert model(torch.randn(0, 1, 16, 16)).shape == (0, 1, 16, 16)
    with pytest.raises(ValueError, match="at least one point per grid dimension"):
        model(torch.randn(2, 1, 0, 16))
    with pytest.raises(TypeError, match="torch.float64 but the model's parameters are torch.float32"):
        model(torch.randn(2, 1, 16, 16, dtype=torch.float64))
