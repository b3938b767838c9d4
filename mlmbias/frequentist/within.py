"""Fixed effects (the within estimator): the seed's dummy-variable model.

beta = sum_r Wxy_r / sum_r Wxx_r, with W the within-region sums of products.
Conventions are those of linearmodels 7.1 ``PanelOLS(y, [const, x],
entity_effects=True)`` with its defaults (``debiased=True``), which match
Stata's ``xtreg, fe``:

- ``fe``: classical covariance s^2 / Wxx with s^2 = SSR / (N - G - 1), and a
  t(N - G - 1) interval.
- ``fe-cluster``: CR1 clustered by region, G/(G-1) (N-1)/(N-2) sum_r s_r^2 / Wxx^2
  with region scores s_r = Wxy_r - beta Wxx_r. The region effects are nested in
  the clusters, so they are not counted in the factor (linearmodels' automatic
  choice, ``fit(cov_type="clustered", cluster_entity=True, group_debias=True)``,
  and Stata's). K = 2 counts the constant that both packages report. The
  interval is t(N - G - 1), linearmodels' residual degrees of freedom (Stata
  uses t(G - 1)).

Flags: SINGLETON_GROUP (a one-month region, which adds nothing to the within
estimate), NO_WITHIN_VARIATION (the estimate is then NaN), NONFINITE.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from mlmbias import flags
from mlmbias.frequentist._common import batch_method, bit, estimand
from mlmbias.frequentist._linalg import Prepared, cr1_factor, prepare
from mlmbias.groupstats import GroupStats


class Within(NamedTuple):
    beta: jax.Array
    var: jax.Array  # classical variance
    var_cluster: jax.Array  # CR1 variance clustered by region
    df: jax.Array  # N - G - 1
    sigma2: jax.Array  # residual variance SSR / (N - G - 1)
    flag: jax.Array


def within(p: Prepared) -> Within:
    """The within estimator and its two variances, from centred region sums."""
    sxx = jnp.sum(p.wxx)
    sxx_safe = jnp.where(p.has_within, sxx, 1.0)
    beta = jnp.where(p.has_within, jnp.sum(p.wxy) / sxx_safe, jnp.nan)
    ssr = jnp.maximum(jnp.sum(p.wyy) - beta * jnp.sum(p.wxy), 0.0)
    df = p.n_obs - p.n_groups - 1.0
    sigma2 = jnp.where(df > 0, ssr / jnp.where(df > 0, df, 1.0), jnp.nan)
    var = sigma2 / sxx_safe
    scores = p.wxy - beta * p.wxx
    var_cluster = cr1_factor(p.n_obs, p.n_groups, 2) * jnp.sum(scores * scores) / sxx_safe**2
    flag = bit(p.has_singleton, flags.SINGLETON_GROUP) | bit(
        ~p.has_within, flags.NO_WITHIN_VARIATION
    )
    return Within(beta, var, var_cluster, df, sigma2, flag)


def _fe(stats: GroupStats, cluster: bool) -> dict:
    fit = within(prepare(stats))
    se = jnp.sqrt(fit.var_cluster if cluster else fit.var)
    return {"beta": estimand(fit.beta, se, fit.df, fit.flag, df=fit.df, sigma=jnp.sqrt(fit.sigma2))}


def _fe_classical(stats: GroupStats) -> dict:
    """Within estimator, classical SE, t(N - G - 1) interval."""
    return _fe(stats, cluster=False)


def _fe_cluster(stats: GroupStats) -> dict:
    """Within estimator, CR1 SE clustered by region, t(N - G - 1) interval."""
    return _fe(stats, cluster=True)


fe = batch_method(_fe_classical)
fe_cluster = batch_method(_fe_cluster)
