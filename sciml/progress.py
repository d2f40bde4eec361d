"""The one progress-bar switch: ``progress: bool | None = None`` (``None``: on when stderr is a terminal)."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

from tqdm.auto import tqdm

__all__ = ["check_progress", "resolve_progress", "progress_bar", "add_progress_argument"]


def check_progress(progress: object) -> bool | None:
    """Return ``progress`` unchanged (for resolving at run time), or raise ``TypeError`` unless a bool or None."""
    resolve_progress(progress)
    return progress  # type: ignore[return-value]


def resolve_progress(progress: object) -> bool:
    """``True`` / ``False`` as given; ``None`` means on exactly when ``sys.stderr`` is a terminal."""
    if progress is None:
        isatty = getattr(sys.stderr, "isatty", None)
        return bool(isatty and isatty())
    if not isinstance(progress, bool):
        raise TypeError(f"progress must be a bool or None, got {type(progress).__name__}")
    return progress


def progress_bar(iterable: Iterable[Any] | None = None, *, total: int | None = None, desc: str = "",
                 progress: bool | None = None, **kwargs: Any) -> tqdm:
    """A ``tqdm`` bar on stderr, shown according to :func:`resolve_progress` (``leave=False``)."""
    kwargs.setdefault("leave", False)
    return tqdm(iterable, total=total, desc=desc, disable=not resolve_progress(progress), file=sys.stderr, **kwargs)


def add_progress_argument(parser: Any) -> None:
    """Give an ``argparse`` parser the ``--progress`` / ``--no-progress`` pair (default: automatic)."""
    import argparse

    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="show progress bars (default: only when stderr is a terminal)")
