"""Samplers on posteriordb ports: the Laplace preconditioner, the evaluation budget, ArviZ diagnostics,
and three ports sampled with MultALMC's defaults (fewer steps and chains) against their reference draws."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from sciml_benchmarks.posteriordb import load

import sciml
from sciml.diagnostics import chain_diagnostics, draw_diagnostics, low_density_draws
from sciml.targets import as_target
from sciml.targets.laplace import LaplaceError, StandardisedTarget, laplace_fit, laplace_starts


def _gaussian(dim: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(dim, dim, generator=g, dtype=torch.float64)
    cov = a @ a.T + 0.1 * torch.eye(dim, dtype=torch.float64)
    mean = 10.0 * torch.randn(dim, generator=g, dtype=torch.float64)
    return mean, cov, as_target(torch.distributions.MultivariateNormal(mean, cov))


def test_laplace_fit_of_a_gaussian_is_its_mean_and_covariance():
    mean, cov, target = _gaussian()
    fit = laplace_fit(target.log_prob_and_grad, torch.zeros(4, dtype=torch.float64))
    cond = float(torch.linalg.cond(cov))
    # L-BFGS stops at a gradient of ~1e-9; the Hessian of a quadratic by central differences is exact
    # up to round-off of the gradient differences: relative ~ cond * 1e-10
    assert torch.allclose(fit.mean, mean, rtol=0, atol=1e-6 * cond)
    assert torch.allclose(fit.scale @ fit.scale.T, cov, rtol=1e-6 * cond, atol=1e-8)
    assert fit.log_det == pytest.approx(0.5 * float(torch.logdet(cov)), abs=1e-6)


def test_laplace_fit_refuses_a_non_finite_start():
    target = as_target(lambda x: torch.where(x[..., 0] > 0, -x.square().sum(-1), torch.full_like(x[..., 0], -math.inf)),
                       dim=2)
    with pytest.raises(LaplaceError, match="start point"):
        laplace_fit(target.log_prob_and_grad, -torch.ones(2, dtype=torch.float64))


def _two_modes(wide_weight: float, wide_sd: float):
    """A 1-D mixture: a narrow mode (sd 0.05) at -3 and a wide one (sd ``wide_sd``) at +3."""
    mix = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(torch.tensor([1.0 - wide_weight, wide_weight], dtype=torch.float64)),
        torch.distributions.Normal(torch.tensor([-3.0, 3.0], dtype=torch.float64),
                                   torch.tensor([0.05, wide_sd], dtype=torch.float64)))
    return as_target(torch.distributions.Independent(mix.expand([1]), 1))


def test_laplace_fit_of_several_starts_keeps_the_mode_with_the_most_mass():
    # 90 % of the mass in the wide mode, whose peak is lower than the narrow one's (0.9 / 1 vs 0.1 / 0.05):
    # from a start at the narrow mode plus random starts, the fit is the wide mode, log Z ~ log 0.9
    target = _two_modes(0.9, 1.0)
    starts = torch.tensor([[-3.1], [2.0], [-2.5]], dtype=torch.float64)
    fit = laplace_fit(target.log_prob_and_grad, starts)
    assert fit.start == 1 and float(fit.mean[0]) == pytest.approx(3.0, abs=1e-6)
    (narrow, narrow_evidence), = fit.other_modes  # the narrow mode, reached from two starts, listed once
    assert float(narrow[0]) == pytest.approx(-3.0, abs=1e-6) and narrow_evidence == pytest.approx(math.log(0.1), abs=1e-6)
    # the narrow component's density at +3 is exp(-3600) below round-off: the evidence is the wide one's
    assert fit.log_evidence == pytest.approx(math.log(0.9), abs=1e-6)
    alone = laplace_fit(target.log_prob_and_grad, starts[0])  # one start: its own mode
    assert float(alone.mean[0]) == pytest.approx(-3.0, abs=1e-6) and alone.start == 0
    # the same mode reached from every start: the first start's fit
    same = laplace_fit(target.log_prob_and_grad, torch.tensor([[2.5], [3.5], [2.9]], dtype=torch.float64))
    assert same.start == 0 and same.other_modes == ()


def test_laplace_starts_are_the_point_then_fixed_draws_of_stans_initial_range():
    x0 = torch.full((3,), 7.0, dtype=torch.float64)
    starts = laplace_starts(x0, 4)
    assert starts.shape == (5, 3) and torch.equal(starts[0], x0)
    assert bool((starts[1:].abs() < 2).all()) and torch.equal(starts, laplace_starts(x0, 4))


def test_laplace_fit_skips_failing_extra_starts_but_not_a_failing_first():
    target = as_target(lambda x: torch.where(x[..., 0] > 0, -x.square().sum(-1), torch.full_like(x[..., 0], -math.inf)),
                       dim=2)
    fit = laplace_fit(target.log_prob_and_grad, torch.tensor([[1.0, 1.0], [-1.0, 0.0]], dtype=torch.float64))
    assert fit.start == 0 and fit.other_modes == ()
    with pytest.raises(LaplaceError, match="start point"):  # as from that start alone
        laplace_fit(target.log_prob_and_grad, torch.tensor([[-1.0, 0.0], [1.0, 1.0]], dtype=torch.float64))


def test_chains_left_in_a_mode_without_mass_are_reported():
    # a minor mode at -0.3 with a millionth of the mass (13.8 nats of Laplace mass below the main one at
    # +1.5; a Gaussian component's Laplace mass is its weight): one of the fit's fixed random starts
    # (-0.16) lies in its basin; chains started there stay there
    mix = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(torch.tensor([1e-6, 1.0 - 1e-6], dtype=torch.float64)),
        torch.distributions.Normal(torch.tensor([-0.3, 1.5], dtype=torch.float64),
                                   torch.tensor([0.1, 0.3], dtype=torch.float64)))
    target = as_target(torch.distributions.Independent(mix.expand([1]), 1))
    # the premise: the samplers' starts (from the init mean 1.05) reach the minor mode
    (minor, _), = laplace_fit(target.log_prob_and_grad, laplace_starts(torch.tensor([1.05], dtype=torch.float64),
                                                                       4)).other_modes
    assert float(minor[0]) == pytest.approx(-0.3, abs=0.01)  # the main component's tail moves it by 1e-3
    ula = sciml.load("sampler", "ula")(num_steps=20, step_size=1e-3, precondition="laplace", progress=False)
    stuck = torch.cat([torch.full((16, 1), -0.3), torch.full((48, 1), 1.5)]).double()
    with pytest.warns(RuntimeWarning, match="16 near a mode 14 nats"):
        res = ula.sample(target, 64, init=stuck, generator=torch.Generator().manual_seed(0))
    (count, allowed, gap), = res.diagnostics["minor_mode_draws"]
    # the gap is log(1e6) up to the main component's tail at the minor mode (exp(-18) against a peak of
    # 4e-6: 0.4 % of the density there, more of its curvature): 0.05 nats
    assert count == 16 and allowed == 3.0 and gap == pytest.approx(math.log(1e6), abs=0.05)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every chain in the main mode: nothing to report
        res = ula.sample(target, 64, init=torch.full((64, 1), 1.5).double(), generator=torch.Generator().manual_seed(0))
    assert res.diagnostics["minor_mode_draws"][0][0] == 0


def test_standardised_target_maps_points_and_gradients():
    mean, cov, target = _gaussian(3, seed=1)
    scale = torch.linalg.cholesky(cov)
    std = StandardisedTarget(target, mean, scale)
    z = torch.randn(5, 3, dtype=torch.float64)
    # a solve with a Cholesky factor of condition ~1e2: round-off ~1e-14, far inside 1e-10
    assert torch.allclose(std.to_z(std.to_x(z)), z, atol=1e-10)
    lp, g = std.log_prob_and_grad(z)
    # in z the Gaussian is N(0, I) up to the constant log|det scale|
    assert torch.allclose(g, -z, atol=1e-9)
    assert torch.allclose(lp + std.log_det, torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1), atol=1e-9)


def test_ais_with_the_laplace_preconditioner_gets_log_z_of_a_gaussian_exactly():
    # the Laplace fit of a Gaussian is the Gaussian: AIS's p0 is then the target in z, every weight equals
    # the normaliser, and log Z must come back in x units (the log|det scale| shift): 0 for a normalised density
    _, _, target = _gaussian()
    res = sciml.load("sampler", "ais")(num_steps=5, precondition="laplace", progress=False).sample(
        target, 64, generator=torch.Generator().manual_seed(0))
    assert res.diagnostics["preconditioner"] == "laplace"
    assert res.log_z == pytest.approx(0.0, abs=1e-5)
    assert res.n_evals > 64 * 5  # the fit's evaluations are counted


def test_auto_preconditioning_applies_to_pyro_models_only():
    _, _, gauss = _gaussian()
    ula = sciml.load("sampler", "ula")(num_steps=5, progress=False)
    assert ula.sample(gauss, 8).diagnostics["preconditioner"] == "none"
    post = load("sblrc-blr")
    diag = ula.sample(post.target(), 8).diagnostics
    # a unimodal posterior: every start reaches the same mode, the initial point's fit is kept
    assert diag["preconditioner"] == "laplace" and diag["preconditioner_start"] == 0


def test_bad_precondition_and_budget_arguments_are_refused():
    cls = sciml.load("sampler", "mult-almc")
    with pytest.raises(ValueError, match="precondition"):
        cls(precondition="diag")
    with pytest.raises(ValueError, match="max_evals"):
        cls(max_evals=0)


def test_the_evaluation_budget_stops_the_run_with_a_warning():
    _, _, target = _gaussian()
    with pytest.warns(RuntimeWarning, match="max_evals=2000 was spent"):
        res = sciml.load("sampler", "ais")(num_steps=100, max_evals=2000, progress=False).sample(target, 64)
    assert res.diagnostics["budget_spent_at_step"] is not None and res.diagnostics["budget_spent_at_step"] < 100
    assert res.log_z is None and res.log_weights is None  # an unfinished annealing: weights dropped
    assert res.n_evals < 2000 + 64 * 4  # stops within the step that crossed the budget


def test_chain_diagnostics_flag_chains_that_disagree():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 500, 2, generator=g, dtype=torch.float64)
    ok = chain_diagnostics(x)
    assert float(ok["r_hat"].max()) < 1.02  # 4 x 500 independent draws: R-hat - 1 ~ 1/sqrt(2000)
    assert (ok["ess_bulk"] > 1000).all()
    x[0] += 1.0  # one chain one sd away
    assert float(chain_diagnostics(x)["r_hat"].min()) > 1.05
    with pytest.raises(ValueError, match="NaN"):
        chain_diagnostics(torch.full((2, 10, 1), math.nan))


def test_draw_diagnostics_see_copied_neighbours():
    g = torch.Generator().manual_seed(1)
    fresh = torch.randn(1000, 2, generator=g, dtype=torch.float64)
    copies = fresh[:100].repeat_interleave(10, dim=0)  # resampling duplicates sit next to each other
    assert float(draw_diagnostics(fresh)["ess_bulk"].min()) > 600
    assert float(draw_diagnostics(copies)["ess_bulk"].max()) < 300
    assert draw_diagnostics(fresh[:10]) == {}
    with pytest.raises(TypeError, match="diverged must be a bool mask, got torch.int64"):
        draw_diagnostics(fresh, torch.zeros(1000, dtype=torch.long))  # ~0 = -1 indexed rows
    with pytest.raises(ValueError, match="diverged must have shape"):
        draw_diagnostics(fresh, torch.zeros(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="groups must be >= 1"):
        draw_diagnostics(fresh, groups=0)
    with pytest.raises(ValueError, match="x must have 2 dimensions"):
        draw_diagnostics(fresh[:, 0])
    with pytest.raises(ValueError, match="at least one chain"):
        chain_diagnostics(torch.zeros(0, 10, 2))  # NaN figures before


def test_low_density_draws_flag_lost_chains_but_no_exact_draw():
    # exact draws: the rule's width (2 (log n + 5) IQRs) puts a false flag at probability
    # n e^-36 (Gaussian, d = 2) and ~1e-8 (Cauchy) for n = 1e5; the reference draws likewise
    g = torch.Generator().manual_seed(2)
    gauss = -0.5 * (torch.randn(100_000, 2, generator=g, dtype=torch.float64) ** 2).sum(-1)
    cauchy = torch.distributions.Cauchy(0.0, 1.0).log_prob(
        torch.distributions.Cauchy(0.0, 1.0).sample((100_000,))).double()
    assert not bool(low_density_draws(gauss).any()) and not bool(low_density_draws(cauchy).any())
    post = load("gp_pois_regr-gp_pois_regr")
    target = post.target()
    ref = target.log_prob(post.unconstrained(target, post.reference.draws))
    assert not bool(low_density_draws(ref).any())
    # chains a sampler lost (the gp_pois_regr failure: log-densities of -1e2 to -1e302 against a bulk
    # near -48, and -inf) and non-finite values are flagged, nothing else
    lost = torch.cat([ref, torch.tensor([-177.3, -1e302, -math.inf, math.nan, math.inf], dtype=ref.dtype)])
    assert torch.equal(low_density_draws(lost).nonzero().flatten(), torch.arange(ref.numel(), lost.numel()))
    # too few finite values for a spread: only the non-finite ones
    few = torch.tensor([0.0, -1e6, -math.inf, 1.0], dtype=torch.float64)
    assert low_density_draws(few).tolist() == [False, False, True, False]
    with pytest.raises(ValueError, match="1-D"):
        low_density_draws(torch.zeros(3, 2))


def test_low_density_draws_known_false_alarm_a_rare_wide_component_in_high_dimension():
    # the rule assumes no far lump in the draws' log-densities: a 50-D mixture with 1 % of its mass in
    # a component 100x wider puts those draws d log 100 = 230 nats below the rest, and they are flagged
    # (the samplers keep them in diagnostics["low_density_draws"]); at 10-D (46 nats) they are not
    g = torch.Generator().manual_seed(0)
    for d, flagged in ((10, False), (50, True)):
        broad = torch.rand(1000, generator=g) < 0.01
        x = torch.randn(1000, d, generator=g, dtype=torch.float64) * torch.where(broad, 1.0, 0.01)[:, None]
        lp = torch.logaddexp(math.log(0.99) - d * math.log(0.01) - 0.5 * (x / 0.01).square().sum(-1),
                             math.log(0.01) - 0.5 * x.square().sum(-1))
        assert torch.equal(low_density_draws(lp), broad if flagged else torch.zeros_like(broad))


def test_samples_carry_ess_and_rhat_and_convert_to_inference_data():
    post = load("eight_schools-eight_schools_noncentered")
    target = post.target()
    res = sciml.load("sampler", "ula")(num_steps=20, progress=False).sample(
        target, 64, generator=torch.Generator().manual_seed(0))
    kept = int((~res.diverged).sum())  # a 20-step run may lose a chain (low density): conversion drops its row
    assert kept > 0
    assert res.diagnostics["ess_bulk"].shape == (target.dim,)
    assert res.diagnostics["r_hat"].shape == (target.dim,)
    idata = target.to_inference_data(res)
    assert set(idata.posterior.data_vars) == {"mu", "tau", "theta_trans"}
    assert idata.posterior["theta_trans"].shape == (kept, 1, 8)
    assert bool((idata.posterior["tau"] > 0).all())
    trace = idata.posterior["mu"].values
    assert trace.shape == (kept, 1)
    torch.testing.assert_close(torch.as_tensor(trace[:, 0]), target.to_constrained(res.x[~res.diverged])["mu"])
    with pytest.raises(ValueError, match="chains, draws"):
        target.to_inference_data(torch.zeros(3, 2))
    with pytest.raises(ValueError, match="no finite draws to convert"):
        target.to_inference_data(torch.full((3, target.dim), float("nan")))  # an empty InferenceData before


@pytest.mark.parametrize("name", ["kidiq-kidscore_momiq", "sblrc-blr", "eight_schools-eight_schools_noncentered"])
def test_mult_almc_defaults_match_the_reference_draws(name):
    # eight schools is the hierarchical model that used to stall (0 of 1000 steps in 90 s without the
    # preconditioner); 200 steps instead of 1000 and 256 chains keep it CI-sized. The tolerances are
    # Monte Carlo errors: with n independent draws the mean is off by ~ sd / sqrt(n) and the sd ratio
    # by ~ 1 / sqrt(2 n); 4.5 standard errors over <= 10 parameters (the reference's own error,
    # 1 / sqrt(10 000), is far below)
    post, n = load(name), 256
    target = post.target()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no divergences, no non-finite values
        res = sciml.load("sampler", "mult-almc")(num_steps=200, progress=False).sample(
            target, n, generator=torch.Generator().manual_seed(1))
    assert res.diagnostics["preconditioner"] == "laplace"
    theta = post.parameters(target, res.x)
    ref = post.reference
    z_mean = (theta.mean(0) - ref.mean) / ref.sd * math.sqrt(n)
    z_sd = (theta.std(0) / ref.sd - 1.0) * math.sqrt(2 * n)
    assert float(z_mean.abs().max()) < 4.5, z_mean
    assert float(z_sd.abs().max()) < 4.5, z_sd
