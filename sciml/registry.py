"""Plugin discovery through entry points, lazy loading, in-process registration.

Plugins declare themselves in their distribution's ``pyproject.toml``, one entry-point group per
kind::

    [project.entry-points."sciml.samplers"]
    my-sampler = "my_package.sampler:MySampler"

Discovery reads only the entry-point metadata (no plugin module is imported); a plugin is imported
the first time it is loaded, checked against its interface and cached. Setting the environment
variable ``SCIML_DISABLE_PLUGIN_AUTOLOAD=1`` turns discovery off: only plugins passed to
:func:`register` are visible.

Name clashes: an in-process registration shadows an entry point of the same kind and name. When
two distributions declare the same kind and name, the one whose distribution name sorts first
wins, a warning names both, and the other stays reachable as ``"distribution:name"``.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, replace
from importlib import metadata
from typing import Any

from .interfaces import KINDS, SUPPORTED_API_VERSIONS, Plugin
from .validation import check_bool

__all__ = [
    "ENV_DISABLE_AUTOLOAD",
    "GROUPS",
    "PluginError",
    "UnknownPluginError",
    "AmbiguousPluginError",
    "PluginLoadError",
    "PluginInterfaceError",
    "PluginConflictError",
    "PluginInfo",
    "PluginTable",
    "plugins",
    "load",
    "register",
    "unregister",
    "registered",
    "refresh",
]

#: Environment variable that turns entry-point discovery off when set to ``1`` / ``true``.
ENV_DISABLE_AUTOLOAD = "SCIML_DISABLE_PLUGIN_AUTOLOAD"
#: Entry-point group for each plugin kind.
GROUPS: dict[str, str] = {kind: f"sciml.{kind}s" for kind in KINDS}


class PluginError(Exception):
    """Base class of the registry's errors."""


class UnknownPluginError(PluginError, LookupError):
    """No plugin of that kind and name is installed."""


class AmbiguousPluginError(PluginError, LookupError):
    """A bare name matches plugins of several kinds; pass the kind too."""


class PluginLoadError(PluginError, ImportError):
    """Importing a plugin failed; the original exception is ``__cause__`` and ``cause``."""

    def __init__(self, message: str, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.cause = cause


class PluginInterfaceError(PluginError, TypeError):
    """A plugin does not implement its interface or declares an unsupported API version."""


class PluginConflictError(PluginError, ValueError):
    """:func:`register` was asked to register a name that is already taken."""


@dataclass(frozen=True)
class PluginInfo:
    """One row of the plugin table.

    Attributes:
        name: name to load the plugin by.
        kind: ``sampler``, ``operator``, ``surrogate`` or ``solver``.
        distribution: installed distribution declaring it (``None`` for in-process plugins).
        version: that distribution's version.
        target: ``module:attribute`` of the entry point, or the class's qualified name.
        status: ``not loaded`` (discovered, never imported), ``ok`` or ``failed``.
        error: why loading failed (``None`` unless ``status == "failed"``).
    """

    name: str
    kind: str
    distribution: str | None
    version: str | None
    target: str
    status: str = "not loaded"
    error: str | None = None


class PluginTable(list):
    """A list of :class:`PluginInfo` that prints as an aligned text table."""

    columns = ("name", "kind", "distribution", "version", "status", "error")
    #: Errors longer than this are cut in the printed table (the rows keep the full text).
    max_error_width = 120

    def rows(self) -> list[tuple[str, ...]]:
        """The table as rows of strings (missing values as ``-``, long errors shortened)."""
        out = []
        for info in self:
            cells = ["-" if getattr(info, c) is None else str(getattr(info, c)) for c in self.columns]
            err = cells[-1].replace("\n", " ")
            if len(err) > self.max_error_width:
                err = err[: self.max_error_width - 3] + "..."
            cells[-1] = err
            out.append(tuple(cells))
        return out

    def __str__(self) -> str:
        rows = [tuple(self.columns)] + self.rows()
        widths = [max(len(r[i]) for r in rows) for i in range(len(self.columns))]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)


@dataclass
class _Entry:
    info: PluginInfo
    entry_point: metadata.EntryPoint | None = None
    obj: type[Plugin] | None = None
    failure: PluginError | None = None


class _Registry:
    """State of the registry: discovered entry points, loaded classes, in-process plugins."""

    def __init__(self) -> None:
        self._discovered: dict[tuple[str, str], _Entry] | None = None
        self._shadowed: dict[tuple[str, str], _Entry] = {}  # "dist:name" aliases of clash losers
        self._registered: dict[tuple[str, str], _Entry] = {}

    # ---- discovery ------------------------------------------------------------------------
    def discovered(self) -> dict[tuple[str, str], _Entry]:
        if self._discovered is None:
            self._discovered, self._shadowed = self._discover()
        return self._discovered

    @staticmethod
    def _discover() -> tuple[dict[tuple[str, str], _Entry], dict[tuple[str, str], _Entry]]:
        found: dict[tuple[str, str], list[_Entry]] = {}
        if _autoload_disabled():
            return {}, {}
        for kind, group in GROUPS.items():
            for ep in metadata.entry_points(group=group):
                dist = getattr(ep, "dist", None)
                info = PluginInfo(
                    name=ep.name,
                    kind=kind,
                    distribution=dist.metadata["Name"] if dist is not None else None,
                    version=dist.version if dist is not None else None,
                    target=ep.value,
                )
                found.setdefault((kind, ep.name), []).append(_Entry(info, ep))
        winners: dict[tuple[str, str], _Entry] = {}
        shadowed: dict[tuple[str, str], _Entry] = {}
        for key, entries in found.items():
            entries.sort(key=lambda e: (e.info.distribution or "", e.info.target))
            winners[key] = entries[0]
            for entry in entries:
                shadowed[(key[0], f"{entry.info.distribution}:{key[1]}")] = entry
            if len(entries) > 1:
                others = ", ".join(
                    f"{e.info.distribution} ({e.info.target})" for e in entries[1:]
                )
                warnings.warn(
                    f"sciml: {key[0]} plugin {key[1]!r} is declared by several distributions: "
                    f"using {entries[0].info.distribution} ({entries[0].info.target}), ignoring "
                    f"{others}. Load another one as "
                    f"'{entries[1].info.distribution}:{key[1]}'.",
                    RuntimeWarning,
                    stacklevel=4,
                )
        return winners, shadowed

    def entries(self) -> dict[tuple[str, str], _Entry]:
        merged = dict(self.discovered())
        merged.update(self._registered)
        return merged

    # ---- loading --------------------------------------------------------------------------
    def load_entry(self, entry: _Entry) -> type[Plugin]:
        if entry.obj is not None:
            return entry.obj
        if entry.failure is not None:
            raise entry.failure
        info = entry.info
        assert entry.entry_point is not None
        try:
            obj = entry.entry_point.load()
        except Exception as exc:  # any import-time failure of third-party code
            err = PluginLoadError(
                f"sciml could not import {info.kind} plugin {info.name!r} from "
                f"{info.target} (distribution {info.distribution} {info.version}): "
                f"{type(exc).__name__}: {exc}",
                cause=exc,
            )
            err.__cause__ = exc
            return self._fail(entry, err)
        try:
            check_plugin_object(obj, info.kind, where=f"{info.target} ({info.distribution})")
        except PluginInterfaceError as err:
            return self._fail(entry, err)
        entry.obj = obj
        entry.info = replace(info, status="ok")
        return obj

    @staticmethod
    def _fail(entry: _Entry, err: PluginError) -> type[Plugin]:
        entry.failure = err
        entry.info = replace(entry.info, status="failed", error=str(err))
        raise err


_REGISTRY = _Registry()


def _autoload_disabled() -> bool:
    return os.environ.get(ENV_DISABLE_AUTOLOAD, "").strip().lower() in {"1", "true", "yes", "on"}


def check_plugin_object(obj: Any, kind: str, *, where: str = "") -> None:
    """Raise :class:`PluginInterfaceError` unless ``obj`` is a concrete ``kind`` plugin class."""
    interface = KINDS[kind]
    label = f" at {where}" if where else ""
    if not isinstance(obj, type) or not issubclass(obj, interface):
        raise PluginInterfaceError(
            f"{obj!r}{label} is registered as a {kind} plugin but is not a subclass of "
            f"sciml.{interface.__name__}"
        )
    missing = sorted(getattr(obj, "__abstractmethods__", ()))
    if missing:
        raise PluginInterfaceError(
            f"{obj.__module__}.{obj.__qualname__}{label} does not implement "
            f"sciml.{interface.__name__}: missing {', '.join(missing)}"
        )
    version = getattr(obj, "api_version", None)
    if version not in SUPPORTED_API_VERSIONS:
        raise PluginInterfaceError(
            f"{obj.__module__}.{obj.__qualname__}{label} declares api_version={version!r}, but "
            f"this sciml supports {sorted(SUPPORTED_API_VERSIONS)}; "
            f"upgrade sciml or the plugin"
        )


def _check_str(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    return value


def _normalise_kind(kind: str) -> str:
    k = _check_str("kind", kind).strip().lower()
    if k.endswith("s") and k[:-1] in KINDS:
        k = k[:-1]
    if k not in KINDS:
        raise ValueError(f"unknown plugin kind {kind!r}; kinds are {', '.join(KINDS)}")
    return k


def plugins(kind: str | None = None, *, check: bool = False) -> PluginTable:
    """List installed and registered plugins without importing them.

    Args:
        kind: restrict to one kind (``"sampler"``, ``"solver"``, ...).
        check: import every plugin and report ``ok`` or ``failed`` with its error. A failing
            plugin never raises here.

    Returns:
        a :class:`PluginTable` sorted by kind then name.
    """
    wanted = _normalise_kind(kind) if kind is not None else None
    check_bool("check", check)
    table = PluginTable()
    for (k, _name), entry in sorted(_REGISTRY.entries().items()):
        if wanted is not None and k != wanted:
            continue
        if check and entry.obj is None and entry.failure is None:
            with contextlib.suppress(PluginError):
                _REGISTRY.load_entry(entry)
        table.append(entry.info)
    return table


def load(kind_or_name: str, name: str | None = None) -> type[Plugin]:
    """Return a plugin class, importing it on first use.

    ``load("solver", "lightsb")`` names kind and plugin; ``load("lightsb")`` works when the name
    is unique across kinds. ``"distribution:name"`` picks one of several distributions declaring
    the same name.

    Raises:
        UnknownPluginError: no such plugin (the message lists installed names, closest first).
        AmbiguousPluginError: a bare name found under several kinds.
        PluginLoadError: importing the plugin failed (the cause is attached).
        PluginInterfaceError: the object does not implement its interface or API version.
        TypeError: ``kind_or_name`` is not a str, or ``name`` is neither a str nor ``None``.
    """
    _check_str("kind_or_name", kind_or_name)
    if name is not None:
        _check_str("name", name)
    entries = _REGISTRY.entries()
    if name is None:
        plugin_name = kind_or_name
        kinds = sorted(k for (k, n) in entries if n == plugin_name)
        if not kinds:
            kinds = sorted(k for (k, n) in _REGISTRY._shadowed if n == plugin_name)
        if len(kinds) > 1:
            raise AmbiguousPluginError(
                f"plugin name {plugin_name!r} exists as several kinds ({', '.join(kinds)}); "
                f"use sciml.load(kind, {plugin_name!r})"
            )
        if not kinds:
            names = sorted({n for (_, n) in entries})
            raise UnknownPluginError(_unknown_message(plugin_name, "plugin", names))
        kind = kinds[0]
    else:
        kind = _normalise_kind(kind_or_name)
        plugin_name = name
    entry = entries.get((kind, plugin_name)) or _REGISTRY._shadowed.get((kind, plugin_name))
    if entry is None:
        names = sorted(n for (k, n) in entries if k == kind)
        raise UnknownPluginError(_unknown_message(plugin_name, f"{kind} plugin", names))
    return _REGISTRY.load_entry(entry)


def _unknown_message(name: str, what: str, names: list[str]) -> str:
    message = f"no {what} named {name!r}."
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.5)
    if close:
        message += f" Did you mean {close[0]!r}?"
    message += f" Installed: {', '.join(names) if names else 'none'}."
    if _autoload_disabled():
        message += f" (Entry-point discovery is off: {ENV_DISABLE_AUTOLOAD} is set.)"
    return message


def register(
    cls: type[Plugin], *, name: str | None = None, replace: bool = False
) -> type[Plugin]:
    """Register a plugin class in this process (no packaging needed).

    The kind comes from the interface ``cls`` derives from; the name from ``name`` or
    ``cls.name``. Usable as a class decorator.

    Raises:
        PluginInterfaceError: ``cls`` is not a concrete plugin class of a supported API version.
        PluginConflictError: the name is taken by another in-process or installed plugin of the
            same kind and ``replace`` is false.
        TypeError / ValueError: ``name`` (or ``cls.name``) is not a non-empty str, ``replace`` is
            not a bool (checked before anything is registered).
    """
    from .interfaces import interface_for

    if name is not None and _check_str("name", name).strip() == "":
        raise ValueError("name must be a non-empty str (or None to use cls.name)")
    check_bool("replace", replace)
    interface = interface_for(cls)
    if interface is None:
        raise PluginInterfaceError(
            f"{cls!r} is not a subclass of any sciml interface "
            f"({', '.join('sciml.' + i.__name__ for i in KINDS.values())})"
        )
    kind = interface.kind
    check_plugin_object(cls, kind)
    plugin_name = cls.name if name is None else name
    if not isinstance(plugin_name, str):
        raise TypeError(f"{cls.__qualname__}.name must be a str, got {type(plugin_name).__name__}")
    if not plugin_name.strip():
        raise ValueError(f"{cls.__qualname__} has no name: set the class attribute or pass name=")
    key = (kind, plugin_name)
    taken = _REGISTRY.entries().get(key)
    if taken is not None and not replace and taken.obj is not cls:
        raise PluginConflictError(
            f"a {kind} plugin named {plugin_name!r} already exists ({taken.info.target}); "
            f"pass replace=True to override it in this process"
        )
    info = PluginInfo(
        name=plugin_name,
        kind=kind,
        distribution=None,
        version=None,
        target=f"{cls.__module__}:{cls.__qualname__}",
        status="ok",
    )
    _REGISTRY._registered[key] = _Entry(info, obj=cls)
    return cls


def unregister(kind: str, name: str) -> None:
    """Remove an in-process registration (entry-point plugins cannot be removed)."""
    key = (_normalise_kind(kind), _check_str("name", name))
    if key not in _REGISTRY._registered:
        raise UnknownPluginError(f"no in-process {key[0]} plugin named {name!r} is registered")
    del _REGISTRY._registered[key]


@contextlib.contextmanager
def registered(*classes: type[Plugin], replace: bool = False) -> Iterator[None]:
    """Register ``classes`` for the duration of a ``with`` block (for tests).

    On exit the in-process registrations are restored exactly as they were.
    """
    check_bool("replace", replace)
    saved = dict(_REGISTRY._registered)
    try:
        for cls in classes:
            register(cls, replace=replace)
        yield
    finally:
        _REGISTRY._registered = saved


def refresh() -> None:
    """Forget discovered entry points and loaded classes; the next call rediscovers them."""
    _REGISTRY._discovered = None
    _REGISTRY._shadowed = {}
    importlib.invalidate_caches()
