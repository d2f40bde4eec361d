"""sciml: probabilistic inference and scientific machine learning with plugins.

Load a plugin by kind and name, use it::

    import sciml
    LightSB = sciml.load("solver", "lightsb")
    print(sciml.plugins())

Submodules with heavier dependencies (``sciml.kernels``, ``sciml.distributions``,
``sciml.targets``, ``sciml.metrics``, ``sciml.testing``) are imported on first attribute access,
so ``import sciml`` costs little more than importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from .interfaces import (
    API_VERSION,
    Operator,
    Plugin,
    Sampler,
    Samples,
    Solution,
    Solver,
    Surrogate,
)
from .io import SaveFileError
from .registry import (
    AmbiguousPluginError,
    PluginConflictError,
    PluginError,
    PluginInterfaceError,
    PluginLoadError,
    UnknownPluginError,
    load,
    plugins,
    refresh,
    register,
    registered,
    unregister,
)
from .validation import DeviceUnavailableError

__version__ = "0.1.0"

__all__ = [
    "API_VERSION",
    "Plugin",
    "Sampler",
    "Operator",
    "Surrogate",
    "Solver",
    "Samples",
    "Solution",
    "load",
    "plugins",
    "register",
    "registered",
    "unregister",
    "refresh",
    "PluginError",
    "UnknownPluginError",
    "AmbiguousPluginError",
    "PluginLoadError",
    "PluginInterfaceError",
    "PluginConflictError",
    "SaveFileError",
    "DeviceUnavailableError",
    "__version__",
]

_LAZY_SUBMODULES = {"kernels", "distributions", "targets", "metrics", "testing", "cli", "io", "progress", "validation",
                    "diagnostics", "datasets", "training"}


def __getattr__(name: str) -> Any:
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'sciml' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(__all__) | _LAZY_SUBMODULES)
