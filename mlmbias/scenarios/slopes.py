"""Random slopes: each group's own slope of x around the average slope ``beta``.

For groups j = 1..n_regions with n_j observations i:

    g0_j, g1_j ~ N(0, 1) independent                   (group level)
    a_j   = g0_j,  s_j = slope_corr g0_j + sqrt(1 - slope_corr²) g1_j
    u0_j  = intercept_sd a_j,  u1_j = slope_sd s_j      corr(u0, u1) = slope_corr
    b_j   ~ N(0, 1)
    m_j   = confounding a_j + slope_confounding s_j + x_between_sd b_j
    x_ij  = x_mean + m_j + x_within_sd e1_ij
    y_ij  = intercept + beta x_ij + u0_j + u1_j x_ij + noise_sd e_ij

with e1, e ~ N(0, 1). ``confounding`` is, as in the seed, the slope of the
group's average x on its standardized intercept effect a_j (0 and 2 are the
seed study's levels), and ``slope_confounding`` that on its standardized slope
effect s_j. u0_j is the group's intercept at x = 0, lme4's convention for an
uncentred x: with ``x_mean`` != 0 the group effect at the average x,
u0_j + u1_j x_mean, has variance intercept_sd² + 2 slope_corr intercept_sd
slope_sd x_mean + slope_sd² x_mean², so ``x_mean`` matters to the variance
parameters a random-slope model estimates, never to beta. ``slope_sd = 0`` is
the control: a random-intercept model is then the true model.

The estimand is the average (fixed) slope ``beta`` (truth ("beta", "x")).

* The within (FE) estimate is sum_j S_j (beta + u1_j) / sum_j S_j with
  S_j = sum_i (x_ij - xbar_j)², and x's deviations from its group mean
  (x_within_sd (e1_ij - e1bar_j)) are independent of every group effect, so
  it is unbiased for beta whatever ``confounding``, ``slope_confounding`` and
  ``x_mean``: the slopes' dependence on x runs through m_j alone, which the
  within transformation removes. (A DGP whose within spread of x depended on
  u1 would break this; this one does not.) Its model-based SE ignores the
  slope variance, so it is too small when slope_sd > 0.
* Models that use the between variation (pooled OLS, random intercepts, and a
  random-slope model, which assumes E[u | x] = 0) are biased when
  cov(xbar_j, u0_j + u1_j xbar_j) != 0, which for normal group effects is
  intercept_sd (confounding + slope_confounding slope_corr)
  + slope_sd x_mean (confounding slope_corr + slope_confounding); a skewed
  ``group_dist`` adds E[m_j² u1_j], non-zero with ``slope_confounding`` even
  when x_mean = slope_corr = 0. With confounding = slope_confounding = 0 every
  model is unbiased for beta, and those without a random slope understate its
  SE when slope_sd > 0.

Group sizes as in ``contextual`` (:mod:`mlmbias.scenarios.groups`).
``group_dist`` draws g0 and g1 from a standardized non-normal distribution
before they are mixed: corr(u0, u1) stays ``slope_corr`` and both keep their
SDs, but the pair is then no longer elliptical. ``error_dist`` and
``error_sd_by`` (heteroskedastic in x, standardized by its population mean
``x_mean`` and SD, or by group) act on e (:mod:`mlmbias.scenarios.distributions`).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from mlmbias.scenarios import groups
from mlmbias.scenarios.base import Scenario, contiguous_layout, knob, observation_normals
from mlmbias.scenarios.distributions import (
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


@dataclass(frozen=True)
class Slopes(Scenario):
    """One within-varying covariate whose slope varies by group."""

    name = "slopes"
    x_names = ("x",)
    z_names = ()
    y_name = "y"

    n_regions: int = knob(50, integer=True, doc="groups")
    group_size: float = groups.group_size_knob(10.0)
    group_sizes: str = groups.group_sizes_knob("balanced")
    intercept: float = knob(0.0, doc="intercept")
    beta: float = knob(1.0, doc="average (fixed) slope of x: the estimand")
    intercept_sd: float = knob(1.0, low=0, doc="SD of the random intercept u0 (at x = 0)")
    slope_sd: float = knob(0.5, low=0, doc="SD of the random slope u1 (0: the control)")
    slope_corr: float = knob(0.0, low=-1, high=1, doc="corr(u0, u1)")
    noise_sd: float = knob(1.0, low=0, low_open=True, doc="SD of the level-1 error")
    x_mean: float = knob(0.0, doc="mean of x")
    x_between_sd: float = knob(1.0, low=0, doc="SD of x's group part not confounded")
    x_within_sd: float = knob(1.0, low=0, doc="SD of x around its group mean")
    confounding: float = knob(0.0, doc="slope of the group's mean x on the standardized u0")
    slope_confounding: float = knob(0.0, doc="slope of the group's mean x on the standardized u1")
    group_dist: str = dist_knob("the standardized (u0, u1) before they are correlated")
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
        return {("beta", "x"): self.beta}

    def x_sd(self):
        """x's population SD (a and s have unit variance and correlation slope_corr)."""
        c, sc = self.confounding, self.slope_confounding
        between = c**2 + sc**2 + 2 * c * sc * self.slope_corr + self.x_between_sd**2
        return jnp.sqrt(between + self.x_within_sd**2)

    def equations(self) -> str:
        return (
            f"(u0_j, u1_j) with SDs ({self.intercept_sd:g}, {self.slope_sd:g}) and "
            f"correlation {self.slope_corr:g} ({self.group_dist}); x_ij = {self.x_mean:g} + m_j "
            f"+ N(0, {self.x_within_sd:g}²), m_j = {self.confounding:g} u0_j/sd(u0) "
            f"+ {self.slope_confounding:g} u1_j/sd(u1) + N(0, {self.x_between_sd:g}²); "
            f"y_ij = {self.intercept:g} + ({self.beta:g} + u1_j) x_ij + u0_j + "
            f"{self.error_dist} error with SD {self.noise_sd:g}; {self.n_regions} groups, "
            f"{self.group_sizes} sizes with mean {self.group_size:g}."
        )

    def simulate(self, key: jax.Array, max_obs: int):
        from mlmbias.simulate import Panel

        r = self.n_regions
        k_group, k_between, k_sizes, k_x, k_e = jax.random.split(key, 5)
        g0, g1 = group_effects(self, k_group, (2, r))
        rho = self.slope_corr
        a = g0
        s = rho * g0 + jnp.sqrt(1.0 - rho**2) * g1
        u0, u1 = self.intercept_sd * a, self.slope_sd * s
        b = jax.random.normal(k_between, (r,))
        m = self.confounding * a + self.slope_confounding * s + self.x_between_sd * b
        sizes = groups.draw_sizes(k_sizes, r, self.group_size, self.group_sizes)
        region, _, mask, n_obs = contiguous_layout(sizes, max_obs)
        x = self.x_mean + m[region] + self.x_within_sd * observation_normals(k_x, max_obs)
        x_std = standardize(x, self.x_mean, self.x_sd())
        errors, extra = level1_errors(self, k_e, max_obs, region, x_std)
        y = self.intercept + (self.beta + u1[region]) * x + u0[region] + self.noise_sd * errors
        return Panel(
            region=region,
            x=jnp.where(mask, x, 0.0)[:, None],
            y=jnp.where(mask, y, 0.0),
            mask=mask,
            n_obs=n_obs,
            z=jnp.zeros((r, 0)),
            latent={"u0": u0, "u1": u1, "m": m, "sizes": sizes, **extra},
            x_names=self.x_names,
            z_names=self.z_names,
            y_name=self.y_name,
        )
