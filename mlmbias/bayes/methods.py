"""The registered Bayesian methods: batch fit functions of the registry's interface.

``fit(batch, level, options)`` samples the collapsed model of every replication
(:mod:`mlmbias.bayes.draws`) from ``batch.stats`` alone and summarises it.
With p within-varying covariates x_1..x_p and q level-2 covariates z_1..z_q
(from the shapes of the statistics; p >= 1) the models are

    pooled    y = mu + x'beta + z'delta + e                       (sigma_a = 0)
    fe        y = alpha_r + x'beta + e                            (z absorbed by alpha_r)
    re        y = mu + x'beta + z'delta + a_r + e
    mundlak   y = mu + x'beta + xbar_r'gamma + z'delta + a_r + e
    rewb      y = mu + (x - xbar_r)'beta_w + xbar_r'beta_b + z'delta + a_r + e
    rs        y = mu + x'beta + z'delta + a_r + b_r x_1 + e       ((a_r, b_r) correlated)
    rs-mundlak  the same plus xbar_r'gamma

(rs and rs-mundlak, :mod:`mlmbias.bayes.random_slopes`: a random slope on the
first x, engines nuts and chees only; their convergence also monitors sigma_b and
rho_ab)
and the output is keyed (estimand, term) like the frequentist methods': ("beta",
"x{j}") per x (beta_w for rewb), ("beta", "z{k}") per z (delta; not for fe) and,
for mundlak and rewb, ("contextual", "x{j}") per x (gamma_j; beta_b,j - beta_w,j
for rewb), in that order. Per key the columns are, each an array with one entry
per replication:

``estimate`` posterior mean, ``median``, ``se`` posterior SD, ``lower``/``upper``
the highest-posterior-density interval at ``level``, ``lower_eti``/``upper_eti``
the equal-tailed interval, ``p_value`` (NaN), ``rhat`` split R-hat and ``ess``
bulk ESS of that quantity, ``divergences`` post-warm-up divergent transitions
(all chains), ``converged``, ``corr_beta_sigma_a`` the posterior correlation of
the key's beta (for a contextual key: the beta of the same x) and sigma_a (the
seed's diagnostic; NaN without sigma_a) and ``flag``.

``converged`` judges the replication as a whole: split R-hat <= ``rhat_max``
and bulk ESS >= ``ess_min`` for every reported coefficient and for mu, sigma
and sigma_a where the model has them, and no divergences; an engine with its
own convergence check (``Draws.checks``) replaces R-hat and ESS by it.
``flag`` bits (mlmbias.flags): NOT_CONVERGED (R-hat or ESS threshold missed),
SAMPLER_DISAGREES (with ``sampler_error = true``: a posterior mean off the exact one),
DIVERGENT, NONFINITE (a non-finite estimate or SE).

A batch without a within covariate (p = 0) raises a ConfigError.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from mlmbias import flags
from mlmbias.bayes import random_slopes as RS
from mlmbias.bayes.collapsed import MODEL_INFO
from mlmbias.bayes.draws import Draws, quantity_keys, sample
from mlmbias.bayes.options import default_batch_size, settings_from_options
from mlmbias.bayes.summary import correlation, summarize
from mlmbias.errors import ConfigError
from mlmbias.registry import Batch

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


INFO = {**MODEL_INFO, **RS.MODEL_INFO}  # the collapsed models, then the random-slope ones


def reported(model: str, p: int = 1, q: int = 0) -> tuple[tuple[str, str], ...]:
    """The (estimand, term) keys of ``model``'s output, in order."""
    info = INFO[model]
    keys = [("beta", f"x{j}") for j in range(p)]
    if model != "fe":  # the region intercepts absorb level-2 covariates
        keys += [("beta", f"z{j}") for j in range(q)]
    if info.has_contextual:
        keys += [("contextual", f"x{j}") for j in range(p)]
    return tuple(keys)


def monitored(model: str, p: int = 1, q: int = 0) -> tuple[tuple[str, str], ...]:
    """The quantities whose R-hat and ESS decide convergence: the reported
    coefficients, then mu, sigma and sigma_a where the model has them (and
    sigma_b and rho_ab in the random-slope models)."""
    info = INFO[model]
    keys = list(reported(model, p, q))
    if info.has_mu:
        keys.append(("mu", ""))
    keys.append(("sigma", ""))
    if info.has_sigma_a:
        keys.append(("sigma_a", ""))
    if model in RS.MODEL_INFO:
        keys += [(name, "") for name in RS.EXTRA_PARAMS]
    return tuple(keys)


def _dims(keys) -> tuple[int, int]:
    """(p, q) of a draws' quantity keys."""
    p = sum(1 for e, t in keys if e == "beta" and t.startswith("x"))
    q = sum(1 for e, t in keys if e == "beta" and t.startswith("z"))
    return p, q


def summarize_draws(
    model: str, draws: Draws, level: float, rhat_max: float, ess_min: float
) -> dict[tuple[str, str], dict[str, np.ndarray]]:
    """The registry's output for ``model`` from its draws."""
    info = INFO[model]
    p, q = _dims(draws.keys)
    # an engine with its own check (draws.checks) needs no R-hat and ESS of the
    # monitored scales: only the reported coefficients are summarised
    keys = monitored(model, p, q) if draws.checks is None else reported(model, p, q)
    sums = {key: summarize(draws.get(*key), level) for key in keys}
    if draws.checks is None:
        rhat_ok = np.all([s["rhat"] <= rhat_max for s in sums.values()], axis=0)
        ess_ok = np.all([s["ess"] >= ess_min for s in sums.values()], axis=0)
    else:  # the engine's own check replaces R-hat and ESS (its NOT_CONVERGED)
        rhat_ok = ess_ok = np.asarray(draws.checks, bool)
    divergences = np.asarray(draws.divergences, np.int64)
    n = divergences.shape[0]
    out: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    corr: dict[str, np.ndarray] = {}
    for key in reported(model, p, q):
        s = sums[key]
        term = key[1]
        if term not in corr:
            corr[term] = (
                correlation(draws.get("beta", term), draws.get("sigma_a"))
                if info.has_sigma_a
                else np.full(n, np.nan)
            )
        finite = np.isfinite(s["estimate"]) & np.isfinite(s["se"])
        converged = rhat_ok & ess_ok & (divergences == 0) & finite
        flag = (
            np.where(rhat_ok & ess_ok, 0, flags.NOT_CONVERGED)
            | np.where(divergences > 0, flags.DIVERGENT, 0)
            | np.where(finite, 0, flags.NONFINITE)
        )
        out[key] = {
            **{k: s[k] for k in ("estimate", "median", "se", "lower", "upper")},
            "lower_eti": s["lower_eti"],
            "upper_eti": s["upper_eti"],
            "p_value": np.full(n, np.nan),
            "rhat": s["rhat"],
            "ess": s["ess"],
            "divergences": divergences,
            "converged": converged,
            "corr_beta_sigma_a": corr[term],
            "flag": flag.astype(np.int64),
        }
    return out


def check_covariates(model: str, stats) -> None:
    """A ConfigError when the statistics have no within covariate (from the shapes)."""
    if stats.p < 1:
        raise ConfigError(
            f"bayes-{model} needs at least one within-varying covariate x, got none "
            f"(and {stats.q} z columns)"
        )


def fit_model(
    model: str, batch: Batch, level: float, options: Mapping[str, Any]
) -> dict[tuple[str, str], dict[str, np.ndarray]]:
    """Sample and summarise ``model`` for every replication of ``batch`` (stats only)."""
    check_covariates(model, batch.stats)
    settings = settings_from_options(options)
    if np.shape(batch.keys)[0] == 0:
        empty = {c: np.empty(0) for c in COLUMNS}
        empty.update(
            converged=np.empty(0, bool),
            divergences=np.empty(0, np.int64),
            flag=np.empty(0, np.int64),
        )
        keys = reported(model, batch.stats.p, batch.stats.q)
        return {key: dict(empty) for key in keys}
    if model in RS.MODEL_INFO:
        draws = RS.sample(model, batch.keys, batch.stats, settings)
    else:
        draws = sample(model, batch.keys, batch.stats, settings)
    out = summarize_draws(model, draws, level, settings.rhat_max, settings.ess_min)
    if settings.sampler_error and settings.engine != "grid":
        add_sampler_error(model, batch, settings, out)
    return out


# the grid run behind ``sampler_error``: only its cell-mass means and SDs are used
# (1 x 100 draws); 64 cells a side, where the default 32 fails its own refinement check on 8%
# of the seed's confounded bayes-re posteriors at R = 10-200 (narrow second modes in
# log sigma_a) and 64 on 0.7% (measured on the default study, 2026-11-29)
_EXACT_CHAINS, _EXACT_DRAWS, _EXACT_GRID = 1, 100, 64


def add_sampler_error(model: str, batch: Batch, settings, out: dict) -> None:
    """Add ``sampler_error`` to every row of ``out``: (posterior mean - the exact
    posterior mean) / posterior SD, the exact mean from the grid engine's cell
    masses (:mod:`mlmbias.bayes.grid`, ``coef_mean``: exact up to the grid, below
    0.3% of a posterior SD). NaN where the grid's own check fails and for the
    random-slope models, whose posterior the grid cannot integrate.

    ``sampler_sd_ratio`` is the posterior SD over the exact one (from the cells'
    masses: E[Var(. | u)] + Var(E[. | u])). A replication with any
    |sampler_error| above ``settings.sampler_error_max``, or any SD ratio
    beyond a factor 1 + ``settings.sampler_sd_tol`` either way, is not converged
    and carries SAMPLER_DISAGREES in every row: its chains missed part of the
    posterior. R-hat cannot see a mode that no chain visits
    (the default study's bayes-re at R = 200, replication 66: 2.8% of the mass in
    a second mode at sigma_a ~ 22, no chain in it, R-hat 1.0007, the posterior SD
    3.5 times too small; sampler_error -0.56)."""
    n = np.shape(batch.keys)[0]
    if model in RS.MODEL_INFO:
        for cols in out.values():
            cols["sampler_error"] = np.full(n, np.nan)
            cols["sampler_sd_ratio"] = np.full(n, np.nan)
        return
    from mlmbias.bayes.grid import sample_grid  # imported when asked for, as draws.sample does

    # in the grid's own batches (not the sampler's): one compiled grid program per
    # panel shape whatever the sampler's batch size
    grid = dataclasses.replace(
        settings,
        engine="grid",
        chains=_EXACT_CHAINS,
        draws=_EXACT_DRAWS,
        grid_size=_EXACT_GRID,
        batch_size=default_batch_size(engine="grid"),
    )
    exact = sample_grid(model, batch.keys, batch.stats, grid)
    means = np.asarray(exact.diagnostics["coef_mean"])
    sds = np.asarray(exact.diagnostics["coef_sd"])
    ok = np.asarray(exact.checks, bool)
    slots = {key: i for i, key in enumerate(quantity_keys(batch.stats.p, batch.stats.q))}
    off = np.zeros(n, bool)
    for key, cols in out.items():
        sd = np.asarray(cols["se"], float)
        valid = ok & (sd > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            err = (np.asarray(cols["estimate"], float) - means[:, slots[key]]) / sd
            cols["sampler_error"] = np.where(valid, err, np.nan)
            cols["sampler_sd_ratio"] = np.where(valid, sd / sds[:, slots[key]], np.nan)
            off |= np.abs(cols["sampler_error"]) > settings.sampler_error_max
            off |= np.abs(np.log(cols["sampler_sd_ratio"])) > np.log1p(settings.sampler_sd_tol)
    for cols in out.values():
        cols["converged"] = np.asarray(cols["converged"], bool) & ~off
        cols["flag"] = np.asarray(cols["flag"], np.int64) | np.where(
            off, flags.SAMPLER_DISAGREES, 0
        )


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


def fit_rs(batch: Batch, level: float, options: Mapping[str, Any]):
    return fit_model("rs", batch, level, options)


def fit_rs_mundlak(batch: Batch, level: float, options: Mapping[str, Any]):
    return fit_model("rs-mundlak", batch, level, options)
