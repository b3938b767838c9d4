import numpy as np
import pandas as pd

from mlmbias import DGP, group_stats, simulate_condition, to_frame
from mlmbias.groupstats import group_stats_from_arrays


def _pandas_stats(df):
    g = df.assign(xx=df.ad_spend**2, xy=df.ad_spend * df.profit, yy=df.profit**2).groupby("region")
    return pd.DataFrame(
        {
            "n": g.size(),
            "sx": g.ad_spend.sum(),
            "sy": g.profit.sum(),
            "sxx": g.xx.sum(),
            "sxy": g.xy.sum(),
            "syy": g.yy.sum(),
            "xbar": g.ad_spend.mean(),
            "ybar": g.profit.mean(),
        }
    )


def test_group_stats_match_pandas_groupby():
    panel = simulate_condition(DGP(n_regions=8), 4, np.arange(5))
    stats = group_stats(panel)
    assert stats.n.shape == (5, 8)
    for i in range(5):
        expected = _pandas_stats(to_frame(panel, i))
        for col in expected:
            np.testing.assert_allclose(
                np.asarray(getattr(stats, col)[i]),
                expected[col].to_numpy(),
                rtol=1e-12,
                err_msg=col,
            )


def test_group_stats_from_arrays_matches_panel_version():
    panel = simulate_condition(DGP(n_regions=4), 2, [0])
    df = to_frame(panel, 0)
    a = group_stats(panel)
    b = group_stats_from_arrays(df.region, df.ad_spend, df.profit, 4)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-12)
