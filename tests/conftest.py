"""Shared test configuration: deterministic torch, CPU thread count, GPU marker."""

from __future__ import annotations

import os
import tempfile

import pytest
import torch

# Generated data sets (sciml.datasets) are cached in a fresh folder, never in the user's cache.
os.environ["SCIML_DATA_DIR"] = tempfile.mkdtemp(prefix="sciml-test-data-")

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
