"""Target densities for samplers: the :class:`Target` type, adapters and benchmark targets.

``as_target`` turns a torch / pyro distribution, a duck-typed object with ``log_prob`` and ``dim``,
or a plain callable (with ``dim=``) into a :class:`Target`.
"""

from sciml.targets.base import (
    CallableTarget,
    DistributionTarget,
    DuckTarget,
    Target,
    as_target,
    check_target,
)
from sciml.targets.mixtures import GaussianMixture, gmm25, mog8, mog40

__all__ = [
    "Target",
    "CallableTarget",
    "DistributionTarget",
    "DuckTarget",
    "as_target",
    "check_target",
    "GaussianMixture",
    "mog8",
    "gmm25",
    "mog40",
]
