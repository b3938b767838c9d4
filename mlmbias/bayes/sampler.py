"""Batched NUTS: one jitted program for a batch of replications x chains.

Built on NumPyro's functional interface, :func:`numpyro.infer.hmc.hmc` with a
``potential_fn_gen``: the data are arguments, not constants, so the compiled
kernel is reused for every batch of the same shape. Each chain runs its own
warm-up (NumPyro's windowed adaptation of the step size by dual averaging and
of a diagonal or dense mass matrix), so every replication and every chain has
its own adaptation. ``jax.vmap`` runs the flattened (replication x chain) axis
in lockstep; a NUTS step of the batch lasts as long as its longest trajectory,
which is why moderate batches are fastest on CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from numpyro.infer.hmc import hmc
from numpyro.infer.util import ParamInfo

LogDensity = Callable[..., jax.Array]  # logdensity(z, *data) -> scalar


class NutsSettings(NamedTuple):
    """Fixed settings of a run: static under jit (a change recompiles)."""

    num_warmup: int = 1000
    num_samples: int = 1000
    dense_mass: bool = False
    target_accept_prob: float = 0.8
    max_tree_depth: int = 10


class ChainOutput(NamedTuple):
    """Post-warm-up output of one chain (leading axes added by vmap)."""

    z: jax.Array  # (draws, dim) unconstrained draws
    diverging: jax.Array  # (draws,) bool
    num_steps: jax.Array  # (draws,) leapfrog steps per draw
    step_size: jax.Array  # () adapted step size
    accept_prob: jax.Array  # () mean acceptance probability after warm-up
    warmup_num_steps: jax.Array  # (warmup,) int32 leapfrog steps per warm-up iteration
    inverse_mass: jax.Array  # (dim,) or, dense, (dim, dim) adapted inverse mass matrix


def nuts_chain(
    key: jax.Array,
    z0: jax.Array,
    logdensity: LogDensity,
    data: tuple[Any, ...],
    settings: NutsSettings,
    inverse_mass: jax.Array | None = None,
) -> ChainOutput:
    """Warm up and sample one chain from ``logdensity(z, *data)`` starting at ``z0``.

    ``inverse_mass`` (dim,) is an initial guess of the posterior variances, used
    until the first mass-matrix window of the warm-up ends (default: ones).
    Pure: the key is split, nothing raises; a non-finite density shows up as
    divergences and non-finite draws, not as an error.
    """

    def potential_gen(*args):
        return lambda z: -logdensity(z, *args)

    init_kernel, sample_kernel = hmc(potential_fn_gen=potential_gen, algo="NUTS")
    pe, grad = jax.value_and_grad(potential_gen(*data))(z0)
    if inverse_mass is not None and settings.dense_mass:
        inverse_mass = jnp.diag(inverse_mass)
    state = init_kernel(
        ParamInfo(z0, pe, grad),
        settings.num_warmup,
        dense_mass=settings.dense_mass,
        target_accept_prob=settings.target_accept_prob,
        max_tree_depth=settings.max_tree_depth,
        inverse_mass_matrix=inverse_mass,
        model_args=data,
        rng_key=key,
    )

    def warm(s, _):
        s = sample_kernel(s, model_args=data)
        return s, s.num_steps.astype(jnp.int32)

    def draw(s, _):
        s = sample_kernel(s, model_args=data)
        return s, (s.z, s.diverging, s.num_steps)

    warm_steps = jnp.zeros(0, jnp.int32)
    if settings.num_warmup:
        state, warm_steps = jax.lax.scan(warm, state, None, length=settings.num_warmup)
    state, (z, diverging, num_steps) = jax.lax.scan(draw, state, None, length=settings.num_samples)
    return ChainOutput(
        z,
        diverging,
        num_steps,
        state.adapt_state.step_size,
        state.mean_accept_prob,
        warm_steps,
        state.adapt_state.inverse_mass_matrix,
    )


def nuts_batch(
    keys: jax.Array,
    z0: jax.Array,
    logdensity: LogDensity,
    data: tuple[Any, ...],
    settings: NutsSettings,
    data_axes: tuple[Any, ...] | None = None,
    inverse_mass: jax.Array | None = None,
) -> ChainOutput:
    """:func:`nuts_chain` vmapped over a leading axis of keys, initial values, data
    and (when given) initial inverse masses.

    ``data_axes`` gives ``in_axes`` for each element of ``data`` (default 0:
    batched); use ``None`` for arguments shared by the batch. Chains are
    simply more entries of the batch axis.
    """
    axes = (0,) * len(data) if data_axes is None else data_axes

    if inverse_mass is None:

        def one(k, z, *args):
            return nuts_chain(k, z, logdensity, args, settings)

        return jax.vmap(one, in_axes=(0, 0, *axes))(keys, z0, *data)

    def one_mass(k, z, m, *args):
        return nuts_chain(k, z, logdensity, args, settings, m)

    return jax.vmap(one_mass, in_axes=(0, 0, 0, *axes))(keys, z0, inverse_mass, *data)
