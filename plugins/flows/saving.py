"""Save files for fitted flows: ``q.save(path)`` and ``FlowDistribution.load(path, target)``.

One file kind, ``"flows.FlowDistribution"`` (version 1, :mod:`sciml.io`), for every flow: the flow's
name, its architecture (``config``: plain ints and strings), its parameters (``state``: tensors) and
its scalar diagnostics. The target is code, not data, so it is not saved: ``load`` takes the target the
flow was fitted to (checked by dimension) and rebuilds the flow in the target's dtype and device.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import Tensor

from sciml.io import load_module_state, load_state, reading, save_state
from sciml.targets import as_target
from sciml.validation import check_positive_int, check_tensor

from .base import FlowDistribution, ModuleFlowDistribution
from .layered import LAYER_KINDS, LayeredFlow
from .mixflow import MixFlowDistribution
from .nsf import InvertedNSF

__all__ = ["save_flow", "load_flow"]

_KIND, _VERSION = "flows.FlowDistribution", 1
def _layered(config: dict[str, Any], dtype: torch.dtype, device: torch.device) -> LayeredFlow:
    dim = check_positive_int("config['dim']", config["dim"])
    names = config["layers"]
    if not isinstance(names, list) or any(n not in LAYER_KINDS for n in names):
        raise ValueError(f"config['layers'] must be a list of {sorted(LAYER_KINDS)}, got {names!r}")
    return LayeredFlow(dim, [LAYER_KINDS[n](dim, dtype=dtype) for n in names], dtype=dtype, device=device)


def _nsf(config: dict[str, Any], dtype: torch.dtype, device: torch.device) -> InvertedNSF:
    hidden = config["hidden"]
    if not isinstance(hidden, list) or not hidden:
        raise ValueError(f"config['hidden'] must be a non-empty list of ints, got {hidden!r}")
    with torch.random.fork_rng(devices=[]):  # zuko draws its initial weights; they are overwritten
        return InvertedNSF(check_positive_int("config['dim']", config["dim"]),
                           check_positive_int("config['transforms']", config["transforms"]),
                           check_positive_int("config['bins']", config["bins"]),
                           tuple(check_positive_int("config['hidden']", h) for h in hidden), dtype, device)


_MODULES = {"planar-flow": _layered, "radial-flow": _layered, "nsf-flow": _nsf}


def _payload(q: FlowDistribution) -> dict[str, Any]:
    if isinstance(q, MixFlowDistribution):
        config = {"dim": q.target.dim, "num_leapfrog": q.map.num_leapfrog, "num_maps": q.num_maps,
                  "num_momenta": q.num_momenta}
        state = {"loc": q.q0.loc.detach(), "log_scale": q.q0.log_scale.detach(), "eps": q.map.eps}
    elif isinstance(q, ModuleFlowDistribution) and isinstance(q.module, (LayeredFlow, InvertedNSF)):
        config, state = q.module.config(), dict(q.module.state_dict())
    else:
        raise TypeError(f"cannot save a {type(q).__name__} ({q.name}): only the sciml flows are saved")
    diag = {k: v for k, v in q.diagnostics.items() if isinstance(v, (int, float, str, bool))}
    return {"flow": q.name, "config": config, "state": {k: v.detach().cpu() for k, v in state.items()},
            "diagnostics": diag}


def save_flow(q: FlowDistribution, path: str | os.PathLike[str]) -> None:
    """Write ``q`` to ``path`` (kind ``"flows.FlowDistribution"``, version 1)."""
    save_state(path, _KIND, _VERSION, _payload(q))


def _check_state(state: Any) -> dict[str, Tensor]:
    if not isinstance(state, dict):
        raise TypeError("state must be a dict of tensors")
    return {k: check_tensor(f"state[{k!r}]", v, floating=False) for k, v in state.items()}


def load_flow(path: str | os.PathLike[str], target: Any, map_location: torch.device | str | None = None) -> FlowDistribution:
    """Read a flow written by :func:`save_flow`, for ``target`` (anything :func:`sciml.targets.as_target` accepts).

    Raises ``FileNotFoundError`` for a missing file and :class:`sciml.SaveFileError` (naming the file)
    for a foreign, damaged or newer file, an unknown flow, parameters that are not finite or do not fit
    the architecture, and a target of another dimension.
    """
    tgt = as_target(target)
    _, payload = load_state(path, _KIND, (_VERSION,), map_location)
    with reading(path):
        name, config, state = payload["flow"], payload["config"], _check_state(payload["state"])
        if not isinstance(config, dict):
            raise TypeError("config must be a dict")
        if config["dim"] != tgt.dim:
            raise ValueError(f"the flow was fitted in dimension {config['dim']}, the target given has dim {tgt.dim}")
        state = {k: v.to(dtype=tgt.dtype if v.is_floating_point() else v.dtype, device=tgt.device)
                 for k, v in state.items()}
        if name == "mixflow":
            q: FlowDistribution = _mixflow(config, state, tgt)
        elif name in _MODULES:
            q = ModuleFlowDistribution(load_module_state(_MODULES[name](config, tgt.dtype, tgt.device), state), tgt, name)
        else:
            raise ValueError(f"unknown flow {name!r}; this sciml reads {sorted([*_MODULES, 'mixflow'])}")
        diag = payload.get("diagnostics", {})
        q.diagnostics.update(diag if isinstance(diag, dict) else {})
    return q


def _mixflow(config: dict[str, Any], state: dict[str, Tensor], target: Any) -> MixFlowDistribution:
    dim = config["dim"]
    q0 = LayeredFlow(dim, [], dtype=target.dtype, device=target.device)
    load_module_state(q0, {"loc": state["loc"], "log_scale": state["log_scale"]})
    return MixFlowDistribution(target, q0, state["eps"], check_positive_int("config['num_leapfrog']", config["num_leapfrog"]),
                               check_positive_int("config['num_maps']", config["num_maps"]),
                               num_momenta=check_positive_int("config['num_momenta']", config["num_momenta"]))
