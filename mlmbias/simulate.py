"""Simulated panels: a scenario's simulator, vectorised with ``jax.vmap`` over keys.

One replication is a flat, padded panel: observation j (of ``max_obs``) belongs
to region ``region[j]`` and counts when ``mask[j]`` is true. Regions are laid
out contiguously in order. A scenario's ``simulate(key, max_obs)`` builds one
replication (see :mod:`mlmbias.scenarios.base`); here it runs under ``jit`` and
``vmap`` with the scenario's float fields traced, so one compiled program serves
every value of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from mlmbias.scenarios.base import Scenario, rebuild
from mlmbias.seeding import data_keys, replication_keys


@partial(
    jax.tree_util.register_dataclass,
    data_fields=["region", "x", "y", "mask", "n_obs", "z", "latent"],
    meta_fields=["x_names", "z_names", "y_name"],
)
@dataclass(frozen=True)
class Panel:
    """Simulated panels; every array has a leading replication axis when batched.

    ``x`` holds the p within-varying covariates and ``z`` the q group-level
    ones, named by ``x_names`` and ``z_names``; ``latent`` holds what the
    scenario drew but a model does not see (the seed: ``month`` per
    observation, ``competition`` and ``adspend_avg`` per region).
    """

    region: jax.Array  # (rep, obs) int32 region id in [0, R); padding holds R - 1
    x: jax.Array  # (rep, obs, p) float; 0 where masked
    y: jax.Array  # (rep, obs) float; 0 where masked
    mask: jax.Array  # (rep, obs) bool
    n_obs: jax.Array  # (rep,) observations before padding
    z: jax.Array  # (rep, R, q) the regions' group-level covariates
    latent: dict[str, jax.Array] = field(default_factory=dict)
    x_names: tuple[str, ...] = ()
    z_names: tuple[str, ...] = ()
    y_name: str = "y"

    @property
    def n_regions(self) -> int:
        return self.z.shape[-2]

    @property
    def max_obs(self) -> int:
        return self.mask.shape[-1]

    @property
    def p(self) -> int:
        return self.x.shape[-1]

    @property
    def q(self) -> int:
        return self.z.shape[-1]


@partial(jax.jit, static_argnames=("cls", "static", "max_obs"))
def _simulate_batch(
    keys: jax.Array,
    traced: dict[str, jax.Array],
    cls: type[Scenario],
    static: tuple[tuple[str, Any], ...],
    max_obs: int,
) -> Panel:
    scenario = rebuild(cls, {**dict(static), **traced})
    return jax.vmap(lambda k: scenario.simulate(k, max_obs))(keys)


def simulate(scenario: Scenario, keys: jax.Array, max_obs: int | None = None) -> Panel:
    """Simulate one panel per data key (shape (n, 2)).

    ``max_obs`` defaults to ``scenario.obs_bound()``. A draw with more
    observations than the bound raises ``ValueError`` here, outside jit;
    nothing is truncated.
    """
    max_obs = scenario.obs_bound() if max_obs is None else int(max_obs)
    if max_obs < scenario.min_obs():
        raise ValueError(
            f"max_obs={max_obs} is below the minimum possible number of observations "
            f"{scenario.min_obs()}"
        )
    keys = jnp.asarray(keys)
    if keys.ndim != 2:
        raise ValueError(f"keys must have shape (n, 2), got {keys.shape}")
    static, traced = scenario.split_fields()
    traced = {k: jnp.asarray(v, dtype=float) for k, v in traced.items()}
    panel = _simulate_batch(keys, traced, type(scenario), static, max_obs)
    n_max = int(jnp.max(panel.n_obs)) if keys.shape[0] else 0
    if n_max > max_obs:
        raise ValueError(
            f"a replication drew {n_max} observations, above the padding bound "
            f"max_obs={max_obs}; raise max_obs"
        )
    return panel


def simulate_condition(
    scenario: Scenario, seed: int, reps: Sequence[int] | np.ndarray, max_obs: int | None = None
) -> Panel:
    """Simulate replications ``reps`` of the condition ``scenario`` under ``seed``.

    Replication i is identical whether simulated alone or in any batch.
    """
    return simulate(scenario, data_keys(replication_keys(seed, scenario, reps)), max_obs)


def to_frame(panel: Panel, rep: int = 0) -> pd.DataFrame:
    """One replication as a tidy frame: region, the latent per-observation columns
    (the seed: month), the covariates x, the group-level z, and y."""
    mask = np.asarray(panel.mask[rep])
    region = np.asarray(panel.region[rep])[mask]
    columns: dict[str, np.ndarray] = {"region": region}
    for name, values in panel.latent.items():
        values = np.asarray(values[rep])
        if values.shape == mask.shape:
            columns[name] = values[mask]
    x = np.asarray(panel.x[rep])[mask]
    for j, name in enumerate(panel.x_names or [f"x{j}" for j in range(panel.p)]):
        columns[name] = x[:, j]
    z = np.asarray(panel.z[rep])
    for j, name in enumerate(panel.z_names or [f"z{j}" for j in range(panel.q)]):
        columns[name] = z[region, j]
    columns[panel.y_name] = np.asarray(panel.y[rep])[mask]
    return pd.DataFrame(columns)
