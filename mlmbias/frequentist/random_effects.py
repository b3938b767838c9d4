"""Random-intercept models: Swamy-Arora FGLS, REML and ML.

    y_rt = a + beta' x_rt [+ gamma' xbar_r] + delta' z_r + u_r + e_rt,
    u_r ~ N(0, s_a^2), e_rt ~ N(0, s^2)

with p within-varying covariates x and q group-level covariates z (K = 1 + p + q
regressors; 1 + 2p + q in the Mundlak model).

With psi = s_a^2 / s^2, GLS is OLS after quasi-demeaning, theta_r = 1 -
sqrt(1 / (1 + n_r psi)), so its cross products are those of ``_linalg`` with
region weights w_r = n_r / (1 + n_r psi): O(R) per replication.

``re-fgls`` (Swamy-Arora, as linearmodels 7.1 ``RandomEffects`` with its
defaults ``small_sample=False``, ``debiased=True``):

- s^2 = within SSR / (N - G - k_w), the within regression of y on the x,
  k_w the rank of the within-varying regressors (p, less each x that does not
  vary within regions);
- s_a^2 = max(0, SSR_b / (G - k_b) - s^2 / T), SSR_b from the unweighted
  regression of the region means of all regressors, (1, xbar_r, z_r), k_b its
  rank (1 + p + q; xbar_r in the Mundlak model repeats the means of x), T the
  harmonic mean of the n_r. A raw value <= 0 is truncated at 0 and flagged
  BOUNDARY_VARIANCE;
- the covariance is s~^2 (Z~'Z~)^-1 with s~^2 = SSR~ / (N - K) of the
  quasi-demeaned regression, and the interval is t(N - K): linearmodels uses t
  when ``debiased=True``, its default (Stata's ``xtreg, re`` uses z).

``re-reml`` and ``re-ml`` (as statsmodels ``MixedLM`` and lme4 ``lmer``): the
variance ratio psi is profiled out. The profile log-likelihood in tau = log psi is
maximised inside jit in a fixed number of steps: a grid of ``N_GRID`` points on
[``TAU_LO``, ``TAU_HI``], golden-section search in the cell pair around the
best point, then Newton steps on the exact derivatives (autodiff), each kept
only if it raises the likelihood. psi = 0 is compared as well; when it is the
maximum the between variance is at the boundary (flag BOUNDARY_VARIANCE).
OPTIMIZER is set when the final derivative is not below tolerance or the
optimum sits at the upper end of the search range. With sigma^2 = SSR / (N - K)
(REML) or SSR / N (ML), the reported components are ``sigma`` and ``sigma_a``
(standard deviations), and the covariance of the fixed effects is lme4's
``vcov``: sigma^2 (X' V^-1 X)^-1 at the estimates, with z intervals. This is the
one documented convention that differs from statsmodels, whose ``bse_fe``
inverts the full observed information and so couples the fixed effects with the
variance ratio: the two agree where beta hardly moves with psi (the Mundlak
model, where beta is the within estimate for every psi) and differ where it
moves a lot (the random-intercept model under confounding: about 15% at R = 12).
The log-likelihood (``loglik``) uses statsmodels' constants, so it can be
compared with ``MixedLMResults.llf``.

``re-fgls``, ``re-reml`` and ``re-ml`` report ("beta", "x{j}") and ("beta", "z{j}").
Every method here also sets SINGLETON_GROUP (a one-month region) and
NO_WITHIN_VARIATION (some x does not vary within regions; its beta is then
identified by the between variation only).
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
    LeastSquares,
    Prepared,
    between_ssr,
    layout,
    moments,
    pinv_quadratic,
    prepare,
    solve,
)
from mlmbias.groupstats import GroupStats

# Search range of tau = log(s_a^2 / s^2) and the fixed numbers of steps.
TAU_LO = -20.0
TAU_HI = 25.0
N_GRID = 31
GOLDEN_STEPS = 24
NEWTON_STEPS = 3
# |d loglik / d tau| at an interior optimum must be below GRAD_TOL * max(N, 1).
GRAD_TOL = 1e-6

RE_COLS = ("const", "x", "z")
RE_BLOCKS = (("x", "beta"), ("z", "beta"))


class SwamyArora(NamedTuple):
    sigma2: jax.Array  # idiosyncratic variance s^2
    sigma2_a: jax.Array  # between-region variance s_a^2, truncated at 0
    boundary: jax.Array  # the raw s_a^2 was <= 0


def swamy_arora(p: Prepared) -> SwamyArora:
    """Variance components as linearmodels' RandomEffects estimates them."""
    k = p.p
    s = p.sums()
    quad, rank_w = pinv_quadratic(s[:k, :k], s[:k, k], p.total_xx)
    ssr_w = s[k, k] - quad
    df_w = p.n_obs - p.n_groups - rank_w
    sigma2 = jnp.where(df_w > 0, jnp.maximum(ssr_w, 0.0) / jnp.where(df_w > 0, df_w, 1.0), jnp.nan)
    ssr_b, rank_b = between_ssr(p)
    df_b = p.n_groups - rank_b
    inv_n = jnp.where(p.valid, 1.0 / jnp.where(p.valid, p.n, 1.0), 0.0)
    t_bar = p.n_groups / jnp.sum(inv_n)
    raw = jnp.where(df_b > 0, ssr_b / jnp.where(df_b > 0, df_b, 1.0), jnp.nan) - sigma2 / t_bar
    return SwamyArora(sigma2, jnp.maximum(raw, 0.0), raw <= 0)


def region_weights(p: Prepared, psi: jax.Array) -> jax.Array:
    """w_r = n_r (1 - theta_r)^2 = n_r / (1 + n_r psi); 0 for empty regions."""
    return jnp.where(p.valid, p.n / (1.0 + p.n * psi), 0.0)


def n_active(lay: Layout, active: jax.Array | None) -> jax.Array | int:
    """Number of regressors fitted (those ``active``, or all)."""
    return lay.size if active is None else jnp.sum(active).astype(float)


def gls(p: Prepared, lay: Layout, psi: jax.Array, active: jax.Array | None = None) -> LeastSquares:
    return solve(moments(p, lay, region_weights(p, psi)), active)


class FGLS(NamedTuple):
    coef: jax.Array
    cov: jax.Array  # SSR~ / (N - K) (Z~'Z~)^-1
    xtx_inv: jax.Array  # (Z~'Z~)^-1
    s2: jax.Array  # SSR~ / (N - K), the disturbance variance of the covariance
    df: jax.Array
    psi: jax.Array
    components: SwamyArora
    flag: jax.Array


def fgls(p: Prepared, lay: Layout, active: jax.Array | None = None) -> FGLS:
    """Swamy-Arora FGLS of y on the columns of ``lay`` with linearmodels' covariance."""
    vc = swamy_arora(p)
    psi = vc.sigma2_a / vc.sigma2
    ls = gls(p, lay, psi, active)
    df = p.n_obs - n_active(lay, active)
    s2 = ls.ssr / df
    flag = (
        bit(p.has_singleton, flags.SINGLETON_GROUP)
        | bit(~p.has_within, flags.NO_WITHIN_VARIATION)
        | bit(vc.boundary, flags.BOUNDARY_VARIANCE)
    )
    return FGLS(ls.coef, s2 * ls.xtx_inv, ls.xtx_inv, s2, df, psi, vc, flag)


def profile_loglik(
    p: Prepared, lay: Layout, psi: jax.Array, reml: bool, active: jax.Array | None = None
) -> jax.Array:
    """Log-likelihood with beta and s^2 profiled out, at variance ratio ``psi``.

    ML:   -N/2 (log(2 pi SSR/N) + 1) - 1/2 sum_r log(1 + n_r psi)
    REML: -(N-K)/2 (log(2 pi SSR/(N-K)) + 1) - 1/2 sum_r log(1 + n_r psi)
          - 1/2 log det(X' V^-1 X),  V = I + psi Z Z' (statsmodels' constants).
    """
    ls = gls(p, lay, psi, active)
    log_det_v = jnp.sum(jnp.where(p.valid, jnp.log1p(p.n * psi), 0.0))
    if reml:
        m = p.n_obs - n_active(lay, active)
        return (
            -0.5 * m * (jnp.log(2 * math.pi * ls.ssr / m) + 1.0) - 0.5 * log_det_v - 0.5 * ls.logdet
        )
    m = p.n_obs
    return -0.5 * m * (jnp.log(2 * math.pi * ls.ssr / m) + 1.0) - 0.5 * log_det_v


class Profile(NamedTuple):
    psi: jax.Array
    loglik: jax.Array
    grad: jax.Array  # d loglik / d log psi at the optimum (0 at the boundary)
    flag: jax.Array


def maximise_profile(
    p: Prepared, lay: Layout, reml: bool, active: jax.Array | None = None
) -> Profile:
    """Maximise the profile log-likelihood over psi in a fixed number of steps."""

    def f(tau):
        v = profile_loglik(p, lay, jnp.exp(tau), reml, active)
        return jnp.where(jnp.isnan(v), -jnp.inf, v)

    grid = jnp.linspace(TAU_LO, TAU_HI, N_GRID)
    step = (TAU_HI - TAU_LO) / (N_GRID - 1)
    values = jax.lax.map(f, grid)
    i = jnp.argmax(values)
    a = grid[jnp.maximum(i - 1, 0)]
    b = grid[jnp.minimum(i + 1, N_GRID - 1)]

    # Golden-section search for the maximum on [a, b]
    r = (math.sqrt(5.0) - 1.0) / 2.0
    c, d = b - r * (b - a), a + r * (b - a)
    state = (a, b, c, d, f(c), f(d))

    def golden(_, s):
        a, b, c, d, fc, fd = s
        left = fc >= fd  # the maximum lies in [a, d]
        a2 = jnp.where(left, a, c)
        b2 = jnp.where(left, d, b)
        new = jnp.where(left, b2 - r * (b2 - a2), a2 + r * (b2 - a2))
        fn = f(new)
        c2 = jnp.where(left, new, d)
        d2 = jnp.where(left, c, new)
        fc2 = jnp.where(left, fn, fd)
        fd2 = jnp.where(left, fc, fn)
        return a2, b2, c2, d2, fc2, fd2

    a, b, c, d, fc, fd = jax.lax.fori_loop(0, GOLDEN_STEPS, golden, state)
    tau = jnp.where(fc >= fd, c, d)
    best = jnp.maximum(fc, fd)
    tau = jnp.where(values[i] > best, grid[i], tau)
    best = jnp.maximum(values[i], best)

    # Newton polish on the exact derivatives, kept only where it does not lose
    def df(tau):  # forward mode: one scalar input, cheap to compile and run
        return jax.jvp(f, (tau,), (jnp.ones_like(tau),))[1]

    def d2f(tau):
        return jax.jvp(df, (tau,), (jnp.ones_like(tau),))[1]

    def newton(_, s):
        tau, best = s
        g, h = df(tau), d2f(tau)
        cand = jnp.clip(tau - g / jnp.where(h < 0, h, -1.0), TAU_LO, TAU_HI)
        fcand = f(cand)
        take = (h < 0) & jnp.isfinite(fcand) & (fcand >= best)
        return jnp.where(take, cand, tau), jnp.where(take, fcand, best)

    tau, best = jax.lax.fori_loop(0, NEWTON_STEPS, newton, (tau, best))
    grad = df(tau)

    ll0 = profile_loglik(p, lay, jnp.asarray(0.0), reml, active)
    at_zero = jnp.isfinite(ll0) & (ll0 >= best)
    at_top = tau >= TAU_HI - step
    not_converged = ~at_zero & (
        at_top | ~jnp.isfinite(grad) | (jnp.abs(grad) > GRAD_TOL * jnp.maximum(p.n_obs, 1.0))
    )
    flag = bit(at_zero, flags.BOUNDARY_VARIANCE) | bit(not_converged, flags.OPTIMIZER)
    return Profile(
        psi=jnp.where(at_zero, 0.0, jnp.exp(tau)),
        loglik=jnp.where(at_zero, ll0, best),
        grad=jnp.where(at_zero, 0.0, grad),
        flag=flag,
    )


class Likelihood(NamedTuple):
    coef: jax.Array
    cov: jax.Array  # lme4's vcov: sigma^2 (X' V^-1 X)^-1
    sigma2: jax.Array
    sigma2_a: jax.Array
    loglik: jax.Array
    flag: jax.Array
    psi: jax.Array  # the variance ratio s_a^2 / s^2 at the optimum (exactly 0 at the boundary)


def likelihood_fit(
    p: Prepared, lay: Layout, reml: bool, active: jax.Array | None = None
) -> Likelihood:
    prof = maximise_profile(p, lay, reml, active)
    ls = gls(p, lay, prof.psi, active)
    dof = p.n_obs - n_active(lay, active) if reml else p.n_obs
    sigma2 = ls.ssr / dof
    flag = (
        prof.flag
        | bit(p.has_singleton, flags.SINGLETON_GROUP)
        | bit(~p.has_within, flags.NO_WITHIN_VARIATION)
    )
    return Likelihood(
        ls.coef, sigma2 * ls.xtx_inv, sigma2, prof.psi * sigma2, prof.loglik, flag, prof.psi
    )


def _re_fgls(stats: GroupStats) -> dict:
    """Swamy-Arora random intercepts (linearmodels RandomEffects); t(N - K) intervals."""
    p = prepare(stats)
    lay = layout(RE_COLS, p.p, p.q)
    fit = fgls(p, lay)
    return coefficients(
        lay,
        RE_BLOCKS,
        fit.coef,
        fit.cov,
        fit.df,
        fit.flag,
        df=fit.df,
        sigma=jnp.sqrt(fit.components.sigma2),
        sigma_a=jnp.sqrt(fit.components.sigma2_a),
    )


def _likelihood_core(reml: bool):
    def core(stats: GroupStats) -> dict:
        p = prepare(stats)
        lay = layout(RE_COLS, p.p, p.q)
        fit = likelihood_fit(p, lay, reml)
        return coefficients(
            lay,
            RE_BLOCKS,
            fit.coef,
            fit.cov,
            NORMAL,
            fit.flag,
            sigma=jnp.sqrt(fit.sigma2),
            sigma_a=jnp.sqrt(fit.sigma2_a),
            loglik=fit.loglik,
        )

    core.__doc__ = (
        f"Random intercepts by {'REML' if reml else 'ML'} (statsmodels MixedLM, lme4 vcov); "
        "z intervals."
    )
    return core


re_fgls = batch_method(_re_fgls)
re_reml = batch_method(_likelihood_core(reml=True))
re_ml = batch_method(_likelihood_core(reml=False))
