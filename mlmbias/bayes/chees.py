"""The ``chees`` engine: ChEES-HMC with many short chains, checked by nested R-hat.

Method. ChEES-HMC (Hoffman, Radul and Sountsov 2021, "An adaptive MCMC scheme
for setting trajectory lengths in Hamiltonian Monte Carlo", AISTATS) runs
jittered HMC on many chains of one posterior and adapts a single step size
(dual averaging of the harmonic-mean acceptance towards 0.651) and a single
trajectory length (Adam on the Change in the Estimator of the Expected Square
criterion, computed across the chains) for all of them. The trajectory is
jittered by a quasi-random Halton sequence indexed by the iteration, so at
every iteration all chains of a posterior take the same number of leapfrog
steps: vmapped, the chains of a posterior wait for nothing (NUTS chains wait
for the longest trajectory of the batch: 73-85 % of the steps paid,
bench/RESULTS.md; for what remains across replications see Lockstep below). We use
BlackJAX's implementation: ``blackjax.chees_adaptation`` (with Adam from
optax) for the warm-up and ``blackjax.dynamic_hmc`` with the adapted step size,
trajectory length and diagonal mass matrix for the draws.

Per replication (``jax.vmap`` over the batch, nothing shared between
replications, so a replication's draws do not depend on its batch companions):
the density is the collapsed one of :mod:`mlmbias.bayes.draws` over (log
sigma, log sigma_a), the coefficients drawn exactly per draw from
``C.coefficient_posterior`` (collapse "coefficients"; "intercepts" is a
ConfigError: sampling the coefficients too, ChEES's single step size per
posterior diverges in the funnel of sigma_a and the coefficients, in 3 of 4
replications of the seed's scenario when tried), in coordinates whitened by
the analytic guess of the posterior variances (``draws._initial``).
``chees_chains`` chains form ``chees_superchains`` superchains: the chains of
a superchain start from one point, drawn like a NUTS chain's start (the centre
plus uniform jitter of the spread). One ChEES adaptation over all chains
(``chees_warmup`` iterations, BlackJAX's ensemble estimate of a diagonal mass
matrix over the last half of it), then ``chees_draws`` draws per chain.

Defaults: 16 chains (4 superchains of 4) x (300 warm-up + 250 draws). The
two-dimensional collapsed posterior needs few leapfrog steps per draw (3-4 on
average in the seed's scenario) and ChEES's draws are nearly independent:
measured on 64 replications of bayes-mundlak (one CPU thread, batches of 16),
the smallest bulk ESS over beta, contextual, sigma and sigma_a was 1400-2000
at R = 50 and R = 10 (median 2600-3900 of the 4000 draws; NUTS's default: 4 x
1000 draws), every replication converged, none diverged. Halving the draws
halves the ESS (min 710) for 15 % more posteriors/s; 8 chains (4 superchains
of 2) gave min ESS 480, too close to NUTS's ess_min of 400; 150 warm-up
iterations ran about 1.4 times as fast with min ESS 830 or more, but 300 keep a
margin for harder posteriors than the seed's (the warm-up's ChEES steps are
clipped at 0.35 in log trajectory length, from one leapfrog step at the
start, and the mass matrix is estimated over its second half). SBC and
bench/bench_chees.py ran at these defaults. 4 superchains give nested R-hat's
between-superchain variance 3 degrees of freedom. BlackJAX's diagonal mass
matrix is worth its cost: without it (the analytic guess only) the same
replications ran about 1.35 times as fast but with min ESS 300 instead of 1060
(R = 10, batches of 64).

Lockstep: within a replication every chain takes the same number of leapfrog
steps at every iteration (a batch of one wastes nothing), but the replications
of a batch have their own step sizes and trajectory lengths (2.5 to 10 steps
per draw across the seed's replications at R = 10) and a vmapped batch waits
for its longest: 35-50 % of the steps paid are waste in batches of 16, 45-68 %
in batches of 256 (bench/results/chees.json), so batches of 16 (the CPU
default) are faster on CPU.

Convergence: split R-hat needs long chains; with many short ones it is nested
R-hat (:mod:`mlmbias.bayes.nested_rhat`, Margossian et al. 2024) that tells
whether the chains have forgotten their superchains' starting points.
``Draws.checks`` is True when nested R-hat <= ``chees_nrhat_max`` (1.01) for
every sampled quantity, no post-warm-up transition diverged and every draw is
finite; the methods' ``converged`` uses it in place of R-hat and bulk ESS.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import blackjax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from mlmbias.bayes import collapsed as C
from mlmbias.bayes import draws as D
from mlmbias.bayes.nested_rhat import nested_rhat
from mlmbias.bayes.options import BayesSettings, check_collapse
from mlmbias.groupstats import GroupStats

LEARNING_RATE = 0.025  # Adam on log trajectory length (TFP's ChEES adaptation rate)
INITIAL_STEP_SIZE = 0.5  # in the whitened coordinates


class CheesSettings(NamedTuple):
    """Fixed settings of a run: static under jit."""

    chains: int = 16
    superchains: int = 4
    warmup: int = 300
    draws: int = 250


class _WarmInfo(NamedTuple):
    num_steps: jax.Array
    divergent: jax.Array


def _warm_info(state, info, adaptation_state):
    return _WarmInfo(info.num_integration_steps, info.is_divergent)


def chees_replication(key, cs, spec, centre, var0, spread, s: CheesSettings, logdensity, outputs):
    """Warm up and sample one replication's chains (vmapped over replications).

    ``logdensity(z, cs, spec)`` is the sampled density and ``outputs(key, zs,
    cs, spec)`` turns one chain's draws into the quantities' draws (for the
    collapsed models ``D.logdensity_of(mode)`` and ``D.chain_outputs``).

    Returns (values (chains, draws, quantities), divergences (), step size (),
    acceptance (chains,), warm-up steps (warmup, chains), draw steps (draws,
    chains), nested R-hat (quantities,)). Pure: a non-finite density shows up
    as non-finite draws or divergences, not as an error.
    """
    scale = jnp.sqrt(var0)
    dim = centre.shape[0]
    m = s.chains // s.superchains
    k_init, k_warm, k_draw, k_post = jax.random.split(key, 4)
    jitter = jax.random.uniform(k_init, (s.superchains, dim), minval=-1.0, maxval=1.0)
    w0 = jnp.repeat(jitter * spread / scale, m, axis=0)  # (chains, dim) whitened

    def target(w):
        return logdensity(centre + scale * w, cs, spec)

    warmup = blackjax.chees_adaptation(
        target, s.chains, adaptation_info_fn=_warm_info, mass_matrix_estimation="diagonal"
    )
    (states, params), info = warmup.run(
        k_warm,
        w0,
        INITIAL_STEP_SIZE,
        optax.adam(LEARNING_RATE),
        s.warmup,
        max_sampling_steps=s.draws,
    )
    warm_steps = info.num_steps
    kernel = blackjax.dynamic_hmc(target, **params)

    def draw(state, k):
        state, inf = jax.vmap(kernel.step)(jax.random.split(k, s.chains), state)
        return state, (
            state.position,
            inf.is_divergent,
            inf.num_integration_steps,
            inf.acceptance_rate,
        )

    _, (w, divergent, steps, accept) = jax.lax.scan(draw, states, jax.random.split(k_draw, s.draws))
    z = centre + scale * jnp.moveaxis(w, 0, 1)  # (chains, draws, dim)
    chain_keys = jax.random.split(k_post, s.chains)
    values = jax.vmap(lambda k, zs: outputs(k, zs, cs, spec))(chain_keys, z)
    nrhat = nested_rhat(jnp.moveaxis(values, -1, 0), s.superchains)
    return (
        values,
        divergent.sum(),
        params["step_size"],
        accept.mean(axis=0),
        warm_steps,
        steps,
        nrhat,
    )


@functools.cache
def _program(mode: str, s: CheesSettings, num_classes: int, nrhat_max: float):
    """The jitted batch program of the collapsed models (compiled once per input shape)."""

    def setup(stats, ids, spec):
        return D.replication_setup(stats, ids, spec, mode, num_classes)

    return build_program(
        setup, D.logdensity_of(mode), functools.partial(D.chain_outputs, mode), s, nrhat_max
    )


def build_program(setup, logdensity, outputs, s: CheesSettings, nrhat_max: float):
    """A jitted ChEES batch program ``run(keys, stats, ids, spec)``.

    ``setup(stats, ids, spec)`` gives per replication (leading axis) the density's
    data, the initial values' centre, variance guess and spread;
    ``logdensity`` and ``outputs`` are as :func:`chees_replication` takes them
    (also used by :mod:`mlmbias.bayes.random_slopes`).
    """

    def run(keys, stats, ids, spec):
        # BlackJAX broadcasts (chains, dim) against (dim,) implicitly
        with jax.numpy_rank_promotion("allow"):
            return body(keys, stats, ids, spec)

    def body(keys, stats, ids, spec):
        cs, centre, var0, spread = setup(stats, ids, spec)
        values, div, step, accept, warm_steps, steps, nrhat = jax.vmap(
            lambda k, c, ce, v, sp: chees_replication(k, c, spec, ce, v, sp, s, logdensity, outputs)
        )(keys, cs, centre, var0, spread)
        n_rep = keys.shape[0]
        finite = jnp.isfinite(values).all(axis=(1, 2, 3))
        checks = jnp.all(nrhat <= nrhat_max, axis=-1) & (div == 0) & finite
        # lockstep: every chain of the batch, (rep x chains, iterations)
        per_chain_warm = jnp.moveaxis(warm_steps, 1, 2).reshape(n_rep * s.chains, -1)
        per_chain_draw = jnp.moveaxis(steps, 1, 2).reshape(n_rep * s.chains, -1)
        return (
            values,
            div,
            jnp.repeat(step[:, None], s.chains, axis=1),
            accept,
            steps.mean(axis=(1, 2)),
            checks,
            D.lockstep_steps(per_chain_warm, per_chain_draw),
        )

    return jax.jit(run)


def chees_settings(settings: BayesSettings) -> CheesSettings:
    return CheesSettings(
        chains=settings.chees_chains,
        superchains=settings.chees_superchains,
        warmup=settings.chees_warmup,
        draws=settings.chees_draws,
    )


def sample_chees(model: str, keys, stats: GroupStats, settings: BayesSettings) -> D.Draws:
    """ChEES-HMC draws of ``model`` for every replication (the ``chees`` engine),
    batched like NUTS's (:func:`mlmbias.bayes.draws.run_batches`)."""
    check_collapse(settings, "chees")
    s = chees_settings(settings)

    spec = C.linear_spec(model, settings.priors, stats.p, stats.q)

    def program_for_tier(tier: int):
        return D.with_steps(_program(settings.collapse, s, tier, settings.chees_nrhat_max), spec)

    fields, steps = D.run_batches(keys, stats, settings.batch_size, program_for_tier)
    *fields, checks = fields
    return D.Draws(
        *fields,
        batch_steps=np.stack([np.asarray(b) for b in steps]),
        keys=D.quantity_keys(stats.p, stats.q),
        checks=np.asarray(checks).astype(bool),
    )
