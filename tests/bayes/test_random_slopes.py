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

from mlmbias import ConfigError, Study, flags
from mlmbias.bayes import random_slopes as RS
from mlmbias.bayes.methods import COLUMNS, fit_model, monitored, summarize_draws
from mlmbias.bayes.models import rs_model
from mlmbias.bayes.options import settings_from_options
from mlmbias.bayes.priors import Priors
from mlmbias.bayes.sbc import chi_square, plot_ranks, run_sbc
from mlmbias.bayes.summary import ess_mean
from mlmbias.groupstats import GroupStats, group_stats_from_arrays
from mlmbias.registry import Batch, get_method

from .conftest import SEED_DGP, SMALL, make_batch

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


@jax.jit
def _posterior(spec, stats, user):
    """theta's posterior at the user's scales (sigma, sigma_a, sigma_b, rho_ab), and
    those scales back from the sampler's coordinates."""
    data = RS.rs_data(stats, spec.hctx)
    u = RS.to_unconstrained(*user, data.xc)
    sc = RS.scales(spec, u, data.xc)
    back = jnp.stack([sc.sigma, sc.sigma_a, sc.sigma_b, sc.rho])
    return RS.coefficient_posterior(spec, data, sc), back


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
        post, back = _posterior(spec, s1, jnp.array([sigma, sa, sb, rho]))
        np.testing.assert_allclose(back, [sigma, sa, sb, rho], rtol=1e-9)
        logp, mean, cov = _dense(codes, x, y, z, r, model, priors, sigma, sa, sb, rho)
        assert float(post.log_marginal) == pytest.approx(logp, abs=1e-8, rel=1e-12)
        # rs has the unused gamma slots of rs-mundlak's shape (prior N(0, 1), design 0)
        keep = np.arange(post.mean.shape[0])
        if model == "rs":
            keep = np.delete(keep, np.arange(1 + p, 1 + 2 * p))
        np.testing.assert_allclose(post.mean[keep], mean, rtol=1e-8, atol=1e-8)
        prec_t = post.chol @ post.chol.T  # precision of theta~ = R^-T Lambda_theta R^-1
        got = post.rmat @ np.linalg.inv(prec_t) @ post.rmat.T
        np.testing.assert_allclose(got[np.ix_(keep, keep)], cov, rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("xc", [0.0, 23.0])
def test_scale_prior_and_jacobians(xc):
    """At xc = 0 the sampler's coordinates are the user's (log sigma, log sigma_a,
    log sigma_b, atanh rho_ab) and the log prior is the user's prior with those
    Jacobians; at xc != 0 it is the user's prior in its unconstrained coordinates
    times the Jacobian of the map between them (by automatic differentiation)."""
    priors = Priors(lkj_eta=2.5, sigma_b_scale=3.0)
    spec = RS.rs_spec("rs", priors, 1, 0)
    u = jnp.array([0.3, -0.4, 1.1, -0.7])
    sc = RS.scales(spec, u, jnp.asarray(xc))
    sigma, sa, sb, rho = (float(v) for v in (sc.sigma, sc.sigma_a, sc.sigma_b, sc.rho))
    want = (
        st.halfnorm.logpdf(sigma, scale=25.0)
        + st.halfnorm.logpdf(sa, scale=50.0)
        + st.halfnorm.logpdf(sb, scale=3.0)
        + np.log(sigma * sa * sb)
        + st.beta.logpdf((rho + 1) / 2, 2.5, 2.5)
        - np.log(2.0)
        + np.log(1 - rho**2)
    )

    def user(v):  # u -> the user's unconstrained coordinates
        s = RS.scales(spec, v, jnp.asarray(xc))
        return jnp.stack(
            [jnp.log(s.sigma), jnp.log(s.sigma_a), jnp.log(s.sigma_b), jnp.arctanh(s.rho)]
        )

    want += np.linalg.slogdet(np.asarray(jax.jacfwd(user)(u)))[1]
    assert float(sc.log_prior) == pytest.approx(want, rel=1e-10)
    if xc == 0.0:
        np.testing.assert_allclose([np.log(sigma), np.log(sa), np.log(sb), np.arctanh(rho)], u)


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
    # a study refuses the grid when it loads, not when bayes-rs's first batch runs
    with pytest.raises(ConfigError, match="bayes-rs cannot use engine 'grid'"):
        Study(seed=1, replications=2, methods=("fe", "bayes-rs"), bayes={"engine": "grid"})
    Study(seed=1, replications=2, methods=("fe", "bayes-re"), bayes={"engine": "grid"})


# --- sampling: the seed's scenario, one compiled NUTS program for every test below ---

FAMILY_RATE = 1e-3
N_TESTS = 7  # posterior means of beta, contextual, mu, sigma, sigma_a, sigma_b, rho_ab
Z_CRIT = norm.ppf(1 - FAMILY_RATE / N_TESTS / 2)


@pytest.fixture(scope="module")
def batches():
    """Two replications of the seed's scenario (R = 10) per method, keyed as the study keys them."""
    return {m: make_batch(f"bayes-{m}", SEED_DGP, 11, np.arange(2)) for m in MODELS}


# a panel with real random slopes for the agreement test: the seed's shapes (R = 10,
# one x, no z), so the same compiled program samples it
AGREE_PANEL = {"seed": 3, "groups": 10, "per": 10, "shift": 2.0, "empty": False}


@pytest.fixture(scope="module")
def nuts_draws(batches):
    """Both models' draws on the seed's batches, and rs-mundlak's on the agreement
    panel (one compiled program: rs-mundlak's shape serves rs too)."""
    settings = settings_from_options(SMALL)
    out = {m: RS.sample(m, b.keys, b.stats, settings) for m, b in batches.items()}
    codes, x, y, z, r = _panel(1, 0, **AGREE_PANEL)
    stats, _ = _stats(codes, x, y, z, r)
    keys = np.asarray(jax.random.split(jax.random.PRNGKey(1), 1))
    out["agree"] = RS.sample("rs-mundlak", keys, stats, settings)
    return out


def _reference(codes, x, y, r):
    mcmc = MCMC(
        NUTS(functools.partial(rs_model, n_regions=r, contextual=True), target_accept_prob=0.9),
        num_warmup=400,
        num_samples=1000,
        num_chains=2,
        chain_method="vectorized",
        progress_bar=False,
    )
    mcmc.run(jax.random.PRNGKey(7), codes, x, y)
    return {k: np.asarray(v) for k, v in mcmc.get_samples(group_by_chain=True).items()}


def test_collapsed_nuts_agrees_with_the_observation_level_model(nuts_draws):
    """Posterior means of rs-mundlak on one small panel with random slopes (10 groups
    of 2-10 observations, sigma_b = 0.5, rho = 0.4, x around 2): collapsed NUTS
    (SMALL) vs the observation-level NumPyro model (models.rs_model, NUTS, 2 x 1000
    draws after 400 warm-up iterations, target acceptance 0.9).

    Each difference is a z-score with the two Monte Carlo SEs (SD / sqrt(ESS) of
    each sampler); 7 two-sided tests at 0.001 / 7 each (Bonferroni), so a correct
    implementation fails with probability below 0.001.
    """
    codes, x, y, z, r = _panel(1, 0, **AGREE_PANEL)
    ref = _reference(codes, x, y, r)
    draws = nuts_draws["agree"]
    names = ("beta", "contextual", "mu", "sigma", "sigma_a", "sigma_b", "rho_ab")
    assert len(names) == N_TESTS
    zs = {}
    for name in names:
        a = draws.get(name)[0]
        b = ref[name].reshape(ref[name].shape[:2])
        se_a = a.std() / np.sqrt(ess_mean(a[None])[0])
        se_b = b.std() / np.sqrt(ess_mean(b[None])[0])
        zs[name] = (a.mean() - b.mean()) / np.hypot(se_a, se_b)
    print("collapsed vs observation-level z-scores:", {k: round(v, 2) for k, v in zs.items()})
    bad = {k: v for k, v in zs.items() if abs(v) > Z_CRIT}
    assert not bad, f"|z| > {Z_CRIT:.2f}: {bad}"
    assert draws.divergences[0] == 0


def test_draws_keys_and_registry_output(batches, nuts_draws):
    """Draw keys per model; the registered fit function gives exactly the summary of
    the same keys' draws (determinism), with the usual columns and convergence."""
    for m in MODELS:
        draws = nuts_draws[m]
        keys = RS.quantity_keys(m, 1, 0)
        assert draws.keys == keys
        assert draws.values.shape == (2, SMALL["chains"], SMALL["draws"], len(keys))
        assert np.all(np.abs(draws.get("rho_ab")) < 1) and np.all(draws.get("sigma_b") > 0)
    out = get_method("bayes-rs-mundlak").load()(batches["rs-mundlak"], 0.9, SMALL)
    want = summarize_draws("rs-mundlak", nuts_draws["rs-mundlak"], 0.9, 1.01, 400.0)
    assert list(out) == [("beta", "x0"), ("contextual", "x0")]
    for key, cols in out.items():
        assert set(cols) == set(COLUMNS)
        for c in COLUMNS:
            np.testing.assert_array_equal(cols[c], want[key][c])
    rs = summarize_draws("rs", nuts_draws["rs"], 0.9, 1.01, 400.0)
    assert list(rs) == [("beta", "x0")]
    for res in (out, rs):
        for cols in res.values():
            assert np.all(np.isfinite(cols["estimate"])) and np.all(cols["se"] > 0)
            assert np.all(cols["lower"] < cols["upper"])
            assert np.all(np.isfinite(cols["corr_beta_sigma_a"]))
            assert np.all(cols["flag"] & flags.NONFINITE == 0)
    # the seed's beta is 1.5: the posterior sits near it
    beta = out[("beta", "x0")]
    assert np.all(np.abs(beta["estimate"] - 1.5) < 4 * beta["se"])


def test_monitored_includes_the_slope_scales():
    assert monitored("rs", 1, 0)[-2:] == (("sigma_b", ""), ("rho_ab", ""))
    assert monitored("rs-mundlak", 2, 1)[:5] == (
        ("beta", "x0"),
        ("beta", "x1"),
        ("beta", "z0"),
        ("contextual", "x0"),
        ("contextual", "x1"),
    )


@pytest.mark.slow
def test_chees_engine(batches):
    """The chees engine on both models (its own compiled program)."""
    options = {**SMALL, "engine": "chees", "chees_warmup": 200, "chees_draws": 150}
    for m in MODELS:
        draws = RS.sample(m, batches[m].keys, batches[m].stats, settings_from_options(options))
        assert draws.checks is not None and draws.checks.shape == (2,)
        assert draws.values.shape[1:3] == (16, 150)
        out = summarize_draws(m, draws, 0.9, 1.01, 400.0)
        beta = out[("beta", "x0")]
        assert np.all(np.abs(beta["estimate"] - 1.5) < 4 * beta["se"])
        assert np.all(beta["divergences"] == 0)


# --- simulation-based calibration (slow) ------------------------------------------

SBC_TRIALS = 96
SBC_SETTINGS = {"warmup": 300, "draws": 500, "chains": 4, "batch_size": 16, "target_accept": 0.9}
SBC_RATE = 0.01
SBC_BINS = 10


@pytest.mark.slow
def test_sbc_ranks_uniform(tmp_path):
    """SBC of bayes-rs and bayes-rs-mundlak (mlmbias.bayes.sbc): 96 trials each,
    parameters from the prior (sigma_b ~ HalfNormal(10), rho_ab ~ LKJ(1)), data
    from the model on the seed's ad-spend design (R = 10), ranks among L = 99
    thinned draws of 4 chains x 500 draws after 300 warm-up iterations (NUTS,
    target acceptance 0.9). 13 chi-square tests of uniform ranks (10 bins, about
    10 ranks each) at 0.01 / 13 each (Bonferroni): a calibrated sampler fails with
    probability below 0.01. Divergences: a replication of these weakly identified
    four-dimensional posteriors (10 groups to estimate sigma_b and rho_ab) now and
    then has one (5 % and 8 % of the trials when run); at most 15 % may.

    Run once (2026-11-29, 2 shared CPU cores, about 8 minutes): p-values rs beta
    0.73, mu 0.40, sigma 0.90, sigma_a 0.54, sigma_b 0.60, rho_ab 0.96;
    rs-mundlak beta 0.75, contextual 0.77, mu 0.96, sigma 0.85, sigma_a 0.14,
    sigma_b 0.053, rho_ab 0.09 (smallest 0.053 > 0.01 / 13). A 300-trial run at
    4 x (500 + 1000) did not finish in 40 minutes there: a batch waits for its
    slowest chain, and a few prior draws give posteriors needing ~100 leapfrog
    steps per draw."""
    settings = settings_from_options(SBC_SETTINGS)
    results = [run_sbc(m, SBC_TRIALS, settings, seed=s) for m, s in (("rs", 5), ("rs-mundlak", 6))]
    plot_ranks(results, tmp_path / "sbc_random_slopes.png", bins=SBC_BINS)
    pvalues = {(r.model, k): p for r in results for k, p in chi_square(r, SBC_BINS).items()}
    print("SBC chi-square p-values:", {f"{m}:{k}": round(p, 3) for (m, k), p in pvalues.items()})
    print("divergent trials:", {r.model: float(r.divergent.mean()) for r in results})
    level = SBC_RATE / len(pvalues)
    bad = {k: p for k, p in pvalues.items() if p < level}
    assert not bad, f"rank histograms not uniform at {level:.4f}: {bad}"
    for r in results:
        assert r.divergent.mean() < 0.15, (r.model, r.divergent.mean())
