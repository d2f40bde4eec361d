"""The sampler benchmark's targets: name -> factory, as in the published tables.

Built from :mod:`sciml.targets` only; ``logreg-*`` are synthetic stand-ins of the sizes of the
Ionosphere and Sonar data sets (the real data are not shipped).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from sciml.targets import (
    Funnel,
    Target,
    dw5,
    dw10,
    dw50,
    funnel,
    gmm25,
    logistic_regression,
    many_well32,
    mog8,
    mog40,
    mos10,
    rings,
)

__all__ = ["BENCHMARK_TARGETS", "funnel_slips", "logreg_iono", "logreg_sonar"]


def funnel_slips() -> Target:
    """The 10-D funnel of the SLIPS benchmark code: ``x_0 ~ N(0, 3)`` (variance 3, not Neal's 9).

    The published sampler tables were computed with that code; its funnel is markedly easier (the
    neck reaches ``e^{x_0/2}`` at ``x_0 ~ -5`` instead of ``-9``).
    """
    return Funnel(10, math.sqrt(3.0))


def logreg_iono() -> Target:
    """Synthetic stand-in for Ionosphere: 35-D (34 features + intercept), 280 train / 71 test points."""
    return logistic_regression(n_train=280, dim=35, seed=0, n_test=71)


def logreg_sonar() -> Target:
    """Synthetic stand-in for Sonar: 61-D (60 features + intercept), 166 train / 42 test points."""
    return logistic_regression(n_train=166, dim=61, seed=1, n_test=42)


BENCHMARK_TARGETS: dict[str, Callable[[], Target]] = {
    "8-mog": mog8,
    "40-mog-d2": lambda: mog40(2, seed=0),
    "40-mog-d50": lambda: mog40(50, seed=0),
    "25-gmm": gmm25,
    "10-mos": lambda: mos10(2, seed=0),
    "rings": rings,
    "funnel": lambda: funnel(10),
    "funnel-slips": funnel_slips,
    "dw5": dw5,
    "dw10": dw10,
    "dw50": dw50,
    "many-well-32": many_well32,
    "logreg-iono": logreg_iono,
    "logreg-sonar": logreg_sonar,
}
