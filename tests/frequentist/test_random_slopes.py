"""Random intercept and slope on x0 by REML (``rs-reml``, ``rs-mundlak-reml``) against lme4.

The values in ``references/random_slopes_reference.csv`` were written by
``references/random_slopes.R`` (lme4 1.1, ``lmer(y ~ x.. [+ xbar..] [+ z0] +
(1 + x0 | g), REML = TRUE)``, its optimiser run to rounding-level tolerances) for
the panels of ``references/random_slopes_panels.csv``: G = 8 to 90 unbalanced
regions with a singleton, p = 1 without z and p = 2 with z, slope SD 0.4 to 0.8,
and per shape a panel with slope SD 0 where REML puts Sigma on its boundary
(rank one: lme4's l22 = 0, |rho| = 1); x0 has a mean far from 0 in some, so
that the location-dependent sigma_a and rho_ab are checked on the raw scale.

Tolerances: fixed effects and SEs 1e-4 relative, variance components 1e-3
(the differences are below 1e-6). The panels of one shape go into one batch
padded to ``R_RS`` regions (one compilation per method and shape). The default
tests compile rs-reml for p = 1 and rs-mundlak-reml for p = 2, q = 1; the other
two combinations are marked slow. The shift and no-within-variation checks ride
in the spare replications of the p = 2 batch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.stats as st
from frequentist.reference import concat_stats, pad_stats
from frequentist.test_few_clusters import stats_of

from mlmbias import flags
from mlmbias.groupstats import GroupStats, group_stats_from_arrays
from mlmbias.registry import Batch, get_method, methods

REFS = Path(__file__).parent / "references"
LEVEL = 0.95
R_RS = 96  # regions of this file's padded batches (the largest panel has 90)
REPS = 8
FIXED_RTOL = 1e-4
VC_RTOL = 1e-3
METHODS = ("rs-reml", "rs-mundlak-reml")
DEFAULT = {(1, 0): ("rs-reml",), (2, 1): ("rs-mundlak-reml",)}
SHIFT_SMALL = 1e3  # x0 only: sigma_a and rho move as Sigma_raw = A Sigma A'
SHIFT_LARGE = 1e9  # every column: the invariant columns stay to 1e-6


def panels() -> dict[int, pd.DataFrame]:
    frame = pd.read_csv(REFS / "random_slopes_panels.csv")
    return {int(i): d.reset_index(drop=True) for i, d in frame.groupby("panel")}


def reference() -> pd.DataFrame:
    return pd.read_csv(REFS / "random_slopes_reference.csv")


def _arrays(d: pd.DataFrame):
    p = int(d.p.iloc[0])
    x = d[[f"x{j}" for j in range(p)]].to_numpy().copy()
    z = d.groupby("g").z0.first().to_numpy()[:, None].copy()
    return d.g.to_numpy(), x, d.y.to_numpy().copy(), z


def _extras(data: dict[int, pd.DataFrame]) -> dict[str, GroupStats]:
    """Extra replications of the p = 2, q = 1 batch: x1 without within variation,
    x0 shifted by SHIFT_SMALL, every column shifted by SHIFT_LARGE with its base, and
    the regions renumbered in a random order."""
    g, x, y, z = _arrays(data[3])
    n = int(g.max()) + 1
    nowithin = x.copy()
    nowithin[:, 1] = pd.Series(x[:, 1]).groupby(g).transform("mean").to_numpy()
    small = x.copy()
    small[:, 0] += SHIFT_SMALL
    c = SHIFT_LARGE * np.array([1.0, -2.0])
    xs, ys, zs = x + c, y + SHIFT_LARGE, z - 3 * SHIFT_LARGE
    xb, yb, zb = xs - c, ys - SHIFT_LARGE, zs + 3 * SHIFT_LARGE  # what the shifted data hold
    order = np.random.default_rng(5).permutation(n)  # region r becomes order[r]
    z_moved = np.empty_like(z)
    z_moved[order] = z
    return {
        "nowithin": group_stats_from_arrays(g, nowithin, y, n, z),
        "reordered": group_stats_from_arrays(order[g], x, y, n, z_moved),
        "small": group_stats_from_arrays(g, small, y, n, z),
        "base": group_stats_from_arrays(g, xb, yb, n, zb),
        "large": group_stats_from_arrays(g, xs, ys, n, zs),
    }


def _row(res, key, r: int) -> dict[str, float]:
    return {c: np.asarray(v)[r].item() for c, v in res[key].items()}


def fit_shape(shape: tuple[int, int], chosen: tuple[str, ...]):
    """method -> label -> {(estimand, term): {column: float}} for the panels of ``shape``
    (and, for p = 2, the extra replications), in one batch of REPS x R_RS."""
    data = panels()
    ids = [i for i, d in data.items() if (int(d.p.iloc[0]), int(d.q.iloc[0])) == shape]
    labels: list = list(ids)
    parts = [stats_of(data[i]) for i in ids]
    if shape == (2, 1):
        extras = _extras(data)
        labels += list(extras)
        parts += list(extras.values())
    parts = [pad_stats(s, R_RS) for s in parts]
    parts += parts[-1:] * (REPS - len(parts))
    batch = Batch(keys=None, stats=concat_stats(parts))
    out = {}
    for m in chosen:
        res = get_method(m).load()(batch, LEVEL, {})
        out[m] = {lab: {k: _row(res, k, r) for k in res} for r, lab in enumerate(labels)}
    return out


@pytest.fixture(scope="module")
def fitted():
    out: dict[str, dict] = {m: {} for m in METHODS}
    for shape, chosen in DEFAULT.items():
        for m, res in fit_shape(shape, chosen).items():
            out[m].update(res)
    return out


@pytest.fixture(scope="module")
def fitted_slow():
    out: dict[str, dict] = {m: {} for m in METHODS}
    for shape, chosen in DEFAULT.items():
        others = tuple(m for m in METHODS if m not in chosen)
        for m, res in fit_shape(shape, others).items():
            out[m].update(res)
    return out


def close(got: float, want: float, what: str, rtol: float) -> None:
    assert np.isfinite(got), what
    assert abs(got - want) <= rtol * abs(want), f"{what}: {got!r} vs lme4 {want!r}"


def check_row(got: dict, r) -> None:
    close(got["estimate"], r.estimate, "estimate", FIXED_RTOL)
    close(got["se"], r.se, "se", FIXED_RTOL)
    q = st.norm.ppf(0.5 + LEVEL / 2)
    close(got["upper"], r.estimate + q * r.se, "upper", FIXED_RTOL)
    close(got["lower"], r.estimate - q * r.se, "lower", FIXED_RTOL)
    for col in ("sigma", "sigma_a", "sigma_b"):
        close(got[col], r[col], col, VC_RTOL)
    # the correlation can be near 0: its error against max(|rho|, 0.1)
    assert abs(got["rho_ab"] - r.rho_ab) <= VC_RTOL * max(abs(r.rho_ab), 0.1), "rho_ab"
    close(got["loglik"], r.loglik, "loglik", 1e-8)
    assert np.isnan(got["p_value"])
    # lme4's isSingular at the boundary (its l22 is 0 or within 1e-7 of it)
    boundary = flags.BOUNDARY_VARIANCE if r.singular else 0
    assert int(got["flag"]) == flags.SINGLETON_GROUP | boundary


def _rows(slow: bool):
    ref = reference()
    shapes = {i: (int(d.p.iloc[0]), int(d.q.iloc[0])) for i, d in panels().items()}
    for _, r in ref.iterrows():
        default = r.method in DEFAULT[shapes[int(r.panel)]]
        if default != slow:
            yield r


def _id(r) -> str:
    return f"{r.method}-panel{r.panel}-{r.estimand}-{r.term}"


@pytest.mark.parametrize("r", list(_rows(slow=False)), ids=_id)
def test_against_lme4(fitted, r):
    check_row(fitted[r.method][int(r.panel)][(r.estimand, r.term)], r)


@pytest.mark.slow
@pytest.mark.parametrize("r", list(_rows(slow=True)), ids=_id)
def test_against_lme4_other_shapes(fitted_slow, r):
    check_row(fitted_slow[r.method][int(r.panel)][(r.estimand, r.term)], r)


def test_reference_covers_every_coefficient_and_the_boundary():
    ref = reference()
    shapes = pd.concat(panels()).groupby("panel")[["p", "q"]].first()
    assert set(ref.method) == set(METHODS)
    for m, sub in ref.groupby("method"):
        counts = sub.groupby("panel").size()
        width = (2 if m == "rs-mundlak-reml" else 1) * shapes.p + shapes.q
        assert (counts == width).all(), m
        # a boundary panel and an interior one of each shape
        for _, by in sub.groupby(sub.panel.map(shapes.p)):
            assert by.singular.any() and not by.singular.all()


def test_registered_as_random_slopes():
    for m in METHODS:
        assert methods()[m].family == "random slopes"
    assert methods()["rs-mundlak-reml"].estimands == ("beta", "contextual")


def test_no_within_variation_is_nan_for_that_x_only(fitted):
    """x1 constant within regions: its beta and contextual effect are NaN (NONFINITE),
    as in mundlak-reml; x0 (the slope's covariate) is still fitted."""
    got = fitted["rs-mundlak-reml"]["nowithin"]
    for est in ("beta", "contextual"):
        bad = got[(est, "x1")]
        assert np.isnan(bad["estimate"]) and bad["flag"] & flags.NONFINITE
        assert bad["flag"] & flags.NO_WITHIN_VARIATION
        good = got[(est, "x0")]
        assert np.isfinite(good["estimate"]) and np.isfinite(good["se"])
    assert np.isfinite(got[("beta", "z0")]["se"])


INVARIANT = ("estimate", "se", "lower", "upper", "sigma", "sigma_b", "loglik")


def test_shift_of_x0_moves_only_the_intercept_components(fitted):
    """x0 + c: the fixed effects (but the constant), SEs, sigma, sigma_b and loglik
    are unchanged; the intercept now sits at x0 = -c: sigma_a^2 = S11 - 2c S12 + c^2 S22."""
    base, moved = fitted["rs-mundlak-reml"][3], fitted["rs-mundlak-reml"]["small"]
    for key, b in base.items():
        for col in INVARIANT:
            assert moved[key][col] == pytest.approx(b[col], rel=1e-7), (key, col)
    b = base[("beta", "x0")]
    s11, s22 = b["sigma_a"] ** 2, b["sigma_b"] ** 2
    s12 = b["rho_ab"] * b["sigma_a"] * b["sigma_b"]
    c = SHIFT_SMALL
    var_a = s11 - 2 * c * s12 + c * c * s22
    got = moved[("beta", "x0")]
    assert got["sigma_a"] == pytest.approx(np.sqrt(var_a), rel=1e-6)
    assert got["rho_ab"] == pytest.approx((s12 - c * s22) / np.sqrt(var_a * s22), rel=1e-6)


def test_large_shift_of_every_column_is_invariant(fitted):
    """x + 1e9, y + 1e9, z - 3e9 against the values the shifted data hold: the
    location-free columns agree to 1e-6 (the group statistics are centred), and the
    flags are the same."""
    base, moved = fitted["rs-mundlak-reml"]["base"], fitted["rs-mundlak-reml"]["large"]
    for key, b in base.items():
        scale = {c: max(abs(b["estimate"]), b["se"]) for c in ("estimate", "lower", "upper")}
        for col in INVARIANT:
            err = abs(moved[key][col] - b[col]) / scale.get(col, abs(b[col]))
            assert err <= 1e-6, (key, col, moved[key][col], b[col])
        assert moved[key]["flag"] == b["flag"]


def test_region_order_does_not_matter(fitted):
    """The regions renumbered: every column the same to 1e-7 (the generic region-order
    test, tests/frequentist/test_linalg.py, leaves the random-slope methods to this file)."""
    base, moved = fitted["rs-mundlak-reml"][3], fitted["rs-mundlak-reml"]["reordered"]
    for key, b in base.items():
        for col, want in b.items():
            if col == "flag":
                assert moved[key][col] == want, key
            elif np.isfinite(want):
                assert moved[key][col] == pytest.approx(want, rel=1e-7, abs=1e-12), (key, col)
