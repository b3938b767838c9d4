"""Keys for replications, as in DESIGN.md.

key(seed, condition, rep) = fold_in(fold_in(PRNGKey(seed), condition_id), rep)

``condition_id`` is a stable hash of the condition's DGP parameters, so a
replication's data do not depend on the batch it is simulated in, on sharding,
on resuming, or on which other conditions are in the grid.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from mlmbias.dgp import DGP

# Streams derived from a replication key: one for the data, one per method.
DATA_STREAM = 0
METHOD_STREAM = 1


def stable_hash32(text: str) -> int:
    """A 31-bit integer hash of ``text`` that is the same on every machine and run."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little") & 0x7FFFFFFF


def condition_id(dgp: DGP) -> int:
    """Stable identifier of a condition: a hash of all its DGP parameters."""
    payload = json.dumps({k: repr(v) for k, v in sorted(dgp.as_dict().items())})
    return stable_hash32(payload)


@jax.jit
def _rep_keys(seed: jax.Array, cond: jax.Array, reps: jax.Array) -> jax.Array:
    base = jax.random.fold_in(jax.random.PRNGKey(seed), cond)
    return jax.vmap(lambda r: jax.random.fold_in(base, r))(reps)


def replication_keys(seed: int, dgp: DGP, reps: Sequence[int] | np.ndarray) -> jax.Array:
    """Raw uint32 keys, shape (len(reps), 2), one per replication index."""
    reps = np.asarray(reps, dtype=np.int64)
    if reps.ndim != 1 or (reps.size and reps.min() < 0):
        raise ValueError("replication indices must be a 1-d array of non-negative integers")
    return _rep_keys(
        jnp.uint32(seed % 2**32), jnp.uint32(condition_id(dgp)), jnp.asarray(reps, jnp.uint32)
    )


def data_keys(rep_keys: jax.Array) -> jax.Array:
    """The data stream of each replication key."""
    return jax.vmap(lambda k: jax.random.fold_in(k, DATA_STREAM))(rep_keys)


def method_keys(rep_keys: jax.Array, method: str) -> jax.Array:
    """The stream a method draws from for each replication (e.g. NUTS)."""
    tag = stable_hash32(method)
    return jax.vmap(lambda k: jax.random.fold_in(jax.random.fold_in(k, METHOD_STREAM), tag))(
        rep_keys
    )
