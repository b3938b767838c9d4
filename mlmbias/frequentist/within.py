"""Fixed effects (the within estimator): the seed's dummy-variable model.

beta = (sum_r Wxx_r)^-1 sum_r Wxy_r, with W the within-region sums of products
of the p covariates x and of y. Group-level covariates z are absorbed by the
region effects and dropped. Conventions are those of linearmodels 7.1
``PanelOLS(y, [const, x], entity_effects=True)`` with its defaults
(``debiased=True``), which match Stata's ``xtreg, fe``:

- ``fe``: classical covariance s^2 Wxx^-1 with s^2 = SSR / (N - G - p), and a
  t(N - G - p) interval.
- ``fe-cluster``: CR1 clustered by region, G/(G-1) (N-1)/(N-K) Wxx^-1 (sum_r
  s_r s_r') Wxx^-1 with region scores s_r = Wxy_r - Wxx_r beta. The region
  effects are nested in the clusters, so they are not counted in the factor
  (linearmodels' automatic choice, ``fit(cov_type="clustered",
  cluster_entity=True, group_debias=True)``, and Stata's). K = p + 1 counts the
  constant that both packages report. The interval is t(N - G - p),
  linearmodels' residual degrees of freedom (Stata uses t(G - 1)).

Reports ("beta", "x{j}"), j < p.

Flags: SINGLETON_GROUP (a one-month region, which adds nothing to the within
estimate), NO_WITHIN_VARIATION (some x does not vary within regions: its
coefficient is not identified and is NaN, the others are those of the model
without it), NONFINITE.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from mlmbias import flags
from mlmbias.frequentist._common import batch_method, bit, estimand, x_term
from mlmbias.frequentist._linalg import Prepared, cr1_factor, inv_logdet, prepare
from mlmbias.groupstats import GroupStats


class Within(NamedTuple):
    beta: jax.Array  # (p,) NaN where x_j has no within variation
    var: jax.Array  # (p, p) classical covariance
    var_cluster: jax.Array  # (p, p) CR1 covariance clustered by region
    wxx_inv: jax.Array  # (p, p) (sum_r Wxx_r)^-1 of the identified x
    df: jax.Array  # N - G - p
    sigma2: jax.Array  # residual variance SSR / (N - G - p)
    flag: jax.Array


def within(p: Prepared) -> Within:
    """The within estimator and its two covariances, from centred region sums."""
    k = p.p
    s = p.sums()
    ok = p.within
    both = ok[:, None] & ok[None, :]
    sxx = jnp.where(both, s[:k, :k], jnp.eye(k))
    sxy = jnp.where(ok, s[:k, k], 0.0)
    inv, _ = inv_logdet(sxx)
    beta = inv @ sxy
    ssr = jnp.maximum(s[k, k] - sxy @ beta, 0.0)
    df = p.n_obs - p.n_groups - k
    sigma2 = jnp.where(df > 0, ssr / jnp.where(df > 0, df, 1.0), jnp.nan)
    wxx = jnp.where(both[None], p.w[:, :k, :k], 0.0)
    wxy = jnp.where(ok[None], p.w[:, :k, k], 0.0)
    scores = wxy - wxx @ beta  # (R, p)
    meat = scores.T @ scores
    var_cluster = cr1_factor(p.n_obs, p.n_groups, k + 1) * inv @ meat @ inv
    nan_out = both  # not identified: NaN rows and columns
    beta = jnp.where(ok, beta, jnp.nan)
    var = jnp.where(nan_out, sigma2 * inv, jnp.nan)
    var_cluster = jnp.where(nan_out, var_cluster, jnp.nan)
    flag = bit(p.has_singleton, flags.SINGLETON_GROUP) | bit(
        ~p.has_within, flags.NO_WITHIN_VARIATION
    )
    return Within(beta, var, var_cluster, jnp.where(both, inv, jnp.nan), df, sigma2, flag)


def _fe(stats: GroupStats, cluster: bool) -> dict:
    fit = within(prepare(stats))
    var = fit.var_cluster if cluster else fit.var
    sigma = jnp.sqrt(fit.sigma2)
    return {
        ("beta", x_term(j)): estimand(
            fit.beta[j], jnp.sqrt(var[j, j]), fit.df, fit.flag, df=fit.df, sigma=sigma
        )
        for j in range(stats.p)
    }


def _fe_classical(stats: GroupStats) -> dict:
    """Within estimator, classical SE, t(N - G - p) interval."""
    return _fe(stats, cluster=False)


def _fe_cluster(stats: GroupStats) -> dict:
    """Within estimator, CR1 SE clustered by region, t(N - G - p) interval."""
    return _fe(stats, cluster=True)


fe = batch_method(_fe_classical)
fe_cluster = batch_method(_fe_cluster)
