"""The grid engine (mlmbias.bayes.grid): the (log sigma, log sigma_a) posterior by quadrature.

* Accuracy: the grid's posterior means and SDs of (log sigma, log sigma_a) and
  mean of beta (from the cells' masses) against a brute-force 301 x 301 (301
  for pooled) midpoint grid over a box found independently: means within 0.5%
  of a posterior SD, SDs within 1%. The draws' SD of beta against the same
  reference, within 5 Monte Carlo SEs.
* The edge-mass check fires on a deliberately truncated box, not by default.
* NUTS (the ``SMALL`` settings of conftest) and the grid agree replication by
  replication, through ``sampler_error = true``: each NUTS posterior mean minus
  the grid's (exact up to the grid: its error is below 0.5% of an SD, 100 times
  below NUTS's Monte Carlo SE) in posterior SDs, times sqrt(ESS); every
  coefficient of 4 replications of bayes-re and bayes-mundlak, Bonferroni at
  0.001 per model, so a correct NUTS fails this test with probability about
  0.002 (a little more where the ESS estimate is noisy).
* The registry's fit functions with engine = "grid", p = 1 and p = 2, q = 1.
* Batch independence, and the options.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import norm

from mlmbias import ConfigError
from mlmbias.bayes import collapsed as C
from mlmbias.bayes.grid import sample_grid
from mlmbias.bayes.options import BayesSettings, settings_from_options
from mlmbias.groupstats import GroupStats, group_stats_from_arrays
from mlmbias.registry import Batch, get_method

from .conftest import SEED_DGP, SMALL, make_batch

# one compiled program per model dimension (and data form) serves every test
GRID = {"engine": "grid", "chains": 4, "draws": 250, "batch_size": 4}


def _reference(model: str, stats: GroupStats, rep: int, settings: BayesSettings, n: int = 301):
    """Posterior moments from a brute-force n x n midpoint grid in u = (log sigma,
    log sigma_a), its box shrunk twice to where the log density is within 30 of
    its maximum: u means and SDs, beta's mean and SD (from the conditional mean
    and variance of beta given u, exact)."""
    one = GroupStats(*(jnp.asarray(np.asarray(a)[rep]) for a in stats))
    spec = C.linear_spec(model, settings.priors, stats.p, stats.q)
    rd = C.region_data(one)
    r = rd.n.shape[-1]
    cs = C.class_sums(rd, jnp.arange(r), r)
    dims = 2 if C.MODEL_INFO[model].has_sigma_a else 1

    @jax.jit
    def evaluate(us):
        def point(u):
            sigma, sigma_a, lp = C.scales(spec, u)
            post = C.coefficient_posterior(spec, cs, sigma, sigma_a)
            return lp + post.log_marginal, post.mean[1], post.chol

        return jax.vmap(point)(us)

    lo, hi = np.array([-5.0, -25.0]), np.array([8.0, 8.0])
    for _ in range(3):
        axes = [np.linspace(lo[j], hi[j], n) if j < dims else np.zeros(1) for j in range(2)]
        mesh = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 2)
        f, m, chol = (np.asarray(a) for a in evaluate(jnp.asarray(mesh)))
        keep = f > np.nanmax(f) - 30.0
        step = np.array([a[1] - a[0] if len(a) > 1 else 0.0 for a in axes])
        lo, hi = mesh[keep].min(0) - step, mesh[keep].max(0) + step
    w = np.exp(f - np.nanmax(f))
    w = np.where(np.isfinite(w), w, 0.0)
    w /= w.sum()
    mean = w @ mesh
    sd = np.sqrt(w @ (mesh - mean) ** 2)
    beta = w @ m
    # var(beta | u): theta_c and theta share every slot but the intercept
    inv = np.linalg.inv(chol)
    v = np.einsum("nji,nji->ni", inv, inv)[:, 1]
    return mean[:dims], sd[:dims], beta, np.sqrt(w @ (v + m**2) - beta**2)


@pytest.mark.parametrize("model", ["mundlak", "re", "pooled"])
def test_grid_matches_a_fine_grid(model):
    batch = make_batch(f"bayes-{model}", SEED_DGP, 5, np.arange(3))
    settings = settings_from_options(GRID)
    draws = sample_grid(model, batch.keys, batch.stats, settings)
    dims = 2 if C.MODEL_INFO[model].has_sigma_a else 1
    n = settings.chains * settings.draws
    assert draws.checks.all()
    for i in range(3):
        mean, sd, beta, beta_sd = _reference(model, batch.stats, i, settings)
        d = {k: np.asarray(v[i]) for k, v in draws.diagnostics.items()}
        np.testing.assert_array_less(np.abs(d["u_mean"][:dims] - mean) / sd, 0.005)
        np.testing.assert_array_less(np.abs(d["u_sd"][:dims] / sd - 1.0), 0.01)
        assert abs(d["coef_mean"][1] - beta) / beta_sd < 0.005
        b = draws.get("beta")[i].ravel()
        # independence MH keeps nearly every proposal: ESS > n / 2 is ample
        assert abs(b.std() / beta_sd - 1.0) < 5.0 / np.sqrt(n)
        assert abs(b.mean() - beta) / beta_sd < 5.0 / np.sqrt(n / 2)
        assert d["accept"].min() > 0.8


def test_edge_mass_flags_a_truncated_box():
    batch = make_batch("bayes-re", SEED_DGP, 5, np.arange(2))
    settings = settings_from_options(GRID)
    ok = sample_grid("re", batch.keys, batch.stats, settings)
    assert ok.checks.all() and (ok.diagnostics["edge_mass"] < 1e-5).all()
    # a margin <= 0 ends the box where it starts (and never widens it)
    cut = sample_grid("re", batch.keys, batch.stats, settings, margin=-1.0)
    assert (cut.diagnostics["edge_mass"] > settings.grid_edge_tol).all()
    assert not cut.checks.any()
    out = get_method("bayes-re").load()(batch, 0.9, GRID)
    assert out[("beta", "x0")]["converged"].all()


def test_nuts_agrees_with_the_grid():
    """NUTS (``SMALL``) against the grid through ``sampler_error = true``: each NUTS
    posterior mean minus the grid's exact one, in posterior SDs. Over the MCSE's share
    of an SD, 1/sqrt(ESS), it is about N(0, 1): each of the 4 replications x the
    model's coefficients two-sided at 0.001 / (4 x coefficients) per model
    (Bonferroni), so a correct NUTS fails with probability about 0.002 (a little more
    where the ESS estimate is noisy)."""
    for model, seed in (("re", 21), ("mundlak", 22)):
        batch = make_batch(f"bayes-{model}", SEED_DGP, seed, np.arange(4))
        out = get_method(f"bayes-{model}").load()(batch, 0.9, {**SMALL, "sampler_error": True})
        crit = norm.ppf(1 - 1e-3 / (2 * 4 * len(out)))
        for key, cols in out.items():
            e = cols["sampler_error"]
            assert np.isfinite(e).all(), (model, key)  # the grid's check passed
            assert np.all(np.abs(e) * np.sqrt(cols["ess"]) < crit), (model, key, e)
    with pytest.raises(ConfigError, match="sampler_error"):
        settings_from_options({"sampler_error": 1})


def test_a_sampler_off_the_exact_posterior_is_flagged():
    """``sampler_error``'s verdict: rows whose posterior means sit 0.1 and 0.2 SD
    from the grid's exact ones, with SDs within 10%, stay converged; a replication
    0.4 SD off in one coefficient, or with an SD 0.7 of the exact one, is not
    converged and carries SAMPLER_DISAGREES in every row (its chains missed part
    of the posterior); the bounds are ``sampler_error_max`` and ``sampler_sd_tol``.
    The exact SDs are checked against the grid's own draws."""
    from mlmbias import flags
    from mlmbias.bayes.methods import _EXACT_CHAINS, _EXACT_DRAWS, _EXACT_GRID, add_sampler_error

    batch = make_batch("bayes-mundlak", SEED_DGP, 23, np.arange(5))
    exact_run = {"grid_size": _EXACT_GRID, "chains": _EXACT_CHAINS, "draws": _EXACT_DRAWS}
    settings = settings_from_options({"engine": "grid", **exact_run})  # its compiled program
    diag = sample_grid("mundlak", batch.keys, batch.stats, settings).diagnostics
    mean, sd = np.asarray(diag["coef_mean"]), np.asarray(diag["coef_sd"])
    draws = sample_grid("mundlak", batch.keys, batch.stats, settings_from_options({**GRID}))
    for slot, key in ((1, ("beta", "x0")), (2, ("contextual", "x0"))):
        # 1000 nearly independent draws: their SD is within 15% (> 4 SEs) of the exact one
        np.testing.assert_allclose(
            draws.get(*key).reshape(5, -1).std(axis=1), sd[:, slot], rtol=0.15
        )

    def rows(shift, scale):
        out = {}
        for slot, key in ((1, ("beta", "x0")), (2, ("contextual", "x0"))):
            out[key] = {
                "estimate": mean[:, slot] + np.asarray(shift[key[0]]) * sd[:, slot],
                "se": sd[:, slot] * np.asarray(scale[key[0]]),
                "converged": np.ones(5, bool),
                "flag": np.zeros(5, np.int64),
            }
        return out

    shift = {"beta": [0.1, -0.2, 0.0, 0.1, 0.0], "contextual": [0.0, 0.1, -0.4, 0.0, 0.0]}
    scale = {"beta": [1.0, 1.1, 1.0, 0.95, 0.7], "contextual": [1.0, 1.0, 1.0, 1.0, 1.0]}
    out = rows(shift, scale)
    add_sampler_error("mundlak", batch, settings_from_options({}), out)
    for cols in out.values():
        assert cols["converged"].tolist() == [True, True, False, True, False]
        assert (cols["flag"] == [0, 0, flags.SAMPLER_DISAGREES, 0, flags.SAMPLER_DISAGREES]).all()
    np.testing.assert_allclose(
        out[("contextual", "x0")]["sampler_error"], [0, 0.1, -0.4, 0, 0], atol=1e-9
    )
    np.testing.assert_allclose(out[("beta", "x0")]["sampler_sd_ratio"], scale["beta"], rtol=1e-12)
    relaxed = rows(shift, scale)
    options = {"sampler_error_max": 0.5, "sampler_sd_tol": 0.5}
    add_sampler_error("mundlak", batch, settings_from_options(options), relaxed)
    assert all(cols["converged"].all() for cols in relaxed.values())
    for bad in ({"sampler_error_max": 0}, {"sampler_sd_tol": -1}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            settings_from_options(bad)


def _covariate_batch(method: str, reps: int = 2) -> Batch:
    rng = np.random.default_rng(7)
    sizes = np.array([3, 5, 2, 4, 6, 3, 5, 4, 2, 6])
    g = len(sizes)
    codes = np.repeat(np.arange(g), sizes)
    stats = []
    for _ in range(reps):
        z = rng.normal(size=(g, 1))
        x = rng.normal(size=(g, 2))[codes] + rng.normal(size=(len(codes), 2))
        a = rng.normal(size=g)[codes]
        y = 1.0 + x @ [1.0, -0.5] + 0.8 * z[codes, 0] + a + rng.normal(size=len(codes))
        stats.append(group_stats_from_arrays(codes, x, y, g, z))
    stats = GroupStats(
        *(np.concatenate([np.asarray(s[j]) for s in stats]) for j in range(len(GroupStats._fields)))
    )
    keys = np.asarray(jax.random.split(jax.random.PRNGKey(1), reps))
    return Batch(keys=keys, stats=stats)


@pytest.mark.parametrize("model", list(C.MODEL_INFO))
@pytest.mark.parametrize("p", [1, 2])
def test_fit_functions_with_grid(model, p):
    method = f"bayes-{model}"
    batch = make_batch(method, SEED_DGP, 4, np.arange(2)) if p == 1 else _covariate_batch(method)
    out = get_method(method).load()(batch, 0.9, GRID)
    terms = {t for _, t in out}
    assert "x0" in terms and (p == 1 or "x1" in terms)
    assert (p == 2 and model != "fe") == ("z0" in terms)
    for key, cols in out.items():
        for col in ("estimate", "se", "lower", "upper", "median"):
            assert np.isfinite(cols[col]).all(), (key, col)
        assert cols["converged"].all() and (cols["flag"] == 0).all(), key
        assert (cols["divergences"] == 0).all()


def test_batch_companions_do_not_change_a_replication():
    batch = make_batch("bayes-mundlak", SEED_DGP, 6, np.arange(8))
    settings = settings_from_options(GRID)

    def pick(idx):
        return np.asarray(batch.keys)[idx], GroupStats(*(np.asarray(a)[idx] for a in batch.stats))

    a = sample_grid("mundlak", *pick([0, 1, 2, 3]), settings)
    b = sample_grid("mundlak", *pick([5, 0, 7]), settings)  # padded to 4
    np.testing.assert_array_equal(a.values[0], b.values[1])
    assert np.isnan(a.lockstep_waste()) and (a.num_steps == 0).all()


def test_options():
    s = settings_from_options({"engine": "grid"})
    assert (s.engine, s.grid_size, s.grid_edge_tol, s.grid_refine_tol) == ("grid", 32, 1e-3, 0.05)
    s = settings_from_options({"engine": "nuts", "grid_size": 16, "warmup": 5})
    assert s.grid_size == 16  # a grid key under nuts is accepted (and unused)
    with pytest.raises(ConfigError, match="collapse"):
        settings_from_options({"engine": "grid", "collapse": "intercepts"})
    for options, key in [
        ({"grid_size": 3}, "grid_size"),
        ({"grid_size": 33}, "grid_size"),
        ({"grid_size": True}, "grid_size"),
        ({"grid_size": 16.0}, "grid_size"),
        ({"grid_edge_tol": 0}, "grid_edge_tol"),
        ({"grid_edge_tol": 2}, "grid_edge_tol"),
        ({"grid_refine_tol": -1}, "grid_refine_tol"),
        ({"grid_refine_tol": float("inf")}, "grid_refine_tol"),
        ({"engine": "gird"}, "engine"),
    ]:
        with pytest.raises(ConfigError, match=key):
            settings_from_options(options)
