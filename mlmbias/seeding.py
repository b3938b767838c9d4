"""Keys for replications, as in DESIGN.md.

key(seed, condition, rep) = fold_in(fold_in(PRNGKey(seed), condition_id), rep)

``condition_id`` is a stable hash of the condition's scenario and parameters, so a
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

from mlmbias.scenarios.base import Scenario

# Streams derived from a replication key: one for the data, one per method.
DATA_STREAM = 0
METHOD_STREAM = 1


def stable_hash32(text: str) -> int:
    """A 31-bit integer hash of ``text`` that is the same on every machine and run."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little") & 0x7FFFFFFF


def condition_id(scenario: Scenario) -> int:
    """Stable identifier of a condition: a hash of ``scenario.identity()``, its
    scenario's name and every field (the seed scenario's fields alone, as before
    scenarios had names; a knob declared ``id_if_changed`` only when it is not at
    its default, as before it existed)."""
    payload = json.dumps({k: repr(v) for k, v in sorted(scenario.identity().items())})
    return stable_hash32(payload)


@jax.jit
def _rep_keys(seed: jax.Array, cond: jax.Array, reps: jax.Array) -> jax.Array:
    base = jax.random.fold_in(jax.random.PRNGKey(seed), cond)
    return jax.vmap(lambda r: jax.random.fold_in(base, r))(reps)


# Seeds and replication indices enter the key as uint32 words, so each must lie in
# [0, 2**32): a larger value would silently alias a smaller one.
UINT32_LIMIT = 2**32


def check_seed(seed: object) -> int:
    """``seed`` as an int if it is an integer in [0, 2**32), else a ValueError."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise ValueError(f"seed must be an integer in [0, 2**32), got {seed!r}")
    if not 0 <= int(seed) < UINT32_LIMIT:
        raise ValueError(f"seed must lie in [0, 2**32) = [0, {UINT32_LIMIT - 1}], got {seed}")
    return int(seed)


def replication_keys(seed: int, dgp: Scenario, reps: Sequence[int] | np.ndarray) -> jax.Array:
    """Raw uint32 keys, shape (len(reps), 2), one per replication index.

    ``seed`` and every index must lie in [0, 2**32) (a ValueError otherwise).
    """
    seed = check_seed(seed)
    reps = np.asarray(reps)
    if reps.size == 0:
        reps = reps.astype(np.int64)
    if reps.ndim != 1 or not np.issubdtype(reps.dtype, np.integer):
        raise ValueError("replication indices must be a 1-d array of integers in [0, 2**32)")
    if reps.size and (reps.min() < 0 or reps.max() >= UINT32_LIMIT):
        raise ValueError(
            f"replication indices must lie in [0, 2**32), got {reps.min()}..{reps.max()}"
        )
    return _rep_keys(jnp.uint32(seed), jnp.uint32(condition_id(dgp)), jnp.asarray(reps, jnp.uint32))


def data_keys(rep_keys: jax.Array) -> jax.Array:
    """The data stream of each replication key."""
    return jax.vmap(lambda k: jax.random.fold_in(k, DATA_STREAM))(rep_keys)


def method_keys(rep_keys: jax.Array, method: str) -> jax.Array:
    """The stream a method draws from for each replication (e.g. NUTS)."""
    tag = stable_hash32(method)
    return jax.vmap(lambda k: jax.random.fold_in(jax.random.fold_in(k, METHOD_STREAM), tag))(
        rep_keys
    )
