"""Summaries and diagnostics against direct computations."""

import numpy as np
import pytest
from numpyro.diagnostics import effective_sample_size, hpdi, split_gelman_rubin

from mlmbias.bayes.summary import bulk_ess, correlation, split_rhat, summarize


@pytest.fixture(scope="module")
def draws():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5, 4, 400))
    x[1] = np.cumsum(x[1], axis=1) * 0.1  # autocorrelated
    x[2, 0] += 3.0  # one chain apart
    return x


def test_vectorised_diagnostics_equal_per_replication_calls(draws):
    rhat = split_rhat(draws)
    for i in range(draws.shape[0]):
        assert rhat[i] == pytest.approx(split_gelman_rubin(draws[i]), rel=1e-12)
    assert rhat[0] < 1.02 and rhat[2] > 1.5


def test_bulk_ess(draws):
    ess = bulk_ess(draws)
    # iid: near the number of draws; random walk: far below; per-replication equal to
    # NumPyro's ESS of the rank-normalised split chains
    assert 1200 < ess[0] < 2200
    assert ess[1] < 200
    x = draws[3]
    halves = np.concatenate([x[:, :200], x[:, 200:]], axis=0)
    from scipy.special import ndtri
    from scipy.stats import rankdata

    z = ndtri((rankdata(halves).reshape(halves.shape) - 0.375) / (halves.size + 0.25))
    assert ess[3] == pytest.approx(effective_sample_size(z), rel=1e-10)


def test_bulk_ess_constant_is_nan():
    assert np.isnan(bulk_ess(np.ones((1, 4, 100))))[0]


def test_summarize(draws):
    s = summarize(draws, 0.9)
    for i in range(draws.shape[0]):
        flat = draws[i].reshape(-1)
        assert s["estimate"][i] == pytest.approx(flat.mean())
        assert s["median"][i] == pytest.approx(np.median(flat))
        assert s["se"][i] == pytest.approx(flat.std(ddof=1))
        lo, hi = hpdi(flat, 0.9)
        assert (s["lower"][i], s["upper"][i]) == pytest.approx((lo, hi))
        assert s["lower_eti"][i] == pytest.approx(np.quantile(flat, 0.05))
        assert s["upper_eti"][i] == pytest.approx(np.quantile(flat, 0.95))


def test_summarize_nonfinite():
    x = np.random.default_rng(2).normal(size=(2, 4, 50))
    x[1, 2, 7] = np.inf
    s = summarize(x, 0.9)
    assert np.isfinite(s["lower"][0]) and np.isnan(s["lower"][1]) and np.isnan(s["upper_eti"][1])


def test_correlation():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(2, 4, 500))
    b = 0.5 * a + rng.normal(size=(2, 4, 500))
    got = correlation(a, b)
    for i in range(2):
        want = np.corrcoef(a[i].ravel(), b[i].ravel())[0, 1]
        assert got[i] == pytest.approx(want, rel=1e-12)


def _library_bulk_ess(x):
    """Bulk ESS of one replication (chains, draws) by scipy's rankdata and ndtri."""
    from scipy.special import ndtri
    from scipy.stats import rankdata

    half = x.shape[1] // 2
    halves = np.concatenate([x[:, :half], x[:, x.shape[1] - half :]], axis=0)
    z = ndtri((rankdata(halves).reshape(halves.shape) - 0.375) / (halves.size + 0.25))
    return effective_sample_size(z)


@pytest.mark.parametrize("draws_per_chain", [400, 101])
def test_one_sort_gives_the_library_values_exactly(draws_per_chain):
    # summarize sorts each replication once for the median, both intervals and the
    # ranks of the bulk ESS: the values must be the library calls' to the bit, ties
    # (repeated MCMC draws) included
    rng = np.random.default_rng(4)
    x = np.round(rng.normal(size=(6, 4, draws_per_chain)), 1)  # many ties
    x[1] = rng.normal(size=(4, draws_per_chain))  # none
    x[2, :, 1::2] = x[2, :, 0:-1:2][:, : x[2, :, 1::2].shape[1]]  # every draw repeated
    s = summarize(x, 0.9)
    tail = (1.0 - 0.9) / 2.0
    eti = np.quantile(x.reshape(x.shape[0], -1), [tail, 1.0 - tail], axis=1)
    for i in range(x.shape[0]):
        flat = x[i].reshape(-1)
        lo, hi = hpdi(flat, 0.9)
        assert (s["lower"][i], s["upper"][i]) == (lo, hi)
        assert (s["lower_eti"][i], s["upper_eti"][i]) == (eti[0, i], eti[1, i])
        assert s["median"][i] == np.median(flat)
        assert s["ess"][i] == _library_bulk_ess(x[i])
        assert bulk_ess(x[i : i + 1])[0] == _library_bulk_ess(x[i])
