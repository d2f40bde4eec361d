"""Registry: discovery without import, lazy load, errors a user can act on, register()."""

from __future__ import annotations

import sys
import textwrap
import warnings
from pathlib import Path

import pytest
import torch

import sciml
from sciml import registry

SAMPLER_SRC = '''
import torch
import sciml

class {cls}(sciml.Sampler):
    """Returns standard normal draws."""
    name = "{name}"
    def sample(self, target, num_samples, *, generator=None):
        return sciml.Samples(x=torch.randn(num_samples, target.dim, generator=generator))
'''


def make_distribution(root: Path, dist: str, version: str, entry_points: dict[str, dict[str, str]],
                      modules: dict[str, str]) -> Path:
    """Write an installed distribution (dist-info + modules) under ``root``, as pip would."""
    root.mkdir(parents=True, exist_ok=True)
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = []
    for group, eps in entry_points.items():
        lines.append(f"[{group}]")
        lines += [f"{k} = {v}" for k, v in eps.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    for mod, src in modules.items():
        (root / f"{mod}.py").write_text(textwrap.dedent(src))
    return root


@pytest.fixture
def site(tmp_path, monkeypatch):
    """An isolated 'site-packages' on sys.path holding only the distributions a test writes."""
    monkeypatch.delenv(registry.ENV_DISABLE_AUTOLOAD, raising=False)
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    registry.refresh()
    added = set(sys.modules)
    yield root
    for name in set(sys.modules) - added:
        if name.startswith("fake_"):
            del sys.modules[name]
    registry.refresh()


def _install_good(site: Path, name: str = "fake-gauss", module: str = "fake_good") -> None:
    make_distribution(site, "fake-good-dist", "0.4.0", {"sciml.samplers": {name: f"{module}:Gauss"}},
                      {module: SAMPLER_SRC.format(cls="Gauss", name=name)})


def _row(name: str, kind: str | None = None) -> registry.PluginInfo:
    return next(r for r in sciml.plugins(kind) if r.name == name)


def test_listing_does_not_import_plugins(site):
    _install_good(site)
    row = _row("fake-gauss")
    assert (row.kind, row.distribution, row.version, row.status, row.error) == (
        "sampler", "fake-good-dist", "0.4.0", "not loaded", None)
    assert row.target == "fake_good:Gauss"
    assert "fake_good" not in sys.modules


def test_load_imports_on_first_use_and_caches(site):
    _install_good(site)
    cls = sciml.load("sampler", "fake-gauss")
    assert issubclass(cls, sciml.Sampler) and cls.__name__ == "Gauss"
    assert sciml.load("fake-gauss") is cls
    assert sciml.load("samplers", "fake-gauss") is cls  # plural group name accepted
    assert _row("fake-gauss").status == "ok"
    res = cls().sample(sciml.testing.StandardNormalTarget(3), 5)
    assert res.x.shape == (5, 3)


def test_check_mode_reports_ok_and_failed(site):
    _install_good(site)
    make_distribution(site, "fake-bad-dist", "1.0", {"sciml.solvers": {"fake-broken": "fake_broken:Solver"}},
                      {"fake_broken": "import fake_missing_dependency_xyz\n"})
    table = sciml.plugins(check=True)
    rows = {r.name: r for r in table}
    assert rows["fake-gauss"].status == "ok"
    assert rows["fake-broken"].status == "failed"
    assert "fake_missing_dependency_xyz" in rows["fake-broken"].error
    text = str(table)
    assert "fake-broken" in text and "failed" in text and text.splitlines()[0].startswith("name")


def test_broken_plugin_is_isolated_and_raises_plugin_load_error(site):
    _install_good(site)
    make_distribution(site, "fake-bad-dist", "1.0", {"sciml.solvers": {"fake-broken": "fake_broken:Solver"}},
                      {"fake_broken": "raise RuntimeError('boom at import')\n"})
    assert _row("fake-broken").status == "not loaded"  # listing never imports it
    with pytest.raises(sciml.PluginLoadError) as info:
        sciml.load("solver", "fake-broken")
    err = info.value
    assert isinstance(err.cause, RuntimeError) and err.__cause__ is err.cause
    assert "fake-broken" in str(err) and "boom at import" in str(err) and "fake-bad-dist" in str(err)
    assert isinstance(err, ImportError)  # callers catching ImportError keep working
    failed = _row("fake-broken")
    assert failed.status == "failed" and "boom at import" in failed.error
    # asking again gives the same error without re-importing, and other plugins still load
    with pytest.raises(sciml.PluginLoadError):
        sciml.load("fake-broken")
    assert sciml.load("sampler", "fake-gauss").__name__ == "Gauss"


def test_unknown_name_lists_installed_and_suggests_closest(site):
    _install_good(site)
    with pytest.raises(sciml.UnknownPluginError) as info:
        sciml.load("sampler", "fake-gaus")
    msg = str(info.value)
    assert "Did you mean 'fake-gauss'?" in msg and "Installed:" in msg and "fake-gauss" in msg
    with pytest.raises(sciml.UnknownPluginError, match="no plugin named 'nothing-like-it'"):
        sciml.load("nothing-like-it")
    assert isinstance(info.value, LookupError)


def test_unknown_kind_is_a_value_error(site):
    with pytest.raises(ValueError, match="unknown plugin kind 'estimator'"):
        sciml.load("estimator", "x")
    with pytest.raises(ValueError, match="kinds are sampler, operator, surrogate, solver"):
        sciml.plugins("estimator")


def test_bare_name_in_two_kinds_is_ambiguous(site):
    _install_good(site, name="twin")
    solver_src = '''
        import sciml
        class Twin(sciml.Solver):
            """A solver named twin."""
            name = "twin"
            def solve(self, *problem, generator=None, **kw):
                raise NotImplementedError
    '''
    make_distribution(site, "fake-twin-dist", "1.0", {"sciml.solvers": {"twin": "fake_twin:Twin"}},
                      {"fake_twin": solver_src})
    with pytest.raises(sciml.AmbiguousPluginError, match=r"several kinds \(sampler, solver\)"):
        sciml.load("twin")
    assert sciml.load("solver", "twin").__name__ == "Twin"


@pytest.mark.parametrize(
    "src, expected",
    [
        ("class Thing:\n    pass\n", r"is registered as a sampler plugin but is not a subclass of sciml.Sampler"),
        ("import sciml\nclass Thing(sciml.Sampler):\n    '''Abstract.'''\n    name = 'x'\n",
         r"does not implement sciml.Sampler: missing sample"),
        ("import torch, sciml\nclass Thing(sciml.Sampler):\n    '''Future.'''\n    name = 'x'\n    api_version = 99\n"
         "    def sample(self, target, num_samples, *, generator=None):\n        return None\n",
         r"declares api_version=99, but this sciml supports \[1\]"),
        ("thing = 42\n", r"42 .* is not a subclass of sciml.Sampler"),
    ],
    ids=["not-a-subclass", "abstract", "api-version", "not-a-class"],
)
def test_objects_not_implementing_the_interface_are_refused(site, src, expected):
    attr = "thing" if "thing = 42" in src else "Thing"
    make_distribution(site, "fake-wrong-dist", "2.0", {"sciml.samplers": {"wrong": f"fake_wrong:{attr}"}},
                      {"fake_wrong": src})
    with pytest.raises(sciml.PluginInterfaceError, match=expected) as info:
        sciml.load("sampler", "wrong")
    assert "fake_wrong" in str(info.value)  # names the object
    assert _row("wrong").status == "failed"


def test_same_name_from_two_distributions_is_deterministic_with_warning(site):
    make_distribution(site, "zeta-dist", "1.0", {"sciml.samplers": {"dup": "fake_zeta:Gauss"}},
                      {"fake_zeta": SAMPLER_SRC.format(cls="Gauss", name="dup")})
    make_distribution(site, "alpha-dist", "1.0", {"sciml.samplers": {"dup": "fake_alpha:Gauss"}},
                      {"fake_alpha": SAMPLER_SRC.format(cls="Gauss", name="dup")})
    registry.refresh()
    with pytest.warns(RuntimeWarning, match=r"'dup' is declared by several distributions: using alpha-dist .* ignoring zeta-dist"):
        rows = [r for r in sciml.plugins() if r.name == "dup"]
    assert len(rows) == 1 and rows[0].distribution == "alpha-dist"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once per discovery, not per call
        assert sciml.load("sampler", "dup").__module__ == "fake_alpha"
        assert sciml.load("sampler", "zeta-dist:dup").__module__ == "fake_zeta"
        assert sciml.load("zeta-dist:dup").__module__ == "fake_zeta"


def test_register_in_process_and_conflicts(site):
    class Local(sciml.Solver):
        """An in-process solver."""

        name = "local-solver"

        def solve(self, *problem, generator=None, **kwargs):
            raise NotImplementedError

    class Other(Local):
        """Another one with the same name."""

    with sciml.registered(Local):
        assert sciml.load("local-solver") is Local
        row = _row("local-solver")
        assert (row.status, row.distribution, row.kind) == ("ok", None, "solver")
        with pytest.raises(sciml.PluginConflictError, match="already exists"):
            sciml.register(Other)
        sciml.register(Other, replace=True)
        assert sciml.load("solver", "local-solver") is Other
        sciml.register(Local, name="alias")
        assert sciml.load("solver", "alias") is Local
    with pytest.raises(sciml.UnknownPluginError):
        sciml.load("local-solver")  # the context manager restored the registry


def test_register_conflicts_with_installed_entry_point(site):
    _install_good(site)

    class Shadow(sciml.Sampler):
        """Shadows an installed plugin."""

        name = "fake-gauss"

        def sample(self, target, num_samples, *, generator=None):
            return sciml.Samples(x=torch.zeros(num_samples, target.dim))

    with pytest.raises(sciml.PluginConflictError):
        sciml.register(Shadow)
    with sciml.registered(Shadow, replace=True):
        assert sciml.load("sampler", "fake-gauss") is Shadow
    assert sciml.load("sampler", "fake-gauss").__name__ == "Gauss"


def test_register_refuses_non_plugins_and_abstract_classes(site):
    with pytest.raises(sciml.PluginInterfaceError, match="not a subclass of any sciml interface"):
        sciml.register(int)

    class Abstract(sciml.Sampler):
        """No sample()."""

        name = "abstract"

    with pytest.raises(sciml.PluginInterfaceError, match="missing sample"):
        sciml.register(Abstract)

    class Nameless(sciml.Sampler):
        """No name."""

        def sample(self, target, num_samples, *, generator=None):
            return None

    with pytest.raises(ValueError, match="has no name"):
        sciml.register(Nameless)
    with pytest.raises(sciml.UnknownPluginError):
        sciml.unregister("sampler", "never-registered")


def test_disable_autoload_environment_variable(site, monkeypatch):
    _install_good(site)
    monkeypatch.setenv(registry.ENV_DISABLE_AUTOLOAD, "1")
    registry.refresh()
    assert all(r.name != "fake-gauss" for r in sciml.plugins())
    with pytest.raises(sciml.UnknownPluginError, match="discovery is off"):
        sciml.load("sampler", "fake-gauss")

    class Local(sciml.Sampler):
        """Still visible: registered in-process."""

        name = "local"

        def sample(self, target, num_samples, *, generator=None):
            return None

    with sciml.registered(Local):
        assert [r.name for r in sciml.plugins()] == ["local"]
    monkeypatch.delenv(registry.ENV_DISABLE_AUTOLOAD)
    registry.refresh()
    assert _row("fake-gauss").status == "not loaded"
