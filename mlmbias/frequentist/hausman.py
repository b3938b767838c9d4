"""Tests of the random-effects assumption (ad spend uncorrelated with the region effect).

- ``hausman``: the classic contrast of fixed effects and random effects, as
  Stata's ``hausman fe re`` computes it by default: H = (b_FE - b_RE)^2 /
  (V_FE - V_RE) with each estimator's own variance (``fe``: s^2 / Wxx;
  ``re-fgls``: linearmodels' RandomEffects covariance), referred to chi2(1).
  When V_FE - V_RE <= 0 the difference is not positive definite and the
  test is not defined: Stata prints a negative statistic without a p-value
  ("data fails to meet the asymptotic assumptions"), R's plm a negative one with
  p = 1. Here statistic and p-value are NaN, so the replication counts as failed,
  and NOT_POSITIVE_DEFINITE (with NONFINITE) says why; the diagnostics
  ``contrast`` (b_FE - b_RE) and ``var_diff`` (V_FE - V_RE) keep the pieces.
- ``hausman-sigmamore``: the same contrast with both variances built on one
  disturbance variance, that of the efficient estimator (Stata's ``hausman fe
  re, sigmamore``): V = s2_RE (1/Wxx - [X*'X*]^-1_beta), where s2_RE and X*'X*
  are those of the ``re-fgls`` covariance. X*'X* adds the between-region
  information to Wxx, so V >= 0 and the test is defined whenever the region
  effects are estimated (V = 0 only when the regions carry no information on
  beta); useful where the classic test is undefined in most replications.
- ``hausman-robust``: the regression-based test (Mundlak 1978, Wooldridge 2010
  section 10.7.3): the Wald statistic gamma^2 / V_CR1(gamma) of the Mundlak term in
  the Swamy-Arora FGLS model y ~ 1 + x + xbar, with the CR1 covariance clustered
  by region, G/(G-1) (N-1)/(N-3) (linearmodels ``RandomEffects(...).fit(
  cov_type="clustered", cluster_entity=True, group_debias=True)``, the covariance
  of Stata's ``xtreg, re vce(cluster region)``), referred to chi2(1) as Stata's
  ``test`` does after ``xtreg, re``. Diagnostic: ``contextual`` (gamma).

``estimate`` is the statistic, ``df`` its degrees of freedom (1).
"""

from __future__ import annotations

import jax.numpy as jnp

from mlmbias import flags
from mlmbias.frequentist._common import batch_method, bit, chi2_test
from mlmbias.frequentist._linalg import (
    cluster_meat,
    cr1_factor,
    group_moments,
    prepare,
)
from mlmbias.frequentist.mundlak import MUNDLAK_COLS
from mlmbias.frequentist.random_effects import RE_COLS, fgls, region_weights
from mlmbias.frequentist.within import within
from mlmbias.groupstats import GroupStats


def _contrast_test(stats: GroupStats, sigmamore: bool) -> dict:
    """Hausman's contrast of FE and RE (Swamy-Arora), referred to chi2(1).

    Variances: each estimator's own (classic), or both on the RE disturbance
    variance (``sigmamore``), V_FE - V_RE = s2_RE (1/Wxx - [X*'X*]^-1_beta).
    """
    p = prepare(stats)
    fe = within(p)
    re = fgls(p, RE_COLS)
    contrast = fe.beta - re.coef[1]
    if sigmamore:
        s2_re = re.cov[1, 1] / re.xtx_inv[1, 1]
        var_diff = s2_re * (fe.var / fe.sigma2 - re.xtx_inv[1, 1])
    else:
        var_diff = fe.var - re.cov[1, 1]
    positive = var_diff > 0
    statistic = jnp.where(positive, contrast**2 / jnp.where(positive, var_diff, 1.0), jnp.nan)
    flag = fe.flag | re.flag | bit(~positive & jnp.isfinite(var_diff), flags.NOT_POSITIVE_DEFINITE)
    return {"test": chi2_test(statistic, 1, flag, contrast=contrast, var_diff=var_diff)}


def _hausman(stats: GroupStats) -> dict:
    """Classic Hausman test of FE against RE (Swamy-Arora), each with its own variance."""
    return _contrast_test(stats, sigmamore=False)


def _hausman_sigmamore(stats: GroupStats) -> dict:
    """Hausman test with both variances on the RE disturbance variance; chi2(1)."""
    return _contrast_test(stats, sigmamore=True)


def _hausman_robust(stats: GroupStats) -> dict:
    """Wald test of the Mundlak term with CR1 covariance clustered by region; chi2(1)."""
    p = prepare(stats)
    fit = fgls(p, MUNDLAK_COLS)
    w = region_weights(p, fit.psi)
    meat = cluster_meat(group_moments(p, MUNDLAK_COLS, w), fit.coef)
    bread = fit.xtx_inv
    cov = cr1_factor(p.n_obs, p.n_groups, len(MUNDLAK_COLS)) * bread @ meat @ bread
    gamma = jnp.where(p.has_within, fit.coef[2], jnp.nan)
    statistic = gamma**2 / cov[2, 2]
    return {"test": chi2_test(statistic, 1, fit.flag, contextual=gamma)}


hausman = batch_method(_hausman)
hausman_sigmamore = batch_method(_hausman_sigmamore)
hausman_robust = batch_method(_hausman_robust)
