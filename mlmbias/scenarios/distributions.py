"""Non-normal group effects and level-1 errors, and heteroskedastic errors.

Every variant is standardized to mean 0 and variance 1 before the scenario
scales it, so no truth moves. For a level ``L`` (``group``: the scenario's
group effect; ``error``: the level-1 error) the knobs are

* ``L_dist``: "normal" (the default); "t", Student t with ``L_df`` > 2 degrees
  of freedom times sqrt((df - 2)/df) (excess kurtosis 6/(df - 4) for df > 4,
  infinite below); "skewed", a chi-square with k = ``L_skew_df`` degrees of
  freedom standardized, (X - k)/sqrt(2k) (skewness sqrt(8/k), excess kurtosis
  12/k; k = 2, the default, is a shifted exponential); "mixture", a two-point
  normal mixture: with probability w = ``L_mix_weight`` a unit normal shifted by
  s = ``L_mix_sep``, else a unit normal, standardized exactly by its mean w s and
  variance 1 + w (1 - w) s² (an outlying minority of groups or observations;
  skewness s³ w (1 - w)(1 - 2w) / v^(3/2));
* level-1 errors only: ``error_sd_by`` "none" (the default), "x" or "group"
  with strength ``hetero`` = h >= 0. "x": the error SD is multiplied by
  sqrt((1 + h xs²)/(1 + h)), xs the scenario's focal covariate standardized by
  its population mean and SD, so the average error variance stays noise_sd²
  (E xs² = 1). "group": each group's error SD is multiplied by sqrt(v_j),
  v_j = exp(h w_j - h²/2) with w_j ~ N(0, 1) drawn once per group: a lognormal
  variance with mean one (h is the SD of the log variance).

The defaults draw exactly what a scenario drew before these knobs existed (the
same jax.random calls on the same keys), and the knobs are ``id_if_changed``,
so their conditions keep their ids. Any randomness a variant adds comes from
``fold_in(key, TAG + i)``, a tag above every observation index.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mlmbias.scenarios.base import knob, observation_normals

DISTS = ("normal", "t", "skewed", "mixture")
SD_BY = ("none", "x", "group")

TAG = 2**31  # observation indices fold in below it
_TAG_MIX = TAG + 1
_TAG_HETERO = TAG + 2
TAG_GROUP = TAG + 3  # for a scenario that draws a non-normal group effect apart


def dist_knob(what: str):
    return knob("normal", choices=DISTS, id_if_changed=True, doc=f"distribution of {what}")


def df_knob(default: float = 3.0):
    return knob(
        default, low=2, low_open=True, id_if_changed=True,
        doc="degrees of freedom of the t (> 2: its variance must be finite)",
    )  # fmt: skip


def skew_df_knob(default: float = 2.0):
    return knob(
        default, low=0, low_open=True, id_if_changed=True,
        doc="degrees of freedom of the standardized chi-square ('skewed')",
    )  # fmt: skip


def mix_weight_knob(default: float = 0.1):
    return knob(
        default, low=0, high=1, low_open=True, high_open=True, id_if_changed=True,
        doc="share of the shifted component of the 'mixture'",
    )  # fmt: skip


def mix_sep_knob(default: float = 3.0):
    return knob(
        default, low=0, id_if_changed=True,
        doc="shift of the mixture's minority component, in its components' SDs",
    )  # fmt: skip


def sd_by_knob():
    return knob(
        "none", choices=SD_BY, id_if_changed=True,
        doc="heteroskedastic level-1 errors: their SD varies with x or by group",
    )  # fmt: skip


def hetero_knob(default: float = 1.0):
    return knob(default, low=0, id_if_changed=True, doc="strength of error_sd_by")


def standardized(key, shape, dist: str, df, skew_df, mix_weight, mix_sep) -> jax.Array:
    """Draws of ``dist`` with mean 0 and variance 1 (``dist`` static, the rest may
    be traced); "normal" is exactly ``jax.random.normal(key, shape)``."""
    if dist == "normal":
        return jax.random.normal(key, shape)
    if dist == "t":
        return jax.random.t(key, df, shape) * jnp.sqrt((df - 2.0) / df)
    if dist == "skewed":
        return (jax.random.chisquare(key, skew_df, shape) - skew_df) / jnp.sqrt(2.0 * skew_df)
    if dist == "mixture":
        w, s = mix_weight, mix_sep
        shifted = jax.random.bernoulli(jax.random.fold_in(key, _TAG_MIX), w, shape)
        g = jax.random.normal(key, shape)
        return (g + s * (shifted - w)) / jnp.sqrt(1.0 + w * (1.0 - w) * s**2)
    raise ValueError(f"unknown distribution {dist!r}; allowed: {', '.join(DISTS)}")


def observation_standardized(key, max_obs: int, dist: str, df, skew_df, mix_weight, mix_sep):
    """``max_obs`` standardized draws, observation j's from ``fold_in(key, j)`` as
    :func:`observation_normals` (which "normal" is, exactly)."""
    if dist == "normal":
        return observation_normals(key, max_obs)
    j = jnp.arange(max_obs)
    return jax.vmap(
        lambda i: standardized(
            jax.random.fold_in(key, i), (), dist, df, skew_df, mix_weight, mix_sep
        )
    )(j)


def group_effects(scenario, key, shape) -> jax.Array:
    """Standardized group effects of ``scenario``'s ``group_*`` knobs."""
    s = scenario
    return standardized(
        key, shape, s.group_dist, s.group_df, s.group_skew_df, s.group_mix_weight, s.group_mix_sep
    )


def level1_errors(scenario, key, max_obs: int, region, x_std=None):
    """Level-1 errors of ``scenario``'s ``error_*`` knobs with unit average variance
    (the scenario multiplies them by ``noise_sd``), and the latent arrays they add.

    ``x_std`` is the focal covariate standardized by its population mean and SD
    (needed for ``error_sd_by = "x"``). The defaults return exactly
    ``observation_normals(key, max_obs)``.
    """
    s = scenario
    e = observation_standardized(
        key, max_obs, s.error_dist, s.error_df, s.error_skew_df, s.error_mix_weight,
        s.error_mix_sep,
    )  # fmt: skip
    if s.error_sd_by == "none":
        return e, {}
    h = s.hetero
    if s.error_sd_by == "x":
        return e * jnp.sqrt((1.0 + h * x_std**2) / (1.0 + h)), {}
    if s.error_sd_by == "group":
        w = jax.random.normal(jax.random.fold_in(key, _TAG_HETERO), (s.n_regions,))
        sd = jnp.exp(0.5 * (h * w - 0.5 * h**2))
        return e * sd[region], {"error_sd": sd}
    raise ValueError(f"unknown error_sd_by {s.error_sd_by!r}; allowed: {', '.join(SD_BY)}")


def standardize(x, mean, sd):
    """(x - mean)/sd, 0 where sd is 0 (traced sd)."""
    ok = sd > 0
    return jnp.where(ok, (x - mean) / jnp.where(ok, sd, 1.0), 0.0)
