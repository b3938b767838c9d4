"""Shift invariance: a constant added to x, y or both changes no slope, SE,
interval, test or variance component of any frequentist method.

The comparison is made on the data the shifted panel actually holds: x + c is
rounded to the float grid at c (about 1e-7 at 1e9, 1e-4 at 1e12), so the base
panel is (x + c) - c, which subtracts exactly. What is left is the error of the
algorithm alone, and the tolerances are those of the integrity issue: 1e-6
relative at a shift of 1e9, 1e-3 at 1e12. Raw sums (Σx², Σxy, Σy²) failed this
by orders of magnitude (the pooled SE went from 0.108 to 104.8 at y + 1e12).

Panels are drawn by hypothesis: 3 to 12 groups of 1 to 7 observations (so
singleton groups and unbalanced designs occur), a between part of x correlated
with the group effect, and random scales. Each example is padded to ``R_PAD``
groups, so every method compiles once.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlmbias.groupstats import GroupStats, group_stats_from_arrays
from mlmbias.registry import Batch, get_method, method_names

R_PAD = 12
LEVEL = 0.95
TOLERANCE = {1e9: 1e-6, 1e12: 1e-3}
# Columns compared relative to the estimate's SE (they can be near 0 themselves).
ON_SE_SCALE = ("estimate", "lower", "upper", "contextual", "contrast")


def panel(seed: int):
    rng = np.random.default_rng(seed)
    g = int(rng.integers(3, R_PAD + 1))
    sizes = rng.integers(1, 8, size=g)
    sizes[:2] = np.maximum(sizes[:2], 2)  # some within variation always
    codes = np.repeat(np.arange(g), sizes)
    u = rng.normal(0.0, rng.uniform(0.5, 30.0), g)
    xbar = rng.uniform(-2.0, 2.0) * u + rng.normal(0.0, rng.uniform(0.5, 20.0), g)
    x = xbar[codes] + rng.normal(0.0, rng.uniform(0.5, 10.0), len(codes))
    y = 8.0 + 1.5 * x + u[codes] + rng.normal(0.0, rng.uniform(0.5, 10.0), len(codes))
    return codes, x, y


def fit_all(codes, xs, ys):
    """Every frequentist method on the panels (x_i, y_i), in one padded batch."""
    parts = [group_stats_from_arrays(codes, x, y, R_PAD) for x, y in zip(xs, ys, strict=True)]
    stats = GroupStats(*(np.concatenate(cols) for cols in zip(*parts, strict=True)))
    batch = Batch(keys=None, stats=stats, panel=None)
    return {m: get_method(m).load()(batch, LEVEL, {}) for m in method_names("frequentist")}


def assert_invariant(fits, tol):
    """Compare replication 0 (base) with every other replication of ``fits``."""
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
    max_examples=25,
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
    assert_invariant(fits, TOLERANCE[shift])


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
