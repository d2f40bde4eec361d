"""Numerical kernels shared by plugins: torch CPU path plus an optional CuPy GPU path.

Names are imported from their modules on first access, so ``import sciml.kernels`` is cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> submodule that defines it (one line per name; each kernel module adds its own)
_EXPORTS: dict[str, str] = {
    "log_iv": "bessel",
    "log_kv": "bessel",
    "log_bessel_ratio": "bessel",
    "Kronecker": "kronecker",
    # Kronecker algebra without an operator object (contracts in sciml/kernels/_kron_ops.py)
    "kron_apply": "_kron_ops",
    "kron_dense": "_kron_ops",
    "kron_diagonal": "_kron_ops",
    "outer_product": "_kron_ops",
    "outer_sum": "_kron_ops",
    "mode_product": "_kron_ops",
    "multi_mode_product": "_kron_ops",
    "multi_mode_solve_triangular": "_kron_ops",
    "rowwise_kron_apply": "_kron_ops",
    "tensor_attention": "attention",
    "naive_tensor_attention": "attention",
    "khatri_rao": "attention",
    "khatri_rao_gram": "attention",
    "entry_bound": "attention",
    "poly_error_bound": "attention",
    "poly_degree": "attention",
    "num_monomials": "attention",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sciml.kernels' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)


def __dir__() -> list[str]:
    return __all__
