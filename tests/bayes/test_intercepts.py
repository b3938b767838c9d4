"""Exact conditional draws of the region intercepts."""

import jax
import numpy as np
import pytest

from mlmbias.bayes.collapsed import region_data
from mlmbias.bayes.intercepts import conditional, draw_intercepts
from mlmbias.bayes.priors import Priors
from mlmbias.groupstats import GroupStats


def _one(stats):
    return GroupStats(*(a[0] for a in stats))


@pytest.mark.parametrize("model", ["re", "mundlak", "rewb", "fe"])
def test_conditional_equals_gaussian_conditioning(seed_panel, seed_stats, model):
    """a_r | y_r for y_r = c_r + beta x + a_r + e: the direct Gaussian formula
    Cov(a, y) Var(y)^-1 (y - E y) and Var(a) - Cov(a, y) Var(y)^-1 Cov(y, a)."""
    q = {"mu": 5.0, "beta": 1.4, "contextual": -1.2, "sigma": 9.0, "sigma_a": 3.5}
    priors = Priors()
    stats = _one(seed_stats)
    mean, sd = conditional(model, region_data(stats), q, priors)
    mask = np.asarray(seed_panel.mask[0])
    region = np.asarray(seed_panel.region[0])[mask]
    x = np.asarray(seed_panel.x[0, :, 0])[mask]
    y = np.asarray(seed_panel.y[0])[mask]
    xbar = np.asarray(region_data(stats).xbar)
    sa = priors.alpha_scale if model == "fe" else q["sigma_a"]
    for r in (0, 3, 9):
        sel = region == r
        if model == "fe":
            c = priors.alpha_loc
        elif model == "re":
            c = q["mu"]
        else:
            c = q["mu"] + q["contextual"] * xbar[r]
        n = sel.sum()
        vy = q["sigma"] ** 2 * np.eye(n) + sa**2
        cov_ay = np.full(n, sa**2)
        resid = y[sel] - c - q["beta"] * x[sel]
        want_mean = c + cov_ay @ np.linalg.solve(vy, resid)
        want_var = sa**2 - cov_ay @ np.linalg.solve(vy, cov_ay)
        assert float(mean[r]) == pytest.approx(want_mean, rel=1e-10)
        assert float(sd[r]) ** 2 == pytest.approx(want_var, rel=1e-10)


def test_draws_broadcast_over_posterior_draws(seed_stats):
    stats = _one(seed_stats)
    q = {
        "mu": np.full((4, 50), 5.0),
        "beta": np.full((4, 50), 1.5),
        "contextual": np.zeros((4, 50)),
        "sigma": np.full((4, 50), 10.0),
        "sigma_a": np.full((4, 50), 3.0),
    }
    alpha = draw_intercepts(jax.random.PRNGKey(0), "mundlak", stats, q)
    assert alpha.shape == (4, 50, stats.n.shape[0])
    pooled = draw_intercepts(jax.random.PRNGKey(0), "pooled", stats, q)
    np.testing.assert_allclose(np.asarray(pooled), 5.0)
