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
from numpyro.diagnostics import effective_sample_size, hpdi, split_gelman_rubin
from scipy.special import ndtri
from scipy.stats import rankdata


def _chains_first(x: np.ndarray) -> np.ndarray:
    # (rep, chains, draws) -> (chains, draws, rep), the layout of numpyro.diagnostics
    return np.moveaxis(np.asarray(x, float), 0, -1)


def split_rhat(x: np.ndarray) -> np.ndarray:
    """Split R-hat per replication of draws ``x`` (rep, chains, draws)."""
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        return np.asarray(split_gelman_rubin(_chains_first(x)))


def bulk_ess(x: np.ndarray) -> np.ndarray:
    """Bulk effective sample size per replication of ``x`` (rep, chains, draws).

    Each chain is split in halves, the pooled draws are replaced by the normal
    scores of their ranks, and NumPyro's ESS is taken of the result.
    """
    x = np.asarray(x, float)
    rep, chains, draws = x.shape
    half = draws // 2
    split = np.concatenate([x[:, :, :half], x[:, :, draws - half :]], axis=1)
    flat = split.reshape(rep, -1)
    ranks = rankdata(np.where(np.isnan(flat), 0.0, flat), axis=1, method="average")
    z = ndtri((ranks - 0.375) / (flat.shape[1] + 0.25)).reshape(split.shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        ess = np.asarray(effective_sample_size(_chains_first(z)))
    # a constant or non-finite quantity has no ESS
    bad = ~np.isfinite(x).all(axis=(1, 2)) | (np.ptp(flat, axis=1) == 0)
    return np.where(bad, np.nan, ess)


def summarize(x: np.ndarray, level: float) -> dict[str, np.ndarray]:
    """Per replication of draws ``x`` (rep, chains, draws): estimate (mean), median,
    se (SD), HPD interval (lower, upper) and equal-tailed interval (lower_eti,
    upper_eti) at ``level``, rhat and ess."""
    x = np.asarray(x, float)
    rep = x.shape[0]
    flat = x.reshape(rep, -1)
    finite = np.isfinite(flat).all(axis=1)
    safe = np.where(finite[:, None], flat, 0.0)
    hpd = np.asarray(hpdi(safe.T, prob=level, axis=0))
    tail = (1.0 - level) / 2.0
    eti = np.quantile(safe, [tail, 1.0 - tail], axis=1)
    nan = np.where(finite, 0.0, np.nan)
    with np.errstate(invalid="ignore", over="ignore"):
        estimate = flat.mean(axis=1)
        median = np.median(flat, axis=1)
        se = flat.std(axis=1, ddof=1)
    return {
        "estimate": estimate,
        "median": median,
        "se": se,
        "lower": hpd[0] + nan,
        "upper": hpd[1] + nan,
        "lower_eti": eti[0] + nan,
        "upper_eti": eti[1] + nan,
        "rhat": split_rhat(x),
        "ess": bulk_ess(x),
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
