"""sciml.training: losses against closed forms, normalisers, fit, checkpoints and bit-for-bit resume."""

from __future__ import annotations

import math

import pytest
import torch
from operator_problems import helmholtz_1d
from sciml_plugins.neural_operators import FNO
from torch import nn

from sciml import SaveFileError
from sciml.io import load_module_state
from sciml.training import (
    ChannelNormaliser,
    NormalisedOperator,
    evaluate,
    fit,
    load_checkpoint_model,
    relative_h1,
    relative_l2,
)
from sciml.training.schedules import SCHEDULES


def _small_fno(**kw):
    torch.manual_seed(0)
    return FNO(1, 1, 1, width=8, modes=8, n_layers=2, projection=16, padding=0.0, **kw)


def test_relative_l2_closed_form():
    true = torch.ones(3, 2, 5)
    pred = true.clone()
    pred[0] *= 1.5  # error 0.5
    pred[1] = 0.0   # error 1
    assert torch.allclose(relative_l2(pred, true, reduce=False), torch.tensor([0.5, 1.0, 0.0]))
    assert math.isclose(float(relative_l2(pred, true)), 0.5, rel_tol=1e-6)


def test_relative_h1_matches_the_integrals():
    # true = sin(2 pi x), error eps sin(2 pi k x) on the unit circle: squared H1 norms are
    # (1 + (2 pi k)^2) / 2 times the amplitude^2. Forward differences scale the derivative term by
    # sinc^2(pi k h) = 1 - O((pi k h)^2) ~ 1e-4 here, the tolerance.
    s, k, eps = 1024, 4, 1e-2
    x = torch.arange(s, dtype=torch.float64) / s
    true = torch.sin(2 * math.pi * x)[None, None]
    pred = true + eps * torch.sin(2 * math.pi * k * x)[None, None]
    want = eps * math.sqrt((1 + (2 * math.pi * k) ** 2) / (1 + (2 * math.pi) ** 2))
    assert math.isclose(float(relative_h1(pred, true)), want, rel_tol=1e-3)
    assert float(relative_h1(pred, true)) > float(relative_l2(pred, true))  # gradients weigh the error up


def test_losses_reject_bad_shapes():
    with pytest.raises(ValueError, match="same shape"):
        relative_l2(torch.ones(2, 1, 4), torch.ones(2, 1, 5))
    with pytest.raises(TypeError, match="tensors"):
        relative_h1([1.0], torch.ones(1, 1, 2))
    with pytest.raises(TypeError, match="floating tensors, got torch.int64"):
        relative_l2(torch.ones(2, 1, 3, dtype=torch.long), torch.ones(2, 1, 3, dtype=torch.long))


def test_normaliser_is_resolution_free_and_inverts():
    x = 3.0 + 2.0 * torch.randn(50, 2, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    norm = ChannelNormaliser.of(x)
    z = norm.encode(x)
    # float64 statistics of 800 values of size ~3: round-off ~1e-15
    assert torch.allclose(z.mean((0, 2)), torch.zeros(2, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(norm.decode(z), x, atol=1e-12)
    wrapped = NormalisedOperator(nn.Identity(), norm, norm)
    y = torch.randn(4, 2, 33, dtype=torch.float64)  # another grid size
    assert torch.allclose(wrapped(y), y, atol=1e-12)
    with pytest.raises(TypeError, match="floating tensor, got a torch.int64"):  # would truncate std to 0
        norm.encode(y.long())
    with pytest.raises(ValueError, match=r"\(n, 2, \*grid\)"):
        norm.encode(y[:, :1])


def test_a_trained_model_checks_its_input_before_normalising():
    a, u = helmholtz_1d(8)
    net = fit(_small_fno(), (a, u), epochs=1, batch_size=8, progress=False).model
    with pytest.raises(TypeError, match="a must be a floating tensor, got a torch.int64"):
        net((3 * a).long())
    with pytest.raises(ValueError, match=r"a must be \(batch, 1, \*grid\)"):
        net(torch.cat([a, a], 1))
    with pytest.raises(TypeError, match="got list"):
        net([1.0])
    with pytest.raises(TypeError, match="a is torch.float64"):
        net(a.double())


def test_fit_learns_the_helmholtz_solution_operator():
    a, u = helmholtz_1d(160)
    a_test, u_test = helmholtz_1d(40, seed=1)
    model = _small_fno()
    before = evaluate(NormalisedOperator(model, ChannelNormaliser.of(a), ChannelNormaliser.of(u)), (a_test, u_test))
    result = fit(model, (a, u), (a_test, u_test), epochs=30, batch_size=16, lr=1e-2,
                 generator=torch.Generator().manual_seed(0), progress=False)
    h = result.history
    assert len(h["epoch"]) == 30 and result.diagnostics["num_steps"] == 30 * 10
    # The map is one Fourier multiplier on 6 modes: a 2-layer FNO gets it to a few per cent, far below
    # the untrained model and the mean predictor (error ~0.3 of these fields)
    assert result.test_error < 0.05 < before
    assert h["train_loss"][-1] < 0.2 * h["train_loss"][0]
    assert result.test_error == pytest.approx(evaluate(result.model, (a_test, u_test)), rel=1e-5)
    # the normalisers are folded in: raw inputs at twice the resolution give raw outputs
    a2, u2 = helmholtz_1d(40, 128, seed=1)
    assert evaluate(result.model, (a2, u2)) < 0.1


def test_schedules_shapes():
    assert SCHEDULES["step"](0.0) == 1.0 and SCHEDULES["step"](0.999) == 0.5**4
    assert SCHEDULES["cosine"](1.0) == pytest.approx(0.0, abs=1e-12)
    assert SCHEDULES["onecycle"](0.3) == pytest.approx(1.0) and SCHEDULES["onecycle"](0.0) == pytest.approx(1 / 25)


class _Interrupt(nn.Module):
    """Wraps a model and raises on its ``stop``-th training call (a job killed mid-run)."""

    def __init__(self, model: nn.Module, stop: int) -> None:
        super().__init__()
        self.model, self.stop, self.calls = model, stop, 0
        self.in_channels, self.out_channels, self.n_dims = model.in_channels, model.out_channels, model.n_dims

    def forward(self, a):
        if self.training:
            self.calls += 1
            if self.calls == self.stop:
                raise KeyboardInterrupt
        return self.model(a)


def test_resume_is_bit_for_bit(tmp_path):
    a, u = helmholtz_1d(48)
    kw = dict(epochs=4, batch_size=16, lr=1e-2, schedule="cosine", progress=False)
    straight = fit(_Interrupt(_small_fno(), 0), (a, u), **kw, generator=torch.Generator().manual_seed(3))
    ckpt = tmp_path / "run.pt"
    with pytest.raises(KeyboardInterrupt):  # killed in epoch 3 (3 batches per epoch)
        fit(_Interrupt(_small_fno(), 8), (a, u), **kw, checkpoint=ckpt, generator=torch.Generator().manual_seed(3))
    resumed = fit(_Interrupt(_small_fno(), 0), (a, u), **kw, checkpoint=ckpt, resume=True,
                  generator=torch.Generator().manual_seed(99))  # the seed comes from the checkpoint
    assert resumed.diagnostics["resumed_from_epoch"] == 2
    for (name, p), q in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(p, q), name
    for key in ("epoch", "train_loss", "lr"):
        assert straight.history[key] == resumed.history[key], key
    rebuilt = load_checkpoint_model(ckpt, _Interrupt(_small_fno(), 0))
    assert torch.equal(rebuilt(a), resumed.model(a))


def test_checkpoint_of_another_model_or_settings_is_refused(tmp_path):
    a, u = helmholtz_1d(32)
    ckpt = tmp_path / "run.pt"
    fit(_small_fno(), (a, u), epochs=1, batch_size=16, checkpoint=ckpt, progress=False)
    wider = FNO(1, 1, 1, width=12, modes=8, n_layers=2, projection=16, padding=0.0)
    with pytest.raises(SaveFileError, match="another model"):
        fit(wider, (a, u), epochs=2, batch_size=16, checkpoint=ckpt, resume=True, progress=False)
    with pytest.raises(SaveFileError, match="batch_size=8 vs 16"):
        fit(_small_fno(), (a, u), epochs=2, batch_size=8, checkpoint=ckpt, resume=True, progress=False)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.ones(2)}, foreign)
    with pytest.raises(SaveFileError):
        fit(_small_fno(), (a, u), epochs=2, batch_size=16, checkpoint=foreign, resume=True, progress=False)


class _Wrapped(nn.Module):
    """A small FNO inside another module."""

    def __init__(self) -> None:
        super().__init__()
        self.model = _small_fno()
        self.in_channels, self.out_channels, self.n_dims = 1, 1, 1

    def forward(self, a):
        return self.model(a)


class _WithExtraState(_Wrapped):
    """A model whose state dict holds a non-tensor entry through torch's ``get_extra_state``."""

    def get_extra_state(self):
        return {"width": 8, "name": "fno"}

    def set_extra_state(self, state):
        assert state == {"width": 8, "name": "fno"}


def test_a_model_with_extra_state_trains_checkpoints_and_resumes(tmp_path):
    a, u = helmholtz_1d(32)
    ckpt = tmp_path / "run.pt"
    kw = dict(epochs=2, batch_size=16, checkpoint=ckpt, progress=False)
    with pytest.raises(KeyboardInterrupt):  # killed in epoch 2 (2 batches per epoch)
        fit(_Interrupt(_WithExtraState(), 3), (a, u), **kw)
    resumed = fit(_Interrupt(_WithExtraState(), 0), (a, u), resume=True, **kw)
    assert resumed.diagnostics["resumed_from_epoch"] == 1
    assert [v for k, v in resumed.model.state_dict().items() if k.endswith("_extra_state")] == [{"width": 8, "name": "fno"}]


def test_bad_inputs_get_clear_errors():
    a, u = helmholtz_1d(8)
    model = _small_fno()
    bad = a.clone()
    bad[3, 0, 5] = math.nan
    with pytest.raises(ValueError, match=r"train\.a has non-finite values \(first in sample 3\)"):
        fit(model, (bad, u), epochs=1)
    with pytest.raises(ValueError, match="in_channels=1 but train.a has 2 channels"):
        fit(model, (torch.cat([a, a], 1), u), epochs=1)
    with pytest.raises(ValueError, match="same number of samples"):
        fit(model, (a, u[:4]), epochs=1)
    with pytest.raises(TypeError, match="train must be"):
        fit(model, a, epochs=1)
    with pytest.raises(ValueError, match="resume=True needs a checkpoint"):
        fit(model, (a, u), epochs=1, resume=True)
    with pytest.raises(ValueError, match="amp=True needs a CUDA"):
        fit(model, (a, u), epochs=1, amp=True)
    with pytest.raises(ValueError, match="schedule"):
        fit(model, (a, u), epochs=1, schedule="linear")
    with pytest.raises(ValueError, match="epochs"):
        fit(model, (a, u), epochs=0)
    with pytest.raises(ValueError, match=r"in_channels=1 but test\.a has 2 channels"):
        fit(model, (a, u), (torch.cat([a, a], 1), u), epochs=1)
    zero = u.clone()
    zero[[2, 5]] = 0.0
    with pytest.raises(ValueError, match=r"train\.u is zero in sample\(s\) \[2, 5\]"):
        fit(model, (a, zero), epochs=1)
    with pytest.raises(ValueError, match=r"test\.u is zero in sample\(s\) \[2, 5\]"):
        fit(model, (a, u), (a, zero), epochs=1)
    with pytest.raises(TypeError, match=r"train\.a is torch.float64 .*train\.a\.float\(\)"):
        fit(model, (a.double(), u.double()), epochs=1)
    with pytest.raises(TypeError, match=r"train\.a is torch.float32 .*torch.float64"):
        fit(_small_fno().double(), (a, u), epochs=1)


@pytest.mark.parametrize(("schedule", "error", "match"), [
    (lambda t: -1.0, ValueError, r"schedule's factor must be >= 0, got -1.0 \(at the start"),
    (lambda t: "x", TypeError, "schedule's factor must be a real number, got str"),
    (lambda: 1.0, TypeError, r"schedule must be a function .*schedule\(0.0\) raised TypeError"),
    (lambda t: 1.0 if t < 0.5 else math.nan, ValueError, r"must be finite, got nan \(at step 2, t = 0.5\)"),
])
def test_a_bad_schedule_is_named(schedule, error, match):
    a, u = helmholtz_1d(8)
    with pytest.raises(error, match=match):
        fit(_small_fno(), (a, u), epochs=1, batch_size=2, schedule=schedule, progress=False)


def test_checkpoint_paths_are_checked_before_training(tmp_path):
    a, u = helmholtz_1d(8)
    model = _small_fno()
    start = [p.clone() for p in model.parameters()]
    with pytest.raises(IsADirectoryError, match="checkpoint=.* is a directory"):
        fit(model, (a, u), epochs=1, checkpoint=tmp_path, progress=False)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        fit(model, (a, u), epochs=1, checkpoint=tmp_path / "missing" / "ck.pt", progress=False)
    with pytest.raises(TypeError, match="checkpoint must be a str or os.PathLike"):
        fit(model, (a, u), epochs=1, checkpoint=3, progress=False)
    assert list(tmp_path.iterdir()) == []  # no stray temporary file
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), start))  # no epoch was run


def test_a_diverging_loss_names_the_step():
    a, u = helmholtz_1d(16)
    with pytest.raises(FloatingPointError, match="not finite at epoch 0, batch 1"):
        fit(_small_fno(), (a, u), epochs=1, batch_size=8, lr=1e30, normalise=False, progress=False)


def test_a_non_finite_gradient_stops_training_before_its_step():
    class NaNGradient(nn.Module):  # finite loss, NaN gradient: d/dw sqrt(w - 1) at w = 1
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(()))

        def forward(self, x):
            return x * self.w + torch.sqrt(self.w - 1)

    a, u = helmholtz_1d(16)
    model = NaNGradient()
    with pytest.raises(FloatingPointError, match="gradient is not finite at epoch 0, batch 0"):
        fit(model, (a, u), epochs=1, batch_size=16, normalise=False, progress=False)
    assert float(model.w.detach()) == 1.0  # the step was not applied


def test_sciml_train_command(tmp_path, monkeypatch, capsys):
    from sciml import cli

    monkeypatch.setenv("SCIML_DATA_DIR", str(tmp_path / "data"))
    ckpt = tmp_path / "ck.pt"
    args = ["train", "--model", "fno", "--data", "burgers", "--data-arg", "resolution=64",
            "--data-arg", "solve_resolution=256", "--n-train", "8", "--n-test", "4", "--epochs", "2",
            "--batch-size", "4", "--model-arg", "width=8", "--model-arg", "modes=4", "--checkpoint", str(ckpt)]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "fno on burgers: 8 train / 4 test, 1 process(es), 2 epochs" in out and ckpt.exists()
    assert cli.main(args[:-2] + ["--checkpoint", str(ckpt), "--resume"]) == 0  # finished run: nothing to do
    assert "2 epochs" in capsys.readouterr().out


class _ObjectExtraState(_WithExtraState):
    def get_extra_state(self):
        return {"activation": torch.nn.functional.gelu}


def test_a_model_whose_extra_state_a_checkpoint_cannot_hold_is_refused_before_training(tmp_path):
    a, u = helmholtz_1d(32)
    with pytest.raises(ValueError, match="'_extra_state'.*cannot read back"):
        fit(_ObjectExtraState(), (a, u), epochs=1, batch_size=16, checkpoint=tmp_path / "run.pt", progress=False)
    assert not (tmp_path / "run.pt").exists()
    fit(_ObjectExtraState(), (a, u), epochs=1, batch_size=16, progress=False)  # without a checkpoint it trains


class _MetadataInStateDict(_Wrapped):
    """neuraloperator's way: ``state_dict`` itself adds an unprefixed ``_metadata`` dict."""

    def state_dict(self, *args, **kwargs):
        state = super().state_dict(*args, **kwargs)
        state["_metadata"] = {"width": 8}
        return state

    def load_state_dict(self, state, strict=True, assign=False):
        state = dict(state)
        state.pop("_metadata")
        return super().load_state_dict(state, strict, assign)


def test_saved_weights_may_hold_non_tensors_only_where_the_module_does():
    a, u = helmholtz_1d(32)
    trained = fit(_MetadataInStateDict(), (a, u), epochs=1, batch_size=16, progress=False).model.operator
    state = trained.state_dict()
    back = load_module_state(_MetadataInStateDict(), state)
    assert torch.equal(back(a), trained(a))
    with pytest.raises(ValueError, match="non-finite"):  # a tensor is checked wherever it is
        load_module_state(_MetadataInStateDict(), {**state, "_metadata": torch.tensor(float("nan"))})
    weight = next(k for k, v in state.items() if isinstance(v, torch.Tensor))
    with pytest.raises(TypeError, match=f"weight '{weight}' must be a torch.Tensor"):
        load_module_state(_MetadataInStateDict(), {**state, weight: [1.0]})
