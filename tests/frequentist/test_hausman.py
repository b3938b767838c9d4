"""Hausman tests: the classic FE-RE contrast and the cluster-robust Mundlak Wald test."""

import numpy as np
import scipy.stats as st
from frequentist.reference import (
    CLOSED_FORM_RTOL,
    LEVEL,
    R_PAD,
    assert_close,
    column,
    lm_fe,
    lm_re,
    max_obs,
    pad_stats,
    panel_data,
)

from mlmbias import DGP, flags, group_stats, simulate_condition, to_frame
from mlmbias.registry import Batch, get_method


def _classic_from_linearmodels(d):
    fe, re = lm_fe(d), lm_re(d)
    contrast = fe.params["ad_spend"] - re.params["ad_spend"]
    var_diff = fe.std_errors["ad_spend"] ** 2 - re.std_errors["ad_spend"] ** 2
    return contrast, var_diff


def test_classic_matches_linearmodels_contrast(reference):
    for i, frame in enumerate(reference.frames):
        contrast, var_diff = _classic_from_linearmodels(panel_data(frame))
        got = column(reference.results, "hausman", i, "test")
        what = f"hausman rep {i} ({reference.labels[i]})"
        assert var_diff > 0, what  # region effects are strong in these panels
        assert_close(got["contrast"], contrast, CLOSED_FORM_RTOL, what)
        assert_close(got["var_diff"], var_diff, CLOSED_FORM_RTOL, what)
        assert_close(got["estimate"], contrast**2 / var_diff, CLOSED_FORM_RTOL, what)
        assert_close(got["p_value"], st.chi2.sf(contrast**2 / var_diff, 1), 1e-8, what)
        assert got["df"] == 1
        assert np.isnan(got["se"]) and np.isnan(got["lower"]) and np.isnan(got["upper"])
        assert got["flag"] & flags.NOT_POSITIVE_DEFINITE == 0


def test_classic_not_positive_definite_is_flagged():
    """Without region effects V_FE - V_RE can be <= 0: flagged, statistic NaN.

    (Seed 21 gives one such replication of eight; eight replications padded to
    R_PAD regions reuse the reference batch's compiled function.)
    """
    dgp = DGP(n_regions=5, competition_sd=0.0, adspend_region_sd=0.0, confounding=0.0)
    panel = simulate_condition(dgp, 21, range(8), max_obs(5))
    stats = pad_stats(group_stats(panel), R_PAD)
    out = get_method("hausman").load()(Batch(None, stats), LEVEL, {})[("test", "")]
    seen = set()
    for i in range(8):
        contrast, var_diff = _classic_from_linearmodels(panel_data(to_frame(panel, i)))
        flag, stat, p = out["flag"][i], out["estimate"][i], out["p_value"][i]
        assert_close(out["var_diff"][i], var_diff, 1e-6, f"rep {i}")
        if var_diff > 0:
            assert flag & flags.NOT_POSITIVE_DEFINITE == 0
            assert_close(stat, contrast**2 / var_diff, 1e-6, f"rep {i}")
            assert np.isfinite(p)
        else:
            assert flag & flags.NOT_POSITIVE_DEFINITE and flag & flags.NONFINITE
            assert np.isnan(stat) and np.isnan(p)
        seen.add(bool(var_diff > 0))
    assert seen == {True, False}


def test_robust_matches_clustered_mundlak_wald(reference):
    for i, frame in enumerate(reference.frames):
        res = lm_re(panel_data(frame), mundlak=True, clustered=True)
        wald = (res.params["xbar"] / res.std_errors["xbar"]) ** 2
        got = column(reference.results, "hausman-robust", i, "test")
        what = f"hausman-robust rep {i} ({reference.labels[i]})"
        assert_close(got["estimate"], wald, CLOSED_FORM_RTOL, what)
        assert_close(got["p_value"], st.chi2.sf(wald, 1), 1e-8, what)
        assert_close(got["gamma"], res.params["xbar"], CLOSED_FORM_RTOL, what)
        assert got["df"] == 1


def _sigmamore_from_linearmodels(d):
    """Stata's sigmamore: FE and RE variances both on the RE disturbance variance."""
    fe, re = lm_fe(d), lm_re(d)
    contrast = fe.params["ad_spend"] - re.params["ad_spend"]
    wxx_inv = fe.std_errors["ad_spend"] ** 2 / fe.s2
    var_diff = re.s2 * wxx_inv - re.std_errors["ad_spend"] ** 2
    return contrast, var_diff


def test_sigmamore_matches_linearmodels_pieces(reference):
    for i, frame in enumerate(reference.frames):
        contrast, var_diff = _sigmamore_from_linearmodels(panel_data(frame))
        got = column(reference.results, "hausman-sigmamore", i, "test")
        what = f"hausman-sigmamore rep {i} ({reference.labels[i]})"
        assert_close(got["contrast"], contrast, CLOSED_FORM_RTOL, what)
        assert_close(got["var_diff"], var_diff, 1e-8, what)
        assert_close(got["estimate"], contrast**2 / var_diff, 1e-8, what)
        assert_close(got["p_value"], st.chi2.sf(contrast**2 / var_diff, 1), 1e-8, what)


def test_sigmamore_defined_where_the_classic_test_is_not():
    """Same panels as the not-positive-definite test: sigmamore's variance is positive."""
    dgp = DGP(n_regions=5, competition_sd=0.0, adspend_region_sd=0.0, confounding=0.0)
    panel = simulate_condition(dgp, 21, range(8), max_obs(5))
    stats = pad_stats(group_stats(panel), R_PAD)
    batch = Batch(None, stats)
    classic = get_method("hausman").load()(batch, LEVEL, {})[("test", "")]
    more = get_method("hausman-sigmamore").load()(batch, LEVEL, {})[("test", "")]
    assert np.isnan(classic["estimate"][:8]).any()
    assert (more["var_diff"][:8] > 0).all() and np.isfinite(more["p_value"][:8]).all()
