"""Pooled OLS (classical and cluster-robust) and the between-regions regression.

Conventions are those of linearmodels 7.1 with its defaults (``debiased=True``);
K = 1 + p + q counts the constant, the p covariates x and the q group-level
covariates z:

- ``pooled``: OLS of y on (1, x, z) over all observations, as ``PooledOLS``.
  Classical covariance s^2 (X'X)^-1 with s^2 = SSR / (N - K); t(N - K) intervals.
- ``pooled-cluster``: the same estimate with the CR1 covariance clustered by
  region, G/(G-1) (N-1)/(N-K) (X'X)^-1 (sum_r s_r s_r') (X'X)^-1, which is
  ``PooledOLS.fit(cov_type="clustered", cluster_entity=True, group_debias=True)``
  and Stata's ``regress, vce(cluster region)``. The interval is t(N - K), as
  linearmodels has it (Stata would use t(G - 1)).
- ``between``: OLS of the region means ybar_r on (1, xbar_r, z_r), each region
  weighted equally, as ``BetweenOLS``; s^2 = SSR / (G - K), t(G - K) intervals.

Each reports ("beta", "x{j}") for the covariates and ("beta", "z{j}") for the
group-level covariates.

Flags: NONFINITE only (e.g. ``between`` with two regions and p = 1 has no
residual degrees of freedom).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mlmbias.frequentist._common import batch_method, coefficients
from mlmbias.frequentist._linalg import (
    cluster_meat,
    cr1_factor,
    group_moments,
    layout,
    moments,
    prepare,
    solve,
)
from mlmbias.groupstats import GroupStats

COLS = ("const", "x", "z")
BLOCKS = (("x", "beta"), ("z", "beta"))


def _residual_variance(ssr: jax.Array, df: jax.Array) -> jax.Array:
    """SSR / df; NaN without residual degrees of freedom (an exact fit's SSR is 0
    only up to rounding, so SSR / 0 could be inf or NaN by the last bit)."""
    return jnp.where(df > 0, ssr / jnp.where(df > 0, df, 1), jnp.nan)


def _pooled(stats: GroupStats, cluster: bool) -> dict:
    p = prepare(stats)
    lay = layout(COLS, p.p, p.q)
    w = jnp.where(p.valid, p.n, 0.0)
    ls = solve(moments(p, lay, w))
    df = p.n_obs - lay.size
    if cluster:
        meat = cluster_meat(group_moments(p, lay, w), ls.coef)
        cov = cr1_factor(p.n_obs, p.n_groups, lay.size) * ls.xtx_inv @ meat @ ls.xtx_inv
    else:
        cov = _residual_variance(ls.ssr, df) * ls.xtx_inv
    return coefficients(lay, BLOCKS, ls.coef, cov, df, jnp.int32(0), df=df)


def _pooled_classical(stats: GroupStats) -> dict:
    """Pooled OLS with classical SE and t(N - K) interval (linearmodels PooledOLS)."""
    return _pooled(stats, cluster=False)


def _pooled_cluster(stats: GroupStats) -> dict:
    """Pooled OLS with CR1 SE clustered by region, t(N - K) interval."""
    return _pooled(stats, cluster=True)


def _between(stats: GroupStats) -> dict:
    """OLS of region means on (1, region means of x, z); t(G - K) (linearmodels BetweenOLS)."""
    p = prepare(stats)
    lay = layout(COLS, p.p, p.q)
    ls = solve(moments(p, lay, p.valid.astype(float), within=0.0))
    df = p.n_groups - lay.size
    cov = _residual_variance(ls.ssr, df) * ls.xtx_inv
    return coefficients(lay, BLOCKS, ls.coef, cov, df, jnp.int32(0), df=df)


pooled = batch_method(_pooled_classical)
pooled_cluster = batch_method(_pooled_cluster)
between = batch_method(_between)
