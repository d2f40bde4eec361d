"""The distribution transformer network: prior components attend to each other and to the data.

Component tokens are the target sequence and observation tokens (plus one context token: the
data-set size) the memory of a pre-norm transformer decoder without positional encodings, so the
output is invariant to the order of the observations and equivariant in the order of the components.
The decoded features are the prior's plus a correction, and each component's mean is moved
further by a learned matrix times the prior mean (``(I + M) mu + delta``); the last linear layers
start at zero (as do each layer's self-attention output and second feed-forward linear), so an
untrained network returns its prior: the posterior is learned as an update of the prior. The
matrix term is what carries a prior far from the data: in the standardised coordinates (centred at
the data) a conjugate component's posterior mean is exactly ``A mu`` with ``A`` bounded and
independent of ``mu``, which an additive correction alone must extrapolate to large ``mu``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .mixtures import Mixture, feature_size

__all__ = ["DTNetwork"]


def _mlp(n_in: int, width: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, width), nn.GELU(), nn.Linear(width, n_out))


class DTNetwork(nn.Module):
    """``(prior features (B, K, F) | prior parameters (B, P), observations (B, n, F_obs), context
    (B, F_ctx))`` -> decoded :class:`Mixture` of ``K`` components in ``R^dim``.

    A parametric prior (``prior_params`` > 0) first passes through an embedding MLP that emits the
    features of ``components`` components (a learned mixture fit of that prior)."""

    def __init__(self, dim: int, obs_features: int, context_features: int, *, prior_params: int = 0,
                 components: int = 0, d_model: int = 64, heads: int = 8, layers: int = 6, ffn: int = 256) -> None:
        super().__init__()
        self.dim, self.prior_params, self.components = dim, prior_params, components
        f = feature_size(dim)
        self.prior_embedding = _mlp(prior_params, d_model, components * f) if prior_params else None
        self.embed_prior = nn.Linear(f, d_model)
        self.embed_obs = _mlp(obs_features, d_model, d_model)
        self.embed_context = _mlp(context_features, d_model, d_model)
        self.layers = nn.ModuleList(
            nn.TransformerDecoderLayer(d_model, heads, ffn, dropout=0.0, activation="gelu", batch_first=True,
                                       norm_first=True) for _ in range(layers))
        for layer in self.layers:
            for lin in (layer.self_attn.out_proj, layer.linear2):
                nn.init.zeros_(lin.weight)
                nn.init.zeros_(lin.bias)
        self.norm = nn.LayerNorm(d_model)
        self.unembed = nn.Linear(d_model, f)
        self.mean_map = nn.Linear(d_model, dim * dim)
        for lin in (self.unembed, self.mean_map):
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)

    def prior_features(self, prior: Tensor) -> Tensor:
        if self.prior_embedding is None:
            return prior
        return self.prior_embedding(prior).reshape(prior.shape[0], self.components, -1)

    def hidden(self, features: Tensor, obs: Tensor, context: Tensor) -> Tensor:
        """The normalised output ``(B, K, d_model)`` of the decoder for component features ``(B, K, F)``."""
        h = self.embed_prior(features)
        memory = torch.cat([self.embed_context(context)[:, None], self.embed_obs(obs)], dim=1)
        for layer in self.layers:
            h = layer(h, memory)
        return self.norm(h)

    def forward(self, prior: Tensor, obs: Tensor, context: Tensor) -> Mixture:
        features = self.prior_features(prior)
        h = self.hidden(features, obs, context)
        d = self.dim
        prior_means = features[..., 1: 1 + d]
        moved = (self.mean_map(h).unflatten(-1, (d, d)) @ prior_means[..., None])[..., 0]
        out = features + self.unembed(h)
        out = torch.cat([out[..., :1], out[..., 1: 1 + d] + moved, out[..., 1 + d:]], -1)
        return Mixture.from_features(out, d)
