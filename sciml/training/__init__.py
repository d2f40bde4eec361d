"""Training: ``fit`` for operators on a data set, ``fit_simulated`` for surrogates on fresh simulations.

``fit(model, train, test, epochs=...)`` -> :class:`TrainResult` whose ``.model`` maps raw inputs to
raw outputs at any resolution; ``relative_l2`` / ``relative_h1`` errors. ``fit_simulated(model, loss,
num_steps=..., batch_size=...)`` -> :class:`SimulationResult`. Both checkpoint with bit-for-bit resume
and run the same code under ``torchrun`` (DistributedDataParallel, gloo on CPU, nccl on CUDA).
"""

from .distributed import world
from .fit import DEFAULTS, TrainResult, count_parameters, evaluate, fit, load_checkpoint_model
from .losses import LOSSES, relative_h1, relative_l2
from .normalise import ChannelNormaliser, NormalisedOperator
from .schedules import SCHEDULES
from .simulated import SimulationResult, fit_simulated

__all__ = [
    "fit",
    "fit_simulated",
    "SimulationResult",
    "evaluate",
    "TrainResult",
    "DEFAULTS",
    "count_parameters",
    "load_checkpoint_model",
    "relative_l2",
    "relative_h1",
    "LOSSES",
    "SCHEDULES",
    "ChannelNormaliser",
    "NormalisedOperator",
    "world",
]
