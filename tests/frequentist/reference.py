"""Simulated panels, the package's fits of them, and reference fits with linearmodels/statsmodels.

All test panels go into one batch padded to ``R_PAD`` regions (padding regions
have n = 0), so each method is compiled once for the reference tests and the
padding guard is exercised by every comparison. The other frequentist test
modules pad their batches to the same shape (``padded_batch``: ``REPS_PAD``
replications of ``R_PAD`` regions), so that a method compiles once per number
of covariates for all of them rather than once per module.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import linearmodels as lm
import numpy as np
import pandas as pd
import statsmodels.formula.api as smf

from mlmbias import DGP, GroupStats, group_stats, simulate_condition, to_frame
from mlmbias.registry import Batch, get_method, method_names, methods

R_PAD = 32  # regions of every padded test batch
REPS_PAD = 8  # replications of every padded test batch
N_MEDIUM = 30  # regions of the medium and control panels
LEVEL = 0.95
CLOSED_FORM_RTOL = 1e-6
OPTIMISER_RTOL = 1e-4

# The frequentist methods that the generic loops of the test modules (reference
# fits, shift and region-order invariance, several covariates, the intercept grid)
# run. The random-slope methods are checked in test_random_slopes.py, against lme4
# and for shift, region order and no within variation, on panels of their own
# padded shape: here each would compile once more per shape.
GENERIC_METHODS = tuple(
    m for m in method_names("frequentist") if methods()[m].family != "random slopes"
)

# name: (DGP, seed, number of replications). Unbalanced panels (Poisson months),
# a small one (R = 5), a control without confounding and a balanced one. Only two
# numbers of regions, each simulated with one padding bound, so that the
# simulator compiles twice.
CONDITIONS = {
    "small": (DGP(n_regions=5), 11, 3),
    "balanced": (DGP(n_regions=5, months_mean=1e-9, months_min=4), 14, 1),
    "medium": (DGP(n_regions=N_MEDIUM), 12, 2),
    "control": (DGP(n_regions=N_MEDIUM, confounding=0.0), 13, 2),
}


def max_obs(n_regions: int) -> int:
    return max(d.obs_bound() for d, _, _ in CONDITIONS.values() if d.n_regions == n_regions)


@dataclass
class Reference:
    labels: list[str]  # condition of each replication
    frames: list[pd.DataFrame]  # region, month, ad_spend, profit
    batch: Batch  # (rep, R_PAD) statistics
    results: dict[str, dict[tuple[str, str], dict[str, np.ndarray]]]  # method -> key -> column


def pad_stats(stats: GroupStats, n_regions: int) -> GroupStats:
    """Empty regions appended (axis 1 of every field)."""
    width = n_regions - stats.n.shape[1]

    def pad(a):
        a = np.asarray(a)
        return np.pad(a, [(0, 0), (0, width)] + [(0, 0)] * (a.ndim - 2))

    return GroupStats(*(pad(a) for a in stats))


def concat_stats(parts: list[GroupStats]) -> GroupStats:
    return GroupStats(*(np.concatenate(cols) for cols in zip(*parts, strict=True)))


def padded_batch(parts: list[GroupStats], keys=None) -> Batch:
    """``parts`` (each padded to ``R_PAD`` regions) in one batch of ``REPS_PAD``
    replications, the last repeated: the shape every frequentist test module uses."""
    if len(parts) > REPS_PAD:
        raise ValueError(f"{len(parts)} panels do not fit in a batch of {REPS_PAD}")
    parts = [pad_stats(s, R_PAD) for s in parts]
    parts += parts[-1:] * (REPS_PAD - len(parts))
    if keys is not None:
        keys = np.concatenate([keys, np.repeat(keys[-1:], REPS_PAD - len(keys), axis=0)])
    return Batch(keys=keys, stats=concat_stats(parts))


def build_reference() -> Reference:
    labels, frames, parts = [], [], []
    for name, (dgp, seed, reps) in CONDITIONS.items():
        panel = simulate_condition(dgp, seed, range(reps), max_obs(dgp.n_regions))
        parts.append(pad_stats(group_stats(panel), R_PAD))
        for i in range(reps):
            labels.append(name)
            frames.append(to_frame(panel, i))
    batch = Batch(keys=None, stats=concat_stats(parts))
    assert batch.stats.n.shape == (REPS_PAD, R_PAD)  # the shape of padded_batch
    results = run_all(batch)
    return Reference(labels, frames, batch, results)


def run_all(batch: Batch, level: float = LEVEL) -> dict:
    return {m: get_method(m).load()(batch, level, {}) for m in GENERIC_METHODS}


def stats_of(frame: pd.DataFrame, n_regions: int | None = None) -> GroupStats:
    """Region sums of one frame (regions coded 0..G-1 in order), shape (1, R)."""
    codes, uniques = pd.factorize(frame["region"], sort=True)
    g = len(uniques) if n_regions is None else n_regions
    x, y = frame["ad_spend"].to_numpy(float), frame["profit"].to_numpy(float)

    def seg(v):
        return np.bincount(codes, weights=v, minlength=g)

    n = seg(np.ones_like(x))
    safe = np.maximum(n, 1.0)
    xbar, ybar = seg(x) / safe, seg(y) / safe
    dx, dy = x - xbar[codes], y - ybar[codes]
    wxx, wxy, wyy = seg(dx * dx), seg(dx * dy), seg(dy * dy)
    cross = np.stack([np.stack([wxx, wxy], -1), np.stack([wxy, wyy], -1)], -1)
    # origin 0: the means are the plain region means
    parts = (
        n,
        np.zeros((g, 2)),
        np.stack([xbar, ybar], -1),
        cross,
        np.zeros((g, 0)),
        np.zeros((g, 0)),
    )
    return GroupStats(*(a[None] for a in parts))


def panel_data(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame indexed by (region, month) with const and the region mean xbar."""
    d = frame.set_index(["region", "month"]).copy()
    d["const"] = 1.0
    d["xbar"] = d.groupby(level=0)["ad_spend"].transform("mean")
    return d


def rel_err(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))


def assert_close(actual, expected, rtol: float, what: str = "") -> None:
    err = rel_err(actual, expected)
    assert err <= rtol, f"{what}: {actual} vs {expected} (relative error {err:.2e} > {rtol:g})"


def column(
    results, method: str, i: int, estimand: str = "beta", term: str | None = None
) -> dict[str, float]:
    """Replication ``i`` of (estimand, term); the term defaults to "x0" ("" for a test)."""
    if term is None:
        term = "" if estimand == "test" else "x0"
    return {k: np.asarray(v)[i].item() for k, v in results[method][(estimand, term)].items()}


# --- linearmodels ----------------------------------------------------------------


def lm_pooled(d, clustered=False):
    mod = lm.PooledOLS(d.profit, d[["const", "ad_spend"]])
    if clustered:
        return mod.fit(cov_type="clustered", cluster_entity=True, group_debias=True)
    return mod.fit()


def lm_between(d):
    return lm.BetweenOLS(d.profit, d[["const", "ad_spend"]]).fit()


def lm_fe(d, clustered=False):
    mod = lm.PanelOLS(d.profit, d[["const", "ad_spend"]], entity_effects=True)
    if clustered:
        return mod.fit(cov_type="clustered", cluster_entity=True, group_debias=True)
    return mod.fit()


def lm_re(d, mundlak=False, clustered=False):
    cols = ["const", "ad_spend", "xbar"] if mundlak else ["const", "ad_spend"]
    mod = lm.RandomEffects(d.profit, d[cols])
    if clustered:
        return mod.fit(cov_type="clustered", cluster_entity=True, group_debias=True)
    return mod.fit()


# --- statsmodels MixedLM -----------------------------------------------------------


def sm_model(frame: pd.DataFrame, mundlak: bool = False):
    f = frame.copy()
    f["xbar"] = f.groupby("region")["ad_spend"].transform("mean")
    formula = "profit ~ ad_spend + xbar" if mundlak else "profit ~ ad_spend"
    return smf.mixedlm(formula, f, groups=f["region"])


def sm_fit(model, reml: bool, method=None, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(reml=reml, method=method, **kwargs)


def sm_loglik_at(model, reml: bool, psi: float) -> float:
    """statsmodels' own profile log-likelihood at variance ratio ``psi``.

    Its Woodbury solver inverts the random-effects covariance, so psi = 0 (the
    boundary) is evaluated at 1e-10, where the likelihood is continuous (below about
    1e-11 its solver loses precision). Call it
    after ``model.fit``, which sets attributes that ``loglike`` reads.
    """
    from statsmodels.regression.mixed_linear_model import MixedLMParams

    model.reml = reml
    cov_re = np.array([[max(psi, 1e-10)]])
    params = MixedLMParams.from_components(fe_params=np.zeros(model.k_fe), cov_re=cov_re)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(model.loglike(params, profile_fe=True))


def dense_gls(frame: pd.DataFrame, psi: float, mundlak: bool, reml: bool):
    """lme4-style GLS with dense matrices: coefficients, vcov, sigma^2.

    V_r = I + psi 11' per region; sigma^2 = r'V^-1 r / (N - p) (REML) or / N (ML);
    vcov = sigma^2 (X'V^-1X)^-1.
    """
    f = frame.copy()
    f["xbar"] = f.groupby("region")["ad_spend"].transform("mean")
    cols = ["ad_spend", "xbar"] if mundlak else ["ad_spend"]
    xtvx, xtvy, blocks = 0.0, 0.0, []
    for _, g in f.groupby("region"):
        x = np.column_stack([np.ones(len(g))] + [g[c].to_numpy() for c in cols])
        y = g["profit"].to_numpy()
        vinv = np.linalg.inv(np.eye(len(g)) + psi * np.ones((len(g), len(g))))
        xtvx = xtvx + x.T @ vinv @ x
        xtvy = xtvy + x.T @ vinv @ y
        blocks.append((x, y, vinv))
    coef = np.linalg.solve(xtvx, xtvy)
    qf = sum((y - x @ coef) @ vinv @ (y - x @ coef) for x, y, vinv in blocks)
    n, p = len(f), xtvx.shape[0]
    sigma2 = qf / (n - p) if reml else qf / n
    return coef, sigma2 * np.linalg.inv(xtvx), sigma2
