"""Shift invariance: a constant added to x, z, y or all of them changes no slope, SE,
interval, test or variance component of any frequentist method.

The comparison is made on the data the shifted panel actually holds: x + c is
rounded to the float grid at c (about 1e-7 at 1e9, 1e-4 at 1e12), so the base
panel is (x + c) - c, which subtracts exactly. What is left is the error of the
algorithm alone, and the tolerances are those of the integrity issue: 1e-6
relative at a shift of 1e9, 1e-3 at 1e12. Raw sums (Σx², Σxy, Σy²) failed this
by orders of magnitude (the pooled SE went from 0.108 to 104.8 at y + 1e12).

Panels are drawn by hypothesis: 3 to 12 groups of 1 to 7 observations (so
singleton groups and unbalanced designs occur), a between part of x correlated
with the group effect, and random scales. Each example is padded to the shape
of the reference tests' batch (``reference.padded_batch``), so every method
compiles once for them all. Two designs: one covariate (p = 1, q = 0,
the seed's), and two covariates with a group-level one (p = 2, q = 1), where
each x column, z and y are shifted by constants of their own.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
from frequentist.reference import GENERIC_METHODS, padded_batch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlmbias.groupstats import group_stats_from_arrays
from mlmbias.registry import get_method

MAX_GROUPS = 12
LEVEL = 0.95
TOLERANCE = {1e9: 1e-6, 1e12: 1e-3}
# Columns compared relative to the estimate's SE (they can be near 0 themselves).
ON_SE_SCALE = ("estimate", "lower", "upper", "contextual", "contrast")


def panel(seed: int):
    rng = np.random.default_rng(seed)
    g = int(rng.integers(3, MAX_GROUPS + 1))
    sizes = rng.integers(1, 8, size=g)
    sizes[:2] = np.maximum(sizes[:2], 2)  # some within variation always
    codes = np.repeat(np.arange(g), sizes)
    u = rng.normal(0.0, rng.uniform(0.5, 30.0), g)
    xbar = rng.uniform(-2.0, 2.0) * u + rng.normal(0.0, rng.uniform(0.5, 20.0), g)
    x = xbar[codes] + rng.normal(0.0, rng.uniform(0.5, 10.0), len(codes))
    y = 8.0 + 1.5 * x + u[codes] + rng.normal(0.0, rng.uniform(0.5, 10.0), len(codes))
    return codes, x, y


def panel_pq(seed: int):
    """p = 2 covariates and one group-level z, in the same layout as ``panel``."""
    rng = np.random.default_rng(seed)
    g = int(rng.integers(4, MAX_GROUPS + 1))
    sizes = rng.integers(1, 8, size=g)
    sizes[:3] = np.maximum(sizes[:3], 2)
    codes = np.repeat(np.arange(g), sizes)
    u = rng.normal(0.0, rng.uniform(0.5, 30.0), g)
    xbar = np.outer(u, rng.uniform(-2.0, 2.0, 2)) + rng.normal(0.0, rng.uniform(0.5, 20.0), (g, 2))
    x = xbar[codes] + rng.normal(0.0, rng.uniform(0.5, 10.0), (len(codes), 2))
    z = rng.uniform(-1.0, 1.0) * u[:, None] + rng.normal(0.0, rng.uniform(0.5, 10.0), (g, 1))
    noise = rng.normal(0.0, rng.uniform(0.5, 10.0), len(codes))
    y = 8.0 + x @ [1.5, -0.5] + 2.0 * z[codes, 0] + u[codes] + noise
    return codes, x, z, y


def fit_all(codes, xs, ys, zs=None):
    """Every frequentist method on the panels (x_i, y_i[, z_i]), in one padded batch."""
    if zs is None:
        zs = [None] * len(xs)
    n_groups = codes.max() + 1
    parts = [
        group_stats_from_arrays(codes, x, y, n_groups, z)
        for x, y, z in zip(xs, ys, zs, strict=True)
    ]
    batch = padded_batch(parts)
    fits = {m: get_method(m).load()(batch, LEVEL, {}) for m in GENERIC_METHODS}
    # the panels only (the batch's last replications repeat the last panel)
    return jax.tree.map(lambda v: np.asarray(v)[: len(parts)], fits)


def assert_fitted(fits, unfitted=(), between=True):
    """The comparison is not void: every method fits the base panel (replication
    0), with some finite estimate or, for a test whose statistic is undefined
    (the classic Hausman test's when the variance difference is not positive
    definite), some finite part of it (contrast, variance difference), and
    every within effect with a finite SE has a df (the REML df methods'
    derivatives included) that is not NaN. ``unfitted``: methods that
    give NaN for this design by construction. ``between`` False: the groups
    leave the between regression no residual df (a Mundlak fit of the panel has
    as many coefficients as groups), and only the within methods must fit."""
    for method, out in fits.items():
        if method in unfitted or (not between and not method.startswith("fe")):
            continue
        finite = [
            (key, col)
            for key, cols in out.items()
            for col in ("estimate", "contrast", "var_diff")
            if col in cols and np.isfinite(np.asarray(cols[col])[0])
        ]
        assert finite, f"{method} fits nothing in the base panel"
        for (estimand, term), cols in out.items():
            if estimand == "beta" and term.startswith("x") and "df" in cols:
                if np.isfinite(np.asarray(cols["se"])[0]):
                    assert not np.isnan(np.asarray(cols["df"])[0]), (method, term)


def assert_invariant(fits, tol, unfitted=(), between=True):
    """Compare replication 0 (base) with every other replication of ``fits``,
    after checking that the base is fitted (``assert_fitted``)."""
    assert_fitted(fits, unfitted, between)
    for method, out in fits.items():
        for estimand, cols in out.items():
            se = np.asarray(cols["se"], float)
            for col, values in cols.items():
                v = np.asarray(values)
                if v.dtype.kind != "f":
                    assert np.array_equal(v[1:], np.broadcast_to(v[0], v[1:].shape)), (
                        method,
                        estimand,
                        col,
                        v,
                    )
                    continue
                base, other = v[0], v[1:]
                if not np.isfinite(base):
                    assert not np.isfinite(other).any(), (method, estimand, col, v)
                    continue
                if col == "p_value":
                    scale = 1.0
                elif col in ON_SE_SCALE and np.isfinite(se[0]):
                    scale = max(abs(base), se[0])
                else:
                    scale = abs(base) if base != 0 else 1.0
                err = np.max(np.abs(other - base)) / scale
                assert err <= tol, f"{method} {estimand} {col}: {v} (error {err:.2e} > {tol})"


@pytest.mark.parametrize("shift", sorted(TOLERANCE))
@settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(seed=st.integers(0, 2**32 - 1), sign=st.sampled_from([1.0, -1.0]))
def test_every_method_is_shift_invariant(shift, seed, sign):
    codes, x, y = panel(seed)
    c = sign * shift
    xs, ys = x + c, y + c
    x0, y0 = xs - c, ys - c  # the values the shifted panel represents, exactly
    fits = fit_all(codes, [x0, xs, x0, xs], [y0, y0, ys, ys])
    assert_invariant(fits, TOLERANCE[shift], between=codes.max() + 1 > 3)


@pytest.mark.parametrize("shift", sorted(TOLERANCE))
@settings(
    max_examples=8,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(seed=st.integers(0, 2**32 - 1), signs=st.lists(st.sampled_from([1.0, -1.0]), min_size=4))
def test_several_covariates_are_shift_invariant(shift, seed, signs):
    """p = 2, q = 1: x_1, x_2, z and y each shifted by its own constant (sign and a
    factor of 1 to 3), one at a time and all together."""
    codes, x, z, y = panel_pq(seed)
    cx = shift * np.array([signs[0], 2.0 * signs[1]])
    cz, cy = 3.0 * signs[2] * shift, signs[3] * shift
    xs, zs, ys = x + cx, z + cz, y + cy
    xb, zb, yb = xs - cx, zs - cz, ys - cy  # the values the shifted panel represents
    x1 = np.column_stack([xs[:, 0], xb[:, 1]])  # only the first column shifted
    fits = fit_all(
        codes,
        [xb, xs, x1, xb, xb, xs],
        [yb, yb, yb, yb, ys, ys],
        [zb, zb, zb, zs, zb, zs],
    )
    assert {key for key in fits["mundlak-reml"]} == {
        ("beta", "x0"),
        ("beta", "x1"),
        ("beta", "z0"),
        ("contextual", "x0"),
        ("contextual", "x1"),
    }
    # hausman-cr2's joint (HTZ Wald) test for p > 1 is not built: NaN, flagged
    between = codes.max() + 1 > 1 + 2 * x.shape[1] + z.shape[1]
    assert_invariant(fits, TOLERANCE[shift], unfitted=("hausman-cr2",), between=between)


def test_raw_sums_would_fail_this_test():
    """The test can fail: the textbook one-pass sums Σy² - (Σy)²/n lose the
    within-group sum of squares at a shift of 1e9 (a guard that the tolerances
    above are far below what cancellation does)."""
    codes, x, y = panel(3)
    y = y + 1e9
    n = np.bincount(codes)
    raw = np.bincount(codes, y * y) - np.bincount(codes, y) ** 2 / n
    centred = np.asarray(group_stats_from_arrays(codes, x, y, codes.max() + 1).cross[0, :, 1, 1])
    exact = np.bincount(codes, (y - (np.bincount(codes, y) / n)[codes]) ** 2)
    np.testing.assert_allclose(centred, exact, rtol=1e-6, atol=1e-6)
    assert np.max(np.abs(raw - exact) / np.maximum(exact, 1.0)) > 1e-3
