"""Per-region sufficient statistics: everything the Gaussian models need.

For random-intercept, fixed-effects and Mundlak models with one predictor the
likelihood depends on the data only through, per region, the number of
observations n, the means xbar and ybar, and the centred sums of squares and
products Wxx = Σ(x - xbar)², Wxy = Σ(x - xbar)(y - ybar), Wyy = Σ(y - ybar)².
Every estimator in the package is a function of these.

They are accumulated centred, in two passes (means first, then the sums of the
deviations from them), never as raw sums Σx², Σxy, Σy²: raw sums cancel
catastrophically when the data have a large mean (x + 1e9 loses every digit of
Σ(x - xbar)² in float64). Quantities pooled over regions are combined from these
by the parallel formula Σ_r W_r + Σ_r n_r (xbar_r - xbar)² (Chan, Golub &
LeVeque 1983), which is exact in the same sense. The means are kept relative
to an origin of each replication (its first observation), so a constant added
to x or y changes only the origin.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mlmbias.simulate import Panel


class GroupStats(NamedTuple):
    """Arrays of shape (..., R): a leading replication axis when batched.

    The means are stored relative to an origin (x0, y0) of the replication,
    repeated in every region's slot so that every field has the same shape: its
    first observation. Differences of means, which is all that slopes, SEs and
    variance components use, are then exact to the last digit wherever the data
    lie; ``xbar`` and ``ybar`` add the origin back. A region without
    observations (n = 0) has zero means and sums.
    """

    n: jax.Array  # observations in the region
    x0: jax.Array  # origin of x (the replication's first observation)
    y0: jax.Array  # origin of y
    mx: jax.Array  # mean of x - x0
    my: jax.Array  # mean of y - y0
    wxx: jax.Array  # Σ (x - xbar)²
    wxy: jax.Array  # Σ (x - xbar)(y - ybar)
    wyy: jax.Array  # Σ (y - ybar)²

    @property
    def xbar(self) -> jax.Array:
        """Region means of x (rounded at the scale of the origin)."""
        return jnp.where(self.n > 0, self.x0 + self.mx, 0.0)

    @property
    def ybar(self) -> jax.Array:
        return jnp.where(self.n > 0, self.y0 + self.my, 0.0)

    @property
    def n_regions(self) -> int:
        return self.n.shape[-1]


def _stats_one(region, x, y, mask, n_regions: int) -> GroupStats:
    w = mask.astype(x.dtype)

    def seg(v):
        return jax.ops.segment_sum(v * w, region, num_segments=n_regions)

    first = jnp.argmax(mask)
    rx, ry = x[first], y[first]
    n = seg(jnp.ones_like(x))
    safe = jnp.maximum(n, 1.0)
    mx = seg(x - rx) / safe
    my = seg(y - ry) / safe
    dx = (x - rx) - mx[region]
    dy = (y - ry) - my[region]
    return GroupStats(
        n=n,
        x0=jnp.full((n_regions,), rx),
        y0=jnp.full((n_regions,), ry),
        mx=mx,
        my=my,
        wxx=seg(dx * dx),
        wxy=seg(dx * dy),
        wyy=seg(dy * dy),
    )


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
