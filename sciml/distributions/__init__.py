"""Probability distributions built on sciml's numerical kernels."""

from __future__ import annotations

__all__: list[str] = []
