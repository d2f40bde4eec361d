"""Target densities for samplers: the :class:`Target` type, adapters and benchmark targets.

``as_target`` turns a torch / pyro distribution, a duck-typed object with ``log_prob`` and ``dim``,
or a plain callable (with ``dim=``) into a :class:`Target`; ``from_pyro_model`` wraps a pyro model's
posterior on its unconstrained space.
"""

from sciml.targets.base import (
    CallableTarget,
    DistributionTarget,
    DuckTarget,
    Target,
    TargetError,
    as_target,
    check_target,
)
from sciml.targets.counted import CountedTarget
from sciml.targets.energies import (
    Banana,
    MixFlowsFunnel,
    RezendeEnergy,
    banana,
    cross,
    energy,
    mixflows_funnel,
)
from sciml.targets.logistic import LogisticRegression, logistic_regression
from sciml.targets.mixtures import GaussianMixture, Rings, StudentTMixture, gmm25, mog8, mog40, mos10, rings
from sciml.targets.pyro_model import PyroModelTarget, from_pyro_model
from sciml.targets.wells import (
    DoubleWell,
    Funnel,
    ManyWell,
    RejectionSampler1D,
    double_well,
    dw5,
    dw10,
    dw50,
    funnel,
    many_well32,
)

__all__ = [
    "Target",
    "TargetError",
    "CountedTarget",
    "CallableTarget",
    "DistributionTarget",
    "DuckTarget",
    "as_target",
    "check_target",
    "GaussianMixture",
    "StudentTMixture",
    "Rings",
    "DoubleWell",
    "ManyWell",
    "Funnel",
    "RejectionSampler1D",
    "LogisticRegression",
    "RezendeEnergy",
    "Banana",
    "MixFlowsFunnel",
    "PyroModelTarget",
    "from_pyro_model",
    "mog8",
    "mog40",
    "gmm25",
    "mos10",
    "rings",
    "funnel",
    "double_well",
    "dw5",
    "dw10",
    "dw50",
    "many_well32",
    "logistic_regression",
    "energy",
    "banana",
    "cross",
    "mixflows_funnel",
]
