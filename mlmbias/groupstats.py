"""Per-region sufficient statistics: everything the Gaussian models need.

For random-intercept, fixed-effects and Mundlak models with one predictor the
likelihood depends on the data only through, per region, n, Σx, Σy, Σx², Σxy and
Σy². Every estimator in the package is a function of these.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mlmbias.simulate import Panel


class GroupStats(NamedTuple):
    """Arrays of shape (..., R): a leading replication axis when batched."""

    n: jax.Array
    sx: jax.Array
    sy: jax.Array
    sxx: jax.Array
    sxy: jax.Array
    syy: jax.Array

    @property
    def xbar(self) -> jax.Array:
        return self.sx / jnp.maximum(self.n, 1)

    @property
    def ybar(self) -> jax.Array:
        return self.sy / jnp.maximum(self.n, 1)

    @property
    def n_regions(self) -> int:
        return self.n.shape[-1]


def _stats_one(region, x, y, mask, n_regions: int) -> GroupStats:
    w = mask.astype(x.dtype)
    x = x * w
    y = y * w

    def seg(v):
        return jax.ops.segment_sum(v, region, num_segments=n_regions)

    return GroupStats(seg(w), seg(x), seg(y), seg(x * x), seg(x * y), seg(y * y))


@jax.jit
def _stats_batch(region, x, y, mask, competition) -> GroupStats:
    n_regions = competition.shape[-1]
    return jax.vmap(lambda r, a, b, m: _stats_one(r, a, b, m, n_regions))(region, x, y, mask)


def group_stats(panel: Panel) -> GroupStats:
    """Per-region statistics of each replication in ``panel`` (segment sums)."""
    return _stats_batch(panel.region, panel.ad_spend, panel.profit, panel.mask, panel.competition)


def group_stats_from_arrays(group_codes, x, y, n_groups: int) -> GroupStats:
    """Statistics of one observed panel, with a leading replication axis of 1.

    ``group_codes`` are integers in [0, n_groups). Used for a user's own data.
    """
    codes = jnp.asarray(np.asarray(group_codes), jnp.int32)
    x = jnp.asarray(np.asarray(x, dtype=float))
    y = jnp.asarray(np.asarray(y, dtype=float))
    stats = _stats_one(codes, x, y, jnp.ones(x.shape, bool), n_groups)
    return GroupStats(*(a[None] for a in stats))
