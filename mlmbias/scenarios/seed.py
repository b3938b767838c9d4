"""The data-generating process of the seed post, every constant a parameter.

    C_r        ~ N(0, competition_sd^2)                     r = 1..n_regions
    adavg_r    ~ N(confounding * C_r, adspend_region_sd^2)
    T_r        ~ Poisson(months_mean) + months_min
    ad_rt      ~ N(adavg_r, adspend_sd^2)
    profit_rt  ~ N(intercept + competition_effect * C_r + beta * ad_rt, noise_sd^2)

``group_dist`` draws C_r / competition_sd from a standardized non-normal
distribution instead (C_r keeps its SD competition_sd), ``error_dist`` the
profit noise / noise_sd, and ``error_sd_by`` makes the noise heteroskedastic
in ad spend (standardized by its population SD, sqrt(confounding²
competition_sd² + adspend_region_sd² + adspend_sd²); its mean is 0) or by
region, its average variance staying noise_sd²: see
:mod:`mlmbias.scenarios.distributions`. No truth moves.

The estimand is the within-region effect ``beta``. ``confounding = 0`` is the
control condition in which the random-intercept assumption holds. The Mundlak
models' contextual effect has no single true value here (it is the projection
of the regional confounder on the region mean, which depends on the months
drawn), so it carries no truth.

This scenario is the default, and its data and condition ids are pinned
(tests/scenarios/test_seed_golden.py): its condition id hashes its fields
alone, as it did before scenarios had names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp

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
class Seed(Scenario):
    """Parameters of the seed's data-generating process (defaults from the seed)."""

    name = "seed"
    x_names = ("ad_spend",)
    z_names = ()
    y_name = "profit"

    n_regions: int = knob(10, integer=True, doc="regions")
    competition_sd: float = knob(10.0, low=0, doc="SD of the latent competition score C_r")
    confounding: float = knob(2.0, doc="slope of regional average ad spend on C_r")
    adspend_region_sd: float = knob(2.0, low=0, doc="SD of regional average ad spend given C_r")
    months_mean: float = knob(5.0, low=0, low_open=True, doc="Poisson mean of extra months")
    months_min: int = knob(2, low=1, integer=True, doc="months every region has at least")
    adspend_sd: float = knob(5.0, low=0, doc="SD of monthly ad spend around its regional average")
    intercept: float = knob(8.0, doc="profit intercept")
    competition_effect: float = knob(-3.0, doc="effect of C_r on profit")
    beta: float = knob(1.5, doc="within-region effect of ad spend on profit: the estimand")
    noise_sd: float = knob(10.0, low=0, doc="SD of monthly profit noise")
    # distributions (mlmbias/scenarios/distributions.py); the defaults are the seed's
    group_dist: str = dist_knob("the competition score C_r")
    group_df: float = df_knob()
    group_skew_df: float = skew_df_knob()
    group_mix_weight: float = mix_weight_knob()
    group_mix_sep: float = mix_sep_knob()
    error_dist: str = dist_knob("the monthly profit noise")
    error_df: float = df_knob()
    error_skew_df: float = skew_df_knob()
    error_mix_weight: float = mix_weight_knob()
    error_mix_sep: float = mix_sep_knob()
    error_sd_by: str = sd_by_knob()
    hetero: float = hetero_knob()

    def identity(self) -> dict[str, Any]:
        # no name: the ids from before scenarios had names (and the distribution
        # knobs only when changed: the ids from before they existed)
        return self.id_fields()

    def min_obs(self) -> int:
        return self.n_regions * self.months_min

    def obs_bound(self) -> int:
        """Padding bound for the number of observations of one replication.

        N = R * months_min + Poisson(R * months_mean); the bound lies 12 Poisson
        standard deviations (plus 12) above the mean; by the exact Poisson tail
        the chance of a draw exceeding it is below 1e-26 for any R. A draw above
        it is still caught (outside jit) and raised, never truncated.
        """
        lam = self.n_regions * self.months_mean
        return int(self.n_regions * self.months_min + math.ceil(lam + 12 * math.sqrt(lam) + 12))

    def truths(self) -> dict[tuple[str, str], float]:
        return {("beta", "ad_spend"): self.beta}

    def equations(self) -> str:
        return (
            f"competition C_r ~ N(0, {self.competition_sd:g}²); regional average ad spend "
            f"~ N({self.confounding:g} · C_r, {self.adspend_region_sd:g}²); months T_r ~ "
            f"Poisson({self.months_mean:g}) + {self.months_min}; ad spend ~ N(regional "
            f"average, {self.adspend_sd:g}²); profit ~ N({self.intercept:g} "
            f"{self.competition_effect:+g} · C_r + {self.beta:g} · ad spend, "
            f"{self.noise_sd:g}²); {self.n_regions} regions."
        )

    def simulate(self, key: jax.Array, max_obs: int):
        from mlmbias.simulate import Panel

        r = self.n_regions
        k_comp, k_avg, k_months, k_ad, k_noise = jax.random.split(key, 5)
        # "normal": jax.random.normal(k_comp, (r,)), the seed's own draw
        competition = self.competition_sd * group_effects(self, k_comp, (r,))
        adspend_avg = self.confounding * competition + self.adspend_region_sd * jax.random.normal(
            k_avg, (r,)
        )
        months = jax.random.poisson(k_months, self.months_mean, (r,)) + self.months_min
        region, month, mask, n_obs = contiguous_layout(months, max_obs)
        ad = adspend_avg[region] + self.adspend_sd * observation_normals(k_ad, max_obs)
        mean = self.intercept + self.competition_effect * competition[region] + self.beta * ad
        ad_sd = jnp.sqrt(
            (self.confounding * self.competition_sd) ** 2
            + self.adspend_region_sd**2
            + self.adspend_sd**2
        )
        errors, extra = level1_errors(self, k_noise, max_obs, region, standardize(ad, 0.0, ad_sd))
        profit = mean + self.noise_sd * errors
        return Panel(
            region=region,
            x=jnp.where(mask, ad, 0.0)[:, None],
            y=jnp.where(mask, profit, 0.0),
            mask=mask,
            n_obs=n_obs,
            z=jnp.zeros((r, 0)),
            latent={
                "month": month,
                "competition": competition,
                "adspend_avg": adspend_avg,
                **extra,
            },
            x_names=self.x_names,
            z_names=self.z_names,
            y_name=self.y_name,
        )
