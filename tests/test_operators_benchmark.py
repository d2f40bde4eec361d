"""`sciml bench operators` end to end on a tiny setting (our FNO only: neuraloperator is a bench extra)."""

from __future__ import annotations

import pytest
from sciml_benchmarks import operators


@pytest.mark.slow
def test_operators_benchmark_runs_and_writes_its_table(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SCIML_DATA_DIR", str(tmp_path / "data"))
    out = tmp_path / "table.md"
    assert operators.main(["--problems", "burgers", "--models", "sciml-fno", "--epochs", "1", "--n-train", "20",
                           "--n-test", "4", "--threads", "1", "--output", str(out)]) == 0
    row = out.read_text().splitlines()[-1].split("|")
    assert row[1].strip() == "burgers 1024" and row[2].strip() == "sciml-fno"
    assert 0 < float(row[4]) < 2 and "(2048)" in row[5]  # relative errors of a 1-epoch model
    assert int(row[6].replace(",", "")) == 549_569  # width 64, 16 modes: the paper's Burgers FNO


@pytest.mark.slow
def test_a_model_whose_training_process_fails_is_an_error_not_a_hang(tmp_path, monkeypatch):
    monkeypatch.setenv("SCIML_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(RuntimeError, match="sciml-fno on burgers: its training process ended with no result, exit code 1"):
        operators.run("burgers", "sciml-fno", 0, 4, 1, 1)  # no training fields: the child raises
