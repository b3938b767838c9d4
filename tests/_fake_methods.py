"""Small stand-in methods for testing the runner independently of the estimators."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mlmbias.registry import MethodSpec


@jax.jit
def _within(stats, keys):
    wxx = jnp.sum(stats.cross[..., 0, 0], axis=-1)
    wxy = jnp.sum(stats.cross[..., 0, 1], axis=-1)
    beta = wxy / wxx
    jitter = jax.vmap(lambda k: jax.random.normal(k))(keys)
    return beta, 1.0 / jnp.sqrt(wxx), jitter


def fit_within(batch, level, options):
    beta, se, _ = _within(batch.stats, batch.keys)
    z = 1.8807936081512509  # normal quantile for 0.94
    cols = {
        "estimate": beta,
        "se": se,
        "lower": beta - z * se,
        "upper": beta + z * se,
        "p_value": jnp.full_like(beta, jnp.nan),
        "flag": jnp.zeros(beta.shape, int),
    }
    return {("beta", "x0"): {k: np.asarray(v) for k, v in cols.items()}}


def fit_keyed(batch, level, options):
    """Depends on the method keys, as a sampler would."""
    beta, se, jitter = _within(batch.stats, batch.keys)
    est = beta + 0.01 * jitter
    cols = {
        "estimate": est,
        "se": se,
        "lower": est - 2 * se,
        "upper": est + 2 * se,
        "p_value": jnp.full_like(est, jnp.nan),
        "flag": jnp.zeros(est.shape, int),
        "converged": jnp.ones(est.shape, bool),
    }
    return {("beta", "x0"): {k: np.asarray(v) for k, v in cols.items()}}


def fit_boom(batch, level, options):
    if batch.stats.n.shape[-1] == 4:
        raise RuntimeError("boom at R=4")
    return fit_within(batch, level, options)


SPECS = [
    MethodSpec("t-within", "frequentist", "_fake_methods:fit_within", ("beta",), "test"),
    MethodSpec("t-keyed", "bayes", "_fake_methods:fit_keyed", ("beta",), "test"),
    MethodSpec("t-boom", "frequentist", "_fake_methods:fit_boom", ("beta",), "test"),
]


def register_all():
    from mlmbias.registry import register

    for spec in SPECS:
        register(spec)


@pytest.fixture(autouse=True)
def fake_methods():
    """Import into a test module to have the stand-ins registered around each test."""
    from mlmbias.registry import unregister

    register_all()
    yield
    for spec in SPECS:
        unregister(spec.name)
