"""Per-region sufficient statistics: everything the Gaussian models need.

For random-intercept, fixed-effects and Mundlak models with within-varying
covariates x_1..x_p and group-level covariates z_1..z_q the likelihood depends
on the data only through, per region, the number of observations n, the means
of the columns v = [x_1..x_p, y], the centred sums of products
W_ab = Σ(v_a - vbar_a)(v_b - vbar_b) (a (p+1) x (p+1) matrix per region) and
the region's z. Every estimator in the package is a function of these.

They are accumulated centred, in two passes (means first, then the sums of the
deviations from them), never as raw sums Σx², Σxy, Σy²: raw sums cancel
catastrophically when the data have a large mean (x + 1e9 loses every digit of
Σ(x - xbar)² in float64). Quantities pooled over regions are combined from these
by the parallel formula Σ_r W_r + Σ_r n_r (vbar_r - vbar)(vbar_r - vbar)'
(Chan, Golub & LeVeque 1983), which is exact in the same sense. The means are
kept relative to an origin of each replication (its first observation), and
z relative to the first observation's group, so a constant added to any
column changes only the origin.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mlmbias.simulate import Panel


class GroupStats(NamedTuple):
    """Per-region statistics; every field has leading axes (..., R).

    (A leading replication axis when batched.) With k = p + 1 the columns are
    [x_1..x_p, y]. The means are stored relative to an origin of the
    replication, repeated in every region's slot so that every field has the
    same leading shape: its first observation (z: the first observation's
    group). Differences of means, which is all that slopes, SEs and variance
    components use, are then exact to the last digit wherever the data lie;
    ``xbar`` and ``ybar`` add the origin back. A region without observations
    (n = 0) has zero means, sums and z.
    """

    n: jax.Array  # (..., R) observations in the region
    origin: jax.Array  # (..., R, k) the replication's first observation of [x, y], repeated
    mean: jax.Array  # (..., R, k) region means of [x, y] less the origin
    cross: jax.Array  # (..., R, k, k) Σ (v - vbar_r)(w - wbar_r) over the region
    z_origin: jax.Array  # (..., R, q) z of the first observation's group, repeated
    z: jax.Array  # (..., R, q) the region's z less z_origin

    @property
    def p(self) -> int:
        """Number of within-varying covariates x."""
        return self.mean.shape[-1] - 1

    @property
    def q(self) -> int:
        """Number of group-level covariates z."""
        return self.z.shape[-1]

    @property
    def n_regions(self) -> int:
        return self.n.shape[-1]

    @property
    def xbar(self) -> jax.Array:
        """Region means of x, (..., R, p) (rounded at the scale of the origin)."""
        p = self.p
        has = (self.n > 0)[..., None]
        return jnp.where(has, self.origin[..., :p] + self.mean[..., :p], 0.0)

    @property
    def ybar(self) -> jax.Array:
        """Region means of y, (..., R)."""
        return jnp.where(self.n > 0, self.origin[..., -1] + self.mean[..., -1], 0.0)


def _pairs(k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Upper-triangle pairs (i <= j) of a k x k matrix and, per entry, its pair."""
    i, j = np.triu_indices(k)
    which = np.empty((k, k), int)
    which[i, j] = np.arange(len(i))
    which[j, i] = np.arange(len(i))
    return i, j, which


def _stats_one(region, v, mask, n_regions: int, z=None) -> GroupStats:
    """One replication: ``v`` (N, k) the columns [x..., y], ``z`` (G, q) or None."""
    w = mask.astype(v.dtype)

    def seg(a):  # one column at a time: 1-d segment sums are the fastest on CPU
        return jax.ops.segment_sum(a * w, region, num_segments=n_regions)

    k = v.shape[-1]
    first = jnp.argmax(mask)
    origin = v[first]
    n = seg(jnp.ones_like(w))
    safe = jnp.maximum(n, 1.0)
    cols = [v[:, a] - origin[a] for a in range(k)]
    means = [seg(c) / safe for c in cols]
    d = [c - m[region] for c, m in zip(cols, means, strict=True)]
    # each product once: a symmetric matrix from its upper triangle
    i, j, which = _pairs(k)
    sums = jnp.stack([seg(d[a] * d[b]) for a, b in zip(i, j, strict=True)], axis=-1)
    mean = jnp.stack(means, axis=-1)
    cross = sums[:, which]
    if z is None:
        z = jnp.zeros((n_regions, 0), v.dtype)
    z_origin = z[region[first]]
    has = (n > 0)[:, None]
    return GroupStats(
        n=n,
        origin=jnp.broadcast_to(origin, (n_regions,) + origin.shape),
        mean=mean,
        cross=cross,
        z_origin=jnp.broadcast_to(z_origin, (n_regions,) + z_origin.shape),
        z=jnp.where(has, z - z_origin[None, :], 0.0),
    )


@jax.jit
def _stats_batch(region, x, y, mask, z) -> GroupStats:
    n_regions = z.shape[-2]
    v = jnp.concatenate([x, y[..., None]], axis=-1)
    return jax.vmap(lambda r, a, m, g: _stats_one(r, a, m, n_regions, g))(region, v, mask, z)


def group_stats(panel: Panel) -> GroupStats:
    """Per-region statistics of each replication in ``panel`` (segment sums)."""
    return _stats_batch(panel.region, panel.x, panel.y, panel.mask, panel.z)


def group_stats_from_arrays(group_codes, x, y, n_groups: int, z=None) -> GroupStats:
    """Statistics of one observed panel, with a leading replication axis of 1.

    ``group_codes`` are integers in [0, n_groups); ``x`` has shape (N,) or
    (N, p), ``y`` (N,); ``z`` (n_groups, q) holds each group's level-2
    covariates (the caller has checked them constant within groups), or None.
    Used for a user's own data.
    """
    codes = jnp.asarray(np.asarray(group_codes), jnp.int32)
    x = np.asarray(x, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    y = np.asarray(y, dtype=float)
    if x.ndim != 2 or y.ndim != 1 or x.shape[0] != y.shape[0]:
        raise ValueError(f"x must be (N,) or (N, p) and y (N,), got {x.shape} and {y.shape}")
    v = jnp.asarray(np.column_stack([x, y]))
    if z is not None:
        z = np.asarray(z, dtype=float)
        if z.ndim != 2 or z.shape[0] != n_groups:
            raise ValueError(f"z must have shape ({n_groups}, q), got {z.shape}")
        z = jnp.asarray(z)
    stats = _stats_one(codes, v, jnp.ones(v.shape[0], bool), n_groups, z)
    return GroupStats(*(a[None] for a in stats))
