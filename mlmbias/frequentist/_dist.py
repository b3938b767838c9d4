"""Quantiles and tail probabilities that the estimators need, in JAX.

``jax.scipy.stats`` has no Student t quantile, so ``t_ppf`` starts from Hill's
(1970, CACM Algorithm 396) approximation and polishes it with Newton steps on
the exact distribution function (a regularised incomplete beta function). For
very large degrees of freedom the incomplete beta function is slow to converge,
and there Hill's expansion, already exact to double precision, is kept.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.special import betainc, erfc, gammaincc, gammaln, ndtri

# Above this many degrees of freedom Hill's expansion is used as it stands.
_LARGE_DF = 1e4
_NEWTON_STEPS = 4


def _hill(q2: jax.Array, df: jax.Array) -> jax.Array:
    """Hill's approximation to the t quantile with two-sided tail probability ``q2``."""
    n = jnp.maximum(df, 1.0)
    # n = 1 and n = 2 have closed forms
    t1 = 1.0 / jnp.tan(q2 * jnp.pi / 2.0)
    t2 = jnp.sqrt(jnp.maximum(2.0 / (q2 * (2.0 - q2)) - 2.0, 0.0))
    a = 1.0 / (n - 0.5)
    b = 48.0 / (a * a)
    c = ((20700.0 * a / b - 98.0) * a - 16.0) * a + 96.36
    d = ((94.5 / (b + c) - 3.0) / b + 1.0) * jnp.sqrt(a * jnp.pi / 2.0) * n
    x = d * q2
    y = x ** (2.0 / n)
    # Tail branch: an expansion around the normal quantile
    z = ndtri(q2 * 0.5)
    zz = z * z
    cc = jnp.where(n < 5.0, c + 0.3 * (n - 4.5) * (z + 0.6), c)
    cc = (((0.05 * d * z - 5.0) * z - 7.0) * z - 2.0) * z + b + cc
    yy = (((((0.4 * zz + 6.3) * zz + 36.0) * zz + 94.5) / cc - zz - 3.0) / b + 1.0) * z
    yy = a * yy * yy
    yy = jnp.where(yy > 0.1, jnp.expm1(yy), ((yy + 4.0) * yy + 12.0) * yy * yy / 24.0 + yy)
    # Central branch
    ys = jnp.maximum(y, jnp.finfo(y.dtype).tiny)
    yc = (
        (1.0 / (((n + 6.0) / (n * ys) - 0.089 * d - 0.822) * (n + 2.0) * 3.0) + 0.5 / (n + 4.0))
        * ys
        - 1.0
    ) * (n + 1.0) / (n + 2.0) + 1.0 / ys
    t = jnp.sqrt(n * jnp.where(y > 0.05 + a, yy, yc))
    return jnp.where(df == 1.0, t1, jnp.where(df == 2.0, t2, t))


def t_sf(t: jax.Array, df: jax.Array) -> jax.Array:
    """Upper tail probability P(T > t) of Student's t, for t >= 0."""
    return 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))


def _t_pdf(t: jax.Array, df: jax.Array) -> jax.Array:
    log = (
        gammaln((df + 1.0) / 2.0)
        - gammaln(df / 2.0)
        - 0.5 * jnp.log(df * jnp.pi)
        - (df + 1.0) / 2.0 * jnp.log1p(t * t / df)
    )
    return jnp.exp(log)


def t_ppf(p: jax.Array, df: jax.Array) -> jax.Array:
    """Quantile of Student's t with ``df`` degrees of freedom at ``p`` in [0.5, 1).

    NaN where ``df`` is not positive.
    """
    p = jnp.asarray(p, float)
    df = jnp.asarray(df, float)
    q = 1.0 - p
    ok = df > 0
    dfs = jnp.where(ok, df, 1.0)
    t = _hill(2.0 * q, dfs)
    newton = dfs < _LARGE_DF
    dfn = jnp.where(newton, dfs, 1.0)  # keeps betainc's arguments tame where unused

    def step(_, t):
        t_new = t + (t_sf(t, dfn) - q) / _t_pdf(t, dfn)
        return jnp.where(newton & jnp.isfinite(t_new) & (t_new > 0), t_new, t)

    t = jax.lax.fori_loop(0, _NEWTON_STEPS, step, t)
    return jnp.where(ok, t, jnp.nan)


def norm_ppf(p: jax.Array) -> jax.Array:
    return ndtri(p)


def chi2_sf(x: jax.Array, df: int) -> jax.Array:
    """Upper tail probability of the chi-squared distribution with ``df`` (static)
    degrees of freedom; NaN for x < 0."""
    x = jnp.asarray(x, float)
    xs = jnp.maximum(x, 0.0)
    out = erfc(jnp.sqrt(xs / 2.0)) if df == 1 else gammaincc(df / 2.0, xs / 2.0)
    return jnp.where(x >= 0, out, jnp.nan)
