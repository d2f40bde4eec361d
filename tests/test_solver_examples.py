"""Every runnable example in solvers/ runs end to end on a small setting and writes its figure."""

from __future__ import annotations

import pytest

from sciml import cli

SMALL_ARGS = {
    "vmf_highdim": ["--dim", "512", "--num-samples", "50", "--kappas", "100,1000"],
    "multimodal_sampling": ["--num-samples", "64", "--steps", "20"],
    "eight_schools": ["--num-samples", "64", "--steps", "30", "--nuts-draws", "30"],
    "poisson_highfreq": ["--max-evals", "3"],
    "darcy_operator": ["--n-train", "16", "--n-test", "4", "--resolution", "11", "--solve-resolution", "41",
                       "--epochs", "2", "--width", "8", "--modes", "4"],
    "sequential_fusion": ["--steps", "3", "--tracks", "5"],
    "flow_energies": ["--layers", "2", "--steps", "20"],
    "triple_attention": ["--steps", "20", "--every", "10", "--batch", "16"],
    "darcy_operator --model mgno": ["--model", "mgno", "--n-train", "8", "--n-test", "2", "--resolution", "11",
                                    "--solve-resolution", "41", "--epochs", "1", "--width", "4"],
}


def test_every_example_is_listed_with_a_description():
    examples = cli.list_modules("sciml_solvers")
    assert {"vmf_highdim", "multimodal_sampling", "eight_schools", "swiss_roll_bridge", "poisson_highfreq",
            "darcy_operator", "sequential_fusion", "flow_energies",
            "triple_attention"} <= set(examples)
    assert all(examples.values()), "each example needs a one-line docstring"


@pytest.mark.parametrize("name", sorted(SMALL_ARGS))
def test_example_runs_and_writes_its_figure(name, tmp_path, capsys):
    args = SMALL_ARGS[name]
    name = name.split()[0]
    assert cli.main(["run", name, "--out", str(tmp_path), *args]) == 0
    assert (tmp_path / f"{name}.png").stat().st_size > 1000
    assert f"figure: {tmp_path / name}.png" in capsys.readouterr().out
