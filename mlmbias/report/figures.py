"""The report's figures (matplotlib): each saved as PNG and SVG, titled and labelled.

Every function takes tidy frames (results and/or the long summary) and a
folder, returns the PNG path, or None when the study lacks what the figure
needs (the report then says which figure was skipped and why).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from scipy.stats import norm  # noqa: E402

from mlmbias.report import styles  # noqa: E402
from mlmbias.report.layout import Layout, label_terms  # noqa: E402
from mlmbias.report.layout import title as layout_title  # noqa: E402
from mlmbias.report.styles import ordered  # noqa: E402

REGION_COLOURS = plt.rcParams["axes.prop_cycle"].by_key()["color"]


def _save(fig: plt.Figure, folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    png = folder / f"{name}.png"
    fig.savefig(png, dpi=130, bbox_inches="tight")
    fig.savefig(folder / f"{name}.svg", bbox_inches="tight")
    plt.close(fig)
    return png


def first_of_family(present: Sequence[str], family: str) -> str | None:
    """The first method of ``family`` (registry order) among ``present``."""
    return next((m for m in ordered(present) if styles.family(m) == family), None)


def _fmt(v) -> str:
    numeric = isinstance(v, int | float | np.number) and not isinstance(v, bool)
    return f"{v:g}" if numeric else str(v)


def _showcase(lay: Layout, frame: pd.DataFrame) -> dict:
    """The panel a single-condition figure shows: each panel factor at its largest
    value (the seed's strongest confounding), as {factor: value}."""
    combo = {}
    for k, values in zip(lay.panels, lay.panel_values, strict=True):
        numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        combo[k] = max(values) if numeric else values[-1]
    return combo if not lay.select(frame, combo).empty else {}


# --------------------------------------------------------------------------- seed figures


def data_plot(df: pd.DataFrame, folder: Path, beta: float) -> Path:
    """1. Ad spend against profit by region, pooled fit and within-region fits."""
    fig, ax = plt.subplots(figsize=(7, 5))
    regions = sorted(df.region.unique())
    xd = df.ad_spend - df.groupby("region").ad_spend.transform("mean")
    yd = df.profit - df.groupby("region").profit.transform("mean")
    beta_fe = float((xd * yd).sum() / (xd**2).sum())
    for i, r in enumerate(regions):
        g = df[df.region == r]
        c = REGION_COLOURS[i % len(REGION_COLOURS)]
        ax.scatter(g.ad_spend, g.profit, s=18, color=c, alpha=0.8)
        xs = np.linspace(g.ad_spend.min(), g.ad_spend.max(), 2)
        ax.plot(xs, g.profit.mean() + beta_fe * (xs - g.ad_spend.mean()), color=c, lw=1.2)
    slope, icpt = np.polyfit(df.ad_spend, df.profit, 1)
    xs = np.linspace(df.ad_spend.min(), df.ad_spend.max(), 2)
    ax.plot(xs, icpt + slope * xs, "k--", lw=2, label=f"pooled fit (slope {slope:.2f})")
    ax.plot([], [], color="grey", label=f"within-region fits (slope {beta_fe:.2f}; true {beta})")
    ax.set(
        xlabel="ad spend",
        ylabel="profit",
        title=f"Ad spend vs profit by region ({len(regions)} regions, one replication)",
    )
    ax.legend(loc="best", fontsize=9)
    return _save(fig, folder, "01_data")


def _x_levels(rows: pd.DataFrame, x: str | None) -> list:
    return sorted(rows[x].unique()) if x else [None]


def _interval_panel(ax, rows: pd.DataFrame, x: str | None, n_show: int, title: str) -> None:
    """Each replication's interval (red = misses its truth) at each level of ``x``."""
    levels = _x_levels(rows, x)
    for i, v in enumerate(levels):
        g = rows if x is None else rows[rows[x] == v]
        g = g.sort_values("rep").head(n_show)
        offs = i + np.linspace(-0.35, 0.35, len(g)) if len(g) > 1 else np.array([i])
        covers = (g.lower <= g.truth) & (g.truth <= g.upper)
        for o, (_, row), c in zip(offs, g.iterrows(), covers, strict=True):
            ax.plot([o, o], [row.lower, row.upper], color="C0" if c else "C3", lw=1.2)
            ax.plot(o, row.estimate, "o", ms=2.5, color="k")
        for t in g.truth.unique():
            ax.plot([i - 0.45, i + 0.45], [t, t], ls="--", color="k", lw=1)
    ax.set_xticks(range(len(levels)), ["the condition" if v is None else _fmt(v) for v in levels])
    ax.set(xlabel=x or "", ylabel="beta (dashed: the truth)", title=title)


def _beta_rows(results: pd.DataFrame, method: str, lay: Layout, combo: dict) -> pd.DataFrame:
    rows = results[(results.method == method) & (results.estimand == "beta")]
    rows = lay.select(rows, combo)
    if "term" in rows and rows.term.nunique() > 1:
        rows = rows[rows.term == sorted(rows.term.unique())[0]]
    return rows[np.isfinite(rows.truth)] if "truth" in rows else rows.iloc[:0]


def interval_plot(
    results: pd.DataFrame, folder: Path, level: float, lay: Layout | None = None, n_show: int = 20
):
    """2. Each replication's interval for beta by the grid's x factor, the first
    random-effects method of the study."""
    lay = lay or Layout(None, (), (), ())
    method = first_of_family(results.method.unique(), "random effects")
    if method is None:
        return None
    combo = _showcase(lay, results)
    rows = _beta_rows(results, method, lay, combo)
    if rows.empty:
        return None
    fig, ax = plt.subplots(figsize=(8, 4.5))
    where = f" ({layout_title(combo)})" if combo else ""
    _interval_panel(
        ax,
        rows,
        lay.x,
        n_show,
        f"{method}: {level:.0%} intervals for beta, first {n_show} replications{where}; "
        "red = misses the truth",
    )
    return _save(fig, folder, "02_intervals_random_intercept")


def comparison_plot(
    results: pd.DataFrame, folder: Path, level: float, lay: Layout | None = None, n_show: int = 20
):
    """3. The first random-effects method's intervals against the first Mundlak method's."""
    lay = lay or Layout(None, (), (), ())
    present = results.method.unique()
    pair = [first_of_family(present, "random effects"), first_of_family(present, "Mundlak")]
    if None in pair:
        return None
    combo = _showcase(lay, results)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for ax, method in zip(axes, pair, strict=True):
        _interval_panel(ax, _beta_rows(results, method, lay, combo), lay.x, n_show, method)
    where = f", {layout_title(combo)}" if combo else ""
    fig.suptitle(f"{level:.0%} intervals for beta{where}: random effects (left) vs Mundlak (right)")
    return _save(fig, folder, "03_compare_re_mundlak")


def pair_plot(draws: dict[str, dict[str, np.ndarray]], folder: Path, beta: float):
    """4. Posterior draws of beta against sigma_a, random-intercept vs Mundlak model."""
    fig, axes = plt.subplots(1, len(draws), figsize=(6 * len(draws), 4.5))
    axes = np.atleast_1d(axes)
    for ax, (method, d) in zip(axes, draws.items(), strict=True):
        b, s = np.ravel(d["beta"]), np.ravel(d["sigma_a"])
        ax.scatter(s, b, s=3, alpha=0.25, color=styles.style(method).colour)
        corr = np.corrcoef(b, s)[0, 1]
        ax.axhline(beta, ls="--", color="k", lw=1)
        ax.set(
            xlabel="sigma_a (region SD)",
            ylabel="beta",
            title=f"{method}: corr(beta, sigma_a) = {corr:.2f}",
        )
    fig.suptitle(f"Posterior draws on one dataset (true beta = {beta:g}, dashed)")
    return _save(fig, folder, "04_pair_beta_sigma_a")


# --------------------------------------------------------------------------- measures


def _stat(summary: pd.DataFrame, stat: str, estimand: str | None = "beta") -> pd.DataFrame:
    s = summary[summary.stat == stat]
    return s if estimand is None else s[s.estimand == estimand]


def _x_positions(lay: Layout, g: pd.DataFrame, ticks: list, numeric: bool) -> np.ndarray:
    if lay.x is None:
        return np.zeros(len(g))
    if lay.log_x:
        return np.log10(g[lay.x].to_numpy(float))
    if numeric:
        return g[lay.x].to_numpy(float)
    return np.array([ticks.index(v) for v in g[lay.x]], float)


def _by_factor(
    s: pd.DataFrame,
    folder: Path,
    name: str,
    ylabel: str,
    title: str,
    lay: Layout | None,
    reference=None,
    ylim=None,
) -> Path | None:
    """One panel per combination of the grid's other factors, the x factor on the
    x axis (log scale for n_regions), a line per method (and term, with several)
    in the method's style (:mod:`mlmbias.report.styles`)."""
    lay = lay or Layout(None, (), (), ())
    s = label_terms(s.copy())
    if s.empty:
        return None
    combos = [c for c in lay.combos() if not lay.select(s, c).empty]
    look = styles.styles(s.method.unique())
    ncol = len(combos) if len(combos) <= 3 else (2 if len(combos) == 4 else 3)
    nrow = -(-len(combos) // ncol)
    fig, axes = plt.subplots(
        nrow, ncol, figsize=(6.0 * ncol, 4.8 * nrow), squeeze=False, sharey=True
    )
    fig.subplots_adjust(hspace=0.35)
    numeric = lay.x is not None and pd.api.types.is_numeric_dtype(s[lay.x])
    for ax, combo in zip(axes.ravel(), combos, strict=False):
        sub = lay.select(s, combo)
        methods = ordered(sub.method.unique())
        jitter = np.linspace(-0.03, 0.03, len(methods)) if len(methods) > 1 else [0.0]
        ticks = sorted(sub[lay.x].unique()) if lay.x else [0]
        span = (max(ticks) - min(ticks)) if numeric and not lay.log_x and len(ticks) > 1 else 1
        for j, m in zip(jitter, methods, strict=True):
            g = sub[sub.method == m]
            g = g.sort_values(lay.x) if lay.x else g
            ax.errorbar(
                _x_positions(lay, g, ticks, numeric) + j * span,
                g.est,
                yerr=2 * g.mcse.fillna(0),
                ms=5,
                capsize=2,
                label=m,
                **look[m].kwargs(),
            )
        if reference is not None:
            reference(ax, sub)
        if lay.x is None:
            ax.set_xticks([0], ["the condition"])
        elif lay.log_x:
            ax.set_xticks(np.log10(ticks), [_fmt(t) for t in ticks])
        elif not numeric:
            ax.set_xticks(range(len(ticks)), [str(t) for t in ticks])
        ax.set(xlabel=_axis_name(lay.x), ylabel=ylabel, title=layout_title(combo))
        ax.tick_params(labelleft=True)
        if ylim is not None:
            ax.set_ylim(*ylim)
    for ax in axes.ravel()[len(combos) :]:
        ax.axis("off")
    axes.ravel()[min(len(combos), ncol) - 1].legend(
        fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0), title="method"
    )
    fig.suptitle(title)
    return _save(fig, folder, name)


def _axis_name(factor: str | None) -> str:
    """The x axis label: the factor's name, with the scale it is drawn on."""
    if factor is None:
        return ""
    return f"{factor} (log scale)" if factor == "n_regions" else factor


def truth_note(results: pd.DataFrame, estimand: str = "beta") -> str:
    """ "; true beta of ad_spend = 1.5" from the results' truths (a range when the
    grid varies them; "" without any): the figures' titles end with it."""
    if "truth" not in results:
        return ""
    s = results[(results.estimand == estimand) & np.isfinite(results.truth)]
    s = s.drop_duplicates(["term", "truth"]) if "term" in s else s.drop_duplicates(["truth"])
    parts = []
    for term, g in s.groupby("term", sort=True) if "term" in s else []:
        lo, hi = g.truth.min(), g.truth.max()
        value = f"{lo:g}" if lo == hi else f"{lo:g} to {hi:g}"
        parts.append(f"{estimand} of {term} = {value}" if term else f"{estimand} = {value}")
    return "; true " + ", ".join(parts) if parts else ""


def bias_plot(summary: pd.DataFrame, folder: Path, lay: Layout | None = None, note: str = ""):
    """5. Bias of beta with +-2 MCSE bars against the grid's x factor."""
    return _by_factor(
        _stat(summary, "bias"),
        folder,
        "05_bias",
        "bias of beta (estimate - truth)",
        f"Bias of the within effect, +-2 Monte Carlo SE{note}",
        lay,
        reference=lambda ax, sub: ax.axhline(0, color="k", lw=1),
    )


def _coverage_band(summary: pd.DataFrame, level: float):
    n = _stat(summary, "n_used")

    def band(ax, sub):
        ax.axhline(level, color="k", lw=1)
        m = n[n.condition_index.isin(sub.condition_index)].est
        if len(m):
            half = 2 * np.sqrt(level * (1 - level) / m.min())
            ax.axhspan(
                level - half,
                level + half,
                color="grey",
                alpha=0.2,
                label=f"nominal {level:.0%} +-2 MCSE",
            )

    return band


def coverage_plot(
    summary: pd.DataFrame, folder: Path, level: float, lay: Layout | None = None, note: str = ""
):
    """6. Coverage against the grid's x factor, nominal level and its Monte Carlo band."""
    return _by_factor(
        _stat(summary, "cover"),
        folder,
        "06_coverage",
        "coverage of beta",
        f"Coverage of {level:.0%} intervals for beta{note}",
        lay,
        reference=_coverage_band(summary, level),
    )


def width_plot(summary: pd.DataFrame, folder: Path, lay: Layout | None = None):
    """7. Mean interval width against the grid's x factor."""
    return _by_factor(
        _stat(summary, "width"),
        folder,
        "07_width",
        "mean interval width",
        "Mean width of the intervals for beta, +-2 Monte Carlo SE",
        lay,
    )


def zip_plot(results: pd.DataFrame, folder: Path, level: float, lay: Layout | None = None):
    """8. Zip plot (rsimsum): intervals ranked by the p-value of |estimate - truth| / SE,
    in one condition: the x factor's middle level, the other factors at their largest."""
    lay = lay or Layout(None, (), (), ())
    beta = results[(results.estimand == "beta") & np.isfinite(results.estimate)]
    if "truth" not in beta:
        return None
    beta = beta[np.isfinite(beta.truth)]
    if beta.empty:
        return None
    combo = _showcase(lay, beta)
    if lay.x is not None:
        levels = sorted(beta[lay.x].unique())
        combo = {lay.x: levels[len(levels) // 2], **combo}
    beta = label_terms(lay.select(beta, combo))
    methods = ordered(beta.method.unique())
    if not methods:
        return None
    ncol = min(4, len(methods))
    nrow = int(np.ceil(len(methods) / ncol))
    fig, axes = plt.subplots(
        nrow,
        ncol,
        figsize=(3.6 * ncol, 3.8 * nrow),
        squeeze=False,
        sharey=True,
        layout="constrained",
    )
    for ax, m in zip(axes.ravel(), methods, strict=False):
        g = beta[beta.method == m]
        z = np.abs(g.estimate - g.truth) / g.se
        rank = norm.cdf(z.to_numpy()).argsort().argsort() / max(len(g) - 1, 1) * 100
        covers = ((g.lower <= g.truth) & (g.truth <= g.upper)).to_numpy()
        for lo, hi, y, c in zip(g.lower, g.upper, rank, covers, strict=True):
            ax.plot([lo, hi], [y, y], color="C0" if c else "C3", lw=0.5, alpha=0.8)
        ax.axvline(float(g.truth.iloc[0]), color="k", lw=1)
        ax.axhline(level * 100, color="k", ls=":", lw=1)
        ax.set(title=f"{m} (cover {covers.mean():.3f})", xlabel="interval for beta")
    for ax in axes[:, 0]:
        ax.set_ylabel("fractional centile of |z|")
    for ax in axes.ravel()[len(methods) :]:
        ax.axis("off")
    where = f", {layout_title(combo)}" if combo else ""
    fig.suptitle(f"Zip plot: intervals ranked by |estimate - truth| / SE{where} (red = miss)")
    return _save(fig, folder, "08_zip")


def rejection_plot(summary: pd.DataFrame, folder: Path, alpha: float, lay: Layout | None = None):
    """9. Rejection rate of every test of the study (and the Bayesian red flag's
    rate) against the grid's x factor."""
    rej = pd.concat([_stat(summary, "rejection", None), _stat(summary, "flag_rate", None)])
    if rej.empty:
        return None
    flag = rej.stat == "flag_rate"
    rej = rej.assign(method=rej.method.where(~flag, rej.method + " (flag)"), term="")
    flag_note = (
        "; '(flag)': |posterior corr(beta, sigma_a)| above the threshold" if flag.any() else ""
    )

    def line(ax, sub):
        ax.axhline(alpha, color="k", ls=":", lw=1, label=f"alpha = {alpha:g}")

    return _by_factor(
        rej,
        folder,
        "09_rejection",
        f"rejection rate (alpha = {alpha:g})",
        "Rejection rates of the tests (size where their null holds, power where it does not)"
        + flag_note,
        lay,
        reference=line,
        ylim=(-0.02, 1.02),
    )


def nested_loop_plot(
    summary: pd.DataFrame, folder: Path, level: float, lay: Layout | None = None, note: str = ""
) -> Path | None:
    """11. Nested-loop plot (Rücker & Schwarzer 2014, as rsimsum's ``nlp``): every
    condition on one axis, ordered lexicographically by the panel factors (grid
    order, the first outermost) and then the x factor; bias and coverage of each
    method as a step line; the factors' levels as step lines beneath. Drawn when
    the grid has more than two factors with several levels."""
    lay = lay or Layout(None, (), (), ())
    if lay.x is None or len(lay.panels) < 2:
        return None
    factors = (*lay.panels, lay.x)
    levels = (*lay.panel_values, lay.x_values)
    conditions = [dict(zip(factors, c, strict=True)) for c in itertools.product(*levels)]
    measures = [
        ("bias", "bias of beta", 0.0),
        ("cover", f"coverage of {level:.0%} intervals", level),
    ]
    fig, axes = plt.subplots(
        len(measures), 1, figsize=(max(8.0, 0.35 * len(conditions) + 4), 5.2 * len(measures)),
        sharex=True, squeeze=False,
    )  # fmt: skip
    steps = np.arange(len(conditions) + 1) - 0.5
    drawn = False
    for ax, (stat, ylabel, ref) in zip(axes[:, 0], measures, strict=True):
        s = label_terms(_stat(summary, stat).copy())
        if s.empty:
            ax.axis("off")
            continue
        drawn = True
        look = styles.styles(s.method.unique())
        values, handles = [], []
        for m in ordered(s.method.unique()):
            g = s[s.method == m]
            y = np.array([_value(lay, g, c) for c in conditions])
            values.append(y)
            ax.step(steps, np.append(y, y[-1]), where="post", lw=1.4,
                    color=look[m].colour, linestyle=look[m].linestyle)  # fmt: skip
            ax.plot(np.arange(len(conditions)), y, lw=0, ms=4, color=look[m].colour,
                    marker=look[m].marker)  # fmt: skip
            handles.append(Line2D([], [], label=m, **look[m].kwargs()))
        ax.axhline(ref, color="k", lw=1)
        data = np.concatenate(values)
        data = data[np.isfinite(data)]
        lo, hi = (min(data.min(), ref), max(data.max(), ref)) if len(data) else (ref - 1, ref + 1)
        span = hi - lo if hi > lo else 1.0
        _factor_steps(ax, conditions, factors, levels, steps, lo, span)
        ax.set(ylabel=ylabel)
        ax.legend(
            handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0), title="method"
        )
    if not drawn:
        plt.close(fig)
        return None
    order = ", then ".join(factors)
    axes[-1, 0].set_xlabel(f"condition, ordered by {order}")
    axes[-1, 0].set_xticks(range(len(conditions)), [str(i + 1) for i in range(len(conditions))])
    fig.suptitle(f"Nested-loop plot of bias and coverage over {len(conditions)} conditions{note}")
    return _save(fig, folder, "11_nested_loop")


def _value(lay: Layout, g: pd.DataFrame, condition: dict) -> float:
    rows = lay.select(g, condition)
    return float(rows.est.iloc[0]) if len(rows) else np.nan


def _factor_steps(ax, conditions, factors, levels, steps, lo, span) -> None:
    """The factors' levels as step lines below the data, outermost at the top."""
    height = 0.1 * span
    for k, (factor, values) in enumerate(zip(factors, levels, strict=True)):
        top = lo - span * (0.15 + 0.25 * k)
        index = np.array([list(values).index(c[factor]) for c in conditions], float)
        y = top - height + height * index / max(len(values) - 1, 1)
        ax.step(steps, np.append(y, y[-1]), where="post", color="0.35", lw=1)
        ax.text(
            steps[0],
            top + 0.02 * span,
            f"{factor}: {', '.join(_fmt(v) for v in values)}",
            fontsize=8,
            color="0.2",
            va="bottom",
        )
    ax.set_ylim(bottom=lo - span * (0.1 + 0.25 * len(factors)), top=lo + span * 1.08)


def dag_plot(folder: Path, dgp, grid: dict | None = None) -> Path:
    """10. The DAG of the seed's data-generating process, labelled with ``dgp``'s
    values, or the values of ``grid`` for a knob the study varies."""
    grid = grid or {}

    def value(knob: str) -> str:
        if knob in grid and len(grid[knob]) > 1:
            return "in {" + ", ".join(_fmt(v) for v in grid[knob]) + "}"
        return "= " + _fmt(grid[knob][0] if knob in grid else getattr(dgp, knob))

    fig, ax = plt.subplots(figsize=(7.5, 4))
    ax.set(xlim=(0, 1), ylim=(0, 1))
    ax.axis("off")
    spots = {
        "C": ("competition C_r\n(latent, region)", 0.13, 0.78),
        "A": ("regional average\nad spend", 0.5, 0.78),
        "X": ("monthly\nad spend", 0.5, 0.2),
        "Y": ("monthly\nprofit", 0.87, 0.2),
    }
    boxes = {
        k: ax.text(
            x,
            y,
            t,
            ha="center",
            va="center",
            fontsize=10,
            bbox=dict(boxstyle="round,pad=0.5", fc="#f3f3f3", ec="k"),
        )
        for k, (t, x, y) in spots.items()
    }
    edges = [
        ("C", "A", f"confounding\n{value('confounding')}", (0.315, 0.86)),
        ("A", "X", "", None),
        ("X", "Y", f"beta {value('beta')}\n(the estimand)", (0.685, 0.1)),
        ("C", "Y", f"competition_effect\n{value('competition_effect')}", (0.62, 0.53)),
    ]
    for a, b, label, where in edges:
        ax.annotate(
            "",
            xy=(0.5, 0.5),
            xycoords=boxes[b],
            xytext=(0.5, 0.5),
            textcoords=boxes[a],
            arrowprops=dict(
                arrowstyle="-|>",
                lw=1.5,
                patchA=boxes[a].get_bbox_patch(),
                patchB=boxes[b].get_bbox_patch(),
                shrinkA=3,
                shrinkB=3,
            ),
        )
        if label:
            ax.text(*where, label, ha="center", va="center", fontsize=9, color="C3")
    ax.set_title("Data-generating process: competition confounds ad spend and profit")
    return _save(fig, folder, "10_dag")
