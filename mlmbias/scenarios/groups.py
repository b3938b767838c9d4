"""Group sizes shared by the scenarios that draw them (``contextual``, ``slopes``).

``group_sizes``: "balanced", every group ``group_size`` observations (an
integer then); "poisson", 1 + Poisson(group_size - 1); "skewed", 1 + Geometric
with mean group_size - 1 (variance m(1 + m), a long right tail). All have mean
``group_size``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from mlmbias.scenarios.base import knob

GROUP_SIZES = ("balanced", "poisson", "skewed")


def group_size_knob(default: float = 10.0):
    return knob(default, low=1, doc="mean observations per group")


def group_sizes_knob(default: str = "balanced"):
    return knob(default, choices=GROUP_SIZES, doc="group-size distribution")


def check_group_size(scenario) -> None:
    """A balanced layout needs an integer ``group_size``."""
    if scenario.group_sizes == "balanced" and scenario.group_size != int(scenario.group_size):
        scenario.fail(f"balanced groups need an integer group_size, got {scenario.group_size!r}")


def min_obs(n_regions: int, group_size: float, kind: str) -> int:
    return n_regions * (int(group_size) if kind == "balanced" else 1)


def obs_bound(n_regions: int, group_size: float, kind: str) -> int:
    """R·group_size for balanced groups; otherwise the mean plus 12 SD plus 12
    (Poisson) or 40 SD plus 40 (geometric sums, whose tail is exponential)."""
    r, m = n_regions, group_size - 1
    if kind == "balanced":
        return int(r * group_size)
    if kind == "poisson":
        return int(r + math.ceil(r * m + 12 * math.sqrt(r * m) + 12))
    return int(r + math.ceil(r * m + 40 * math.sqrt(r * m * (1 + m)) + 40))


def draw_sizes(key: jax.Array, n_regions: int, group_size, kind: str) -> jax.Array:
    """The ``n_regions`` group sizes (``group_size`` may be traced; ``kind`` is static)."""
    r, m = n_regions, group_size - 1.0
    if kind == "balanced":
        return jnp.full((r,), 1, jnp.int64) * jnp.round(group_size).astype(jnp.int64)
    if kind == "poisson":
        return 1 + jax.random.poisson(key, m, (r,)).astype(jnp.int64)
    # geometric on {0, 1, ...} with mean m: floor(log U / log(1 - p)), p = 1/(1 + m)
    u = jax.random.uniform(key, (r,), minval=jnp.finfo(float).tiny)
    log_q = jnp.log(m) - jnp.log1p(m)  # log(1 - p); -inf when m = 0
    extra = jnp.where(m > 0, jnp.floor(jnp.log(u) / jnp.where(m > 0, log_q, -1.0)), 0.0)
    return 1 + extra.astype(jnp.int64)
