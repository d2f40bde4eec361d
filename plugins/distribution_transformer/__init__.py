"""Distribution transformers: amortised Gaussian-mixture posteriors for any prior given at query time."""

from .mixtures import Mixture
from .network import DTNetwork
from .plugin import DistributionTransformer
from .tasks import TASKS, GMMGaussian, NormalVariance, Task, gmm_gaussian_posterior

__all__ = ["DistributionTransformer", "DTNetwork", "Mixture", "Task", "GMMGaussian", "NormalVariance", "TASKS",
           "gmm_gaussian_posterior"]
