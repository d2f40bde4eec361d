"""`sciml bench distribution_transformer` end to end on a tiny setting (tiny untuned models stand in
for the shipped ones: this checks the protocol's plumbing, not the figures)."""

from __future__ import annotations

import pytest
import torch
from sciml_benchmarks import distribution_transformer as bench
from sciml_plugins.distribution_transformer import DistributionTransformer
from sciml_plugins.distribution_transformer.retrain import RECIPES


@pytest.mark.slow
def test_benchmark_runs_every_task_and_writes_its_table(tmp_path, tmp_path_factory, monkeypatch):
    tiny = {task: DistributionTransformer(task, d_model=16, heads=2, layers=1, ffn=16).fit(
        num_steps=2, batch_size=8, generator=torch.Generator().manual_seed(0), progress=False)
        for task in ("gmm-gaussian", "normal-variance", "gp-lengthscale")}
    saved = tmp_path_factory.mktemp("models") / "gp.pt"  # a task without a shipped model: --model
    tiny.pop("gp-lengthscale").save(saved)
    monkeypatch.setattr(DistributionTransformer, "pretrained",
                        classmethod(lambda cls, name=None: sorted(tiny) if name is None else tiny[name]))
    for task in tiny:  # sbi's NPE on 200 simulations instead of the shipped models' millions
        monkeypatch.setitem(RECIPES, task, {**RECIPES[task], "num_steps": 4, "batch_size": 50})
    out = tmp_path / "table.md"
    monkeypatch.chdir(tmp_path)  # sbi writes nothing where it is run (its default tracker would: ./sbi-logs)
    with pytest.raises(SystemExit):  # no shipped gp-lengthscale model, none given
        bench.main(["--tasks", "gp-lengthscale", "--problems", "50"])
    tasks = "gmm-gaussian,normal-variance,gp-lengthscale,wider,fusion"
    assert bench.main(["--tasks", tasks, "--model", f"gp-lengthscale={saved}", "--problems", "50", "--svi-steps",
                       "3", "--nuts", "1", "--npe-epochs", "1", "--threads", "1", "--output", str(out)]) == 0
    rows = [line.split("|") for line in out.read_text().splitlines()[2:]]
    methods = {(r[1].strip(), r[2].strip()) for r in rows}
    assert ("gmm-gaussian", "distribution transformer") in methods
    assert ("gmm-gaussian", "pyro NUTS (500 + 1000)") in methods
    assert ("normal-variance", "pyro SVI (3 steps)") in methods
    assert any(task.startswith("fusion") for task, _ in methods)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.md"]
    for task in ("gmm-gaussian", "gmm-gaussian (wider)", "normal-variance"):
        assert (task, "sbi NPE, same simulations") in methods
    kl = {(r[1].strip(), r[2].strip()): r[3] for r in rows}
    for method in ("distribution transformer", "sbi NPE, same simulations"):
        assert float(kl[("gmm-gaussian", method)].split("±")[0]) > 0
    assert float(kl[("normal-variance", "sbi NPE, same simulations")].split("±")[0]) > 0
    assert float(kl[("gp-lengthscale", "distribution transformer")].split("±")[0]) > 0
    assert ("gp-lengthscale", "quadrature on the grid (the reference)") in methods
