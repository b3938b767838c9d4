"""Posterior draws of the collapsed models for many replications at once.

:func:`sample` runs batched NUTS (:mod:`mlmbias.bayes.sampler`) on the
collapsed densities of :mod:`mlmbias.bayes.collapsed` and returns, per
replication and chain, draws of (mu, beta, contextual, sigma, sigma_a): with p
within covariates and q level-2 covariates, of mu, beta and contextual per x,
beta per z, sigma and sigma_a, keyed (estimand, term) as :func:`quantity_keys`
lists them.

Replication i with key k_i always gives the same numbers for the same batch
size and backend, whichever other replications share its batch: its chains
are keyed by ``split(k_i, chains)``, and every static shape that depends on
data (the number of size classes, see ``ClassSums``) is a function of the
replication's own data alone (:func:`class_tier`).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mlmbias.bayes import collapsed as C
from mlmbias.bayes.options import BayesSettings
from mlmbias.bayes.sampler import NutsSettings, nuts_batch
from mlmbias.groupstats import GroupStats

QUANTITIES = ("mu", "beta", "contextual", "sigma", "sigma_a")  # the one-covariate order


def quantity_keys(p: int, q: int) -> tuple[tuple[str, str], ...]:
    """(estimand, term) of each sampled quantity, in the order of ``Draws.values``:
    mu, beta per x, contextual per x, beta per z (delta), sigma, sigma_a. For
    p = 1, q = 0 that is ``QUANTITIES``. The contextual slots of a model without
    a contextual effect (and mu and z in fe) hold draws of unused slots."""
    return (
        (("mu", ""),)
        + tuple(("beta", f"x{j}") for j in range(p))
        + tuple(("contextual", f"x{j}") for j in range(p))
        + tuple(("beta", f"z{j}") for j in range(q))
        + (("sigma", ""), ("sigma_a", ""))
    )


QUANTITY_KEYS = quantity_keys(1, 0)
_MIN_TIER = 16


class Draws(NamedTuple):
    """Host (numpy) output for a set of replications."""

    values: np.ndarray  # (rep, chains, draws, quantities) in the order of ``keys``
    divergences: np.ndarray  # (rep,) post-warm-up divergent transitions, all chains
    step_size: np.ndarray  # (rep, chains)
    accept_prob: np.ndarray  # (rep, chains)
    num_steps: np.ndarray  # (rep,) mean leapfrog steps per draw
    # (batches, 2) per compiled batch, summed over its iterations (warm-up and
    # draws): the mean and the maximum leapfrog steps across the batch's chains
    batch_steps: np.ndarray
    keys: tuple[tuple[str, str], ...] = QUANTITY_KEYS  # (estimand, term) per quantity
    # (rep,) bool: the engine's own convergence check, where it has one; when set
    # it replaces split R-hat and bulk ESS in the methods' ``converged``
    checks: np.ndarray | None = None
    # engine-specific per-replication diagnostics, name -> (rep,) array (the grid
    # engine's edge mass and refinement change), or None
    diagnostics: dict[str, np.ndarray] | None = None

    def get(self, name: str, term: str | None = None) -> np.ndarray:
        """(rep, chains, draws) draws of one quantity: ``name`` ("mu", "beta",
        "contextual", "sigma", "sigma_a") and ``term`` ("x0", ..., "z0", ...;
        default "x0" for beta and contextual, "" for the others)."""
        if term is None:
            term = "x0" if name in ("beta", "contextual") else ""
        return self.values[..., self.keys.index((name, term))]

    def lockstep_waste(self) -> float:
        """Share of the leapfrog steps paid for that no chain needed.

        A vmapped NUTS iteration lasts as long as the longest trajectory among
        the batch's chains, so the batch pays the maximum steps while its chains
        use their mean: waste = 1 - sum(mean) / sum(max), over every iteration
        (warm-up included) of every batch. 0 for a batch of one chain.
        """
        used, paid = np.asarray(self.batch_steps, float).sum(axis=0)
        return float(1.0 - used / paid) if paid > 0 else float("nan")


def class_tier(distinct: int, n_regions: int) -> int:
    """Size-class slots for a panel with ``distinct`` region sizes: R when R <= 16,
    else the smallest of 16, 32, 64, ... (capped at R) that holds them."""
    if n_regions <= _MIN_TIER:
        return n_regions
    m = _MIN_TIER
    while m < distinct:
        m *= 2
    return min(m, n_regions)


def _initial(rd: C.RegionData, cs: C.ClassSums, spec: C.LinearSpec, mode: str):
    """Centre of the initial values and a guess of the posterior variances (unconstrained)."""
    u = C.initial_center(rd, spec)
    n_tot = jnp.sum(rd.n)
    n_reg = jnp.sum(rd.n > 0)
    var_u = jnp.stack(
        [
            0.5 / jnp.maximum(n_tot - n_reg, 1.0),
            jnp.where(spec.sa_sampled > 0, 2.0 / jnp.maximum(n_reg, 1.0), 1.0),
        ]
    )
    if mode == "coefficients":
        return u, var_u, jnp.zeros(2)
    sigma, sigma_a, _ = C.scales(spec, u)
    post = C.coefficient_posterior(spec, cs, sigma, sigma_a)
    # the sampler moves in the centred coordinates theta_c (collapsed.Centring)
    cov = C.coefficient_covariance_centred(post)
    sd = jnp.sqrt(jnp.diag(cov))
    centre = jnp.concatenate([C.to_centred(post.centring, post.mean), u])
    spread = jnp.concatenate([2.0 * sd, jnp.ones(2)])
    return centre, jnp.concatenate([sd**2, var_u]), spread


def lockstep_steps(warmup_steps: jax.Array, draw_steps: jax.Array) -> jax.Array:
    """(2,): over the iterations of a batch whose chains run in lockstep, the sum of
    the mean and the sum of the maximum leapfrog steps across chains.

    ``warmup_steps`` (chains, warmup) and ``draw_steps`` (chains, draws) are the
    per-iteration step counts of every chain of the batch.
    """
    steps = jnp.concatenate([warmup_steps.astype(jnp.int32), draw_steps.astype(jnp.int32)], axis=1)
    return jnp.stack([steps.mean(axis=0).sum(), steps.max(axis=0).sum()])


def named_outputs(spec, named, sigma, sigma_a):
    """The row of ``Draws.values``: the read-out coefficients, sigma, sigma_a."""
    if isinstance(spec, C.GeneralSpec):
        return jnp.concatenate([named, jnp.stack([sigma, sigma_a])])
    return jnp.stack([named[0], named[1], named[2], sigma, sigma_a])


def readout_outputs(key, u, cs, spec):
    """One draw of every quantity of :func:`quantity_keys` given u = (log sigma, v):
    theta drawn exactly from its Gaussian conditional, then read out."""
    sigma, sigma_a, _ = C.scales(spec, u)
    theta = C.draw_coefficients(key, C.coefficient_posterior(spec, cs, sigma, sigma_a))
    return named_outputs(spec, spec.readout @ theta, sigma, sigma_a)


def draw_outputs(mode: str, key, z, cs, spec):
    """One draw of every quantity of :func:`quantity_keys` from the unconstrained
    draw ``z`` of the sampled density: with ``mode`` "coefficients" the
    coefficients are drawn exactly from ``C.coefficient_posterior`` given the
    draw's (sigma, sigma_a), with "intercepts" they are read from ``z``."""
    if mode == "coefficients":
        return readout_outputs(key, z[-2:], cs, spec)
    k = spec.loc.shape[-1]
    sigma, sigma_a, _ = C.scales(spec, z[-2:])
    theta = C.to_theta(C.centring(spec, cs), z[:k])
    return named_outputs(spec, spec.readout @ theta, sigma, sigma_a)


def chain_outputs(mode: str, key, zs, cs, spec):
    """(draws, quantities): :func:`draw_outputs` of each draw ``zs`` (draws, dim) of
    one chain, draw i keyed by ``fold_in(key, i)``."""
    ks = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(zs.shape[0]))
    return jax.vmap(lambda kk, z: draw_outputs(mode, kk, z, cs, spec))(ks, zs)


def logdensity_of(mode: str):
    """The sampled density of a collapse mode: ``logdensity(z, cs, spec)``."""
    return C.logdensity_scales if mode == "coefficients" else C.logdensity_full


def replication_setup(stats, ids, spec, mode: str, num_classes: int):
    """Per replication of a batch (vmapped): the class sums and the initial
    values' centre, variance guess and spread (see :func:`_initial`)."""
    rd = C.region_data(stats)
    cs = jax.vmap(lambda r, i: C.class_sums(r, i, num_classes))(rd, ids)
    centre, var0, spread = jax.vmap(lambda r, c: _initial(r, c, spec, mode))(rd, cs)
    return cs, centre, var0, jnp.where(spread > 0, spread, 1.0)


def nuts_chains(keys, data, centre, var0, spread, logdensity, spec, nuts, chains, outputs):
    """Batched NUTS over replications x chains (traced inside a jitted program):
    each replication's key split per chain into init, NUTS and read-out keys, the
    chains started at ``centre`` + a uniform jitter times ``spread``, the data
    repeated per chain, and the draws read out by ``outputs(key, zs, data)``.
    Returns the program's tuple: values (rep, chains, draws, quantities),
    divergences, step sizes, acceptance, mean steps per draw and the batch's
    lockstep steps. The collapsed models and the random-slope ones share it."""
    n_rep = keys.shape[0]

    def per_chain(a):
        return jnp.repeat(a, chains, axis=0)

    chain_keys = jax.vmap(lambda k: jax.random.split(k, chains))(keys).reshape(-1, 2)
    k_init, k_nuts, k_post = jnp.moveaxis(
        jax.vmap(lambda k: jax.random.split(k, 3))(chain_keys), 1, 0
    )
    dim = centre.shape[-1]
    jitter = jax.vmap(lambda k: jax.random.uniform(k, (dim,), minval=-1.0, maxval=1.0))(k_init)
    z0 = per_chain(centre) + jitter * per_chain(spread)
    data_c = jax.tree.map(per_chain, data)
    out = nuts_batch(
        k_nuts,
        z0,
        logdensity,
        (data_c, spec),
        nuts,
        data_axes=(0, None),
        inverse_mass=per_chain(var0),
    )
    values = jax.vmap(outputs)(k_post, out.z, data_c)
    return (
        values.reshape(n_rep, chains, nuts.num_samples, values.shape[-1]),
        out.diverging.sum(axis=-1).reshape(n_rep, chains).sum(axis=1),
        out.step_size.reshape(n_rep, chains),
        out.accept_prob.reshape(n_rep, chains),
        out.num_steps.mean(axis=-1).reshape(n_rep, chains).mean(axis=1),
        lockstep_steps(out.warmup_num_steps, out.num_steps),
    )


@functools.cache
def _program(mode: str, chains: int, nuts: NutsSettings, num_classes: int):
    """The jitted batch program for fixed settings (compiled once per input shape)."""
    logdensity = logdensity_of(mode)

    def run(keys, stats, ids, spec):
        cs, centre, var0, spread = replication_setup(stats, ids, spec, mode, num_classes)

        def outputs(k, zs, c):
            return chain_outputs(mode, k, zs, c, spec)

        return nuts_chains(keys, cs, centre, var0, spread, logdensity, spec, nuts, chains, outputs)

    return jax.jit(run)


def nuts_settings(settings: BayesSettings) -> NutsSettings:
    return NutsSettings(
        num_warmup=settings.warmup,
        num_samples=settings.draws,
        dense_mass=settings.dense_mass,
        target_accept_prob=settings.target_accept,
        max_tree_depth=settings.max_tree_depth,
    )


def sample(model: str, keys, stats: GroupStats, settings: BayesSettings) -> Draws:
    """Draws of ``model`` for every replication of ``stats`` (rep, R), keyed by
    ``keys`` (rep, 2), from the engine ``settings.engine`` names."""
    # the other engines build on this module, and chees imports BlackJAX: each is
    # imported when chosen, so NUTS never pays for them
    if settings.engine == "grid":
        from mlmbias.bayes.grid import sample_grid as engine
    elif settings.engine == "chees":
        from mlmbias.bayes.chees import sample_chees as engine
    else:
        engine = sample_nuts
    return engine(model, keys, stats, settings)


def with_steps(program, spec):
    """The ``call(keys, stats, ids)`` that :func:`run_batches` runs, for a jitted
    ``program(keys, stats, ids, spec)`` whose last output is the batch's lockstep
    steps (:func:`lockstep_steps`) and the others per replication."""

    def call(k, s, i):
        *out, steps = program(k, s, i, spec)
        return tuple(out), steps

    return call


def run_batches(keys, stats: GroupStats, batch_size: int, program_for_tier):
    """Run a batch program over every replication, by size-class tier and in batches.

    Replications are grouped by their size-class tier (:func:`class_tier`) and
    run in batches of ``batch_size``; a short last batch is padded by repeating
    its last replication, so one compiled program serves every batch of a tier.
    ``program_for_tier(tier)`` returns ``call(keys, stats, ids)`` giving
    ``(per_replication, per_batch)``: two pytrees of arrays, the first with a
    leading replication axis. Returns the first assembled over all replications
    (host numpy, in their original order) and the list of the second per batch.
    """
    keys = np.asarray(keys)
    stats = GroupStats(*(np.asarray(a) for a in stats))
    n_rep, n_regions = stats.n.shape
    ids, _ = C.size_classes(stats.n)
    distinct = ids.max(axis=1) + 1
    tiers = np.array([class_tier(int(d), n_regions) for d in distinct])
    parts: list[tuple[np.ndarray, object]] = []
    per_batch: list[object] = []
    for tier in np.unique(tiers):
        call = program_for_tier(int(tier))
        members = np.flatnonzero(tiers == tier)
        for start in range(0, len(members), batch_size):
            idx = members[start : start + batch_size]
            padded = np.concatenate([idx, np.full(batch_size - len(idx), idx[-1])])
            rep_out, batch_out = jax.device_get(
                call(
                    jnp.asarray(keys[padded]),
                    GroupStats(*(jnp.asarray(a[padded]) for a in stats)),
                    jnp.asarray(ids[padded]),
                )
            )
            n = len(idx)
            parts.append((idx, jax.tree.map(lambda a: np.asarray(a)[:n], rep_out)))  # noqa: B023
            per_batch.append(batch_out)

    def assemble(*leaves):
        first = leaves[0]
        arr = np.empty((n_rep, *first.shape[1:]), first.dtype)
        for (idx, _), leaf in zip(parts, leaves, strict=True):
            arr[idx] = leaf
        return arr

    return jax.tree.map(assemble, *(out for _, out in parts)), per_batch


def sample_nuts(model: str, keys, stats: GroupStats, settings: BayesSettings) -> Draws:
    """Batched NUTS draws of ``model`` (the ``nuts`` engine), in batches of
    ``settings.batch_size`` replications by size-class tier (:func:`run_batches`)."""
    spec = C.linear_spec(model, settings.priors, stats.p, stats.q)
    nuts = nuts_settings(settings)

    def program_for_tier(tier):
        return with_steps(_program(settings.collapse, settings.chains, nuts, tier), spec)

    fields, steps = run_batches(keys, stats, settings.batch_size, program_for_tier)
    return Draws(
        *fields,
        batch_steps=np.stack([np.asarray(s) for s in steps]),
        keys=quantity_keys(stats.p, stats.q),
    )
