"""Each measure and its MCSE against a direct NumPy computation of the formula."""

import numpy as np
import pandas as pd
import pytest

from mlmbias.report.measures import estimate_measures, performance

TRUTH = 1.5


@pytest.fixture
def table():
    rng = np.random.default_rng(0)
    n = 40
    est = TRUTH + 0.3 + rng.normal(0, 0.5, n)
    se = rng.uniform(0.3, 0.7, n)
    return est, se, est - 1.88 * se, est + 1.88 * se


def test_every_measure_matches_the_formula(table):
    est, se, lo, hi = table
    n = est.size
    m = estimate_measures(est, se, lo, hi, TRUTH)
    sd = est.std(ddof=1)
    np.testing.assert_allclose(m["bias"], (est.mean() - TRUTH, sd / np.sqrt(n)))
    np.testing.assert_allclose(
        m["rel_bias"], ((est.mean() - TRUTH) / TRUTH, sd / np.sqrt(n) / TRUTH)
    )
    np.testing.assert_allclose(m["empse"], (sd, sd / np.sqrt(2 * (n - 1))))
    sq = (est - TRUTH) ** 2
    np.testing.assert_allclose(m["mse"], (sq.mean(), sq.std(ddof=1) / np.sqrt(n)))
    np.testing.assert_allclose(
        m["rmse"], (np.sqrt(sq.mean()), sq.std(ddof=1) / np.sqrt(n) / (2 * np.sqrt(sq.mean())))
    )
    modse = np.sqrt(np.mean(se**2))
    v = np.var(se**2, ddof=1)
    np.testing.assert_allclose(m["modse"], (modse, np.sqrt(v / (4 * n * modse**2))))
    ratio = modse / sd
    np.testing.assert_allclose(
        m["relerror"],
        (100 * (ratio - 1), 100 * ratio * np.sqrt(v / (4 * n * modse**4) + 1 / (2 * (n - 1)))),
    )
    c = np.mean((lo <= TRUTH) & (TRUTH <= hi))
    np.testing.assert_allclose(m["cover"], (c, np.sqrt(c * (1 - c) / n)))
    b = np.mean((lo <= est.mean()) & (est.mean() <= hi))
    np.testing.assert_allclose(m["becover"], (b, np.sqrt(b * (1 - b) / n)))
    w = hi - lo
    np.testing.assert_allclose(m["width"], (w.mean(), w.std(ddof=1) / np.sqrt(n)))


def test_all_intervals_cover_gives_zero_mcse():
    est = np.array([1.4, 1.5, 1.6])
    m = estimate_measures(est, np.ones(3), est - 10, est + 10, TRUTH)
    assert m["cover"] == (1.0, 0.0)
    assert m["becover"] == (1.0, 0.0)


def test_zero_variance_estimates():
    est = np.full(5, 1.7)
    m = estimate_measures(est, np.full(5, 0.1), est - 0.1, est + 0.1, TRUTH)
    np.testing.assert_allclose(m["bias"], (0.2, 0.0), atol=1e-12)
    assert m["empse"] == (0.0, 0.0)
    assert "relerror" not in m  # undefined when the empirical SE is 0
    assert m["cover"] == (0.0, 0.0)


def test_missing_se_and_limits_are_left_out():
    est = np.array([1.0, 2.0, 1.5, 1.2])
    se = np.array([0.5, np.nan, 0.5, 0.5])
    lo = np.array([0.0, np.nan, 1.0, 1.0])
    hi = np.array([2.0, np.nan, 2.0, 1.1])
    m = estimate_measures(est, se, lo, hi, TRUTH)
    assert m["modse"][0] == pytest.approx(0.5)
    assert m["cover"][0] == pytest.approx(2 / 3)
    assert m["width"][0] == pytest.approx(np.mean([2.0, 1.0, 0.1]))


def _results(converged, estimates, pvals=None):
    n = len(estimates)
    est = np.asarray(estimates, float)
    return pd.DataFrame(
        {
            "condition_index": 0,
            "n_regions": 10,
            "beta": TRUTH,
            "truth": TRUTH if pvals is None else np.nan,
            "method": "m",
            "estimand": "beta" if pvals is None else "test",
            "estimate": est,
            "se": 0.5,
            "lower": est - 1,
            "upper": est + 1,
            "p_value": np.nan if pvals is None else pvals,
            "converged": converged,
        }
    ).assign(rep=np.arange(n))


def get(summary, stat):
    row = summary[summary.stat == stat]
    return float(row.est.iloc[0]), float(row.mcse.iloc[0])


def test_counts_failed_and_not_converged():
    df = _results([True, False, True, True], [1.5, 1.6, np.nan, 1.4])
    s = performance(df)
    assert get(s, "n_total")[0] == 4
    assert get(s, "n_failed")[0] == 1
    assert get(s, "n_not_converged")[0] == 1
    assert get(s, "n_used")[0] == 3
    s2 = performance(df, converged_only=True)
    assert get(s2, "n_used")[0] == 2
    np.testing.assert_allclose(get(s2, "bias")[0], np.mean([1.5, 1.4]) - TRUTH)


def test_method_with_no_converged_replication():
    df = _results([False, False, False], [1.5, 1.6, 1.7])
    s = performance(df, converged_only=True)
    assert get(s, "n_used")[0] == 0
    assert np.isnan(get(s, "bias")[0]) and np.isnan(get(s, "cover")[0])


def test_rejection_rate_of_a_test():
    p = np.array([0.01, 0.2, 0.04, 0.5, 0.051])
    s = performance(_results(np.nan, np.ones(5), p), alpha=0.05)
    np.testing.assert_allclose(get(s, "rejection"), (0.4, np.sqrt(0.4 * 0.6 / 5)))
    s = performance(_results(np.nan, np.ones(5), p), alpha=0.1)
    assert get(s, "rejection")[0] == pytest.approx(0.6)


def test_correlation_flag_rate():
    df = _results(True, [1.5, 1.6, 1.4, 1.5]).assign(corr_beta_sigma_a=[0.9, -0.7, 0.1, np.nan])
    s = performance(df, corr_threshold=0.5)
    np.testing.assert_allclose(get(s, "flag_rate"), (2 / 3, np.sqrt(2 / 9 / 3)))


def test_sampler_error_mean_and_rms():
    e = np.array([0.1, -0.3, 0.2, np.nan])
    df = _results(True, [1.5, 1.6, 1.4, 1.5]).assign(sampler_error=e)
    s = performance(df)
    f = e[:3]
    np.testing.assert_allclose(get(s, "sampler_error"), (f.mean(), f.std(ddof=1) / np.sqrt(3)))
    rms = np.sqrt(np.mean(f**2))
    want = (rms, (f**2).std(ddof=1) / (2 * np.sqrt(3) * rms))
    np.testing.assert_allclose(get(s, "sampler_rmse"), want)
    assert "sampler_error" not in set(performance(_results(True, [1.5, 1.6])).stat)
