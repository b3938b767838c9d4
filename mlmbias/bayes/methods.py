"""The registered Bayesian methods: batch fit functions of the registry's interface.

``fit(batch, level, options)`` samples the collapsed model of every replication
(:mod:`mlmbias.bayes.posterior`) from ``batch.stats`` alone and summarises it.
Per estimand ("beta"; "contextual" for mundlak and rewb), keyed (estimand,
"x0") as every method's output (the one covariate's term), the columns are,
each an array with one entry per replication:

``estimate`` posterior mean, ``median``, ``se`` posterior SD, ``lower``/``upper``
the highest-posterior-density interval at ``level``, ``lower_eti``/``upper_eti``
the equal-tailed interval, ``p_value`` (NaN), ``rhat`` split R-hat and ``ess``
bulk ESS of that estimand, ``divergences`` post-warm-up divergent transitions
(all chains), ``converged``, ``corr_beta_sigma_a`` the posterior correlation of
beta and sigma_a (the seed's diagnostic; NaN without sigma_a) and ``flag``.

``converged`` judges the replication as a whole: split R-hat <= ``rhat_max``
and bulk ESS >= ``ess_min`` for every sampled quantity (beta, the contextual
effect, mu, sigma and sigma_a, where the model has them) and no divergences.
``flag`` bits (mlmbias.flags): NOT_CONVERGED (R-hat or ESS threshold missed),
DIVERGENT, NONFINITE (a non-finite estimate or SE).

The models have one within-varying covariate and no group-level covariates: a
batch with p > 1 or q > 0 raises a ConfigError.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from mlmbias import flags
from mlmbias.bayes.collapsed import MODELS
from mlmbias.bayes.options import settings_from_options
from mlmbias.bayes.posterior import Draws, sample
from mlmbias.bayes.summary import correlation, summarize
from mlmbias.errors import ConfigError
from mlmbias.registry import Batch

TERM = "x0"  # the one covariate

COLUMNS = (
    "estimate",
    "median",
    "se",
    "lower",
    "upper",
    "lower_eti",
    "upper_eti",
    "p_value",
    "rhat",
    "ess",
    "divergences",
    "converged",
    "corr_beta_sigma_a",
    "flag",
)


def monitored(model: str) -> tuple[str, ...]:
    """The quantities whose R-hat and ESS decide convergence."""
    return MODELS[model].params


def summarize_draws(
    model: str, draws: Draws, level: float, rhat_max: float, ess_min: float
) -> dict[tuple[str, str], dict[str, np.ndarray]]:
    """The registry's output for ``model`` from its draws."""
    info = MODELS[model]
    sums = {name: summarize(draws.get(name), level) for name in monitored(model)}
    rhat_ok = np.all([s["rhat"] <= rhat_max for s in sums.values()], axis=0)
    ess_ok = np.all([s["ess"] >= ess_min for s in sums.values()], axis=0)
    divergences = np.asarray(draws.divergences, np.int64)
    estimands = ["beta"] + (["contextual"] if info.has_contextual else [])
    n = divergences.shape[0]
    corr = (
        correlation(draws.get("beta"), draws.get("sigma_a"))
        if info.has_sigma_a
        else np.full(n, np.nan)
    )
    out: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    for name in estimands:
        s = sums[name]
        finite = np.isfinite(s["estimate"]) & np.isfinite(s["se"])
        converged = rhat_ok & ess_ok & (divergences == 0) & finite
        flag = (
            np.where(rhat_ok & ess_ok, 0, flags.NOT_CONVERGED)
            | np.where(divergences > 0, flags.DIVERGENT, 0)
            | np.where(finite, 0, flags.NONFINITE)
        )
        out[(name, TERM)] = {
            **{k: s[k] for k in ("estimate", "median", "se", "lower", "upper")},
            "lower_eti": s["lower_eti"],
            "upper_eti": s["upper_eti"],
            "p_value": np.full(n, np.nan),
            "rhat": s["rhat"],
            "ess": s["ess"],
            "divergences": divergences,
            "converged": converged,
            "corr_beta_sigma_a": corr,
            "flag": flag.astype(np.int64),
        }
    return out


def check_covariates(model: str, stats) -> None:
    """A ConfigError unless the statistics have one covariate x and no z (from the shapes)."""
    p, q = stats.p, stats.q
    if p != 1 or q != 0:
        raise ConfigError(
            f"bayes-{model} supports one within covariate and no level-2 covariates yet, "
            f"got {p} x and {q} z columns; use the frequentist methods for these data"
        )


def fit_model(
    model: str, batch: Batch, level: float, options: Mapping[str, Any]
) -> dict[tuple[str, str], dict[str, np.ndarray]]:
    """Sample and summarise ``model`` for every replication of ``batch`` (stats only)."""
    check_covariates(model, batch.stats)
    settings = settings_from_options(options)
    if np.shape(batch.keys)[0] == 0:
        info = MODELS[model]
        empty = {c: np.empty(0) for c in COLUMNS}
        empty.update(
            converged=np.empty(0, bool),
            divergences=np.empty(0, np.int64),
            flag=np.empty(0, np.int64),
        )
        names = ["beta"] + (["contextual"] if info.has_contextual else [])
        return {(name, TERM): dict(empty) for name in names}
    draws = sample(model, batch.keys, batch.stats, settings)
    return summarize_draws(model, draws, level, settings.rhat_max, settings.ess_min)


def fit_pooled(batch: Batch, level: float, options: Mapping[str, Any]):
    return fit_model("pooled", batch, level, options)


def fit_fe(batch: Batch, level: float, options: Mapping[str, Any]):
    return fit_model("fe", batch, level, options)


def fit_re(batch: Batch, level: float, options: Mapping[str, Any]):
    return fit_model("re", batch, level, options)


def fit_mundlak(batch: Batch, level: float, options: Mapping[str, Any]):
    return fit_model("mundlak", batch, level, options)


def fit_rewb(batch: Batch, level: float, options: Mapping[str, Any]):
    return fit_model("rewb", batch, level, options)
