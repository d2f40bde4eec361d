"""torch.distributed for the trainer: one code path for one process and for ``torchrun``.

Under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment) :func:`process_group` starts the process
group if the caller has not (gloo on CPU, nccl on CUDA) and ends it again afterwards; with one
process it does nothing and :func:`world` is ``(0, 1)``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch
import torch.distributed as dist
from torch import Tensor, nn

__all__ = ["world", "process_group", "local_device", "all_reduce_sum", "barrier", "broadcast_module",
           "average_gradients"]


def world() -> tuple[int, int]:
    """``(rank, world_size)`` of an initialised process group, else ``(0, 1)``."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _env_world_size() -> int:
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError as exc:
        raise ValueError(f"WORLD_SIZE must be an integer, got {os.environ['WORLD_SIZE']!r}") from exc


def local_device(device: torch.device) -> torch.device:
    """Under ``torchrun`` on CUDA, this process's GPU (``LOCAL_RANK``); otherwise ``device`` unchanged."""
    if device.type == "cuda" and _env_world_size() > 1:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


@contextlib.contextmanager
def process_group(device: torch.device) -> Iterator[tuple[int, int]]:
    """Yield ``(rank, world_size)``, starting (and afterwards ending) a process group under ``torchrun``."""
    started = False
    if _env_world_size() > 1 and not (dist.is_available() and dist.is_initialized()):
        if not dist.is_available():
            raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)
        started = True
    try:
        yield world()
    finally:
        if started:
            dist.destroy_process_group()


def all_reduce_sum(x: Tensor) -> Tensor:
    """Sum of ``x`` over the processes (``x`` itself with one process)."""
    if world()[1] > 1:
        x = x.clone()
        dist.all_reduce(x)
    return x


def barrier() -> None:
    """Wait for every process (nothing with one process)."""
    if world()[1] > 1:
        dist.barrier()


def broadcast_module(module: nn.Module) -> None:
    """Give every process rank 0's parameters and buffers (nothing with one process)."""
    if world()[1] > 1:
        for t in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(t.data, src=0)


def average_gradients(module: nn.Module) -> None:
    """Replace every parameter's gradient by its mean over the processes, in one all-reduce (a missing
    gradient counts as zero); nothing with one process."""
    size = world()[1]
    if size == 1:
        return
    params = [p for p in module.parameters() if p.requires_grad]
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in params])
    dist.all_reduce(flat)
    flat /= size
    offset = 0
    for p in params:
        p.grad = flat[offset: offset + p.numel()].view_as(p).clone()
        offset += p.numel()
