"""Save files: one envelope for every saved object, read back with clear errors.

A file written by :func:`save_state` is a ``torch.save`` of a plain dict whose ``"format"`` entry is
``"sciml.<kind>/<version>"`` (for example ``"sciml.lightsb.Bridge/3"``) and whose other entries are the
object's payload: tensors, numbers, strings, lists and dicts only, so :func:`load_state` reads it with
``weights_only=True``. Loading checks, in order, that the path exists, that it is a readable torch
file, that it is a sciml file, that it holds the asked-for kind, and that its version is one this
sciml reads; a file whose bytes were changed after writing fails the CRC-32 check of the zip
container ``torch.save`` writes. Every failure is a :class:`SaveFileError` naming the file and what
is wrong.

The object's own checks of the payload (shapes, finiteness, hyper-parameters) run inside
:func:`reading`, which turns the ``ValueError`` / ``TypeError`` / ``KeyError`` of the
:mod:`sciml.validation` checks into a :class:`SaveFileError` that names the file too;
:func:`load_module_state` puts saved weights into a module (every tensor finite, the keys and
shapes the module's; non-tensor entries only where the module's own state has one).
"""

from __future__ import annotations

import contextlib
import os
import re
import zipfile
from collections.abc import Collection, Iterator
from typing import Any

import torch

from .validation import check_device, check_tensor

__all__ = ["SaveFileError", "save_state", "load_state", "reading", "load_module_state"]

_FORMAT_KEY = "format"
_FORMAT_RE = re.compile(r"^sciml\.(?P<kind>[A-Za-z0-9_.\-]+)/(?P<version>[0-9]+)$")


class SaveFileError(ValueError):
    """A save file is missing, unreadable, of another kind or version, or holds invalid content."""


def save_state(path: str | os.PathLike[str], kind: str, version: int, payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` under the format tag ``sciml.<kind>/<version>``.

    Args:
        path: file to write (overwritten).
        kind: what the file holds, e.g. ``"lightsb.Bridge"``.
        version: format version of that kind (an int >= 1; bump it when the payload changes).
        payload: plain values and tensors; must not use the key ``"format"``.
    """
    if not isinstance(kind, str) or isinstance(version, bool) or not isinstance(version, int):
        raise TypeError(f"kind must be a str and version an int, got {type(kind).__name__}, {type(version).__name__}")
    if not _FORMAT_RE.match(f"sciml.{kind}/{version}") or version < 1:
        raise ValueError(f"kind must be a dotted name and version an int >= 1, got {kind!r}, {version!r}")
    if _FORMAT_KEY in payload:
        raise ValueError(f"payload must not hold the key {_FORMAT_KEY!r} (it is the format tag)")
    name = _path_name(path)
    if os.path.isdir(name):
        raise IsADirectoryError(f"{name!r} is a directory, not a file to write")
    parent = os.path.dirname(os.path.abspath(name))
    if not os.path.isdir(parent):
        raise FileNotFoundError(f"cannot write {name!r}: the folder {parent!r} does not exist")
    torch.save({_FORMAT_KEY: f"sciml.{kind}/{version}", **payload}, name)


def _path_name(path: object) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    return os.fspath(path)


def load_state(
    path: str | os.PathLike[str],
    kind: str,
    versions: Collection[int],
    map_location: torch.device | str | None = None,
) -> tuple[int, dict[str, Any]]:
    """Read a file written by :func:`save_state`.

    Args:
        path: the file.
        kind: the kind expected (``"lightsb.Bridge"``, ``"gp_pde.GPPDESolution"``, ...).
        versions: the format versions the caller can read.
        map_location: passed to :func:`torch.load`; a device this machine lacks raises
            :class:`sciml.DeviceUnavailableError` before the file is read.

    Returns:
        ``(version, payload)``, the payload without its format tag.

    Raises:
        TypeError: ``path`` is not a str or path.
        FileNotFoundError: ``path`` does not exist.
        SaveFileError: anything else that makes the file unusable, with the file named.
    """
    name = _path_name(path)
    if isinstance(map_location, (str, torch.device)):  # dict / callable forms are torch.load's own
        check_device("map_location", map_location)
    elif map_location is not None and not isinstance(map_location, dict) and not callable(map_location):
        raise TypeError(f"map_location must be a device, a str, a dict or a callable, got {type(map_location).__name__}")
    if not os.path.exists(name):
        raise FileNotFoundError(f"no such file: {name!r}")
    if os.path.isdir(name):
        raise SaveFileError(f"{name!r} is a directory, not a sciml save file")
    if os.path.getsize(name) == 0:
        raise SaveFileError(f"{name!r} is empty, not a sciml save file")
    _check_crc(name)
    try:
        blob = torch.load(name, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch / pickle / zip raise many types for a damaged file
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SaveFileError(
            f"{name!r} could not be read as a torch file (truncated, corrupted, or not written by "
            f"sciml; it may also hold objects other than tensors and plain values): {reason[:200]}"
        ) from exc
    tag = blob.get(_FORMAT_KEY) if isinstance(blob, dict) else None
    match = _FORMAT_RE.match(tag) if isinstance(tag, str) else None
    if match is None:
        raise SaveFileError(f"{name!r} is not a sciml save file (no 'sciml.<kind>/<version>' format tag)")
    found, version = match["kind"], int(match["version"])
    if found != kind:
        raise SaveFileError(f"{name!r} holds a saved {found}, not a {kind}")
    known = sorted(int(v) for v in versions)
    if version not in known:
        newer = " (written by a newer sciml: upgrade sciml to read it)" if known and version > known[-1] else ""
        raise SaveFileError(
            f"{name!r} holds {kind} format version {version}; this sciml reads versions {known}{newer}"
        )
    return version, {k: v for k, v in blob.items() if k != _FORMAT_KEY}


def _check_crc(name: str) -> None:
    """A ``torch.save`` zip whose stored CRC-32 of a member does not match its bytes was changed on disk."""
    try:
        with zipfile.ZipFile(name) as zf:
            bad = zf.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        return  # not a readable zip: torch.load reports it (legacy formats, truncation)
    if bad is not None:
        raise SaveFileError(f"{name!r} is corrupted: the bytes of its entry {bad!r} do not match the "
                            "checksum written with them (the file was damaged after it was saved)")


def load_module_state(module: torch.nn.Module, state: object) -> torch.nn.Module:
    """``module.load_state_dict(state)`` for saved weights: ``state`` a dict of tensors, the floating
    ones finite, with the module's keys and shapes (``ValueError`` / ``TypeError`` otherwise, which
    :func:`reading` names the file in). A non-tensor entry is accepted where the module's own state
    dict holds a non-tensor (extra state: ``get_extra_state``, or neuraloperator's ``_metadata``)."""
    if not isinstance(state, dict):
        raise TypeError(f"the weights must be a dict of tensors, got {type(state).__name__}")
    own = module.state_dict()
    for key, value in state.items():
        if isinstance(value, torch.Tensor) or isinstance(own.get(key), torch.Tensor) or key not in own:
            check_tensor(f"weight {key!r}", value, floating=False)
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:  # missing / unexpected keys, wrong shapes
        detail = " ".join(line.strip() for line in str(exc).strip().splitlines()[:2])
        raise ValueError(f"the weights do not fit the model: {detail[:300]}") from exc
    return module


@contextlib.contextmanager
def reading(path: str | os.PathLike[str]) -> Iterator[None]:
    """Turn the checks' errors on a loaded payload into :class:`SaveFileError` naming ``path``.

    ``KeyError`` (a missing entry), ``ValueError`` and ``TypeError`` (a check that failed) are
    re-raised as :class:`SaveFileError`; the original is kept as ``__cause__``.
    """
    try:
        yield
    except SaveFileError:
        raise
    except KeyError as exc:
        raise SaveFileError(f"{os.fspath(path)!r} is missing the entry {exc.args[0]!r}") from exc
    except (ValueError, TypeError) as exc:
        raise SaveFileError(f"{os.fspath(path)!r} holds invalid content: {exc}") from exc
