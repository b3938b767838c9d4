"""Fixed effects against linearmodels PanelOLS (entity effects), unadjusted and clustered."""

import numpy as np
import pytest
from frequentist.reference import (
    CLOSED_FORM_RTOL,
    LEVEL,
    assert_close,
    column,
    lm_fe,
    panel_data,
)

from mlmbias import flags


@pytest.mark.parametrize("clustered", [False, True], ids=["fe", "fe-cluster"])
def test_matches_panelols(reference, clustered):
    method = "fe-cluster" if clustered else "fe"
    for i, frame in enumerate(reference.frames):
        res = lm_fe(panel_data(frame), clustered=clustered)
        got = column(reference.results, method, i)
        what = f"{method} rep {i} ({reference.labels[i]})"
        assert_close(got["estimate"], res.params["ad_spend"], CLOSED_FORM_RTOL, what)
        assert_close(got["se"], res.std_errors["ad_spend"], CLOSED_FORM_RTOL, what)
        ci = res.conf_int(LEVEL).loc["ad_spend"]
        assert_close([got["lower"], got["upper"]], ci.to_numpy(), CLOSED_FORM_RTOL, what)
        n, g = len(frame), frame.region.nunique()
        assert got["df"] == res.df_resid == n - g - 1
        assert got["flag"] == flags.OK


def test_cr1_factor_is_stata(reference):
    """fe-cluster / fe variances follow G/(G-1) (N-1)/(N-2) times the sum of squared scores."""
    frame = reference.frames[0]
    d = frame.copy()
    d["xd"] = d.ad_spend - d.groupby("region").ad_spend.transform("mean")
    d["yd"] = d.profit - d.groupby("region").profit.transform("mean")
    beta = (d.xd * d.yd).sum() / (d.xd**2).sum()
    scores = (d.xd * (d.yd - beta * d.xd)).groupby(d.region).sum()
    n, g = len(d), d.region.nunique()
    var = g / (g - 1) * (n - 1) / (n - 2) * (scores**2).sum() / (d.xd**2).sum() ** 2
    got = column(reference.results, "fe-cluster", 0)
    assert_close(got["se"], np.sqrt(var), 1e-10, "CR1")
