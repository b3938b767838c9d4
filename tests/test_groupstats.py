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
    assert stats.p == 1 and stats.q == 0 and stats.n_regions == 8
    assert stats.cross.shape == (5, 8, 2, 2) and stats.z.shape == (5, 8, 0)
    fields = {
        "n": stats.n,
        "xbar": stats.xbar[..., 0],
        "ybar": stats.ybar,
        "wxx": stats.cross[..., 0, 0],
        "wxy": stats.cross[..., 0, 1],
        "wyy": stats.cross[..., 1, 1],
    }
    np.testing.assert_array_equal(stats.cross[..., 0, 1], stats.cross[..., 1, 0])
    for i in range(5):
        expected = _pandas_stats(to_frame(panel, i))
        for col in expected:
            np.testing.assert_allclose(
                np.asarray(fields[col][i]),
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
    for name in ("n", "mean", "cross"):
        a, b = np.asarray(getattr(base, name)), np.asarray(getattr(shifted, name))
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12 * np.abs(a).max(), err_msg=name)
    np.testing.assert_allclose(np.asarray(shifted.origin - base.origin), c, rtol=1e-15)


def _several(seed: int = 0):
    """An unbalanced panel with p = 2 covariates (a singleton group) and q = 2 z."""
    rng = np.random.default_rng(seed)
    sizes = np.array([3, 1, 4, 2, 5])
    codes = np.repeat(np.arange(5), sizes)
    x = rng.normal(size=(len(codes), 2)) + rng.normal(size=(5, 2))[codes]
    z = rng.normal(size=(5, 2))
    y = x @ [1.0, -2.0] + z[codes] @ [0.5, 3.0] + rng.normal(size=len(codes))
    return codes, x, y, z


def test_several_covariates_match_numpy():
    codes, x, y, z = _several()
    g = 7  # two empty groups at the end
    z_full = np.vstack([z, np.full((2, 2), 99.0)])
    s = group_stats_from_arrays(codes, x, y, g, z_full)
    assert s.p == 2 and s.q == 2 and s.n_regions == g
    assert [a.shape for a in s] == [
        (1, 7),
        (1, 7, 3),
        (1, 7, 3),
        (1, 7, 3, 3),
        (1, 7, 2),
        (1, 7, 2),
    ]
    v = np.column_stack([x, y])
    n = np.bincount(codes, minlength=g)
    np.testing.assert_array_equal(s.n[0], n)
    for r in range(g):
        rows = v[codes == r]
        if len(rows) == 0:
            assert not np.asarray(s.mean[0, r]).any() and not np.asarray(s.cross[0, r]).any()
            assert not np.asarray(s.z[0, r]).any()
            continue
        d = rows - rows.mean(axis=0)
        np.testing.assert_allclose(s.cross[0, r], d.T @ d, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(s.mean[0, r] + s.origin[0, r], rows.mean(axis=0), rtol=1e-12)
        np.testing.assert_allclose(s.xbar[0, r], rows[:, :2].mean(axis=0), rtol=1e-12)
        np.testing.assert_allclose(s.ybar[0, r], rows[:, 2].mean(), rtol=1e-12)
        np.testing.assert_allclose(s.z[0, r] + s.z_origin[0, r], z[r], rtol=1e-12)
    np.testing.assert_array_equal(s.origin[0], np.broadcast_to(v[0], (g, 3)))
    np.testing.assert_array_equal(s.z_origin[0], np.broadcast_to(z[codes[0]], (g, 2)))


def test_one_column_x_is_the_vector_case():
    codes, x, y, _ = _several(1)
    a = group_stats_from_arrays(codes, x[:, 0], y, 5)
    b = group_stats_from_arrays(codes, x[:, :1], y, 5, np.zeros((5, 0)))
    for u, w in zip(a, b, strict=True):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(w))
    assert a.p == 1 and a.q == 0
