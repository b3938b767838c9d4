"""The seed's simulator, vectorised with ``jax.vmap`` over replication keys.

One replication is a flat, padded panel: observation j (of ``max_obs``) belongs
to region ``region[j]`` and counts when ``mask[j]`` is true. Regions are laid
out contiguously in order. Each observation's noise is drawn from
``fold_in(key, j)``, so a replication's data do not depend on the padding bound.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from mlmbias.dgp import DGP
from mlmbias.seeding import data_keys, replication_keys


class Panel(NamedTuple):
    """Simulated panels; every array has a leading replication axis."""

    region: jax.Array  # (rep, obs) int32 region id in [0, R); padding holds R - 1
    month: jax.Array  # (rep, obs) int32 month index within the region
    ad_spend: jax.Array  # (rep, obs) float; 0 where masked
    profit: jax.Array  # (rep, obs) float; 0 where masked
    mask: jax.Array  # (rep, obs) bool
    competition: jax.Array  # (rep, R) latent competition score C_r
    adspend_avg: jax.Array  # (rep, R) regional average ad spend
    n_obs: jax.Array  # (rep,) observations before padding

    @property
    def n_regions(self) -> int:
        return self.competition.shape[-1]

    @property
    def max_obs(self) -> int:
        return self.mask.shape[-1]


class _Params(NamedTuple):
    """The DGP's continuous parameters: traced, so one compiled program serves all."""

    competition_sd: jax.Array
    confounding: jax.Array
    adspend_region_sd: jax.Array
    months_mean: jax.Array
    months_min: jax.Array
    adspend_sd: jax.Array
    intercept: jax.Array
    competition_effect: jax.Array
    beta: jax.Array
    noise_sd: jax.Array


def _params(dgp: DGP) -> _Params:
    return _Params(*(jnp.asarray(getattr(dgp, f), dtype=float) for f in _Params._fields))


def _simulate_one(key: jax.Array, p: _Params, n_regions: int, max_obs: int) -> Panel:
    k_comp, k_avg, k_months, k_ad, k_noise = jax.random.split(key, 5)
    competition = p.competition_sd * jax.random.normal(k_comp, (n_regions,))
    adspend_avg = p.confounding * competition + p.adspend_region_sd * jax.random.normal(
        k_avg, (n_regions,)
    )
    months = jax.random.poisson(k_months, p.months_mean, (n_regions,)) + p.months_min.astype(int)
    ends = jnp.cumsum(months)
    starts = ends - months
    j = jnp.arange(max_obs)
    region = jnp.minimum(jnp.searchsorted(ends, j, side="right"), n_regions - 1)
    mask = j < ends[-1]
    month = jnp.where(mask, j - starts[region], 0)

    def obs_normal(k: jax.Array) -> jax.Array:
        return jax.vmap(lambda i: jax.random.normal(jax.random.fold_in(k, i)))(j)

    ad = adspend_avg[region] + p.adspend_sd * obs_normal(k_ad)
    mean = p.intercept + p.competition_effect * competition[region] + p.beta * ad
    profit = mean + p.noise_sd * obs_normal(k_noise)
    return Panel(
        region=region.astype(jnp.int32),
        month=month.astype(jnp.int32),
        ad_spend=jnp.where(mask, ad, 0.0),
        profit=jnp.where(mask, profit, 0.0),
        mask=mask,
        competition=competition,
        adspend_avg=adspend_avg,
        n_obs=ends[-1].astype(jnp.int32),
    )


@partial(jax.jit, static_argnames=("n_regions", "max_obs"))
def _simulate_batch(keys: jax.Array, p: _Params, n_regions: int, max_obs: int) -> Panel:
    return jax.vmap(_simulate_one, in_axes=(0, None, None, None))(keys, p, n_regions, max_obs)


def simulate(dgp: DGP, keys: jax.Array, max_obs: int | None = None) -> Panel:
    """Simulate one panel per data key (shape (n, 2)).

    ``max_obs`` defaults to ``dgp.obs_bound()``. A draw with more observations
    than the bound raises ``ValueError`` here, outside jit; nothing is truncated.
    """
    max_obs = dgp.obs_bound() if max_obs is None else int(max_obs)
    if max_obs < dgp.n_regions * dgp.months_min:
        raise ValueError(
            f"max_obs={max_obs} is below the minimum possible number of observations "
            f"{dgp.n_regions * dgp.months_min}"
        )
    keys = jnp.asarray(keys)
    if keys.ndim != 2:
        raise ValueError(f"keys must have shape (n, 2), got {keys.shape}")
    panel = _simulate_batch(keys, _params(dgp), dgp.n_regions, max_obs)
    n_max = int(jnp.max(panel.n_obs)) if keys.shape[0] else 0
    if n_max > max_obs:
        raise ValueError(
            f"a replication drew {n_max} observations, above the padding bound "
            f"max_obs={max_obs}; raise max_obs"
        )
    return panel


def simulate_condition(
    dgp: DGP, seed: int, reps: Sequence[int] | np.ndarray, max_obs: int | None = None
) -> Panel:
    """Simulate replications ``reps`` of the condition ``dgp`` under ``seed``.

    Replication i is identical whether simulated alone or in any batch.
    """
    return simulate(dgp, data_keys(replication_keys(seed, dgp, reps)), max_obs)


def to_frame(panel: Panel, rep: int = 0) -> pd.DataFrame:
    """One replication as a tidy frame with columns region, month, ad_spend, profit."""
    mask = np.asarray(panel.mask[rep])
    return pd.DataFrame(
        {
            "region": np.asarray(panel.region[rep])[mask],
            "month": np.asarray(panel.month[rep])[mask],
            "ad_spend": np.asarray(panel.ad_spend[rep])[mask],
            "profit": np.asarray(panel.profit[rep])[mask],
        }
    )
