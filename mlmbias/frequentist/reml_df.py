"""Mundlak REML with small-sample degrees of freedom: Satterthwaite and Kenward-Roger.

Both fit the Mundlak model of ``mundlak-reml`` (same REML optimum, same
estimates) and give each coefficient (beta of every x, the contextual effect
of every xbar, beta of every z) its own degrees of freedom, with t(df)
intervals; the row's ``df`` column carries them. lmerTest's p-value of a
coefficient is 2 P(T_df > |estimate / se|) from the row's columns; ``p_value``
itself is NaN, as in every row that is not a test (the registry's convention).

- ``mundlak-reml-satt``: lmerTest's Satterthwaite df,
  ``summary(lmerTest::lmer(y ~ x + xbar + z + (1 | g), REML = TRUE))``. The
  variance parameters are lme4's (theta, sigma), theta = s_a / s; the SE is
  lme4's ``vcov``, C(theta, sigma) = sigma^2 (X' V^-1 X)^-1 with V = I + theta^2
  ZZ'. For c'beta with variance v = c'Cc,

      df = 2 v^2 / (g' A g),  g = dv / d(theta, sigma),  A = 2 H^-1,

  H the Hessian of the REML deviance in (theta, sigma) (lmerTest's
  ``devfun_vp``: sum_r log(1 + n_r theta^2) + SSR(theta) / sigma^2 + (N - K)
  log(2 pi sigma^2) + log det X'V^-1X, SSR the GLS residual sum of squares at
  theta), all at the REML optimum. lmerTest takes g and H by numerical
  differentiation (numDeriv); here they are exact, by JAX autodiff of the
  deviance and of C as functions of the per-region sums.
- ``mundlak-reml-kr``: Kenward-Roger as lmerTest's ``ddf = "Kenward-Roger"``
  computes it with pbkrtest (0.5): the SE from pbkrtest's ``vcovAdj``, the
  bias-corrected covariance Phi_A = Phi + 2 Phi U Phi, and the df from its
  ``Lb_ddf``. The variance parameters are the components (s_a^2, s^2), Sigma =
  s_a^2 ZZ' + s^2 I with derivatives G_1 = ZZ', G_2 = I; with P_r = -X'
  Sigma^-1 G_r Sigma^-1 X, Q_rs = X' Sigma^-1 G_r Sigma^-1 G_s Sigma^-1 X and
  Phi = (X' Sigma^-1 X)^-1 (lme4's ``vcov``),

      I_rs = tr(Sigma^-1 G_r Sigma^-1 G_s) - 2 tr(Phi Q_rs) + tr(Phi P_r Phi P_s),
      W = 2 I^-1,  U = sum_rs W_rs (Q_rs - P_r Phi P_s),

  (pbkrtest drops the second-derivative term, zero here as Sigma is linear in
  the components). For one coefficient c = e_i, pbkrtest's A_1 = A_2 = sum_rs
  W_rs a_r a_s with a_r = (Phi P_r Phi)_ii / Phi_ii, and its df formula (kept
  literally below) reduces to 2 / A_2.

**From group sums.** Per region, Sigma_r^-1 = (I - c_r J) / s^2 with J = 11' and
c_r = s_a^2 / (s^2 + n_r s_a^2); every product of Sigma^-1, ZZ' and I is a I +
b_r J in region r (J^2 = n_r J), its trace sum_r n_r (a + b_r), and X'(a I + b_r
J)X = a W + sum_r (a n_r + b_r n_r^2) xbar_r xbar_r' with W the pooled
within sums of products and xbar_r the region means of the regressors: O(R)
per replication, no N x N matrix.

Flags as ``mundlak-reml``; a df that is not finite and positive (e.g. a
Hessian that is not positive definite) is NaN, and its row NONFINITE. With no
more regions than region-level regressors (G <= 1 + p + q) the between variance
has no residual df: the Satterthwaite df of the contextual effects and of z
collapse towards 0 (intervals of enormous width), and Kenward-Roger's come out
negative, so NaN. At the boundary (s_a^2 = 0) every Satterthwaite df is N - K:
the derivative of the variances in theta vanishes there, leaving sigma's
curvature; lmerTest gives the same.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from mlmbias import flags
from mlmbias.frequentist._common import batch_method, bit, estimand
from mlmbias.frequentist._linalg import (
    Layout,
    Prepared,
    _between_columns,
    _within_matrix,
    inv_logdet,
    layout,
    prepare,
)
from mlmbias.frequentist.mundlak import (
    MUNDLAK_BLOCKS,
    MUNDLAK_COLS,
    _mask_collinear,
    mundlak_active,
)
from mlmbias.frequentist.random_effects import gls, likelihood_fit, n_active
from mlmbias.groupstats import GroupStats


def reml_deviance(p: Prepared, lay: Layout, active: jax.Array, varpar: jax.Array) -> jax.Array:
    """lmerTest's REML deviance at varpar = (theta, sigma), beta profiled out."""
    theta, sigma = varpar[0], varpar[1]
    psi = theta * theta
    ls = gls(p, lay, psi, active)
    m = p.n_obs - n_active(lay, active)
    log_det_l = jnp.sum(jnp.where(p.valid, jnp.log1p(p.n * psi), 0.0))
    s2 = sigma * sigma
    return log_det_l + ls.ssr / s2 + m * jnp.log(2.0 * math.pi * s2) + ls.logdet


def cov_beta(p: Prepared, lay: Layout, active: jax.Array, varpar: jax.Array) -> jax.Array:
    """lme4's vcov at varpar = (theta, sigma): sigma^2 (X' V^-1 X)^-1."""
    theta, sigma = varpar[0], varpar[1]
    return sigma * sigma * gls(p, lay, theta * theta, active).xtx_inv


def _inv2(h: jax.Array) -> jax.Array:
    """Inverse of a 2 x 2 matrix (NaN where singular)."""
    det = h[0, 0] * h[1, 1] - h[0, 1] * h[1, 0]
    det = jnp.where(det != 0, det, jnp.nan)
    adj = jnp.stack([jnp.stack([h[1, 1], -h[0, 1]]), jnp.stack([-h[1, 0], h[0, 0]])])
    return adj / det


def satterthwaite_df(
    p: Prepared, lay: Layout, active: jax.Array, psi: jax.Array, sigma2: jax.Array
) -> jax.Array:
    """Satterthwaite df (K,) of each coefficient, lmerTest's formula by autodiff."""
    varpar = jnp.stack([jnp.sqrt(psi), jnp.sqrt(sigma2)])

    def dev(v):
        return reml_deviance(p, lay, active, v)

    hess = jax.jacfwd(jax.jacfwd(dev))(varpar)
    a = 2.0 * _inv2(hess)
    cov = cov_beta(p, lay, active, varpar)
    jac = jax.jacfwd(lambda v: jnp.diagonal(cov_beta(p, lay, active, v)))(varpar)  # (K, 2)
    denom = jnp.einsum("ki,ij,kj->k", jac, a, jac)
    return 2.0 * jnp.diagonal(cov) ** 2 / denom


class _Algebra:
    """Block-diagonal matrices a I + b_r J (J = 11' in region r): (a, b) with b (R,)."""

    def __init__(self, p: Prepared, lay: Layout, active: jax.Array):
        self.n = p.n
        self.valid = p.valid
        k = lay.size
        self.k = k
        self.cols = _between_columns(p, lay)[:k]  # (K, R) region means of the regressors
        self.within = _within_matrix(p, lay, p.sums())[:k, :k]
        self.mask = active[:, None] & active[None, :]

    def mul(self, u, v):
        return u[0] * v[0], u[0] * v[1] + u[1] * v[0] + self.n * u[1] * v[1]

    def trace(self, u):
        return jnp.sum(jnp.where(self.valid, self.n * (u[0] + u[1]), 0.0))

    def form(self, u):
        """X' (a I + b J) X over the active regressors (0 elsewhere), (K, K)."""
        a, b = u
        w = jnp.where(self.valid, a * self.n + b * self.n**2, 0.0)
        between = jnp.sum(self.cols[:, None, :] * (self.cols * w[None, :])[None, :, :], axis=-1)
        return jnp.where(self.mask, a * self.within + between, 0.0)


def kenward_roger(
    p: Prepared, lay: Layout, active: jax.Array, sigma2: jax.Array, sigma2_a: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """pbkrtest's adjusted covariance Phi_A (K, K) and Lb_ddf (K,) of each coefficient."""
    alg = _Algebra(p, lay, active)
    n = p.n
    ones, zeros = jnp.ones_like(n), jnp.zeros_like(n)
    c = jnp.where(p.valid, sigma2_a / (sigma2 + n * sigma2_a), 0.0)
    s_inv = (1.0 / sigma2, -c / sigma2)
    g = [(0.0, ones), (1.0, zeros)]  # d Sigma / d (s_a^2, s^2): ZZ' and I
    xsx = jnp.where(alg.mask, alg.form(s_inv), jnp.eye(alg.k))
    phi, _ = inv_logdet(xsx)
    phi = jnp.where(alg.mask, phi, 0.0)
    sgs = [alg.mul(s_inv, alg.mul(gr, s_inv)) for gr in g]  # Sigma^-1 G_r Sigma^-1
    pp = [-alg.form(u) for u in sgs]
    h = [alg.mul(gr, s_inv) for gr in g]
    m = len(g)
    qq = [[alg.form(alg.mul(sgs[r], alg.mul(g[s], s_inv))) for s in range(m)] for r in range(m)]
    info = jnp.stack(
        [
            jnp.stack(
                [
                    alg.trace(alg.mul(h[r], h[s]))
                    - 2.0 * jnp.sum(phi * qq[r][s])
                    + jnp.trace(phi @ pp[r] @ phi @ pp[s])
                    for s in range(m)
                ]
            )
            for r in range(m)
        ]
    )
    w = 2.0 * _inv2(info)
    uu = sum(w[r, s] * (qq[r][s] - pp[r] @ phi @ pp[s]) for r in range(m) for s in range(m))
    phi_a = phi + 2.0 * phi @ uu @ phi
    # Lb_ddf for L = e_i, every i at once (q = 1)
    d = jnp.diagonal(phi)
    a = jnp.stack([jnp.diagonal(phi @ pp[r] @ phi) for r in range(m)]) / d[None, :]  # (m, K)
    a1 = a2 = jnp.einsum("rk,rs,sk->k", a, w, a)
    return phi_a, lb_ddf(a1, a2, 1)


def lb_ddf(a1: jax.Array, a2: jax.Array, q: int) -> jax.Array:
    """pbkrtest's ``Lb_ddf`` from its A1, A2 for a hypothesis of q rows."""
    b = (a1 + 6.0 * a2) / (2.0 * q)
    g = ((q + 1) * a1 - (q + 4) * a2) / ((q + 2) * a2)
    den = 3 * q + 2 * (1 - g)
    c1, c2, c3 = g / den, (q - g) / den, (q + 2 - g) / den
    v0 = 1.0 + c1 * b
    v1 = 1.0 - c2 * b
    v2 = 1.0 - c3 * b
    v0 = jnp.where(jnp.abs(v0) < 1e-10, 0.0, v0)
    x = 1.0 - a2 / q
    ratio = jnp.where((jnp.abs(x) < 1e-14) & (jnp.abs(v1) < 1e-14), 1.0, x / v1)
    rho = ratio**2 * v0 / (q * v2)
    return 4.0 + (q + 2) / (q * rho - 1.0)


def _rows(lay, coef, cov, df, flag, diag):
    out = {}
    for block, name in MUNDLAK_BLOCKS:
        code = "z" if block == "z" else "x"
        for j in range(lay.width[block]):
            i = lay.index(block, j)
            se = jnp.sqrt(cov[i, i])
            ok = jnp.isfinite(df[i]) & (df[i] > 0)
            dfi = jnp.where(ok & jnp.isfinite(se), df[i], jnp.nan)
            fl = flag | bit(~ok, flags.NONFINITE)
            out[(name, f"{code}{j}")] = estimand(coef[i], se, dfi, fl, df=dfi, **diag)
    return out


def _fit(stats: GroupStats):
    p = prepare(stats)
    lay = layout(MUNDLAK_COLS, p.p, p.q)
    active = mundlak_active(p, lay)
    fit = likelihood_fit(p, lay, reml=True, active=active)
    diag = {
        "sigma": jnp.sqrt(fit.sigma2),
        "sigma_a": jnp.sqrt(fit.sigma2_a),
        "loglik": fit.loglik,
    }
    return p, lay, active, fit, diag


def _mundlak_reml_satt(stats: GroupStats) -> dict:
    """Mundlak model by REML, lme4 vcov, lmerTest Satterthwaite df t intervals."""
    p, lay, active, fit, diag = _fit(stats)
    df = satterthwaite_df(p, lay, active, fit.psi, fit.sigma2)
    coef, cov = _mask_collinear(p, lay, fit.coef, fit.cov)
    return _rows(lay, coef, cov, df, fit.flag, diag)


def _mundlak_reml_kr(stats: GroupStats) -> dict:
    """Mundlak model by REML, Kenward-Roger adjusted covariance and df (pbkrtest)."""
    p, lay, active, fit, diag = _fit(stats)
    phi_a, df = kenward_roger(p, lay, active, fit.sigma2, fit.sigma2_a)
    coef, cov = _mask_collinear(p, lay, fit.coef, phi_a)
    return _rows(lay, coef, cov, df, fit.flag, diag)


mundlak_reml_satt = batch_method(_mundlak_reml_satt)
mundlak_reml_kr = batch_method(_mundlak_reml_kr)
