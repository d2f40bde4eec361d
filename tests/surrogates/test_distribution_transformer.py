"""distribution-transformer: exact posteriors against brute force, the network's invariances and
validity, training, save / load, errors, and the shipped models against exact posteriors."""

from __future__ import annotations

import math

import pytest
import torch
from sciml_plugins.distribution_transformer import DTNetwork, GMMGaussian, Mixture, NormalVariance
from sciml_plugins.distribution_transformer.mixtures import from_distribution, mixture_kl
from sciml_plugins.distribution_transformer.tasks import (
    GPLengthscale,
    gmm_gaussian_posterior,
    gp_lengthscale_grid_posterior,
    grid_kl,
    inverse_gamma_log_variance_log_prob,
    normal_variance_kl,
    random_walk_prediction,
)

import sciml
from sciml.io import SaveFileError

DT = sciml.load("surrogate", "distribution-transformer")


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# -- exact answers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 3, 12])
def test_gmm_gaussian_posterior_matches_the_normalised_grid_density(n):
    p = GMMGaussian().simulate(3, _gen(n), n=n, components=3, dtype=torch.float64)
    post = gmm_gaussian_posterior(p.prior, p.z, p.extras["noise_scale"])
    for b in range(3):
        sigma, centre = float(p.extras["noise_scale"][b]), p.z[b].mean(0)
        axis = torch.linspace(-8 * sigma, 8 * sigma, 641, dtype=torch.float64)
        h = float(axis[1] - axis[0])
        x = torch.stack(torch.meshgrid(axis + centre[0], axis + centre[1], indexing="ij"), -1).reshape(-1, 1, 2)
        one = Mixture(p.prior.log_weights[b:b + 1], p.prior.means[b:b + 1], p.prior.scale_tril[b:b + 1])
        log_joint = one.log_prob(x)[:, 0] - 0.5 * ((x - p.z[b]) ** 2).sum((-1, -2)) / sigma**2
        grid = torch.exp(log_joint - torch.logsumexp(log_joint, 0)) / h**2
        exact = Mixture(post.log_weights[b:b + 1], post.means[b:b + 1], post.scale_tril[b:b + 1])
        dens = exact.log_prob(x)[:, 0].exp()
        # the grid covers +-8 sigma around the data mean: the posterior (sd <= sigma / sqrt(n)) has no mass
        # beyond it, and the midpoint sum of this smooth density is exact to round-off
        assert torch.allclose(dens, grid, rtol=0, atol=1e-9 * float(dens.max()))


def test_a_zero_size_data_set_leaves_the_prior():
    p = GMMGaussian().simulate(4, _gen(), n=0, dtype=torch.float64)
    post = gmm_gaussian_posterior(p.prior, p.z, p.extras["noise_scale"])
    assert torch.equal(post.means, p.prior.means) and torch.equal(post.scale_tril, p.prior.scale_tril)


def test_normal_variance_posterior_draws_follow_the_conjugate_posterior():
    task = NormalVariance(posterior_draws=20000)
    p = task.simulate(3, _gen(), n=5, dtype=torch.float64)
    a = p.prior[:, 0] + 2.5
    b = p.prior[:, 1] + 0.5 * p.z.square().sum((1, 2))
    mean = torch.log(b) - torch.special.digamma(a)  # E[log v], v ~ InverseGamma(a, b)
    sd = torch.special.polygamma(1, a).sqrt()
    assert torch.allclose(p.theta[..., 0].mean(1), mean, atol=5 * float(sd.max()) / math.sqrt(20000))


def test_the_log_variance_density_and_the_quadrature_kl():
    alpha, beta = torch.tensor([2.0, 7.5], dtype=torch.float64), torch.tensor([0.3, 4.0], dtype=torch.float64)
    theta = torch.linspace(-30, 60, 400001, dtype=torch.float64)[:, None]
    dens = inverse_gamma_log_variance_log_prob(theta, alpha, beta).exp()
    assert torch.allclose(torch.trapezoid(dens, theta, dim=0), torch.ones(2, dtype=torch.float64), atol=1e-10)
    # a one-component q equal to the Laplace approximation: KL against brute-force quadrature
    mode = torch.log(beta / alpha)
    q = Mixture(torch.zeros(2, 1, dtype=torch.float64), mode[:, None, None], alpha.rsqrt()[:, None, None, None])
    kl = normal_variance_kl(q, alpha, beta)
    log_p = inverse_gamma_log_variance_log_prob(theta, alpha, beta)
    brute = torch.trapezoid(log_p.exp() * (log_p - q.log_prob(theta[..., None])), theta, dim=0)
    assert torch.allclose(kl, brute, rtol=1e-8, atol=0) and (kl > 0).all()


def test_gp_lengthscale_grid_posterior_matches_importance_sampling_from_the_prior():
    task = GPLengthscale()
    p = task.simulate(2, _gen(4), n=8, dtype=torch.float64)
    x, y = p.z[..., 0], p.z[..., 1]
    grid = task.grid()
    log_p = gp_lengthscale_grid_posterior(p.prior, x, y, grid, task.noise_var)
    grid_mean = torch.trapezoid(torch.exp(log_p) * grid, grid, dim=-1)  # E[log l | data]
    # self-normalised importance sampling with the prior as proposal: 20000 draws per problem
    from sciml_plugins.distribution_transformer.tasks import gp_log_marginal_likelihood, standard_gamma

    ell = standard_gamma(p.prior[:, :1].expand(2, 20000).contiguous(), _gen(5)) / p.prior[:, 1:]
    log_w = gp_log_marginal_likelihood(x, y, ell, task.noise_var)
    w = torch.softmax(log_w, -1)
    is_mean = (w * ell.log()).sum(-1)
    ess = 1 / w.square().sum(-1)
    sd = ((w * (ell.log() - is_mean[:, None]).square()).sum(-1)).sqrt()
    assert (ess > 500).all()
    # the grid (spacing 0.035) is exact to ~1e-4 here; the estimator's sd is sd / sqrt(ess)
    assert ((grid_mean - is_mean).abs() < 5 * sd / ess.sqrt() + 1e-3).all()
    q = Mixture(torch.zeros(2, 1, dtype=torch.float64), grid_mean[:, None, None], sd[:, None, None, None])
    assert (grid_kl(q, grid, log_p) >= 0).all()


def test_mixture_features_round_trip_and_mc_kl_of_equal_mixtures_is_zero():
    prior = GMMGaussian().simulate(5, _gen(), n=0, components=4, dtype=torch.float64).prior
    back = Mixture.from_features(prior.features(), 2)
    # float64 log / exp / log_softmax round trip of O(10) entries: ~1e-14, well inside 1e-12
    for part in ("log_weights", "means", "scale_tril"):
        assert torch.allclose(getattr(back, part), getattr(prior, part), atol=1e-12)
    kl, se = mixture_kl(prior, back, 100, _gen())
    assert kl.abs().max() < 1e-10 and (se < 1e-10).all()


def test_features_other_than_the_means_do_not_change_under_a_scaling():
    """The encoding a network corrects additively: only the means carry the scale of ``x``."""
    prior = GMMGaussian().simulate(5, _gen(), n=0, components=3, dtype=torch.float64).prior
    c = 37.0
    f, fc = prior.features(), Mixture(prior.log_weights, c * prior.means, c * prior.scale_tril).features()
    # each side one float64 rounding of the same product (the ratios: two products and a quotient)
    assert torch.allclose(fc[..., 1:3], c * f[..., 1:3], rtol=1e-14, atol=0)
    # log(c L_ii) = log c + log L_ii: exact up to one rounding of O(1) numbers
    assert torch.allclose(fc[..., 3:5], f[..., 3:5] + math.log(c), rtol=0, atol=1e-13)
    # the log-weights are the same numbers; the lower feature asinh(c L_10 / (c L_11)) differs by the
    # roundings of two products and a quotient, which asinh (relative condition number <= 1) keeps
    # at a few ulps
    assert torch.allclose(fc[..., [0, 5]], f[..., [0, 5]], rtol=1e-14, atol=0)
    # the lower feature is asinh(L_10 / L_11) (its row's diagonal, not its column's L_00): in R^2
    # that is atanh of the correlation. rho carries a few roundings (~1e-15) that atanh amplifies
    # by 1 / (1 - rho^2); the feature side is a few ulps of an O(1) number
    cov = prior.scale_tril @ prior.scale_tril.transpose(-1, -2)
    rho = cov[..., 1, 0] / (cov[..., 0, 0] * cov[..., 1, 1]).sqrt()
    assert ((f[..., 5] - torch.atanh(rho)).abs() <= 1e-14 / (1 - rho**2)).all()


def test_extreme_decoded_features_stay_finite_valid_cholesky_factors():
    """A network output of +-1e4 in every feature is clamped: finite weights, means and positive
    diagonals in float32 (the sinh of an unclamped lower feature of 1e4 overflows)."""
    f = torch.tensor([1e4, -1e4]).repeat(3, 2, 3)[..., :6]
    mix = Mixture.from_features(f, 2)
    assert all(torch.isfinite(t).all() for t in (mix.log_weights, mix.means, mix.scale_tril))
    assert (torch.diagonal(mix.scale_tril, dim1=-2, dim2=-1) > 0).all()


def test_the_decoded_means_are_affine_in_the_prior_means():
    """``(I + M) mu + delta`` with ``M``, ``delta`` from the transformer's output, which sees the
    means only through its token embedding: with that embedding blind to the means, shifting every
    prior mean by ``t`` moves the decoded mean by exactly ``(I + M) t``."""
    task = GMMGaussian()
    net = _random_network(task)
    with torch.no_grad():
        net.embed_prior.weight[:, 1:3] = 0.0
    p = task.simulate(4, _gen(), n=5, components=2, dtype=torch.float64)
    enc = task.encode(p.prior, p.z, p.extras)
    shifted = enc.prior.clone()
    t = torch.tensor([40.0, -25.0], dtype=torch.float64)
    shifted[..., 1:3] += t
    base, moved = net(enc.prior, enc.obs, enc.context), net(shifted, enc.obs, enc.context)
    h = net.hidden(net.prior_features(enc.prior), enc.obs, enc.context)
    step = torch.eye(2, dtype=torch.float64) + net.mean_map(h).unflatten(-1, (2, 2))
    # a difference of O(100) float64 numbers (|t| = 47, |M t| ~ 50): absolute error ~1e-13
    assert torch.allclose(moved.means - base.means, step @ t, rtol=1e-12, atol=1e-12)
    # the hidden state is the same in both calls (0 * mean is exactly 0), so only the
    # features' own float64 round trip differs: far inside these tolerances
    for part in ("log_weights", "scale_tril"):
        assert torch.allclose(getattr(moved, part), getattr(base, part), rtol=1e-12, atol=1e-14)


def test_random_walk_prediction_adds_the_step_covariance():
    prior = GMMGaussian().simulate(2, _gen(), n=0, components=2, dtype=torch.float64).prior
    pred = random_walk_prediction(prior, 0.5)
    cov = lambda m: m.scale_tril @ m.scale_tril.transpose(-1, -2)  # noqa: E731
    assert torch.allclose(cov(pred) - cov(prior), 0.25 * torch.eye(2, dtype=torch.float64).expand(2, 2, 2, 2))


# -- the network -----------------------------------------------------------------------------------


def _random_network(task, seed=0):
    torch.manual_seed(seed)
    net = DTNetwork(task.dim, task.obs_features, task.context_features, prior_params=task.prior_params,
                    components=task.components[1] if task.prior_params else 0, d_model=16, heads=2, layers=2, ffn=32)
    for p in net.parameters():  # leave the zero initialisation: every path contributes
        torch.nn.init.normal_(p, std=0.3)
    return net.double()


def test_an_untrained_model_returns_its_prior():
    task = GMMGaussian()
    torch.manual_seed(0)
    net = DTNetwork(2, 2, 1, d_model=16, heads=2, layers=2, ffn=32).double()
    p = task.simulate(6, _gen(), n=7, components=3, dtype=torch.float64)
    enc = task.encode(p.prior, p.z, p.extras)
    out = enc.undo(net(enc.prior, enc.obs, enc.context))
    # the correction is exactly zero; only the float64 standardise / map-back round trip remains (~1e-14)
    for part in ("log_weights", "means", "scale_tril"):
        assert torch.allclose(getattr(out, part), getattr(p.prior, part), atol=1e-12)


@pytest.mark.parametrize("task", [GMMGaussian(), NormalVariance()], ids=lambda t: t.name)
def test_outputs_are_valid_mixtures_even_for_extreme_inputs(task):
    net = _random_network(task)
    p = task.simulate(8, _gen(), n=16, dtype=torch.float64)
    enc = task.encode(p.prior, p.z * 1e3, p.extras)  # far outside the trained range
    mix = enc.undo(net(enc.prior, enc.obs, enc.context))
    assert torch.allclose(mix.log_weights.exp().sum(-1), torch.ones(8, dtype=torch.float64))
    assert torch.isfinite(mix.means).all() and (torch.diagonal(mix.scale_tril, dim1=-2, dim2=-1) > 0).all()
    assert torch.isfinite(mix.log_prob(mix.sample(3, _gen()))).all()


def test_permutation_invariance_in_observations_and_components():
    task = GMMGaussian()
    net = _random_network(task)
    p = task.simulate(5, _gen(), n=9, components=4, dtype=torch.float64)

    def posterior(prior, z):
        enc = task.encode(prior, z, p.extras)
        return enc.undo(net(enc.prior, enc.obs, enc.context))

    base = posterior(p.prior, p.z)
    z_perm = p.z[:, torch.randperm(9, generator=_gen(1))]
    k = torch.randperm(4, generator=_gen(2))
    prior_perm = Mixture(p.prior.log_weights[:, k], p.prior.means[:, k], p.prior.scale_tril[:, k])
    same = posterior(p.prior, z_perm)
    perm = posterior(prior_perm, p.z)
    for part in ("log_weights", "means", "scale_tril"):
        assert torch.allclose(getattr(same, part), getattr(base, part), atol=1e-10)
        assert torch.allclose(getattr(perm, part), getattr(base, part)[:, k], atol=1e-10)


# -- the plugin: training, queries, errors, save / load -----------------------------------------------


@pytest.fixture(scope="module")
def tiny():
    """A tiny model after a few steps (its answers are not accurate; the API and the checks are tested)."""
    return DT(d_model=16, heads=2, layers=1, ffn=16).fit(num_steps=3, batch_size=8, generator=_gen(), progress=False)


def _query(b=3, n=5, k=2, seed=0):
    p = GMMGaussian().simulate(b, _gen(seed), n=n, components=k, dtype=torch.float64)
    return p.prior.distribution(), p.z, p.extras["noise_scale"]


def test_predict_returns_a_batch_of_mixtures_and_training_lowers_the_loss(tiny):
    prior, z, sigma = _query()
    q = tiny.predict(prior, z, noise_scale=sigma)
    assert isinstance(q, torch.distributions.MixtureSameFamily)
    assert isinstance(q.component_distribution, torch.distributions.MultivariateNormal)
    assert q.batch_shape == (3,) and q.event_shape == (2,) and q.mixture_distribution.logits.dtype == torch.float64
    assert torch.isfinite(q.log_prob(torch.zeros(3, 2, dtype=torch.float64))).all()
    assert tiny.predict(prior, z, noise_scale=0.5).batch_shape == (3,)  # a float noise scale
    longer = DT(d_model=16, heads=2, layers=1, ffn=16).fit(num_steps=60, batch_size=64, lr=3e-3, generator=_gen(),
                                                           progress=False)
    losses = longer.diagnostics["loss_history"]
    assert sum(losses[-10:]) < sum(losses[:10])


def test_bad_queries_get_clear_errors_and_out_of_range_ones_a_warning(tiny):
    prior, z, sigma = _query()
    with pytest.raises(TypeError, match="noise_scale="):
        tiny.predict(prior, z)
    with pytest.raises(ValueError, match="noise_scale must be positive"):
        tiny.predict(prior, z, noise_scale=-1.0)
    with pytest.raises(ValueError, match=r"z must have shape \(B=3, n, 2\)"):
        tiny.predict(prior, z[..., :1], noise_scale=sigma)
    with pytest.raises(ValueError, match="non-finite"):
        tiny.predict(prior, z.clone().fill_(float("nan")), noise_scale=sigma)
    with pytest.raises(TypeError, match="MixtureSameFamily"):
        tiny.predict(torch.distributions.Normal(0.0, 1.0), z, noise_scale=sigma)
    zero = torch.distributions.MixtureSameFamily(  # torch would clamp the weight to eps: a token never trained on
        torch.distributions.Categorical(probs=torch.tensor([[0.0, 1.0]] * 3, dtype=torch.float64)), prior.component_distribution)
    with pytest.raises(ValueError, match="component of weight 0"):
        tiny.predict(zero, z, noise_scale=sigma)
    five = Mixture(torch.full((3, 5), -math.log(5), dtype=torch.float64), torch.zeros(3, 5, 2, dtype=torch.float64),
                   torch.eye(2, dtype=torch.float64).expand(3, 5, 2, 2))
    with pytest.raises(ValueError, match="5 components; the model was trained on 1 - 4"):
        tiny.predict(five.distribution(), z, noise_scale=sigma)
    three_d = torch.distributions.MultivariateNormal(torch.zeros(3, 3), torch.eye(3))
    with pytest.raises(ValueError, match="R\\^2"):
        tiny.predict(three_d, z, noise_scale=sigma)
    with pytest.warns(UserWarning, match="outside the trained range"):
        tiny.predict(prior, z, noise_scale=5.0)
    with pytest.warns(UserWarning, match="40 observations"):
        tiny.predict(prior, torch.zeros(3, 40, 2, dtype=torch.float64), noise_scale=sigma)
    import numpy as np

    assert tiny.predict(prior, z, noise_scale=np.float32(0.5)).batch_shape == (3,)  # numpy scalars are real
    assert tiny.predict(prior, z, noise_scale=np.full(3, 0.5)).batch_shape == (3,)
    for bad in ("0.5", 1j, torch.tensor([0.5j] * 3), True):
        with pytest.raises(TypeError, match="noise_scale must be a real float or a real tensor"):
            tiny.predict(prior, z, noise_scale=bad)
    far = Mixture(torch.zeros(3, 1, dtype=torch.float64), torch.full((3, 1, 2), 1e30, dtype=torch.float64),
                  torch.eye(2, dtype=torch.float64).expand(3, 1, 2, 2))
    with pytest.raises(ValueError, match=r"not finite for batch rows \[0, 1, 2\]"):
        tiny.predict(far.distribution(), z, noise_scale=sigma)  # standardised 1e30 overflows float32
    with pytest.raises(RuntimeError, match="not trained"):
        DT().predict(prior, z, noise_scale=sigma)
    with pytest.raises(ValueError, match="task"):
        DT("no-such-task")


def test_save_load_round_trip_and_foreign_files(tiny, tmp_path):
    prior, z, sigma = _query()
    path = tmp_path / "dt.pt"
    tiny.save(path)
    back = DT.load(path)
    a, b = tiny.predict(prior, z, noise_scale=sigma), back.predict(prior, z, noise_scale=sigma)
    assert torch.equal(a.component_distribution.loc, b.component_distribution.loc)
    torch.save({"weights": 1}, tmp_path / "foreign.pt")
    with pytest.raises(SaveFileError):
        DT.load(tmp_path / "foreign.pt")
    with pytest.raises(SaveFileError, match="trained on the task 'gmm-gaussian'"):
        DT.load(path, task=NormalVariance())
    assert DT.load(path, task="gmm-gaussian").task.name == "gmm-gaussian"
    state = torch.load(path, weights_only=True)
    state["state"] = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
                      for k, v in state["state"].items()}
    torch.save(state, tmp_path / "nan.pt")
    with pytest.raises(SaveFileError, match="non-finite"):
        DT.load(tmp_path / "nan.pt")


def test_predictions_follow_a_shift_of_prior_and_data_far_from_the_origin(tiny):
    """Centring in float64 before the network's float32: a shift of 1e7 moves the means by the shift
    and leaves the rest alone (float32 centring lost the digits: KL 3.6 at 1e7)."""
    prior, z, sigma = _query()
    mix = from_distribution("prior", prior)
    shift = 1e7
    moved = Mixture(mix.log_weights, mix.means + shift, mix.scale_tril).distribution()
    a, b = tiny.predict(prior, z, noise_scale=sigma), tiny.predict(moved, z + shift, noise_scale=sigma)
    # float32 network outputs, scaled back by the posterior scale (<= 2): differences of float32 round-off
    tol = 1e-5 * (1 + float(a.component_distribution.loc.abs().max()))
    assert torch.allclose(b.component_distribution.loc - shift, a.component_distribution.loc, atol=tol)
    assert torch.allclose(b.component_distribution.scale_tril, a.component_distribution.scale_tril, atol=tol)
    assert torch.allclose(b.mixture_distribution.logits, a.mixture_distribution.logits, atol=1e-5)


def test_normal_variance_queries_return_a_distribution_over_the_variance():
    model = DT("normal-variance", d_model=16, heads=2, layers=1, ffn=16).fit(num_steps=2, batch_size=8,
                                                                             generator=_gen(), progress=False)
    prior = torch.distributions.InverseGamma(torch.tensor([2.0, 3.0]), torch.tensor([1.0, 0.5]))
    q = model.predict(prior, torch.randn(2, 6, dtype=torch.float64))
    assert isinstance(q, torch.distributions.TransformedDistribution) and q.batch_shape == (2,)
    v = q.sample((50,))
    assert (v > 0).all() and torch.isfinite(q.log_prob(v)).all()
    with pytest.raises(ValueError, match="must be positive"):
        model.predict(torch.tensor([[2.0, -1.0]]), torch.randn(1, 3))
    with pytest.raises(TypeError, match="InverseGamma"):
        model.predict(torch.distributions.Gamma(2.0, 1.0), torch.randn(1, 3))


def test_conformance_kit():
    from sciml.testing import check_surrogate

    prior, z, sigma = _query()
    factory = lambda: DT(d_model=16, heads=2, layers=1, ffn=16)  # noqa: E731
    passed = check_surrogate(factory, (), (prior, z), {"num_steps": 2, "batch_size": 4, "progress": False},
                             {"noise_scale": sigma})  # raises on any failure
    assert "state_dict round trip" in passed and "deterministic predict" in passed


# -- the shipped models against exact posteriors (fresh problems: seeds no training run used) -------


def test_the_shipped_models_are_listed():
    assert DT.pretrained() == ["gmm-gaussian", "normal-variance"]
    with pytest.raises(ValueError, match="name"):
        DT.pretrained("no-such-model")


def _gmm_kl(model, problems, g):
    kls = []
    for p in problems:
        exact = gmm_gaussian_posterior(p.prior, p.z, p.extras["noise_scale"])
        q = from_distribution("q", model.predict(p.prior.distribution(), p.z, noise_scale=p.extras["noise_scale"]))
        kls.append(mixture_kl(exact, q, 2000, g)[0])
    return torch.cat(kls)


def test_shipped_gmm_gaussian_mean_kl_on_fresh_draws_of_the_task():
    """The issue's criterion: mean KL to the exact posterior below 1e-2 on fresh draws of the task
    (data-set sizes and component counts as the task draws them; the mean is carried by rare
    problems, so the bar holds the estimate plus two standard errors)."""
    g = _gen(7_000)
    kl = _gmm_kl(DT.pretrained("gmm-gaussian"), [GMMGaussian().simulate(50, g, dtype=torch.float64)
                                                 for _ in range(16)], g)
    se = float(kl.std()) / math.sqrt(kl.numel())
    assert float(kl.mean()) + 2 * se < 1e-2, (float(kl.mean()), se)


@pytest.mark.parametrize("n", [0, 1, 4, 16])
def test_shipped_gmm_gaussian_typical_kl_at_every_size(n):
    """The median KL (the mean is carried by rare problems: see the benchmark page)."""
    g = _gen(7_100 + n)
    kl = _gmm_kl(DT.pretrained("gmm-gaussian"), [GMMGaussian().simulate(50, g, n=n, components=k,
                                                                        dtype=torch.float64) for k in (1, 2, 3, 4)], g)
    assert float(kl.median()) < 3e-3, float(kl.median())


@pytest.mark.parametrize("n", [0, 1, 4, 16])
def test_shipped_normal_variance_kl_to_the_exact_posterior(n):
    model = DT.pretrained("normal-variance")
    p = NormalVariance().simulate(200, _gen(8_000 + n), n=n, dtype=torch.float64)
    q = from_distribution("q", model.predict(p.prior, p.z).base_dist)
    kl = normal_variance_kl(q, p.prior[:, 0] + n / 2, p.prior[:, 1] + 0.5 * p.z.square().sum((1, 2)))
    se = float(kl.std()) / math.sqrt(kl.numel())
    assert float(kl.mean()) + 2 * se < 1e-2, (float(kl.mean()), se)


#: The stated distance of the chained model filter from the exact one, at every one of 10 steps: mean
#: KL(exact || model) and |expected NLL of the true state, model - exact| (nats).
FUSION_KL, FUSION_NLL = 0.005, 0.03


def test_ten_chained_fusion_steps_stay_close_to_the_exact_filter():
    from sciml_benchmarks.distribution_transformer import fusion_run

    g = _gen(9_000)
    run = fusion_run(DT.pretrained("gmm-gaussian"), 200, 10, g)
    for step, (x, exact, learned) in enumerate(run):
        kl, _ = mixture_kl(exact, learned, 2000, g)
        gap = float((exact.log_prob(x) - learned.log_prob(x)).mean())  # NLL(model) - NLL(exact filter)
        assert float(kl.mean()) < FUSION_KL and abs(gap) < FUSION_NLL, (step, float(kl.mean()), gap)
