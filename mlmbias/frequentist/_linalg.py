"""Least squares from per-region sums, for one replication.

Every model here regresses y on some of the column blocks ``const`` (1),
``x`` (the p within-varying covariates), ``xbar`` (their region means, the
Mundlak terms) and ``z`` (the q group-level covariates), in that order, after
the quasi-demeaning y - theta_r * ybar_r of a random-intercept model (theta_r =
0: pooled OLS; theta_r = 1: the within transformation). Such a transformed
column v~ = v - theta_r * vbar_r has, within region r,

    sum_t v~_a v~_b = W_ab,r + w_r * vbar_a,r * vbar_b,r,      w_r = n_r (1 - theta_r)^2,

where W_ab,r are the sums of products of deviations from the region means (zero
for the region-constant ``const``, ``xbar`` and ``z``). So every cross-product
matrix, coefficient, residual sum of squares and cluster score is a function of
the region sums, O(R) per replication. The group statistics arrive centred (see
``groupstats``); the region means (and z) are taken relative to the grand mean
of the observations: this shift is absorbed by the constant, so it changes no
slope and no residual, and it keeps every cross product well conditioned
whatever the location of the data.

Linear systems of up to three unknowns are solved by cofactors (plain
arithmetic: fast to compile and run, twice differentiable); larger ones by a
sweep (Gauss-Jordan) of the matrix scaled to unit diagonal, in plain JAX
operations (:mod:`mlmbias.linalg`: jaxlib's batched CPU LAPACK calls
can deadlock on a machine with few cores).

Regions with n = 0 (padding) have zero weight and contribute nothing.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mlmbias import linalg
from mlmbias.groupstats import GroupStats

# Relative size below which the within-region variation of a covariate counts as
# absent (and the rank threshold of the scaled between/within regressions).
WITHIN_TOL = 1e-12


class Prepared(NamedTuple):
    """Centred region sums of one replication: (R, ...) arrays or scalars."""

    n: jax.Array  # (R,) observations per region (float)
    valid: jax.Array  # (R,) n > 0
    dx: jax.Array  # (R, p) region means of x less the grand means (0 where n = 0)
    dy: jax.Array  # (R,) region mean of y less the grand mean
    dz: jax.Array  # (R, q) z less its observation-weighted mean (0 where n = 0)
    w: jax.Array  # (R, k, k) within sums of products of [x, y] (0 where n = 0)
    n_obs: jax.Array  # N
    n_groups: jax.Array  # regions with at least one observation
    has_singleton: jax.Array  # some region has exactly one observation
    within: jax.Array  # (p,) x_j varies within regions
    total_xx: jax.Array  # (p,) Σ (x_j - grand mean)^2 over the observations

    @property
    def p(self) -> int:
        return self.dx.shape[-1]

    @property
    def q(self) -> int:
        return self.dz.shape[-1]

    @property
    def has_within(self) -> jax.Array:
        """Every x varies within regions."""
        return jnp.all(self.within)

    def sums(self) -> jax.Array:
        """Within sums of products pooled over regions, (k, k)."""
        return jnp.sum(self.w, axis=0)


def prepare(stats: GroupStats) -> Prepared:
    n = jnp.asarray(stats.n, float)
    valid = n > 0
    n_obs = jnp.sum(n)
    n_obs_safe = jnp.maximum(n_obs, 1.0)
    p = stats.mean.shape[-1] - 1
    c = jnp.sum(n[:, None] * stats.mean, axis=0) / n_obs_safe
    d = jnp.where(valid[:, None], stats.mean - c[None, :], 0.0)
    cz = jnp.sum(n[:, None] * stats.z, axis=0) / n_obs_safe
    dz = jnp.where(valid[:, None], stats.z - cz[None, :], 0.0)
    w = jnp.where(valid[:, None, None], stats.cross, 0.0)
    dx = d[:, :p]
    sxx = jnp.diagonal(jnp.sum(w, axis=0))[:p]
    total_xx = sxx + jnp.sum(n[:, None] * dx * dx, axis=0)
    return Prepared(
        n=n,
        valid=valid,
        dx=dx,
        dy=d[:, p],
        dz=dz,
        w=w,
        n_obs=n_obs,
        n_groups=jnp.sum(valid).astype(float),
        has_singleton=jnp.any(n == 1),
        within=sxx > WITHIN_TOL * total_xx,
        total_xx=total_xx,
    )


class Layout(NamedTuple):
    """Where each column block of a design sits: static offsets and widths."""

    cols: tuple[str, ...]
    start: dict[str, int]
    width: dict[str, int]
    size: int  # K, the number of regressors

    def index(self, col: str, j: int = 0) -> int:
        return self.start[col] + j


def layout(cols: tuple[str, ...], p: int, q: int) -> Layout:
    widths = {"const": 1, "x": p, "xbar": p, "z": q}
    start, width, k = {}, {}, 0
    for c in cols:
        start[c], width[c] = k, widths[c]
        k += widths[c]
    return Layout(tuple(cols), start, width, k)


def _between_columns(p: Prepared, lay: Layout) -> jax.Array:
    """Region means of the columns and of y, shape (K + 1, R)."""
    values = {
        "const": p.valid.astype(float)[None, :],
        "x": p.dx.T,
        "xbar": p.dx.T,
        "z": p.dz.T,
    }
    return jnp.concatenate([values[c] for c in lay.cols] + [p.dy[None, :]], axis=0)


def _within_positions(lay: Layout, p: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the design that the within sums of [x, y] fill, and which of them."""
    k = lay.size
    if "x" in lay.cols:
        return np.r_[np.arange(lay.start["x"], lay.start["x"] + p), k], np.arange(p + 1)
    return np.array([k]), np.array([p])


def _within_matrix(p: Prepared, lay: Layout, w: jax.Array) -> jax.Array:
    """The within sums of products ``w`` (..., k, k) placed on the rows of x and y."""
    rows, src = _within_positions(lay, p.p)
    k = lay.size
    out = jnp.zeros(w.shape[:-2] + (k + 1, k + 1))
    sub = w[..., src[:, None], src[None, :]]
    return out.at[..., rows[:, None], rows[None, :]].set(sub)


def moments(p: Prepared, lay: Layout, w: jax.Array, within: float = 1.0) -> jax.Array:
    """Cross products of the transformed [cols..., y], shape (K + 1, K + 1).

    ``w`` (R,) weights the region means (n_r (1 - theta_r)^2), ``within`` the
    within-region sums (1 for OLS, FE and GLS; 0 for the regression of the means).
    """
    c = _between_columns(p, lay)
    # a broadcast product summed over regions fuses into one loop; a batched
    # (K+1) x R matmul is slower on CPU
    between = jnp.sum(c[:, None, :] * (c * w[None, :])[None, :, :], axis=-1)
    if within == 0.0:
        return between
    return within * _within_matrix(p, lay, p.sums()) + between


def group_moments(p: Prepared, lay: Layout, w: jax.Array, within: float = 1.0) -> jax.Array:
    """The same cross products region by region, shape (R, K + 1, K + 1)."""
    c = _between_columns(p, lay).T  # (R, K + 1)
    between = w[:, None, None] * c[:, :, None] * c[:, None, :]
    return within * _within_matrix(p, lay, p.w) + between


class LeastSquares(NamedTuple):
    coef: jax.Array  # (K,) 0 for an inactive column
    xtx_inv: jax.Array  # (K, K) inverse of the regressors' cross products
    ssr: jax.Array  # residual sum of squares
    logdet: jax.Array  # log det of the (active) regressors' cross products


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


def inv_logdet(a: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Inverse and log determinant of a symmetric positive definite K x K matrix.

    K <= 3 by cofactors; larger K by the sweep operator after scaling to unit diagonal
    (so that columns in very different units do not cost digits). NaN where the
    matrix is not positive definite.
    """
    k = a.shape[-1]
    if k <= 3:
        inv, det = inv_det(a)
        return inv, jnp.where(det > 0, jnp.log(jnp.where(det > 0, det, 1.0)), jnp.nan)
    d = jnp.sqrt(jnp.diagonal(a))
    d = jnp.where(d > 0, d, 1.0)
    scaled = a / (d[:, None] * d[None, :])
    inv, logdet = linalg.inv_logdet(scaled)
    inv = inv / (d[:, None] * d[None, :])
    inv = 0.5 * (inv + inv.T)
    logdet = logdet + 2.0 * jnp.sum(jnp.log(d))
    return inv, logdet


def solve(m: jax.Array, active: jax.Array | None = None) -> LeastSquares:
    """Least squares from the cross-product matrix of [regressors, y].

    ``active`` (K,) bool drops the regressors where it is False (not identified):
    their rows and columns are replaced by those of the identity, so that their
    coefficient is 0 and the rest is the fit without them.
    """
    k = m.shape[-1] - 1
    mzz, mzy, myy = m[:k, :k], m[:k, k], m[k, k]
    if active is not None:
        both = active[:, None] & active[None, :]
        mzz = jnp.where(both, mzz, jnp.eye(k))
        mzy = jnp.where(active, mzy, 0.0)
    inv, logdet = inv_logdet(mzz)
    coef = inv @ mzy
    ssr = jnp.maximum(myy - mzy @ coef, 0.0)
    return LeastSquares(coef, inv, ssr, logdet)


def cluster_meat(gm: jax.Array, coef: jax.Array) -> jax.Array:
    """Sum over regions of the outer products of the region scores, (K, K).

    The score of region r is sum_t z~_t e~_t = M_zy,r - M_zz,r coef.
    """
    k = coef.shape[0]
    scores = gm[:, :k, k] - gm[:, :k, :k] @ coef
    return scores.T @ scores


def cr1_factor(n_obs: jax.Array, n_groups: jax.Array, k: int | jax.Array) -> jax.Array:
    """Stata's CR1 small-sample factor G/(G-1) * (N-1)/(N-K).

    It is linearmodels' ``debiased=True`` (N/(N-K)) times its
    ``group_debias=True`` (G/(G-1) * (N-1)/N).
    """
    return n_groups / (n_groups - 1.0) * (n_obs - 1.0) / (n_obs - k)


def pinv_quadratic(a: jax.Array, b: jax.Array, scale: jax.Array) -> tuple[jax.Array, jax.Array]:
    """b' A^+ b and the rank of A, with A (m, m) judged in the units ``scale`` (m,).

    The pseudo-inverse keeps the eigenvalues of D^-1/2 A D^-1/2 (D = diag(scale))
    above ``WITHIN_TOL``: a column of A that is (nearly) a combination of the
    others, measured against its own size in ``scale``, does not count. This is
    the rank that least squares by ``lstsq`` (linearmodels) finds.
    """
    m = a.shape[-1]
    s = jnp.sqrt(jnp.where(scale > 0, scale, 1.0))
    if m == 1:
        keep = a[0, 0] > WITHIN_TOL * scale[0]
        quad = jnp.where(keep, b[0] ** 2 / jnp.where(keep, a[0, 0], 1.0), 0.0)
        return quad, keep.astype(float)
    lam, vec = linalg.eigh(a / (s[:, None] * s[None, :]))
    keep = lam > WITHIN_TOL
    proj = vec.T @ (b / s)
    quad = jnp.sum(jnp.where(keep, proj**2 / jnp.where(keep, lam, 1.0), 0.0))
    return quad, jnp.sum(keep).astype(float)


def between_ssr(p: Prepared) -> tuple[jax.Array, jax.Array]:
    """Residual sum of squares of the unweighted regression of ybar_r on (1, xbar_r, z_r).

    Returns it with the rank of that regression (1 + p + q, less one for each
    column of region means that is a combination of the others: e.g. 1 when p
    = 1, q = 0 and all the region means of x are equal), as linearmodels'
    ``RandomEffects`` counts it.
    """
    g = jnp.maximum(p.n_groups, 1.0)
    one = p.valid.astype(float)
    cols = jnp.concatenate([p.dx, p.dz], axis=1)  # (R, p + q)
    e = (cols - jnp.sum(cols, axis=0)[None, :] / g) * one[:, None]
    ey = (p.dy - jnp.sum(p.dy) / g) * one
    bmat = e.T @ e
    bvec = e.T @ ey
    byy = jnp.sum(ey * ey)
    # each column's size: its observation-level total variation, per region
    n_obs = jnp.maximum(p.n_obs, 1.0)
    total_z = jnp.sum(p.n[:, None] * p.dz * p.dz, axis=0)
    scale = jnp.concatenate([p.total_xx, total_z]) / n_obs * g
    quad, rank = pinv_quadratic(bmat, bvec, scale)
    return jnp.maximum(byy - quad, 0.0), 1.0 + rank
