"""Least squares from region sums: small inverses, padding and ordering of regions."""

import numpy as np
import pytest
from frequentist.reference import run_all

from mlmbias import GroupStats
from mlmbias.frequentist._linalg import inv_det
from mlmbias.registry import Batch


@pytest.mark.parametrize("k", [1, 2, 3])
def test_inv_det_matches_numpy(k):
    rng = np.random.default_rng(k)
    a = rng.normal(size=(k, k))
    a = a @ a.T + k * np.eye(k)
    inv, det = inv_det(a)
    np.testing.assert_allclose(np.asarray(inv), np.linalg.inv(a), rtol=1e-12)
    np.testing.assert_allclose(float(det), np.linalg.det(a), rtol=1e-12)


def test_results_do_not_depend_on_region_order_or_padding_position(reference):
    """Permuting the region columns (padding included) changes no result."""
    rng = np.random.default_rng(0)
    stats = reference.batch.stats
    perm = np.stack([rng.permutation(stats.n.shape[1]) for _ in range(stats.n.shape[0])])
    shuffled = GroupStats(*(np.asarray(a)[np.arange(len(perm))[:, None], perm] for a in stats))
    assert not np.array_equal(shuffled.n, stats.n)
    out = run_all(Batch(None, shuffled, None))
    for method, estimands in reference.results.items():
        for estimand, cols in estimands.items():
            for col, want in cols.items():
                np.testing.assert_allclose(
                    out[method][estimand][col],
                    want,
                    rtol=1e-7,
                    atol=1e-12,
                    err_msg=f"{method} {estimand} {col}",
                )
