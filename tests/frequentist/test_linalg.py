"""Least squares from region sums: small inverses, padding and ordering of regions."""

import numpy as np
import pytest
from frequentist.reference import run_all

from mlmbias import GroupStats
from mlmbias.frequentist._linalg import inv_det, inv_logdet, pinv_quadratic, solve
from mlmbias.registry import Batch


@pytest.mark.parametrize("k", [1, 2, 3])
def test_inv_det_matches_numpy(k):
    rng = np.random.default_rng(k)
    a = rng.normal(size=(k, k))
    a = a @ a.T + k * np.eye(k)
    inv, det = inv_det(a)
    np.testing.assert_allclose(np.asarray(inv), np.linalg.inv(a), rtol=1e-12)
    np.testing.assert_allclose(float(det), np.linalg.det(a), rtol=1e-12)


@pytest.mark.parametrize("k", [1, 3, 4, 8, 12])
def test_inv_logdet_matches_numpy(k):
    """Cofactors up to K = 3, Cholesky of the unit-diagonal matrix above; columns
    of very different sizes (as x and x^2) cost no accuracy."""
    rng = np.random.default_rng(k)
    a = rng.normal(size=(k, k))
    scale = 10.0 ** rng.uniform(-3, 4, k)
    a = (a @ a.T + k * np.eye(k)) * np.outer(scale, scale)
    inv, logdet = inv_logdet(a)
    np.testing.assert_allclose(np.asarray(inv), np.linalg.inv(a), rtol=1e-9)
    np.testing.assert_allclose(float(logdet), np.linalg.slogdet(a)[1], rtol=1e-12)
    if k > 3:
        a[0, 0] = -1.0  # not positive definite
        assert np.isnan(float(inv_logdet(a)[1]))


def test_solve_drops_inactive_columns():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(30, 5))
    y = x @ [1.0, 2.0, 0.0, -1.0, 0.5] + rng.normal(size=30)
    v = np.column_stack([x, y])
    active = np.array([True, True, False, True, True])
    ls = solve(v.T @ v, active)
    keep = x[:, active]
    coef, res, *_ = np.linalg.lstsq(keep, y, rcond=None)
    np.testing.assert_allclose(np.asarray(ls.coef)[active], coef, rtol=1e-10)
    assert float(ls.coef[2]) == 0.0
    np.testing.assert_allclose(float(ls.ssr), res[0], rtol=1e-10)
    np.testing.assert_allclose(float(ls.logdet), np.linalg.slogdet(keep.T @ keep)[1], rtol=1e-12)


def test_pinv_quadratic_counts_the_rank():
    rng = np.random.default_rng(4)
    e = rng.normal(size=(20, 3))
    e[:, 2] = 2.0 * e[:, 0] - e[:, 1]  # collinear
    ey = rng.normal(size=20)
    quad, rank = pinv_quadratic(e.T @ e, e.T @ ey, np.sum(e * e, axis=0))
    fitted = e @ np.linalg.lstsq(e, ey, rcond=None)[0]
    assert float(rank) == 2
    np.testing.assert_allclose(float(quad), fitted @ fitted, rtol=1e-10)


def test_results_do_not_depend_on_region_order_or_padding_position(reference):
    """Permuting the region columns (padding included) changes no result, but for
    hausman-wild's p-value under random draws: each region's weight is drawn by its
    position, as any bootstrap's is by its row (under full enumeration, order does
    not matter, and that is compared)."""
    rng = np.random.default_rng(0)
    stats = reference.batch.stats
    perm = np.stack([rng.permutation(stats.n.shape[1]) for _ in range(stats.n.shape[0])])
    shuffled = GroupStats(*(np.asarray(a)[np.arange(len(perm))[:, None], perm] for a in stats))
    assert not np.array_equal(shuffled.n, stats.n)
    out = run_all(Batch(None, shuffled))
    for method, estimands in reference.results.items():
        for estimand, cols in estimands.items():
            for col, want in cols.items():
                got = np.asarray(out[method][estimand][col])
                if method == "hausman-wild" and col == "p_value":
                    enumerated = cols["draws"] == 2.0 ** np.sum(stats.n > 0, axis=1)
                    assert enumerated.sum() >= 4
                    got, want = got[enumerated], np.asarray(want)[enumerated]
                np.testing.assert_allclose(
                    got,
                    want,
                    rtol=1e-7,
                    atol=1e-12,
                    err_msg=f"{method} {estimand} {col}",
                )
