"""``hausman-wild``: the Mundlak test by the wild cluster restricted bootstrap (WCR).

The model is pooled OLS y ~ 1 + x + xbar + z, the hypothesis gamma = 0 for the p
Mundlak terms xbar, the statistic the CR1 Wald statistic (for p = 1 the square of
the CR1 t statistic, G/(G-1) (N-1)/(N-K) as Stata and ``wildboottest``). As the
Python package ``wildboottest`` (``bootstrap_type="11"``, ``impose_null=True``)
computes it: with the restricted fit (xbar dropped) and its region scores
s~_g = X_g' e~_g, a bootstrap sample y* = X b~ + v_g e~_g (one weight v_g per
region) has

    b* - b~ = M S v,    X_g' e*_g = v_g s~_g - Q_g M S v,

with M = (X'X)^-1, Q_g = X_g'X_g and S = [s~_1 .. s~_G], so the bootstrap
statistic needs only per-region K-vectors and K x K matrices: O(G^2 p) per
draw. The p-value is the share of draws whose statistic exceeds the observed
one, ties included (the randomization-test convention: v = +-1 reproduce
the observed statistic, so under full enumeration the p-value is at least 2/2^G).
``wildboottest`` counts strictly greater ones, ``mean(|t| < |t*|)``, which makes
the tie at v = +-1 a matter of rounding: its p-value equals this one or is 2/2^G
smaller (the tests compare every bootstrap statistic with its own).

Options (``[methods.hausman-wild]``): ``draws`` (default 999) and ``weights``,
"rademacher" (default) or "webb" (Webb's six-point distribution). Rademacher
weights are fully enumerated, all 2^G sign vectors of the G regions with
observations, when 2^G <= draws (decided per replication, so padding regions
change nothing); otherwise ``draws`` vectors are drawn from the replication's key
(``batch.keys``; where a caller passes none, every replication uses the key
of seed 0), so results are reproducible.

Reports ("test", ""): ``estimate`` the CR1 t statistic for p = 1 (the Wald
statistic for p > 1), ``df`` p, ``p_value`` the bootstrap p-value, ``draws``
the number of bootstrap samples, ``gamma`` the Mundlak coefficient (p = 1).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from mlmbias import flags
from mlmbias.errors import ConfigError
from mlmbias.frequentist._common import TEST, bit
from mlmbias.frequentist._linalg import (
    cr1_factor,
    group_moments,
    inv_logdet,
    layout,
    moments,
    prepare,
    solve,
)
from mlmbias.frequentist.mundlak import MUNDLAK_COLS, mundlak_active
from mlmbias.frequentist.random_effects import n_active
from mlmbias.groupstats import GroupStats
from mlmbias.registry import Batch

DEFAULT_DRAWS = 999
WEIGHTS = ("rademacher", "webb")
WEBB = np.sqrt(np.array([3.0, 2.0, 1.0, 1.0, 2.0, 3.0]) / 2.0) * np.array([-1, -1, -1, 1, 1, 1])
TIE_RTOL = 1e-9  # bootstrap statistics this close to the observed one are ties
MAP_BATCH = 32  # replications per vmapped chunk: bounds the (chunk, draws, R) arrays


def parse_options(options: Mapping[str, Any] | None) -> tuple[int, str]:
    """``draws`` and ``weights`` from the method's options; one-line errors.

    Other keys are ignored: ``fit`` passes one set of options to every method.
    """
    options = dict(options or {})
    draws = options.get("draws", DEFAULT_DRAWS)
    if isinstance(draws, bool) or not isinstance(draws, int | np.integer) or draws < 1:
        raise ConfigError(f"hausman-wild: 'draws' must be an integer >= 1, got {draws!r}")
    weights = options.get("weights", "rademacher")
    if weights not in WEIGHTS:
        raise ConfigError(
            f"hausman-wild: 'weights' must be one of {', '.join(WEIGHTS)}, got {weights!r}"
        )
    return int(draws), weights


def enumerate_signs(n: int) -> np.ndarray:
    """All 2^n vectors of +-1, (2^n, n)."""
    return np.array(list(itertools.product([-1.0, 1.0], repeat=n)))


def weight_draws(key: jax.Array, draws: int, n: int, weights: str) -> jax.Array:
    """``draws`` weight vectors for ``n`` regions, (draws, n)."""
    if weights == "rademacher":
        return jax.random.rademacher(key, (draws, n)).astype(float)
    return jnp.asarray(WEBB)[jax.random.randint(key, (draws, n), 0, 6)]


def exceed_share(statistic: jax.Array, boot: jax.Array, mask: jax.Array) -> jax.Array:
    """Share of bootstrap statistics at least the observed one, ties included.

    The weights v = +-1 reproduce the observed statistic, a tie in exact
    arithmetic that rounding decides either way; a statistic within ``TIE_RTOL``
    of the observed counts, as a randomization test counts the identity.
    """
    hits = mask & (boot >= statistic * (1.0 - TIE_RTOL))
    return jnp.sum(hits) / jnp.sum(mask)


def _wald(gamma: jax.Array, z: jax.Array, factor: jax.Array) -> jax.Array:
    """gamma' (factor * sum_g z_g z_g')^-1 gamma; z (R, p)."""
    cov = factor * z.T @ z
    if gamma.shape[0] == 1:
        return gamma[0] ** 2 / cov[0, 0]
    inv, logdet = inv_logdet(cov)
    return jnp.where(jnp.isfinite(logdet), gamma @ inv @ gamma, jnp.nan)


def wild_core(
    stats: GroupStats, v: jax.Array, mask: jax.Array | None = None, return_boot: bool = False
) -> dict:
    """The WCR bootstrap Mundlak test of one replication, given weights v (B, R);
    ``mask`` (B,) marks the rows that count (all by default)."""
    p = prepare(stats)
    k = p.p
    lay = layout(MUNDLAK_COLS, k, p.q)
    kk = lay.size
    active = mundlak_active(p, lay)
    xbar = np.zeros(kk, bool)
    xbar[lay.start["xbar"] : lay.start["xbar"] + k] = True
    w = jnp.where(p.valid, p.n, 0.0)
    m = moments(p, lay, w)
    full = solve(m, active)
    restricted = solve(m, active & ~jnp.asarray(xbar))
    both = active[:, None] & active[None, :]
    gm = group_moments(p, lay, w)
    q = jnp.where(both[None], gm[:, :kk, :kk], 0.0)  # (R, K, K)
    xy = jnp.where(active[None], gm[:, :kk, kk], 0.0)
    scores = xy - q @ full.coef  # (R, K) unrestricted
    s_r = xy - q @ restricted.coef  # (R, K) restricted
    rm = full.xtx_inv[xbar]  # (p, K) rows of M for the Mundlak terms
    factor = cr1_factor(p.n_obs, p.n_groups, n_active(lay, active))
    gamma = full.coef[xbar]
    statistic = _wald(gamma, scores @ rm.T, factor)
    a = s_r @ rm.T  # (R, p): R M s~_g
    c = jnp.einsum("pi,gij,jk,hk->gph", rm, q, full.xtx_inv, s_r)  # (R, p, R)

    def one(vb):
        gam = a.T @ vb  # (p,)
        z = vb[:, None] * a - c @ vb  # (R, p)
        return _wald(gam, z, factor)

    boot = jax.vmap(one)(v)
    if return_boot:
        return statistic, boot
    if mask is None:
        mask = jnp.ones(v.shape[0], bool)
    p_value = exceed_share(statistic, boot, mask)
    if k == 1:
        shown = gamma[0] / jnp.sqrt(factor * jnp.sum((scores @ rm.T) ** 2))
        gamma_shown = jnp.where(p.within[0], gamma[0], jnp.nan)
        shown = jnp.where(p.within[0], shown, jnp.nan)
    else:
        shown, gamma_shown = statistic, jnp.asarray(jnp.nan)
    bad = ~jnp.isfinite(shown)
    flag = bit(~p.has_within, flags.NO_WITHIN_VARIATION) | bit(bad, flags.NONFINITE)
    return {
        TEST: {
            "estimate": shown,
            "se": jnp.asarray(jnp.nan),
            "lower": jnp.asarray(jnp.nan),
            "upper": jnp.asarray(jnp.nan),
            "p_value": jnp.where(bad, jnp.nan, p_value),
            "flag": flag,
            "df": jnp.asarray(k, float),
            "draws": jnp.sum(mask).astype(float),
            "gamma": gamma_shown,
        }
    }


def enumerated_weights(valid: jax.Array, draws: int) -> tuple[jax.Array, jax.Array]:
    """The 2^G sign vectors of the G regions with observations, in rows of (draws, R).

    Row b < 2^G gives the j-th region with observations the sign of bit G-1-j of
    b (``itertools.product``'s order); the mask marks those rows. Needs 2^G <= draws.
    """
    g = jnp.sum(valid).astype(jnp.int32)
    rank = jnp.cumsum(valid.astype(jnp.int32)) - 1
    shift = jnp.clip(g - 1 - rank, 0, 30)
    rows = jnp.arange(draws, dtype=jnp.int32)
    bits = (rows[:, None] >> shift[None, :]) & 1
    v = jnp.where(valid[None, :], 2.0 * bits - 1.0, 1.0)
    return v, rows < (jnp.int32(1) << jnp.minimum(g, 30))


_COMPILED: dict[tuple[int, str], Any] = {}


def _compiled(draws: int, weights: str):
    """jit(map over replications) of the bootstrap with static draws and weights."""
    cache_key = (draws, weights)
    if cache_key not in _COMPILED:
        max_enumerated = draws.bit_length() - 1  # 2^G <= draws  <=>  G <= this

        def per_rep(args):
            key, stats = args
            n = stats.n.shape[-1]
            v = weight_draws(key, draws, n, weights)
            mask = jnp.ones(draws, bool)
            if weights == "rademacher" and max_enumerated >= 1:
                valid = stats.n > 0
                full = jnp.sum(valid) <= max_enumerated
                v_all, m_all = enumerated_weights(valid, draws)
                v = jnp.where(full, v_all, v)
                mask = jnp.where(full, m_all, mask)
            return wild_core(stats, v, mask=mask)

        def run(keys, stats):
            return jax.lax.map(per_rep, (keys, stats), batch_size=MAP_BATCH)

        _COMPILED[cache_key] = jax.jit(run)
    return _COMPILED[cache_key]


def hausman_wild(
    batch: Batch, level: float, options: Mapping[str, Any] | None = None
) -> dict[tuple[str, str], dict[str, np.ndarray]]:
    """Mundlak test by the wild cluster restricted bootstrap of the CR1 statistic."""
    draws, weights = parse_options(options)
    stats = GroupStats(*(jnp.asarray(a, dtype=float) for a in batch.stats))
    if batch.keys is None:  # a caller without keys: every replication draws with seed 0's
        keys = jnp.broadcast_to(jax.random.PRNGKey(0), (stats.n.shape[0], 2))
    else:
        keys = jnp.asarray(batch.keys)
    out = _compiled(draws, weights)(keys, stats)
    return {e: {c: np.asarray(a) for c, a in cols.items()} for e, cols in out.items()}


hausman_wild.check_options = parse_options  # a study checks [options.hausman-wild] up front
