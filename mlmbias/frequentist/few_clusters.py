"""Few-cluster inference: CR2 with Satterthwaite df, and the cluster jackknife (CR3).

CR2 (Bell & McCaffrey 2002) as R's clubSandwich computes it for ``lm`` with
``vcov = "CR2", cluster = g`` (working model the identity) and its
Satterthwaite degrees of freedom (``coef_test(..., test = "Satterthwaite")``;
Pustejovsky & Tipton 2018):

    V = M (sum_g X_g' A_g e_g e_g' A_g X_g) M,   M = (X'X)^-1,
    A_g = (I - H_gg)^{+1/2},  H_gg = X_g M X_g',

with ^{+1/2} the Moore-Penrose inverse square root (eigenvalues of I - H_gg
below 1e-12 dropped, as clubSandwich's ``Sym_power``).

**From group sums.** For any function f, f(X_g M X_g') X_g = X_g f(M Q_g) with
Q_g = X_g'X_g, so the n_g x n_g adjustment acts through K x K matrices only.
With L L' = X'X (Cholesky) and S_g = L^-1 Q_g L^-T = V_g diag(lam) V_g' (the
eigenvalues lam of H_gg on its range, in [0, 1)):

    X_g' A_g e_g = L f(S_g) L^-1 s_g,   f(lam) = (1 - lam)^-1/2,  s_g = X_g' e_g,

and V = L^-T [sum_g f(S_g) t_g t_g' f(S_g)] L^-1 with t_g = L^-1 s_g.

The Satterthwaite df of c'beta: c'Vc = sum_g (p_g' eps)^2 with eps ~ N(0, I),
p_g = (I - H)_{.g} A_g X_g M c, so with P_jk = p_j'p_k the df are
(sum_g P_gg)^2 / sum_jk P_jk^2 (clubSandwich: 2 E^2 / Var). As (I - H) is
idempotent, P_jk = [j = k] d_j - b_j'b_k with (c~ = L^-1 c)

    d_g = c~' S_g f(S_g)^2 c~,     b_g = S_g f(S_g) c~,

so sum_jk P_jk^2 = sum_g d_g^2 - 2 sum_g d_g |b_g|^2 + ||sum_g b_g b_g'||_F^2:
K x K work per group.

**Fixed effects** (``lm(y ~ x + factor(g))``): H_gg = 11'/n_g + x~_g W^-1 x~_g'
with x~ the within-centred x and W = sum_g W_g their pooled sums of products.
I - H_gg is singular in the direction 1 (its Moore-Penrose root annihilates it),
orthogonal to the centred x~_g, so the x block of the CR2 covariance and its
Satterthwaite df are the formulas above with Q_g = W_g (the within sums of the
region), X'X = W and s_g the within score Wxy_g - Wxx_g beta; the dummies' block
drops out.

Methods (each row carries its df; t intervals and p-values use it):

- ``fe-cr2``: the within estimator, CR2 clustered by region, Satterthwaite df.
- ``pooled-cr2``: pooled OLS y ~ 1 + x + z, CR2, Satterthwaite df.
- ``hausman-cr2``: the t test of the Mundlak term in pooled OLS y ~ 1 + x +
  xbar + z (``coef_test(lm(y ~ x + xbar), vcov = "CR2", cluster = g, test =
  "Satterthwaite", coefs = "xbar")``): ``estimate`` the t statistic, ``df`` the
  Satterthwaite df, p-value two-sided t(df). Defined for p = 1 only (one
  Mundlak term); with p > 1 the joint test (clubSandwich's HTZ Wald test) is not
  implemented and the row is NaN (NONFINITE).
- ``fe-cr3``: the within estimator with the cluster jackknife variance
  (MacKinnon, Nielsen & Webb's CV3), V = (G-1)/G sum_g (b_(-g) - b)(b_(-g) - b)'
  with b_(-g) = (W - W_g)^-1 (w_xy - w_xy,g) the within estimate without region
  g, and t(G - 1) intervals. NaN (NONFINITE) where dropping some region leaves
  the within cross products singular (e.g. only one region with within
  variation).

Regions with n = 0 (padding) contribute nothing; G counts the others.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mlmbias import flags, linalg
from mlmbias.frequentist._common import TEST, batch_method, bit, estimand, x_term
from mlmbias.frequentist._dist import t_sf
from mlmbias.frequentist._linalg import (
    group_moments,
    inv_logdet,
    layout,
    moments,
    prepare,
    solve,
)
from mlmbias.frequentist.mundlak import MUNDLAK_COLS, mundlak_active
from mlmbias.frequentist.ols import BLOCKS as POOLED_BLOCKS
from mlmbias.frequentist.ols import COLS as POOLED_COLS
from mlmbias.frequentist.within import within
from mlmbias.groupstats import GroupStats

# clubSandwich's Sym_power: eigenvalues of I - H_gg at or below this count as 0
PINV_TOL = 1e-12


def cr2(xtx: jax.Array, q: jax.Array, scores: jax.Array) -> tuple[jax.Array, jax.Array]:
    """CR2 covariance (K, K) and Satterthwaite df (K,) of each coefficient.

    ``xtx`` (K, K) the regressors' cross products, ``q`` (R, K, K) those of each
    region, ``scores`` (R, K) the regions' X_g' e_g.
    """
    k = xtx.shape[-1]
    low = linalg.cholesky(xtx)
    low_inv = linalg.solve_lower(low, jnp.eye(k))  # L^-1
    s = jnp.einsum("ij,rjk,lk->ril", low_inv, q, low_inv)  # L^-1 Q_g L^-T
    lam, vec = jax.vmap(linalg.eigh)(s)  # (R, K), (R, K, K)
    gap = 1.0 - lam
    keep = gap > PINV_TOL
    f = jnp.where(keep, 1.0 / jnp.sqrt(jnp.where(keep, gap, 1.0)), 0.0)
    lam = jnp.where(keep, lam, 0.0)  # (I - H)^+ has no component there
    t = scores @ low_inv.T  # (R, K): L^-1 s_g
    tau = jnp.einsum("rji,rj->ri", vec, t)  # V_g' t_g
    u = jnp.einsum("rij,rj->ri", vec, f * tau)  # f(S_g) t_g
    cov = low_inv.T @ (u.T @ u) @ low_inv
    # Satterthwaite, one contrast c = e_i per column: c~ = L^-1 e_i
    v = jnp.einsum("rji,jc->ric", vec, low_inv)  # (R, K, C): V_g' c~
    d = jnp.sum(v**2 * (lam * f**2)[:, :, None], axis=1)  # (R, C)
    b = v * (lam * f)[:, :, None]  # (R, K, C) in eigen coordinates of each g
    b2 = jnp.sum(b**2, axis=1)  # (R, C): |b_g|^2
    b_full = jnp.einsum("rij,rjc->ric", vec, b)  # common coordinates
    outer = jnp.einsum("ric,rjc->cij", b_full, b_full)  # (C, K, K)
    expect = jnp.sum(d - b2, axis=0)
    square = jnp.sum(d**2, axis=0) - 2.0 * jnp.sum(d * b2, axis=0) + jnp.sum(outer**2, axis=(1, 2))
    return cov, expect**2 / square


def _within_parts(stats: GroupStats):
    """The within fit and its region sums with unidentified covariates masked out:
    (prepared sums, fit, identified pairs, Wxx_r, Wxy_r, beta with 0 where NaN)."""
    p = prepare(stats)
    fit = within(p)
    k, ok = p.p, p.within
    both = ok[:, None] & ok[None, :]
    wxx = jnp.where(both[None], p.w[:, :k, :k], 0.0)
    wxy = jnp.where(ok[None], p.w[:, :k, k], 0.0)
    return p, fit, both, wxx, wxy, jnp.where(ok, fit.beta, 0.0)


def _fe_cr2(stats: GroupStats) -> dict:
    """Within estimator, CR2 SE clustered by region, Satterthwaite df t interval."""
    p, fit, both, wxx, wxy, beta = _within_parts(stats)
    k, ok = p.p, p.within
    scores = wxy - wxx @ beta
    xtx = jnp.where(both, jnp.sum(wxx, axis=0), jnp.eye(k))
    cov, df = cr2(xtx, wxx, scores)
    out = {}
    for j in range(k):
        se = jnp.where(ok[j], jnp.sqrt(cov[j, j]), jnp.nan)
        out[("beta", x_term(j))] = estimand(fit.beta[j], se, df[j], fit.flag, df=df[j])
    return out


def _pooled_cr2(stats: GroupStats) -> dict:
    """Pooled OLS, CR2 SE clustered by region, Satterthwaite df t intervals."""
    p = prepare(stats)
    lay = layout(POOLED_COLS, p.p, p.q)
    w = jnp.where(p.valid, p.n, 0.0)
    m = moments(p, lay, w)
    ls = solve(m)
    gm = group_moments(p, lay, w)
    kk = lay.size
    q = gm[:, :kk, :kk]
    scores = gm[:, :kk, kk] - q @ ls.coef
    cov, df = cr2(m[:kk, :kk], q, scores)
    out = {}
    for block, name in POOLED_BLOCKS:
        for j in range(lay.width[block]):
            i = lay.index(block, j)
            term = f"z{j}" if block == "z" else x_term(j)
            out[(name, term)] = estimand(
                ls.coef[i], jnp.sqrt(cov[i, i]), df[i], jnp.int32(0), df=df[i]
            )
    return out


def _hausman_cr2(stats: GroupStats) -> dict:
    """t test of the Mundlak term in pooled OLS y ~ 1 + x + xbar + z, CR2 + Satterthwaite."""
    p = prepare(stats)
    k = p.p
    lay = layout(MUNDLAK_COLS, k, p.q)
    active = mundlak_active(p, lay)
    w = jnp.where(p.valid, p.n, 0.0)
    m = moments(p, lay, w)
    ls = solve(m, active)
    kk = lay.size
    both = active[:, None] & active[None, :]
    gm = group_moments(p, lay, w)
    q = jnp.where(both[None], gm[:, :kk, :kk], 0.0)
    scores = jnp.where(active[None], gm[:, :kk, kk], 0.0) - q @ ls.coef
    xtx = jnp.where(both, m[:kk, :kk], jnp.eye(kk))
    cov, df = cr2(xtx, q, scores)
    i = lay.start["xbar"]
    flag = bit(~p.has_within, flags.NO_WITHIN_VARIATION)
    if k == 1:
        gamma = jnp.where(active[i], ls.coef[i], jnp.nan)
        stat = gamma / jnp.sqrt(cov[i, i])
        dfi = df[i]
        pval = 2.0 * t_sf(jnp.abs(stat), dfi)
    else:
        stat = dfi = pval = gamma = jnp.asarray(jnp.nan)
    bad = ~jnp.isfinite(stat)
    return {
        TEST: {
            "estimate": stat,
            "se": jnp.asarray(jnp.nan),
            "lower": jnp.asarray(jnp.nan),
            "upper": jnp.asarray(jnp.nan),
            "p_value": pval,
            "flag": flag | bit(bad, flags.NONFINITE),
            "df": jnp.asarray(dfi, float),
            "gamma": gamma,
        }
    }


def _fe_cr3(stats: GroupStats) -> dict:
    """Within estimator, cluster jackknife (CV3) variance, t(G - 1) interval."""
    p, fit, both, wxx, wxy, beta = _within_parts(stats)
    k, ok = p.p, p.within
    sxx, sxy = jnp.sum(wxx, axis=0), jnp.sum(wxy, axis=0)

    def leave_out(wg, vg):
        a = jnp.where(both, sxx - wg, jnp.eye(k))
        inv, logdet = inv_logdet(a)
        b = inv @ (sxy - vg)
        return jnp.where(jnp.isfinite(logdet), b, jnp.nan)

    b_out = jax.vmap(leave_out)(wxx, wxy)  # (R, k)
    diff = jnp.where(p.valid[:, None], b_out - beta[None, :], 0.0)
    g = p.n_groups
    cov = (g - 1.0) / g * diff.T @ diff
    df = g - 1.0
    return {
        ("beta", x_term(j)): estimand(
            fit.beta[j],
            jnp.where(ok[j], jnp.sqrt(cov[j, j]), jnp.nan),
            df,
            fit.flag,
            df=df,
        )
        for j in range(k)
    }


fe_cr2 = batch_method(_fe_cr2)
pooled_cr2 = batch_method(_pooled_cr2)
hausman_cr2 = batch_method(_hausman_cr2)
fe_cr3 = batch_method(_fe_cr3)
