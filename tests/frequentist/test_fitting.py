"""One observed panel through ``mlmbias.fitting.fit`` and ``mlmbias fit``; degenerate panels.

All panels here have five regions, so each method compiles once for this file.
"""

import json

import numpy as np
import pytest
from frequentist.reference import (
    CLOSED_FORM_RTOL,
    GENERIC_METHODS,
    LEVEL,
    assert_close,
    lm_fe,
    lm_re,
    panel_data,
    sm_fit,
    sm_model,
)

from mlmbias import flags
from mlmbias.cli import main
from mlmbias.fitting import RECORD_KEYS, fit
from mlmbias.frequentist import METHOD_SPECS

METHODS = list(GENERIC_METHODS)  # fit() of the rest: test_fit_default_is_every_...
# regressions of the observations or means without the within transformation: a
# one-month region is not flagged (SINGLETON_GROUP marks the within-based methods)
POOLED_METHODS = (
    "pooled",
    "pooled-cluster",
    "pooled-cr2",
    "between",
    "hausman-cr2",
    "hausman-wild",
)
WITHIN_METHODS = [m for m in METHODS if m not in POOLED_METHODS]


@pytest.fixture(scope="module")
def small(reference):
    """A five-region panel (replication 1 of the small condition) and its row in the batch."""
    i = [k for k, lab in enumerate(reference.labels) if lab == "small"][1]
    return reference.frames[i], i


def _row(table, method, estimand="beta"):
    rows = table[(table.method == method) & (table.estimand == estimand)]
    assert len(rows) == 1, (method, estimand)
    return rows.iloc[0]


def test_fit_matches_batch(reference, small):
    frame, i = small
    table = fit(frame, group="region", x="ad_spend", y="profit", methods=METHODS, level=LEVEL)
    assert list(table.columns[: len(RECORD_KEYS)]) == list(RECORD_KEYS)
    assert "flag" in table.columns
    expected = [(s.name, e) for s in METHOD_SPECS if s.name in METHODS for e in s.estimands]
    assert list(zip(table.method, table.estimand, strict=True)) == expected
    assert list(table.term) == ["" if e == "test" else "ad_spend" for e in table.estimand]
    for _, row in table.iterrows():
        want = reference.results[row.method][(row.estimand, "x0" if row.term else "")]
        for col in ("estimate", "se", "lower", "upper", "p_value"):
            value = np.nan if row[col] is None else row[col]
            np.testing.assert_allclose(
                value, want[col][i], rtol=1e-7, err_msg=f"{row.method} {row.estimand} {col}"
            )
        assert row.flag == want["flag"][i]
    tests = table[table.estimand == "test"]
    assert tests.p_value.notna().all()
    assert table[table.estimand != "test"].p_value.isna().all()


def test_fit_default_is_every_frequentist_method(small):
    frame, _ = small
    table = fit(frame, group="region", x="ad_spend", y="profit")
    assert set(METHODS) <= set(table.method)
    z94 = 1.8807936081512509  # normal quantile at 0.97
    row = _row(table, "re-reml")
    assert_close(row.upper - row.estimate, z94 * row.se, 1e-10)


def test_cli_json(tmp_path, capsys, small):
    frame, _ = small
    path = tmp_path / "panel.csv"
    frame.to_csv(path, index=False)
    code = main(["fit", str(path), "--json", "--level", "0.95", "--methods", ",".join(METHODS)])
    out = capsys.readouterr()
    assert code == 0, out.err
    records = json.loads(out.out)
    assert len(records) == sum(len(s.estimands) for s in METHOD_SPECS if s.name in METHODS)
    for r in records:
        assert set(RECORD_KEYS) <= set(r)
        assert r["estimand"] in ("beta", "contextual", "test")
        assert r["term"] == ("" if r["estimand"] == "test" else "ad_spend")
        if r["estimand"] == "test":
            assert isinstance(r["p_value"], float)
        else:
            assert r["p_value"] is None
            assert r["lower"] < r["estimate"] < r["upper"]


def test_cli_table(tmp_path, capsys, small):
    frame, _ = small
    path = tmp_path / "panel.csv"
    frame.to_csv(path, index=False)
    assert main(["fit", str(path), "--methods", "fe,mundlak-reml,hausman"]) == 0
    table = capsys.readouterr().out.split("\n\n")[0]  # the notes on flags follow
    lines = table.splitlines()
    assert lines[0].split()[: len(RECORD_KEYS)] == list(RECORD_KEYS)
    assert [ln.split()[:2] for ln in lines[1:]] == [
        ["fe", "beta"],
        ["mundlak-reml", "beta"],
        ["mundlak-reml", "contextual"],
        ["hausman", "test"],
    ]


@pytest.mark.parametrize(
    ("change", "args", "message"),
    [
        (None, ["--x", "spend"], "column 'spend' not found"),
        ("text", [], "non-numeric"),
        ("nan", [], "missing values"),
        ("one_group", [], "1 group(s)"),
    ],
)
def test_cli_bad_input(tmp_path, capsys, small, change, args, message):
    frame = small[0].copy()
    if change == "text":
        frame["profit"] = frame["profit"].astype(object)
        frame.loc[frame.index[3], "profit"] = "n/a!"
    elif change == "nan":
        frame.loc[frame.index[2], "ad_spend"] = np.nan
    elif change == "one_group":
        frame["region"] = 0
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    code = main(["fit", str(path), *args])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("mlmbias fit: error:") and message in err


# --- degenerate panels -------------------------------------------------------------


def test_one_month_region_is_flagged_and_still_matches(small):
    frame, _ = small
    first = frame[frame.region == 0].index[0]
    frame = frame[(frame.region != 0) | (frame.index == first)]
    table = fit(frame, group="region", x="ad_spend", y="profit", methods=METHODS, level=LEVEL)
    for method in METHODS:
        for _, row in table[table.method == method].iterrows():
            has = bool(row.flag & flags.SINGLETON_GROUP)
            assert has == (method in WITHIN_METHODS), method
    d = panel_data(frame)
    for method, res in [("fe", lm_fe(d)), ("re-fgls", lm_re(d))]:
        row = _row(table, method)
        assert_close(row.estimate, res.params["ad_spend"], CLOSED_FORM_RTOL, method)
        assert_close(row.se, res.std_errors["ad_spend"], CLOSED_FORM_RTOL, method)


def test_no_within_variation_is_flagged(small):
    frame = small[0].copy()
    frame["ad_spend"] = frame.groupby("region")["ad_spend"].transform("mean")
    table = fit(frame, group="region", x="ad_spend", y="profit", methods=METHODS, level=LEVEL)
    for method in ("fe", "fe-cluster", "mundlak-fgls", "mundlak-reml", "hausman"):
        for _, row in table[table.method == method].iterrows():
            assert row.estimate is None or np.isnan(row.estimate), method
            assert row.flag & flags.NO_WITHIN_VARIATION and row.flag & flags.NONFINITE, method
    # Random effects are still identified from the between variation, as in linearmodels
    row = _row(table, "re-fgls")
    res = lm_re(panel_data(frame))
    assert row.flag & flags.NO_WITHIN_VARIATION
    assert_close(row.estimate, res.params["ad_spend"], CLOSED_FORM_RTOL, "re-fgls")
    assert_close(row.se, res.std_errors["ad_spend"], CLOSED_FORM_RTOL, "re-fgls")
    assert _row(table, "re-reml").flag & flags.NO_WITHIN_VARIATION
    assert np.isfinite(_row(table, "re-reml").estimate)


def test_between_variance_at_zero_is_truncated_and_flagged(small):
    """Region means exactly on a line: the between residuals are 0, so the
    Swamy-Arora s_a^2 is negative before truncation (linearmodels truncates to 0),
    RE is pooled OLS, and REML's optimum is psi = 0 (MixedLM approaches 0).

    The REML row reports sigma_a = 0 exactly.
    """
    frame = small[0].copy()
    g = frame.groupby("region")
    on_line = 3.0 + 1.5 * g["ad_spend"].transform("mean")
    frame["profit"] = frame["profit"] - g["profit"].transform("mean") + on_line
    table = fit(frame, group="region", x="ad_spend", y="profit", methods=METHODS, level=LEVEL)
    d = panel_data(frame)
    res = lm_re(d)
    assert res.variance_decomposition["Effects"] == 0
    row = _row(table, "re-fgls")
    assert row.flag & flags.BOUNDARY_VARIANCE
    assert row.sigma_a == 0
    assert_close(row.estimate, res.params["ad_spend"], CLOSED_FORM_RTOL, "re-fgls")
    assert_close(row.se, res.std_errors["ad_spend"], CLOSED_FORM_RTOL, "re-fgls")
    assert_close(row.estimate, _row(table, "pooled").estimate, 1e-10, "re = pooled")
    assert _row(table, "mundlak-fgls").flag & flags.BOUNDARY_VARIANCE
    reml = _row(table, "re-reml")
    assert reml.flag & flags.BOUNDARY_VARIANCE and reml.sigma_a == 0
    # MixedLM's default optimisers fail here (BFGS stops; L-BFGS returns llf = +inf
    # at the fixed-effects estimate), so the reference is its Powell fit
    ref = sm_fit(sm_model(frame), True, method="powell", xtol=1e-10, ftol=1e-12)
    assert float(ref.cov_re.iloc[0, 0]) < 1e-6 * ref.scale
    assert reml.loglik >= ref.llf - 1e-12 * abs(ref.llf)
    assert_close(reml.estimate, ref.fe_params["ad_spend"], 1e-4, "re-reml")
