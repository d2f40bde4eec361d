"""`sciml bench tensor_attention`: a tiny run fills every column and the summary; bad arguments are refused."""

from __future__ import annotations

from sciml_benchmarks import tensor_attention


def test_a_tiny_run_reports_every_method(tmp_path, capsys):
    out = tmp_path / "t.md"
    assert tensor_attention.main(["--sizes", "16,24", "--dims", "2", "--degrees", "2,6", "--repeats", "1",
                                  "--exact-queries", "16", "--output", str(out)]) == 0
    table = out.read_text()
    for row in ("| 16 | 2 | naive |", "| 16 | 2 | exact |", "| 24 | 2 | poly, degree 6 |", "| 16 | 2 | floor:", "timed on 16 queries"):
        assert row in table
    # the exact method agrees with naive to round-off, degree 6 is below 1e-6 at these entry bounds
    exact_24 = next(line for line in table.splitlines() if line.startswith("| 24 | 2 | exact |"))
    assert float(exact_24.split("|")[7]) < 1e-13 and float(exact_24.split("|")[8]) < 1e-13
    assert "| 24 | 2 |" in table.split("speed-up over exact |")[-1]


def test_bad_arguments_are_refused(capsys):
    assert tensor_attention.main(["--sizes", "a"]) == 2
    assert tensor_attention.main(["--sizes", "0"]) == 2
    assert "positive" in capsys.readouterr().err
