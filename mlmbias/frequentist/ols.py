"""Pooled OLS (classical and cluster-robust) and the between-regions regression.

Conventions are those of linearmodels 7.1 with its defaults (``debiased=True``):

- ``pooled``: OLS of y on (1, x) over all observations, as ``PooledOLS``.
  Classical covariance s^2 (X'X)^-1 with s^2 = SSR / (N - 2); t(N - 2) intervals.
- ``pooled-cluster``: the same estimate with the CR1 covariance clustered by
  region, G/(G-1) (N-1)/(N-2) (X'X)^-1 (sum_r s_r s_r') (X'X)^-1, which is
  ``PooledOLS.fit(cov_type="clustered", cluster_entity=True, group_debias=True)``
  and Stata's ``regress, vce(cluster region)``. The interval is t(N - 2), as
  linearmodels has it (Stata would use t(G - 1)).
- ``between``: OLS of the region means ybar_r on (1, xbar_r), each region
  weighted equally, as ``BetweenOLS``; s^2 = SSR / (G - 2), t(G - 2) intervals.

Flags: NONFINITE only (e.g. ``between`` with two regions has no residual
degrees of freedom).
"""

from __future__ import annotations

import jax.numpy as jnp

from mlmbias.frequentist._common import batch_method, estimand
from mlmbias.frequentist._linalg import (
    cluster_meat,
    cr1_factor,
    group_moments,
    moments,
    prepare,
    solve,
)
from mlmbias.groupstats import GroupStats

_COLS = ("const", "x")


def _pooled(stats: GroupStats, cluster: bool) -> dict:
    p = prepare(stats)
    w = jnp.where(p.valid, p.n, 0.0)
    ls = _solve(p, w)
    df = p.n_obs - 2.0
    if cluster:
        meat = cluster_meat(group_moments(p, _COLS, w), ls.coef)
        cov = cr1_factor(p.n_obs, p.n_groups, 2) * ls.xtx_inv @ meat @ ls.xtx_inv
    else:
        cov = ls.ssr / df * ls.xtx_inv
    se = jnp.sqrt(cov[1, 1])
    return {"beta": estimand(ls.coef[1], se, df, jnp.int32(0), df=df)}


def _solve(p, w, within=1.0):
    return solve(moments(p, _COLS, w, within))


def _pooled_classical(stats: GroupStats) -> dict:
    """Pooled OLS with classical SE and t(N - 2) interval (linearmodels PooledOLS)."""
    return _pooled(stats, cluster=False)


def _pooled_cluster(stats: GroupStats) -> dict:
    """Pooled OLS with CR1 SE clustered by region, t(N - 2) interval."""
    return _pooled(stats, cluster=True)


def _between(stats: GroupStats) -> dict:
    """OLS of region means on (1, region mean of x); t(G - 2) (linearmodels BetweenOLS)."""
    p = prepare(stats)
    ls = _solve(p, p.valid.astype(float), within=0.0)
    df = p.n_groups - 2.0
    se = jnp.sqrt(ls.ssr / df * ls.xtx_inv[1, 1])
    return {"beta": estimand(ls.coef[1], se, df, jnp.int32(0), df=df)}


pooled = batch_method(_pooled_classical)
pooled_cluster = batch_method(_pooled_cluster)
between = batch_method(_between)
