"""The Mundlak model: random intercepts plus the region mean of ad spend.

    y_rt = a + beta x_rt + gamma xbar_r + u_r + e_rt

beta is the within effect (for any variance ratio it equals the fixed-effects
estimate) and gamma the contextual effect (between minus within).

- ``mundlak-fgls``: Swamy-Arora FGLS exactly as linearmodels 7.1
  ``RandomEffects(y, [const, x, xbar])`` computes it with its defaults: xbar
  does not vary within regions and is collinear with (1, xbar) in the between
  regression, so the variance components equal those of ``re-fgls``. The
  covariance is s~^2 (Z~'Z~)^-1 with s~^2 = SSR~ / (N - 3), t(N - 3) intervals.
- ``mundlak-reml``: REML as statsmodels ``MixedLM`` (``y ~ x + xbar``, random
  intercept by region), lme4's ``vcov`` for the covariance, z intervals. See
  ``random_effects`` for the optimiser and its flags.

Flags as in ``random_effects``; NO_WITHIN_VARIATION makes x and xbar collinear,
and the estimates are then NaN (NONFINITE).
"""

from __future__ import annotations

import jax.numpy as jnp

from mlmbias.frequentist._common import NORMAL, batch_method, estimand
from mlmbias.frequentist._linalg import prepare
from mlmbias.frequentist.random_effects import fgls, likelihood_fit
from mlmbias.groupstats import GroupStats

MUNDLAK_COLS = ("const", "x", "xbar")


def _mask_collinear(p, coef, cov):
    """NaN estimates where x has no within variation (x and xbar collinear)."""
    coef = jnp.where(p.has_within, coef, jnp.nan)
    cov = jnp.where(p.has_within, cov, jnp.nan)
    return coef, cov


def _mundlak_fgls(stats: GroupStats) -> dict:
    """Mundlak model by Swamy-Arora FGLS (linearmodels RandomEffects); t(N - 3) intervals."""
    p = prepare(stats)
    fit = fgls(p, MUNDLAK_COLS)
    coef, cov = _mask_collinear(p, fit.coef, fit.cov)
    diag = {
        "df": fit.df,
        "sigma": jnp.sqrt(fit.components.sigma2),
        "sigma_a": jnp.sqrt(fit.components.sigma2_a),
    }
    return {
        "beta": estimand(coef[1], jnp.sqrt(cov[1, 1]), fit.df, fit.flag, **diag),
        "contextual": estimand(coef[2], jnp.sqrt(cov[2, 2]), fit.df, fit.flag, **diag),
    }


def _mundlak_reml(stats: GroupStats) -> dict:
    """Mundlak model by REML (statsmodels MixedLM, lme4 vcov); z intervals."""
    p = prepare(stats)
    fit = likelihood_fit(p, MUNDLAK_COLS, reml=True)
    coef, cov = _mask_collinear(p, fit.coef, fit.cov)
    diag = {
        "sigma": jnp.sqrt(fit.sigma2),
        "sigma_a": jnp.sqrt(fit.sigma2_a),
        "loglik": fit.loglik,
    }
    return {
        "beta": estimand(coef[1], jnp.sqrt(cov[1, 1]), NORMAL, fit.flag, **diag),
        "contextual": estimand(coef[2], jnp.sqrt(cov[2, 2]), NORMAL, fit.flag, **diag),
    }


mundlak_fgls = batch_method(_mundlak_fgls)
mundlak_reml = batch_method(_mundlak_reml)
