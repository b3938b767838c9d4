"""The simulator against the DGP's own moments, reproducibility and the padding bound.

Moment checks compare a Monte Carlo mean over replications with its known value
using |mean - truth| / MCSE < 4.0 (MCSE = sd / sqrt(reps)). Each check's
false-failure rate is 6.3e-5 (two-sided normal tail); with the nine checks
below, under 6e-4 in all. The seeds are fixed, so a pass is reproducible.
"""

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from mlmbias import DGP, simulate, simulate_condition, to_frame
from mlmbias.seeding import data_keys, replication_keys
from mlmbias.simulate import _simulate_batch

Z = 4.0
REPS = 1000


def assert_mc_mean(values, truth, label):
    values = np.asarray(values, float)
    mcse = values.std(ddof=1) / np.sqrt(values.size)
    z = (values.mean() - truth) / mcse
    assert abs(z) < Z, f"{label}: mean {values.mean():.5f} vs {truth} (z = {z:.2f})"


@pytest.fixture(scope="module")
def sims():
    dgp = DGP(n_regions=20)
    return dgp, simulate_condition(dgp, 11, np.arange(REPS))


def test_months_per_region(sims):
    dgp, panel = sims
    months = np.stack(
        [
            np.bincount(
                np.asarray(panel.region[i])[np.asarray(panel.mask[i])], minlength=dgp.n_regions
            )
            for i in range(REPS)
        ]
    )
    assert months.min() >= dgp.months_min
    assert_mc_mean(months.mean(axis=1), dgp.months_mean + dgp.months_min, "mean months")
    assert_mc_mean(months.var(axis=1, ddof=1), dgp.months_mean, "variance of months")


def test_within_region_adspend_variance(sims):
    dgp, panel = sims
    per_rep = []
    for i in range(REPS):
        df = to_frame(panel, i)
        dev = df.ad_spend - df.groupby("region").ad_spend.transform("mean")
        per_rep.append((dev**2).sum() / (len(df) - dgp.n_regions))
    assert_mc_mean(per_rep, dgp.adspend_sd**2, "within-region variance of ad spend")


def test_profit_regression_recovers_coefficients(sims):
    dgp, panel = sims
    coefs = []
    for i in range(REPS):
        m = np.asarray(panel.mask[i])
        comp = np.asarray(panel.latent["competition"][i])[np.asarray(panel.region[i])[m]]
        X = np.column_stack([np.ones(m.sum()), np.asarray(panel.x[i, :, 0])[m], comp])
        coefs.append(np.linalg.lstsq(X, np.asarray(panel.y[i])[m], rcond=None)[0])
    coefs = np.array(coefs)
    assert_mc_mean(coefs[:, 0], dgp.intercept, "intercept")
    assert_mc_mean(coefs[:, 1], dgp.beta, "beta")
    assert_mc_mean(coefs[:, 2], dgp.competition_effect, "competition effect")


def test_regional_average_depends_on_competition(sims):
    dgp, panel = sims
    comp = np.asarray(panel.latent["competition"])
    avg = np.asarray(panel.latent["adspend_avg"])
    slopes, resid_var, comp_var = [], [], []
    for c, a in zip(comp, avg, strict=True):
        slope, icpt = np.polyfit(c, a, 1)
        slopes.append(slope)
        resid_var.append(((a - icpt - slope * c) ** 2).sum() / (len(c) - 2))
        comp_var.append(c.var(ddof=1))
    assert_mc_mean(slopes, dgp.confounding, "confounding slope")
    assert_mc_mean(resid_var, dgp.adspend_region_sd**2, "regional ad-spend variance")
    assert_mc_mean(comp_var, dgp.competition_sd**2, "competition variance")


def test_padding_is_masked_and_layout_contiguous(sims):
    dgp, panel = sims
    assert panel.max_obs == dgp.obs_bound()
    m = np.asarray(panel.mask)
    assert (m.sum(axis=1) == np.asarray(panel.n_obs)).all()
    assert (np.asarray(panel.x[..., 0])[~m] == 0).all() and (np.asarray(panel.y)[~m] == 0).all()
    region = np.asarray(panel.region)
    assert (np.diff(region, axis=1) >= 0).all()
    df = to_frame(panel, 3)
    assert list(df.columns) == ["region", "month", "ad_spend", "profit"]
    assert (df.groupby("region").month.apply(lambda s: list(s) == list(range(len(s))))).all()


def test_replication_same_alone_or_in_any_batch():
    dgp = DGP(n_regions=7)
    big = simulate_condition(dgp, 5, np.arange(500))
    for i in (0, 3, 6, 499):
        alone = simulate_condition(dgp, 5, [i])
        np.testing.assert_array_equal(alone.y[0], big.y[i])
        np.testing.assert_array_equal(alone.x[0, :, 0], big.x[i, :, 0])
    seven = simulate_condition(dgp, 5, np.arange(7))
    np.testing.assert_array_equal(seven.y, big.y[:7])


def test_data_do_not_depend_on_padding_bound():
    dgp = DGP(n_regions=6)
    a = simulate_condition(dgp, 3, [0, 1])
    b = simulate_condition(dgp, 3, [0, 1], max_obs=dgp.obs_bound() + 37)
    n = a.max_obs
    np.testing.assert_array_equal(a.y, b.y[:, :n])
    assert not np.asarray(b.mask[:, n:]).any()


def test_condition_changes_the_data_and_seed_changes_the_data():
    a = simulate_condition(DGP(n_regions=5), 1, [0])
    b = simulate_condition(DGP(n_regions=5, noise_sd=9.0), 1, [0])
    c = simulate_condition(DGP(n_regions=5), 2, [0])
    assert not np.array_equal(a.y, b.y)
    assert not np.array_equal(a.y, c.y)


def test_draw_above_bound_raises_never_truncates():
    dgp = DGP(n_regions=5, months_mean=50.0)
    with pytest.raises(ValueError, match="above the padding bound"):
        simulate_condition(dgp, 0, [0], max_obs=dgp.n_regions * dgp.months_min + 1)
    with pytest.raises(ValueError, match="below the minimum possible"):
        simulate_condition(dgp, 0, [0], max_obs=3)


def test_bad_keys_shape():
    with pytest.raises(ValueError, match="shape"):
        simulate(DGP(), jnp.zeros((2, 2, 2), jnp.uint32))


def test_one_compiled_program_per_panel_shape():
    keys = data_keys(replication_keys(0, DGP(n_regions=9), np.arange(4)))
    simulate(DGP(n_regions=9), keys)
    before = _simulate_batch._cache_size()
    for dgp in (DGP(n_regions=9, confounding=0.0), DGP(n_regions=9, noise_sd=3.0, beta=0.2)):
        simulate(dgp, keys)
    assert _simulate_batch._cache_size() == before


def test_to_frame_roundtrip_matches_pandas_dtypes():
    df = to_frame(simulate_condition(DGP(n_regions=3), 0, [0]))
    assert isinstance(df, pd.DataFrame)
    assert df.region.nunique() == 3
    assert np.issubdtype(df.ad_spend.dtype, np.floating)
