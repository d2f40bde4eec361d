"""sciml.datasets: the solvers against closed forms, the random fields against their covariance,
seeding, the cache and argument errors. Small grids throughout (the whole file runs in seconds)."""

from __future__ import annotations

import importlib
import math
import os

import numpy as np
import pytest
import scipy.fft
import torch

from sciml.datasets import (
    PDEData,
    burgers,
    darcy,
    data_dir,
    navier_stokes,
    neumann_grf,
    periodic_grf,
    sample_generator,
    solve_burgers,
    solve_darcy,
    solve_navier_stokes,
)
from sciml.datasets._base import one_thread
from sciml.datasets.darcy import darcy_coefficient
from sciml.datasets.fields import periodic_grf_eigenvalues
from sciml.io import load_state

# The package re-exports the functions under the modules' names: fetch the modules themselves.
darcy_module = importlib.import_module("sciml.datasets.darcy")
burgers_module = importlib.import_module("sciml.datasets.burgers")

SMALL_DARCY = {"resolution": 11, "solve_resolution": 41}
SMALL_BURGERS = {"resolution": 64, "solve_resolution": 256, "step_size": 0.01}
SMALL_NS = {"resolution": 16, "time": 0.4, "record_every": 0.1, "input_steps": 2, "step_size": 0.05}


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    """Every test gets its own cache folder: nothing is ever written to the real home cache."""
    monkeypatch.setenv("SCIML_DATA_DIR", str(tmp_path / "cache"))


@pytest.fixture(autouse=True)
def _one_thread():
    """The solvers' small batched FFTs run fastest on one thread (and the generators use one)."""
    with one_thread():
        yield


# ----------------------------------------------------------------------------------------------------
# Darcy


def _manufactured(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """a, f = -div(a grad u) and u (zero on the boundary) at the nodes, derivatives by hand."""
    x = np.linspace(0.0, 1.0, size)
    X, Y = np.meshgrid(x, x, indexing="ij")
    pi = np.pi
    a = 1.0 + 0.5 * np.sin(2 * pi * X) * np.cos(pi * Y) + X * Y
    a_x = pi * np.cos(2 * pi * X) * np.cos(pi * Y) + Y
    a_y = -0.5 * pi * np.sin(2 * pi * X) * np.sin(pi * Y) + X
    u = np.sin(pi * X) * np.sin(2 * pi * Y) * np.exp(X)
    u_x = (pi * np.cos(pi * X) + np.sin(pi * X)) * np.sin(2 * pi * Y) * np.exp(X)
    u_xx = (-pi**2 * np.sin(pi * X) + 2 * pi * np.cos(pi * X) + np.sin(pi * X)) * np.sin(2 * pi * Y) * np.exp(X)
    u_y = 2 * pi * np.sin(pi * X) * np.cos(2 * pi * Y) * np.exp(X)
    u_yy = -4 * pi**2 * u
    f = -(a_x * u_x + a * u_xx + a_y * u_y + a * u_yy)
    return a, f, u


def test_darcy_solver_is_second_order_on_a_manufactured_solution():
    errors = []
    for size in (33, 65):
        a, f, u = _manufactured(size)
        errors.append(float(np.abs(solve_darcy(a, f).numpy() - u).max()))
    order = math.log2(errors[0] / errors[1])
    # The 5-point scheme with arithmetic-mean face coefficients has an O(h^2) truncation error for
    # smooth a and u; measured orders were 2.003 / 1.994 / 2.0005 on 17 / 33 / 65 / 129 nodes, so
    # [1.8, 2.2] leaves room only for the higher-order terms of these coarse grids.
    assert 1.8 <= order <= 2.2, (errors, order)
    assert errors[1] < 2e-3


@pytest.mark.parametrize("method", ["mmd", "colamd", "cg"])
def test_darcy_solve_methods_agree(method):
    a, f, _ = _manufactured(33)
    a = np.where(a > 1.2, 12.0, 3.0)  # rough, high contrast, like the data
    ref = solve_darcy(a, f)
    assert torch.allclose(solve_darcy(a, f, method=method), ref, rtol=0, atol=1e-10 * float(ref.abs().max()))


def test_darcy_solution_has_zero_boundary_and_solves_the_discrete_system():
    g = neumann_grf(sample_generator(0, 0), 21, alpha=2.0, tau=3.0)
    a = darcy_coefficient(g)
    u = solve_darcy(a).numpy()
    assert np.all(u[[0, -1], :] == 0) and np.all(u[:, [0, -1]] == 0) and np.all(u[1:-1, 1:-1] > 0)
    # residual of the 5-point equations at the interior nodes
    a = a.numpy()
    h2 = 1.0 / 20**2
    fx, fy = 0.5 * (a[1:, :] + a[:-1, :]), 0.5 * (a[:, 1:] + a[:, :-1])
    flux = (fx[1:, 1:-1] * (u[1:-1, 1:-1] - u[2:, 1:-1]) + fx[:-1, 1:-1] * (u[1:-1, 1:-1] - u[:-2, 1:-1])
            + fy[1:-1, 1:] * (u[1:-1, 1:-1] - u[1:-1, 2:]) + fy[1:-1, :-1] * (u[1:-1, 1:-1] - u[1:-1, :-2]))
    assert np.abs(flux / h2 - 1.0).max() < 1e-9


def test_darcy_data_is_the_thresholded_field_solved_and_subsampled():
    data = darcy(2, seed=3, cache=False, **SMALL_DARCY)
    assert data.a.shape == data.u.shape == (2, 1, 11, 11) and data.a.dtype == torch.float32
    for i in range(2):
        g = neumann_grf(sample_generator(3, i), 41, alpha=2.0, tau=3.0)
        a = darcy_coefficient(g, (12.0, 3.0))
        u = solve_darcy(a)
        assert torch.equal(data.a[i, 0], a[::4, ::4].float())
        assert torch.equal(data.u[i, 0], u[::4, ::4].float())


def test_darcy_coefficient_takes_the_two_values_symmetrically():
    data = darcy(24, resolution=41, solve_resolution=41, coefficients=(12.0, 4.0), cache=False)
    assert set(data.a.unique().tolist()) <= {12.0, 4.0}
    frac = (data.a == 12.0).float().mean(dim=(1, 2, 3))
    # g is symmetric about 0, so P(a = 12) = 1/2; the per-sample fractions are correlated over the
    # grid but independent across samples: their own standard error sets the tolerance.
    se = float(frac.std()) / math.sqrt(len(frac))
    assert abs(float(frac.mean()) - 0.5) < 4 * se + 1e-3


def test_neumann_field_has_the_stated_cosine_coefficients():
    size, alpha, tau = 33, 2.0, 3.0
    k = np.arange(size)
    coef = (np.pi**2 * (k[:, None] ** 2 + k[None, :] ** 2) + tau**2) ** (-alpha / 2)
    xi = []
    for i in range(20):
        g = neumann_grf(sample_generator(7, i), size, alpha=alpha, tau=tau).numpy()
        c = scipy.fft.dctn(g, type=1) / (2 * (size - 1)) ** 2  # DCT-I inverts itself up to 2(N-1)
        c[1:-1, :] *= 2.0
        c[:, 1:-1] *= 2.0  # the plain cosine-sum coefficients
        assert abs(c[0, 0]) < 1e-12  # no constant mode
        xi.append(np.delete((c / coef).ravel(), 0))
    xi = np.stack(xi)
    edges = np.delete(((k[:, None] == size - 1) | (k[None, :] == size - 1)).ravel(), 0)
    # standard normal coefficients, in the interior and on the highest modes (the DCT-I end points)
    for part in (xi[:, ~edges], xi[:, edges]):
        m = part.size
        assert abs(part.mean()) < 5 / math.sqrt(m)
        assert abs(part.var() - 1.0) < 5 * math.sqrt(2 / m)


# ----------------------------------------------------------------------------------------------------
# Burgers


def _cole_hopf(x: torch.Tensor, t: float, nu: float) -> torch.Tensor:
    """u = -2 nu phi_x / phi with phi_t = nu phi_xx solves u_t + (u^2 / 2)_x = nu u_xx."""
    modes = [(1, 0.4, 0.3), (2, 0.3, 1.1), (3, 0.2, -0.5)]  # (k, eps, phase); sum eps < 1 keeps phi > 0
    decay = [math.exp(-nu * (2 * math.pi * k) ** 2 * t) for k, _, _ in modes]
    phi = 1 + sum(e * d * torch.cos(2 * math.pi * k * x + p) for (k, e, p), d in zip(modes, decay))
    phi_x = sum(-2 * math.pi * k * e * d * torch.sin(2 * math.pi * k * x + p) for (k, e, p), d in zip(modes, decay))
    return -2 * nu * phi_x / phi


@pytest.mark.parametrize("nu", [0.1, 0.02])
def test_burgers_matches_cole_hopf_at_fourth_order(nu):
    x = torch.arange(256, dtype=torch.float64) / 256
    u0, exact = _cole_hopf(x, 0.0, nu)[None], _cole_hopf(x, 0.5, nu)
    errors = [float((solve_burgers(u0, nu=nu, time=0.5, num_steps=s)[0, -1] - exact).abs().max())
              for s in (10, 20, 40)]
    # ETDRK4 is fourth order: halving the step divides the error by ~16 (measured 13-16 here)
    assert errors[0] / errors[1] > 10 and errors[1] / errors[2] > 10, errors
    assert errors[2] < 2e-5 * float(exact.abs().max())  # dt = 1/80: 8e-6 (nu = 0.1), 4e-8 (nu = 0.02)


def test_burgers_conserves_mass_and_dissipates_energy():
    u0 = torch.stack([periodic_grf(sample_generator(1, i), 256, sigma=25.0, tau=5.0, gamma=2.0) for i in range(3)])
    u0 = u0 + 0.3  # a non-zero mean must be kept exactly
    u = solve_burgers(u0, nu=0.02, time=1.0, num_steps=200, num_frames=20)
    mean = u.mean(dim=-1)
    # the k = 0 mode is multiplied by exactly 1 each step: only FFT round-off (~1e-16 |u| per
    # transform, |u| ~ 1 here, 200 steps) moves the mean
    assert torch.allclose(mean, u0.mean(dim=-1, keepdim=True).expand_as(mean), rtol=0, atol=1e-13)
    energy = torch.cat([u0.pow(2).sum(-1, keepdim=True), u.pow(2).sum(-1)], dim=1)
    assert bool((energy[:, 1:] <= energy[:, :-1] * (1 + 1e-14)).all())
    assert bool((energy[:, -1] < 0.9 * energy[:, 0]).all())


def test_burgers_initial_fields_have_the_stated_covariance():
    size, m = 256, 400
    fields = torch.stack([periodic_grf(sample_generator(5, i), size, sigma=25.0, tau=5.0, gamma=2.0)
                          for i in range(m)])
    assert fields.mean(dim=-1).abs().max() < 1e-12  # zero mean: the constant mode is left out
    k = torch.arange(1, size // 2)
    lam = 625.0 * ((2 * math.pi * k.double()) ** 2 + 25.0) ** -2.0  # 625 (-Laplacian + 25)^-2
    # Fourier coefficients c_k of exp(2 pi i k x): E|c_k|^2 = lam_k, |c_k|^2 / lam_k ~ Exp(1)
    power = torch.fft.rfft(fields, norm="forward").abs().pow(2)[:, 1:size // 2]
    ratio = (power / lam).mean(dim=0)[:16]
    assert bool(((ratio - 1).abs() < 5 / math.sqrt(m)).all()), ratio
    # pointwise variance sum_{k != 0} lam_k = 2 sum_{k >= 1} lam_k; mean_x u^2 = 2 sum |c_k|^2 has
    # variance 4 sum lam_k^2 per sample
    var = fields.pow(2).mean()
    expected, se = 2 * lam.sum(), 2 * lam.pow(2).sum().sqrt() / math.sqrt(m)
    assert abs(float(var - expected)) < 5 * float(se)
    assert abs(float(expected) - 0.35233) < 1e-4  # the series over all k >= 1: 0.352330; 128 modes miss 1e-7


def test_periodic_field_2d_spectrum():
    shape, m = (32, 32), 200
    lam = periodic_grf_eigenvalues(shape, sigma=7.0**0.75, tau=7.0, gamma=2.5)
    fields = torch.stack([periodic_grf(sample_generator(2, i), shape, sigma=7.0**0.75, tau=7.0, gamma=2.5)
                          for i in range(m)])
    power = torch.fft.fft2(fields, norm="forward").abs().pow(2).mean(dim=0)
    for kx, ky in [(1, 0), (0, 1), (1, 1), (2, -1), (3, 2)]:
        assert abs(float(power[kx, ky] / lam[kx, ky]) - 1) < 5 / math.sqrt(m)
    assert float(lam[0, 0]) == 0.0 and float(lam[16, 3]) == 0.0  # constant and Nyquist modes


def test_a_blown_up_burgers_solution_is_an_error_not_nan_data(monkeypatch):
    with pytest.raises(ValueError, match="became non-finite.*increase num_steps"):
        solve_burgers(1e6 * torch.randn(2, 16, dtype=torch.float64), nu=0.1, time=1.0, num_steps=10)
    with pytest.raises(ValueError, match="became non-finite.*decrease step_size or sigma"):
        burgers(4, 8, solve_resolution=32, sigma=300, step_size=0.05, workers=1)
    assert not os.path.exists(data_dir()) or not os.listdir(data_dir())  # nothing cached
    assert solve_burgers(torch.randn(0, 16), nu=0.1, time=1.0, num_steps=3, num_frames=3).shape == (0, 3, 16)
    assert burgers(1, 8, solve_resolution=32, time=1e-12, cache=False, workers=1).u.shape == (1, 1, 8)  # one step


def test_non_finite_computed_data_is_never_returned_or_cached(monkeypatch):
    def overflowed(recipe, start, stop):
        u = np.ones((stop - start, 1, 11, 11), np.float32)
        u[:, 0, 2, 2] = np.inf if start == 1 else 1.0
        return np.ones_like(u), u

    monkeypatch.setattr(darcy_module, "_compute", overflowed)
    with pytest.raises(ValueError, match=r"darcy: u came out non-finite in sample\(s\) \[1\]"):
        darcy(2, workers=1, **SMALL_DARCY)
    assert not os.path.exists(data_dir()) or not os.listdir(data_dir())


def test_burgers_data_layout():
    data = burgers(3, cache=False, **SMALL_BURGERS)
    assert data.a.shape == data.u.shape == (3, 1, 64) and data.u.dtype == torch.float32
    u0 = periodic_grf(sample_generator(0, 1), 256, sigma=25.0, tau=5.0, gamma=2.0)
    assert torch.equal(data.a[1, 0], u0[::4].float())
    assert data.recipe["num_steps"] == 100 and data.recipe["nu"] == 0.1


# ----------------------------------------------------------------------------------------------------
# Navier-Stokes


def test_navier_stokes_single_mode_decays_exactly():
    size, nu, time, steps = 16, 0.01, 1.0, 400
    x = torch.arange(size, dtype=torch.float64) / size
    w0 = (torch.sin(2 * math.pi * x)[:, None] * torch.sin(2 * math.pi * x)[None, :])[None]
    w = solve_navier_stokes(w0, nu=nu, time=time, num_steps=steps, num_frames=4)
    z = nu * 8 * math.pi**2 * time / steps  # nu |k|^2 dt, |k|^2 = 8 pi^2
    for j in range(4):
        t, n = time * (j + 1) / 4, steps * (j + 1) // 4
        # u . grad w vanishes for a single |k|, so each step is exactly Crank-Nicolson's factor ...
        cn = w0[0] * ((1 - z / 2) / (1 + z / 2)) ** n
        assert torch.allclose(w[0, j], cn, rtol=0, atol=1e-13)
        # ... which is exp(-z) to O(z^3 / 12) per step: 1.3e-8 * n relative here
        exact = w0[0] * math.exp(-nu * 8 * math.pi**2 * t)
        assert torch.allclose(w[0, j], exact, rtol=0, atol=n * z**3 / 12 * 1.01)
        assert not torch.allclose(w[0, j], exact, rtol=0, atol=1e-12)  # the test can tell them apart


def test_navier_stokes_without_forcing_decays_monotonically():
    size = 32
    w0 = torch.stack([periodic_grf(sample_generator(4, i), (size, size), sigma=7.0**1.5, tau=7.0, gamma=2.5)
                      for i in range(2)]) * 20  # strong enough for advection to matter
    w = solve_navier_stokes(w0, nu=1e-3, time=2.0, num_steps=400, num_frames=20)
    w_hat = torch.fft.fft2(torch.cat([w0[:, None], w], dim=1), norm="forward")
    k = torch.fft.fftfreq(size, d=1.0 / size, dtype=torch.float64)
    lap = 4 * math.pi**2 * (k[:, None] ** 2 + k[None, :] ** 2)
    enstrophy = w_hat.abs().pow(2).sum(dim=(-2, -1))
    energy = (w_hat.abs().pow(2) / torch.where(lap > 0, lap, math.inf)).sum(dim=(-2, -1))
    for q in (enstrophy, energy):
        assert bool((q[:, 1:] < q[:, :-1]).all()), q
    assert w.mean(dim=(-2, -1)).abs().max() < 1e-12


def test_navier_stokes_step_converges():
    w0 = periodic_grf(sample_generator(0, 0), (16, 16), sigma=7.0**1.5, tau=7.0, gamma=2.5)[None] * 10
    from sciml.datasets.navier_stokes import fno_forcing

    f = fno_forcing(16)
    ref, coarse, fine = (solve_navier_stokes(w0, nu=1e-3, time=1.0, num_steps=s, forcing=f)[0, -1]
                         for s in (400, 25, 50))
    # second order in time: halving the step divides the error by ~4
    ratio = float((coarse - ref).norm() / (fine - ref).norm())
    assert 3.0 < ratio < 5.0, ratio


def test_navier_stokes_data_layout():
    data = navier_stokes(2, cache=False, **SMALL_NS)
    assert data.a.shape == (2, 2, 16, 16) and data.u.shape == (2, 2, 16, 16)
    w = navier_stokes(2, cache=False, **{**SMALL_NS, "input_steps": 0})
    assert w.a.shape == (2, 1, 16, 16) and w.u.shape == (2, 4, 16, 16)
    assert torch.equal(torch.cat([w.u[:, :2], w.u[:, 2:]], 1), torch.cat([data.a, data.u], 1))
    w0 = periodic_grf(sample_generator(0, 0), (16, 16), sigma=7.0**0.75, tau=7.0, gamma=2.5)
    assert torch.equal(w.a[0, 0], w0.float())


# ----------------------------------------------------------------------------------------------------
# Seeding


@pytest.mark.parametrize(("make", "kwargs", "big", "small"), [
    (darcy, SMALL_DARCY, 5, 3),
    (burgers, SMALL_BURGERS, 10, 3),  # blocks of 8: 10 samples are two blocks
    (navier_stokes, SMALL_NS, 9, 2),
])
def test_prefix_workers_and_seed(make, kwargs, big, small):
    one = make(big, cache=False, workers=1, **kwargs)
    two = make(big, cache=False, workers=2, **kwargs)
    assert torch.equal(one.a, two.a) and torch.equal(one.u, two.u)
    prefix = make(small, cache=False, workers=1, **kwargs)
    assert torch.equal(one[:small].a, prefix.a) and torch.equal(one[:small].u, prefix.u)
    other = make(small, seed=1, cache=False, workers=1, **kwargs)
    assert not torch.equal(other.a, prefix.a) and not torch.equal(other.u, prefix.u)
    assert not torch.equal(one.a[0], one.a[1])


def test_same_fields_at_every_output_resolution():
    fine = darcy(3, 21, solve_resolution=41, cache=False)
    coarse = darcy(3, 11, solve_resolution=41, cache=False)
    assert torch.equal(fine.a[..., ::2, ::2], coarse.a) and torch.equal(fine.u[..., ::2, ::2], coarse.u)
    fine = burgers(2, 128, solve_resolution=256, step_size=0.01, cache=False)
    coarse = burgers(2, 32, solve_resolution=256, step_size=0.01, cache=False)
    assert torch.equal(fine.a[..., ::4], coarse.a) and torch.equal(fine.u[..., ::4], coarse.u)
    fine = navier_stokes(1, 32, cache=False, **{k: v for k, v in SMALL_NS.items() if k != "resolution"})
    coarse = navier_stokes(1, 16, solve_resolution=32, cache=False,
                           **{k: v for k, v in SMALL_NS.items() if k != "resolution"})
    assert torch.equal(fine.u[..., ::2, ::2], coarse.u)


def test_sample_generator_is_a_function_of_seed_and_index():
    draw = [torch.randn(4, generator=sample_generator(s, i)) for s, i in [(0, 0), (0, 1), (1, 0), (0, 0)]]
    assert torch.equal(draw[0], draw[3])
    assert not torch.equal(draw[0], draw[1]) and not torch.equal(draw[0], draw[2])


# ----------------------------------------------------------------------------------------------------
# Cache


def _fail(*args, **kwargs):
    raise AssertionError("the generator ran although the data was cached")


def test_cache_is_written_read_and_keyed_by_the_recipe(monkeypatch):
    folder = data_dir()
    assert str(folder).endswith("cache")
    first = darcy(4, **SMALL_DARCY)
    files = sorted(folder.glob("*.pt"))
    assert len(files) == 1 and files[0].name.startswith("darcy-") and files[0].name.endswith("-n4.pt")
    _, payload = load_state(files[0], "datasets.PDEData", {1})
    assert payload["recipe"] == first.recipe and payload["recipe"]["recipe_version"] == darcy_module.RECIPE_VERSION

    monkeypatch.setattr(darcy_module, "_compute", _fail)
    again = darcy(4, **SMALL_DARCY)
    assert torch.equal(again.a, first.a) and torch.equal(again.u, first.u) and again.recipe == first.recipe
    prefix = darcy(2, **SMALL_DARCY)  # sliced from the cached larger set
    assert torch.equal(prefix.u, first.u[:2]) and prefix.recipe["n"] == 2
    with pytest.raises(AssertionError, match="cached"):
        darcy(4, seed=1, **SMALL_DARCY)
    monkeypatch.undo()
    monkeypatch.setenv("SCIML_DATA_DIR", str(folder))
    darcy(4, seed=1, **SMALL_DARCY)
    darcy(4, coefficients=(12.0, 4.0), **SMALL_DARCY)
    assert len(list(folder.glob("*.pt"))) == 3
    assert not list(folder.glob("*.tmp"))


def test_recipe_version_is_part_of_the_key(monkeypatch):
    darcy(2, **SMALL_DARCY)
    monkeypatch.setattr(darcy_module, "RECIPE_VERSION", darcy_module.RECIPE_VERSION + 1)
    darcy(2, **SMALL_DARCY)
    assert len(list(data_dir().glob("darcy-*.pt"))) == 2


def test_corrupt_cache_file_is_regenerated_with_a_warning():
    first = burgers(2, **SMALL_BURGERS)
    (path,) = data_dir().glob("burgers-*.pt")
    path.write_bytes(b"not a torch file")
    with pytest.warns(RuntimeWarning, match="regenerated"):
        again = burgers(2, **SMALL_BURGERS)
    assert torch.equal(again.u, first.u)
    load_state(path, "datasets.PDEData", {1})  # rewritten, readable


def test_cache_file_with_another_recipe_is_never_returned():
    first = darcy(2, **SMALL_DARCY)
    (path,) = data_dir().glob("darcy-*.pt")
    from sciml.io import save_state

    wrong = {**first.recipe, "seed": 99}
    save_state(path, "datasets.PDEData", 1, {"recipe": wrong, "a": first.a * 0, "u": first.u * 0})
    with pytest.warns(RuntimeWarning, match="another recipe"):
        again = darcy(2, **SMALL_DARCY)
    assert torch.equal(again.u, first.u)


def test_cache_false_writes_nothing(monkeypatch):
    darcy(2, cache=False, **SMALL_DARCY)
    burgers(1, cache=False, **SMALL_BURGERS)
    assert not data_dir().exists() or not any(data_dir().iterdir())


def test_data_dir_default(monkeypatch):
    monkeypatch.delenv("SCIML_DATA_DIR")
    assert data_dir() == data_dir().home() / ".cache" / "sciml" / "datasets"
    monkeypatch.setenv("SCIML_DATA_DIR", "~/elsewhere")
    assert data_dir() == type(data_dir())(os.path.expanduser("~/elsewhere"))


# ----------------------------------------------------------------------------------------------------
# PDEData


def test_pdedata_indexing_and_grid():
    data = darcy(4, progress=True, cache=False, **SMALL_DARCY)
    assert len(data) == 4 and "darcy" in repr(data)
    one = data[-1]
    assert isinstance(one, PDEData) and one.a.shape == (1, 1, 11, 11) and torch.equal(one.u[0], data.u[3])
    assert data[torch.tensor(1)].a.shape == (1, 1, 11, 11) and data[np.int64(1)].a.shape == (1, 1, 11, 11)
    picked = data[torch.tensor([2, 0])]
    assert torch.equal(picked.a[1], data.a[0]) and picked.recipe == data.recipe
    assert len(data[torch.tensor([True, False, True, False])]) == 2
    with pytest.raises(IndexError):
        data[4]
    grid = data.grid()
    assert grid.shape == (2, 11, 11) and float(grid[0, -1, 0]) == 1.0 and float(grid[1, 0, 3]) == pytest.approx(0.3)
    periodic = burgers(1, cache=False, **SMALL_BURGERS).grid()
    assert periodic.shape == (1, 64) and float(periodic[0, -1]) == pytest.approx(63 / 64)
    with pytest.raises(ValueError, match="same number"):
        PDEData(torch.zeros(2, 1, 3), torch.zeros(3, 1, 3), {})
    with pytest.raises(ValueError, match="same grid"):
        PDEData(torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 5), {})


# ----------------------------------------------------------------------------------------------------
# Argument errors (raised before any work)


@pytest.mark.parametrize(("call", "error", "match"), [
    (lambda: darcy(0), ValueError, "n must be >= 1"),
    (lambda: darcy(2.0), TypeError, "n must be an int"),
    (lambda: darcy(2, seed=-1), ValueError, "seed"),
    (lambda: darcy(2, 10), ValueError, "resolution=10 .*solve_resolution=421"),
    (lambda: darcy(2, 2), ValueError, "resolution must be >= 3"),
    (lambda: darcy(2, 85, solve_resolution=43), ValueError, "solve_resolution=43"),
    (lambda: darcy(2, coefficients=(12.0,)), ValueError, "coefficients"),
    (lambda: darcy(2, coefficients=(12.0, -3.0)), ValueError, r"coefficients\[1\]"),
    (lambda: darcy(2, coefficients=(12.0, math.inf)), ValueError, "coefficients"),
    (lambda: darcy(2, coefficients=12.0), TypeError, "coefficients"),
    (lambda: darcy(2, coefficients=(1e300, 1e-300)), ValueError, r"coefficients\[0\] must lie in"),
    (lambda: darcy(2, coefficients=(1e-320, 1e-320)), ValueError, r"coefficients\[0\] must lie in"),
    (lambda: darcy(2, tau=1e300), ValueError, "tau must be <= 1e"),
    (lambda: burgers(2, tau=1e200), ValueError, "tau must be <= 1e"),
    (lambda: burgers(2, sigma=1e200), ValueError, "sigma must be <= 1e"),
    (lambda: darcy(2, tau=0.0), ValueError, "tau"),
    (lambda: darcy(2, alpha=-1.0), ValueError, "alpha"),
    (lambda: darcy(2, workers=0), ValueError, "workers"),
    (lambda: darcy(2, cache=1), TypeError, "cache"),
    (lambda: darcy(2, progress="yes"), TypeError, "progress"),
    (lambda: burgers(2, nu=0.0), ValueError, "nu"),
    (lambda: burgers(2, sigma=-1.0), ValueError, "sigma"),
    (lambda: burgers(2, gamma=0.0), ValueError, "gamma"),
    (lambda: burgers(2, time=0.0), ValueError, "time"),
    (lambda: burgers(2, step_size=0.0), ValueError, "step_size"),
    (lambda: burgers(2, 1000), ValueError, "resolution=1000 .*solve_resolution=8192"),
    (lambda: burgers(2, 64, solve_resolution=129), ValueError, "solve_resolution must be even"),
    (lambda: navier_stokes(2, 63), ValueError, "resolution must be even"),
    (lambda: navier_stokes(2, 64, solve_resolution=96), ValueError, "solve_resolution=96"),
    (lambda: navier_stokes(2, time=2.5), ValueError, "record_every"),
    (lambda: navier_stokes(2, input_steps=20), ValueError, "input_steps"),
    (lambda: navier_stokes(2, nu=-1e-3), ValueError, "nu"),
    (lambda: navier_stokes(2, forcing=1), TypeError, "forcing"),
    (lambda: solve_darcy(np.ones((4, 5))), ValueError, "a must be a square"),
    (lambda: solve_darcy(-np.ones((5, 5))), ValueError, "a must be > 0"),
    (lambda: solve_darcy(np.ones((5, 5)), method="lu"), ValueError, "method"),
    (lambda: solve_burgers(torch.zeros(1, 7, dtype=torch.float64), nu=0.1, time=1.0, num_steps=3),
     ValueError, "u0"),
    (lambda: solve_burgers(torch.zeros(1, 8, dtype=torch.float64), nu=0.1, time=1.0, num_steps=3, num_frames=2),
     ValueError, "num_frames"),
    (lambda: solve_navier_stokes(torch.zeros(1, 8, 6, dtype=torch.float64), nu=0.1, time=1.0, num_steps=3),
     ValueError, "w0"),
])
def test_bad_arguments(call, error, match, monkeypatch):
    monkeypatch.setattr(darcy_module, "_compute", _fail)
    monkeypatch.setattr(burgers_module, "_compute", _fail)
    with pytest.raises(error, match=match):
        call()
