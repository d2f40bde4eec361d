"""LightSB: light Schrödinger bridge / entropic OT solver with a Gaussian-mixture potential.

Load it through the registry (``sciml.load("solver", "lightsb")``) or import it directly::

    from sciml_plugins.lightsb import LightSB
    bridge = LightSB(eps=0.1).solve(x0, x1)   # the default rule chooses the model
    x1_new = bridge.sample(x0_new)

Also exported: the closed-form Gaussian EOT oracle (:func:`gaussian_eot`, :func:`gaussian_bridge`).
The EOT benchmark with its cB-W2^2-UVP metric lives in ``benchmarks/lightsb_eot.py``.
"""

from .bridge import Bridge
from .gaussian import GaussianEOT, gaussian_bridge, gaussian_eot
from .potential import GaussianMixturePotential
from .solver import LightSB, SampleSource

__all__ = [
    "LightSB",
    "Bridge",
    "GaussianMixturePotential",
    "SampleSource",
    "GaussianEOT",
    "gaussian_eot",
    "gaussian_bridge",
]
