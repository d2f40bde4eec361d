"""The resolved settings of one LightSB training stage (every knob concrete: the user's value or the
default rule's, see :mod:`~sciml_plugins.lightsb.rule`)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Settings"]


@dataclass(frozen=True)
class Settings:
    """What the starts and the training loop of one stage read; the fields mean what the
    :class:`~sciml_plugins.lightsb.LightSB` arguments of the same names mean (``eval_every`` and
    ``patience`` resolved: ``eval_every = num_steps`` evaluates once, at the end)."""

    eps: float
    n_components: int
    covariance: str
    objective: str
    num_steps: int
    batch_size: int
    lr: float
    chol_lr_scale: float | None
    lr_schedule: str
    optimizer: str
    init_scale: float
    init: str
    init_spread: float
    cluster_subsample: int
    eval_every: int
    patience: int | None
    t_gap: float
    progress: bool | None
    n_starts: int
    start_steps: int
    init_min_weight: float

    def __post_init__(self) -> None:
        if self.n_starts > 1 and self.objective != "lightsb":
            raise ValueError(f"n_starts > 1 needs objective='lightsb', got objective={self.objective!r}")
