"""Least squares from per-region sums, for one replication.

Every model here regresses profit y on some of the columns ``const`` (1),
``x`` (ad spend) and ``xbar`` (the region mean of ad spend), after the
quasi-demeaning y - theta_r * ybar_r of a random-intercept model (theta_r = 0:
pooled OLS; theta_r = 1: the within transformation). Such a transformed column
v~ = v - theta_r * vbar_r has, within region r,

    sum_t v~_a v~_b = W_ab,r + w_r * vbar_a,r * vbar_b,r,      w_r = n_r (1 - theta_r)^2,

where W_ab,r are the sums of products of deviations from the region means (zero
for the region-constant ``const`` and ``xbar``). So every cross-product matrix,
coefficient, residual sum of squares and cluster score is a function of the
region sums, O(R) per replication. The group statistics arrive centred (see
``groupstats``); the region means are taken relative to the grand mean of the
observations: this shift is absorbed by the constant, so it changes no slope
and no residual, and it keeps every cross product well conditioned whatever
the location of the data.

Regions with n = 0 (padding) have zero weight and contribute nothing.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from mlmbias.groupstats import GroupStats

COLUMNS = ("const", "x", "xbar")
# Relative size below which the within-region variation of ad spend counts as absent.
WITHIN_TOL = 1e-12


class Prepared(NamedTuple):
    """Centred region sums of one replication; arrays of shape (R,) or scalars."""

    n: jax.Array  # observations per region (float)
    valid: jax.Array  # n > 0
    dx: jax.Array  # region mean of x less the grand mean (0 where n = 0)
    dy: jax.Array  # region mean of y less the grand mean
    wxx: jax.Array  # sum over the region of (x - xbar_r)^2
    wxy: jax.Array  # sum of (x - xbar_r)(y - ybar_r)
    wyy: jax.Array  # sum of (y - ybar_r)^2
    n_obs: jax.Array  # N
    n_groups: jax.Array  # regions with at least one observation
    has_singleton: jax.Array  # some region has exactly one observation
    has_within: jax.Array  # ad spend varies within regions


def prepare(stats: GroupStats) -> Prepared:
    n = jnp.asarray(stats.n, float)
    valid = n > 0
    n_obs = jnp.sum(n)
    n_obs_safe = jnp.maximum(n_obs, 1.0)
    cx = jnp.sum(n * stats.mx) / n_obs_safe
    cy = jnp.sum(n * stats.my) / n_obs_safe
    dx = jnp.where(valid, stats.mx - cx, 0.0)
    dy = jnp.where(valid, stats.my - cy, 0.0)
    wxx = jnp.where(valid, stats.wxx, 0.0)
    wxy = jnp.where(valid, stats.wxy, 0.0)
    wyy = jnp.where(valid, stats.wyy, 0.0)
    total_xx = jnp.sum(wxx) + jnp.sum(n * dx * dx)
    has_within = jnp.sum(wxx) > WITHIN_TOL * total_xx
    return Prepared(
        n=n,
        valid=valid,
        dx=dx,
        dy=dy,
        wxx=wxx,
        wxy=wxy,
        wyy=wyy,
        n_obs=n_obs,
        n_groups=jnp.sum(valid).astype(float),
        has_singleton=jnp.any(n == 1),
        has_within=has_within,
    )


def _between_columns(p: Prepared, cols: tuple[str, ...]) -> jax.Array:
    """Region means of the columns and of y, shape (K + 1, R)."""
    one = p.valid.astype(float)
    values = {"const": one, "x": p.dx, "xbar": p.dx}
    return jnp.stack([values[c] for c in cols] + [p.dy])


def _within_matrix(p: Prepared, cols: tuple[str, ...], wxx, wxy, wyy) -> jax.Array:
    """The within-region sums of products, placed on the rows of x and y."""
    k = len(cols)
    out = jnp.zeros(jnp.shape(wxx) + (k + 1, k + 1))
    out = out.at[..., k, k].set(wyy)
    if "x" in cols:
        i = cols.index("x")
        out = out.at[..., i, i].set(wxx)
        out = out.at[..., i, k].set(wxy)
        out = out.at[..., k, i].set(wxy)
    return out


def moments(p: Prepared, cols: tuple[str, ...], w: jax.Array, within: float = 1.0) -> jax.Array:
    """Cross products of the transformed [cols..., y], shape (K + 1, K + 1).

    ``w`` (R,) weights the region means (n_r (1 - theta_r)^2), ``within`` the
    within-region sums (1 for OLS, FE and GLS; 0 for the regression of the means).
    """
    c = _between_columns(p, cols)
    # a broadcast product summed over regions fuses into one loop; a batched
    # (K+1) x R matmul is slower on CPU
    between = jnp.sum(c[:, None, :] * (c * w[None, :])[None, :, :], axis=-1)
    wmat = _within_matrix(p, cols, jnp.sum(p.wxx), jnp.sum(p.wxy), jnp.sum(p.wyy))
    return within * wmat + between


def group_moments(
    p: Prepared, cols: tuple[str, ...], w: jax.Array, within: float = 1.0
) -> jax.Array:
    """The same cross products region by region, shape (R, K + 1, K + 1)."""
    c = _between_columns(p, cols).T  # (R, K + 1)
    between = w[:, None, None] * c[:, :, None] * c[:, None, :]
    return within * _within_matrix(p, cols, p.wxx, p.wxy, p.wyy) + between


class LeastSquares(NamedTuple):
    coef: jax.Array  # (K,)
    xtx_inv: jax.Array  # (K, K) inverse of the regressors' cross products
    ssr: jax.Array  # residual sum of squares
    logdet: jax.Array  # log det of the regressors' cross products


def inv_det(a: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Inverse and determinant of a symmetric K x K matrix, K <= 3, by cofactors.

    Written out rather than calling LAPACK: the matrices are tiny, and plain
    arithmetic compiles in a fraction of the time, vectorises on any device and
    differentiates twice (the REML Newton steps).
    """
    k = a.shape[-1]
    if k == 1:
        det = a[0, 0]
        return (1.0 / det)[None, None], det
    if k == 2:
        det = a[0, 0] * a[1, 1] - a[0, 1] * a[1, 0]
        adj = jnp.stack([jnp.stack([a[1, 1], -a[0, 1]]), jnp.stack([-a[1, 0], a[0, 0]])])
        return adj / det, det
    if k == 3:
        c00 = a[1, 1] * a[2, 2] - a[1, 2] * a[2, 1]
        c01 = a[1, 2] * a[2, 0] - a[1, 0] * a[2, 2]
        c02 = a[1, 0] * a[2, 1] - a[1, 1] * a[2, 0]
        c11 = a[0, 0] * a[2, 2] - a[0, 2] * a[2, 0]
        c12 = a[0, 2] * a[1, 0] - a[0, 0] * a[1, 2]
        c22 = a[0, 0] * a[1, 1] - a[0, 1] * a[1, 0]
        det = a[0, 0] * c00 + a[0, 1] * c01 + a[0, 2] * c02
        adj = jnp.stack(
            [jnp.stack([c00, c01, c02]), jnp.stack([c01, c11, c12]), jnp.stack([c02, c12, c22])]
        )
        return adj / det, det
    raise ValueError(f"inv_det handles K <= 3, got K = {k}")


def solve(m: jax.Array) -> LeastSquares:
    """Least squares from the cross-product matrix of [regressors, y]."""
    k = m.shape[-1] - 1
    mzz, mzy, myy = m[:k, :k], m[:k, k], m[k, k]
    inv, det = inv_det(mzz)
    coef = inv @ mzy
    ssr = jnp.maximum(myy - mzy @ coef, 0.0)
    logdet = jnp.where(det > 0, jnp.log(jnp.where(det > 0, det, 1.0)), jnp.nan)
    return LeastSquares(coef, inv, ssr, logdet)


def cluster_meat(gm: jax.Array, coef: jax.Array) -> jax.Array:
    """Sum over regions of the outer products of the region scores, (K, K).

    The score of region r is sum_t z~_t e~_t = M_zy,r - M_zz,r coef.
    """
    k = coef.shape[0]
    scores = gm[:, :k, k] - gm[:, :k, :k] @ coef
    return scores.T @ scores


def cr1_factor(n_obs: jax.Array, n_groups: jax.Array, k: int) -> jax.Array:
    """Stata's CR1 small-sample factor G/(G-1) * (N-1)/(N-K).

    It is linearmodels' ``debiased=True`` (N/(N-K)) times its
    ``group_debias=True`` (G/(G-1) * (N-1)/N).
    """
    return n_groups / (n_groups - 1.0) * (n_obs - 1.0) / (n_obs - k)


def between_ssr(p: Prepared) -> tuple[jax.Array, jax.Array]:
    """Residual sum of squares of the unweighted regression of ybar_r on (1, xbar_r).

    Returns it with the rank of that regression (2, or 1 where all the region
    means of x are equal).
    """
    g = jnp.maximum(p.n_groups, 1.0)
    one = p.valid.astype(float)
    ux = jnp.sum(p.dx) / g
    uy = jnp.sum(p.dy) / g
    ex = (p.dx - ux) * one
    ey = (p.dy - uy) * one
    bxx, bxy, byy = jnp.sum(ex * ex), jnp.sum(ex * ey), jnp.sum(ey * ey)
    total = (jnp.sum(p.n * p.dx * p.dx) + jnp.sum(p.wxx)) / jnp.maximum(p.n_obs, 1.0) * g
    full = bxx > WITHIN_TOL * total
    ssr = jnp.where(full, byy - bxy**2 / jnp.where(full, bxx, 1.0), byy)
    return jnp.maximum(ssr, 0.0), jnp.where(full, 2.0, 1.0)
