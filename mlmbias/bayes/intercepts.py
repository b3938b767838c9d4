"""Exact conditional draws of the region intercepts, after sampling the collapsed model.

The collapsed models integrate the region effects a_r out. Given a posterior
draw of (mu, beta, contextual, sigma, sigma_a), each region's intercept in
y_rt = alpha_r + beta x_rt + e_rt form is alpha_r = c_r + a_r with

    c_r = mu                          re (and pooled, where alpha_r = mu)
    c_r = mu + contextual * xbar_r    mundlak, rewb
    c_r = alpha_loc                   fe (a_r is alpha_r's deviation from its prior mean)

and, by Gaussian conditioning, with d_r = sigma^2 + n_r sigma_a^2 and
ebar_r = ybar_r - c_r - beta xbar_r,

    a_r | rest, y ~ N(sigma_a^2 n_r ebar_r / d_r, sigma_a^2 sigma^2 / d_r).

A draw of alpha per posterior draw gives exact draws from the intercepts'
joint posterior with the other parameters.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp

from mlmbias.bayes.collapsed import MODEL_INFO, RegionData, region_data
from mlmbias.bayes.priors import Priors
from mlmbias.groupstats import GroupStats


def conditional(
    model: str, rd: RegionData, q: Mapping[str, jax.Array], priors: Priors | None = None
) -> tuple[jax.Array, jax.Array]:
    """Mean and SD of every alpha_r given one draw ``q`` (keys mu, beta, contextual,
    sigma, sigma_a; scalars or arrays of draws, broadcast against (R,) with a
    trailing region axis added)."""
    if model not in MODEL_INFO:
        raise ValueError(f"unknown model {model!r}")
    if not isinstance(rd, RegionData):
        raise ValueError("intercept draws are implemented for one covariate x and no z")
    priors = priors or Priors()
    ex = {k: jnp.asarray(v)[..., None] for k, v in q.items()}
    lead = (1,) * (ex["beta"].ndim - 1)
    xbar, ybar, n = (a.reshape(lead + a.shape) for a in (rd.xbar, rd.ybar, rd.n))
    if model == "pooled":
        mean = ex["mu"] + 0.0 * xbar
        return mean, jnp.zeros_like(mean)
    if model == "fe":
        c = priors.alpha_loc + 0.0 * xbar
        sigma_a = jnp.full_like(ex["beta"], priors.alpha_scale)
    elif model == "re":
        c = ex["mu"] + 0.0 * xbar
        sigma_a = ex["sigma_a"]
    else:
        c = ex["mu"] + ex["contextual"] * xbar
        sigma_a = ex["sigma_a"]
    s2, sa2 = ex["sigma"] ** 2, sigma_a**2
    d = s2 + n * sa2
    ebar = ybar - c - ex["beta"] * xbar
    return c + sa2 * n * ebar / d, jnp.sqrt(sa2 * s2 / d)


def draw_intercepts(
    key: jax.Array,
    model: str,
    stats: GroupStats,
    q: Mapping[str, jax.Array],
    priors: Priors | None = None,
) -> jax.Array:
    """One exact draw of alpha (..., R) per posterior draw in ``q`` for one panel ``stats`` (R,)."""
    mean, sd = conditional(model, region_data(stats), q, priors)
    return mean + sd * jax.random.normal(key, mean.shape, mean.dtype)
