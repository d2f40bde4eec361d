"""The fitted Schrödinger bridge returned by :class:`~sciml_plugins.lightsb.LightSB`."""

from __future__ import annotations

import math
import os
from typing import Any

import torch
from torch import Tensor

from sciml import Solution
from sciml.io import load_module_state, load_state, reading, save_state
from sciml.validation import (
    check_bool,
    check_device,
    check_dtype,
    check_generator,
    check_positive,
    check_positive_int,
    check_tensor,
)

from .potential import GaussianMixturePotential

__all__ = ["Bridge"]

#: Save-file kind and versions (:mod:`sciml.io`). Version 2: the Cholesky parametrisation of
#: :class:`GaussianMixturePotential`; version 1 (read only): full covariances stored as
#: ``S_k = U_k diag(exp s_k) U_k^T`` with ``U_k = base_k cayley(skew_k)``.
_KIND, _VERSION, _READ_VERSIONS = "lightsb.Bridge", 2, (1, 2)
_CONFIG_KEYS = ("dim", "n_components", "eps", "covariance")
_PAYLOAD_KEYS = {"config", "state_dict", "loss_history", "diagnostics"}


class Bridge(Solution):
    """Entropic OT plan / Schrödinger bridge with a Gaussian-mixture adjusted potential.

    Conventions: reference process ``dX_t = sqrt(eps) dW_t``, time runs from ``t = 0`` (source
    ``p0``, the ``x0`` side) to ``t = 1`` (target ``p1``, the ``x1`` side); the plan is
    ``pi(x1 | x0) ∝ exp(-|x0 - x1|^2 / (2 eps)) phi(x1)``.

    Calling the bridge, ``bridge(x0)``, gives the conditional mean ``E[x1 | x0]``; :meth:`sample` draws. All methods take
    batches of shape ``(n, D)``; inputs are moved to the bridge's device and dtype and results are
    returned in the dtype and on the device of the input.

    Args:
        potential: a :class:`GaussianMixturePotential` with finite parameters (frozen here).
        loss_history: training loss per step (a list of numbers) or ``None``.
        diagnostics: training figures (a dict) or ``None``.

    Attributes:
        potential: the fitted :class:`GaussianMixturePotential` (parameters frozen).
        eps: reference-process variance.
        loss_history: training loss after each step.
        diagnostics: training figures (steps run, best held-out loss, wall time, ...).
    """

    def __init__(
        self,
        potential: GaussianMixturePotential,
        loss_history: list[float] | None = None,
        diagnostics: dict[str, Any] | None = None,
    ) -> None:
        if not isinstance(potential, GaussianMixturePotential):
            raise TypeError(f"potential must be a GaussianMixturePotential, got {type(potential).__name__}")
        for name, p in potential.named_parameters():
            check_tensor(f"potential.{name}", p)
        if loss_history is not None and not (isinstance(loss_history, (list, tuple)) and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in loss_history)):
            raise TypeError(f"loss_history must be None or a list of numbers, got {type(loss_history).__name__}")
        if diagnostics is not None and not isinstance(diagnostics, dict):
            raise TypeError(f"diagnostics must be None or a dict, got {type(diagnostics).__name__}")
        super().__init__(loss_history, diagnostics)
        self.potential = potential
        for p in potential.parameters():
            p.requires_grad_(False)
        potential.eval()

    # ------------------------------------------------------------------ properties
    @property
    def eps(self) -> float:
        """Variance of the reference Wiener process."""
        return self.potential.eps

    @property
    def dim(self) -> int:
        """Dimension D of the samples."""
        return self.potential.dim

    @property
    def n_components(self) -> int:
        """Number of mixture components K of the potential."""
        return self.potential.n_components

    @property
    def covariance(self) -> str:
        """``"diag"`` or ``"full"``."""
        return self.potential.covariance

    def _param(self) -> Tensor:
        return self.potential.means

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Bridge:
        """Move the potential to ``device`` / ``dtype`` (a floating dtype; in place) and return ``self``.

        A device this machine lacks raises :class:`sciml.DeviceUnavailableError` up front.
        """
        device = check_device("device", device)
        check_dtype("dtype", dtype, allow_none=True)
        self.potential.to(device=device, dtype=dtype)
        return self

    def _points(self, name: str, x: Any) -> Tensor:
        check_tensor(name, x, ndim=2)
        if x.shape[1] != self.dim:
            raise ValueError(f"{name} must have shape (n, {self.dim}), got {tuple(x.shape)}")
        ref = self._param()
        return x.to(device=ref.device, dtype=ref.dtype)

    def _times(self, t: Any, n: int, *, allow_one: bool) -> Tensor:
        ref = self._param()
        if isinstance(t, Tensor):
            tt = t.to(device=ref.device, dtype=ref.dtype)
            if tt.ndim == 0:
                tt = tt.expand(n)
            elif tt.shape != (n,):
                raise ValueError(f"t must be a scalar or have shape ({n},), got {tuple(t.shape)}")
        elif isinstance(t, (int, float)) and not isinstance(t, bool):
            tt = torch.full((n,), float(t), device=ref.device, dtype=ref.dtype)
        else:
            raise TypeError(f"t must be a float or a tensor, got {type(t).__name__}")
        hi_ok = (tt <= 1) if allow_one else (tt < 1)
        if not bool(torch.isfinite(tt).all()) or not bool(((tt >= 0) & hi_ok).all()):
            raise ValueError(f"t must lie in [0, 1{']' if allow_one else ')'}, got values outside")
        return tt

    # ------------------------------------------------------------------ the plan
    def sample(self, x0: Tensor, *, generator: torch.Generator | None = None, chunk_size: int = 4096) -> Tensor:
        """Draw one ``x1 ~ pi(. | x0)`` per row of ``x0``.

        Args:
            x0: source points, shape (n, D).
            generator: source of randomness.
            chunk_size: rows processed at once (bounds memory for full covariances).
        Returns:
            shape (n, D).
        """
        x = self._points("x0", x0)
        check_generator("generator", generator)
        check_positive_int("chunk_size", chunk_size)
        with torch.no_grad():
            out = self._sample(x, generator, chunk_size)
        return out.to(device=x0.device, dtype=x0.dtype)

    def _sample(self, x: Tensor, generator: torch.Generator | None, chunk_size: int) -> Tensor:
        if x.shape[0] == 0:
            return x.clone()
        if self.covariance == "full":  # a (chunk, D, D) gather of Cholesky factors per chunk
            chunk_size = min(chunk_size, max(16, 2**22 // (self.dim * self.dim)))
        return torch.cat([self.potential.sample_conditional(c, generator=generator) for c in x.split(chunk_size)])

    def __call__(self, x0: Tensor, *, chunk_size: int = 4096) -> Tensor:  # type: ignore[override]
        """The conditional mean ``E[x1 | x0] = sum_k w_k(x0) (r_k + S_k x0)``, (n, D) -> (n, D), deterministic.

        Draws are :meth:`sample`. ``chunk_size`` rows are processed at once.
        """
        x = self._points("x0", x0)
        check_positive_int("chunk_size", chunk_size)
        chunk_size = min(chunk_size, max(16, 2**22 // (self.n_components * self.dim)))  # (chunk, K, D) terms
        pot = self.potential
        with torch.no_grad():
            L = pot.cholesky_factors()
            parts = [torch.einsum("nk,nkd->nd", torch.softmax(pot.conditional_logits(c, L), dim=-1),
                                  pot.component_means(c, L)) for c in x.split(chunk_size)]
        out = torch.cat(parts) if parts else x.clone()
        return out.to(device=x0.device, dtype=x0.dtype)

    def log_prob(self, x1: Tensor, x0: Tensor) -> Tensor:
        """Conditional log-density ``log pi(x1 | x0)``, shapes (n, D), (n, D) -> (n,)."""
        a, b = self._points("x1", x1), self._points("x0", x0)
        if a.shape[0] != b.shape[0]:
            raise ValueError(f"x1 and x0 must have the same number of rows, got {a.shape[0]} and {b.shape[0]}")
        return self.potential.conditional_log_prob(a, b).to(device=x1.device, dtype=x1.dtype)

    def conditional_moments(self, x0: Tensor) -> tuple[Tensor, Tensor]:
        """Exact mean (n, D) and covariance (n, D, D) of ``pi(. | x0)``."""
        x = self._points("x0", x0)
        with torch.no_grad():
            mean, cov = self.potential.conditional_moments(x)
        return mean.to(device=x0.device, dtype=x0.dtype), cov.to(device=x0.device, dtype=x0.dtype)

    def log_potential(self, y: Tensor) -> Tensor:
        """Log adjusted potential ``log v(y) = log sum_k alpha_k N(y | r_k, eps S_k)``, (n, D) -> (n,).

        The Schrödinger potential of the target side is ``log phi(y) = log v(y) + |y|^2 / (2 eps)``
        (both up to an additive constant).
        """
        x = self._points("y", y)
        return self.potential.log_potential(x).to(device=y.device, dtype=y.dtype)

    # ------------------------------------------------------------------ the process
    def sample_at(self, t: float | Tensor, x0: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """Sample ``x_t`` given ``x_0 = x0`` exactly: ``x1 ~ pi(. | x0)``, then the Brownian bridge
        ``x_t = t x1 + (1 - t) x0 + sqrt(eps t (1 - t)) xi``, ``xi ~ N(0, I)``.

        Args:
            t: time in [0, 1], a float or a tensor of shape (n,).
            x0: source points, shape (n, D).
            generator: source of randomness.
        Returns:
            shape (n, D).
        """
        x = self._points("x0", x0)
        tt = self._times(t, x.shape[0], allow_one=True)[:, None]
        check_generator("generator", generator)
        with torch.no_grad():
            x1 = self._sample(x, generator, 4096)
            xi = torch.randn(x.shape, dtype=x.dtype, device=x.device, generator=generator)
            xt = tt * x1 + (1 - tt) * x + torch.sqrt(self.eps * tt * (1 - tt)) * xi
        return xt.to(device=x0.device, dtype=x0.dtype)

    def drift(self, x: Tensor, t: float | Tensor) -> Tensor:
        """SB drift ``g(x, t) = eps grad_x log h(x, t) = (E[x1 | x_t = x] - x) / (1 - t)``, t in [0, 1).

        Args:
            x: states, shape (n, D).
            t: time, a float or a tensor of shape (n,); singular at ``t = 1``.
        Returns:
            shape (n, D).
        """
        xx = self._points("x", x)
        tt = self._times(t, xx.shape[0], allow_one=False)
        return self.potential.drift(xx, tt).to(device=x.device, dtype=x.dtype)

    def trajectory(
        self,
        x0: Tensor,
        num_steps: int = 100,
        *,
        generator: torch.Generator | None = None,
        return_times: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Simulate ``dX = g(X, t) dt + sqrt(eps) dW`` from ``t = 0`` to ``1`` by Euler-Maruyama.

        The drift is evaluated at the left end of each of ``num_steps`` equal steps, so it is never
        evaluated at the singular time ``t = 1``.

        Args:
            x0: starting points, shape (n, D).
            num_steps: number of steps.
            generator: source of randomness.
            return_times: also return the time grid, shape (num_steps + 1,).
        Returns:
            states at the grid times, shape (num_steps + 1, n, D) (and the times).
        """
        x = self._points("x0", x0)
        num_steps = check_positive_int("num_steps", num_steps)
        check_generator("generator", generator)
        check_bool("return_times", return_times)
        times = torch.linspace(0.0, 1.0, num_steps + 1, dtype=x.dtype, device=x.device)
        dt = 1.0 / num_steps
        path = [x]
        with torch.no_grad():
            for i in range(num_steps):
                t = times[i].expand(x.shape[0])
                xi = torch.randn(x.shape, dtype=x.dtype, device=x.device, generator=generator)
                x = x + self.potential.drift(x, t) * dt + math.sqrt(self.eps * dt) * xi
                path.append(x)
        out = torch.stack(path).to(device=x0.device, dtype=x0.dtype)
        return (out, times.to(device=x0.device, dtype=x0.dtype)) if return_times else out

    # ------------------------------------------------------------------ persistence
    def config(self) -> dict[str, Any]:
        """The constructor arguments of the potential."""
        p = self.potential
        return {"dim": p.dim, "n_components": p.n_components, "eps": p.eps, "covariance": p.covariance}

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the bridge with :func:`sciml.io.save_state` (kind ``"lightsb.Bridge"``, version 2).

        The file holds the config, the state dict, the loss history and the scalar diagnostics
        (list-valued ones such as ``val_history`` are not saved). The content is checked as
        :meth:`load` checks it, so a bridge that could not be read back raises ``ValueError`` here.
        """
        diag = {k: v for k, v in self.diagnostics.items() if isinstance(v, (int, float, str, bool))}
        payload = {"config": self.config(), "state_dict": dict(self.potential.state_dict()),
                   "loss_history": [float(v) for v in self.loss_history], "diagnostics": diag}
        _check_payload(_VERSION, payload)
        save_state(path, _KIND, _VERSION, payload)

    @classmethod
    def load(cls, path: str | os.PathLike[str], map_location: torch.device | str | None = None) -> Bridge:
        """Read a bridge written by :meth:`save` (format versions 1 and 2).

        Raises:
            FileNotFoundError: ``path`` does not exist.
            sciml.SaveFileError: naming the file, for an empty, truncated or foreign file, another
                kind or a newer version (see :func:`sciml.io.load_state`), and for content that
                fails the checks: config entries (``dim``, ``n_components`` positive ints, finite
                ``eps > 0``, ``covariance`` ``"diag"`` or ``"full"``), state tensors finite with the
                shapes the config implies and positive definite covariances, a finite loss history.
            sciml.DeviceUnavailableError: ``map_location`` names a device this machine lacks.
        """
        check_device("map_location", map_location)
        version, payload = load_state(path, _KIND, _READ_VERSIONS, map_location)
        with reading(path):
            config = _check_payload(version, payload)
            state = dict(payload["state_dict"])
            pot = GaussianMixturePotential(**config, dtype=state["means"].dtype, device=state["means"].device)
            if version == 1 and config["covariance"] == "full":
                _load_cayley_state(pot, state)
            else:
                load_module_state(pot, state)
            return cls(pot, payload.get("loss_history"), payload.get("diagnostics"))


def _check_config(config: object) -> dict[str, Any]:
    """The potential's constructor arguments from a save file's ``config`` entry, checked."""
    if not isinstance(config, dict):
        raise TypeError(f"config must be a dict, got {type(config).__name__}")
    if set(config) != set(_CONFIG_KEYS):
        raise ValueError(f"config must have exactly the entries {list(_CONFIG_KEYS)}, got {sorted(map(str, config))}")
    if config["covariance"] not in ("diag", "full"):
        raise ValueError(f"config covariance must be 'diag' or 'full', got {config['covariance']!r}")
    return {"dim": check_positive_int("config dim", config["dim"]),
            "n_components": check_positive_int("config n_components", config["n_components"]),
            "eps": check_positive("config eps", config["eps"]), "covariance": config["covariance"]}


def _state_shapes(config: dict[str, Any], version: int) -> dict[str, tuple[int, ...]]:
    """Shape of every state tensor the config implies."""
    K, D = config["n_components"], config["dim"]
    shapes = {"raw_log_alpha": (K,), "means": (K, D), "log_scales": (K, D)}
    if config["covariance"] == "full":
        shapes.update({"chol_lower": (K, D, D)} if version == 2 else {"skew": (K, D, D), "base_rotation": (K, D, D)})
    return shapes


def _check_payload(version: int, payload: dict[str, Any]) -> dict[str, Any]:
    """Check a save payload; return the checked config. ``ValueError`` / ``TypeError`` / ``KeyError``."""
    extra = set(payload) - _PAYLOAD_KEYS
    if extra:
        raise ValueError(f"unexpected entries {sorted(extra)}")
    config = _check_config(payload["config"])
    state = payload["state_dict"]
    if not isinstance(state, dict):
        raise TypeError(f"state_dict must be a dict, got {type(state).__name__}")
    shapes = _state_shapes(config, version)
    if set(state) != set(shapes):
        missing, unexpected = sorted(set(shapes) - set(state)), sorted(set(state) - set(shapes))
        raise ValueError(f"state_dict must hold {sorted(shapes)}: missing {missing}, unexpected {unexpected}")
    for name, shape in shapes.items():
        check_tensor(f"state_dict[{name!r}]", state[name], shape=shape)
    # S_k = L_k L_k^T with diag(L_k) = exp(s_k / 2): positive definite exactly when that is finite and > 0
    root = torch.exp(0.5 * state["log_scales"])
    if not bool((torch.isfinite(root) & (root > 0)).all()):
        raise ValueError(f"state_dict['log_scales'] gives covariances that are not positive definite in "
                         f"{root.dtype} (exp(s_k / 2) overflows or underflows)")
    history = payload.get("loss_history", [])
    if not isinstance(history, list) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in history):
        raise ValueError("loss_history must be a list of finite numbers")
    diagnostics = payload.get("diagnostics", {})
    if not isinstance(diagnostics, dict) or not all(
            isinstance(k, str) and isinstance(v, (int, float, str, bool)) for k, v in diagnostics.items()):
        raise ValueError("diagnostics must be a dict of str keys and scalar values")
    return config


def _load_cayley_state(pot: GaussianMixturePotential, state: dict[str, Tensor]) -> None:
    """Version 1 full covariances: ``S_k = U_k diag(exp s_k) U_k^T``, ``U_k = base_k (I - B_k)^{-1} (I + B_k)``."""
    skew, base = state["skew"].to(torch.float64), state["base_rotation"].to(torch.float64)
    upper = torch.triu(skew, diagonal=1)
    b = upper - upper.transpose(-1, -2)
    eye = torch.eye(b.shape[-1], dtype=torch.float64, device=b.device)
    U = base @ torch.linalg.solve(eye - b, eye + b)
    S = (U * state["log_scales"].to(torch.float64).exp()[:, None, :]) @ U.transpose(-1, -2)
    with torch.no_grad():
        pot.raw_log_alpha.copy_(state["raw_log_alpha"])
        pot.means.copy_(state["means"])
    pot.set_covariances(S)
