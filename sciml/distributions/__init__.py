"""Probability distributions built on sciml's numerical kernels."""

from __future__ import annotations

from .mixture import GaussianMixture, gaussian_log_prob
from .vmf import VonMisesFisher, fit_vmf, mean_resultant_length, vmf_kappa_mle

__all__ = ["GaussianMixture", "gaussian_log_prob", "VonMisesFisher", "fit_vmf", "vmf_kappa_mle", "mean_resultant_length"]
