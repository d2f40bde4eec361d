"""Variational flows as sampler plugins that also expose the fitted density.

* ``planar-flow`` / ``radial-flow``: :class:`PlanarFlow`, :class:`RadialFlow` (Rezende and Mohamed
  2015), reverse-KL fits, ``log_prob`` anywhere through exact / numerical inverses;
* ``nsf-flow``: :class:`NSFFlow`, zuko's neural spline flow fitted the same way (the baseline);
* ``mixflow``: :class:`MixFlow`, the Hamiltonian MixFlow (Xu, Chen and Campbell 2023) on the
  augmented space ``(x, rho, u)``: exact draws, exact density, the unbiased orbit ELBO;

``Flow(...).fit(target, generator=g)`` returns a :class:`FlowDistribution` (a torch ``Distribution``
with ``sample``, ``log_prob`` and ``elbo``); ``Flow(...).sample(target, n)`` returns ``Samples``.
"""

from __future__ import annotations

from .base import FlowDistribution, FlowSampler
from .layered import PlanarFlow, RadialFlow
from .layers import InverseError, PlanarLayer, RadialLayer
from .mixflow import MixFlow, MixFlowDistribution
from .nsf import NSFFlow

__all__ = ["FlowDistribution", "FlowSampler", "PlanarFlow", "RadialFlow", "NSFFlow", "PlanarLayer", "RadialLayer",
           "InverseError", "MixFlow", "MixFlowDistribution"]
