"""The random-slope models bayes-rs and bayes-rs-mundlak (mlmbias.bayes.random_slopes).

The collapsed density is checked against dense Gaussian algebra on the
observations; the sampler against the observation-level NumPyro model
(``models.rs_model``) by NUTS on one small panel; calibration by SBC (slow).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.infer import MCMC, NUTS
from scipy import stats as st
from scipy.stats import norm

from mlmbias import ConfigError, flags
from mlmbias.bayes import random_slopes as RS
from mlmbias.bayes.methods import fit_model
from mlmbias.bayes.models import rs_model
from mlmbias.bayes.options import settings_from_options
from mlmbias.bayes.priors import Priors
from mlmbias.bayes.summary import ess_mean
from mlmbias.groupstats import GroupStats, group_stats_from_arrays
from mlmbias.registry import Batch, get_method

from .conftest import SMALL

MODELS = ("rs", "rs-mundlak")


def _panel(p, q, seed=0, groups=6, per=7, shift=40.0, empty=True, truth=None):
    """A small unbalanced panel on the user's scale (x shifted away from 0), with
    one empty group at the end when ``empty``."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(2, per + 1, groups)
    codes = np.repeat(np.arange(groups), sizes)
    n = codes.size
    x = shift + rng.normal(size=(n, p)) * 3.0 + rng.normal(size=(groups, p))[codes] * 2.0
    z = rng.normal(size=(groups + empty, q)) + 5.0
    t = truth or {"beta": 0.7, "sigma": 1.5, "sigma_a": 2.0, "sigma_b": 0.5, "rho": 0.4}
    u0 = rng.normal(size=groups) * t["sigma_a"]
    u1 = t["sigma_b"] * (
        t["rho"] * u0 / t["sigma_a"] + np.sqrt(1 - t["rho"] ** 2) * rng.normal(size=groups)
    )
    y = (
        3.0
        + x @ np.full(p, t["beta"])
        + z[codes] @ np.full(q, 0.3)
        + u0[codes]
        + u1[codes] * x[:, 0]
        + t["sigma"] * rng.normal(size=n)
    )
    return codes, x, y, z, groups + empty


def _stats(codes, x, y, z, r):
    s = group_stats_from_arrays(codes, x, y, r, z)
    return s, GroupStats(*(a[0] for a in s))


def _dense(codes, x, y, z, r, model, priors, sigma, sa, sb, rho):
    """log p(y | scales) and the mean and covariance of theta | scales, y, by dense algebra."""
    n, p = x.shape
    cols = [np.ones((n, 1)), x]
    counts = np.bincount(codes, minlength=r)
    xbar = np.stack([np.bincount(codes, x[:, j], r) / np.maximum(counts, 1) for j in range(p)], -1)
    loc = [priors.mu_loc] + [priors.beta_loc] * p
    scale = [priors.mu_scale] + [priors.beta_scale] * p
    if model == "rs-mundlak":
        cols.append(xbar[codes])
        loc += [priors.contextual_loc] * p
        scale += [priors.contextual_scale] * p
    cols.append(z[codes])
    loc += [priors.beta_loc] * z.shape[1]
    scale += [priors.beta_scale] * z.shape[1]
    xm = np.concatenate(cols, axis=1)
    loc, d = np.asarray(loc), np.diag(np.asarray(scale) ** 2)
    sig = np.array([[sa**2, rho * sa * sb], [rho * sa * sb, sb**2]])
    v = sigma**2 * np.eye(n)
    for g in range(r):
        idx = np.flatnonzero(codes == g)
        zg = np.column_stack([np.ones(idx.size), x[idx, 0]])
        v[np.ix_(idx, idx)] += zg @ sig @ zg.T
    vinv = np.linalg.inv(v)
    cov = np.linalg.inv(xm.T @ vinv @ xm + np.linalg.inv(d))
    mean = cov @ (xm.T @ vinv @ y + np.linalg.solve(d, loc))
    # Bayes' rule at the posterior mean (better conditioned than N(y; X loc, V + X D X'),
    # whose covariance mixes sigma^2 ~ 1 with prior variances ~ 1e5 at x ~ 40)
    logp = (
        st.multivariate_normal(xm @ mean, v).logpdf(y)
        + st.multivariate_normal(loc, d).logpdf(mean)
        + 0.5 * np.linalg.slogdet(2 * np.pi * cov)[1]
    )
    return logp, mean, cov


@functools.partial(jax.jit, static_argnums=3)
def _posterior(spec, stats, u, contextual):
    data = RS.rs_data(stats, contextual)
    return RS.coefficient_posterior(spec, data, RS.scales(spec, u))


POINTS = [
    (1.3, 2.0, 0.5, 0.4),
    (0.8, 0.3, 1.7, -0.85),
    (2.5, 4.0, 0.05, 0.999),
]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize(("p", "q"), [(1, 0), (2, 1)])
def test_collapsed_density_matches_dense_algebra(model, p, q):
    """log p(y | sigma, sigma_a, sigma_b, rho) and theta's conditional equal the dense
    Gaussian computation on the observations (x shifted to about 40, one empty group)."""
    priors = Priors()
    codes, x, y, z, r = _panel(p, q, seed=p + 10 * q)
    _, s1 = _stats(codes, x, y, z, r)
    spec = RS.rs_spec(model, priors, p, q)
    for sigma, sa, sb, rho in POINTS:
        u = jnp.array([np.log(sigma), np.log(sa), np.log(sb), np.arctanh(rho)])
        post = _posterior(spec, s1, u, model == "rs-mundlak")
        logp, mean, cov = _dense(codes, x, y, z, r, model, priors, sigma, sa, sb, rho)
        assert float(post.log_marginal) == pytest.approx(logp, abs=1e-8, rel=1e-12)
        np.testing.assert_allclose(post.mean, mean, rtol=1e-8, atol=1e-8)
        prec_t = post.chol @ post.chol.T  # precision of theta~ = R^-T Lambda_theta R^-1
        got = post.rmat @ np.linalg.inv(prec_t) @ post.rmat.T
        np.testing.assert_allclose(got, cov, rtol=1e-7, atol=1e-10)


def test_scale_prior_and_jacobians():
    priors = Priors(lkj_eta=2.5, sigma_b_scale=3.0)
    spec = RS.rs_spec("rs", priors, 1, 0)
    u = np.array([0.3, -0.4, 1.1, -0.7])
    sigma, sa, sb, rho = np.exp(u[0]), np.exp(u[1]), np.exp(u[2]), np.tanh(u[3])
    want = (
        st.halfnorm.logpdf(sigma, scale=25.0)
        + st.halfnorm.logpdf(sa, scale=50.0)
        + st.halfnorm.logpdf(sb, scale=3.0)
        + u[:3].sum()
        + st.beta.logpdf((rho + 1) / 2, 2.5, 2.5)
        - np.log(2.0)
        + np.log(1 - rho**2)
    )
    assert float(RS.scales(spec, jnp.asarray(u)).log_prior) == pytest.approx(want, rel=1e-12)


def test_engine_and_collapse_refused():
    codes, x, y, z, r = _panel(1, 0)
    stats, _ = _stats(codes, x, y, z, r)
    batch = Batch(keys=np.zeros((1, 2), np.uint32), stats=stats)
    with pytest.raises(ConfigError, match="grid"):
        fit_model("rs", batch, 0.9, {"engine": "grid"})
    with pytest.raises(ConfigError, match="collapse"):
        fit_model("rs-mundlak", batch, 0.9, {"collapse": "intercepts"})
    with pytest.raises(ConfigError, match="lkj_eta"):
        settings_from_options({"prior_lkj_eta": 0.0})


# --- sampling: one small panel, shared by the tests below ----------------------------

AGREE = {"model": "rs-mundlak", "p": 1, "q": 1}
FAMILY_RATE = 1e-3
N_TESTS = 8  # posterior means of beta, contextual, delta, mu, sigma, sigma_a, sigma_b, rho_ab
Z_CRIT = norm.ppf(1 - FAMILY_RATE / N_TESTS / 2)


@pytest.fixture(scope="module")
def agree_panel():
    return _panel(AGREE["p"], AGREE["q"], seed=3, groups=10, per=10, shift=5.0, empty=False)


@pytest.fixture(scope="module")
def collapsed_fit(agree_panel):
    codes, x, y, z, r = agree_panel
    stats, _ = _stats(codes, x, y, z, r)
    keys = np.asarray(jax.random.split(jax.random.PRNGKey(1), 1))
    return RS.sample(AGREE["model"], keys, stats, settings_from_options(SMALL))


@functools.cache
def _reference(codes, x, y, z, r):
    mcmc = MCMC(
        NUTS(functools.partial(rs_model, n_regions=r, contextual=True)),
        num_warmup=400,
        num_samples=1000,
        num_chains=2,
        chain_method="sequential",
        progress_bar=False,
    )
    mcmc.run(jax.random.PRNGKey(7), codes, x, y, z=z)
    return {k: np.asarray(v) for k, v in mcmc.get_samples(group_by_chain=True).items()}


def test_collapsed_nuts_agrees_with_the_observation_level_model(agree_panel, collapsed_fit):
    """Posterior means, collapsed NUTS vs the observation-level NumPyro model by NUTS.

    Each difference is a z-score with the two Monte Carlo SEs (SD / sqrt(ESS) of
    each sampler); 8 two-sided tests at 0.001 / 8 each (Bonferroni), so a correct
    implementation fails with probability below 0.001.
    """
    ref = _reference(*agree_panel)
    draws = collapsed_fit
    pairs = {
        "beta": (draws.get("beta", "x0"), ref["beta"][..., 0]),
        "contextual": (draws.get("contextual", "x0"), ref["contextual"][..., 0]),
        "delta": (draws.get("beta", "z0"), ref["delta"][..., 0]),
        "mu": (draws.get("mu", ""), ref["mu"]),
        "sigma": (draws.get("sigma", ""), ref["sigma"]),
        "sigma_a": (draws.get("sigma_a", ""), ref["sigma_a"]),
        "sigma_b": (draws.get("sigma_b", ""), ref["sigma_b"]),
        "rho_ab": (draws.get("rho_ab", ""), ref["rho_ab"]),
    }
    assert len(pairs) == N_TESTS
    zs = {}
    for name, (a, b) in pairs.items():
        a = a[0]
        se_a = a.std() / np.sqrt(ess_mean(a[None])[0])
        se_b = b.std() / np.sqrt(ess_mean(b[None])[0])
        zs[name] = (a.mean() - b.mean()) / np.hypot(se_a, se_b)
    print("collapsed vs observation-level z-scores:", {k: round(v, 2) for k, v in zs.items()})
    bad = {k: v for k, v in zs.items() if abs(v) > Z_CRIT}
    assert not bad, f"|z| > {Z_CRIT:.2f}: {bad}"
    assert draws.divergences[0] == 0


def test_draws_keys_and_diagnostics(collapsed_fit):
    keys = RS.quantity_keys("rs-mundlak", 1, 1)
    assert collapsed_fit.keys == keys
    assert collapsed_fit.values.shape == (1, SMALL["chains"], SMALL["draws"], len(keys))
    rho = collapsed_fit.get("rho_ab", "")
    assert np.all(np.abs(rho) < 1) and np.all(collapsed_fit.get("sigma_b", "") > 0)


@pytest.mark.parametrize("engine", ["nuts", "chees"])
def test_fit_functions(seed_stats, engine):
    """Both registered methods on two replications of the seed's scenario (which has
    no random slope: sigma_b near 0 must not trouble the sampler), both engines."""
    options = dict(SMALL)
    if engine == "chees":
        options.update(engine="chees", chees_warmup=150, chees_draws=100)
    keys = np.asarray(jax.random.split(jax.random.PRNGKey(2), 2))
    for name in ("bayes-rs", "bayes-rs-mundlak"):
        out = get_method(name).load()(Batch(keys=keys, stats=seed_stats), 0.9, options)
        want = [("beta", "x0")] + ([("contextual", "x0")] if name.endswith("mundlak") else [])
        assert list(out) == want
        for cols in out.values():
            assert cols["estimate"].shape == (2,)
            assert np.all(np.isfinite(cols["estimate"])) and np.all(cols["se"] > 0)
            assert np.all(cols["lower"] < cols["upper"])
            assert np.all(cols["flag"] & flags.NONFINITE == 0)
            assert np.all(np.isfinite(cols["corr_beta_sigma_a"]))
        # the seed's beta is 1 (x in tens of ad spend): the posterior sits near it
        assert np.all(np.abs(out[("beta", "x0")]["estimate"] - 1.0) < 4 * out[("beta", "x0")]["se"])
