"""sciml.training.fit_simulated: convergence on a regression with a known answer, bit-for-bit resume,
refused checkpoints, clear errors, and two torchrun processes computing the one-process gradient."""

from __future__ import annotations

import os
import sys
import textwrap

import pytest
import torch
from torch import nn

from sciml.io import SaveFileError
from sciml.training import fit_simulated


def _regression_loss(model: nn.Module, batch: int, generator: torch.Generator) -> torch.Tensor:
    """y = 2 x - 1 + 0.1 noise, x ~ N(0, 1): least squares has the answer (2, -1)."""
    x = torch.randn(batch, 1, generator=generator, dtype=torch.float64)
    y = 2 * x - 1 + 0.1 * torch.randn(batch, 1, generator=generator, dtype=torch.float64)
    return (model(x) - y).square().mean()


def _linear() -> nn.Module:
    torch.manual_seed(0)
    return nn.Linear(1, 1).double()


def test_fresh_batches_converge_to_the_least_squares_answer():
    result = fit_simulated(_linear(), _regression_loss, num_steps=400, batch_size=64, lr=5e-2, weight_decay=0.0,
                           generator=torch.Generator().manual_seed(0), progress=False)
    w, b = float(result.model.weight.detach()), float(result.model.bias.detach())
    # the final steps take the cosine schedule's tiny lr: the estimate averages ~ the last hundred batches
    # of 64 points, noise sd 0.1 -> sd of the estimate ~ 0.1 / sqrt(6400) ~ 1e-3; 0.02 is > 10 sd
    assert abs(w - 2) < 0.02 and abs(b + 1) < 0.02
    d = result.diagnostics
    assert d["num_steps"] == 400 and len(d["loss_history"]) == 400 and d["world_size"] == 1
    assert d["loss_history"][-1] < 0.1 * d["loss_history"][0]


class _Stop:
    def __init__(self, at: int) -> None:
        self.at, self.calls = at, 0

    def __call__(self, model, batch, generator):
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt
        return _regression_loss(model, batch, generator)


def test_resume_is_bit_for_bit(tmp_path):
    kw = dict(num_steps=30, batch_size=16, lr=1e-2, progress=False, checkpoint_every=5)
    straight = fit_simulated(_linear(), _Stop(0), **kw, generator=torch.Generator().manual_seed(3))
    ckpt = tmp_path / "run.pt"
    with pytest.raises(KeyboardInterrupt):  # killed in step 18: the checkpoint holds 15 steps
        fit_simulated(_linear(), _Stop(18), **kw, checkpoint=ckpt, generator=torch.Generator().manual_seed(3))
    resumed = fit_simulated(_linear(), _Stop(0), **kw, checkpoint=ckpt, resume=True,
                            generator=torch.Generator().manual_seed(99))  # the seed comes from the checkpoint
    assert resumed.diagnostics["resumed_from_step"] == 15
    for p, q in zip(straight.model.parameters(), resumed.model.parameters()):
        assert torch.equal(p, q)
    assert straight.history == resumed.history


def test_checkpoints_of_other_settings_models_or_trainers_are_refused(tmp_path):
    ckpt = tmp_path / "run.pt"
    fit_simulated(_linear(), _regression_loss, num_steps=3, batch_size=8, checkpoint=ckpt, progress=False)
    with pytest.raises(SaveFileError, match="batch_size=4 vs 8"):
        fit_simulated(_linear(), _regression_loss, num_steps=3, batch_size=4, checkpoint=ckpt, resume=True,
                      progress=False)
    with pytest.raises(SaveFileError, match="another model"):
        fit_simulated(nn.Linear(1, 2).double(), _regression_loss, num_steps=3, batch_size=8, checkpoint=ckpt,
                      resume=True, progress=False)
    from sciml.training import fit

    x = torch.randn(8, 1, 16)
    with pytest.raises(SaveFileError, match="written by fit_simulated"):
        fit(nn.Conv1d(1, 1, 1), (x, x), epochs=1, batch_size=8, checkpoint=ckpt, resume=True, progress=False)


def test_bad_arguments_and_a_failing_loss_are_reported():
    with pytest.raises(TypeError, match="loss must be callable"):
        fit_simulated(_linear(), None, num_steps=1, batch_size=1)
    with pytest.raises(ValueError, match="num_steps"):
        fit_simulated(_linear(), _regression_loss, num_steps=0, batch_size=1)
    with pytest.raises(ValueError, match="warmup"):
        fit_simulated(_linear(), _regression_loss, num_steps=1, batch_size=1, warmup=1.0)
    with pytest.raises(ValueError, match="resume=True needs a checkpoint"):
        fit_simulated(_linear(), _regression_loss, num_steps=1, batch_size=1, resume=True)

    def nan_at_3(model, batch, generator, calls=[0]):  # noqa: B006 (a counter)
        calls[0] += 1
        return _regression_loss(model, batch, generator) * (float("nan") if calls[0] == 3 else 1.0)

    with pytest.raises(FloatingPointError, match="not finite at step 2"):
        fit_simulated(_linear(), nan_at_3, num_steps=5, batch_size=4, progress=False)
    with pytest.raises(TypeError, match="scalar tensor"):
        fit_simulated(_linear(), lambda m, b, g: 1.0, num_steps=1, batch_size=1, progress=False)


def test_non_finite_gradients_bad_schedules_and_checkpoint_paths_are_reported(tmp_path):
    def nan_gradient(model, batch, generator):  # a finite loss whose gradient is inf: sqrt at 0
        return torch.sqrt(model.bias - model.bias.detach()).sum()

    model = _linear()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(FloatingPointError, match="gradient is not finite at step 0 .*the step was not applied"):
        fit_simulated(model, nan_gradient, num_steps=1, batch_size=1, progress=False)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # no NaN weights left behind
    with pytest.raises(ValueError, match=r"schedule's factor must be >= 0, got -1.0 \(at the start"):
        fit_simulated(_linear(), _regression_loss, num_steps=1, batch_size=1, schedule=lambda t: -1.0)
    with pytest.raises(TypeError, match=r"schedule must be a function .*raised TypeError"):
        fit_simulated(_linear(), _regression_loss, num_steps=1, batch_size=1, schedule=lambda: 1.0)
    with pytest.raises(IsADirectoryError, match="checkpoint=.* is a directory"):
        fit_simulated(_linear(), _regression_loss, num_steps=1, batch_size=1, checkpoint=tmp_path)
    with pytest.raises(TypeError, match="checkpoint must be a str or os.PathLike"):
        fit_simulated(_linear(), _regression_loss, num_steps=1, batch_size=1, checkpoint=3)
    assert list(tmp_path.iterdir()) == []


_DDP_SCRIPT = textwrap.dedent("""
    import os, sys, torch
    from torch import nn
    from sciml.training import fit_simulated

    def loss(model, batch, generator):  # the same on every process: the averaged gradient must equal it
        one = torch.ones(1, 1, dtype=torch.float64)
        return (model(one) - 3.0).square().sum() + (model(2 * one) - 6.0).square().sum()

    torch.manual_seed(0)
    model = nn.Linear(1, 1, bias=False).double()
    out = fit_simulated(model, loss, num_steps=10, batch_size=5, lr=0.1, weight_decay=0.0, progress=False)
    rank = os.environ.get("RANK", "0")
    torch.save({"w": out.model.weight.detach(), "size": out.diagnostics["world_size"]}, sys.argv[1] + rank)
""")


@pytest.mark.slow
def test_two_gloo_processes_take_the_one_process_steps(tmp_path, launch):
    script = tmp_path / "ddp_sim.py"
    script.write_text(_DDP_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    runs = {}
    for name, cmd in (("one", [sys.executable, str(script)]),
                      ("two", [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                               str(script)])):
        done = launch(cmd + [str(tmp_path / name)], env)
        assert done.returncode == 0, done.stderr[-3000:]
        runs[name] = [torch.load(f"{tmp_path / name}{r}", weights_only=True) for r in range(1 if name == "one" else 2)]
    # batch 5 split 3 / 2: each share's loss is scaled so that the average is the full batch's loss; the
    # two runs differ only in how the gradient is summed ((6/5 g + 4/5 g) / 2 against g: round-off
    # ~1e-16 per step, carried through 10 Adam steps), hence 1e-12
    assert [r["size"] for r in runs["two"]] == [2, 2]
    for r in runs["two"]:
        assert torch.allclose(r["w"], runs["one"][0]["w"], rtol=1e-12, atol=0)
