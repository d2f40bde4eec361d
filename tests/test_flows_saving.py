"""Fitted flows saved and read back: the same density and draws; damaged, foreign or mismatched files refused."""

from __future__ import annotations

import pytest
import torch
from sciml_plugins.flows import FlowDistribution, MixFlowDistribution

import sciml
from sciml.io import save_state
from sciml.targets import as_target

F64 = torch.float64
COV = torch.tensor([[1.0, 0.5], [0.5, 2.0]], dtype=F64)


def _target():
    return as_target(torch.distributions.MultivariateNormal(torch.tensor([0.5, -1.0], dtype=F64), COV))


SMALL = {
    "planar-flow": {"num_layers": 3, "num_steps": 30},
    "radial-flow": {"num_layers": 3, "num_steps": 30},
    "nsf-flow": {"transforms": 1, "hidden_features": (8,), "num_steps": 30},
    "mixflow": {"num_maps": 6, "step_size": 0.1, "num_leapfrog": 3, "ref_steps": 30, "num_momenta": 16},
}


def _fit(name: str) -> FlowDistribution:
    return sciml.load("sampler", name)(**SMALL[name], progress=False).fit(_target(), generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", sorted(SMALL))
def test_a_saved_flow_reads_back_with_the_same_density_and_draws(name, tmp_path):
    q = _fit(name)
    q.save(tmp_path / "q.pt")
    back = FlowDistribution.load(tmp_path / "q.pt", _target())
    assert type(back) is type(q) and back.name == name
    x = torch.tensor([[0.0, 0.0], [1.0, -2.0], [-1.5, 0.5]], dtype=F64)
    assert torch.equal(back.log_prob(x), q.log_prob(x))
    draws = [r.sample((5,), generator=torch.Generator().manual_seed(3)) for r in (q, back)]
    assert torch.equal(draws[0], draws[1])
    assert back.diagnostics["n_grad_evals"] == q.diagnostics["n_grad_evals"]


def test_a_mixflow_keeps_its_map_and_exact_density(tmp_path):
    q = _fit("mixflow")
    q.save(tmp_path / "m.pt")
    back = MixFlowDistribution.load(tmp_path / "m.pt", _target())
    s = q.sample_augmented((4,), generator=torch.Generator().manual_seed(1))
    assert torch.equal(back.log_prob_augmented(s), q.log_prob_augmented(s))
    assert (back.num_maps, back.map.num_leapfrog, back.num_momenta) == (6, 3, 16)


def test_bad_files_and_mismatched_targets_are_refused(tmp_path):
    q = _fit("planar-flow")
    q.save(tmp_path / "q.pt")
    wrong_dim = as_target(torch.distributions.MultivariateNormal(torch.zeros(3, dtype=F64), torch.eye(3, dtype=F64)))
    with pytest.raises(sciml.SaveFileError, match="dimension 2.*dim 3"):
        FlowDistribution.load(tmp_path / "q.pt", wrong_dim)
    with pytest.raises(sciml.SaveFileError, match="not a MixFlowDistribution"):
        MixFlowDistribution.load(tmp_path / "q.pt", _target())
    with pytest.raises(FileNotFoundError):
        FlowDistribution.load(tmp_path / "missing.pt", _target())
    data = (tmp_path / "q.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(sciml.SaveFileError, match="could not be read"):
        FlowDistribution.load(tmp_path / "cut.pt", _target())
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    with pytest.raises(sciml.SaveFileError, match="not a sciml save file"):
        FlowDistribution.load(tmp_path / "foreign.pt", _target())
    state = {k: v.clone() for k, v in q.module.state_dict().items()}
    config = q.module.config()
    for bad, match in [({"flow": "glow", "config": config, "state": state}, "unknown flow 'glow'"),
                       ({"flow": "planar-flow", "config": config, "state": {**state, "loc": torch.full((2,), torch.nan)}},
                        "non-finite"),
                       ({"flow": "planar-flow", "config": {**config, "layers": ["planar"]}, "state": state},
                        "do not fit"),
                       ({"flow": "planar-flow", "config": {**config, "layers": ["swirl"]}, "state": state},
                        "layers"),
                       ({"flow": "planar-flow", "state": state}, "missing the entry 'config'")]:
        save_state(tmp_path / "bad.pt", "flows.FlowDistribution", 1, bad)
        with pytest.raises(sciml.SaveFileError, match=match):
            FlowDistribution.load(tmp_path / "bad.pt", _target())
