"""Posterior summaries and convergence diagnostics, vectorised over replications.

Built on :mod:`numpyro.diagnostics`: ``split_gelman_rubin`` (split R-hat),
``effective_sample_size`` and ``hpdi``, each of which accepts trailing batch
axes, so one call covers every replication. Bulk ESS is NumPyro's
``effective_sample_size`` of the rank-normalised split chains (Vehtari, Gelman,
Simpson, Carpenter and Bürkner 2021, eq. 14); R-hat is the split R-hat of the
raw draws.
"""

from __future__ import annotations

import numpy as np
from numpyro.diagnostics import _hpdi_of_sorted, effective_sample_size, split_gelman_rubin
from scipy.special import ndtri


def _chains_first(x: np.ndarray) -> np.ndarray:
    # (rep, chains, draws) -> (chains, draws, rep), the layout of numpyro.diagnostics
    return np.moveaxis(np.asarray(x, float), 0, -1)


def split_rhat(x: np.ndarray) -> np.ndarray:
    """Split R-hat per replication of draws ``x`` (rep, chains, draws)."""
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        return np.asarray(split_gelman_rubin(_chains_first(x)))


def _average_ranks(order: np.ndarray, ordered: np.ndarray) -> np.ndarray:
    """1-based ranks per row, ties given their average rank (scipy's
    ``rankdata(method="average")``), from a row-wise ``order = argsort(x)`` and
    ``ordered = x`` sorted by it: one sort serves the ranks, the quantiles and
    the HPD interval. Positions in sorted order are the ranks but in runs of
    equal values (few: an MCMC chain repeats a draw it did not leave), which
    get the mean position of their run."""
    n = ordered.shape[1]
    by_position = np.broadcast_to(np.arange(1.0, n + 1.0), ordered.shape).copy()
    starts = np.ones(ordered.shape, bool)  # a run of equal values starts here
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    ends = np.ones(ordered.shape, bool)
    ends[:, :-1] = starts[:, 1:]
    rows, cols = np.nonzero(~(starts & ends))  # in runs of two or more, row-major
    if rows.size:
        first = np.flatnonzero(starts[rows, cols])  # where each run begins in the list
        last = np.append(first[1:], rows.size) - 1
        run = np.cumsum(starts[rows, cols]) - 1
        by_position[rows, cols] = 0.5 * (cols[first][run] + cols[last][run]) + 1.0
    ranks = np.empty(ordered.shape)
    np.put_along_axis(ranks, order, by_position, axis=1)
    return ranks


def _normal_scores(ranks: np.ndarray) -> np.ndarray:
    """ndtri((rank - 3/8) / (n + 1/4)) of half-integer ranks 1..n, by table lookup
    (the same floating-point arguments as the direct call, so the same values)."""
    n = ranks.shape[-1]
    table = ndtri((0.5 * np.arange(2, 2 * n + 1) - 0.375) / (n + 0.25))
    return table[(2.0 * ranks).astype(np.int64) - 2]


def _split(x: np.ndarray) -> np.ndarray:
    """(rep, 2 chains, draws // 2): every chain split in halves (the middle draw of
    an odd number dropped), as split R-hat and bulk ESS use them."""
    half = x.shape[2] // 2
    return np.concatenate([x[:, :, :half], x[:, :, x.shape[2] - half :]], axis=1)


def _bulk_ess_of_ranks(x: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """Bulk ESS of ``x`` (rep, chains, draws) from the average ranks of its split
    draws, laid out as :func:`_split` lays out ``x``."""
    z = _normal_scores(ranks.reshape(ranks.shape[0], -1)).reshape(ranks.shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        ess = np.asarray(effective_sample_size(_chains_first(z)))
    flat = x.reshape(x.shape[0], -1)
    # a constant or non-finite quantity has no ESS
    bad = ~np.isfinite(flat).all(axis=1) | (np.ptp(flat, axis=1) == 0)
    return np.where(bad, np.nan, ess)


def bulk_ess(x: np.ndarray) -> np.ndarray:
    """Bulk effective sample size per replication of ``x`` (rep, chains, draws).

    Each chain is split in halves, the pooled draws are replaced by the normal
    scores of their ranks, and NumPyro's ESS is taken of the result.
    """
    x = np.asarray(x, float)
    split = _split(x)
    flat = split.reshape(split.shape[0], -1)
    flat = np.where(np.isnan(flat), 0.0, flat)
    order = np.argsort(flat, axis=1)
    ranks = _average_ranks(order, np.take_along_axis(flat, order, axis=1))
    return _bulk_ess_of_ranks(x, ranks.reshape(split.shape))


def summarize(x: np.ndarray, level: float) -> dict[str, np.ndarray]:
    """Per replication of draws ``x`` (rep, chains, draws): estimate (mean), median,
    se (SD), HPD interval (lower, upper) and equal-tailed interval (lower_eti,
    upper_eti) at ``level``, rhat and ess.

    One argsort per replication serves the median, both intervals and the ranks
    of the bulk ESS (NumPyro's ``hpdi`` and NumPy's ``quantile`` and ``median``
    applied to the sorted draws give what they give on the draws, faster)."""
    x = np.asarray(x, float)
    rep, chains, draws = x.shape
    flat = x.reshape(rep, -1)
    finite = np.isfinite(flat).all(axis=1)
    safe = np.where(finite[:, None], flat, 0.0)
    order = np.argsort(safe, axis=1)
    ordered = np.take_along_axis(safe, order, axis=1)
    lower, upper = _hpdi_of_sorted(ordered.T, level)
    tail = (1.0 - level) / 2.0
    eti = np.quantile(ordered, [tail, 1.0 - tail], axis=1)
    nan = np.where(finite, 0.0, np.nan)
    median = np.median(ordered, axis=1)
    if not finite.all():
        median[~finite] = np.median(flat[~finite], axis=1)
    if draws % 2 == 0:
        # the split draws are these draws reordered: (chain, half, i) <- (chain, half * n/2 + i)
        ranks = _average_ranks(order, ordered).reshape(rep, chains, 2, draws // 2)
        ess = _bulk_ess_of_ranks(x, np.moveaxis(ranks, 2, 1).reshape(rep, 2 * chains, -1))
    else:
        ess = bulk_ess(x)
    with np.errstate(invalid="ignore", over="ignore"):
        estimate = flat.mean(axis=1)
        se = flat.std(axis=1, ddof=1)
    return {
        "estimate": estimate,
        "median": median,
        "se": se,
        "lower": lower[0] + nan,
        "upper": upper[0] + nan,
        "lower_eti": eti[0] + nan,
        "upper_eti": eti[1] + nan,
        "rhat": split_rhat(x),
        "ess": ess,
    }


def correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Posterior correlation of two quantities per replication (draws pooled over chains)."""
    a = np.asarray(a, float).reshape(a.shape[0], -1)
    b = np.asarray(b, float).reshape(b.shape[0], -1)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        a = a - a.mean(axis=1, keepdims=True)
        b = b - b.mean(axis=1, keepdims=True)
        return (a * b).sum(axis=1) / np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))


def ess_mean(x: np.ndarray) -> np.ndarray:
    """NumPyro's ESS of the raw draws ``x`` (rep, chains, draws): the one for a posterior mean."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(effective_sample_size(_chains_first(x)))


def mcse_mean(x: np.ndarray) -> np.ndarray:
    """Monte Carlo SE of the posterior mean per replication: SD / sqrt(ESS)."""
    x = np.asarray(x, float)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        return x.reshape(x.shape[0], -1).std(axis=1, ddof=1) / np.sqrt(ess_mean(x))
