"""``nsf-flow``: zuko's neural spline flow fitted by reverse KL (the baseline users would pick).

zuko's ``NSF`` is autoregressive with sampling the slow direction, so the transform is inverted
(``zuko.flows.Flow(nsf.transform.inv, nsf.base)``): drawing and ``rsample_and_log_prob`` are then
one pass, and ``log_prob`` at a given point is the original (also one-pass) direction.
zuko draws from torch's global generator; a ``generator`` given here seeds a forked global state
per call, so equal generators still give equal fits and draws.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import ClassVar

import torch
from torch import Tensor, nn

from sciml.targets import Target
from sciml.validation import check_positive_int

from .base import ReverseKLFlow

__all__ = ["NSFFlow", "InvertedNSF"]


@contextmanager
def _seeded(generator: torch.Generator | None) -> Iterator[None]:
    """torch's global CPU generator, forked and seeded from ``generator`` (untouched when ``None``)."""
    with torch.random.fork_rng(devices=[]):
        if generator is not None:
            torch.manual_seed(int(torch.randint(2**62, (), generator=generator, device=generator.device)))
        yield


class InvertedNSF(nn.Module):
    """zuko ``NSF(dim, transforms, bins, hidden)`` with its transform inverted (drawing is one pass)."""

    def __init__(self, dim: int, transforms: int, bins: int, hidden: tuple[int, ...], dtype: torch.dtype,
                 device: torch.device) -> None:
        super().__init__()
        import zuko

        self.dim, self.transforms, self.bins, self.hidden = dim, transforms, bins, tuple(hidden)

        nsf = zuko.flows.NSF(dim, transforms=transforms, bins=bins, hidden_features=hidden)
        self.flow = zuko.flows.Flow(nsf.transform.inv, nsf.base).to(dtype=dtype, device=device)

    def rsample_and_log_prob(self, n: int, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        with _seeded(generator):
            return self.flow().rsample_and_log_prob((n,))

    def log_prob(self, x: Tensor) -> Tensor:
        return self.flow().log_prob(x)

    def config(self) -> dict[str, int | list[int]]:
        """The constructor's architecture arguments (what a save file records)."""
        return {"dim": self.dim, "transforms": self.transforms, "bins": self.bins, "hidden": list(self.hidden)}


class NSFFlow(ReverseKLFlow):
    """zuko ``NSF(dim, transforms, bins, hidden_features)``, inverted, fitted by reverse KL.

    Same surface as :class:`~sciml_plugins.flows.PlanarFlow`; ``dim >= 2`` (autoregressive).
    """

    name: ClassVar[str] = "nsf-flow"

    def __init__(self, transforms: int = 3, *, bins: int = 8, hidden_features: tuple[int, ...] = (64, 64),
                 num_steps: int = 4000, batch_size: int = 256, lr: float = 1e-3, anneal_steps: int = 0, progress: bool | None = None) -> None:
        self.transforms = check_positive_int("transforms", transforms)
        self.bins = check_positive_int("bins", bins)
        if isinstance(hidden_features, int) or not hidden_features:
            raise TypeError(f"hidden_features must be a non-empty tuple of ints, got {hidden_features!r}")
        self.hidden_features = tuple(check_positive_int("hidden_features", h) for h in hidden_features)
        super().__init__(num_steps=num_steps, batch_size=batch_size, lr=lr, anneal_steps=anneal_steps,
                         progress=progress)

    def _module(self, target: Target, generator: torch.Generator | None) -> nn.Module:
        if target.dim < 2:
            raise ValueError(f"nsf-flow needs dim >= 2 (an autoregressive flow), got a target of dim {target.dim}")
        with _seeded(generator):
            return InvertedNSF(target.dim, self.transforms, self.bins, self.hidden_features, target.dtype,
                                target.device)

    def __repr__(self) -> str:
        return (f"NSFFlow(transforms={self.transforms}, bins={self.bins}, hidden_features={self.hidden_features}, "
                f"num_steps={self.num_steps}, batch_size={self.batch_size}, lr={self.lr})")
