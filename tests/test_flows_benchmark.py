"""`sciml bench flows`: its targets resolve to normalised targets with exact draws; bad arguments are refused."""

from __future__ import annotations

from sciml_benchmarks import flows


def test_every_benchmark_target_has_log_z_and_exact_draws():
    for name in flows.TARGETS:
        target = flows._target(name)
        assert target.dim == (10 if name == "funnel10" else 2) and target.log_z is not None and target.has_exact_samples


def test_unknown_target_is_refused(capsys):
    assert flows.main(["--targets", "U9"]) == 2
    assert "unknown targets" in capsys.readouterr().err
    assert flows.main(["--orbit-study", "U9"]) == 2
    assert flows.main(["--targets", "U1", "--nuts-draws", "0"]) == 2
    assert "must be positive" in capsys.readouterr().err
