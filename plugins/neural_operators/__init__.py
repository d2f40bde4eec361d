"""Neural operators (``Operator`` plugins): learned maps between fields on grids.

``FNO`` (``sciml.load("operator", "fno")``): the Fourier neural operator; ``MgNO`` (``"mgno"``): the
multigrid neural operator; ``LSM`` (``"lsm"``): the latent spectral model. Train any of them with
``sciml.training.fit`` on ``sciml.datasets`` data.
"""

from .fno import FNO
from .lsm import LSM, LatentSpectralBlock
from .mgno import MgNO, VCycle
from .spectral import Pointwise, SpectralConv, fast_fft_size

__all__ = ["FNO", "MgNO", "LSM", "VCycle", "LatentSpectralBlock", "SpectralConv", "Pointwise", "fast_fft_size"]
