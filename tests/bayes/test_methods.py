"""The registered Bayesian methods: interface, diagnostics, determinism, options."""

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from mlmbias import ConfigError, flags, to_frame
from mlmbias.bayes.draws import QUANTITIES, Draws
from mlmbias.bayes.methods import summarize_draws
from mlmbias.bayes.summary import mcse_mean
from mlmbias.fitting import fit
from mlmbias.registry import Batch, get_method, method_names

from .conftest import SEED_DGP, SMALL, make_batch

BAYES = ["bayes-pooled", "bayes-fe", "bayes-re", "bayes-mundlak", "bayes-rewb"]
COLUMNS = {
    "estimate",
    "median",
    "se",
    "lower",
    "upper",
    "lower_eti",
    "upper_eti",
    "p_value",
    "rhat",
    "ess",
    "divergences",
    "converged",
    "corr_beta_sigma_a",
    "flag",
}


RANDOM_SLOPES = ["bayes-rs", "bayes-rs-mundlak"]  # tests/bayes/test_random_slopes.py


def test_registered():
    assert method_names("bayes") == BAYES + RANDOM_SLOPES
    for name in BAYES + RANDOM_SLOPES:
        spec = get_method(name)
        assert spec.kind == "bayes"
        context = name in ("bayes-mundlak", "bayes-rewb", "bayes-rs-mundlak")
        assert spec.estimands == (("beta", "contextual") if context else ("beta",))


@pytest.fixture(scope="module")
def seed_fits():
    """Every method on the same 3 replications of the seed's scenario."""
    out = {}
    for name in BAYES:
        batch = make_batch(name, SEED_DGP, 5, np.arange(3))
        out[name] = get_method(name).load()(batch, 0.94, SMALL)
    return out


@pytest.mark.parametrize("name", BAYES)
def test_output_columns_and_shapes(seed_fits, name):
    out = seed_fits[name]
    assert tuple(out) == tuple((e, "x0") for e in get_method(name).estimands)
    for cols in out.values():
        assert set(cols) == COLUMNS
        for key, arr in cols.items():
            assert isinstance(arr, np.ndarray) and arr.shape == (3,), key
        assert np.isnan(cols["p_value"]).all()
        assert (cols["lower"] < cols["estimate"]).all() and (cols["estimate"] < cols["upper"]).all()
        assert (cols["lower_eti"] < cols["median"]).all()
        assert (cols["median"] < cols["upper_eti"]).all()
        assert (cols["se"] > 0).all()
        assert cols["converged"].dtype == bool
        assert np.isnan(cols["corr_beta_sigma_a"]).all() == (name in ("bayes-pooled", "bayes-fe"))
        assert ((cols["flag"] == 0) == cols["converged"]).all()
        if name != "bayes-re":
            # SMALL gives ESS near 2000 and no divergences on these data; the naive
            # model's posterior (sigma_a pulled between two explanations) mixes worse
            # and may miss R-hat <= 1.01 at this short length
            assert cols["converged"].all(), cols


def test_hpd_narrower_than_equal_tailed(seed_fits):
    """The HPD interval is the shortest holding its share of the draws. The sample
    HPD holds ceil(level n) draws while the interpolated equal-tailed interval may
    hold one or two fewer, so the HPD may be wider by about one spacing of the
    order statistics at each tail: sd / (n f(q)), about 0.007 sd for the 2000
    draws here; 0.02 sd allows for both tails."""
    cols = seed_fits["bayes-mundlak"][("beta", "x0")]
    hpd = cols["upper"] - cols["lower"]
    eti = cols["upper_eti"] - cols["lower_eti"]
    assert (hpd <= eti + 0.02 * cols["se"]).all()


def test_rerun_identical_and_alone_identical():
    """Same batch size and backend: identical numbers, alone or among other replications."""
    name = "bayes-mundlak"
    method = get_method(name).load()
    batch = make_batch(name, SEED_DGP, 5, np.arange(3))
    a = method(batch, 0.94, SMALL)
    b = method(batch, 0.94, SMALL)
    alone = make_batch(name, SEED_DGP, 5, [2])
    c = method(alone, 0.94, SMALL)
    for est in a:
        for col in a[est]:
            np.testing.assert_array_equal(a[est][col], b[est][col])
            np.testing.assert_array_equal(a[est][col][2:], c[est][col])


def test_other_batch_size_agrees_within_mcse():
    """Another batch size (another compiled program) gives the same posterior within
    Monte Carlo error: 6 comparisons at 0.001 / 6 each."""
    from mlmbias.bayes.draws import sample
    from mlmbias.bayes.options import settings_from_options

    batch = make_batch("bayes-mundlak", SEED_DGP, 5, np.arange(3))
    a = sample("mundlak", batch.keys, batch.stats, settings_from_options(SMALL))
    b = sample(
        "mundlak", batch.keys, batch.stats, settings_from_options({**SMALL, "batch_size": 4})
    )
    crit = norm.ppf(1 - 1e-3 / 6 / 2)
    for name in ("beta", "contextual"):
        xa, xb = a.get(name), b.get(name)
        z = (xa.mean(axis=(1, 2)) - xb.mean(axis=(1, 2))) / np.hypot(mcse_mean(xa), mcse_mean(xb))
        assert np.all(np.abs(z) < crit), (name, z)


def test_padding_and_chunks_keep_order():
    """11 replications in batches of 8: two chunks, the second padded; rep i's result is
    the one it gets in any other chunking with the same batch size."""
    name = "bayes-re"
    method = get_method(name).load()
    batch = make_batch(name, SEED_DGP, 9, np.arange(11))
    out = method(batch, 0.94, SMALL)[("beta", "x0")]
    tail = make_batch(name, SEED_DGP, 9, np.arange(8, 11))
    out_tail = method(tail, 0.94, SMALL)[("beta", "x0")]
    np.testing.assert_array_equal(out["estimate"][8:], out_tail["estimate"])
    assert np.unique(out["estimate"]).size == 11


@pytest.mark.parametrize(
    "options, key",
    [
        ({"chain": 4}, "chain"),
        ({"prior_beta_sd": 3}, "prior_beta_sd"),
        ({"chains": 0}, "chains"),
        ({"draws": 2.5}, "draws"),
        ({"dense_mass": "yes"}, "dense_mass"),
        ({"collapse": "all"}, "collapse"),
        ({"prior_sigma_scale": -1}, "prior_sigma_scale"),
        ({"rhat_max": 0.9}, "rhat_max"),
    ],
)
def test_bad_options_are_config_errors(options, key):
    batch = make_batch("bayes-re", SEED_DGP, 5, [0])
    with pytest.raises(ConfigError, match=key):
        get_method("bayes-re").load()(batch, 0.94, options)


def test_prior_override_takes_effect():
    """A tight prior on beta at 0 pulls the estimate to 0."""
    batch = make_batch("bayes-fe", SEED_DGP, 5, [0])
    opts = {**SMALL, "prior_beta_loc": 0.0, "prior_beta_scale": 1e-3}
    out = get_method("bayes-fe").load()(batch, 0.94, opts)
    assert abs(out[("beta", "x0")]["estimate"][0]) < 0.01


def test_flags_and_converged_from_draws():
    """Divergences, poor mixing and non-finite draws set the documented bits."""
    rng = np.random.default_rng(0)
    values = rng.normal(size=(3, 4, 100, len(QUANTITIES)))
    values[..., QUANTITIES.index("sigma")] = np.abs(values[..., 3]) + 1
    values[1, 0, :, :] += 5.0  # chain 0 of rep 1 elsewhere: R-hat >> 1
    values[2, 0, 0, 1] = np.nan
    draws = Draws(
        values, np.array([0, 0, 3]), np.ones((3, 4)), np.ones((3, 4)), np.ones(3), np.ones((1, 2))
    )
    out = summarize_draws("re", draws, 0.9, rhat_max=1.05, ess_min=100)[("beta", "x0")]
    assert out["converged"].tolist() == [True, False, False]
    assert out["flag"][0] == 0
    assert out["flag"][1] == flags.NOT_CONVERGED
    assert out["flag"][2] == flags.NOT_CONVERGED | flags.DIVERGENT | flags.NONFINITE
    assert out["divergences"].tolist() == [0, 0, 3]


def test_fit_user_panel_has_diagnostics(seed_panel):
    df = to_frame(seed_panel, 0)
    table = fit(
        df,
        "region",
        "ad_spend",
        "profit",
        methods=["bayes-mundlak"],
        options=SMALL,
    )
    assert isinstance(table, pd.DataFrame)
    assert table["estimand"].tolist() == ["beta", "contextual"]
    for col in ("rhat", "ess", "divergences", "converged", "corr_beta_sigma_a", "flag"):
        assert col in table.columns
    row = table.iloc[0]
    assert row["converged"] and row["rhat"] < 1.01 and row["ess"] > 400
    assert row["p_value"] is None or np.isnan(row["p_value"])
    assert 0.5 < row["estimate"] < 2.5


def test_empty_batch():
    batch = make_batch("bayes-re", SEED_DGP, 5, [0])
    empty = Batch(batch.keys[:0], type(batch.stats)(*(a[:0] for a in batch.stats)))
    out = get_method("bayes-re").load()(empty, 0.94, SMALL)
    assert out[("beta", "x0")]["estimate"].shape == (0,)
