"""The Mundlak model: random intercepts plus the region means of the covariates.

    y_rt = a + beta' x_rt + gamma' xbar_r + delta' z_r + u_r + e_rt

beta is the within effect (for any variance ratio it equals the fixed-effects
estimate), gamma the contextual effect (between minus within) and delta the
effect of the group-level covariates z.

- ``mundlak-fgls``: Swamy-Arora FGLS exactly as linearmodels 7.1
  ``RandomEffects(y, [const, x, xbar, z])`` computes it with its defaults: xbar
  does not vary within regions and is collinear with the means of x in the
  between regression, so the variance components equal those of ``re-fgls``.
  The covariance is s~^2 (Z~'Z~)^-1 with s~^2 = SSR~ / (N - K), K = 1 + 2p + q,
  t(N - K) intervals.
- ``mundlak-reml``: REML as statsmodels ``MixedLM`` (``y ~ x + xbar + z``,
  random intercept by region), lme4's ``vcov`` for the covariance, z intervals.
  See ``random_effects`` for the optimiser and its flags.

Each reports ("beta", "x{j}"), ("beta", "z{j}") and ("contextual", "x{j}").

Flags as in ``random_effects``. An x without within variation equals its region
mean, so its beta and its contextual effect are not identified: both are NaN
(NONFINITE), and the other coefficients are those of the model without that
region mean.
"""

from __future__ import annotations

import jax.numpy as jnp

from mlmbias.frequentist._common import NORMAL, batch_method, coefficients
from mlmbias.frequentist._linalg import Layout, Prepared, layout, prepare
from mlmbias.frequentist.random_effects import fgls, likelihood_fit
from mlmbias.groupstats import GroupStats

MUNDLAK_COLS = ("const", "x", "xbar", "z")
MUNDLAK_BLOCKS = (("x", "beta"), ("z", "beta"), ("xbar", "contextual"))


def mundlak_active(p: Prepared, lay: Layout):
    """Regressors fitted: all but the region mean of an x without within variation."""
    active = jnp.ones(lay.size, bool)
    start = lay.start["xbar"]
    return active.at[start : start + p.p].set(p.within)


def _mask_collinear(p: Prepared, lay: Layout, coef, cov):
    """NaN for x_j and xbar_j where x_j has no within variation (they are collinear)."""
    bad = jnp.zeros(lay.size, bool)
    for block in ("x", "xbar"):
        start = lay.start[block]
        bad = bad.at[start : start + p.p].set(~p.within)
    coef = jnp.where(bad, jnp.nan, coef)
    cov = jnp.where(bad[:, None] | bad[None, :], jnp.nan, cov)
    return coef, cov


def _mundlak_fgls(stats: GroupStats) -> dict:
    """Mundlak model by Swamy-Arora FGLS (linearmodels RandomEffects); t(N - K) intervals."""
    p = prepare(stats)
    lay = layout(MUNDLAK_COLS, p.p, p.q)
    fit = fgls(p, lay, mundlak_active(p, lay))
    coef, cov = _mask_collinear(p, lay, fit.coef, fit.cov)
    diag = {
        "df": fit.df,
        "sigma": jnp.sqrt(fit.components.sigma2),
        "sigma_a": jnp.sqrt(fit.components.sigma2_a),
    }
    return coefficients(lay, MUNDLAK_BLOCKS, coef, cov, fit.df, fit.flag, **diag)


def _mundlak_reml(stats: GroupStats) -> dict:
    """Mundlak model by REML (statsmodels MixedLM, lme4 vcov); z intervals."""
    p = prepare(stats)
    lay = layout(MUNDLAK_COLS, p.p, p.q)
    fit = likelihood_fit(p, lay, reml=True, active=mundlak_active(p, lay))
    coef, cov = _mask_collinear(p, lay, fit.coef, fit.cov)
    diag = {
        "sigma": jnp.sqrt(fit.sigma2),
        "sigma_a": jnp.sqrt(fit.sigma2_a),
        "loglik": fit.loglik,
    }
    return coefficients(lay, MUNDLAK_BLOCKS, coef, cov, NORMAL, fit.flag, **diag)


mundlak_fgls = batch_method(_mundlak_fgls)
mundlak_reml = batch_method(_mundlak_reml)
