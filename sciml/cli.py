"""The ``sciml`` command.

    sciml plugins [--check] [--kind KIND]   table of installed plugins
    sciml info NAME                         a plugin's description, parameters and docs link
    sciml run --list | EXAMPLE [ARGS...]    run a solver example from ``solvers/``
    sciml bench --list | NAME [ARGS...]     run a benchmark from ``benchmarks/``

Exit codes: 0 success, 1 the command ran but failed (a plugin failed to load under ``--check``,
an example raised), 2 bad arguments or unknown names (one line on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import inspect
import pkgutil
import sys
from collections.abc import Sequence

__all__ = ["main", "list_modules"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def list_modules(package: str) -> dict[str, str]:
    """Map each runnable module of ``package`` to the first line of its docstring.

    Modules, and sub-packages whose ``__init__`` defines ``main`` (the docstring is the ``main``
    function's then). Reads the sources with :mod:`ast`, so nothing is imported.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return {}
    found: dict[str, str] = {}
    for mod in pkgutil.iter_modules(spec.submodule_search_locations):
        if mod.name.startswith("_"):
            continue
        base = f"{mod.module_finder.path}/{mod.name}"  # type: ignore[union-attr]
        try:
            with open(f"{base}/__init__.py" if mod.ispkg else f"{base}.py", encoding="utf-8") as fh:
                tree = ast.parse(fh.read())
        except OSError:
            tree = None
        doc = ast.get_docstring(tree) or "" if tree is not None else ""
        if mod.ispkg:
            mains = [f for f in (tree.body if tree is not None else [])
                     if isinstance(f, ast.FunctionDef) and f.name == "main"]
            if not mains:
                continue
            doc = ast.get_docstring(mains[0]) or ""
        found[mod.name] = doc.strip().splitlines()[0] if doc.strip() else ""
    return dict(sorted(found.items()))


def _print_listing(title: str, modules: dict[str, str]) -> None:
    if not modules:
        print(f"no {title} installed")
        return
    width = max(len(n) for n in modules)
    for name, doc in modules.items():
        print(f"{name.ljust(width)}  {doc}")


def _run_module(package: str, what: str, name: str | None, args: Sequence[str], list_only: bool) -> int:
    modules = list_modules(package)
    if list_only or name is None:
        _print_listing(what, modules)
        return EXIT_OK if list_only else EXIT_USAGE
    if name not in modules:
        import difflib

        close = difflib.get_close_matches(name, list(modules), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        print(f"sciml: no {what} named {name!r}.{hint} Available: {', '.join(modules) or 'none'}",
              file=sys.stderr)
        return EXIT_USAGE
    module = importlib.import_module(f"{package}.{name}")
    entry = getattr(module, "main", None)
    if entry is None:
        print(f"sciml: {package}.{name} has no main(argv) function", file=sys.stderr)
        return EXIT_FAILED
    result = entry(list(args))
    return int(result) if isinstance(result, int) else EXIT_OK


def _cmd_plugins(ns: argparse.Namespace) -> int:
    import sciml

    table = sciml.plugins(ns.kind, check=ns.check)
    if not table:
        print("no plugins installed")
        return EXIT_OK
    print(table)
    if ns.check and any(info.status == "failed" for info in table):
        return EXIT_FAILED
    return EXIT_OK


def _cmd_info(ns: argparse.Namespace) -> int:
    import sciml

    try:
        cls = sciml.load(ns.name) if ns.kind is None else sciml.load(ns.kind, ns.name)
    except (sciml.UnknownPluginError, sciml.AmbiguousPluginError) as exc:
        print(f"sciml: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except sciml.PluginError as exc:
        print(f"sciml: {exc}", file=sys.stderr)
        return EXIT_FAILED
    row = next(i for i in sciml.plugins(cls.kind) if i.name == ns.name.split(":")[-1])
    origin = f"{row.distribution} {row.version}" if row.distribution else "in-process"
    print(f"{row.name}  ({row.kind} plugin, {origin})")
    print(f"class: {row.target}")
    print()
    print(inspect.cleandoc(cls.__doc__ or "(no description)"))
    print()
    print("parameters:")
    sig = inspect.signature(cls.__init__)
    params = [p for p in sig.parameters.values() if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if not params:
        print("  (none)")
    for p in params:
        default = "" if p.default is p.empty else f" = {p.default!r}"
        ann = "" if p.annotation is p.empty else f": {p.annotation if isinstance(p.annotation, str) else getattr(p.annotation, '__name__', p.annotation)}"
        print(f"  {p.name}{ann}{default}")
    print()
    print(f"docs: {_docs_link(cls, row)}")
    return EXIT_OK


def _docs_link(cls: type, row: object) -> str:
    """Where a plugin is documented: its ``docs_url``, our docs page, or its distribution's URL."""
    url = getattr(cls, "docs_url", None)
    if url:
        return str(url)
    module = cls.__module__
    if module.startswith("sciml_plugins."):
        return f"docs/plugins/{module.split('.')[1]}.md"
    dist = getattr(row, "distribution", None)
    if dist:
        from importlib import metadata

        try:
            meta = metadata.metadata(dist)
        except metadata.PackageNotFoundError:
            return "(none)"
        for entry in meta.get_all("Project-URL") or []:
            label, _, link = entry.partition(",")
            if label.strip().lower() in {"documentation", "docs", "homepage"}:
                return link.strip()
        if meta.get("Home-page"):
            return str(meta["Home-page"])
    return "(none)"


class _UsageError(Exception):
    """A command line argparse rejected (raised instead of argparse's usage dump and exit)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise _UsageError(f"{self.prog}: {message} (see '{self.prog} --help')")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="sciml", description="sciml: plugins for inference and scientific ML")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("plugins", help="list installed plugins")
    p.add_argument("--check", action="store_true", help="import each plugin and report ok / failed")
    p.add_argument("--kind", help="only this kind (sampler, operator, surrogate, solver)")
    p.set_defaults(func=_cmd_plugins)

    p = sub.add_parser("info", help="describe a plugin")
    p.add_argument("name", help="plugin name (or distribution:name)")
    p.add_argument("--kind", help="plugin kind, when the name exists under several kinds")
    p.set_defaults(func=_cmd_info)

    # listed for --help; main() hands everything after "train" to sciml.training.command
    sub.add_parser("train", help="train an operator on a generated data set (also under torchrun)")

    for cmd, package, what in (("run", "sciml_solvers", "example"), ("bench", "sciml_benchmarks", "benchmark")):
        p = sub.add_parser(cmd, help=f"run a {what} (--list to list them); further arguments go to it")
        p.add_argument("--list", action="store_true", help=f"list the {what}s")
        p.add_argument("name", nargs="?", help=f"{what} name")
        p.add_argument("args", nargs=argparse.REMAINDER, help=f"arguments passed to the {what}")
        p.set_defaults(func=lambda ns, package=package, what=what: _run_module(package, what, ns.name, ns.args, ns.list))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sciml`` console script; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["train"]:
        from .training.command import main as train_main

        return train_main(args[1:])
    parser = _parser()
    try:
        ns = parser.parse_args(args)
    except _UsageError as exc:  # unknown command or flag, missing argument: one line, exit 2
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    if ns.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    if ns.command in ("run", "bench"):
        return ns.func(ns)
    try:
        return ns.func(ns)
    except ValueError as exc:  # an unknown --kind
        print(f"sciml: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
