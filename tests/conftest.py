"""Shared test configuration: deterministic torch, CPU thread count, GPU marker."""

from __future__ import annotations

import os

import pytest
import torch

# Two xdist workers share CI's two cores: one intra-op thread each avoids oversubscription.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)


def _cuda_ready() -> bool:
    return torch.cuda.is_available()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _cuda_ready():
        return
    skip = pytest.mark.skip(reason="no CUDA device: GPU path not exercised here")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
