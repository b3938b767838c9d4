"""Few-cluster methods against their references on the same panels.

CR2 + Satterthwaite (``fe-cr2``, ``pooled-cr2``, ``hausman-cr2``) and the
cluster jackknife (``fe-cr3``) against R (clubSandwich 0.5.8 ``coef_test``
and a leave-one-region-out ``lm`` loop): the values in
``references/few_clusters_reference.csv``, written by ``references/few_clusters.R``
for the panels of ``references/few_clusters_panels.csv`` (G = 6 to 30, regions
of 1 to 12 observations, singletons, p = 1 and 2, with and without z). The
panels of one shape go into one batch in the reference tests' padded shape
(``reference.padded_batch``), so the padding guard is exercised too.
``hausman-wild`` against the Python package ``wildboottest`` (full
enumeration) and against a brute-force observation-level bootstrap.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import jax
import numpy as np
import pandas as pd
import pytest
import scipy.stats as st
from frequentist.reference import CLOSED_FORM_RTOL, R_PAD, pad_stats, padded_batch

from mlmbias import flags
from mlmbias.errors import ConfigError
from mlmbias.frequentist import wild
from mlmbias.groupstats import group_stats_from_arrays
from mlmbias.registry import Batch, get_method

REFS = Path(__file__).parent / "references"
LEVEL = 0.95
CR_METHODS = ("fe-cr2", "pooled-cr2", "hausman-cr2", "fe-cr3")


def panels() -> dict[int, pd.DataFrame]:
    frame = pd.read_csv(REFS / "few_clusters_panels.csv")
    return {int(i): d.reset_index(drop=True) for i, d in frame.groupby("panel")}


def stats_of(d: pd.DataFrame, n_groups: int | None = None):
    p, q = int(d.p.iloc[0]), int(d.q.iloc[0])
    x = d[[f"x{j}" for j in range(p)]].to_numpy()
    g = d.g.to_numpy()
    n = n_groups or int(g.max()) + 1
    z = None
    if q:
        z = np.zeros((n, 1))
        z[: g.max() + 1, 0] = d.groupby("g").z0.first().to_numpy()
    return group_stats_from_arrays(g, x, d.y.to_numpy(), n, z=z)


@pytest.fixture(scope="module")
def fitted():
    """method -> panel -> {(estimand, term): {column: float}}, one padded batch per shape."""
    by_shape: dict[tuple[int, int], list[int]] = {}
    data = panels()
    for i, d in data.items():
        by_shape.setdefault((int(d.p.iloc[0]), int(d.q.iloc[0])), []).append(i)
    out: dict[str, dict[int, dict]] = {m: {} for m in CR_METHODS}
    for ids in by_shape.values():
        batch = padded_batch([stats_of(data[i]) for i in ids])
        for m in CR_METHODS:
            res = get_method(m).load()(batch, LEVEL, {})
            for r, i in enumerate(ids):
                out[m][i] = {
                    k: {c: float(v[r]) for c, v in cols.items()} for k, cols in res.items()
                }
    return out


def reference_rows():
    ref = pd.read_csv(REFS / "few_clusters_reference.csv", keep_default_na=False, na_values=["NA"])
    return [r for _, r in ref.iterrows()]


def _id(r) -> str:
    return f"{r.method}-panel{r.panel}-{r.term or 'test'}"


def close(got: float, want: float, what: str, rtol: float = CLOSED_FORM_RTOL) -> None:
    assert np.isfinite(got), what
    assert abs(got - want) <= rtol * abs(want), f"{what}: {got!r} vs R {want!r}"


@pytest.mark.parametrize("r", reference_rows(), ids=_id)
def test_against_r(fitted, r):
    res = fitted[r.method][int(r.panel)]
    if r.method == "hausman-cr2":
        row = res[("test", "")]
        close(row["estimate"], r.estimate, "t")
        close(row["df"], r.df, "df")
        close(row["p_value"], r.p_value, "p")
        return
    term = r.term if r.term.startswith("x") else "z0"
    row = res[("beta", term)]
    close(row["estimate"], r.estimate, "estimate")
    close(row["se"], r.se, "se")
    close(row["df"], r.df, "df")
    # the interval is t(df) with the row's df, R's p-value its inversion
    q = st.t.ppf(0.5 + LEVEL / 2, r.df)
    close(row["upper"], r.estimate + q * r.se, "upper")
    close(row["lower"], r.estimate - q * r.se, "lower")
    t = r.estimate / r.se
    close(2 * st.t.sf(abs(t), row["df"]), r.p_value, "p from the row's df")


def test_reference_covers_every_method_and_shape():
    ref = pd.read_csv(REFS / "few_clusters_reference.csv")
    shapes = pd.read_csv(REFS / "few_clusters_panels.csv").groupby("panel")[["p", "q"]].first()
    assert set(ref.method) == set(CR_METHODS)
    assert set(shapes.p) == {1, 2} and set(shapes.q) == {0, 1}
    sizes = pd.read_csv(REFS / "few_clusters_panels.csv").groupby(["panel", "g"]).size()
    assert sizes.min() == 1  # singleton regions
    assert sizes.groupby(level=0).size().min() == 6


def test_satterthwaite_df_below_g_minus_1(fitted):
    """With few, unbalanced regions the Satterthwaite df fall below G - 1."""
    data = panels()
    for i, d in data.items():
        g = d.g.nunique()
        row = fitted["fe-cr2"][i][("beta", "x0")]
        assert 0 < row["df"] < g - 1


def test_hausman_cr2_needs_one_mundlak_term(fitted):
    data = panels()
    for i, d in data.items():
        row = fitted["hausman-cr2"][i][("test", "")]
        if int(d.p.iloc[0]) > 1:
            assert np.isnan(row["estimate"]) and int(row["flag"]) & flags.NONFINITE
        else:
            assert np.isfinite(row["estimate"]) and 0 < row["p_value"] < 1


# --- the wild cluster restricted bootstrap --------------------------------------------


def _wildboottest(d: pd.DataFrame, draws: int):
    """wildboottest's WCR (type 11) of the Mundlak term: (t, t_boot, p-value)."""
    from wildboottest.wildboottest import WildboottestCL

    x = d[["x0"]].copy()
    x.insert(0, "const", 1.0)
    x["xbar0"] = d.groupby("g").x0.transform("mean")
    if int(d.q.iloc[0]):
        x["z0"] = d.z0
    r = np.zeros(x.shape[1])
    r[2] = 1.0
    boot = WildboottestCL(
        X=x.to_numpy(), Y=d.y.to_numpy(), cluster=d.g.to_numpy(), R=r, B=draws, seed=1
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        boot.get_scores(bootstrap_type="11", impose_null=True)
        boot.get_weights(weights_type="rademacher")
        boot.get_numer()
        boot.get_denom()
        boot.get_tboot()
        boot.get_vcov()
        boot.get_tstat()
        boot.get_pvalue(pval_type="two-tailed")
    assert boot.full_enumeration
    return float(np.squeeze(boot.t_stat)), np.ravel(boot.t_boot), float(boot.pvalue)


WILD_PANELS = [i for i, d in panels().items() if d.p.iloc[0] == 1 and d.g.nunique() <= 9]


@pytest.mark.parametrize("panel", WILD_PANELS)
def test_wild_full_enumeration_equals_wildboottest(panel):
    d = panels()[panel]
    g = d.g.nunique()
    t, t_boot, p_ref = _wildboottest(d, 999)
    stats = stats_of(d)
    keys = jax.random.split(jax.random.PRNGKey(0), 1)
    res = wild.hausman_wild(Batch(keys=keys, stats=stats), LEVEL, {"draws": 999})
    row = {c: float(v[0]) for c, v in res[("test", "")].items()}
    close(row["estimate"], t, "t")
    assert row["draws"] == 2**g
    # every bootstrap statistic, in the same enumeration order (ours are t*^2)
    one = type(stats)(*(np.asarray(a)[0] for a in stats))
    v = wild.enumerate_signs(g)
    stat, boot = wild.wild_core(one, v, return_boot=True)
    np.testing.assert_allclose(np.asarray(boot), t_boot**2, rtol=1e-6)
    close(float(stat), t**2, "t^2")
    # p-value: the same count; wildboottest's strict comparison decides the tie at
    # v = +-1 by rounding, so it may miss those two draws
    assert row["p_value"] == pytest.approx(np.mean(t_boot**2 >= t**2 * (1 - 1e-9)), abs=1e-15)
    assert p_ref in (pytest.approx(row["p_value"]), pytest.approx(row["p_value"] - 2 / 2**g))
    assert 0 < row["p_value"] < 1
    # padded with empty regions (and an empty one first): the same 2^G enumeration
    padded = pad_stats(stats, R_PAD)
    padded = type(stats)(*(np.roll(np.asarray(a), 1, axis=1) for a in padded))
    res = wild.hausman_wild(Batch(keys=keys, stats=padded), LEVEL, {"draws": 999})
    assert float(res[("test", "")]["draws"][0]) == 2**g
    assert float(res[("test", "")]["p_value"][0]) == row["p_value"]
    v_pad, mask = wild.enumerated_weights(np.asarray(padded.n[0]) > 0, 999)
    np.testing.assert_array_equal(np.asarray(v_pad)[np.asarray(mask)][:, 1 : g + 1], v)


def _brute_force_wald(d: pd.DataFrame, v: np.ndarray) -> tuple[float, np.ndarray]:
    """The WCR bootstrap at observation level: refit every y*, CR1 Wald of xbar."""
    p, q = int(d.p.iloc[0]), int(d.q.iloc[0])
    xs = [f"x{j}" for j in range(p)]
    cols = [np.ones(len(d)), *[d[c].to_numpy() for c in xs]]
    cols += [d.groupby("g")[c].transform("mean").to_numpy() for c in xs]
    if q:
        cols.append(d.z0.to_numpy())
    x = np.column_stack(cols)
    y, g = d.y.to_numpy(), d.g.to_numpy()
    n, k = x.shape
    n_g = g.max() + 1
    ssc = n_g / (n_g - 1) * (n - 1) / (n - k)
    idx = np.arange(1 + p, 1 + 2 * p)
    xr = np.delete(x, idx, axis=1)
    br = np.linalg.lstsq(xr, y, rcond=None)[0]
    er = y - xr @ br

    def wald(yy):
        b = np.linalg.lstsq(x, yy, rcond=None)[0]
        e = yy - x @ b
        inv = np.linalg.inv(x.T @ x)
        sc = np.array([x[g == h].T @ e[g == h] for h in range(n_g)])
        cov = ssc * inv @ sc.T @ sc @ inv
        gam = b[idx]
        return float(gam @ np.linalg.solve(cov[np.ix_(idx, idx)], gam))

    boot = np.array([wald(xr @ br + vb[g] * er) for vb in v])
    return wald(y), boot


@pytest.mark.parametrize("weights", ["rademacher", "webb"])
def test_wild_random_draws_equal_brute_force(weights):
    """p = 2 (the Wald form) with z, G = 15: our bootstrap statistics for the same
    weight vectors equal the observation-level refits."""
    d = next(d for d in panels().values() if d.p.iloc[0] == 2 and d.q.iloc[0] == 1)
    g = d.g.nunique()
    stats = stats_of(d)
    one = type(stats)(*(np.asarray(a)[0] for a in stats))
    v = np.asarray(wild.weight_draws(jax.random.PRNGKey(5), 40, g, weights))
    assert set(np.unique(v)) <= set(wild.WEBB if weights == "webb" else [-1.0, 1.0])
    stat, boot = wild.wild_core(one, v, return_boot=True)
    want_stat, want_boot = _brute_force_wald(d, v)
    close(float(stat), want_stat, "Wald")
    np.testing.assert_allclose(np.asarray(boot), want_boot, rtol=1e-6)


def test_wild_random_draws_follow_the_keys():
    d = next(d for d in panels().values() if d.g.nunique() == 10 and d.p.iloc[0] == 1)
    stats = stats_of(d)
    two = type(stats)(*(np.concatenate([a, a]) for a in stats))
    keys = jax.random.split(jax.random.PRNGKey(7), 2)
    fit = get_method("hausman-wild").load()
    a = fit(Batch(keys=keys, stats=two), LEVEL, {"draws": 199})[("test", "")]
    b = fit(Batch(keys=keys, stats=two), LEVEL, {"draws": 199})[("test", "")]
    np.testing.assert_array_equal(a["p_value"], b["p_value"])
    assert a["draws"][0] == 199
    assert a["estimate"][0] == a["estimate"][1]  # same data
    assert a["p_value"][0] != a["p_value"][1]  # other draws
    w = fit(Batch(keys=keys, stats=two), LEVEL, {"draws": 199, "weights": "webb"})
    pw = w[("test", "")]["p_value"]
    assert np.all((pw >= 0) & (pw <= 1)) and w[("test", "")]["draws"][0] == 199


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"draws": 0}, "'draws' must be an integer >= 1, got 0"),
        ({"draws": 9.5}, "'draws' must be an integer >= 1"),
        ({"draws": True}, "'draws' must be an integer >= 1"),
        ({"weights": "mammen"}, "'weights' must be one of rademacher, webb, got 'mammen'"),
    ],
)
def test_wild_bad_options(options, message):
    with pytest.raises(ConfigError) as err:
        wild.parse_options(options)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_degenerate_panels_are_nan_and_flagged():
    """x constant within every region: no within estimate, no Mundlak term (NaN,
    NO_WITHIN_VARIATION). x varying in one region only: dropping it leaves no
    within variation, so the jackknife is not defined (NaN, NONFINITE)."""
    d = panels()[0].copy()  # G = 6, p = 1
    flat = d.assign(x0=d.groupby("g").x0.transform("mean"))
    one = flat.copy()
    one.loc[one.g == 3, "x0"] = d.loc[d.g == 3, "x0"]
    keys = jax.random.split(jax.random.PRNGKey(0), 1)
    for frame, case in ((flat, "flat"), (one, "one")):
        batch = Batch(keys=keys, stats=stats_of(frame))
        for m in ("fe-cr2", "fe-cr3", "hausman-cr2", "hausman-wild"):
            key = ("test", "") if m.startswith("hausman") else ("beta", "x0")
            row = {
                c: np.asarray(v)[0] for c, v in get_method(m).load()(batch, LEVEL, {})[key].items()
            }
            if case == "flat":
                assert np.isnan(row["estimate"]), (m, case)
                assert row["flag"] & flags.NO_WITHIN_VARIATION, (m, case)
                assert row["flag"] & flags.NONFINITE, (m, case)
            elif m == "fe-cr3":
                assert np.isfinite(row["estimate"]) and np.isnan(row["se"]), case
                assert row["flag"] & flags.NONFINITE, case


def test_fit_passes_a_methods_own_options(tmp_path):
    """`fit` options: METHOD.KEY reaches that method only (the Bayesian ``draws`` is
    not the bootstrap's); an option for a method not fitted is an error."""
    from mlmbias import fit

    d = panels()[1]
    kw = dict(group="g", x="x0", y="y", methods=["hausman-wild", "fe"])
    own = fit(d, **kw, options={"hausman-wild.draws": 19, "draws": 5})
    assert own.loc[own.method == "hausman-wild", "draws"].item() == 19
    plain = fit(d, **kw, options={"draws": 5})
    assert plain.loc[plain.method == "hausman-wild", "draws"].item() == min(
        wild.DEFAULT_DRAWS, 2 ** d.g.nunique()
    )
    with pytest.raises(ConfigError, match="'fe-cr2', which is not fitted"):
        fit(d, **kw, options={"fe-cr2.draws": 3})
    with pytest.raises(ConfigError, match="'draws' must be an integer >= 1"):
        fit(d, **kw, options={"hausman-wild.draws": 0})
