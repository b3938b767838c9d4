"""Bayesian random-slope models ``bayes-rs`` and ``bayes-rs-mundlak``, collapsed.

Model. With p within-varying covariates x_1..x_p (x0 the first) and q level-2
covariates z, for observation i of group j,

    rs          y_ij = mu + x_ij'beta               + z_j'delta + u0_j + u1_j x0_ij + e_ij
    rs-mundlak  y_ij = mu + x_ij'beta + xbar_j'gamma + z_j'delta + u0_j + u1_j x0_ij + e_ij

with e_ij ~ N(0, sigma^2) and (u0_j, u1_j) ~ N(0, Sigma), Sigma = diag(sigma_a,
sigma_b) R diag(sigma_a, sigma_b), R the 2 x 2 correlation matrix of correlation
rho_ab: a random intercept and a random slope on the first within covariate, as
lme4's ``(1 + x0 | g)`` (the frequentist ``rs-reml`` uses the same convention).
The model is stated on the user's x scale: sigma_a is the SD of the group
intercepts at x0 = 0, and the priors (:mod:`mlmbias.bayes.priors`) are

    mu, beta_j, delta_k ~ the mu / beta priors; gamma_j ~ the contextual prior
    sigma ~ HalfNormal(sigma_scale), sigma_a ~ HalfNormal(sigma_a_scale),
    sigma_b ~ HalfNormal(sigma_b_scale)
    rho_ab ~ LKJ(lkj_eta) on the 2 x 2 correlation, i.e. (rho_ab + 1) / 2 ~ Beta(eta, eta)

Collapse. Everything linear is integrated out exactly: the group effects and the
coefficients theta = (mu, beta (p), gamma (p, rs-mundlak only), delta (q)). The
sampler (NUTS or ChEES) sees only four unconstrained scales,

    u = (log sigma, log sigma_c, log sigma_b, atanh rho_c),

where (sigma_c, rho_c) are the intercept SD and the intercept-slope correlation
of the group effects at x0 = x_c, the mean of x0 over the observations
(Sigma_c = A_c Sigma A_c', A_c = [[1, x_c], [0, 1]]). Where x0 = 0 lies far from
the data, sigma_a and rho_ab on the user's scale are extrapolations, strongly
dependent on sigma_b; sigma_c and rho_c are what the data inform. The density is
the user's prior on (sigma_a, sigma_b, rho_ab) carried over exactly: the map
Sigma_c -> Sigma is linear in the entries with unit determinant, so the Jacobian
of (sigma_c, sigma_b, rho_c) -> (sigma_a, sigma_b, rho_ab) is sigma_c^2 /
sigma_a^2; with those of the log and atanh maps (sigma, sigma_c, sigma_b, 1 -
rho_c^2) it is in :func:`scales`, which also reports the user's sigma_a and
rho_ab per draw. theta is drawn afterwards, draw by draw,
from its exact Gaussian conditional given the draw's scales (as the collapsed
random-intercept models do: collapse = "coefficients"; the collapse option's
"intercepts" form does not exist here and is a ConfigError).

The algebra. The group statistics are relative to the replication's origin
(its first observation: x - o_x, y - o_y, z - o_z), where their differences are
exact. The coefficients are re-expressed there too: theta~ = T theta - o_y e_0
with T = I + e_0 a', a = (o_x, o_x (rs-mundlak), o_z), a unit-determinant map
(the intercept absorbs the origins). The random effects are expressed per group
around its own mean of x0, on the user's scale:

    u0_j + u1_j x0 = (u0_j + u1_j xbar0_j) + u1_j (x0 - xbar0_j),

so group j's effects in these coordinates have covariance A_j Sigma A_j' =
A_j' Sigma_c A_j'', A_j = [[1, xbar0_j], [0, 1]], A_j' = [[1, xbar0_j - x_c], [0,
1]] (an origin-relative difference, exact): the same model, Sigma re-expressed,
not a different prior. Its square root A_j' L_c, with L_c = [[sigma_c, 0], [rho_c
sigma_b, sigma_b sqrt(1 - rho_c^2)]] the Cholesky factor of Sigma_c, is never
inverted, so rho_c -> +-1 is harmless. Below, A_j L stands for A_j' L_c.

Per group the marginal of its n_j outcomes is N(X_j theta~, V_j), V_j = sigma^2 I
+ Z_j (A_j L)(A_j L)' Z_j' with Z_j = [1, x0 - xbar0_j] = Q_j R_j: orthogonal
columns (1 and the centred x0), R_j = diag(sqrt(n_j), sqrt(W00_j)), W00_j the
centred sum of squares of x0. Woodbury and the determinant lemma, with B_j = R_j
A_j L (2 x 2), give for any columns a, b of [X_j, y~_j]

    a' V_j^-1 b = (a'b - (Q_j'a)'(Q_j'b)) / sigma^2 + (Q_j'a)' (sigma^2 I + B_j B_j')^-1 (Q_j'b)
    log |V_j| = (n_j - 2) log sigma^2 + log |sigma^2 I + B_j B_j'|

where Q_j'a = (sqrt(n_j) abar_j, W_0a,j / sqrt(W00_j)) and a'b - (Q_j'a)'(Q_j'b) =
W_ab,j - W_0a,j W_0b,j / W00_j is the residual cross-product after the group's own
regression on (1, x0): both from GroupStats' n, means and centred cross-products
alone (the columns 1, xbar_j and z_j are constant within a group). This form
has no cancellation (the naive S_j - P_j' C_j^-1 P_j on raw cross-products lost
8 digits at x ~ 40 with large sigma_b), is the random-slope analogue of the
random-intercept models' W / sigma^2 + n ebar^2 / d, and its first term summed
over groups does not depend on the scales. An empty group adds nothing; a
group whose x0 does not vary (W00_j = 0) has only its first Q column.

Summed over groups this is a Gaussian likelihood in theta~ with quadratic form
A (K + 1 square). With the prior theta ~ N(loc, D) written in theta~ through R =
T^-1 (theta = R theta~ + o_y e_0), the posterior precision is Lambda = A_XX +
R'D^-1 R, and

    log p(y | scales) = -1/2 [A_yy + dev'D^-1 dev - eta'Lambda^-1 eta + log|Lambda|
                              + log|D| + sum_j log|V_j| + N log 2 pi],

eta = A_Xy + R'D^-1 dev, dev = loc - o_y e_0; theta~ | scales, y ~ N(Lambda^-1
eta, Lambda^-1). Unlike the random-intercept models, groups do not pool into
size classes (B_j depends on each group's x), so a gradient costs O(R).
tests/bayes/test_random_slopes.py checks the density against dense Gaussian
algebra on the observations to 1e-8 (at x ~ 40 it agrees with an
extended-precision evaluation to 1e-13).

Engines: ``nuts`` and ``chees``. The ``grid`` engine integrates a
two-dimensional (log sigma, log sigma_a) posterior; this one is
four-dimensional, and :func:`mlmbias.bayes.options.check_model` refuses it.

Reported per draw (:func:`quantity_keys`): mu, beta per x, contextual per x
(rs-mundlak), beta per z (delta), sigma, sigma_a, sigma_b, rho_ab.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mlmbias import linalg
from mlmbias.bayes import draws as D
from mlmbias.bayes.collapsed import ModelInfo
from mlmbias.bayes.options import BayesSettings, check_model
from mlmbias.bayes.priors import Priors
from mlmbias.groupstats import GroupStats

LOG_2PI = math.log(2 * math.pi)
LOG_2 = math.log(2.0)

# The random-slope models (keys are the model names fit_model and sample take).
MODEL_INFO: dict[str, ModelInfo] = {
    "rs": ModelInfo("rs", True, False, True),
    "rs-mundlak": ModelInfo("rs-mundlak", True, True, True),
}
EXTRA_PARAMS = ("sigma_b", "rho_ab")  # sampled beyond ModelInfo.params


def params(model: str) -> tuple[str, ...]:
    """The sampled quantities (estimands first), as ``ModelInfo.params`` plus sigma_b, rho_ab."""
    return MODEL_INFO[model].params + EXTRA_PARAMS


def quantity_keys(model: str, p: int, q: int) -> tuple[tuple[str, str], ...]:
    """(estimand, term) of each column of the draws, in order."""
    ctx = MODEL_INFO[model].has_contextual
    return (
        (("mu", ""),)
        + tuple(("beta", f"x{j}") for j in range(p))
        + (tuple(("contextual", f"x{j}") for j in range(p)) if ctx else ())
        + tuple(("beta", f"z{j}") for j in range(q))
        + (("sigma", ""), ("sigma_a", ""), ("sigma_b", ""), ("rho_ab", ""))
    )


class RSSpec(NamedTuple):
    """Prior numbers of a random-slope model (arrays: one spec serves every batch)."""

    loc: jax.Array  # (K,) prior means of theta = (mu, beta, [gamma], delta)
    scale: jax.Array  # (K,) prior SDs
    sigma_scale: jax.Array
    sigma_a_scale: jax.Array
    sigma_b_scale: jax.Array
    eta: jax.Array  # LKJ shape
    hctx: jax.Array  # () 1.0 with the region means of x (rs-mundlak), 0.0 without (rs)


def rs_spec(model: str, priors: Priors, p: int, q: int) -> RSSpec:
    """The :class:`RSSpec` of ``model``. Both models have K = 1 + 2p + q slots
    theta = (mu, beta, gamma, delta), so that one compiled program serves both: in
    rs the gamma slots have design 0 (``hctx`` = 0) and prior N(0, 1), so their
    posterior is their prior and they touch nothing else (as in
    mlmbias.bayes.collapsed); :func:`sample` drops them."""
    if model not in MODEL_INFO:
        raise ValueError(f"unknown random-slope model {model!r}; known: {', '.join(MODEL_INFO)}")
    pr = priors
    ctx = MODEL_INFO[model].has_contextual
    loc = [pr.mu_loc] + [pr.beta_loc] * p + [pr.contextual_loc if ctx else 0.0] * p
    scale = [pr.mu_scale] + [pr.beta_scale] * p + [pr.contextual_scale if ctx else 1.0] * p
    loc += [pr.beta_loc] * q
    scale += [pr.beta_scale] * q
    return RSSpec(
        loc=jnp.asarray(np.asarray(loc, float)),
        scale=jnp.asarray(np.asarray(scale, float)),
        sigma_scale=jnp.asarray(pr.sigma_scale),
        sigma_a_scale=jnp.asarray(pr.sigma_a_scale),
        sigma_b_scale=jnp.asarray(pr.sigma_b_scale),
        eta=jnp.asarray(pr.lkj_eta),
        hctx=jnp.asarray(1.0 if ctx else 0.0),
    )


class RSData(NamedTuple):
    """One replication's data as the density needs it (leading axes added by vmap).

    Columns are those of [X, y~] (K + 1; origin-relative, see the module docstring).
    """

    n: jax.Array  # (R,)
    c: jax.Array  # (R, 2, K + 1) Q_j'[X_j, y~_j]: sqrt(n_j) (column means), w0_j / sqrt(W00_j)
    rz: jax.Array  # (R, 2) (sqrt(n_j), sqrt(W00_j)): Z_j's R factor, diagonal
    dx0: jax.Array  # (R,) group means of x0 less x_c (0 for an empty group)
    xc: jax.Array  # () x_c, the mean of x0 over the observations (the user's scale)
    resid: jax.Array  # (K + 1, K + 1) Σ_j of the within cross-products less their Z_j part
    a: jax.Array  # (K - 1,) T = I + e_0 a': the origins of the non-intercept columns
    oy: jax.Array  # () origin of y
    sd_w: jax.Array  # () initial-value guesses: pooled within-group SD of y,
    sd_b: jax.Array  # () SD of the group means of y,
    sd_slope: jax.Array  # () SD of the groups' own least-squares slopes on x0


def rs_data(stats: GroupStats, hctx: jax.Array) -> RSData:
    """:class:`RSData` of one replication's statistics (no leading axis; vmap it);
    ``hctx`` (RSSpec) 1 includes the region means of x as columns, 0 zeroes them."""
    p = stats.p
    n = jnp.asarray(stats.n, float)
    r = n.shape[0]
    has = n > 0
    m = jnp.where(has[:, None], stats.mean, 0.0)  # (R, p + 1) means of [x, y] less origin
    w = jnp.where(has[:, None, None], stats.cross, 0.0)  # (R, p + 1, p + 1) centred
    zr = jnp.where(has[:, None], stats.z, 0.0)
    # column means of [X, y~] = [1, x~, xbar~ (times hctx), z~, y~] per group
    g = jnp.concatenate([jnp.ones((r, 1)), m[:, :p], hctx * m[:, :p], zr, m[:, p:]], axis=-1)
    k1 = g.shape[-1]
    # centred cross-products of the columns: only x~ and y~ vary within a group
    var = np.r_[np.arange(1, 1 + p), k1 - 1]
    wf = jnp.zeros((r, k1, k1)).at[:, var[:, None], var[None, :]].set(w)
    w00 = wf[:, 1, 1]
    ok = w00 > 0
    rw = jnp.sqrt(jnp.where(ok, w00, 0.0))
    w0 = wf[:, 1, :]
    c2 = jnp.where(ok[:, None], w0 / jnp.where(ok, rw, 1.0)[:, None], 0.0)
    c = jnp.stack([jnp.sqrt(n)[:, None] * g, c2], axis=1)
    resid = jnp.sum(wf - c2[:, :, None] * c2[:, None, :], axis=0)
    ox = stats.origin[0, :p]
    a = jnp.concatenate([ox, hctx * ox, stats.z_origin[0]])
    n_tot = jnp.sum(n)
    cx0 = jnp.sum(n * m[:, 0]) / jnp.maximum(n_tot, 1.0)
    # initial-value guesses
    n_reg = jnp.sum(has)
    sd_w = jnp.sqrt(jnp.maximum(jnp.sum(w[:, p, p]), 1e-12) / jnp.maximum(n_tot - n_reg, 1.0))
    cy = jnp.sum(n * m[:, p]) / jnp.maximum(n_tot, 1.0)
    sd_b = jnp.sqrt(jnp.sum(n * (m[:, p] - cy) ** 2) / jnp.maximum(n_tot, 1.0))
    fit = (n >= 3) & ok
    slope = jnp.where(fit, w[:, 0, p] / jnp.where(fit, w00, 1.0), 0.0)
    k_fit = jnp.maximum(jnp.sum(fit), 1.0)
    mean_slope = jnp.sum(slope) / k_fit
    sd_slope = jnp.sqrt(jnp.sum(jnp.where(fit, (slope - mean_slope) ** 2, 0.0)) / k_fit)
    return RSData(
        n=n,
        c=c,
        rz=jnp.stack([jnp.sqrt(n), rw], axis=-1),
        dx0=jnp.where(has, m[:, 0] - cx0, 0.0),
        xc=ox[0] + cx0,
        resid=resid,
        a=a,
        oy=stats.origin[0, p],
        sd_w=sd_w,
        sd_b=sd_b,
        sd_slope=sd_slope,
    )


class Scales(NamedTuple):
    """The scales of one point u, on the user's scale, and the sampler's root of Sigma_c."""

    sigma: jax.Array
    sigma_a: jax.Array
    sigma_b: jax.Array
    rho: jax.Array  # rho_ab
    root: jax.Array  # (2, 2) L_c, the Cholesky factor of Sigma_c (effects at x0 = x_c)
    log_prior: jax.Array  # log prior density of u (Jacobians included)


def scales(spec: RSSpec, u: jax.Array, xc: jax.Array) -> Scales:
    """The scales and the log prior density of the sampler's unconstrained u =
    (log sigma, log sigma_c, log sigma_b, atanh rho_c), the random effects
    expressed at x0 = ``xc`` (the data's mean of x0; see the module docstring).

    The prior is the user's: HalfNormal on sigma, sigma_a and sigma_b, LKJ(eta) on
    rho_ab ((rho_ab + 1) / 2 ~ Beta(eta, eta)), times the Jacobian sigma_c^2 /
    sigma_a^2 of (sigma_a, rho_ab) -> (sigma_c, rho_c) and those of the logs and
    atanh: sigma, sigma_c, sigma_b and 1 - rho_c^2.
    """
    sigma, sigma_c, sigma_b = jnp.exp(u[0]), jnp.exp(u[1]), jnp.exp(u[2])
    rho_c = jnp.tanh(u[3])
    # log((1 + rho_c) / 2) and log((1 - rho_c) / 2), stable in u: log-sigmoids of +-2u
    lo_p = jax.nn.log_sigmoid(2.0 * u[3])
    lo_m = jax.nn.log_sigmoid(-2.0 * u[3])
    log_1m_rc2 = 2.0 * LOG_2 + lo_p + lo_m  # log(1 - rho_c^2)
    cc = jnp.exp(0.5 * log_1m_rc2)  # sqrt(1 - rho_c^2)
    root = jnp.stack(
        [jnp.stack([sigma_c, jnp.zeros_like(sigma_c)]), jnp.stack([rho_c * sigma_b, cc * sigma_b])]
    )
    # the user's scale: root of Sigma = B L_c, B = [[1, -xc], [0, 1]]; a sum of squares
    r00 = sigma_c - xc * rho_c * sigma_b
    r01 = -xc * cc * sigma_b
    sigma_a = jnp.hypot(r00, r01)
    rho = jnp.clip((r00 * rho_c * sigma_b + r01 * cc * sigma_b) / (sigma_a * sigma_b), -1.0, 1.0)
    lp = 0.0
    for value, scale in ((sigma, spec.sigma_scale), (sigma_a, spec.sigma_a_scale)):
        lp = lp + LOG_2 + jax.scipy.stats.norm.logpdf(value, 0.0, scale)
    lp = lp + LOG_2 + jax.scipy.stats.norm.logpdf(sigma_b, 0.0, spec.sigma_b_scale)
    eta = spec.eta
    log_beta = 2.0 * jax.scipy.special.gammaln(eta) - jax.scipy.special.gammaln(2.0 * eta)
    xlogy = jax.scipy.special.xlogy
    lp_rho = xlogy(eta - 1.0, (1.0 + rho) / 2.0) + xlogy(eta - 1.0, (1.0 - rho) / 2.0)
    lp = lp + lp_rho - log_beta - LOG_2
    log_jac = 2.0 * (u[1] - jnp.log(sigma_a)) + u[0] + u[1] + u[2] + log_1m_rc2
    return Scales(sigma, sigma_a, sigma_b, rho, root, lp + log_jac)


def to_unconstrained(sigma, sigma_a, sigma_b, rho, xc) -> jax.Array:
    """The sampler's u of the user's scales (the inverse of :func:`scales`)."""
    c = jnp.sqrt(1.0 - rho**2)
    r00 = sigma_a + xc * rho * sigma_b  # root of Sigma_c = A_c L, A_c = [[1, xc], [0, 1]]
    r01 = xc * c * sigma_b
    sigma_c = jnp.hypot(r00, r01)
    rho_c = (r00 * rho * sigma_b + r01 * c * sigma_b) / (sigma_c * sigma_b)
    return jnp.stack([jnp.log(sigma), jnp.log(sigma_c), jnp.log(sigma_b), jnp.arctanh(rho_c)])


def quadratic(data: RSData, sc: Scales) -> tuple[jax.Array, jax.Array]:
    """(Σ_j [X, y~]' V_j^-1 [X, y~] (K + 1, K + 1), Σ_j log |V_j|), per group by
    Woodbury in the well-conditioned form of the module docstring."""
    s2 = sc.sigma**2

    def group(c, rz, dx0, n):
        amat = jnp.stack([jnp.stack([jnp.ones(()), dx0]), jnp.stack([jnp.zeros(()), 1.0])])
        b = rz[:, None] * (amat @ sc.root)  # R_j A_j L_c
        k2 = s2 * jnp.eye(2) + b @ b.T
        det = k2[0, 0] * k2[1, 1] - k2[0, 1] * k2[1, 0]
        kinv = jnp.stack([jnp.stack([k2[1, 1], -k2[0, 1]]), jnp.stack([-k2[1, 0], k2[0, 0]])]) / det
        return c.T @ kinv @ c, (n - 2.0) * jnp.log(s2) + jnp.log(det)

    h, logdet = jax.vmap(group)(data.c, data.rz, data.dx0, data.n)
    return data.resid / s2 + jnp.sum(h, axis=0), jnp.sum(logdet)


class Posterior(NamedTuple):
    log_marginal: jax.Array  # log p(y | scales), theta and the group effects integrated out
    mean: jax.Array  # (K,) posterior mean of theta (the user's scale)
    chol: jax.Array  # (K, K) Cholesky factor of Lambda, the precision of theta~
    rmat: jax.Array  # (K, K) R = T^-1: theta = R theta~ + o_y e_0


def coefficient_posterior(spec: RSSpec, data: RSData, sc: Scales) -> Posterior:
    """log p(y | scales) and theta | scales, y (see the module docstring)."""
    a, logdet_v = quadratic(data, sc)
    k = spec.loc.shape[-1]
    rmat = jnp.eye(k).at[0, 1:].set(-data.a)
    dinv = 1.0 / spec.scale**2
    dev = spec.loc.at[0].add(-data.oy)
    lam = a[:k, :k] + rmat.T @ (dinv[:, None] * rmat)
    eta = a[:k, k] + rmat.T @ (dinv * dev)
    low = linalg.cholesky(lam)
    v = linalg.solve_lower(low, eta)
    mean_t = linalg.solve_lower_t(low, v)
    n_tot = jnp.sum(data.n)
    log_marginal = -0.5 * (
        a[k, k]
        + jnp.sum(dinv * dev**2)
        - v @ v
        + 2.0 * jnp.sum(jnp.log(jnp.diagonal(low)))
        + jnp.sum(jnp.log(spec.scale**2))
        + logdet_v
        + n_tot * LOG_2PI
    )
    mean = (rmat @ mean_t).at[0].add(data.oy)
    return Posterior(log_marginal, mean, low, rmat)


def logdensity(u: jax.Array, data: RSData, spec: RSSpec) -> jax.Array:
    """log p(u | y) up to a constant: the sampled density, theta and the group effects
    integrated out."""
    sc = scales(spec, u, data.xc)
    return sc.log_prior + coefficient_posterior(spec, data, sc).log_marginal


def draw_outputs(key, u, data: RSData, spec: RSSpec) -> jax.Array:
    """One draw of every quantity of :func:`quantity_keys` given the scales u:
    theta exactly from its Gaussian conditional."""
    sc = scales(spec, u, data.xc)
    post = coefficient_posterior(spec, data, sc)
    eps = jax.random.normal(key, post.mean.shape)
    theta = post.mean + post.rmat @ linalg.solve_lower_t(post.chol, eps)
    return jnp.concatenate([theta, jnp.stack([sc.sigma, sc.sigma_a, sc.sigma_b, sc.rho])])


def chain_outputs(key, us, data: RSData, spec: RSSpec) -> jax.Array:
    """(draws, quantities) for one chain's draws ``us``, draw i keyed by fold_in(key, i)."""
    ks = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(us.shape[0]))
    return jax.vmap(lambda kk, u: draw_outputs(kk, u, data, spec))(ks, us)


def initial(data: RSData) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Centre, variance guess and spread of the initial values of one replication."""
    n_tot = jnp.sum(data.n)
    n_reg = jnp.maximum(jnp.sum(data.n > 0), 1.0)
    centre = jnp.stack(
        [
            jnp.log(data.sd_w),
            jnp.log(jnp.maximum(data.sd_b, 1e-6)),
            jnp.log(jnp.maximum(data.sd_slope, 1e-6)),
            0.0,
        ]
    )
    var0 = jnp.stack([0.5 / jnp.maximum(n_tot - n_reg, 1.0), 2.0 / n_reg, 2.0 / n_reg, 0.5])
    return centre, var0, jnp.ones(4)


def replication_setup(stats: GroupStats, spec: RSSpec):
    """Per replication of a batch: the data and the initial values' centre, variance, spread."""
    data = jax.vmap(lambda s: rs_data(s, spec.hctx))(stats)
    centre, var0, spread = jax.vmap(initial)(data)
    return data, centre, var0, spread


@functools.cache
def _nuts_program(chains: int, nuts):
    """The jitted NUTS batch program (both models; compiled once per input shape)."""

    def run(keys, stats, ids, spec):
        data, centre, var0, spread = replication_setup(stats, spec)

        def outputs(k, zs, d):
            return chain_outputs(k, zs, d, spec)

        return D.nuts_chains(
            keys, data, centre, var0, spread, logdensity, spec, nuts, chains, outputs
        )

    return jax.jit(run)


def sample(model: str, keys, stats: GroupStats, settings: BayesSettings) -> D.Draws:
    """Draws of ``model`` ("rs" or "rs-mundlak") for every replication, from the
    engine ``settings.engine`` ("nuts" or "chees"; "grid" and collapse
    "intercepts" are ConfigErrors, :func:`mlmbias.bayes.options.check_model`)."""
    check_model(model, settings)
    spec = rs_spec(model, settings.priors, stats.p, stats.q)
    if settings.engine == "chees":
        from mlmbias.bayes import chees

        s = chees.chees_settings(settings)

        def program_for_tier(tier):
            return D.with_steps(_chees_program(s, settings.chees_nrhat_max), spec)

    else:
        nuts = D.nuts_settings(settings)

        def program_for_tier(tier):
            return D.with_steps(_nuts_program(settings.chains, nuts), spec)

    fields, steps = D.run_batches(keys, stats, settings.batch_size, program_for_tier)
    checks = None
    if settings.engine == "chees":
        *fields, checks = fields
        checks = np.asarray(checks).astype(bool)
    values, *fields = fields
    p = stats.p
    if not MODEL_INFO[model].has_contextual:  # drop the unused gamma slots
        values = np.delete(values, np.arange(1 + p, 1 + 2 * p), axis=-1)
    return D.Draws(
        values,
        *fields,
        batch_steps=np.stack([np.asarray(b) for b in steps]),
        keys=quantity_keys(model, stats.p, stats.q),
        checks=checks,
    )


@functools.cache
def _chees_program(s, nrhat_max: float):
    from mlmbias.bayes import chees

    def setup(stats, ids, spec):
        return replication_setup(stats, spec)

    return chees.build_program(setup, logdensity, chain_outputs, s, nrhat_max)
