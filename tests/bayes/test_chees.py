"""The ``chees`` engine (mlmbias.bayes.chees) and nested R-hat (mlmbias.bayes.nested_rhat).

The sampling tests share one compiled ChEES program (``CHEES``, batches of 4,
p = 1, q = 0) and one NUTS program; the p = 2, q = 1 test compiles its own, and
the fit functions' test the grid program behind ``sampler_error = true`` (about
35 s of its 55).

NUTS agreement: per replication (4 of bayes-re, 4 of bayes-mundlak on the
seed's scenario) the posterior means of beta (and of the contextual effect for
mundlak) from both engines are compared by a z-score whose standard error
combines both engines' Monte Carlo SEs (posterior SD / sqrt(ESS of the mean)).
12 comparisons, each two-sided at 0.001 / 12 (Bonferroni): a correct engine
fails the test with probability below 0.001.
"""

import jax
import numpy as np
import pytest
from _panels import covariate_panel
from scipy.stats import norm

from mlmbias.bayes.chees import sample_chees
from mlmbias.bayes.draws import sample
from mlmbias.bayes.methods import summarize_draws
from mlmbias.bayes.nested_rhat import nested_rhat
from mlmbias.bayes.options import settings_from_options
from mlmbias.bayes.summary import ess_mean
from mlmbias.errors import ConfigError
from mlmbias.groupstats import group_stats_from_arrays
from mlmbias.registry import get_method

from .conftest import SEED_DGP, SMALL, make_batch

CHEES = {"engine": "chees", "batch_size": 4, "chees_warmup": 250, "chees_draws": 200}
FAMILY_RATE = 1e-3


# --- nested R-hat ---------------------------------------------------------------


def test_nested_rhat_by_hand():
    # K = 2 superchains of M = 2 chains, N = 3 draws
    x = np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [0.0, 1.0, 2.0], [1.0, 1.0, 4.0]])
    chain_means = np.array([2.0, 4.0, 1.0, 2.0])
    chain_vars = np.array([1.0, 4.0, 1.0, 3.0])  # 1/(N-1) sums of squares
    super_means = np.array([3.0, 1.5])
    b_nu = np.sum((super_means - 2.25) ** 2) / 1  # K - 1 = 1
    b_tilde = np.array([((2 - 3) ** 2 + (4 - 3) ** 2) / 1, ((1 - 1.5) ** 2 + (2 - 1.5) ** 2) / 1])
    w_tilde = np.array([chain_vars[:2].mean(), chain_vars[2:].mean()])
    w_nu = np.mean(b_tilde + w_tilde)
    assert np.allclose(chain_means, x.mean(1))
    expected = np.sqrt(1 + b_nu / w_nu)
    assert float(nested_rhat(x, 2)) == pytest.approx(expected, rel=1e-12)
    # batch axes in front; one draw per chain; one chain per superchain
    stacked = np.stack([x, 2 * x + 1])
    assert np.allclose(nested_rhat(stacked, 2), [expected, expected])
    one_draw = x[:, :1]
    means = one_draw[:, 0]
    ref = np.sqrt(
        1
        + np.var([means[:2].mean(), means[2:].mean()], ddof=1)
        / np.mean([np.var(means[:2], ddof=1), np.var(means[2:], ddof=1)])
    )
    assert float(nested_rhat(one_draw, 2)) == pytest.approx(ref)
    assert float(nested_rhat(np.ones((4, 5)), 2)) == 1.0  # a constant quantity
    assert np.isnan(float(nested_rhat(np.where(x > 5, np.nan, x), 2)))
    with pytest.raises(ValueError):
        nested_rhat(x, 3)


def test_nested_rhat_flags_a_superchain_that_has_not_mixed():
    rng = np.random.default_rng(0)
    mixed = rng.normal(size=(8, 16, 100))  # 8 cases of 16 chains: K = 4 superchains of M = 4
    good = np.asarray(nested_rhat(mixed, 4))
    assert np.all(good < 1.01)
    stuck = mixed.copy()
    stuck[:, :4] += 1.0  # the first superchain sits one SD away from the others
    bad = np.asarray(nested_rhat(stuck, 4))
    assert np.all(bad > 1.05)
    # also with two superchains (K = 2, M = 4), one of them stuck
    assert np.all(np.asarray(nested_rhat(stuck[:, :8], 2)) > 1.05)


# --- options ------------------------------------------------------------------


def test_chees_options():
    s = settings_from_options({"engine": "chees"})
    assert (s.engine, s.chees_chains, s.chees_superchains) == ("chees", 16, 4)
    assert (s.chees_warmup, s.chees_draws, s.chees_nrhat_max) == (300, 250, 1.01)
    s = settings_from_options({"chees_chains": 6, "chees_superchains": 3, "chees_nrhat_max": 1.05})
    assert (s.chees_chains, s.chees_superchains, s.chees_nrhat_max) == (6, 3, 1.05)
    for bad, match in (
        ({"engine": "chess"}, "engine"),
        ({"chees_chains": 1}, "chees_chains"),
        ({"chees_superchains": 1}, "chees_superchains"),
        ({"chees_chains": 10}, "multiple"),
        ({"chees_chains": 8, "chees_superchains": 3}, "multiple"),
        ({"chees_warmup": 0}, "chees_warmup"),
        ({"chees_draws": 1}, "chees_draws"),
        ({"chees_draws": 2.5}, "chees_draws"),
        ({"chees_nrhat_max": 0.9}, "chees_nrhat_max"),
        ({"chees_nrhat_max": "x"}, "chees_nrhat_max"),
        ({"chees_steps": 3}, "unknown"),
    ):
        with pytest.raises(ConfigError, match=match):
            settings_from_options(bad)


# --- sampling -------------------------------------------------------------------


@pytest.mark.parametrize("method", ["bayes-re", "bayes-mundlak"])
def test_fit_functions_run_with_chees_and_agree_with_the_grid(method):
    """The fit functions under ChEES, with ``sampler_error = true``: each posterior
    mean minus the grid's exact one, in posterior SDs, times sqrt(ESS) (the chees
    draws' bulk ESS) is about N(0, 1). Every coefficient of the 4 replications,
    two-sided at FAMILY_RATE / 2 per model (Bonferroni over its 4 x coefficients),
    so a correct ChEES fails the two cases with probability about FAMILY_RATE (a
    little more where the ESS estimate is noisy; the grid's own error, below 0.5%
    of an SD, moves a z-score by less than 0.3)."""
    batch = make_batch(method, SEED_DGP, 5, np.arange(4))
    out = get_method(method).load()(batch, 0.9, {**CHEES, "sampler_error": True})
    crit = norm.ppf(1 - FAMILY_RATE / 2 / (2 * 4 * len(out)))
    for key, cols in out.items():
        assert np.all(np.isfinite(cols["estimate"])) and np.all(np.isfinite(cols["se"]))
        assert np.all(cols["converged"]) and np.all(cols["flag"] == 0)
        assert np.all(cols["lower"] < cols["estimate"]) and np.all(cols["estimate"] < cols["upper"])
        e = cols["sampler_error"]
        assert np.isfinite(e).all(), key  # the grid's check passed
        z = e * np.sqrt(cols["ess"])
        assert np.all(np.abs(z) < crit), (key, z, crit)


def test_two_covariates_and_a_level2_one_and_one_replication_wastes_nothing():
    """p = 2, q = 1 (the general collapsed form), bayes-mundlak's output from the
    draws; with one replication per batch every chain takes the same number of
    leapfrog steps at every iteration, so nothing is wasted."""
    rng = np.random.default_rng(4)
    panel = covariate_panel(rng, rng.integers(4, 13, size=40))
    z = panel.groupby("g").z0.first().to_numpy()[:, None]
    stats = group_stats_from_arrays(panel.g, panel[["x0", "x1"]], panel.y, len(z), z)
    keys = np.asarray(jax.random.split(jax.random.PRNGKey(2), 1))
    draws = sample("mundlak", keys, stats, settings_from_options({**CHEES, "batch_size": 1}))
    assert draws.lockstep_waste() == 0.0 < draws.num_steps[0]
    out = summarize_draws("mundlak", draws, 0.9, 1.01, 400.0)
    assert set(out) == {
        ("beta", "x0"),
        ("beta", "x1"),
        ("beta", "z0"),
        ("contextual", "x0"),
        ("contextual", "x1"),
    }
    for cols in out.values():
        assert np.isfinite(cols["estimate"][0]) and np.isfinite(cols["se"][0])
        assert cols["converged"][0]
    assert abs(out["beta", "x0"]["estimate"][0] - 1.5) < 0.3
    assert abs(out["beta", "x1"]["estimate"][0] + 0.7) < 0.3


def test_agrees_with_nuts_replication_by_replication():
    failures = []
    comparisons = []
    for model, seed in (("re", 7), ("mundlak", 8)):
        batch = make_batch(f"bayes-{model}", SEED_DGP, seed, np.arange(4))
        c = sample(model, batch.keys, batch.stats, settings_from_options(CHEES))
        n = sample(model, batch.keys, batch.stats, settings_from_options(SMALL))
        names = ["beta"] + (["contextual"] if model == "mundlak" else [])
        for name in names:
            for i in range(4):
                a, b = c.get(name)[i], n.get(name)[i]
                se = np.hypot(
                    a.std() / np.sqrt(ess_mean(a[None])[0]), b.std() / np.sqrt(ess_mean(b[None])[0])
                )
                comparisons.append((model, name, i, (a.mean() - b.mean()) / se))
    crit = norm.ppf(1 - FAMILY_RATE / len(comparisons) / 2)
    assert len(comparisons) == 12
    failures = [f"{m} {q}[{i}]: z = {z:.2f}" for m, q, i, z in comparisons if abs(z) > crit]
    assert not failures, f"{failures} (critical |z| = {crit:.2f})"


def test_batch_independence_and_lockstep():
    """Replication 0 gives the same draws whatever shares its batch; the chains of a
    replication take the same number of leapfrog steps at every iteration, so a
    batch of one replication wastes nothing."""
    settings = settings_from_options(CHEES)
    a = make_batch("bayes-re", SEED_DGP, 9, np.array([0, 1, 2, 3]))
    b = make_batch("bayes-re", SEED_DGP, 9, np.array([0, 5, 6, 7]))
    first = sample_chees("re", a.keys, a.stats, settings)
    other = sample_chees("re", b.keys, b.stats, settings)
    assert not np.array_equal(first.values[1], other.values[1])
    np.testing.assert_array_equal(first.values[0], other.values[0])
    assert first.checks[0] == other.checks[0]
    assert first.batch_steps.shape == (1, 2)
    used, paid = first.batch_steps[0]
    assert used >= CHEES["chees_warmup"] + CHEES["chees_draws"] and paid >= used


def test_intercepts_collapse_is_refused():
    """ChEES's single step size per posterior diverges in the funnel of sigma_a and
    the coefficients that collapse = "intercepts" samples (divergences in 3 of 4
    replications of the seed's scenario when tried), so the pair is a ConfigError."""
    with pytest.raises(ConfigError, match="intercepts"):
        settings_from_options({"engine": "chees", "collapse": "intercepts"})
    settings = settings_from_options({**CHEES, "collapse": "intercepts", "engine": "nuts"})
    batch = make_batch("bayes-re", SEED_DGP, 5, np.arange(4))
    with pytest.raises(ConfigError, match="intercepts"):
        sample_chees("re", batch.keys, batch.stats, settings)


assert jax.config.jax_enable_x64
