"""pyproject.toml lists every package and declares entry points that resolve to real plugins."""

from __future__ import annotations

from pathlib import Path

import pytest

import sciml

tomllib = pytest.importorskip("tomllib")
ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_package_directory_is_listed():
    setup = PYPROJECT["tool"]["setuptools"]
    listed = set(setup["packages"])
    found = set()
    for name, folder in setup["package-dir"].items():
        base = ROOT / folder
        for init in base.rglob("__init__.py"):
            rel = init.parent.relative_to(base)
            found.add(".".join((name, *rel.parts)))
    assert found == listed, f"unlisted: {sorted(found - listed)}, missing: {sorted(listed - found)}"


def test_first_party_entry_points_load_and_pass_the_class_contract():
    from sciml.testing import check_plugin_class

    declared = {
        (group.removeprefix("sciml.").removesuffix("s"), name)
        for group, eps in PYPROJECT["project"]["entry-points"].items()
        for name in eps
    }
    assert declared, "no first-party plugins declared"
    listed = {(r.kind, r.name) for r in sciml.plugins() if r.distribution == "sciml"}
    assert declared == listed
    for kind, name in sorted(declared):
        cls = sciml.load(kind, name)
        assert cls.name == name, f"{cls} declares name {cls.name!r} but is registered as {name!r}"
        check_plugin_class(cls)
