"""Mundlak REML with Satterthwaite and Kenward-Roger df against R.

``mundlak-reml-satt`` and ``mundlak-reml-kr`` against lmerTest 3.1 (its
Satterthwaite df) and pbkrtest 0.5 via lmerTest (``ddf = "Kenward-Roger"``):
the values in ``references/reml_df_reference.csv``, written by
``references/reml_df.R`` for the panels of ``references/few_clusters_panels.csv``
(G = 6 to 30, regions of 1 to 12 observations, singletons, p = 1 and 2, with and
without z) and of ``references/reml_df_panels.csv`` (two where REML puts the
between variance at 0). The estimate, SE and df of every coefficient are
compared, the p-value through the row's df (``p_value`` is NaN outside tests,
as the registry has it), and the interval bounds through R's df. The panels of
one shape go into one batch in the shape of the reference tests'
(``reference.padded_batch``: one compilation per method and (p, q)). lmerTest
differentiates numerically, we by autodiff; both sit at the same REML optimum
(R's optimiser run to rounding-level tolerances), so the tolerance is
``OPTIMISER_RTOL`` (the differences are below 1e-6).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.stats as st
from frequentist.reference import OPTIMISER_RTOL, padded_batch
from frequentist.test_few_clusters import stats_of

from mlmbias import flags
from mlmbias.groupstats import GroupStats
from mlmbias.registry import get_method

REFS = Path(__file__).parent / "references"
LEVEL = 0.95
METHODS = ("mundlak-reml-satt", "mundlak-reml-kr", "mundlak-reml")


def panels() -> dict[int, pd.DataFrame]:
    """The few-cluster panels and the two whose between variance is estimated at 0."""
    frame = pd.concat(
        [pd.read_csv(REFS / "few_clusters_panels.csv"), pd.read_csv(REFS / "reml_df_panels.csv")]
    )
    return {int(i): d.reset_index(drop=True) for i, d in frame.groupby("panel")}


BOUNDARY = (100, 101)


def fit_batch(parts: list[GroupStats], methods=METHODS[:2]) -> dict[str, dict]:
    """The panels ``parts`` in the frequentist tests' padded batch
    (``reference.padded_batch``), so that each method compiles once per shape (p, q)."""
    batch = padded_batch(parts)
    return {m: get_method(m).load()(batch, LEVEL, {}) for m in methods}


def row(res, key, r: int = 0) -> dict[str, float]:
    return {c: np.asarray(v)[r].item() for c, v in res[key].items()}


@pytest.fixture(scope="module")
def fitted():
    """method -> panel -> {(estimand, term): {column: float}}, one padded batch per shape
    (mundlak-reml: the panels with p = 2 and z only)."""
    by_shape: dict[tuple[int, int], list[int]] = {}
    data = panels()
    for i, d in data.items():
        by_shape.setdefault((int(d.p.iloc[0]), int(d.q.iloc[0])), []).append(i)
    out: dict[str, dict[int, dict]] = {m: {} for m in METHODS}
    for shape, ids in by_shape.items():
        # mundlak-reml, for comparison, on the richest shape only (one compilation)
        methods = METHODS if shape == (2, 1) else METHODS[:2]
        res = fit_batch([stats_of(data[i]) for i in ids], methods)
        for m in methods:
            for r, i in enumerate(ids):
                out[m][i] = {k: row(res[m], k, r) for k in res[m]}
    return out


def reference() -> pd.DataFrame:
    return pd.read_csv(REFS / "reml_df_reference.csv")


def _id(r) -> str:
    return f"{r.method}-panel{r.panel}-{r.estimand}-{r.term}"


def close(got: float, want: float, what: str, rtol: float = OPTIMISER_RTOL) -> None:
    assert np.isfinite(got), what
    assert abs(got - want) <= rtol * abs(want), f"{what}: {got!r} vs R {want!r}"


@pytest.mark.parametrize("r", [r for _, r in reference().iterrows()], ids=_id)
def test_against_r(fitted, r):
    got = fitted[r.method][int(r.panel)][(r.estimand, r.term)]
    close(got["estimate"], r.estimate, "estimate")
    close(got["se"], r.se, "se")
    close(got["df"], r.df, "df")
    close(got["sigma"], r.sigma, "sigma")
    if r.panel in BOUNDARY:  # R's optimiser stops within 1e-7 of theta = 0, ours at 0
        assert got["sigma_a"] == 0.0 and r.theta < 1e-7
    else:
        close(got["sigma_a"], r.theta * r.sigma, "sigma_a")
    # the interval is t(df) with the row's df; R's p-value is its inversion
    q = st.t.ppf(0.5 + LEVEL / 2, r.df)
    close(got["upper"], r.estimate + q * r.se, "upper")
    close(got["lower"], r.estimate - q * r.se, "lower")
    t = got["estimate"] / got["se"]
    close(2 * st.t.sf(abs(t), got["df"]), r.p_value, "p from the row's df")
    boundary = flags.BOUNDARY_VARIANCE if r.panel in BOUNDARY else 0
    assert int(got["flag"]) & ~flags.SINGLETON_GROUP == boundary


def test_reference_covers_every_coefficient():
    ref = reference()
    shapes = pd.concat(panels()).groupby("panel")[["p", "q"]].first()
    assert set(ref.method) == {"mundlak-reml-satt", "mundlak-reml-kr"}
    for m, sub in ref.groupby("method"):
        counts = sub.groupby("panel").size()
        assert (counts == 2 * shapes.p + shapes.q).all(), m


def test_same_fit_as_mundlak_reml(fitted):
    """Both are mundlak-reml's estimates; Satterthwaite keeps its SE (lme4's vcov),
    Kenward-Roger inflates it; the df of the contextual effects lie below those of
    the within effects, which are informed by every observation."""
    assert fitted["mundlak-reml"]
    for i, base in fitted["mundlak-reml"].items():
        d = panels()[i]
        satt, kr = fitted["mundlak-reml-satt"][i], fitted["mundlak-reml-kr"][i]
        assert set(base) == set(satt) == set(kr)
        for key, b in base.items():
            assert satt[key]["estimate"] == pytest.approx(b["estimate"], rel=1e-12)
            assert kr[key]["estimate"] == pytest.approx(b["estimate"], rel=1e-12)
            assert satt[key]["se"] == pytest.approx(b["se"], rel=1e-10)
            assert kr[key]["se"] >= b["se"] * (1 - 1e-12)
            for m in (satt, kr):
                assert 0 < m[key]["df"] < len(d)
                assert np.isnan(m[key]["p_value"])  # not a test: p_value is NaN, as elsewhere
    for i, d in panels().items():
        if i in BOUNDARY:  # Satterthwaite: N - K for every coefficient there
            continue
        for m in METHODS[:2]:
            got = fitted[m][i]
            for j in range(int(d.p.iloc[0])):
                assert got[("contextual", f"x{j}")]["df"] < got[("beta", f"x{j}")]["df"]


def test_boundary_satterthwaite_df_are_n_minus_k(fitted):
    """At s_a^2 = 0 the variance of c'beta moves with sigma only (d/d theta is 0
    there), and the REML curvature in sigma gives df = N - K exactly, as R finds;
    Kenward-Roger's stay below."""
    for i in BOUNDARY:
        d = panels()[i]
        k = 1 + 2 * int(d.p.iloc[0]) + int(d.q.iloc[0])
        for key, got in fitted["mundlak-reml-satt"][i].items():
            assert got["df"] == pytest.approx(len(d) - k, rel=1e-9), key
            assert got["sigma_a"] == 0.0 and got["flag"] & flags.BOUNDARY_VARIANCE
            assert 0 < fitted["mundlak-reml-kr"][i][key]["df"] < len(d) - k


def test_no_within_variation_is_nan_for_that_x_only():
    """x1 constant within regions: its beta and contextual effect are NaN (NONFINITE),
    the rest is the fit without it, with finite df."""
    d = next(d for d in panels().values() if d.p.iloc[0] == 2).copy()
    d["x1"] = d.groupby("g").x1.transform("mean")
    res = fit_batch([stats_of(d)])
    for m in ("mundlak-reml-satt", "mundlak-reml-kr"):
        for est in ("beta", "contextual"):
            bad = row(res[m], (est, "x1"))
            assert np.isnan(bad["estimate"]) and np.isnan(bad["df"])
            assert bad["flag"] & flags.NONFINITE and bad["flag"] & flags.NO_WITHIN_VARIATION
            good = row(res[m], (est, "x0"))
            assert np.isfinite(good["se"]) and 0 < good["df"] < len(d)
