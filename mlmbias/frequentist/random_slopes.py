"""Random intercepts and a random slope on the first covariate, by REML (lme4 ``lmer``).

    y_rt = a + beta' x_rt [+ gamma' xbar_r] + delta' z_r + u_r + v_r x0_rt + e_rt,
    (u_r, v_r) ~ N(0, Sigma),  e_rt ~ N(0, s^2),  Sigma unstructured 2 x 2,

as ``lme4::lmer(y ~ x.. [+ xbar..] + z.. + (1 + x0 | g), REML = TRUE)``. The
random slope is on the FIRST within-varying covariate x0 only; the other x (and
the Mundlak terms xbar, and z) have fixed effects only.

- ``rs-reml``: the fixed part y ~ 1 + x + z; reports ("beta", "x{j}") and
  ("beta", "z{j}").
- ``rs-mundlak-reml``: the region means of every x added (as ``mundlak-reml``);
  reports ("contextual", "x{j}") for them as well. An x without within
  variation gives NaN for its beta and contextual effect, as in ``mundlak``.

**From the group statistics.** With Z_r = [1, x0] the design of region r's
random effects and V_r = s^2 (I + Z_r L L' Z_r') its marginal covariance (L the
lower-triangular relative Cholesky factor of Sigma / s^2), the Woodbury identity
and the determinant lemma give

    [X y]' V_r^-1 [X y] = (M_r - B_r' C_r^-1 B_r) / s^2,   C_r = I_2 + L' Z_r'Z_r L,
    log det V_r = n_r log s^2 + log det C_r,               B_r = L' Z_r' [X y],

where M_r is region r's raw cross-product matrix of [X, y]: a function of its n,
means and centred cross products (``_linalg.group_moments``). Each region costs
2 x 2 algebra, O(R) per likelihood. The columns are centred at the grand means
(the shift a constant in any column changes nothing but the origin, see
``groupstats``), and the slope's column is standardised by the total SD s_x of
x0 while optimising: Z_std = [1, (x0 - c) / s_x]. Its covariance Sigma_std
goes back to the raw scale of x0 through Z_std = Z_raw A, A = [[1, -c / s_x],
[0, 1 / s_x]]: Sigma_raw = A Sigma_std A'. The fixed effects, their SEs,
``sigma``, ``sigma_b`` and ``loglik`` do not depend on the location of x0;
``sigma_a`` (the intercept SD at x0 = 0) and ``rho_ab`` do, as in lme4.

**Criterion.** lme4's profiled REML deviance in theta = (l11, l21, l22), the
elements of L in the standardised scale, with beta and s^2 profiled out:

    -2 l_R(theta) = sum_r log det C_r + log det(X' V~^-1 X)
                    + (N - K) (1 + log(2 pi r^2 / (N - K))),

r^2 the penalised weighted residual sum of squares (y - X b)' V~^-1 (y - X b),
V~ = V / s^2; ``loglik`` is -1/2 of it, R's ``logLik(fit)`` of a REML fit (and
statsmodels' REML ``llf``).

**Optimiser** (inside jit, a fixed number of steps). The deviance depends on
theta only through L L', so it is even in l22 and in (l11, l21) jointly: lme4's
bounds l11 >= 0, l22 >= 0 are symmetry planes, and a boundary optimum (l22 = 0:
a rank-one Sigma; l11 = l21 = 0: no intercept variance) is a stationary point
of the unconstrained function. So theta is optimised unconstrained, with
Levenberg-Marquardt steps on the exact gradient and Hessian (autodiff): at each
of ``N_STEPS`` steps the candidates theta - (H + mu I)^-1 g for the damping
values ``MU`` (0 and multiples of |H|_F, only where H + mu I is positive definite)
are evaluated together and the best is kept if it lowers the deviance. It starts
from ``STARTS``, in the standardised scale: lme4's start (1, 0, 1) and two with a
small slope SD (starting at l22 = 0 exactly would leave l22 there: the gradient
vanishes on the symmetry plane). The best of their ends and of theta = 0 (no
region effects) wins, and is reported with l11, l22 >= 0 (lme4's signs). On the
reference panels ten steps reach the optimum to rounding, boundary fits
included (Newton converges to the symmetry plane as to any other stationary
point). Where the intercept variance tends to 0 with Sigma near rank one the
approach is linear (the deviance is flat to fourth order there): 16 steps left
4 of 256 seed replications at R = 10 short of the gradient tolerance, 24 none;
the OPTIMIZER flag catches the rest.

Flags: OPTIMIZER when the final gradient is not below ``GRAD_TOL * N`` (or the
deviance is not finite); BOUNDARY_VARIANCE when Sigma is singular in lme4's
sense, ``isSingular``: l11 or l22 (standardised scale) below ``SINGULAR_TOL``;
SINGLETON_GROUP and NO_WITHIN_VARIATION as in ``random_effects``. Regions with
n = 0 (padding) contribute nothing.

The covariance of the fixed effects is lme4's ``vcov``: s^2 (X' V~^-1 X)^-1 at
the estimates, and the intervals are normal (as ``re-reml``). Diagnostic columns:
``sigma`` (s), ``sigma_a`` (intercept SD), ``sigma_b`` (slope SD), ``rho_ab``
(their correlation; NaN where an SD is 0) and ``loglik``.

Reference: ``tests/frequentist/test_random_slopes.py`` compares both methods
with lme4 1.1 run to rounding-level tolerances (``references/random_slopes.R``).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from mlmbias import flags
from mlmbias.frequentist._common import NORMAL, batch_method, bit, coefficients
from mlmbias.frequentist._linalg import (
    Layout,
    Prepared,
    group_moments,
    inv_det,
    layout,
    prepare,
    solve,
)
from mlmbias.frequentist.mundlak import (
    MUNDLAK_BLOCKS,
    MUNDLAK_COLS,
    _mask_collinear,
    mundlak_active,
)
from mlmbias.frequentist.random_effects import RE_BLOCKS, RE_COLS, n_active
from mlmbias.groupstats import GroupStats

N_STEPS = 24  # Levenberg-Marquardt steps from each start (see the module docstring)
MU = (0.0, 1e-8, 1e-6, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 1e3)  # damping, times |H|_F
# Starts (l11, l21, l22) in the standardised scale: lme4's, and two with a small slope SD.
STARTS = ((1.0, 0.0, 1.0), (0.5, 0.0, 0.1), (2.0, 0.0, 0.3))
# Relative rise of the deviance (rounding) up to which a plain Newton step is still taken.
FTOL = 1e-13
# |d deviance / d theta| at the optimum must be below GRAD_TOL * max(N, 1).
GRAD_TOL = 1e-6
# lme4's isSingular tolerance on the diagonal of theta (here in the standardised scale).
SINGULAR_TOL = 1e-4


class Problem(NamedTuple):
    m: jax.Array  # (R, K + 1, K + 1) raw cross products of [X, y] per region (centred columns)
    iz: tuple[int, int]  # columns of X that form Z: the constant and x0
    scale: jax.Array  # s_x, the total SD of x0 (1 where it is 0)
    dof: jax.Array  # N - K
    active: jax.Array | None


def _relative_factor(theta: jax.Array, scale: jax.Array) -> jax.Array:
    """L in the centred (unstandardised) scale of x0: diag(1, 1/s_x) L_std."""
    lo = jnp.stack([jnp.stack([theta[0], 0.0]), jnp.stack([theta[1], theta[2]])])
    return lo * jnp.stack([1.0, 1.0 / scale])[:, None]


class Fit(NamedTuple):
    deviance: jax.Array
    coef: jax.Array
    xtx_inv: jax.Array  # (X' V~^-1 X)^-1
    r2: jax.Array  # penalised weighted residual sum of squares


def reduced_moments(prob: Problem, theta: jax.Array) -> tuple[jax.Array, jax.Array]:
    """[X y]' V~^-1 [X y] summed over regions, and sum_r log det C_r.

    Written out element by element (2 x 2 algebra on (R,) arrays): smaller
    programs to differentiate twice than batched matrix products.
    """
    i0, i1 = prob.iz
    l00, l10, l11 = theta[0], theta[1] / prob.scale, theta[2] / prob.scale
    r0, r1 = prob.m[:, i0, :], prob.m[:, i1, :]  # (R, K + 1): rows of Z' [X y]
    m00, m01, m11 = r0[:, i0], r0[:, i1], r1[:, i1]
    u00 = l00 * l00 * m00 + 2.0 * l00 * l10 * m01 + l10 * l10 * m11
    u01 = l11 * (l00 * m01 + l10 * m11)
    u11 = l11 * l11 * m11
    det = (1.0 + u00) * (1.0 + u11) - u01 * u01
    b0 = l00 * r0 + l10 * r1  # rows of L' Z' [X y]
    b1 = l11 * r1
    w00, w01, w11 = (1.0 + u11) / det, -u01 / det, (1.0 + u00) / det
    left = jnp.stack([b0, b1], axis=-1)  # (R, K + 1, 2)
    right = jnp.stack(
        [w00[:, None] * b0 + w01[:, None] * b1, w01[:, None] * b0 + w11[:, None] * b1], axis=-1
    )
    cross = jnp.sum(left[:, :, None, :] * right[:, None, :, :], axis=(0, 3))
    return jnp.sum(prob.m, axis=0) - cross, jnp.sum(jnp.log(det))


def evaluate(prob: Problem, theta: jax.Array) -> Fit:
    """The profiled REML deviance at ``theta`` and the GLS fit there."""
    mt, log_det_c = reduced_moments(prob, theta)
    ls = solve(mt, prob.active)
    r2 = ls.ssr
    dev = log_det_c + ls.logdet + prob.dof * (1.0 + jnp.log(2.0 * math.pi * r2 / prob.dof))
    dev = jnp.where(jnp.isfinite(dev) & (r2 > 0), dev, jnp.inf)
    return Fit(dev, ls.coef, ls.xtx_inv, r2)


def _spd_solve(h: jax.Array, g: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(h^-1 g, h positive definite) for a symmetric 3 x 3 ``h``, by cofactors."""
    m2 = h[0, 0] * h[1, 1] - h[0, 1] * h[1, 0]
    inv, det = inv_det(h)
    pd = (h[0, 0] > 0) & (m2 > 0) & (det > 0)
    return inv @ g, pd


def _minimise(prob: Problem, start: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Levenberg-Marquardt from ``start``: (theta, deviance) after ``N_STEPS`` steps."""

    def f(theta):
        return evaluate(prob, theta).deviance

    def grad2(theta):
        g = jax.grad(f)(theta)
        return g, g

    # gradient and Hessian from one forward-over-reverse pass
    hess_grad = jax.jacfwd(grad2, has_aux=True)
    mus = jnp.asarray(MU)

    def step(_, state):
        theta, best = state
        h, g = hess_grad(theta)
        g = jnp.where(jnp.isfinite(g), g, 0.0)
        h = jnp.where(jnp.isfinite(h), h, 0.0)
        norm = jnp.sqrt(jnp.sum(h * h)) + 1e-12

        def candidate(mu):
            d, pd = _spd_solve(h + mu * norm * jnp.eye(3), g)
            cand = theta - d
            val = f(cand)
            return cand, jnp.where(pd & jnp.isfinite(val), val, jnp.inf)

        cands, vals = jax.vmap(candidate)(mus)
        i = jnp.argmin(vals)
        take = vals[i] < best
        # at the optimum the decrease falls below the rounding of the deviance: the
        # plain Newton step (mu = 0) is still taken there, so that theta converges to
        # the precision of the gradient rather than to that of the deviance
        polish = ~take & (vals[0] <= best + FTOL * jnp.maximum(jnp.abs(best), 1.0))
        new = jnp.where(take, cands[i], jnp.where(polish, cands[0], theta))
        return new, jnp.where(take, vals[i], jnp.where(polish, vals[0], best))

    return jax.lax.fori_loop(0, N_STEPS, step, (start, f(start)))


class SlopeFit(NamedTuple):
    coef: jax.Array
    cov: jax.Array  # lme4's vcov
    sigma2: jax.Array
    sigma_a: jax.Array
    sigma_b: jax.Array
    rho: jax.Array
    loglik: jax.Array
    flag: jax.Array


def rs_fit(stats: GroupStats, p: Prepared, lay: Layout, active: jax.Array | None) -> SlopeFit:
    n_obs = jnp.maximum(p.n_obs, 1.0)
    scale = jnp.sqrt(p.total_xx[0] / n_obs)
    scale = jnp.where(scale > 0, scale, 1.0)
    prob = Problem(
        m=group_moments(p, lay, p.n),
        iz=(lay.index("const"), lay.index("x", 0)),
        scale=scale,
        dof=p.n_obs - n_active(lay, active),
        active=active,
    )
    ends, devs = jax.vmap(lambda s: _minimise(prob, s))(jnp.asarray(STARTS))
    zero = evaluate(prob, jnp.zeros(3)).deviance  # Sigma = 0: no region effects at all
    thetas = jnp.concatenate([ends, jnp.zeros((1, 3))])
    all_dev = jnp.concatenate([devs, zero[None]])
    theta = thetas[jnp.argmin(all_dev)]
    # lme4's signs: l11, l22 >= 0 (the deviance is even in l22 and in (l11, l21))
    sign = jnp.where(theta[0] < 0, -1.0, 1.0)
    theta = jnp.stack([sign * theta[0], sign * theta[1], jnp.abs(theta[2])])
    fit = evaluate(prob, theta)
    g = jax.grad(lambda t: evaluate(prob, t).deviance)(theta)

    sigma2 = fit.r2 / prob.dof
    lam = _relative_factor(theta, scale)
    sig_c = sigma2 * lam @ lam.T  # Sigma in the centred scale of x0
    # back to raw x0: Z_c = Z_raw A, A = [[1, -c], [0, 1]], c the centre of x0
    first = jnp.argmax(stats.n > 0)
    centre = stats.origin[first, 0] + jnp.sum(p.n * stats.mean[:, 0]) / n_obs
    a = jnp.array([[1.0, 0.0], [0.0, 1.0]]).at[0, 1].set(-centre)
    sig = a @ sig_c @ a.T
    var_a, var_b = jnp.maximum(sig[0, 0], 0.0), jnp.maximum(sig[1, 1], 0.0)
    denom = jnp.sqrt(var_a * var_b)
    rho = jnp.where(denom > 0, sig[0, 1] / jnp.where(denom > 0, denom, 1.0), jnp.nan)

    singular = (theta[0] < SINGULAR_TOL) | (theta[2] < SINGULAR_TOL)
    not_converged = ~jnp.isfinite(fit.deviance) | ~(jnp.max(jnp.abs(g)) <= GRAD_TOL * n_obs)
    flag = (
        bit(singular, flags.BOUNDARY_VARIANCE)
        | bit(not_converged, flags.OPTIMIZER)
        | bit(p.has_singleton, flags.SINGLETON_GROUP)
        | bit(~p.has_within, flags.NO_WITHIN_VARIATION)
    )
    return SlopeFit(
        fit.coef,
        sigma2 * fit.xtx_inv,
        sigma2,
        jnp.sqrt(var_a),
        jnp.sqrt(var_b),
        rho,
        -0.5 * fit.deviance,
        flag,
    )


def _diagnostics(fit: SlopeFit) -> dict:
    return {
        "sigma": jnp.sqrt(fit.sigma2),
        "sigma_a": fit.sigma_a,
        "sigma_b": fit.sigma_b,
        "rho_ab": fit.rho,
        "loglik": fit.loglik,
    }


def _rs_reml(stats: GroupStats) -> dict:
    """Random intercept and random slope on x0 by REML (lme4 lmer); z intervals."""
    p = prepare(stats)
    lay = layout(RE_COLS, p.p, p.q)
    fit = rs_fit(stats, p, lay, None)
    return coefficients(lay, RE_BLOCKS, fit.coef, fit.cov, NORMAL, fit.flag, **_diagnostics(fit))


def _rs_mundlak_reml(stats: GroupStats) -> dict:
    """Random intercept and slope on x0 plus region means of x, by REML (lme4); z intervals."""
    p = prepare(stats)
    lay = layout(MUNDLAK_COLS, p.p, p.q)
    fit = rs_fit(stats, p, lay, mundlak_active(p, lay))
    coef, cov = _mask_collinear(p, lay, fit.coef, fit.cov)
    return coefficients(lay, MUNDLAK_BLOCKS, coef, cov, NORMAL, fit.flag, **_diagnostics(fit))


rs_reml = batch_method(_rs_reml)
rs_mundlak_reml = batch_method(_rs_mundlak_reml)
