"""Several covariates: p within-varying x and q group-level z, every frequentist method
against linearmodels and statsmodels, coefficient by coefficient.

Two kinds of panel: linearmodels' ``wage_panel`` (545 men over 8 years; x = union,
married, exper, expersq; z = black, hisp, educ, constant within ``nr``) and
simulated unbalanced panels with p = 2, q = 1 (groups of 1 to 8 observations,
singletons among them, region effects correlated with the x means and with z),
padded into one batch so that each method compiles once for them.

Tolerances as in ``reference``: 1e-6 relative for closed forms, 1e-4 where an
optimiser is involved (MixedLM; where it stops short of the optimum, our
log-likelihood is shown to be at least as high and the Powell refit is the
reference). The Hausman statistics are checked against the quadratic forms
computed from the linearmodels fits, as ``test_hausman`` does for p = 1.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import linearmodels as lm
import numpy as np
import pandas as pd
import pytest
import scipy.stats as st
import statsmodels.formula.api as smf
from _panels import covariate_panel
from frequentist.reference import (
    CLOSED_FORM_RTOL,
    GENERIC_METHODS,
    LEVEL,
    OPTIMISER_RTOL,
    assert_close,
    padded_batch,
    sm_fit,
    sm_loglik_at,
)

from mlmbias import flags
from mlmbias.fitting import fit
from mlmbias.groupstats import GroupStats, group_stats_from_arrays
from mlmbias.registry import Batch, get_method

METHODS = GENERIC_METHODS
SIM_GROUPS = 20  # at most, in a simulated panel
SIM_SEEDS = (1, 2, 3)
WAGE_X = ["union", "married", "exper", "expersq"]
WAGE_Z = ["black", "hisp", "educ"]


@dataclass
class Case:
    """One panel, our results for it and the names of its columns."""

    name: str
    frame: pd.DataFrame  # columns g, t, y, the x and the z
    x: list[str]
    z: list[str]
    results: dict  # method -> (estimand, term) -> column -> float

    def got(self, method: str, estimand: str, name: str) -> dict[str, float]:
        term = f"z{self.z.index(name)}" if name in self.z else f"x{self.x.index(name)}"
        return self.results[method][(estimand, term)]

    @property
    def means(self) -> list[str]:
        return [f"mean_{c}" for c in self.x]

    def panel(self) -> pd.DataFrame:
        """Indexed by (g, t), with const and the group means of the x."""
        d = self.frame.set_index(["g", "t"]).copy()
        d["const"] = 1.0
        for c, m in zip(self.x, self.means, strict=True):
            d[m] = d.groupby(level=0)[c].transform("mean")
        return d


def simulated_panel(seed: int) -> pd.DataFrame:
    """Unbalanced, p = 2, q = 1; group effects correlated with the x means and z."""
    rng = np.random.default_rng(seed)
    g = int(rng.integers(12, SIM_GROUPS + 1))
    sizes = rng.integers(1, 9, size=g)
    sizes[:2] = 1  # singletons
    sizes[2] = 8
    return covariate_panel(rng, sizes)


def _stats(frame: pd.DataFrame, x, z) -> GroupStats:
    codes, uniques = pd.factorize(frame["g"], sort=True)
    zs = frame.groupby(codes)[z].first().to_numpy()
    y = frame["y"].to_numpy()
    return group_stats_from_arrays(codes, frame[x].to_numpy(), y, len(uniques), zs)


def _run(stats: GroupStats) -> dict:
    batch = Batch(None, stats)
    return {m: get_method(m).load()(batch, LEVEL, {}) for m in METHODS}


def _one(results: dict, i: int) -> dict:
    return {
        m: {key: {c: np.asarray(v)[i].item() for c, v in cols.items()} for key, cols in out.items()}
        for m, out in results.items()
    }


@pytest.fixture(scope="module")
def simulated() -> list[Case]:
    frames = [simulated_panel(s) for s in SIM_SEEDS]
    # in the reference tests' padded shape: the methods compile once for them all
    results = _run(padded_batch([_stats(f, ["x0", "x1"], ["z0"]) for f in frames]).stats)
    return [
        Case(f"simulated seed {s}", f, ["x0", "x1"], ["z0"], _one(results, i))
        for i, (s, f) in enumerate(zip(SIM_SEEDS, frames, strict=True))
    ]


def wage_frame() -> pd.DataFrame:
    from linearmodels.datasets import wage_panel

    data = wage_panel.load()
    frame = data.rename(columns={"nr": "g", "year": "t", "lwage": "y"})
    return frame[["g", "t", "y", *WAGE_X, *WAGE_Z]].astype(float).astype({"g": int, "t": int})


@pytest.fixture(scope="module")
def wage() -> Case:
    frame = wage_frame()
    assert (frame.groupby("g")[WAGE_Z].nunique() == 1).all().all()  # level-2 indeed
    return Case("wage_panel", frame, WAGE_X, WAGE_Z, _one(_run(_stats(frame, WAGE_X, WAGE_Z)), 0))


def _cases(request) -> list[Case]:
    which = request.param
    if which == "wage":
        return [request.getfixturevalue("wage")]
    return request.getfixturevalue("simulated")


cases = pytest.fixture(params=["wage", "simulated"])(_cases)


# --- closed forms against linearmodels -------------------------------------------------


def _compare(case: Case, method: str, res, blocks, what: str, flag_ok=0) -> None:
    """Estimate, SE, interval and df of every coefficient of ``blocks`` (estimand,
    list of our names, list of linearmodels' names)."""
    ci = res.conf_int(LEVEL)
    for estimand, ours, theirs in blocks:
        for a, b in zip(ours, theirs, strict=True):
            got = case.got(method, estimand, a)
            w = f"{what} {method} {estimand} {a}"
            assert_close(got["estimate"], res.params[b], CLOSED_FORM_RTOL, w)
            assert_close(got["se"], res.std_errors[b], CLOSED_FORM_RTOL, w)
            assert_close([got["lower"], got["upper"]], ci.loc[b].to_numpy(), CLOSED_FORM_RTOL, w)
            assert got["df"] == res.df_resid, w
            assert np.isnan(got["p_value"])
            assert got["flag"] & ~flag_ok == 0, (w, flags.names(got["flag"]))


def _regressors(case: Case, mundlak: bool = False) -> list[str]:
    return ["const", *case.x, *(case.means if mundlak else []), *case.z]


def test_pooled_and_between_match_linearmodels(cases):
    for case in cases:
        d = case.panel()
        xz = case.x + case.z
        exog = d[_regressors(case)]
        fits = {
            "pooled": lm.PooledOLS(d.y, exog).fit(),
            "pooled-cluster": lm.PooledOLS(d.y, exog).fit(
                cov_type="clustered", cluster_entity=True, group_debias=True
            ),
            "between": lm.BetweenOLS(d.y, exog).fit(),
        }
        for method, res in fits.items():
            _compare(case, method, res, [("beta", xz, xz)], case.name)
            assert set(case.results[method]) == {("beta", f"x{j}") for j in range(len(case.x))} | {
                ("beta", f"z{j}") for j in range(len(case.z))
            }


def test_fixed_effects_match_panelols(cases):
    singleton = flags.SINGLETON_GROUP
    for case in cases:
        d = case.panel()
        mod = lm.PanelOLS(d.y, d[["const", *case.x]], entity_effects=True)
        s2 = mod.fit().s2  # SSR / (N - G - p)
        for method, res in [
            ("fe", mod.fit()),
            ("fe-cluster", mod.fit(cov_type="clustered", cluster_entity=True, group_debias=True)),
        ]:
            _compare(case, method, res, [("beta", case.x, case.x)], case.name, singleton)
            n, g, p = len(d), d.index.get_level_values(0).nunique(), len(case.x)
            assert res.df_resid == n - g - p
            # z is absorbed by the group effects: no row for it
            assert set(case.results[method]) == {("beta", f"x{j}") for j in range(p)}
            assert_close(case.got(method, "beta", case.x[0])["sigma"] ** 2, s2, 1e-10)


def _within_flags() -> int:
    return flags.SINGLETON_GROUP | flags.BOUNDARY_VARIANCE


def test_random_effects_fgls_matches_linearmodels(cases):
    for case in cases:
        d = case.panel()
        res = lm.RandomEffects(d.y, d[_regressors(case)]).fit()
        xz = case.x + case.z
        _compare(case, "re-fgls", res, [("beta", xz, xz)], case.name, _within_flags())
        vd = res.variance_decomposition
        got = case.got("re-fgls", "beta", case.x[0])
        assert_close(got["sigma"] ** 2, vd["Residual"], CLOSED_FORM_RTOL, case.name)
        assert abs(got["sigma_a"] ** 2 - vd["Effects"]) <= CLOSED_FORM_RTOL * vd["Effects"]


def test_mundlak_fgls_matches_linearmodels(cases):
    for case in cases:
        d = case.panel()
        res = lm.RandomEffects(d.y, d[_regressors(case, mundlak=True)]).fit()
        blocks = [
            ("beta", case.x + case.z, case.x + case.z),
            ("contextual", case.x, case.means),
        ]
        _compare(case, "mundlak-fgls", res, blocks, case.name, _within_flags())
        # the variance components are those of re-fgls; beta is the within estimate
        for a in case.x:
            got = case.got("mundlak-fgls", "beta", a)
            assert_close(got["sigma"], case.got("re-fgls", "beta", a)["sigma"], 1e-10)
            assert_close(got["sigma_a"], case.got("re-fgls", "beta", a)["sigma_a"], 1e-10)
            assert_close(got["estimate"], case.got("fe", "beta", a)["estimate"], 1e-9)


# --- REML / ML against statsmodels MixedLM ----------------------------------------------


def dense_gls(case: Case, psi: float, cols: list[str], reml: bool):
    """lme4-style GLS with dense per-group matrices: coefficients, vcov, sigma^2."""
    d = case.panel().reset_index()
    xtvx, xtvy, blocks = 0.0, 0.0, []
    for _, grp in d.groupby("g"):
        x = grp[["const", *cols]].to_numpy()
        y = grp["y"].to_numpy()
        m = len(grp)
        vinv = np.eye(m) - psi / (1.0 + m * psi) * np.ones((m, m))
        xtvx = xtvx + x.T @ vinv @ x
        xtvy = xtvy + x.T @ vinv @ y
        blocks.append((x, y, vinv))
    coef = np.linalg.solve(xtvx, xtvy)
    qf = sum((y - x @ coef) @ vinv @ (y - x @ coef) for x, y, vinv in blocks)
    n, k = len(d), xtvx.shape[0]
    sigma2 = qf / (n - k) if reml else qf / n
    return coef, sigma2 * np.linalg.inv(xtvx), sigma2


LIKELIHOOD = [("re-reml", True, False), ("re-ml", False, False), ("mundlak-reml", True, True)]


@pytest.mark.parametrize(("method", "reml", "mundlak"), LIKELIHOOD, ids=[m[0] for m in LIKELIHOOD])
def test_likelihood_matches_mixedlm(cases, method, reml, mundlak):
    """Estimates and variance components agree with MixedLM to 1e-4 at the better
    of its default and Powell fits (ours is checked to be at least as high);
    lme4's vcov against the dense GLS at our variance ratio."""
    for case in cases:
        cols = [*case.x, *(case.means if mundlak else []), *case.z]
        keys = [("beta", a, a) for a in case.x + case.z]
        keys += [("contextual", a, m) for a, m in zip(case.x, case.means, strict=True)] * mundlak
        first = case.got(method, "beta", case.x[0])
        sigma, sigma_a, loglik = first["sigma"], first["sigma_a"], first["loglik"]
        psi = (sigma_a / sigma) ** 2
        frame = case.panel().reset_index()
        model = smf.mixedlm("y ~ " + " + ".join(cols), frame, groups=frame["g"])
        ref = sm_fit(model, reml)
        what = f"{case.name} {method}"
        assert_close(loglik, sm_loglik_at(model, reml, psi), 1e-10, what + " loglik")
        assert loglik >= ref.llf - 1e-12 * abs(ref.llf), what
        if loglik - ref.llf > 1e-12 * abs(ref.llf):  # MixedLM stopped short
            powell = sm_fit(model, reml, method="powell", xtol=1e-10, ftol=1e-12)
            assert loglik >= powell.llf - 1e-12 * abs(powell.llf), what
            ref = max(ref, powell, key=lambda r: r.llf)
        for estimand, a, b in keys:
            got = case.got(method, estimand, a)
            assert_close(got["estimate"], ref.fe_params[b], OPTIMISER_RTOL, f"{what} {a}")
            assert got["flag"] & ~_within_flags() == 0, (what, flags.names(got["flag"]))
        assert_close(sigma**2, ref.scale, OPTIMISER_RTOL, what + " sigma")
        total = sigma**2 + sigma_a**2
        assert abs(sigma_a**2 - float(ref.cov_re.iloc[0, 0])) <= OPTIMISER_RTOL * total, what
        coef, vcov, sigma2 = dense_gls(case, psi, cols, reml)
        assert_close(sigma**2, sigma2, 1e-8, what)
        z = st.norm.ppf(0.5 + LEVEL / 2)
        for estimand, a, b in keys:
            got = case.got(method, estimand, a)
            j = 1 + cols.index(b)
            assert_close(got["estimate"], coef[j], 1e-8, f"{what} {a}")
            assert_close(got["se"], np.sqrt(vcov[j, j]), 1e-8, f"{what} {a} se")
            assert_close(
                [got["lower"], got["upper"]],
                [got["estimate"] - z * got["se"], got["estimate"] + z * got["se"]],
                1e-12,
                what,
            )
            assert got["loglik"] == loglik


# --- Hausman tests ---------------------------------------------------------------------


def _contrast_pieces(case: Case, sigmamore: bool):
    d = case.panel()
    fe = lm.PanelOLS(d.y, d[["const", *case.x]], entity_effects=True).fit()
    re = lm.RandomEffects(d.y, d[_regressors(case)]).fit()
    b = fe.params[case.x] - re.params[case.x]
    v_fe = fe.cov.loc[case.x, case.x].to_numpy()
    v_re = re.cov.loc[case.x, case.x].to_numpy()
    if sigmamore:
        v_fe = re.s2 * v_fe / fe.s2
    return b.to_numpy(), v_fe - v_re


@pytest.mark.parametrize("sigmamore", [False, True], ids=["hausman", "hausman-sigmamore"])
def test_hausman_contrast_matches_linearmodels(cases, sigmamore):
    """The classic test is undefined (V_FE - V_RE not positive definite) in the first
    simulated panel and defined in the others and in the wage panel; sigmamore is
    defined in all of them."""
    method = "hausman-sigmamore" if sigmamore else "hausman"
    defined = []
    for case in cases:
        d, v = _contrast_pieces(case, sigmamore)
        got = case.results[method][("test", "")]
        p = len(case.x)
        what = f"{case.name} {method}"
        assert got["df"] == p
        diag = np.diag(v)
        s = np.sqrt(np.where(diag > 0, diag, 1.0))  # unit diagonal where it is positive
        lam = np.linalg.eigvalsh(v / np.outer(s, s))
        assert abs(lam.min()) > 1e-8, what  # clearly one or the other
        defined.append(bool(lam.min() > 0))
        if lam.min() > 0:
            stat = d @ np.linalg.solve(v, d)
            assert_close(got["estimate"], stat, 1e-6, what)
            assert_close(got["p_value"], st.chi2.sf(stat, p), 1e-6, what)
            assert_close(got["var_diff"], lam.min(), 1e-5, what)
            assert got["flag"] & flags.NOT_POSITIVE_DEFINITE == 0
        else:
            assert got["flag"] & flags.NOT_POSITIVE_DEFINITE and got["flag"] & flags.NONFINITE
            assert np.isnan(got["estimate"]) and np.isnan(got["p_value"]), what
            assert got["var_diff"] < 0
        assert np.isnan(got["contrast"])  # a vector for p > 1
    if sigmamore or cases[0].name == "wage_panel":
        assert all(defined)
    else:
        assert defined == [False, True, True]


def test_hausman_robust_matches_clustered_mundlak_wald(cases):
    for case in cases:
        d = case.panel()
        res = lm.RandomEffects(d.y, d[_regressors(case, mundlak=True)]).fit(
            cov_type="clustered", cluster_entity=True, group_debias=True
        )
        g = res.params[case.means].to_numpy()
        wald = g @ np.linalg.solve(res.cov.loc[case.means, case.means].to_numpy(), g)
        got = case.results["hausman-robust"][("test", "")]
        assert_close(got["estimate"], wald, CLOSED_FORM_RTOL, case.name)
        assert_close(got["p_value"], st.chi2.sf(wald, len(case.x)), 1e-8, case.name)
        assert got["df"] == len(case.x)


# --- the fit API ------------------------------------------------------------------------


def test_fit_names_the_terms(wage):
    """mlmbias.fit on the wage panel: a term column with the real names, after estimand,
    the same numbers as the batch (the compiled programs are shared)."""
    df = wage_frame().rename(columns={"g": "nr", "y": "lwage"})
    table = fit(df, group="nr", x=WAGE_X, y="lwage", z=WAGE_Z, level=LEVEL, methods=METHODS)
    assert list(table.columns[:3]) == ["method", "estimand", "term"]
    for _, row in table.iterrows():
        name = row.term
        if row.estimand == "test":
            assert name == ""
            want = wage.results[row.method][("test", "")]
        else:
            want = wage.got(row.method, row.estimand, name)
        for col in ("estimate", "se", "lower", "upper", "p_value"):
            a = np.nan if row[col] is None else row[col]
            np.testing.assert_allclose(a, want[col], rtol=1e-12, err_msg=f"{row.method} {name}")
    rows = {(m, e, t) for m, e, t in zip(table.method, table.estimand, table.term, strict=True)}
    assert len(rows) == len(table)
    assert ("fe", "beta", "educ") not in rows and ("pooled", "beta", "educ") in rows
    assert ("mundlak-reml", "contextual", "expersq") in rows


def test_fit_rejects_a_z_that_varies_within_groups():
    from mlmbias.errors import ConfigError

    df = simulated_panel(4)
    with pytest.raises(ConfigError, match="z column 'x1' is not constant within groups"):
        fit(df, group="g", x="x0", y="y", z=["z0", "x1"], methods=["pooled"])
    with pytest.raises(ConfigError, match="named twice"):
        fit(df, group="g", x=["x0", "x1"], y="y", z="x1", methods=["pooled"])


def test_no_within_variation_in_one_covariate():
    """x1 constant within groups: its within coefficient is not identified (NaN,
    flagged), the other is that of the model without x1 (as PanelOLS without it)."""
    df = simulated_panel(2)
    df["x1"] = df.groupby("g")["x1"].transform("mean")
    methods = ["fe", "mundlak-fgls", "hausman", "re-fgls"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = fit(df, group="g", x=["x0", "x1"], y="y", z="z0", methods=methods, level=LEVEL)

    def row(method, estimand, term):
        r = table[(table.method == method) & (table.estimand == estimand) & (table.term == term)]
        assert len(r) == 1
        return r.iloc[0]

    for method in ("fe", "mundlak-fgls"):
        for estimand in ("beta", "contextual") if method == "mundlak-fgls" else ("beta",):
            r = row(method, estimand, "x1")
            assert np.isnan(r.estimate) and r.flag & flags.NO_WITHIN_VARIATION, (method, estimand)
    d = df.set_index(["g", "t"])
    ref = lm.PanelOLS(d.y, d[["x0"]].assign(const=1.0), entity_effects=True).fit()
    r = row("fe", "beta", "x0")
    assert_close(r.estimate, ref.params["x0"], CLOSED_FORM_RTOL, "fe x0")
    assert_close(r.estimate, row("mundlak-fgls", "beta", "x0").estimate, 1e-9, "mundlak x0")
    assert np.isnan(row("hausman", "test", "").estimate)
    assert np.isfinite(row("re-fgls", "beta", "x1").estimate)  # identified between groups


def test_cli_fit_several_covariates(tmp_path, capsys, wage):
    """`mlmbias fit wage.csv --group nr --y lwage --x union,married,exper,expersq
    --z black,hisp,educ --json`: one record per (method, estimand, term), terms named
    by their columns, the numbers of the batch API (the same compiled programs)."""
    import json

    from mlmbias.cli import main

    path = tmp_path / "wage.csv"
    wage_frame().rename(columns={"g": "nr", "y": "lwage"}).to_csv(path, index=False)
    argv = ["fit", str(path), "--group", "nr", "--y", "lwage", "--x", ",".join(WAGE_X)]
    argv += ["--z", ",".join(WAGE_Z), "--level", str(LEVEL), "--json"]
    argv += ["--methods", ",".join(METHODS)]  # the random-slope ones: test_random_slopes
    code = main(argv)
    out = capsys.readouterr()
    assert code == 0, out.err
    records = json.loads(out.out)
    keys = [(r["method"], r["estimand"], r["term"]) for r in records]
    assert len(set(keys)) == len(keys)
    names = {"": "", **{f"x{j}": n for j, n in enumerate(WAGE_X)}}
    names.update({f"z{j}": n for j, n in enumerate(WAGE_Z)})
    expected = {(m, e, names[t]) for m in METHODS for (e, t) in wage.results[m]}
    assert set(keys) == expected
    assert {t for _, e, t in keys if e == "beta"} == set(WAGE_X) | set(WAGE_Z)
    for r in records:
        term = next(t for t, n in names.items() if n == r["term"])
        want = wage.results[r["method"]][(r["estimand"], term)]
        for col in ("estimate", "se", "p_value", "df"):
            if col not in want:  # the interval's df is a column of tests and t intervals
                continue
            got = np.nan if r[col] is None else r[col]
            np.testing.assert_allclose(got, want[col], rtol=1e-12, err_msg=f"{r} {col}")
        if r["method"] == "hausman-cr2":  # one Mundlak term only: not defined for p = 4
            assert r["estimate"] is None or np.isnan(r["estimate"])
        elif r["estimand"] == "test":
            assert r["df"] == len(WAGE_X) and isinstance(r["p_value"], float)
        else:
            assert r["lower"] < r["estimate"] < r["upper"], r
    fe = {r["term"]: r for r in records if r["method"] == "fe"}
    d = wage_frame().set_index(["g", "t"]).assign(const=1.0)
    ref = lm.PanelOLS(d.y, d[["const", *WAGE_X]], entity_effects=True).fit()
    for name in WAGE_X:
        assert_close(fe[name]["estimate"], ref.params[name], CLOSED_FORM_RTOL, name)


def test_cli_z_and_its_errors(tmp_path, capsys):
    from mlmbias.cli import main

    path = tmp_path / "panel.csv"
    simulated_panel(5).to_csv(path, index=False)
    base = ["fit", str(path), "--group", "g", "--y", "y", "--x", "x0,x1"]
    assert main([*base, "--z", "z0", "--methods", "pooled,fe"]) == 0
    table = capsys.readouterr().out.split("\n\n")[0].splitlines()
    assert [ln.split()[:3] for ln in table[1:]] == [
        ["pooled", "beta", "x0"],
        ["pooled", "beta", "x1"],
        ["pooled", "beta", "z0"],
        ["fe", "beta", "x0"],
        ["fe", "beta", "x1"],
    ]
    for extra, message in [
        (["--z", "x1"], "named twice"),
        (["--z", "z0,t"], "z column 't' is not constant within groups"),
        (["--z", "z0,"], "empty column name"),
    ]:
        assert main([*base, *extra]) == 2, extra
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and message in err, (extra, err)
