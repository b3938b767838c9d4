"""Performance measures with Monte Carlo standard errors (Morris, White & Crowther 2019).

Formulas as in DESIGN.md and the R package rsimsum; n counts the replications
used (those with a finite estimate, and converged ones only when asked).

| stat | estimate | Monte Carlo SE |
|---|---|---|
| bias | mean(θ̂) − θ | sd(θ̂)/√n |
| rel_bias | bias/θ | MCSE(bias)/ | θ |  |
| empse | sd(θ̂) | EmpSE/√(2(n−1)) |
| mse | mean((θ̂−θ)²) | sd((θ̂−θ)²)/√n |
| rmse | √MSE | MCSE(MSE)/(2 RMSE)  (delta method) |
| modse | √mean(SE²) | √(var(SE²)/(4n ModSE²)) |
| relerror | 100(ModSE/EmpSE − 1) | 100(ModSE/EmpSE)√(var(SE²)/(4n ModSE⁴)+1/(2(n−1))) |
| cover | mean(low ≤ θ ≤ upp) | √(C(1−C)/n) |
| becover | mean(low ≤ mean(θ̂) ≤ upp) | √(B(1−B)/n) |
| width | mean(upp − low) | sd(width)/√n |
| rejection | mean(p ≤ α) | √(P(1−P)/n) |
| flag_rate | mean( | corr(β, σ_a) | > c) | √(F(1−F)/n)   (the seed's red flag) |
| sampler_error | mean(e) | sd(e)/√n |
| sampler_rmse | √mean(e²) | sd(e²)/(2 √n sampler_rmse)  (delta method) |

with e a Bayesian replication's posterior mean minus the exact one (the grid
engine's), in posterior SDs: the column ``sampler_error`` that ``[bayes]
sampler_error = true`` adds under an MCMC engine (NaN rows are left out).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

# A row of the summary is a condition, method, estimand and term (the covariate an
# estimate belongs to, e.g. "ad_spend" in the seed scenario; "" for a test).
KEYS = ("method", "estimand", "term")


def _sd(v: np.ndarray) -> float:
    return float(np.std(v, ddof=1)) if v.size > 1 else np.nan


def _proportion(hits: np.ndarray) -> tuple[float, float]:
    n = hits.size
    if n == 0:
        return np.nan, np.nan
    p = float(hits.mean())
    return p, float(np.sqrt(p * (1 - p) / n))


def _mean_se(v: np.ndarray) -> tuple[float, float]:
    n = v.size
    if n == 0:
        return np.nan, np.nan
    return float(v.mean()), (_sd(v) / np.sqrt(n) if n > 1 else np.nan)


def sampler_measures(e: np.ndarray) -> dict[str, tuple[float, float]]:
    """Mean and RMS of the sampler errors ``e`` (finite ones), with their MCSEs."""
    e = e[np.isfinite(e)]
    if e.size == 0:
        return {}
    ms, ms_se = _mean_se(e**2)  # the RMS and its MCSE as estimate_measures' rmse
    rms = float(np.sqrt(ms))
    return {
        "sampler_error": _mean_se(e),
        "sampler_rmse": (rms, ms_se / (2 * rms) if rms > 0 else np.nan),
    }


def estimate_measures(
    estimate: np.ndarray,
    se: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    truth: float,
) -> dict[str, tuple[float, float]]:
    """Measures of one set of finite estimates of ``truth``: stat -> (estimate, MCSE).

    Missing SEs are left out of the model SE, and missing interval limits out of
    coverage and width (each then counts its own n).
    """
    est = np.asarray(estimate, float)
    se = np.asarray(se, float)
    lower = np.asarray(lower, float)
    upper = np.asarray(upper, float)
    n = est.size
    has_ci = np.isfinite(lower) & np.isfinite(upper)
    se = se[np.isfinite(se)]
    out: dict[str, tuple[float, float]] = {}
    mean, mean_se = _mean_se(est)
    out["mean"] = (mean, mean_se)
    empse = _sd(est)
    out["empse"] = (empse, empse / np.sqrt(2 * (n - 1)) if n > 1 else np.nan)
    if np.isfinite(truth):
        bias = mean - truth
        out["bias"] = (bias, mean_se)
        if truth != 0:
            out["rel_bias"] = (bias / truth, mean_se / abs(truth))
        sq = (est - truth) ** 2
        mse, mse_se = _mean_se(sq)
        out["mse"] = (mse, mse_se)
        rmse = float(np.sqrt(mse)) if n else np.nan
        out["rmse"] = (rmse, mse_se / (2 * rmse) if rmse > 0 else np.nan)
        out["cover"] = _proportion(((lower <= truth) & (truth <= upper))[has_ci])
    se2 = se**2
    if se2.size:
        m = se2.size
        modse = float(np.sqrt(se2.mean()))
        var_se2 = float(np.var(se2, ddof=1)) if m > 1 else np.nan
        modse_mcse = float(np.sqrt(var_se2 / (4 * m * modse**2))) if modse > 0 else np.nan
        out["modse"] = (modse, modse_mcse)
        if empse and np.isfinite(empse) and empse > 0 and modse > 0:
            ratio = modse / empse
            out["relerror"] = (
                100 * (ratio - 1),
                100 * ratio * float(np.sqrt(var_se2 / (4 * m * modse**4) + 1 / (2 * (n - 1)))),
            )
    out["becover"] = _proportion(((lower <= mean) & (mean <= upper))[has_ci])
    out["width"] = _mean_se((upper - lower)[has_ci])
    return out


def condition_columns(results: pd.DataFrame) -> list[str]:
    """The columns that describe a condition: its index, its scenario and the
    scenario's fields (of every scenario named in ``results``; the seed's when the
    rows name none)."""
    from mlmbias.scenarios import DEFAULT, get_scenario

    names = results["scenario"].unique() if "scenario" in results else [DEFAULT]
    fields: list[str] = []
    for name in names:
        try:
            fields += get_scenario(str(name)).field_names()
        except ValueError:  # a plugin's scenario that is not imported: the index suffices
            continue
    cols = ["condition_index", "scenario", *dict.fromkeys(fields)]
    return [c for c in cols if c in results.columns]


def _truth(rows: pd.DataFrame) -> float:
    """The rows' true value (the scenario's, carried in ``truth``), NaN if none."""
    if "truth" not in rows:
        return np.nan
    return float(rows["truth"].iloc[0])


def performance(
    results: pd.DataFrame,
    alpha: float = 0.05,
    corr_threshold: float = 0.5,
    converged_only: bool = False,
) -> pd.DataFrame:
    """The long summary: condition parameters, method, estimand, term, stat, est, mcse.

    Truth-based measures (bias, MSE, coverage, ...) are computed for every
    (estimand, term) whose rows carry a finite ``truth``; the others get the
    truth-free ones (mean, EmpSE, ModSE, width); tests get their rejection rate.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    if "term" not in results.columns:  # rows of one covariate without their term
        results = results.assign(term="")
    cond_cols = condition_columns(results)
    rows = []
    for key, g in results.groupby([*cond_cols, *KEYS], sort=True, dropna=False):
        key = dict(zip([*cond_cols, *KEYS], key, strict=True))
        est = g["estimate"].to_numpy(float)
        finite = np.isfinite(est)
        not_conv = (
            (g["converged"] == False).to_numpy()  # noqa: E712 (NaN where not applicable)
            if "converged" in g
            else np.zeros(len(g), bool)
        )
        use = finite & ~not_conv if converged_only else finite
        stats: dict[str, tuple[float, float]] = {
            "n_total": (len(g), np.nan),
            "n_used": (int(use.sum()), np.nan),
            "n_failed": (int((~finite).sum()), np.nan),
            "n_not_converged": (int(not_conv.sum()), np.nan),
        }
        u = g[use]
        if key["estimand"] == "test":
            stats["mean"] = _mean_se(u["estimate"].to_numpy(float))
            p = u["p_value"].to_numpy(float)
            stats["rejection"] = _proportion(p[np.isfinite(p)] <= alpha)
        else:
            stats.update(
                estimate_measures(
                    u["estimate"].to_numpy(float),
                    u["se"].to_numpy(float),
                    u["lower"].to_numpy(float),
                    u["upper"].to_numpy(float),
                    _truth(g),
                )
            )
            if "corr_beta_sigma_a" in u and key["estimand"] == "beta":
                c = u["corr_beta_sigma_a"].to_numpy(float)
                c = c[np.isfinite(c)]
                if c.size:
                    stats["flag_rate"] = _proportion(np.abs(c) > corr_threshold)
            if "sampler_error" in u:
                stats.update(sampler_measures(u["sampler_error"].to_numpy(float)))
        for stat, (value, mcse) in stats.items():
            rows.append({**key, "stat": stat, "est": value, "mcse": mcse})
    return pd.DataFrame(rows)


def wide(summary: pd.DataFrame, stats: Sequence[str], by: Sequence[str]) -> pd.DataFrame:
    """One row per ``by``, method, estimand and term, columns ``stat`` and ``stat_mcse``."""
    sub = summary[summary["stat"].isin(stats)]
    table = sub.pivot_table(
        index=[*by, *KEYS], columns="stat", values=["est", "mcse"], dropna=False
    )
    table.columns = [s if kind == "est" else f"{s}_mcse" for kind, s in table.columns]
    return table.reset_index()
