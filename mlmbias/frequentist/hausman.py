"""Tests of the random-effects assumption (the covariates uncorrelated with the region effect).

With p within-varying covariates the tests are of the p x coefficients:

- ``hausman``: the classic contrast of fixed effects and random effects, as
  Stata's ``hausman fe re`` computes it by default: H = d' (V_FE - V_RE)^-1 d
  with d = b_FE - b_RE the contrast of the x coefficients and each
  estimator's own covariance (``fe``: s^2 Wxx^-1; ``re-fgls``: linearmodels'
  RandomEffects covariance, whose x block is used), referred to chi2(p).
  When V_FE - V_RE is not positive definite the test is not defined: Stata
  prints a negative statistic without a p-value ("data fails to meet the
  asymptotic assumptions"), R's plm a negative one with p = 1. Here statistic
  and p-value are NaN, so the replication counts as failed, and
  NOT_POSITIVE_DEFINITE (with NONFINITE) says why. Definiteness is judged by
  the eigenvalues of V_FE - V_RE scaled to unit diagonal (by its own diagonal,
  where that is positive): all must be positive (for p = 1: V_FE - V_RE > 0).
- ``hausman-sigmamore``: the same contrast with both covariances built on one
  disturbance variance, that of the efficient estimator (Stata's ``hausman fe
  re, sigmamore``): V = s2_RE (Wxx^-1 - [X*'X*]^-1_xx), where s2_RE and X*'X*
  are those of the ``re-fgls`` covariance. X*'X* adds the between-region
  information to Wxx, so V >= 0 and the test is defined whenever the region
  effects are estimated (V singular only when the regions carry no information
  on some combination of the x); useful where the classic test is undefined in
  most replications.
- ``hausman-robust``: the regression-based test (Mundlak 1978, Wooldridge 2010
  section 10.7.3): the Wald statistic gamma' V_CR1(gamma)^-1 gamma of the p
  Mundlak terms in the Swamy-Arora FGLS model y ~ 1 + x + xbar + z, with the
  CR1 covariance clustered by region, G/(G-1) (N-1)/(N-K) (linearmodels
  ``RandomEffects(...).fit(cov_type="clustered", cluster_entity=True,
  group_debias=True)``, the covariance of Stata's ``xtreg, re vce(cluster
  region)``), referred to chi2(p) as Stata's ``test`` does after ``xtreg, re``.

Each reports one row, ("test", ""): ``estimate`` is the statistic, ``df`` its
degrees of freedom p. Diagnostics: for p = 1 ``contrast`` (b_FE - b_RE) and
``var_diff`` (V_FE - V_RE), and ``gamma`` (the contextual effect) for the robust test; for
p > 1 ``var_diff`` is the smallest eigenvalue of the scaled V_FE - V_RE (its
sign decides definiteness), and ``contrast`` and ``gamma``, vectors there,
are NaN.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mlmbias import flags, linalg
from mlmbias.frequentist._common import TEST, batch_method, bit, chi2_test
from mlmbias.frequentist._linalg import (
    cluster_meat,
    cr1_factor,
    group_moments,
    layout,
    prepare,
)
from mlmbias.frequentist.mundlak import MUNDLAK_COLS, mundlak_active
from mlmbias.frequentist.random_effects import RE_COLS, fgls, n_active, region_weights
from mlmbias.frequentist.within import within
from mlmbias.groupstats import GroupStats


def quadratic_form(d: jax.Array, v: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """d' V^-1 d where V (p, p) is positive definite, else NaN.

    Returns the statistic, whether V is positive definite, and the diagnostic
    ``var_diff``: V itself for p = 1, else the smallest eigenvalue of V scaled
    to unit diagonal (V's own diagonal where it is positive).
    """
    if d.shape[0] == 1:
        v11 = v[0, 0]
        positive = v11 > 0
        stat = jnp.where(positive, d[0] ** 2 / jnp.where(positive, v11, 1.0), jnp.nan)
        return stat, positive, v11
    diag = jnp.diagonal(v)
    s = jnp.sqrt(jnp.where(diag > 0, diag, 1.0))
    lam, vec = linalg.eigh(v / (s[:, None] * s[None, :]))
    positive = jnp.all(lam > 0) & jnp.all(jnp.isfinite(lam))
    proj = vec.T @ (d / s)
    stat = jnp.where(positive, jnp.sum(proj**2 / jnp.where(positive, lam, 1.0)), jnp.nan)
    return stat, positive, lam[0]


def _contrast_test(stats: GroupStats, sigmamore: bool) -> dict:
    """Hausman's contrast of FE and RE (Swamy-Arora), referred to chi2(p).

    Covariances: each estimator's own (classic), or both on the RE disturbance
    variance (``sigmamore``), V_FE - V_RE = s2_RE (Wxx^-1 - [X*'X*]^-1_xx).
    """
    p = prepare(stats)
    k = p.p
    lay = layout(RE_COLS, k, p.q)
    fe = within(p)
    re = fgls(p, lay)
    xs = slice(lay.start["x"], lay.start["x"] + k)
    contrast = fe.beta - re.coef[xs]
    if sigmamore:
        var_diff = re.s2 * (fe.wxx_inv - re.xtx_inv[xs, xs])
    else:
        var_diff = fe.var - re.cov[xs, xs]
    statistic, positive, diag = quadratic_form(contrast, var_diff)
    finite = jnp.all(jnp.isfinite(var_diff))
    flag = fe.flag | re.flag | bit(~positive & finite, flags.NOT_POSITIVE_DEFINITE)
    shown = contrast[0] if k == 1 else jnp.asarray(jnp.nan)
    return {TEST: chi2_test(statistic, k, flag, contrast=shown, var_diff=diag)}


def _hausman(stats: GroupStats) -> dict:
    """Classic Hausman test of FE against RE (Swamy-Arora), each with its own covariance."""
    return _contrast_test(stats, sigmamore=False)


def _hausman_sigmamore(stats: GroupStats) -> dict:
    """Hausman test with both covariances on the RE disturbance variance; chi2(p)."""
    return _contrast_test(stats, sigmamore=True)


def _hausman_robust(stats: GroupStats) -> dict:
    """Wald test of the Mundlak terms with CR1 covariance clustered by region; chi2(p)."""
    p = prepare(stats)
    k = p.p
    lay = layout(MUNDLAK_COLS, k, p.q)
    active = mundlak_active(p, lay)
    fit = fgls(p, lay, active)
    w = region_weights(p, fit.psi)
    meat = cluster_meat(group_moments(p, lay, w), fit.coef)
    bread = fit.xtx_inv
    cov = cr1_factor(p.n_obs, p.n_groups, n_active(lay, active)) * bread @ meat @ bread
    gs = slice(lay.start["xbar"], lay.start["xbar"] + k)
    gamma = jnp.where(p.within, fit.coef[gs], jnp.nan)
    if k == 1:
        statistic = gamma[0] ** 2 / cov[gs, gs][0, 0]
        shown = gamma[0]
    else:
        statistic, _, _ = quadratic_form(gamma, cov[gs, gs])
        shown = jnp.asarray(jnp.nan)
    return {TEST: chi2_test(statistic, k, fit.flag, gamma=shown)}


hausman = batch_method(_hausman)
hausman_sigmamore = batch_method(_hausman_sigmamore)
hausman_robust = batch_method(_hausman_robust)
