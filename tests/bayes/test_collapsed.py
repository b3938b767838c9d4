"""Exact checks of the collapsed likelihoods against direct multivariate-normal densities."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats as st

from mlmbias.bayes import collapsed as C
from mlmbias.bayes.priors import Priors
from mlmbias.groupstats import GroupStats, group_stats_from_arrays

MODELS = list(C.MODEL_INFO)


def _panel(seed_panel, rep=0):
    mask = np.asarray(seed_panel.mask[rep])
    region = np.asarray(seed_panel.region[rep])[mask]
    x = np.asarray(seed_panel.x[rep, :, 0])[mask]
    y = np.asarray(seed_panel.y[rep])[mask]
    return region, x, y


def _one(stats, rep=0):
    return GroupStats(*(a[rep] for a in stats))


def _obs_design(spec, rd, region, x):
    """Rows of theta's design per observation: h_r + (x - xbar_r) e_1."""
    xbar = np.asarray(rd.xbar)
    h = np.asarray(C.design(spec, rd))
    return h[region] + np.outer(x - xbar[region], [0.0, 1.0, 0.0])


def _cov(region, sigma, sigma_a):
    same = region[:, None] == region[None, :]
    return sigma**2 * np.eye(len(region)) + sigma_a**2 * same


def _effective_sigma_a(spec, sigma_a):
    return sigma_a if float(spec.sa_sampled) > 0 else float(spec.sa_fixed)


@pytest.mark.parametrize("sigma, sigma_a", [(9.0, 4.0), (3.0, 25.0), (12.0, 0.0)])
def test_intercept_marginal_equals_mvn(seed_panel, seed_stats, sigma, sigma_a):
    """DESIGN.md's formula equals log N(y; c + beta x, s^2 I + s_a^2 J) region by region."""
    region, x, y = _panel(seed_panel)
    rd = C.region_data(_one(seed_stats))
    c = jnp.asarray(np.linspace(-20.0, 30.0, rd.n.shape[0]))
    beta = 1.3
    got = float(C.intercept_marginal_loglik(rd, c, beta, sigma, sigma_a))
    mean = np.asarray(c)[region] + beta * x
    want = st.multivariate_normal(mean, _cov(region, sigma, sigma_a)).logpdf(y)
    assert got == pytest.approx(want, abs=1e-8)


@pytest.mark.parametrize("model", MODELS)
def test_model_forms_equal_mvn(seed_panel, seed_stats, model):
    """For each model: the fast (size-class) form, the DESIGN form and the direct
    observation-level density agree to 1e-8, and so do the coefficient-marginal
    likelihood and the coefficients' conditional posterior."""
    region, x, y = _panel(seed_panel)
    stats = _one(seed_stats)
    rd = C.region_data(stats)
    ids, m = C.size_classes(np.asarray(stats.n)[None])
    cs = C.class_sums(rd, jnp.asarray(ids[0]), m)
    spec = C.linear_spec(model, Priors())
    theta = jnp.array([3.0, 1.2, -0.7])
    sigma, sigma_a = 9.0, _effective_sigma_a(spec, 4.0)
    X = _obs_design(spec, rd, region, x)
    offset = float(spec.offset)
    cov = _cov(region, sigma, sigma_a)
    direct = st.multivariate_normal(offset + X @ np.asarray(theta), cov).logpdf(y)

    c = offset + C.design(spec, rd) @ theta - theta[1] * rd.xbar
    design_form = float(C.intercept_marginal_loglik(rd, c, theta[1], sigma, sigma_a))
    fast = float(C.loglik_given_coefficients(spec, cs, theta, sigma, sigma_a))
    assert design_form == pytest.approx(direct, abs=1e-8)
    assert fast == pytest.approx(direct, abs=1e-8)

    # theta integrated out too: y ~ N(o + X loc, cov + X V0 X')
    v0 = np.diag(np.asarray(spec.scale) ** 2)
    loc = np.asarray(spec.loc)
    marg = st.multivariate_normal(offset + X @ loc, cov + X @ v0 @ X.T).logpdf(y)
    post = C.coefficient_posterior(spec, cs, sigma, sigma_a)
    assert float(post.log_marginal) == pytest.approx(marg, abs=1e-8)

    # theta | sigma, sigma_a, y: precision X' cov^-1 X + V0^-1, mean by GLS with the prior
    ci = np.linalg.inv(cov)
    prec = X.T @ ci @ X + np.linalg.inv(v0)
    mean = np.linalg.solve(prec, X.T @ ci @ (y - offset) + np.linalg.solve(v0, loc))
    cov_theta = np.asarray(C.coefficient_covariance(post))
    np.testing.assert_allclose(cov_theta, np.linalg.inv(prec), rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(np.asarray(post.mean), mean, rtol=1e-9, atol=1e-10)


def test_size_classes_change_nothing(seed_stats):
    """Pooling regions of equal size is exact: same density as one class per region."""
    stats = _one(seed_stats, 1)
    rd = C.region_data(stats)
    ids, m = C.size_classes(np.asarray(stats.n)[None])
    assert m < stats.n.shape[0]
    pooled = C.class_sums(rd, jnp.asarray(ids[0]), m)
    r = stats.n.shape[0]
    single = C.class_sums(rd, jnp.arange(r), r)
    spec = C.linear_spec("mundlak", Priors())
    for u in ([2.0, 1.0], [3.0, -2.0], [0.5, 3.5]):
        a = C.logdensity_scales(jnp.asarray(u), pooled, spec)
        b = C.logdensity_scales(jnp.asarray(u), single, spec)
        assert float(a) == pytest.approx(float(b), rel=1e-12)


def test_size_classes_ids():
    n = np.array([[3, 5, 3, 7], [2, 2, 2, 2]])
    ids, m = C.size_classes(n)
    np.testing.assert_array_equal(ids, [[0, 1, 0, 2], [0, 0, 0, 0]])
    assert m == 3


def test_empty_region_contributes_nothing(seed_panel):
    """A region without observations changes no likelihood (user data can have one)."""
    region, x, y = _panel(seed_panel)
    r = int(region.max()) + 1
    full = group_stats_from_arrays(region, x, y, r)
    gap = group_stats_from_arrays(region, x, y, r + 1)  # region r is empty
    spec = C.linear_spec("re", Priors())
    vals = []
    for stats, m in ((full, r), (gap, r + 1)):
        one = _one(stats)
        cs = C.class_sums(C.region_data(one), jnp.arange(m), m)
        vals.append(float(C.logdensity_scales(jnp.array([2.2, 1.4]), cs, spec)))
    assert vals[0] == pytest.approx(vals[1], abs=1e-10)


@pytest.mark.parametrize("model", MODELS)
def test_logdensity_finite_with_finite_gradient(seed_stats, model):
    stats = _one(seed_stats)
    ids, m = C.size_classes(np.asarray(stats.n)[None])
    cs = C.class_sums(C.region_data(stats), jnp.asarray(ids[0]), m)
    spec = C.linear_spec(model, Priors())
    for u in ([-8.0, -8.0], [8.0, 8.0], [2.3, -12.0]):
        val, grad = jax.value_and_grad(C.logdensity_scales)(jnp.asarray(u), cs, spec)
        assert np.isfinite(float(val)) and np.isfinite(np.asarray(grad)).all()
        z = jnp.concatenate([jnp.array([5.0, 1.0, -1.0]), jnp.asarray(u)])
        val, grad = jax.value_and_grad(C.logdensity_full)(z, cs, spec)
        assert np.isfinite(float(val)) and np.isfinite(np.asarray(grad)).all()


def test_draw_coefficients_has_the_conditional_moments(seed_stats):
    stats = _one(seed_stats)
    cs = C.class_sums(C.region_data(stats), jnp.arange(stats.n.shape[0]), stats.n.shape[0])
    spec = C.linear_spec("mundlak", Priors())
    post = C.coefficient_posterior(spec, cs, 10.0, 3.0)
    keys = jax.random.split(jax.random.PRNGKey(0), 20000)
    draws = np.asarray(jax.vmap(lambda k: C.draw_coefficients(k, post))(keys))
    cov = np.asarray(C.coefficient_covariance(post))
    sd = np.sqrt(np.diag(cov))
    z = (draws.mean(axis=0) - np.asarray(post.mean)) / (sd / np.sqrt(len(draws)))
    assert np.all(np.abs(z) < 4.5)  # 3 tests, false-failure rate about 2e-5
    np.testing.assert_allclose(np.cov(draws.T), cov, rtol=0.05, atol=0.05 * sd.max() ** 2)


def test_linear_spec_rejects_unknown_model():
    with pytest.raises(ValueError, match="unknown model"):
        C.linear_spec("nope", Priors())
