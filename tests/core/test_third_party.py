"""A real third-party distribution, installed with pip into an isolated location."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

PROBE = r"""
import json, warnings
import sciml
from sciml.testing import check_sampler

rows = {r.name: r for r in sciml.plugins()}
out = {"listed": {k: [r.kind, r.distribution, r.version, r.status] for k, r in rows.items()}}
cls = sciml.load("sampler", "demo-gauss")
out["class"] = f"{cls.__module__}.{cls.__qualname__}"
out["conformance"] = check_sampler(cls(scale=2.0))
try:
    sciml.load("solver", "broken")
except sciml.PluginLoadError as exc:
    out["broken_error"] = [type(exc.cause).__name__, str(exc)]
checked = {r.name: [r.status, r.error] for r in sciml.plugins(check=True)}
out["checked"] = {k: checked[k] for k in ("demo-gauss", "broken")}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def third_party_site(tmp_path_factory):
    target = tmp_path_factory.mktemp("site")
    for name in ("demo_plugin", "broken_plugin"):
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
             "--target", str(target), str(FIXTURES / name)],
            check=True, capture_output=True, text=True,
        )
    return target


def test_installed_third_party_plugins(third_party_site, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(third_party_site))
    env.pop("SCIML_DISABLE_PLUGIN_AUTOLOAD", None)
    proc = subprocess.run([sys.executable, "-c", PROBE], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["listed"]["demo-gauss"] == ["sampler", "sciml-demo-plugin", "1.2.3", "not loaded"]
    assert out["listed"]["broken"] == ["solver", "sciml-broken-plugin", "0.0.1", "not loaded"]
    assert out["class"] == "sciml_demo_plugin.IndependenceSampler"
    assert "seeding [torch.float64]" in out["conformance"]
    assert "non-finite target raises ValueError" in out["conformance"]
    cause, message = out["broken_error"]
    assert cause == "ModuleNotFoundError" and "a_dependency_that_is_not_installed" in message
    assert out["checked"]["demo-gauss"] == ["ok", None]
    status, error = out["checked"]["broken"]
    assert status == "failed" and "a_dependency_that_is_not_installed" in error


def test_broken_plugin_does_not_disturb_the_cli(third_party_site, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(third_party_site))
    proc = subprocess.run([sys.executable, "-m", "sciml.cli", "plugins", "--check"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1  # a plugin failed under --check
    lines = {line.split()[0]: line for line in proc.stdout.splitlines()[2:]}
    assert " ok " in lines["demo-gauss"] + " "
    assert "failed" in lines["broken"]
