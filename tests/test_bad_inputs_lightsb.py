"""Bad inputs to every public entry point of the LightSB plugin.

Each case ends either in a clear error (the expected class, with a message that names the argument
or the file and says what is wrong) or in the correct result, checked against ground truth.
``CASES`` is also read by a classification script, so every case is a plain function of a
temporary directory.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from sciml_plugins.lightsb import (
    Bridge,
    GaussianMixturePotential,
    LightSB,
    gaussian_bridge,
    gaussian_eot,
)

import sciml
from sciml.distributions import GaussianMixture
from sciml.io import save_state

F64 = torch.float64
NAN = float("nan")
INF = float("inf")


@dataclass(frozen=True)
class Case:
    """One bad input: ``run(tmp)`` must raise ``error`` matching ``match``, or pass ``check``."""

    id: str
    run: Callable[[Path], Any]
    error: type[BaseException] | tuple[type[BaseException], ...] | None = None
    match: str = ""
    check: Callable[[Any], None] | None = None


def err(id: str, run: Callable[[Path], Any], error: type[BaseException], match: str) -> Case:
    return Case(id, run, error=error, match=match)


def ok(id: str, run: Callable[[Path], Any], check: Callable[[Any], None]) -> Case:
    return Case(id, run, check=check)


# ---------------------------------------------------------------------------------- fixtures
def _data(n: int = 60, d: int = 2, seed: int = 0, dtype: torch.dtype = F64) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(n, d, generator=g, dtype=dtype)
    x1 = 2.0 + 0.5 * torch.randn(n, d, generator=g, dtype=dtype)
    return x0, x1


X0, X1 = _data()


def _solver(**kw: Any) -> LightSB:
    base: dict[str, Any] = {"eps": 1.0, "n_components": 3, "num_steps": 2, "progress": False}
    return LightSB(**{**base, **kw})


def _solve(x0: Any, x1: Any = None, **kw: Any) -> Bridge:
    gen = kw.pop("generator", torch.Generator().manual_seed(0))
    init_potential = kw.pop("init_potential", None)
    return _solver(**kw).solve(x0, x1, generator=gen, init_potential=init_potential)


def _potential(covariance: str = "diag", d: int = 2, k: int = 3, eps: float = 0.5) -> GaussianMixturePotential:
    g = torch.Generator().manual_seed(1)
    pot = GaussianMixturePotential(d, k, eps, covariance, init_means=torch.randn(k, d, generator=g, dtype=F64),
                                   dtype=F64)
    a = torch.randn(k, d, d, generator=g, dtype=F64) / math.sqrt(d)
    pot.set_covariances(a @ a.transpose(-1, -2) + 0.3 * torch.eye(d, dtype=F64))
    with torch.no_grad():
        pot.raw_log_alpha.copy_(eps * torch.randn(k, generator=g, dtype=F64))
    return pot


def _bridge(covariance: str = "diag") -> Bridge:
    return Bridge(_potential(covariance), [1.5, 1.25, 1.0], {"num_steps": 3, "objective": "lightsb", "wall_time_s": 0.0})


def _nan_potential() -> GaussianMixturePotential:
    pot = _potential()
    with torch.no_grad():
        pot.means[0, 0] = NAN
    return pot


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------------------- save files
def _good_payload() -> dict[str, Any]:
    b = _bridge("full")
    return {"config": b.config(), "state_dict": dict(b.potential.state_dict()),
            "loss_history": list(b.loss_history), "diagnostics": dict(b.diagnostics)}


def _write(tmp: Path, name: str, edit: Callable[[dict[str, Any]], None] | None = None, version: int = 2) -> Path:
    payload = _good_payload()
    if edit is not None:
        edit(payload)
    path = tmp / name
    save_state(path, "lightsb.Bridge", version, payload)
    return path


def _load_edited(name: str, edit: Callable[[dict[str, Any]], None], version: int = 2) -> Callable[[Path], Bridge]:
    return lambda tmp: Bridge.load(_write(tmp, name, edit, version))


def _set_state(key: str, value: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[dict[str, Any]], None]:
    def edit(p: dict[str, Any]) -> None:
        p["state_dict"][key] = value(p["state_dict"][key])
    return edit


def _set_config(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(p: dict[str, Any]) -> None:
        p["config"][key] = value
    return edit


def _with_nan(t: torch.Tensor) -> torch.Tensor:
    t = t.clone()
    t.view(-1)[0] = NAN
    return t


def _truncated(tmp: Path) -> Bridge:
    good = _write(tmp, "good.pt").read_bytes()
    path = tmp / "truncated.pt"
    path.write_bytes(good[: len(good) // 2])
    return Bridge.load(path)


def _empty(tmp: Path) -> Bridge:
    path = tmp / "empty.pt"
    path.write_bytes(b"")
    return Bridge.load(path)


def _random_bytes(tmp: Path) -> Bridge:
    path = tmp / "random.pt"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    return Bridge.load(path)


def _foreign(tmp: Path) -> Bridge:
    path = tmp / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, path)
    return Bridge.load(path)


def _wrong_kind(tmp: Path) -> Bridge:
    path = tmp / "wrong_kind.pt"
    save_state(path, "gp_pde.GPPDESolution", 1, {"weights": torch.zeros(3)})
    return Bridge.load(path)


def _round_trip(tmp: Path) -> tuple[Bridge, Bridge]:
    b = _bridge("full")
    b.save(tmp / "round.pt")
    return b, Bridge.load(tmp / "round.pt")


def _check_round_trip(pair: tuple[Bridge, Bridge]) -> None:
    a, b = pair
    assert a.config() == b.config()
    assert a.loss_history == b.loss_history and a.diagnostics == b.diagnostics
    sa, sb = a.potential.state_dict(), b.potential.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _raises_device(tmp: Path) -> Any:
    return Bridge.load(_write(tmp, "dev.pt"), map_location="cuda")


# ---------------------------------------------------------------------------------- checks of results
def _shape(*shape: int) -> Callable[[Any], None]:
    def check(x: Any) -> None:
        assert tuple(x.shape) == shape, tuple(x.shape)
    return check


def _dirac_source(tmp: Path) -> tuple[Bridge, torch.Tensor]:
    # p0 a single point c: the EOT plan is pi(. | c) = p1, and the K = 1 full-covariance LightSB
    # objective is then the Gaussian log-likelihood of x1, maximised at the sample moments of x1
    c = torch.tensor([[0.3, -0.2]], dtype=F64)
    bridge = _solve(c, X1, n_components=1, covariance="full", optimizer="lbfgs", lr=1.0, num_steps=100,
                    val_fraction=0.0)
    return bridge, c


def _check_dirac(res: tuple[Bridge, torch.Tensor]) -> None:
    bridge, c = res
    mean, cov = bridge.conditional_moments(c)
    want_cov = torch.cov(X1.T, correction=0)
    # L-BFGS stops at round-off of the loss (~1e-16 relative): the parameters are then accurate to
    # about sqrt(1e-16) relative to their scale
    tol = 1e-6 * float(want_cov.norm())
    torch.testing.assert_close(mean[0], X1.mean(0), rtol=0.0, atol=tol)
    torch.testing.assert_close(cov[0], want_cov, rtol=0.0, atol=tol)


def _grad_input(tmp: Path) -> tuple[torch.Tensor, Bridge, Bridge]:
    x0 = X0.clone().requires_grad_(True)
    return x0, _solve(x0, X1), _solve(X0, X1)


def _check_grad_input(res: tuple[torch.Tensor, Bridge, Bridge]) -> None:
    x0, a, b = res
    assert x0.grad is None  # training never back-propagates into the caller's tensor
    assert a.loss_history == b.loss_history


def _progress_none(tmp: Path) -> tuple[Bridge, Bridge]:
    return _solve(X0, X1, progress=None), _solve(X0, X1, progress=False)


def _same_history(pair: tuple[Bridge, Bridge]) -> None:
    assert pair[0].loss_history == pair[1].loss_history


def _sample_at_0(tmp: Path) -> tuple[torch.Tensor, torch.Tensor]:
    return _bridge().sample_at(0.0, X0[:5], generator=_gen(0)), X0[:5]


def _sample_at_1(tmp: Path) -> tuple[torch.Tensor, torch.Tensor]:
    b = _bridge("full")
    return b.sample_at(1.0, X0[:5], generator=_gen(3)), b.sample(X0[:5], generator=_gen(3))


def _equal(pair: tuple[torch.Tensor, torch.Tensor]) -> None:
    assert torch.equal(pair[0], pair[1])


def _float32_input(tmp: Path) -> tuple[torch.Tensor, torch.Tensor]:
    b = _bridge("full")
    a, c = X1[:5].float(), X0[:5].float()
    return b.log_prob(a, c), b.log_prob(a.double(), c.double()).float()


def _k_equals_n(tmp: Path) -> Bridge:
    return _solve(X0[:10], X1[:10], n_components=10, val_fraction=0.0)


def _check_k_equals_n(b: Bridge) -> None:
    assert b.n_components == 10 and len(b.loss_history) == 2
    assert all(math.isfinite(v) for v in b.loss_history)


def _moments_empty(tmp: Path) -> tuple[torch.Tensor, torch.Tensor]:
    return _bridge("full").conditional_moments(X0[:0])


def _check_moments_empty(res: tuple[torch.Tensor, torch.Tensor]) -> None:
    assert res[0].shape == (0, 2) and res[1].shape == (0, 2, 2)


def _mixture() -> GaussianMixture:
    return GaussianMixture(torch.tensor([0.3, 0.7], dtype=F64), torch.tensor([[0.0, 0.0], [2.0, 1.0]], dtype=F64),
                           torch.eye(2, dtype=F64).expand(2, 2, 2))


def _mixture_sample_empty(tmp: Path) -> torch.Tensor:
    return _mixture().sample(0)


# ---------------------------------------------------------------------------------- samplers
def _sampler_target_no_holdout(tmp: Path) -> Bridge:
    # x0 a tensor with nothing held out, x1 a sampler: no held-out loss (it needs both sides), no crash
    return _solve(X0, lambda n, g: 2.0 + torch.randn(n, 2, generator=g, dtype=F64), val_fraction=0.0, num_steps=5)


def _check_no_holdout(b: Bridge) -> None:
    assert b.diagnostics["num_steps"] == 5 and b.diagnostics["val_history"] == []
    assert math.isnan(b.diagnostics["best_val_loss"]) and math.isfinite(b.diagnostics["final_loss"])


def _sampler_one_arg(tmp: Path) -> Bridge:
    return _solve(lambda n: torch.randn(n, 2, dtype=F64), X1)  # type: ignore[arg-type, misc]


def _sampler_list(tmp: Path) -> Bridge:
    return _solve(lambda n, g: [[0.0, 1.0]] * n, X1)


def _sampler_nan(tmp: Path) -> Bridge:
    return _solve(lambda n, g: torch.full((n, 2), NAN, dtype=F64), X1)


def _sampler_shape(tmp: Path) -> Bridge:
    return _solve(X0, lambda n, g: torch.randn(n, 3, dtype=F64, generator=g))


CONST_X0 = X0[:1].expand(60, 2).clone()
CONST_X1 = X1[:1].expand(60, 2).clone()
INT_X0 = torch.zeros(60, 2, dtype=torch.int64)
HALF = (X0.half(), X1.half())

#: sciml.io.save_state (not this plugin's) passes the path to torch.save unchecked: a directory or a
#: missing parent folder end in torch's RuntimeError

# ---------------------------------------------------------------------------------- the matrix
CASES: list[Case] = [
    # LightSB(...) constructor
    *[err(f"LightSB-eps={v!r}", lambda t, v=v: LightSB(eps=v), ValueError if not isinstance(v, str) else TypeError,
          "eps") for v in (0.0, -1.0, NAN, INF, "1")],
    err("LightSB-eps=None", lambda t: LightSB(eps=None), TypeError, "eps"),  # type: ignore[arg-type]
    *[err(f"LightSB-n_components={v!r}", lambda t, v=v: LightSB(n_components=v), ValueError if v == 0 else TypeError,
          "n_components") for v in (0, 1.5, True)],
    err("LightSB-covariance", lambda t: LightSB(covariance="dense"), ValueError, "covariance"),
    err("LightSB-objective", lambda t: LightSB(objective="kl"), ValueError, "objective"),
    err("LightSB-lr_schedule", lambda t: LightSB(lr_schedule="step"), ValueError, "lr_schedule"),
    err("LightSB-optimizer", lambda t: LightSB(optimizer="sgd"), ValueError, "optimizer"),
    err("LightSB-init", lambda t: LightSB(init="random"), ValueError, "init"),
    err("LightSB-num_steps=0", lambda t: LightSB(num_steps=0), ValueError, "num_steps"),
    err("LightSB-num_steps=2.0", lambda t: LightSB(num_steps=2.0), TypeError, "num_steps"),  # type: ignore[arg-type]
    err("LightSB-batch_size=0", lambda t: LightSB(batch_size=0), ValueError, "batch_size"),
    err("LightSB-lr=0", lambda t: LightSB(lr=0.0), ValueError, "lr"),
    err("LightSB-lr=nan", lambda t: LightSB(lr=NAN), ValueError, "lr"),
    err("LightSB-chol_lr_scale=0", lambda t: LightSB(chol_lr_scale=0.0), ValueError, "chol_lr_scale"),
    err("LightSB-init_scale=0", lambda t: LightSB(init_scale=0.0), ValueError, "init_scale"),
    err("LightSB-init_scale=inf", lambda t: LightSB(init_scale=INF), ValueError, "init_scale"),
    err("LightSB-init_spread=-1", lambda t: LightSB(init_spread=-1.0), ValueError, "init_spread"),
    err("LightSB-cluster_subsample=0", lambda t: LightSB(cluster_subsample=0), ValueError, "cluster_subsample"),
    *[err(f"LightSB-val_fraction={v!r}", lambda t, v=v: LightSB(val_fraction=v), ValueError, "val_fraction")
      for v in (-0.1, 1.0, NAN)],
    err("LightSB-val_size=0", lambda t: LightSB(val_size=0), ValueError, "val_size"),
    err("LightSB-eval_every=0", lambda t: LightSB(eval_every=0), ValueError, "eval_every"),
    err("LightSB-patience=0", lambda t: LightSB(patience=0), ValueError, "patience"),
    err("LightSB-patience=1.5", lambda t: LightSB(patience=1.5), TypeError, "patience"),  # type: ignore[arg-type]
    err("LightSB-t_gap=0", lambda t: LightSB(t_gap=0.0), ValueError, "t_gap"),
    err("LightSB-t_gap=1", lambda t: LightSB(t_gap=1.0), ValueError, "t_gap"),
    err("LightSB-progress='yes'", lambda t: LightSB(progress="yes"), TypeError, "progress"),  # type: ignore[arg-type]
    err("LightSB-progress=1", lambda t: LightSB(progress=1), TypeError, "progress"),  # type: ignore[arg-type]
    err("LightSB-n_starts=0", lambda t: LightSB(n_starts=0), ValueError, "n_starts"),
    err("LightSB-n_starts=2-no-held-out", lambda t: LightSB(n_starts=2, val_fraction=0.0), ValueError, "n_starts"),
    err("LightSB-n_starts=2-matching", lambda t: LightSB(n_starts=2, objective="matching"), ValueError, "n_starts"),
    err("LightSB-start_steps=0", lambda t: LightSB(start_steps=0), ValueError, "start_steps"),
    err("LightSB-init_min_weight=-0.1", lambda t: LightSB(init_min_weight=-0.1), ValueError, "init_min_weight"),
    err("LightSB-init_min_weight=1", lambda t: LightSB(init_min_weight=1.0), ValueError, "init_min_weight"),
    err("LightSB-flush_denormal='no'", lambda t: LightSB(flush_denormal="no"), TypeError, "flush_denormal"),  # type: ignore[arg-type]
    ok("LightSB-progress=None", _progress_none, _same_history),
    # solve(x0, x1, ...)
    err("solve-x0-nan", lambda t: _solve(torch.where(X0 > 1, NAN, X0), X1), ValueError, "x0.*non-finite"),
    err("solve-x1-inf", lambda t: _solve(X0, torch.where(X1 > 2.5, INF, X1)), ValueError, "x1.*non-finite"),
    err("solve-x0-1d", lambda t: _solve(X0[:, 0], X1), ValueError, "x0"),
    err("solve-x1-3d", lambda t: _solve(X0, X1[None]), ValueError, "x1"),
    err("solve-D-mismatch", lambda t: _solve(X0, X1[:, :1]), ValueError, "x0 and x1.*dimension"),
    err("solve-x0-empty", lambda t: _solve(X0[:0], X1), ValueError, "x0"),
    err("solve-x1-no-columns", lambda t: _solve(X0[:, :0], X1[:, :0]), ValueError, "x0"),
    err("solve-too-few-for-K", lambda t: _solve(X0, X1, n_components=60), ValueError, "n_components"),
    err("solve-too-few-for-val", lambda t: _solve(X0[:5], X1[:5], n_components=1), ValueError, "val_fraction"),
    err("solve-int-dtype", lambda t: _solve(INT_X0, X1), TypeError, "x0.*floating"),
    err("solve-bool-dtype", lambda t: _solve(X0 > 0, X1), TypeError, "x0"),
    err("solve-half-dtype", lambda t: _solve(*HALF, covariance="full"), TypeError, "x0.*float32 or float64"),
    err("solve-list", lambda t: _solve(X0.tolist(), X1), TypeError, "x0"),
    err("solve-numpy", lambda t: _solve(X0.numpy(), X1), TypeError, "x0"),
    err("solve-float32-vs-float64", lambda t: _solve(X0.float(), X1), TypeError, "x0 and x1.*dtype"),
    err("solve-generator", lambda t: _solve(X0, X1, generator=0), TypeError, "generator"),
    err("solve-init_potential-D", lambda t: _solve(X0, X1, eps=0.5, init_potential=_potential(d=3)), ValueError, "init_potential.*D"),
    err("solve-init_potential-type", lambda t: _solve(X0, X1, init_potential="p"), TypeError, "init_potential"),
    err("solve-init_potential-eps", lambda t: _solve(X0, X1, init_potential=_potential(eps=2.0)), ValueError,
        "init_potential.*eps"),
    err("solve-init_potential-nan", lambda t: _solve(X0, X1, eps=0.5, init_potential=_nan_potential()), ValueError,
        "init_potential.*non-finite"),
    err("solve-problem-object", lambda t: _solve(object()), TypeError, "problem"),
    err("solve-matching-unpaired", lambda t: _solve(X0, X1[:40], objective="matching"), ValueError, "rows"),
    err("solve-matching-x1-missing", lambda t: _solve(X0, None, objective="matching"), TypeError, "x1"),
    ok("solve-tensor-x0-sampler-x1-val_fraction=0", _sampler_target_no_holdout, _check_no_holdout),
    err("solve-sampler-signature", _sampler_one_arg, TypeError, r"x0.*\(n, generator\)"),
    err("solve-sampler-list", _sampler_list, TypeError, "x0"),
    err("solve-sampler-nan", _sampler_nan, ValueError, "x0.*non-finite"),
    err("solve-sampler-shape", _sampler_shape, ValueError, "x1"),
    err("solve-gaussian-init-singular-x0", lambda t: _solve(CONST_X0, X1, init="gaussian"), ValueError,
        "init='gaussian'.*p0"),
    err("solve-gaussian-init-singular-x1", lambda t: _solve(X0, CONST_X1, init="gaussian", covariance="full"),
        ValueError, "init='gaussian'.*p1"),
    err("solve-cluster-init-constant-x0", lambda t: _solve(CONST_X0, X1, init="clusters"), ValueError,
        "init='clusters'.*p0"),
    ok("solve-dirac-source", _dirac_source, _check_dirac),
    ok("solve-x0-requires-grad", _grad_input, _check_grad_input),
    ok("solve-K-equals-n", _k_equals_n, _check_k_equals_n),
    # Bridge(...) and its methods
    err("Bridge-potential-type", lambda t: Bridge("p"), TypeError, "potential"),  # type: ignore[arg-type]
    err("Bridge-potential-nan", lambda t: Bridge(_nan_potential()), ValueError, "potential.*non-finite"),
    err("sample-D", lambda t: _bridge().sample(torch.zeros(3, 5, dtype=F64)), ValueError, "x0"),
    err("sample-nan", lambda t: _bridge().sample(torch.full((3, 2), NAN)), ValueError, "x0.*non-finite"),
    err("sample-1d", lambda t: _bridge().sample(X0[0]), ValueError, "x0"),
    err("sample-int", lambda t: _bridge().sample(INT_X0), TypeError, "x0"),
    err("sample-list", lambda t: _bridge().sample([[0.0, 1.0]]), TypeError, "x0"),
    err("sample-chunk_size", lambda t: _bridge().sample(X0, chunk_size=0), ValueError, "chunk_size"),
    err("sample-generator", lambda t: _bridge().sample(X0, generator=1), TypeError, "generator"),
    err("call-D", lambda t: _bridge()(torch.zeros(3, 1, dtype=F64)), ValueError, "x0"),
    ok("sample-empty", lambda t: _bridge("full").sample(X0[:0]), _shape(0, 2)),
    ok("sample-float32-on-float64", _float32_input, lambda r: torch.testing.assert_close(r[0], r[1], rtol=0, atol=0)),
    err("log_prob-rows", lambda t: _bridge().log_prob(X1[:4], X0[:5]), ValueError, "rows"),
    err("log_prob-D", lambda t: _bridge().log_prob(X1[:, :1], X0), ValueError, "x1"),
    err("log_prob-nan", lambda t: _bridge().log_prob(X1, torch.where(X0 > 1, NAN, X0)), ValueError, "x0"),
    ok("log_prob-empty", lambda t: _bridge("full").log_prob(X1[:0], X0[:0]), _shape(0)),
    err("conditional_moments-nan", lambda t: _bridge().conditional_moments(torch.full((2, 2), INF)), ValueError,
        "x0"),
    ok("conditional_moments-empty", _moments_empty, _check_moments_empty),
    err("log_potential-D", lambda t: _bridge().log_potential(torch.zeros(4, 3)), ValueError, "y"),
    *[err(f"sample_at-t={v!r}", lambda t, v=v: _bridge().sample_at(v, X0), ValueError, "t must")
      for v in (1.5, -0.1, NAN)],
    err("sample_at-t-str", lambda t: _bridge().sample_at("0.5", X0), TypeError, "t must"),  # type: ignore[arg-type]
    err("sample_at-t-bool", lambda t: _bridge().sample_at(True, X0), TypeError, "t must"),
    err("sample_at-t-shape", lambda t: _bridge().sample_at(torch.full((60, 1), 0.5), X0), ValueError, "t must"),
    ok("sample_at-t=0-is-x0", _sample_at_0, _equal),
    ok("sample_at-t=1-is-sample", _sample_at_1, _equal),
    err("drift-t=1", lambda t: _bridge().drift(X0, 1.0), ValueError, "t must"),
    err("drift-t<0", lambda t: _bridge().drift(X0, -0.5), ValueError, "t must"),
    err("drift-x-D", lambda t: _bridge().drift(X0[:, :1], 0.5), ValueError, "x"),
    err("drift-x-nan", lambda t: _bridge().drift(torch.full((2, 2), NAN, dtype=F64), 0.5), ValueError, "x"),
    *[err(f"trajectory-num_steps={v!r}", lambda t, v=v: _bridge().trajectory(X0, num_steps=v),
          ValueError if isinstance(v, int) else TypeError, "num_steps") for v in (0, -1, 2.5)],
    err("trajectory-return_times", lambda t: _bridge().trajectory(X0, 2, return_times="yes"), TypeError,
        "return_times"),  # type: ignore[arg-type]
    err("trajectory-x0-D", lambda t: _bridge().trajectory(X0[:, :1], 2), ValueError, "x0"),
    ok("trajectory-empty", lambda t: _bridge("full").trajectory(X0[:0], 3), _shape(4, 0, 2)),
    err("Bridge.to-cuda", lambda t: _bridge().to("cuda"), sciml.DeviceUnavailableError, "device"),
    err("Bridge.to-bogus", lambda t: _bridge().to("bogus"), ValueError, "device"),
    err("Bridge.to-int-dtype", lambda t: _bridge().to(dtype=torch.int64), TypeError, "dtype"),
    # Bridge.save / Bridge.load
    err("load-missing", lambda t: Bridge.load(t / "missing.pt"), FileNotFoundError, r"missing\.pt"),
    err("load-empty", _empty, sciml.SaveFileError, r"empty\.pt"),
    err("load-truncated", _truncated, sciml.SaveFileError, r"truncated\.pt"),
    err("load-random-bytes", _random_bytes, sciml.SaveFileError, r"random\.pt"),
    err("load-foreign", _foreign, sciml.SaveFileError, r"foreign\.pt"),
    err("load-wrong-kind", _wrong_kind, sciml.SaveFileError, r"wrong_kind\.pt"),
    err("load-future-version", _load_edited("future.pt", lambda p: None, version=3), sciml.SaveFileError,
        r"future\.pt.*version"),
    err("load-directory", lambda t: Bridge.load(t), sciml.SaveFileError, "directory"),
    err("load-nan-means", _load_edited("nan_means.pt", _set_state("means", _with_nan)), sciml.SaveFileError,
        r"nan_means\.pt.*means"),
    err("load-nan-chol", _load_edited("nan_chol.pt", _set_state("chol_lower", _with_nan)), sciml.SaveFileError,
        r"nan_chol\.pt.*chol_lower"),
    err("load-means-shape", _load_edited("means_shape.pt", _set_state("means", lambda m: m[:, :1])),
        sciml.SaveFileError, r"means_shape\.pt.*means"),
    err("load-scales-shape", _load_edited("scales_shape.pt", _set_state("log_scales", lambda s: s[:2])),
        sciml.SaveFileError, r"scales_shape\.pt.*log_scales"),
    err("load-alpha-int", _load_edited("alpha_int.pt", _set_state("raw_log_alpha", lambda a: a.long())),
        sciml.SaveFileError, r"alpha_int\.pt.*raw_log_alpha"),
    err("load-singular-cov", _load_edited("singular.pt", _set_state("log_scales", lambda s: s - 1e6)),
        sciml.SaveFileError, r"singular\.pt.*positive definite"),
    err("load-negative-eps", _load_edited("neg_eps.pt", _set_config("eps", -0.5)), sciml.SaveFileError,
        r"neg_eps\.pt.*eps"),
    err("load-inf-eps", _load_edited("inf_eps.pt", _set_config("eps", INF)), sciml.SaveFileError, r"inf_eps\.pt.*eps"),
    err("load-dim-0", _load_edited("dim0.pt", _set_config("dim", 0)), sciml.SaveFileError, r"dim0\.pt.*dim"),
    err("load-K-float", _load_edited("kfloat.pt", _set_config("n_components", 2.5)), sciml.SaveFileError,
        r"kfloat\.pt.*n_components"),
    err("load-covariance", _load_edited("cov.pt", _set_config("covariance", "dense")), sciml.SaveFileError,
        r"cov\.pt.*covariance"),
    err("load-config-missing", _load_edited("noconf.pt", lambda p: p.pop("config")), sciml.SaveFileError,
        r"noconf\.pt.*config"),
    err("load-config-extra", _load_edited("extra.pt", _set_config("seed", 0)), sciml.SaveFileError,
        r"extra\.pt.*seed"),
    err("load-state-missing", _load_edited("nostate.pt", lambda p: p["state_dict"].pop("means")), sciml.SaveFileError,
        r"nostate\.pt.*means"),
    err("load-state-extra", _load_edited("xstate.pt", lambda p: p["state_dict"].update(skew=torch.zeros(1))),
        sciml.SaveFileError, r"xstate\.pt.*skew"),
    err("load-loss-nan", _load_edited("loss_nan.pt", lambda p: p.update(loss_history=[1.0, NAN])), sciml.SaveFileError,
        r"loss_nan\.pt.*loss_history"),
    err("load-loss-type", _load_edited("loss_type.pt", lambda p: p.update(loss_history="1.0")), sciml.SaveFileError,
        r"loss_type\.pt.*loss_history"),
    err("load-diagnostics-type", _load_edited("diag_type.pt", lambda p: p.update(diagnostics=[1])),
        sciml.SaveFileError, r"diag_type\.pt.*diagnostics"),
    err("load-map_location-cuda", _raises_device, sciml.DeviceUnavailableError, "map_location"),
    ok("save-load-round-trip", _round_trip, _check_round_trip),
    err("save-loss-nan", lambda t: Bridge(_potential(), [NAN]).save(t / "x.pt"), ValueError, "loss_history"),
    err("save-to-directory", lambda t: _bridge().save(t), IsADirectoryError, "directory"),
    err("save-parent-missing", lambda t: _bridge().save(t / "no" / "b.pt"), FileNotFoundError, r"/no\b"),
    err("Bridge-loss_history-str", lambda t: Bridge(_potential(), "abc"), TypeError, "loss_history"),  # type: ignore[arg-type]
    err("Bridge-diagnostics-str", lambda t: Bridge(_potential(), None, "abc"), TypeError, "diagnostics"),  # type: ignore[arg-type]
    # GaussianMixturePotential(...) and its setters
    *[err(f"Potential-dim={v!r}", lambda t, v=v: GaussianMixturePotential(v, 2, 1.0),
          ValueError if isinstance(v, int) else TypeError, "dim") for v in (0, -1, 2.5)],
    err("Potential-K=0", lambda t: GaussianMixturePotential(2, 0, 1.0), ValueError, "n_components"),
    *[err(f"Potential-eps={v!r}", lambda t, v=v: GaussianMixturePotential(2, 2, v), ValueError, "eps")
      for v in (0.0, -1.0, NAN)],
    err("Potential-covariance", lambda t: GaussianMixturePotential(2, 2, 1.0, "dense"), ValueError, "covariance"),
    err("Potential-init_means-shape", lambda t: GaussianMixturePotential(2, 2, 1.0, init_means=torch.zeros(3, 2)),
        ValueError, "init_means"),
    err("Potential-init_means-nan", lambda t: GaussianMixturePotential(2, 2, 1.0, init_means=torch.full((2, 2), NAN)),
        ValueError, "init_means"),
    *[err(f"Potential-init_scale={v!r}", lambda t, v=v: GaussianMixturePotential(2, 2, 1.0, init_scale=v), ValueError,
          "init_scale") for v in (0.0, -1.0)],
    err("Potential-dtype-int", lambda t: GaussianMixturePotential(2, 2, 1.0, dtype=torch.int64), TypeError, "dtype"),
    err("Potential-device-cuda", lambda t: GaussianMixturePotential(2, 2, 1.0, device="cuda"),
        sciml.DeviceUnavailableError, "device"),
    err("Potential-device-bogus", lambda t: GaussianMixturePotential(2, 2, 1.0, device="bogus"), ValueError, "device"),
    err("set_covariances-indefinite", lambda t: _potential("full").set_covariances(-torch.eye(2)), ValueError,
        "S.*positive definite"),
    err("set_covariances-diag-negative", lambda t: _potential("diag").set_covariances(-torch.eye(2)), ValueError,
        "S.*positive"),
    err("set_covariances-nan", lambda t: _potential("full").set_covariances(torch.full((2, 2), NAN)), ValueError, "S"),
    err("subset-keep-list", lambda t: _potential().subset([0, 1]), TypeError, "keep"),  # type: ignore[arg-type]
    err("subset-keep-float", lambda t: _potential().subset(torch.tensor([0.7])), TypeError, "keep"),
    # closed-form Gaussian plan
    err("gaussian_eot-S0-singular", lambda t: gaussian_eot(torch.zeros(2), torch.zeros(2, 2), torch.zeros(2),
                                                           torch.eye(2), 1.0), ValueError, "S0.*positive definite"),
    err("gaussian_eot-S1-indefinite", lambda t: gaussian_eot(torch.zeros(2), torch.eye(2), torch.zeros(2),
                                                             -torch.eye(2), 1.0), ValueError, "S1.*positive"),
    err("gaussian_eot-eps", lambda t: gaussian_eot(torch.zeros(2), torch.eye(2), torch.zeros(2), torch.eye(2), 0.0),
        ValueError, "eps"),
    err("gaussian_eot-m1-shape", lambda t: gaussian_eot(torch.zeros(2), torch.eye(2), torch.zeros(3), torch.eye(2),
                                                        1.0), ValueError, "m1"),
    err("gaussian_bridge-plan", lambda t: gaussian_bridge("plan"), TypeError, "plan"),  # type: ignore[arg-type]
    err("gaussian_bridge-device-cuda", lambda t: gaussian_bridge(gaussian_eot(torch.zeros(2), torch.eye(2), torch.zeros(2),
                                                                         torch.eye(2), 1.0), device="cuda"),
        sciml.DeviceUnavailableError, "device"),
    # the core mixture the plugin's users build p0 / p1 from
    err("GaussianMixture-shapes", lambda t: GaussianMixture(torch.ones(2, dtype=F64), torch.zeros(3, 2, dtype=F64),
                                                            torch.eye(2, dtype=F64).expand(3, 2, 2)), ValueError, "weights"),
    err("GaussianMixture-sample-n", lambda t: _mixture().sample(-1), ValueError, "sample_shape"),
    ok("GaussianMixture-sample-0", _mixture_sample_empty, _shape(0, 2)),
]


def _params() -> list[Any]:
    return [pytest.param(c, id=c.id) for c in CASES]


@pytest.mark.parametrize("case", _params())
def test_bad_input(case: Case, tmp_path: Path) -> None:
    if case.error is None:
        assert case.check is not None
        case.check(case.run(tmp_path))
        return
    if case.error is sciml.DeviceUnavailableError and torch.cuda.is_available() and "cuda" in case.id:
        pytest.skip("CUDA is available: the device exists")
    with pytest.raises(case.error, match=re.compile(case.match, re.S)):
        case.run(tmp_path)


def test_case_ids_are_unique() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
