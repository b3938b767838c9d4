"""Contextual effects and a confounded level-2 covariate, after Bell & Jones (2015).

For groups j = 1..n_regions with n_j observations i:

    a_j, b_j, c_j, d_j ~ N(0, 1) independent          (group level)
    u_j   = tau a_j,  tau = noise_sd sqrt(icc / (1 - icc))
    m_j   = x1_between_sd (x1_u_corr a_j + sqrt(1 - x1_u_corr²) b_j)
    z_j   = z_u_corr a_j + sqrt(1 - z_u_corr²) d_j      (SD 1)
    x1_ij = m_j + x1_within_sd e1_ij
    x2_ij = x2_between_sd c_j + x2_within_sd e2_ij
    y_ij  = intercept + beta1 x1_ij + beta2 x2_ij + contextual xbar1_j
            + z_effect z_j + u_j + noise_sd e_ij

with e1, e2, e ~ N(0, 1) and xbar1_j the group's sample mean of x1. So
``beta1`` is x1's within effect and ``beta1 + contextual`` its between effect;
``x1_u_corr`` confounds x1's between part with the group effect u (the seed's
problem), ``z_u_corr`` confounds the level-2 covariate z, and ``icc`` is the
share of the residual variance that lies between groups,
tau² / (tau² + noise_sd²).

Group sizes (``group_sizes``): "balanced", every group ``group_size``
observations (an integer then); "poisson", 1 + Poisson(group_size - 1);
"skewed", 1 + Geometric with mean group_size - 1 (variance m(1 + m), a long
right tail). All have mean ``group_size`` (:mod:`mlmbias.scenarios.groups`).

``group_dist`` draws the standardized group effect a_j (so u_j, and the parts
of m_j and z_j confounded with it) from a non-normal distribution; b, c, d
stay normal. ``error_dist`` draws e_ij likewise, and ``error_sd_by`` makes it
heteroskedastic in x1 (standardized by its population SD,
sqrt(x1_between_sd² + x1_within_sd²)) or by group, with average variance
noise_sd² (:mod:`mlmbias.scenarios.distributions`). No truth moves; these
knobs enter the condition id only when changed.

Truths: beta of x1, x2 and z (``beta1``, ``beta2``, ``z_effect``), and the
contextual effect of x1 (``contextual``) and of x2 (0), the quantity a Mundlak
model's group-mean term and REWB's between-minus-within difference estimate.
A random-intercept model is biased for beta1 when ``contextual`` or
``x1_u_corr`` is non-zero; Mundlak and FE are not; every model that estimates
z's effect is biased for it when ``z_u_corr`` is non-zero (group means do not
absorb a confounded level-2 covariate).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from mlmbias.scenarios import groups
from mlmbias.scenarios.base import Scenario, contiguous_layout, knob, observation_normals
from mlmbias.scenarios.distributions import (
    TAG_GROUP,
    df_knob,
    dist_knob,
    group_effects,
    hetero_knob,
    level1_errors,
    mix_sep_knob,
    mix_weight_knob,
    sd_by_knob,
    skew_df_knob,
    standardize,
)
from mlmbias.scenarios.groups import GROUP_SIZES as GROUP_SIZES


@dataclass(frozen=True)
class Contextual(Scenario):
    """Two within-varying covariates, a contextual effect and a level-2 covariate."""

    name = "contextual"
    x_names = ("x1", "x2")
    z_names = ("z",)
    y_name = "y"

    n_regions: int = knob(50, integer=True, doc="groups")
    group_size: float = groups.group_size_knob(10.0)
    group_sizes: str = groups.group_sizes_knob("balanced")
    icc: float = knob(0.3, low=0, high=1, high_open=True, doc="tau² / (tau² + noise_sd²)")
    noise_sd: float = knob(1.0, low=0, low_open=True, doc="SD of the level-1 error")
    intercept: float = knob(0.0, doc="intercept")
    beta1: float = knob(1.0, doc="within effect of x1")
    beta2: float = knob(0.5, doc="within effect of x2")
    contextual: float = knob(0.0, doc="effect of the group mean of x1 beyond its within effect")
    z_effect: float = knob(1.0, doc="effect of the level-2 covariate z")
    x1_between_sd: float = knob(1.0, low=0, doc="SD of x1's group part m_j")
    x1_within_sd: float = knob(1.0, low=0, doc="SD of x1 around m_j")
    x1_u_corr: float = knob(0.0, low=-1, high=1, doc="correlation of m_j with u_j")
    x2_between_sd: float = knob(1.0, low=0, doc="SD of x2's group part")
    x2_within_sd: float = knob(1.0, low=0, doc="SD of x2 around its group part")
    z_u_corr: float = knob(0.0, low=-1, high=1, doc="correlation of z_j with u_j")
    # distributions (mlmbias/scenarios/distributions.py); the defaults are normal
    group_dist: str = dist_knob("the standardized group effect a_j")
    group_df: float = df_knob()
    group_skew_df: float = skew_df_knob()
    group_mix_weight: float = mix_weight_knob()
    group_mix_sep: float = mix_sep_knob()
    error_dist: str = dist_knob("the level-1 error")
    error_df: float = df_knob()
    error_skew_df: float = skew_df_knob()
    error_mix_weight: float = mix_weight_knob()
    error_mix_sep: float = mix_sep_knob()
    error_sd_by: str = sd_by_knob()
    hetero: float = hetero_knob()

    def check(self) -> None:
        groups.check_group_size(self)

    def min_obs(self) -> int:
        return groups.min_obs(self.n_regions, self.group_size, self.group_sizes)

    def obs_bound(self) -> int:
        """See :func:`mlmbias.scenarios.groups.obs_bound`."""
        return groups.obs_bound(self.n_regions, self.group_size, self.group_sizes)

    def truths(self) -> dict[tuple[str, str], float]:
        return {
            ("beta", "x1"): self.beta1,
            ("beta", "x2"): self.beta2,
            ("beta", "z"): self.z_effect,
            ("contextual", "x1"): self.contextual,
            ("contextual", "x2"): 0.0,
        }

    def equations(self) -> str:
        return (
            f"u_j ~ N(0, tau²) with ICC {self.icc:g}; x1_ij = m_j + N(0, {self.x1_within_sd:g}²) "
            f"with m_j ~ N(0, {self.x1_between_sd:g}²), corr(m_j, u_j) = {self.x1_u_corr:g}; "
            f"x2_ij = N(0, {self.x2_between_sd:g}²) group part + N(0, {self.x2_within_sd:g}²); "
            f"z_j ~ N(0, 1), corr(z_j, u_j) = {self.z_u_corr:g}; y_ij = {self.intercept:g} "
            f"+ {self.beta1:g} x1 + {self.beta2:g} x2 + {self.contextual:g} xbar1_j "
            f"+ {self.z_effect:g} z_j + u_j + N(0, {self.noise_sd:g}²); {self.n_regions} groups, "
            f"{self.group_sizes} sizes with mean {self.group_size:g}."
        )

    def simulate(self, key: jax.Array, max_obs: int):
        from mlmbias.simulate import Panel

        r = self.n_regions
        k_group, k_sizes, k_x1, k_x2, k_e = jax.random.split(key, 5)
        a, b, c, d = jax.random.normal(k_group, (4, r))
        if self.group_dist != "normal":
            a = group_effects(self, jax.random.fold_in(k_group, TAG_GROUP), (r,))
        tau = self.noise_sd * jnp.sqrt(self.icc / (1.0 - self.icc))
        u = tau * a
        m1 = self.x1_between_sd * (self.x1_u_corr * a + jnp.sqrt(1.0 - self.x1_u_corr**2) * b)
        z = self.z_u_corr * a + jnp.sqrt(1.0 - self.z_u_corr**2) * d
        sizes = groups.draw_sizes(k_sizes, r, self.group_size, self.group_sizes)
        region, _, mask, n_obs = contiguous_layout(sizes, max_obs)
        x1 = m1[region] + self.x1_within_sd * observation_normals(k_x1, max_obs)
        x1_sd = jnp.sqrt(self.x1_between_sd**2 + self.x1_within_sd**2)
        errors, extra = level1_errors(self, k_e, max_obs, region, standardize(x1, 0.0, x1_sd))
        x2 = self.x2_between_sd * c[region] + self.x2_within_sd * observation_normals(k_x2, max_obs)
        w = mask.astype(x1.dtype)
        counts = jnp.maximum(jax.ops.segment_sum(w, region, num_segments=r), 1.0)
        xbar1 = jax.ops.segment_sum(x1 * w, region, num_segments=r) / counts
        y = (
            self.intercept
            + self.beta1 * x1
            + self.beta2 * x2
            + self.contextual * xbar1[region]
            + self.z_effect * z[region]
            + u[region]
            + self.noise_sd * errors
        )
        return Panel(
            region=region,
            x=jnp.where(mask[:, None], jnp.stack([x1, x2], axis=-1), 0.0),
            y=jnp.where(mask, y, 0.0),
            mask=mask,
            n_obs=n_obs,
            z=z[:, None],
            latent={"u": u, "m1": m1, "sizes": sizes, **extra},
            x_names=self.x_names,
            z_names=self.z_names,
            y_name=self.y_name,
        )
