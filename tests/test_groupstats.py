import numpy as np
import pandas as pd

from mlmbias import DGP, group_stats, simulate_condition, to_frame
from mlmbias.groupstats import group_stats_from_arrays


def _pandas_stats(df):
    g = df.groupby("region")
    dx = df.ad_spend - g.ad_spend.transform("mean")
    dy = df.profit - g.profit.transform("mean")
    d = df.assign(xx=dx * dx, xy=dx * dy, yy=dy * dy).groupby("region")
    return pd.DataFrame(
        {
            "n": g.size(),
            "xbar": g.ad_spend.mean(),
            "ybar": g.profit.mean(),
            "wxx": d.xx.sum(),
            "wxy": d.xy.sum(),
            "wyy": d.yy.sum(),
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


def test_centred_statistics_do_not_move_with_the_data():
    """A constant added to x and y moves only the origin: the centred sums and the
    means relative to the origin are unchanged to rounding (raw sums Σx², Σxy,
    Σy² lose every digit of the within-group variation at 1e9)."""
    df = to_frame(simulate_condition(DGP(n_regions=6), 3, [0]), 0)
    c = 1e9
    xs, ys = df.ad_spend + c, df.profit + c
    base = group_stats_from_arrays(df.region, xs - c, ys - c, 6)
    shifted = group_stats_from_arrays(df.region, xs, ys, 6)
    for name in ("n", "mx", "my", "wxx", "wxy", "wyy"):
        a, b = np.asarray(getattr(base, name)), np.asarray(getattr(shifted, name))
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12 * np.abs(a).max(), err_msg=name)
    np.testing.assert_allclose(np.asarray(shifted.x0 - base.x0), c, rtol=1e-15)
