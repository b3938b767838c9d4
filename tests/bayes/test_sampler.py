"""Batched NUTS on known targets."""

import jax
import jax.numpy as jnp
import numpy as np
from scipy.stats import norm

from mlmbias.bayes.sampler import NutsSettings, nuts_batch
from mlmbias.bayes.summary import mcse_mean


def _gauss(z, mean, sd):
    return jnp.sum(-0.5 * ((z - mean) / sd) ** 2)


def test_batched_nuts_recovers_gaussians():
    """Each batch entry has its own target (its own adaptation): means within
    MCSE (12 comparisons at 0.001 / 12), no divergences."""
    n = 6
    mean = jnp.linspace(-50.0, 50.0, n)[:, None] * jnp.array([[1.0, -1.0]])
    sd = jnp.stack([jnp.geomspace(1e-2, 1e2, n), jnp.full(n, 3.0)], axis=1)
    keys = jax.random.split(jax.random.PRNGKey(0), n)
    settings = NutsSettings(num_warmup=300, num_samples=400)
    out = jax.jit(lambda k, z0, m, s: nuts_batch(k, z0, _gauss, (m, s), settings))(
        keys, jnp.zeros((n, 2)), mean, sd
    )
    z = np.asarray(out.z)  # (n, draws, 2)
    assert not np.asarray(out.diverging).any()
    crit = norm.ppf(1 - 1e-3 / 12 / 2)
    for j in range(2):
        x = z[:, None, :, j]
        err = (x.mean(axis=(1, 2)) - np.asarray(mean[:, j])) / mcse_mean(x)
        assert np.all(np.abs(err) < crit), err
    # Each entry adapts to its own target: the step a leapfrog takes along a
    # coordinate, step_size * sqrt(inverse mass), follows that coordinate's SD over
    # four decades (0.01 to 100), within a factor of 3 of it.
    step = np.asarray(out.step_size)[:, None] * np.sqrt(np.asarray(out.inverse_mass))
    ratio = step / np.asarray(sd)
    assert np.all((ratio > 1 / 3) & (ratio < 3)), ratio
    assert np.ptp(np.log10(step[:, 0])) > 3  # and so spans the four decades too


def test_dense_mass_runs():
    settings = NutsSettings(num_warmup=100, num_samples=50, dense_mass=True)
    keys = jax.random.split(jax.random.PRNGKey(1), 2)
    out = nuts_batch(
        keys, jnp.zeros((2, 3)), _gauss, (jnp.zeros(3), jnp.ones(3)), settings, (None, None)
    )
    assert out.z.shape == (2, 50, 3)
    # warm-up step counts come back too (for the lockstep accounting)
    assert out.warmup_num_steps.shape == (2, 100)
    assert np.all(np.asarray(out.warmup_num_steps) >= 1)
