"""The JAX quantile and tail functions against SciPy."""

import jax
import numpy as np
import pytest
import scipy.stats as st

from mlmbias.frequentist._common import critical_value
from mlmbias.frequentist._dist import chi2_sf, t_ppf

DFS = np.array([1, 2, 3, 4, 5, 7, 10, 30, 100, 345, 1000, 9999, 1e4, 5e4, 1e6, 1e9])
PS = np.array([0.5125, 0.75, 0.9, 0.95, 0.97, 0.975, 0.995, 0.9995])


def test_t_ppf_matches_scipy():
    d, p = np.meshgrid(DFS, PS)
    got = np.asarray(jax.jit(t_ppf)(p, d))
    np.testing.assert_allclose(got, st.t.ppf(p, d), rtol=1e-9)


def test_t_ppf_bad_df_is_nan():
    assert np.isnan(float(t_ppf(0.975, 0.0)))
    assert np.isnan(float(t_ppf(0.975, -3.0)))


@pytest.mark.parametrize("level", [0.5, 0.9, 0.94, 0.95, 0.99])
def test_critical_value(level):
    df = np.array([3.0, 48.0, np.inf])
    got = np.asarray(critical_value(level, df))
    p = 0.5 + level / 2
    want = [st.t.ppf(p, 3), st.t.ppf(p, 48), st.norm.ppf(p)]
    np.testing.assert_allclose(got, want, rtol=1e-10)


@pytest.mark.parametrize("df", [1, 2, 5])
def test_chi2_sf(df):
    x = np.array([0.0, 0.01, 1.0, 3.84, 20.0, 80.0])
    np.testing.assert_allclose(np.asarray(chi2_sf(x, df)), st.chi2.sf(x, df), rtol=1e-10)
    assert np.isnan(float(chi2_sf(-1.0, df)))
