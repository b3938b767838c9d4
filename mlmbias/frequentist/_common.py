"""What every frequentist method shares: result columns, quantiles, the batch wrapper.

A method's core is a pure function ``core(stats) -> {(estimand, term): {column: array}}``
of one replication's ``GroupStats`` (arrays of leading shape (R,)). The terms are
positional codes: "x0", "x1", ... for the within-varying covariates, "z0", ...
for the group-level ones, "" for a test; the caller maps them to column names.
For an interval it
returns the degrees of freedom of its t reference distribution (``inf`` for the
normal) in the column ``INTERVAL_DF``; ``batch_method`` jits the core, vmaps it
over the replication axis, turns estimate +- q * se into ``lower`` and ``upper``
with one jitted quantile function shared by every method (so that the t
quantile, whose incomplete beta function is slow to compile, is compiled once
per batch shape rather than once per method) and converts the output into
NumPy arrays: the only place where arrays leave JAX.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from mlmbias import flags
from mlmbias.frequentist._dist import chi2_sf, norm_ppf, t_ppf
from mlmbias.frequentist._linalg import Layout
from mlmbias.groupstats import GroupStats
from mlmbias.registry import Batch

Key = tuple[str, str]  # (estimand, term)
Core = Callable[[GroupStats], dict[Key, dict[str, jax.Array]]]

# Column (removed from the output) carrying an interval's degrees of freedom.
INTERVAL_DF = "_interval_df"
NORMAL = float("inf")


def bit(condition: jax.Array, code: int) -> jax.Array:
    """``code`` where ``condition`` holds, else 0, as int32."""
    return jnp.where(condition, jnp.int32(code), jnp.int32(0))


@jax.jit
def critical_value(level: jax.Array, df: jax.Array) -> jax.Array:
    """Two-sided critical value at ``level``: t(df), or normal where df is inf.

    NaN where ``df`` <= 0.
    """
    p = 0.5 + level / 2.0
    normal = jnp.isinf(df)
    return jnp.where(normal, norm_ppf(p), t_ppf(p, jnp.where(normal, 1.0, df)))


def estimand(
    estimate: jax.Array,
    se: jax.Array,
    interval_df: jax.Array | float,
    flag: jax.Array,
    **diagnostics: jax.Array,
) -> dict[str, jax.Array]:
    """Columns of one estimand with an interval estimate +- q * se, q from
    t(interval_df) (``NORMAL``: the normal); no p-value; NONFINITE when due."""
    bad = ~(jnp.isfinite(estimate) & jnp.isfinite(se))
    return {
        "estimate": estimate,
        "se": se,
        "p_value": jnp.asarray(jnp.nan),
        "flag": jnp.asarray(flag, jnp.int32) | bit(bad, flags.NONFINITE),
        INTERVAL_DF: jnp.asarray(interval_df, float),
        **diagnostics,
    }


def x_term(j: int) -> str:
    return f"x{j}"


def z_term(j: int) -> str:
    return f"z{j}"


TEST: Key = ("test", "")


def coefficients(
    lay: Layout,
    blocks: Sequence[tuple[str, str]],
    coef: jax.Array,
    cov: jax.Array,
    interval_df: jax.Array | float,
    flag: jax.Array,
    **diagnostics: jax.Array,
) -> dict[Key, dict[str, jax.Array]]:
    """One estimand per coefficient of the column ``blocks`` of ``lay``.

    ``blocks`` pairs a block ("x", "xbar", "z") with its estimand ("beta",
    "contextual"); the terms are "x{j}" for the x and xbar blocks, "z{j}" for z.
    """
    out = {}
    for block, name in blocks:
        code = z_term if block == "z" else x_term
        for j in range(lay.width[block]):
            i = lay.index(block, j)
            out[(name, code(j))] = estimand(
                coef[i], jnp.sqrt(cov[i, i]), interval_df, flag, **diagnostics
            )
    return out


def chi2_test(
    statistic: jax.Array, df: int, flag: jax.Array, **diagnostics: jax.Array
) -> dict[str, jax.Array]:
    """Columns of a test: ``estimate`` is the statistic, the p-value is chi2(df).

    NONFINITE when the statistic is not finite (a negative statistic has a NaN
    p-value; the method flags why).
    """
    p = chi2_sf(statistic, df)
    bad = ~jnp.isfinite(statistic)
    return {
        "estimate": statistic,
        "se": jnp.asarray(jnp.nan),
        "lower": jnp.asarray(jnp.nan),
        "upper": jnp.asarray(jnp.nan),
        "p_value": p,
        "flag": jnp.asarray(flag, jnp.int32) | bit(bad, flags.NONFINITE),
        "df": jnp.asarray(df, float),
        **diagnostics,
    }


def _with_interval(cols: dict[str, jax.Array], level: jax.Array) -> dict[str, np.ndarray]:
    cols = dict(cols)
    if INTERVAL_DF in cols:
        q = critical_value(level, cols.pop(INTERVAL_DF))
        est, se = cols["estimate"], cols["se"]
        cols = {"estimate": est, "se": se, "lower": est - q * se, "upper": est + q * se, **cols}
    return {k: np.asarray(v) for k, v in cols.items()}


def batch_method(core: Core) -> Callable[[Batch, float, Mapping[str, Any]], dict]:
    """The registry's batch function for ``core``: jit(vmap(core)) over replications.

    The methods take no options; ``options`` is accepted for the registry's
    interface and ignored.
    """
    compiled = jax.jit(jax.vmap(core))

    def fit(
        batch: Batch, level: float, options: Mapping[str, Any] | None = None
    ) -> dict[Key, dict[str, np.ndarray]]:
        stats = GroupStats(*(jnp.asarray(a, dtype=float) for a in batch.stats))
        out = compiled(stats)
        level = jnp.asarray(level, dtype=float)
        return {e: _with_interval(cols, level) for e, cols in out.items()}

    fit.compiled = compiled
    fit.__doc__ = core.__doc__
    return fit
