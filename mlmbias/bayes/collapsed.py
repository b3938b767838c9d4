"""Collapsed log densities of the five Gaussian models, from the group statistics alone.

With p within-varying covariates x and q level-2 covariates z the models are

    pooled    y = mu + x'beta + z'delta + e                       (no a_r)
    fe        y = alpha_r + x'beta + e                            (z absorbed by alpha_r)
    re        y = mu + x'beta + z'delta + a_r + e
    mundlak   y = mu + x'beta + xbar_r'gamma + z'delta + a_r + e
    rewb      y = mu + (x - xbar_r)'beta_w + xbar_r'beta_b + z'delta + a_r + e

(contextual effect gamma, or beta_b - beta_w per covariate). There are two
forms of the same algebra:

* the one-covariate form (p = 1, q = 0), described first below: theta has K = 3
  slots and every matrix operation is written out by hand. The seed's reported
  Bayesian estimates come from it and NUTS follows the last bits of the density,
  so it is kept exactly as it was;
* the general form (``GeneralRegionData``, ``GeneralSpec``, ``GeneralClassSums``,
  ``GeneralCentring``, at the end of the module): theta = (theta_0, b (p), g (p),
  d (q)), K = 1 + 2p + q, the region-mean design h_r = (h0, h1 xbar_r, h2 xbar_r,
  h3 z_r) with hcoef = (h0, h1, h2, h3) from the table below and h3 = 1 (0 for
  fe), a dense Cholesky factor of the K x K precision
  (``jnp.linalg.cholesky``, ``solve_triangular``). The size classes still pool
  exactly: given (sigma, sigma_a) the between part is Σ_r lambda(n_r) f_r f_r'
  with f_r = (1, xbar_r - grand mean, z_r - its mean, ybar_r - grand mean), so a
  class keeps Σ f_r f_r' over its regions. The centring is the same (the
  intercept absorbs the grand means of x and z).

:func:`region_data` and :func:`linear_spec` choose the form from the static
shapes (p = 1, q = 0: the one-covariate form; ``general=True`` forces the other,
which the tests compare with it to 1e-10); every other function dispatches on
the type of its arguments.

Every model here is one linear Gaussian random-intercept model,

    y_rt = o + h_r' theta + b (x_rt - xbar_r) + a_r + e_rt,
    a_r ~ N(0, sigma_a^2),  e_rt ~ N(0, sigma^2),  theta ~ N(loc, diag(scale^2)),

with theta = (theta_0, theta_1, theta_2), b = theta_1 the within-region slope,
h_r = hcoef * (1, xbar_r, xbar_r) the design of the region means, and o a known
offset. A model is the numbers of a :class:`LinearSpec`:

=========  ============================  =========  ================================
model      theta                         hcoef      sigma_a
=========  ============================  =========  ================================
pooled     (alpha, beta, -)              (1, 1, 0)  0
fe         (-, beta, -)                  (0, 1, 0)  fixed: the wide prior of alpha_r
re         (mu, beta, -)                 (1, 1, 0)  sampled
mundlak    (mu, beta, gamma)             (1, 1, 1)  sampled
rewb       (mu, beta_w, beta_b)          (1, 0, 1)  sampled
=========  ============================  =========  ================================

("-": an unused slot; its design is 0 and its prior N(0, 1), so its posterior is
its prior and it touches nothing else.) The dummy-variable model's independent
intercepts alpha_r ~ N(alpha_loc, alpha_scale^2) integrate out exactly like
random intercepts of known variance around a known mean, so ``fe`` is the same
form with o = alpha_loc and sigma_a = alpha_scale fixed.

Two levels of collapse:

* :func:`intercept_marginal_loglik` integrates the region intercepts out
  (DESIGN.md, Sherman-Morrison and the determinant lemma). Per region, with
  d_r = sigma^2 + n_r sigma_a^2 and ebar_r = ybar_r - c_r - b xbar_r,

      log p(y_r) = -1/2 [ W_r / sigma^2 + n_r ebar_r^2 / d_r
                          + (n_r - 1) log sigma^2 + log d_r + n_r log 2 pi ],

  where W_r = Syy_r - 2 b Sxy_r + b^2 Sxx_r is the within-region residual sum of
  squares (centred sums). Summed over regions W_r needs only three scalars.
* :func:`coefficient_posterior` also integrates theta out: given (sigma,
  sigma_a) the likelihood is Gaussian in theta and the prior is Gaussian, so
  p(y | sigma, sigma_a) and theta | sigma, sigma_a, y ~ N(m, Lambda^-1) are
  closed forms, a 3 x 3 Cholesky away. NUTS then samples only (log sigma,
  log sigma_a) and theta is drawn exactly afterwards, draw by draw.

The fast forms used by the sampler (:func:`loglik_given_coefficients`,
:func:`coefficient_posterior`) pool regions of equal size (:class:`ClassSums`):
a gradient then costs O(number of distinct region sizes), not O(R). The tests
check every form against the direct multivariate-normal density to 1e-8.

The reported quantities are (mu, beta, contextual) = readout @ theta (general
form: (mu, beta (p), contextual (p), delta (q))): for rewb the contextual
effect is beta_b - beta_w, the quantity Mundlak's gamma is.

Every function here is pure and works under ``jax.vmap``; nothing raises.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mlmbias import linalg
from mlmbias.bayes.priors import Priors
from mlmbias.groupstats import GroupStats

LOG_2PI = math.log(2 * math.pi)
K = 3  # slots of theta


class RegionData(NamedTuple):
    """What the collapsed likelihoods need: (..., R) per region, (...) totals."""

    n: jax.Array
    xbar: jax.Array
    ybar: jax.Array
    sxx_w: jax.Array  # Σ_r Σ_t (x - xbar_r)^2
    sxy_w: jax.Array  # Σ_r Σ_t (x - xbar_r)(y - ybar_r)
    syy_w: jax.Array  # Σ_r Σ_t (y - ybar_r)^2
    x0: jax.Array  # (...) origin of x (GroupStats.origin[..., 0])
    y0: jax.Array  # (...) origin of y
    cx: jax.Array  # (...) grand mean of x over the observations, less x0
    cy: jax.Array  # (...) grand mean of y, less y0
    dx: jax.Array  # xbar_r - x0 - cx (0 for an empty region)
    dy: jax.Array  # ybar_r - y0 - cy


def region_data(stats: GroupStats, general: bool = False) -> RegionData | GeneralRegionData:
    """Region means, their deviations from the grand means, and the pooled
    within-region centred sums, from the (centred) group statistics.

    One covariate x and no z (p = 1, q = 0): a :class:`RegionData`, the form
    written out for that case; otherwise, or with ``general``, a
    :class:`GeneralRegionData`. Decided from the static shapes. p = 0 (no x) is
    a ValueError.
    """
    if stats.p < 1:
        raise ValueError("the collapsed models need at least one within covariate x, got p = 0")
    if general or stats.p != 1 or stats.q != 0:
        return general_region_data(stats)
    n = jnp.asarray(stats.n, float)
    has = n > 0
    mx, my = stats.mean[..., 0], stats.mean[..., 1]
    total = jnp.maximum(jnp.sum(n, axis=-1, keepdims=True), 1.0)
    # grand means relative to the origin first: their differences are exact
    cx = jnp.sum(n * mx, axis=-1, keepdims=True) / total
    cy = jnp.sum(n * my, axis=-1, keepdims=True) / total
    return RegionData(
        n=n,
        xbar=stats.xbar[..., 0],
        ybar=stats.ybar,
        sxx_w=jnp.sum(stats.cross[..., 0, 0], axis=-1),
        sxy_w=jnp.sum(stats.cross[..., 0, 1], axis=-1),
        syy_w=jnp.sum(stats.cross[..., 1, 1], axis=-1),
        x0=stats.origin[..., 0, 0],
        y0=stats.origin[..., 0, 1],
        cx=cx[..., 0],
        cy=cy[..., 0],
        dx=jnp.where(has, mx - cx, 0.0),
        dy=jnp.where(has, my - cy, 0.0),
    )


def _log_det_terms(n: jax.Array, s2: jax.Array, d: jax.Array) -> jax.Array:
    # Σ_r (n_r - 1) log s^2 + log d_r + n_r log 2π; a region with n_r = 0 adds 0.
    return jnp.sum((n - 1.0) * jnp.log(s2) + jnp.log(d) + n * LOG_2PI, axis=-1)


def intercept_marginal_loglik(
    rd: RegionData, c: jax.Array, beta: jax.Array, sigma: jax.Array, sigma_a: jax.Array
) -> jax.Array:
    """log p(y | c, beta, sigma, sigma_a) of one panel, the intercepts a_r integrated out.

    ``c`` (R,) holds each region's intercept apart from a_r (mean intercept and
    any region-level terms); the model is y_rt = c_r + beta x_rt + a_r + e_rt.
    """
    s2 = sigma**2
    d = s2 + rd.n * sigma_a**2
    ebar = rd.ybar - c - beta * rd.xbar
    w = rd.syy_w - 2.0 * beta * rd.sxy_w + beta**2 * rd.sxx_w
    return -0.5 * (w / s2 + jnp.sum(rd.n * ebar**2 / d, axis=-1) + _log_det_terms(rd.n, s2, d))


class LinearSpec(NamedTuple):
    """The numbers that make one of the five models (see the module docstring)."""

    hcoef: jax.Array  # (3,) design of the region means: hcoef * (1, xbar_r, xbar_r)
    offset: jax.Array  # () known part of every intercept
    loc: jax.Array  # (3,) prior means of theta
    scale: jax.Array  # (3,) prior standard deviations of theta
    sa_sampled: jax.Array  # () 1.0 when sigma_a is a parameter, 0.0 when fixed
    sa_fixed: jax.Array  # () sigma_a when not sampled
    sa_scale: jax.Array  # () HalfNormal scale of sigma_a when sampled
    sigma_scale: jax.Array  # () HalfNormal scale of sigma
    readout: jax.Array  # (3, 3) (mu, beta, contextual) = readout @ theta


@dataclass(frozen=True)
class ModelInfo:
    """What a model reports, decided outside jit."""

    name: str
    has_mu: bool
    has_contextual: bool
    has_sigma_a: bool

    @property
    def params(self) -> tuple[str, ...]:
        """The sampled quantities, estimands first: they decide convergence and
        are the ones simulation-based calibration ranks."""
        names = ["beta"]
        if self.has_contextual:
            names.append("contextual")
        if self.has_mu:
            names.append("mu")
        names.append("sigma")
        if self.has_sigma_a:
            names.append("sigma_a")
        return tuple(names)


# What each collapsed model samples and reports (``mlmbias.bayes.models.MODELS``
# holds the observation-level NumPyro functions of the same names).
MODEL_INFO: dict[str, ModelInfo] = {
    "pooled": ModelInfo("pooled", True, False, False),
    "fe": ModelInfo("fe", False, False, False),
    "re": ModelInfo("re", True, False, True),
    "mundlak": ModelInfo("mundlak", True, True, True),
    "rewb": ModelInfo("rewb", True, True, True),
}


def linear_spec(
    model: str, priors: Priors, p: int = 1, q: int = 0, general: bool = False
) -> LinearSpec | GeneralSpec:
    """The :class:`LinearSpec` of ``model`` (a key of ``MODEL_INFO``) under ``priors``;
    a :class:`GeneralSpec` for p within and q level-2 covariates unless p = 1 and
    q = 0 (or with ``general``)."""
    if general or p != 1 or q != 0:
        return general_spec(model, priors, p, q)
    p = priors
    eye = np.eye(K)
    readout = eye.copy()
    sampled, sa_fixed, offset = 1.0, 0.0, 0.0
    loc = [p.mu_loc, p.beta_loc, 0.0]
    scale = [p.mu_scale, p.beta_scale, 1.0]
    if model == "pooled":
        hcoef, sampled = (1, 1, 0), 0.0
    elif model == "fe":
        hcoef, sampled, sa_fixed, offset = (0, 1, 0), 0.0, p.alpha_scale, p.alpha_loc
        loc[0], scale[0] = 0.0, 1.0
    elif model == "re":
        hcoef = (1, 1, 0)
    elif model == "mundlak":
        hcoef = (1, 1, 1)
        loc[2], scale[2] = p.contextual_loc, p.contextual_scale
    elif model == "rewb":
        hcoef = (1, 0, 1)
        loc[2], scale[2] = p.between_loc, p.between_scale
        readout[2] = (0.0, -1.0, 1.0)  # contextual = beta_between - beta_within
    else:
        raise ValueError(f"unknown model {model!r}; known: {', '.join(MODEL_INFO)}")
    return LinearSpec(
        hcoef=jnp.asarray(np.asarray(hcoef, float)),
        offset=jnp.asarray(float(offset)),
        loc=jnp.asarray(np.asarray(loc, float)),
        scale=jnp.asarray(np.asarray(scale, float)),
        sa_sampled=jnp.asarray(sampled),
        sa_fixed=jnp.asarray(float(sa_fixed)),
        sa_scale=jnp.asarray(p.sigma_a_scale),
        sigma_scale=jnp.asarray(p.sigma_scale),
        readout=jnp.asarray(readout),
    )


def design(spec: LinearSpec, rd: RegionData) -> jax.Array:
    """h_r for every region, shape (..., R, 3) (general form: (..., R, K))."""
    if isinstance(spec, GeneralSpec):
        return general_design(spec, rd)
    h = spec.hcoef
    return jnp.stack([h[0] * jnp.ones_like(rd.xbar), h[1] * rd.xbar, h[2] * rd.xbar], axis=-1)


# --- small dense algebra, unrolled: fast and exact under vmap on any backend ---------


def _cholesky(a: list[list[jax.Array]]) -> list[list[jax.Array]]:
    k = len(a)
    low: list[list[jax.Array]] = [[jnp.zeros(()) for _ in range(k)] for _ in range(k)]
    for j in range(k):
        s = a[j][j] - sum((low[j][m] ** 2 for m in range(j)), jnp.zeros(()))
        low[j][j] = jnp.sqrt(s)
        for i in range(j + 1, k):
            t = a[i][j] - sum((low[i][m] * low[j][m] for m in range(j)), jnp.zeros(()))
            low[i][j] = t / low[j][j]
    return low


def _solve_lower(low, b):
    out = []
    for i in range(len(b)):
        t = b[i] - sum((low[i][m] * out[m] for m in range(i)), jnp.zeros(()))
        out.append(t / low[i][i])
    return out


def _solve_upper_t(low, b):
    # solve low' x = b
    k = len(b)
    out = [jnp.zeros(())] * k
    for i in reversed(range(k)):
        t = b[i] - sum((low[m][i] * out[m] for m in range(i + 1, k)), jnp.zeros(()))
        out[i] = t / low[i][i]
    return out


class ClassSums(NamedTuple):
    """Region-level sums pooled over regions of equal size: the between part, compressed.

    Given (sigma, sigma_a), the between-region likelihood weights region r by
    lambda_r = n_r / (sigma^2 + n_r sigma_a^2), which depends on r only through
    n_r. Grouping the regions by n_r into M classes (M = number of distinct sizes,
    about 15 in the seed's design whatever R is) makes every gradient of the
    collapsed density O(M) instead of O(R), exactly. Arrays (..., M) per class;
    an empty class has count 0 and contributes nothing.
    """

    count: jax.Array  # regions in the class
    n: jax.Array  # their common size n_m
    sx: jax.Array  # Σ dx_r  (region means less the grand means, as in RegionData)
    sxx: jax.Array  # Σ dx_r^2
    sy: jax.Array  # Σ dy_r
    syy: jax.Array  # Σ dy_r^2
    sxy: jax.Array  # Σ dx_r dy_r
    sxx_w: jax.Array  # (...) pooled within-region sums, as in RegionData
    sxy_w: jax.Array
    syy_w: jax.Array
    x0: jax.Array  # (...) the grand means the class sums are centred on are
    y0: jax.Array  # x0 + cx and y0 + cy (RegionData)
    cx: jax.Array
    cy: jax.Array


def size_classes(n: np.ndarray) -> tuple[np.ndarray, int]:
    """Class index of every region (rank of n_r among the distinct sizes of its panel).

    Host-side (numpy), outside jit. ``n`` is (rep, R); returns the int32 ids
    (rep, R) and M, the largest number of distinct sizes of any panel.
    """
    n = np.asarray(n)
    ids = np.zeros(n.shape, np.int32)
    m = 1
    for i, row in enumerate(n.reshape(-1, n.shape[-1])):
        uniq, inv = np.unique(row, return_inverse=True)
        ids.reshape(-1, n.shape[-1])[i] = inv
        m = max(m, len(uniq))
    return ids, m


def class_sums(rd: RegionData, ids: jax.Array, num_classes: int) -> ClassSums:
    """Pool one panel's regions into ``num_classes`` size classes (ids from :func:`size_classes`).

    With ``ids = arange(R)`` and ``num_classes = R`` nothing is pooled.
    """
    if isinstance(rd, GeneralRegionData):
        return _general_class_sums(rd, ids, num_classes)

    def seg(v):
        return jax.ops.segment_sum(v, ids, num_segments=num_classes)

    count = seg(jnp.ones_like(rd.n))
    n = seg(rd.n) / jnp.maximum(count, 1.0)
    return ClassSums(
        count=count,
        n=n,
        sx=seg(rd.dx),
        sxx=seg(rd.dx**2),
        sy=seg(rd.dy),
        syy=seg(rd.dy**2),
        sxy=seg(rd.dx * rd.dy),
        sxx_w=rd.sxx_w,
        sxy_w=rd.sxy_w,
        syy_w=rd.syy_w,
        x0=rd.x0,
        y0=rd.y0,
        cx=rd.cx,
        cy=rd.cy,
    )


class Centring(NamedTuple):
    """theta = T theta_c + t, with T the identity but for its first row (1, a1, a2)
    and t = (t0, 0, 0): the coordinates in which the collapsed algebra is done.

    With c_r = o + h_r' theta and xbar_r = cx + dx_r, ybar_r = cy + dy_r, the
    region-mean residual is ybar_r - c_r = dy_r - kappa - (h1 theta_1 + h2 theta_2)
    dx_r, where kappa = o - cy + h0 theta_0 + cx (h1 theta_1 + h2 theta_2). In a model
    with an intercept (h0 = 1) theta_c = (kappa, theta_1, theta_2): every cross
    product is then one of deviations from the grand means, well conditioned
    wherever the data lie (raw coordinates put cx^2 into the precision matrix,
    whose Cholesky factor loses every digit once x is far from 0). A model
    without one (fe) keeps theta_c = theta and the known part o - cy + cx h1
    theta_1 of its intercepts in the design.
    """

    a1: jax.Array
    a2: jax.Array
    t0: jax.Array


def centring(spec: LinearSpec, cs: ClassSums) -> Centring:
    if isinstance(cs, GeneralClassSums):
        return _general_centring(spec, cs)
    e = spec.hcoef[0]
    h = spec.hcoef
    cx = cs.x0 + cs.cx
    return Centring(-e * cx * h[1], -e * cx * h[2], e * (cs.y0 + cs.cy - spec.offset))


def to_theta(c: Centring, theta_c: jax.Array) -> jax.Array:
    if isinstance(c, GeneralCentring):
        return _general_to_theta(c, theta_c)
    first = theta_c[0] + c.a1 * theta_c[1] + c.a2 * theta_c[2] + c.t0
    return theta_c.at[0].set(first)


def to_centred(c: Centring, theta: jax.Array) -> jax.Array:
    if isinstance(c, GeneralCentring):
        return _general_to_centred(c, theta)
    first = theta[0] - c.a1 * theta[1] - c.a2 * theta[2] - c.t0
    return theta.at[0].set(first)


class _Quadratic(NamedTuple):
    """-2 log L = theta_c' P theta_c - 2 theta_c' q + c0 + log_det, given (sigma,
    sigma_a), in the centred coordinates of :class:`Centring`."""

    prec: list[list[jax.Array]]  # P, 3 x 3 nested lists
    lin: list[jax.Array]  # q
    c0: jax.Array
    log_det: jax.Array


def _quadratic(spec: LinearSpec, cs: ClassSums, sigma: jax.Array, sigma_a: jax.Array) -> _Quadratic:
    s2 = sigma**2
    d = s2 + cs.n * sigma_a**2
    lam = cs.n / d
    h = spec.hcoef
    # The centred design of region r is u_r = (h0, h1 v_r, h2 v_r) with
    # v_r = dx_r + s, and its centred response ytil_r = dy_r - m; s = m = 0 in a
    # model with an intercept, s = cx and m = o - cy without one (Centring).
    free = 1.0 - h[0]
    sh = free * (cs.x0 + cs.cx)
    m = free * ((spec.offset - cs.y0) - cs.cy)  # the origin first: exact when o is near it
    # Σ λ_r (1, v, v)(1, v, v)' and Σ λ_r ytil_r (1, v, v), over the size classes.
    l0 = jnp.sum(lam * cs.count)
    sv = cs.sx + sh * cs.count
    l1 = jnp.sum(lam * sv)
    l2 = jnp.sum(lam * (cs.sxx + 2.0 * sh * cs.sx + sh**2 * cs.count))
    q0 = jnp.sum(lam * (cs.sy - m * cs.count))
    q1 = jnp.sum(lam * (cs.sxy + sh * cs.sy - m * sv))
    qq = jnp.sum(lam * (cs.syy - 2.0 * m * cs.sy + m**2 * cs.count))
    base = [[l0, l1, l1], [l1, l2, l2], [l1, l2, l2]]
    qb = [q0, q1, q1]
    prec = [[h[i] * h[j] * base[i][j] for j in range(K)] for i in range(K)]
    lin = [h[i] * qb[i] for i in range(K)]
    prec[1][1] = prec[1][1] + cs.sxx_w / s2  # the within information of b = theta_1
    lin[1] = lin[1] + cs.sxy_w / s2
    log_det = jnp.sum(cs.count * ((cs.n - 1.0) * jnp.log(s2) + jnp.log(d) + cs.n * LOG_2PI))
    return _Quadratic(prec, lin, cs.syy_w / s2 + qq, log_det)


def loglik_given_coefficients(
    spec: LinearSpec, cs: ClassSums, theta: jax.Array, sigma: jax.Array, sigma_a: jax.Array
) -> jax.Array:
    """log p(y | theta, sigma, sigma_a), intercepts integrated out: the fast form of
    :func:`intercept_marginal_loglik` for the models of :class:`LinearSpec`."""
    return _loglik_centred(spec, cs, to_centred(centring(spec, cs), theta), sigma, sigma_a)


def _loglik_centred(spec, cs, theta_c, sigma, sigma_a):
    if isinstance(cs, GeneralClassSums):
        return _general_loglik_centred(spec, cs, theta_c, sigma, sigma_a)
    qd = _quadratic(spec, cs, sigma, sigma_a)
    t = [theta_c[i] for i in range(K)]
    quad = sum(
        (t[i] * qd.prec[i][j] * t[j] for i in range(K) for j in range(K)), jnp.zeros(())
    ) - 2.0 * sum((t[i] * qd.lin[i] for i in range(K)), jnp.zeros(()))
    return -0.5 * (quad + qd.c0 + qd.log_det)


class CoefficientPosterior(NamedTuple):
    """theta | sigma, sigma_a, y ~ N(mean, T (chol chol')^-1 T'), and log p(y | sigma,
    sigma_a); ``chol`` is the lower Cholesky factor of the precision of the centred
    coordinates theta_c of :class:`Centring` (T and t in ``centring``)."""

    log_marginal: jax.Array  # ()
    mean: jax.Array  # (3,) posterior mean of theta
    chol: jax.Array  # (3, 3) lower Cholesky factor of the precision of theta_c
    centring: Centring


def coefficient_posterior(
    spec: LinearSpec, cs: ClassSums, sigma: jax.Array, sigma_a: jax.Array
) -> CoefficientPosterior:
    """Integrate theta out of one panel's likelihood given (sigma, sigma_a).

    In the centred coordinates theta = T theta_c + t the prior N(loc, V0) reads
    precision T' V0^-1 T and linear term T' V0^-1 (loc - t), so with
    Lambda = P + T' V0^-1 T and eta = q + T' V0^-1 (loc - t) (|T| = 1):

        -2 log p(y | sigma, sigma_a) = c0 + (loc - t)' V0^-1 (loc - t) - eta' Lambda^-1 eta
                                       + log|Lambda| + log|V0| + log-det terms.
    """
    if isinstance(cs, GeneralClassSums):
        return _general_posterior(spec, cs, sigma, sigma_a)
    qd = _quadratic(spec, cs, sigma, sigma_a)
    c = centring(spec, cs)
    prec = 1.0 / spec.scale**2
    row0 = [jnp.ones(()), c.a1, c.a2]  # first row of T
    # loc - t, with t0 = e (y0 + cy - o) taken apart so that a prior location
    # near the data's origin cancels exactly
    e = spec.hcoef[0]
    dev0 = (spec.loc[0] - e * cs.y0) - e * (cs.cy - spec.offset)
    dev = spec.loc.at[0].set(dev0)
    lam_m = [
        [
            qd.prec[i][j] + prec[0] * row0[i] * row0[j] + (prec[i] if i == j and i > 0 else 0.0)
            for j in range(K)
        ]
        for i in range(K)
    ]
    eta = [
        qd.lin[i] + row0[i] * prec[0] * dev[0] + (prec[i] * dev[i] if i > 0 else 0.0)
        for i in range(K)
    ]
    low = _cholesky(lam_m)
    u = _solve_lower(low, eta)
    mean_c = jnp.stack(_solve_upper_t(low, u))
    quad = sum((ui**2 for ui in u), jnp.zeros(()))
    log_det_post = 2.0 * sum((jnp.log(low[i][i]) for i in range(K)), jnp.zeros(()))
    prior_terms = jnp.sum(dev**2 * prec) + jnp.sum(jnp.log(spec.scale**2))
    log_marginal = -0.5 * (qd.c0 - quad + prior_terms + log_det_post + qd.log_det)
    chol = jnp.stack([jnp.stack(row) for row in low])
    return CoefficientPosterior(log_marginal, to_theta(c, mean_c), chol, c)


def _transform(c: Centring) -> jax.Array:
    """T as a matrix."""
    z = jnp.zeros(())
    return jnp.stack(
        [
            jnp.stack([jnp.ones(()), c.a1, c.a2]),
            jnp.stack([z, jnp.ones(()), z]),
            jnp.stack([z, z, jnp.ones(())]),
        ]
    )


def coefficient_covariance(post: CoefficientPosterior) -> jax.Array:
    """Posterior covariance of theta, T Lambda^-1 T'."""
    if isinstance(post.centring, GeneralCentring):
        t = _general_transform(post.centring)
    else:
        t = _transform(post.centring)
    return t @ coefficient_covariance_centred(post) @ t.T


def coefficient_covariance_centred(post: CoefficientPosterior) -> jax.Array:
    """Posterior covariance of theta_c, Lambda^-1 (the centred coordinates)."""
    eye = jnp.eye(post.chol.shape[-1])
    if isinstance(post.centring, GeneralCentring):
        return linalg.cho_solve(post.chol, eye)
    return jax.scipy.linalg.cho_solve((post.chol, True), eye)  # the seed's path, as it was


def draw_centred(key: jax.Array, post: CoefficientPosterior) -> jax.Array:
    """One exact draw of theta_c, the centred coordinates of :class:`Centring`."""
    return centred_from_normal(post, jax.random.normal(key, post.mean.shape))


def centred_from_normal(post: CoefficientPosterior, eps: jax.Array) -> jax.Array:
    """theta_c = mean_c + L^-T eps: a draw of theta_c from standard normal ``eps`` (K,)."""
    if isinstance(post.centring, GeneralCentring):
        mean_c = _general_to_centred(post.centring, post.mean)
        return mean_c + linalg.solve_lower_t(post.chol, eps)
    low = [[post.chol[i, j] for j in range(K)] for i in range(K)]
    mean_c = to_centred(post.centring, post.mean)
    return mean_c + jnp.stack(_solve_upper_t(low, [eps[i] for i in range(K)]))


def draw_coefficients(key: jax.Array, post: CoefficientPosterior) -> jax.Array:
    """One exact draw of theta from its Gaussian conditional."""
    return to_theta(post.centring, draw_centred(key, post))


# --- log densities on the unconstrained space the sampler sees -------------------------


def _halfnormal_logpdf(x: jax.Array, scale: jax.Array) -> jax.Array:
    return math.log(2.0) + jax.scipy.stats.norm.logpdf(x, 0.0, scale)


def scales(spec: LinearSpec, u: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(sigma, sigma_a, log prior density) from the unconstrained u = (log sigma, v).

    v is log sigma_a where sigma_a is sampled, else a dummy N(0, 1) coordinate.
    """
    sigma = jnp.exp(u[0])
    ea = jnp.exp(jnp.where(spec.sa_sampled > 0, u[1], 0.0))
    sigma_a = jnp.where(spec.sa_sampled > 0, ea, spec.sa_fixed)
    lp_a = jnp.where(
        spec.sa_sampled > 0,
        _halfnormal_logpdf(ea, spec.sa_scale) + u[1],
        jax.scipy.stats.norm.logpdf(u[1]),
    )
    lp = _halfnormal_logpdf(sigma, spec.sigma_scale) + u[0] + lp_a
    return sigma, sigma_a, lp


def logdensity_scales(u: jax.Array, cs: ClassSums, spec: LinearSpec) -> jax.Array:
    """log p(log sigma, v | y) up to a constant, theta and the intercepts integrated out."""
    sigma, sigma_a, lp = scales(spec, u)
    return lp + coefficient_posterior(spec, cs, sigma, sigma_a).log_marginal


def logdensity_full(z: jax.Array, cs: ClassSums, spec: LinearSpec) -> jax.Array:
    """log p(theta_c, log sigma, v | y) up to a constant, only the intercepts integrated out.

    z = (theta_c, log sigma, v) with theta_c the centred coordinates of
    :class:`Centring` (a unit-determinant linear map of theta, so the density
    needs no Jacobian); :func:`to_theta` maps draws back.
    """
    k = spec.loc.shape[-1]  # K = 3 in the one-covariate form
    theta_c = z[:k]
    theta = to_theta(centring(spec, cs), theta_c)
    sigma, sigma_a, lp = scales(spec, z[k:])
    lp = lp + jnp.sum(jax.scipy.stats.norm.logpdf(theta, spec.loc, spec.scale))
    return lp + _loglik_centred(spec, cs, theta_c, sigma, sigma_a)


def initial_center(rd: RegionData, spec: LinearSpec) -> jax.Array:
    """A data-based centre (log sigma, log sigma_a) for dispersed initial values of
    one panel: the log of the pooled within-region SD of y and the log SD of the
    region means of y (the sampler centres the coefficients itself)."""
    if isinstance(rd, GeneralRegionData):
        syy_w = rd.w[-1, -1]
    else:
        syy_w = rd.syy_w
    n_tot = jnp.sum(rd.n)
    n_reg = jnp.sum(rd.n > 0)
    sd_w = jnp.sqrt(jnp.maximum(syy_w, 1e-12) / jnp.maximum(n_tot - n_reg, 1.0))
    sd_b = jnp.sqrt(jnp.sum(rd.n * rd.dy**2) / jnp.maximum(n_tot, 1.0))
    v = jnp.where(spec.sa_sampled > 0, jnp.log(jnp.maximum(sd_b, 1e-6)), 0.0)
    return jnp.stack([jnp.log(sd_w), v])


# --- the general form: p within covariates x, q level-2 covariates z -------------------
#
# theta = (theta_0, b (p), g (p), d (q)), K = 1 + 2p + q, and
#
#     y_rt = o + h0 theta_0 + b'(x_rt - xbar_r) + h1 b'xbar_r + h2 g'xbar_r + h3 d'z_r
#            + a_r + e_rt,
#
# hcoef = (h0, h1, h2, h3) as in the one-covariate table with h3 = 1 where the
# model has level-2 covariates (h3 = 0 for fe: the intercepts absorb them). The
# one-covariate functions above are this form with p = 1, q = 0 written out by
# hand; they are kept as they are because NUTS follows the last bits of the
# density and the seed's published numbers come from them. tests/bayes check
# that both forms agree to 1e-10 where both apply.


class GeneralRegionData(NamedTuple):
    """:class:`RegionData` for p covariates x and q level-2 covariates z.

    (..., R) per region, (...) totals; the region means less the grand means
    (of the observations; z weighted by the observations too), 0 for an empty
    region, and the pooled within-region sums of products of [x_1..x_p, y].
    """

    n: jax.Array  # (..., R)
    dx: jax.Array  # (..., R, p) xbar_r - x0 - cx
    dz: jax.Array  # (..., R, q) z_r - z0 - cz
    dy: jax.Array  # (..., R) ybar_r - y0 - cy
    w: jax.Array  # (..., p + 1, p + 1) Σ_r Σ_t (v - vbar_r)(v - vbar_r)', v = [x, y]
    x0: jax.Array  # (..., p) origin of x
    y0: jax.Array  # (...) origin of y
    z0: jax.Array  # (..., q) origin of z
    cx: jax.Array  # (..., p) grand mean of x less x0
    cy: jax.Array  # (...) grand mean of y less y0
    cz: jax.Array  # (..., q) observation-weighted mean of z less z0


def general_region_data(stats: GroupStats) -> GeneralRegionData:
    """:class:`GeneralRegionData` from the (centred) group statistics, any p >= 1, q >= 0."""
    p = stats.p
    n = jnp.asarray(stats.n, float)
    has = (n > 0)[..., None]
    total = jnp.maximum(jnp.sum(n, axis=-1), 1.0)[..., None]
    c = jnp.sum(n[..., None] * stats.mean, axis=-2) / total  # (..., k)
    cz = jnp.sum(n[..., None] * stats.z, axis=-2) / total  # (..., q)
    d = jnp.where(has, stats.mean - c[..., None, :], 0.0)
    return GeneralRegionData(
        n=n,
        dx=d[..., :p],
        dz=jnp.where(has, stats.z - cz[..., None, :], 0.0),
        dy=d[..., p],
        w=jnp.sum(jnp.where(has[..., None], stats.cross, 0.0), axis=-3),
        x0=stats.origin[..., 0, :p],
        y0=stats.origin[..., 0, p],
        z0=stats.z_origin[..., 0, :],
        cx=c[..., :p],
        cy=c[..., p],
        cz=cz,
    )


class GeneralSpec(NamedTuple):
    """:class:`LinearSpec` of the general form; K = 1 + 2p + q slots of theta.

    p and q are read from the shapes of the data, never from here.
    """

    hcoef: jax.Array  # (4,) (h0, h1, h2, h3): intercept, b, g and d in the region means
    offset: jax.Array
    loc: jax.Array  # (K,)
    scale: jax.Array  # (K,)
    sa_sampled: jax.Array
    sa_fixed: jax.Array
    sa_scale: jax.Array
    sigma_scale: jax.Array
    readout: jax.Array  # (K, K) (mu, beta (p), contextual (p), delta (q)) = readout @ theta


def general_spec(model: str, priors: Priors, p: int, q: int) -> GeneralSpec:
    """The :class:`GeneralSpec` of ``model`` for p covariates x and q level-2 covariates z.

    Every slope has the prior of today's one-covariate slopes: b_j and d_k the
    beta prior, g_j the contextual (mundlak) or between (rewb) prior; an unused
    slot (g in pooled, fe and re; theta_0 and d in fe) N(0, 1) with design 0.
    """
    pr = priors
    k = 1 + 2 * p + q
    readout = np.eye(k)
    sampled, sa_fixed, offset = 1.0, 0.0, 0.0
    loc = np.concatenate(
        [[pr.mu_loc], np.full(p, pr.beta_loc), np.zeros(p), np.full(q, pr.beta_loc)]
    )
    scale = np.concatenate(
        [[pr.mu_scale], np.full(p, pr.beta_scale), np.ones(p), np.full(q, pr.beta_scale)]
    )
    gs = slice(1 + p, 1 + 2 * p)
    if model == "pooled":
        hcoef, sampled = (1, 1, 0, 1), 0.0
    elif model == "fe":
        hcoef, sampled, sa_fixed, offset = (0, 1, 0, 0), 0.0, pr.alpha_scale, pr.alpha_loc
        loc[0], scale[0] = 0.0, 1.0
        loc[1 + 2 * p :], scale[1 + 2 * p :] = 0.0, 1.0
    elif model == "re":
        hcoef = (1, 1, 0, 1)
    elif model == "mundlak":
        hcoef = (1, 1, 1, 1)
        loc[gs], scale[gs] = pr.contextual_loc, pr.contextual_scale
    elif model == "rewb":
        hcoef = (1, 0, 1, 1)
        loc[gs], scale[gs] = pr.between_loc, pr.between_scale
        for j in range(p):  # contextual_j = beta_between_j - beta_within_j
            readout[1 + p + j, 1 + j] = -1.0
    else:
        raise ValueError(f"unknown model {model!r}; known: {', '.join(MODEL_INFO)}")
    return GeneralSpec(
        hcoef=jnp.asarray(np.asarray(hcoef, float)),
        offset=jnp.asarray(float(offset)),
        loc=jnp.asarray(loc),
        scale=jnp.asarray(scale),
        sa_sampled=jnp.asarray(sampled),
        sa_fixed=jnp.asarray(float(sa_fixed)),
        sa_scale=jnp.asarray(pr.sigma_a_scale),
        sigma_scale=jnp.asarray(pr.sigma_scale),
        readout=jnp.asarray(readout),
    )


class GeneralClassSums(NamedTuple):
    """:class:`ClassSums` of the general form: per size class m the sum over its
    regions of f_r f_r', f_r = (1, dx_r, dz_r, dy_r) of length F = p + q + 2."""

    count: jax.Array  # (M,)
    n: jax.Array  # (M,)
    ff: jax.Array  # (M, F, F)
    w: jax.Array  # (p + 1, p + 1) pooled within sums
    x0: jax.Array
    y0: jax.Array
    z0: jax.Array
    cx: jax.Array
    cy: jax.Array
    cz: jax.Array


def _general_class_sums(rd: GeneralRegionData, ids: jax.Array, num_classes: int):
    count = jax.ops.segment_sum(jnp.ones_like(rd.n), ids, num_segments=num_classes)
    n = jax.ops.segment_sum(rd.n, ids, num_segments=num_classes) / jnp.maximum(count, 1.0)
    f = jnp.concatenate([jnp.ones_like(rd.n)[:, None], rd.dx, rd.dz, rd.dy[:, None]], axis=-1)
    ff = jax.ops.segment_sum(f[:, :, None] * f[:, None, :], ids, num_segments=num_classes)
    return GeneralClassSums(count, n, ff, rd.w, rd.x0, rd.y0, rd.z0, rd.cx, rd.cy, rd.cz)


def _dims(cs: GeneralClassSums) -> tuple[int, int]:
    p = cs.w.shape[-1] - 1
    return p, cs.ff.shape[-1] - p - 2


class GeneralCentring(NamedTuple):
    """:class:`Centring` of the general form: theta_0 = theta_c0 + a' theta_c[1:] + t0."""

    a: jax.Array  # (K - 1,)
    t0: jax.Array


def _general_centring(spec: GeneralSpec, cs: GeneralClassSums) -> GeneralCentring:
    e, h1, h2, h3 = (spec.hcoef[i] for i in range(4))
    cx = cs.x0 + cs.cx
    cz = cs.z0 + cs.cz
    a = -e * jnp.concatenate([cx * h1, cx * h2, cz * h3])
    return GeneralCentring(a, e * (cs.y0 + cs.cy - spec.offset))


def _general_selector(spec: GeneralSpec, p: int, q: int) -> jax.Array:
    """E (K, 1 + p + q): theta's centred design u_r = E (1, v_r, dz_r)."""
    k, f = 1 + 2 * p + q, 1 + p + q
    parts = np.zeros((4, k, f))
    parts[0, 0, 0] = 1.0
    for j in range(p):
        parts[1, 1 + j, 1 + j] = 1.0
        parts[2, 1 + p + j, 1 + j] = 1.0
    for j in range(q):
        parts[3, 1 + 2 * p + j, 1 + p + j] = 1.0
    return jnp.tensordot(spec.hcoef, jnp.asarray(parts), axes=1)


def _general_quadratic(spec, cs, sigma, sigma_a) -> _Quadratic:
    p, q = _dims(cs)
    f = p + q + 2
    s2 = sigma**2
    d = s2 + cs.n * sigma_a**2
    lam = cs.n / d
    b = jnp.tensordot(lam, cs.ff, axes=1)  # Σ_m λ_m Σ_r f_r f_r'
    # (1, v, dz, ytil) = A f with v = dx + s, ytil = dy - m: s = m = 0 with an
    # intercept, s = cx and m = o - cy without one (as in the one-covariate form)
    free = 1.0 - spec.hcoef[0]
    sh = free * (cs.x0 + cs.cx)
    m = free * ((spec.offset - cs.y0) - cs.cy)
    col = jnp.concatenate([jnp.zeros(1), sh, jnp.zeros(q), -m[None]])
    amat = jnp.eye(f).at[:, 0].add(col)
    b = amat @ b @ amat.T
    sel = _general_selector(spec, p, q)
    prec = sel @ b[:-1, :-1] @ sel.T
    lin = sel @ b[:-1, -1]
    prec = prec.at[1 : 1 + p, 1 : 1 + p].add(cs.w[:p, :p] / s2)  # within information of b
    lin = lin.at[1 : 1 + p].add(cs.w[:p, p] / s2)
    log_det = jnp.sum(cs.count * ((cs.n - 1.0) * jnp.log(s2) + jnp.log(d) + cs.n * LOG_2PI))
    return _Quadratic(prec, lin, cs.w[p, p] / s2 + b[-1, -1], log_det)


def _general_loglik_centred(spec, cs, theta_c, sigma, sigma_a):
    qd = _general_quadratic(spec, cs, sigma, sigma_a)
    quad = theta_c @ qd.prec @ theta_c - 2.0 * theta_c @ qd.lin
    return -0.5 * (quad + qd.c0 + qd.log_det)


def _general_posterior(spec, cs, sigma, sigma_a) -> CoefficientPosterior:
    qd = _general_quadratic(spec, cs, sigma, sigma_a)
    c = _general_centring(spec, cs)
    prec = 1.0 / spec.scale**2
    row0 = jnp.concatenate([jnp.ones(1), c.a])
    e = spec.hcoef[0]
    dev0 = (spec.loc[0] - e * cs.y0) - e * (cs.cy - spec.offset)
    dev = spec.loc.at[0].set(dev0)
    rest = prec.at[0].set(0.0)
    lam_m = qd.prec + prec[0] * jnp.outer(row0, row0) + jnp.diag(rest)
    eta = qd.lin + row0 * (prec[0] * dev0) + rest * dev
    low = linalg.cholesky(lam_m)  # plain JAX: batched CPU LAPACK can deadlock (mlmbias.linalg)
    u = linalg.solve_lower(low, eta)
    mean_c = linalg.solve_lower_t(low, u)
    log_det_post = 2.0 * jnp.sum(jnp.log(jnp.diagonal(low)))
    prior_terms = jnp.sum(dev**2 * prec) + jnp.sum(jnp.log(spec.scale**2))
    log_marginal = -0.5 * (qd.c0 - u @ u + prior_terms + log_det_post + qd.log_det)
    return CoefficientPosterior(log_marginal, _general_to_theta(c, mean_c), low, c)


def _general_to_theta(c: GeneralCentring, theta_c: jax.Array) -> jax.Array:
    return theta_c.at[0].set(theta_c[0] + c.a @ theta_c[1:] + c.t0)


def _general_to_centred(c: GeneralCentring, theta: jax.Array) -> jax.Array:
    return theta.at[0].set(theta[0] - c.a @ theta[1:] - c.t0)


def _general_transform(c: GeneralCentring) -> jax.Array:
    k = c.a.shape[-1] + 1
    return jnp.eye(k).at[0, 1:].set(c.a)


def general_design(spec: GeneralSpec, rd: GeneralRegionData) -> jax.Array:
    """h_r for every region in raw coordinates, (..., R, K): (h0, h1 xbar_r, h2 xbar_r, h3 z_r)."""
    h = spec.hcoef
    xbar = rd.x0[..., None, :] + rd.cx[..., None, :] + rd.dx
    z = rd.z0[..., None, :] + rd.cz[..., None, :] + rd.dz
    one = h[0] * jnp.ones_like(rd.n)[..., None]
    return jnp.concatenate([one, h[1] * xbar, h[2] * xbar, h[3] * z], axis=-1)
