"""The `sciml` command: listing, info, run / bench discovery, exit codes."""

from __future__ import annotations

import pytest

import sciml
from sciml import cli


class _Echo(sciml.Solver):
    """Echoes its problem back.

    A one-line description followed by details.
    """

    name = "echo-cli"

    def __init__(self, scale: float = 1.0, verbose: bool = False) -> None:
        self.scale = scale

    def solve(self, *problem, generator=None, **kwargs):
        raise NotImplementedError


@pytest.fixture(autouse=True)
def _echo_plugin():
    with sciml.registered(_Echo):
        yield


def test_plugins_lists_table(capsys):
    assert cli.main(["plugins", "--kind", "solver"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["name", "kind", "distribution", "version", "status", "error"]
    assert any(line.split()[:2] == ["echo-cli", "solver"] for line in out)


def test_plugins_bad_kind_exits_2(capsys):
    assert cli.main(["plugins", "--kind", "nonsense"]) == 2
    assert "unknown plugin kind" in capsys.readouterr().err


def test_info_shows_description_and_parameters(capsys):
    assert cli.main(["info", "echo-cli"]) == 0
    out = capsys.readouterr().out
    assert "echo-cli  (solver plugin, in-process)" in out
    assert "Echoes its problem back." in out
    assert "scale: float = 1.0" in out and "verbose: bool = False" in out
    assert "docs: (none)" in out  # in-process class without docs_url


def test_info_unknown_name_exits_2_with_suggestion(capsys):
    assert cli.main(["info", "echo-clj"]) == 2
    assert "Did you mean 'echo-cli'?" in capsys.readouterr().err


def test_no_command_prints_help_and_exits_2(capsys):
    assert cli.main([]) == 2
    assert "usage: sciml" in capsys.readouterr().err


def test_bad_option_exits_2(capsys):
    assert cli.main(["plugins", "--no-such-flag"]) == 2  # returned, not argparse's SystemExit
    err = capsys.readouterr().err
    assert err.strip().splitlines() == ["sciml: unrecognized arguments: --no-such-flag (see 'sciml --help')"]


def test_run_and_bench_unknown_names_exit_2(capsys):
    assert cli.main(["run", "no_such_example"]) == 2
    assert "no example named 'no_such_example'" in capsys.readouterr().err
    assert cli.main(["bench", "no_such_benchmark"]) == 2
    assert "no benchmark named 'no_such_benchmark'" in capsys.readouterr().err


def test_run_list_reads_docstrings_without_importing(capsys, tmp_path, monkeypatch):
    pkg = tmp_path / "fake_examples"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "hello.py").write_text('"""Say hello.\n\nMore text."""\nraise RuntimeError("imported")\n'
                                  "def main(argv=None):\n    return 0\n")
    (pkg / "_private.py").write_text('"""Hidden."""\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    assert cli.list_modules("fake_examples") == {"hello": "Say hello."}
    assert cli.list_modules("no_such_package_xyz") == {}


def test_run_executes_main_with_arguments(tmp_path, monkeypatch):
    pkg = tmp_path / "fake_examples2"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "greet.py").write_text('"""Greet."""\nCALLS = []\ndef main(argv=None):\n    CALLS.append(argv)\n'
                                  "    return 3 if argv == ['--fail'] else 0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert cli._run_module("fake_examples2", "example", "greet", ["--x", "1"], False) == 0
    assert cli._run_module("fake_examples2", "example", "greet", ["--fail"], False) == 3
    import fake_examples2.greet as mod

    assert mod.CALLS == [["--x", "1"], ["--fail"]]


def test_import_sciml_is_light():
    import subprocess
    import sys

    code = ("import sys, sciml; sciml.plugins(); heavy = [m for m in ('scipy', 'pyro', 'gpytorch', 'matplotlib', "
            "'sciml_plugins', 'sciml.kernels.bessel') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
