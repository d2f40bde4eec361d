"""Training-free diffusion samplers (MultALMC, MultCDiff) and classical baselines.

Sampler plugins (``sciml.load("sampler", NAME)``):

* ``mult-almc``: :class:`MultALMC`, multiscale annealed Langevin Monte Carlo;
* ``mult-cdiff``: :class:`MultCDiff`, multiscale controlled reverse-OU diffusion;
* ``ula`` / ``ulmc``: :class:`ULA`, :class:`ULMC`, unadjusted over- / underdamped Langevin;
* ``ais``: :class:`AIS`, annealed importance sampling (log-weights and log Z);
* ``smc``: :class:`SMC`, sequential Monte Carlo sampler with ESS-triggered resampling (log Z).

Every sampler runs many chains vectorised on the target's device and dtype, counts target
energy and gradient evaluations per point, reports diverged chains and is seeded by a
``torch.Generator``. A target that raises during a run is re-raised as :class:`sciml.targets.TargetError`.
"""

from __future__ import annotations

from .ais import AIS
from .integrators import ou_exponential_step, skrock_stability_length, skrock_step
from .langevin import ULA, ULMC
from .multalmc import MultALMC
from .multcdiff import MultCDiff
from .schedules import SCHEDULES, annealing_schedule
from .smc import SMC

__all__ = [
    "MultALMC",
    "MultCDiff",
    "ULA",
    "ULMC",
    "AIS",
    "SMC",
    "SCHEDULES",
    "annealing_schedule",
    "skrock_step",
    "skrock_stability_length",
    "ou_exponential_step",
]
