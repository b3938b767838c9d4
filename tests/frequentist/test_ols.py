"""Pooled OLS and the between regression against linearmodels (PooledOLS, BetweenOLS)."""

import numpy as np
import pytest
from frequentist.reference import (
    CLOSED_FORM_RTOL,
    LEVEL,
    assert_close,
    column,
    lm_between,
    lm_pooled,
    panel_data,
)

CASES = [
    ("pooled", lambda d: lm_pooled(d)),
    ("pooled-cluster", lambda d: lm_pooled(d, clustered=True)),
    ("between", lm_between),
]


@pytest.mark.parametrize(("method", "reference_fit"), CASES, ids=[c[0] for c in CASES])
def test_matches_linearmodels(reference, method, reference_fit):
    for i, frame in enumerate(reference.frames):
        res = reference_fit(panel_data(frame))
        got = column(reference.results, method, i)
        what = f"{method} rep {i} ({reference.labels[i]})"
        assert_close(got["estimate"], res.params["ad_spend"], CLOSED_FORM_RTOL, what)
        assert_close(got["se"], res.std_errors["ad_spend"], CLOSED_FORM_RTOL, what)
        ci = res.conf_int(LEVEL).loc["ad_spend"]
        assert_close([got["lower"], got["upper"]], ci.to_numpy(), CLOSED_FORM_RTOL, what)
        assert got["df"] == res.df_resid
        assert np.isnan(got["p_value"])
        assert got["flag"] == 0


def test_two_regions_between_has_no_degrees_of_freedom(reference):
    """Between with G = 2 has df 0: NaN interval flagged NONFINITE, no exception."""
    from frequentist.reference import stats_of

    from mlmbias import flags
    from mlmbias.registry import Batch, get_method

    frame = reference.frames[0]
    two = frame[frame.region < 2]
    out = get_method("between").load()(Batch(None, stats_of(two)), LEVEL, {})[("beta", "x0")]
    assert np.isnan(out["se"][0])
    assert out["flag"][0] & flags.NONFINITE
