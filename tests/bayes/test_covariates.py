"""The Bayesian models with p within covariates x and q level-2 covariates z.

* The general collapsed form (``GeneralSpec``) against the direct multivariate-
  normal density of a small unbalanced panel with p = 2, q = 1, all five
  models, to 1e-8, like ``test_collapsed`` for p = 1.
* The general form against the one-covariate form (which the seed case keeps,
  for its bits) where both apply: p = 1, q = 0, to 1e-10.
* The issue's acceptance check: on a large simulated panel (p = 2, q = 1, 400
  groups of about 8) the posterior mean of every coefficient of bayes-mundlak
  (and bayes-re) lies within 0.5 posterior SD of the REML estimate.
* ``mlmbias.fit`` and ``mlmbias fit`` give a row per (estimand, term).
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
import scipy.stats as st
from _panels import covariate_panel

from mlmbias import ConfigError
from mlmbias.bayes import collapsed as C
from mlmbias.bayes.draws import Draws, quantity_keys
from mlmbias.bayes.methods import summarize_draws
from mlmbias.bayes.priors import Priors
from mlmbias.fitting import fit
from mlmbias.groupstats import GroupStats, group_stats_from_arrays
from mlmbias.registry import Batch, get_method

MODELS = list(C.MODEL_INFO)
# jitted: one compilation per function and data structure rather than one per
# primitive, as eager calls would pay
loglik = jax.jit(C.loglik_given_coefficients)
posterior = jax.jit(C.coefficient_posterior)
covariance = jax.jit(C.coefficient_covariance)
density_scales = jax.jit(jax.value_and_grad(C.logdensity_scales))
density_full = jax.jit(jax.value_and_grad(C.logdensity_full))
# one replication per batch: sampling a padded batch of 8 would cost 8 times as much
LARGE = {"warmup": 300, "draws": 500, "chains": 4, "batch_size": 1}


def small_panel(seed: int = 3):
    """Unbalanced p = 2, q = 1: 7 groups of 1 to 5 observations, x and z off zero."""
    rng = np.random.default_rng(seed)
    sizes = np.array([1, 3, 5, 2, 4, 3, 2])
    g = len(sizes)
    codes = np.repeat(np.arange(g), sizes)
    z = 4.0 + rng.normal(size=(g, 1))
    x = np.column_stack([20.0, -3.0]) + rng.normal(size=(g, 2))[codes] * 2
    x = x + rng.normal(size=(len(codes), 2))
    y = 5.0 + x @ [1.0, -0.5] + 0.8 * z[codes, 0] + rng.normal(size=g)[codes] * 2
    y = y + rng.normal(size=len(codes))
    return codes, x, y, z


def _one(stats, rep=0):
    return GroupStats(*(a[rep] for a in stats))


def _cs(rd, n, pooled=True):
    if pooled:
        ids, m = C.size_classes(np.asarray(n)[None])
        return C.class_sums(rd, jnp.asarray(ids[0]), m)
    r = np.asarray(n).shape[-1]
    return C.class_sums(rd, jnp.arange(r), r)


@pytest.mark.parametrize("model", MODELS)
def test_general_forms_equal_mvn(model):
    """p = 2, q = 1: log p(y | theta, sigma, sigma_a), log p(y | sigma, sigma_a) and
    theta | sigma, sigma_a, y equal the direct multivariate-normal forms (1e-8)."""
    codes, x, y, z = small_panel()
    p, q = x.shape[1], z.shape[1]
    stats = _one(group_stats_from_arrays(codes, x, y, len(z), z))
    rd = C.region_data(stats)
    assert isinstance(rd, C.GeneralRegionData)
    cs = _cs(rd, stats.n)
    # fe's default intercept prior (sd 1000) makes the direct covariance so ill
    # conditioned that scipy's density is off by 1e-8 here (a long-double Cholesky
    # agrees with the collapsed form to 5e-10); sd 30 is the same algebra
    spec = C.linear_spec(model, Priors(alpha_scale=30.0), p, q)
    k = 1 + 2 * p + q
    assert spec.loc.shape == (k,)
    # theta's observation design: h_r + (x - xbar_r) on the within slopes b
    xbar = np.asarray(stats.xbar)
    X = np.asarray(C.design(spec, rd))[codes]
    X[:, 1 : 1 + p] += x - xbar[codes]
    sigma = 1.3
    sigma_a = 2.1 if float(spec.sa_sampled) > 0 else float(spec.sa_fixed)
    o = float(spec.offset)
    same = codes[:, None] == codes[None, :]
    cov = sigma**2 * np.eye(len(y)) + sigma_a**2 * same
    theta = np.linspace(-1.0, 2.0, k)
    direct = st.multivariate_normal(o + X @ theta, cov).logpdf(y)
    fast = float(loglik(spec, cs, jnp.asarray(theta), sigma, sigma_a))
    assert fast == pytest.approx(direct, abs=1e-8)

    v0 = np.diag(np.asarray(spec.scale) ** 2)
    loc = np.asarray(spec.loc)
    marg = st.multivariate_normal(o + X @ loc, cov + X @ v0 @ X.T).logpdf(y)
    post = posterior(spec, cs, sigma, sigma_a)
    assert float(post.log_marginal) == pytest.approx(marg, abs=1e-8)

    ci = np.linalg.inv(cov)
    prec = X.T @ ci @ X + np.linalg.inv(v0)
    mean = np.linalg.solve(prec, X.T @ ci @ (y - o) + np.linalg.solve(v0, loc))
    cov_theta = np.asarray(covariance(post))
    np.testing.assert_allclose(cov_theta, np.linalg.inv(prec), rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(np.asarray(post.mean), mean, rtol=1e-9, atol=1e-10)

    # size classes pool exactly; the full density (theta sampled) is the loglik plus
    # the prior; gradients are finite
    single = _cs(rd, stats.n, pooled=False)
    u = jnp.log(jnp.array([sigma, 2.1]))
    a, grad = density_scales(u, cs, spec)
    assert float(a) == pytest.approx(float(density_scales(u, single, spec)[0]), rel=1e-12)
    assert np.isfinite(np.asarray(grad)).all()
    theta_c = C.to_centred(C.centring(spec, cs), jnp.asarray(theta))
    full, grad = density_full(jnp.concatenate([theta_c, u]), cs, spec)
    assert np.isfinite(np.asarray(grad)).all()
    lp = C.scales(spec, u)[2] + np.sum(st.norm.logpdf(theta, loc, np.asarray(spec.scale)))
    s_a = float(C.scales(spec, u)[1])
    direct = st.multivariate_normal(o + X @ theta, sigma**2 * np.eye(len(y)) + s_a**2 * same)
    assert float(full) == pytest.approx(float(lp) + direct.logpdf(y), abs=1e-8)


@pytest.mark.parametrize("model", MODELS)
def test_general_form_agrees_with_the_one_covariate_form(seed_stats, model):
    """p = 1, q = 0 through both forms: densities, gradients and posteriors to 1e-10."""
    stats = _one(seed_stats)
    res = []
    for general in (False, True):
        rd = C.region_data(stats, general=general)
        cs = _cs(rd, stats.n)
        spec = C.linear_spec(model, Priors(), general=general)
        row = []
        for u in ([2.0, 1.0], [3.0, -2.0], [0.5, 3.5]):
            u = jnp.asarray(u)
            row += list(density_scales(u, cs, spec))
            post = posterior(spec, cs, *C.scales(spec, u)[:2])
            row += [post.mean, covariance(post)]
            z = jnp.concatenate([jnp.array([5.0, 1.0, -1.0]), u])
            row += list(density_full(z, cs, spec))
        row.append(C.initial_center(rd, spec))
        res.append(row)
    for a, b in zip(*res, strict=True):
        a, b = np.asarray(a), np.asarray(b)
        np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-10 * max(np.abs(a).max(), 1.0))


def large_panel(seed: int = 2025) -> pd.DataFrame:
    """p = 2, q = 1, 400 groups of 4 to 12 observations; group effects correlated
    with the x means (so that mundlak and re differ) and with z."""
    rng = np.random.default_rng(seed)
    return covariate_panel(rng, rng.integers(4, 13, size=400)).drop(columns="t")


FIT_METHODS = ["bayes-mundlak", "mundlak-reml", "bayes-re", "re-reml"]


@pytest.fixture(scope="module")
def large_fit():
    return fit(large_panel(), "g", ["x0", "x1"], "y", methods=FIT_METHODS, options=LARGE, z=["z0"])


def test_posterior_means_within_half_sd_of_reml(large_fit):
    """The issue's acceptance check, coefficient by coefficient."""
    t = large_fit.set_index(["method", "estimand", "term"])
    pairs = {
        ("bayes-mundlak", "mundlak-reml"): [
            ("beta", "x0"),
            ("beta", "x1"),
            ("beta", "z0"),
            ("contextual", "x0"),
            ("contextual", "x1"),
        ],
        ("bayes-re", "re-reml"): [("beta", "x0"), ("beta", "x1"), ("beta", "z0")],
    }
    for (bayes, reml), keys in pairs.items():
        assert set(t.loc[bayes].index) == set(keys)
        for key in keys:
            b, r = t.loc[(bayes, *key)], t.loc[(reml, *key)]
            assert b["converged"], (bayes, key)
            assert abs(b["estimate"] - r["estimate"]) <= 0.5 * b["se"], (bayes, key, b, r)
            # and the posterior SD is the REML standard error, near enough
            assert b["se"] == pytest.approx(r["se"], rel=0.15), (bayes, key)


def test_fit_table_and_cli_rows(large_fit, tmp_path, capsys):
    """`fit` and `mlmbias fit --z` with a Bayesian method: one row per (estimand, term),
    terms named by their columns, the same estimates from both (same seed)."""
    from mlmbias.cli import main

    rows = large_fit[large_fit.method == "bayes-mundlak"]
    want = [("beta", "x0"), ("beta", "x1"), ("beta", "z0"), ("contextual", "x0")]
    want.append(("contextual", "x1"))
    assert list(zip(rows.estimand, rows.term, strict=True)) == want
    assert (rows.lower < rows.estimate).all() and (rows.estimate < rows.upper).all()
    assert rows.corr_beta_sigma_a.notna().all()

    path = tmp_path / "panel.csv"
    large_panel().to_csv(path, index=False)
    sets = [a for k, v in LARGE.items() for a in ("--set", f"{k}={v}")]
    argv = ["fit", str(path), "--group", "g", "--y", "y", "--x", "x0,x1", "--z", "z0"]
    code = main([*argv, "--methods", "bayes-mundlak", *sets, "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    records = json.loads(out.out)
    assert [(r["estimand"], r["term"]) for r in records] == want
    for r, (_, row) in zip(records, rows.iterrows(), strict=True):
        assert r["estimate"] == pytest.approx(row["estimate"], rel=1e-12)


@pytest.mark.parametrize("model", MODELS)
def test_keys_and_convergence_from_draws(model):
    """The keys of every model for p = 2, q = 1 (fe drops z: the intercepts absorb
    it) and convergence judged on every monitored quantity: poor mixing of the
    last z coefficient alone fails the replication. Synthetic draws: no sampling."""
    keys = quantity_keys(2, 1)
    rng = np.random.default_rng(1)
    values = rng.normal(size=(2, 4, 200, len(keys)))
    values[..., -2:] = np.abs(values[..., -2:]) + 1.0  # sigma, sigma_a
    z0 = keys.index(("beta", "z0"))
    values[1, 0, :, z0] += 5.0  # chain 0 of rep 1 elsewhere, in z0 only
    draws = Draws(
        values,
        np.zeros(2, int),
        np.ones((2, 4)),
        np.ones((2, 4)),
        np.ones(2),
        np.ones((1, 2)),
        keys,
    )
    out = summarize_draws(model, draws, 0.9, rhat_max=1.05, ess_min=100)
    want = [("beta", "x0"), ("beta", "x1")]
    if model != "fe":
        want.append(("beta", "z0"))
    if model in ("mundlak", "rewb"):
        want += [("contextual", "x0"), ("contextual", "x1")]
    assert list(out) == want
    ok = [True, model == "fe"]  # fe does not monitor the unused z slot
    for key, cols in out.items():
        assert cols["converged"].tolist() == ok, key
        has_sa = model not in ("pooled", "fe")
        assert np.isfinite(cols["corr_beta_sigma_a"]).all() == has_sa
        if has_sa:
            term = key[1]
            want_corr = np.corrcoef(
                values[0, :, :, keys.index(("beta", term))].ravel(), values[0, :, :, -1].ravel()
            )[0, 1]
            assert cols["corr_beta_sigma_a"][0] == pytest.approx(want_corr, rel=1e-10)


@pytest.mark.parametrize("name", ["bayes-re", "bayes-mundlak"])
def test_no_within_covariate_is_refused(name):
    """p = 0 is the one shape the models cannot take: a ConfigError before sampling."""
    rng = np.random.default_rng(0)
    codes = np.repeat(np.arange(4), 3)
    stats = group_stats_from_arrays(
        codes, np.empty((12, 0)), rng.normal(size=12), 4, rng.normal(size=(4, 1))
    )
    batch = Batch(jnp.zeros((1, 2), jnp.uint32), stats)
    with pytest.raises(ConfigError, match="at least one within-varying covariate"):
        get_method(name).load()(batch, 0.94, {})


def test_empty_batch_keys():
    codes, x, y, z = small_panel()
    stats = group_stats_from_arrays(codes, x, y, len(z), z)
    empty = Batch(jnp.zeros((0, 2), jnp.uint32), GroupStats(*(a[:0] for a in stats)))
    out = get_method("bayes-mundlak").load()(empty, 0.94, {})
    assert len(out) == 5 and all(c["estimate"].shape == (0,) for c in out.values())
