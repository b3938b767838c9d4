"""The report's figures (matplotlib): each saved as PNG and SVG, titled and labelled.

Every function takes tidy frames (results and/or the long summary) and a
folder, returns the PNG path, or None when the study lacks what the figure
needs (the report then says which figure was skipped and why).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy.stats import norm  # noqa: E402

from mlmbias.report.layout import Layout, label_terms  # noqa: E402
from mlmbias.report.layout import title as layout_title  # noqa: E402

RANDOM_INTERCEPT = ("bayes-re", "re-reml", "re-fgls", "re-ml")
MUNDLAK = ("bayes-mundlak", "mundlak-reml", "mundlak-fgls")
TESTS = ("hausman", "hausman-sigmamore", "hausman-robust")
COLORS = plt.rcParams["axes.prop_cycle"].by_key()["color"]


def _save(fig: plt.Figure, folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    png = folder / f"{name}.png"
    fig.savefig(png, dpi=130, bbox_inches="tight")
    fig.savefig(folder / f"{name}.svg", bbox_inches="tight")
    plt.close(fig)
    return png


def _first_present(methods: Sequence[str], present: Sequence[str]) -> str | None:
    return next((m for m in methods if m in set(present)), None)


def _method_color(methods: Sequence[str]) -> dict[str, str]:
    return {m: COLORS[i % len(COLORS)] for i, m in enumerate(sorted(methods))}


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
        c = COLORS[i % len(COLORS)]
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


def _interval_panel(ax, rows: pd.DataFrame, truth: float, n_show: int, title: str) -> None:
    levels = sorted(rows.n_regions.unique())
    for i, r in enumerate(levels):
        g = rows[rows.n_regions == r].sort_values("rep").head(n_show)
        offs = i + np.linspace(-0.35, 0.35, len(g)) if len(g) > 1 else np.array([i])
        covers = (g.lower <= truth) & (truth <= g.upper)
        for o, (_, row), c in zip(offs, g.iterrows(), covers, strict=True):
            ax.plot([o, o], [row.lower, row.upper], color="C0" if c else "C3", lw=1.2)
            ax.plot(o, row.estimate, "o", ms=2.5, color="k")
    ax.axhline(truth, ls="--", color="k", lw=1)
    ax.set_xticks(range(len(levels)), [str(r) for r in levels])
    ax.set(xlabel="number of regions", ylabel="beta", title=title)


def interval_plot(results: pd.DataFrame, folder: Path, level: float, n_show: int = 20):
    """2. Each replication's interval for beta by number of regions, random intercepts."""
    method = _first_present(RANDOM_INTERCEPT, results.method.unique())
    if method is None:
        return None
    rows = _beta_rows(results, method, confounding=results.confounding.max())
    fig, ax = plt.subplots(figsize=(8, 4.5))
    _interval_panel(
        ax,
        rows,
        float(rows.beta.iloc[0]),
        n_show,
        f"{method}: {level:.0%} intervals for beta, first {n_show} replications "
        f"(confounding {rows.confounding.iloc[0]:g}); red = misses the truth",
    )
    return _save(fig, folder, "02_intervals_random_intercept")


def comparison_plot(results: pd.DataFrame, folder: Path, level: float, n_show: int = 20):
    """3. Random-intercept against Mundlak intervals side by side."""
    present = results.method.unique()
    pair = [_first_present(RANDOM_INTERCEPT, present), _first_present(MUNDLAK, present)]
    if None in pair:
        return None
    conf = results.confounding.max()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for ax, method in zip(axes, pair, strict=True):
        rows = _beta_rows(results, method, confounding=conf)
        _interval_panel(ax, rows, float(rows.beta.iloc[0]), n_show, method)
    fig.suptitle(
        f"{level:.0%} intervals for beta, confounding {conf:g}: random intercepts "
        "(left) vs Mundlak (right)"
    )
    return _save(fig, folder, "03_compare_re_mundlak")


def pair_plot(draws: dict[str, dict[str, np.ndarray]], folder: Path, beta: float):
    """4. Posterior draws of beta against sigma_a, random-intercept vs Mundlak model."""
    fig, axes = plt.subplots(1, len(draws), figsize=(6 * len(draws), 4.5))
    axes = np.atleast_1d(axes)
    for ax, (method, d) in zip(axes, draws.items(), strict=True):
        b, s = np.ravel(d["beta"]), np.ravel(d["sigma_a"])
        ax.scatter(s, b, s=3, alpha=0.25)
        corr = np.corrcoef(b, s)[0, 1]
        ax.axhline(beta, ls="--", color="k", lw=1)
        ax.set(
            xlabel="sigma_a (region SD)",
            ylabel="beta",
            title=f"{method}: corr(beta, sigma_a) = {corr:.2f}",
        )
    fig.suptitle("Posterior draws on one dataset (true beta dashed)")
    return _save(fig, folder, "04_pair_beta_sigma_a")


def _beta_rows(results: pd.DataFrame, method: str, confounding: float) -> pd.DataFrame:
    sel = (
        (results.method == method)
        & (results.estimand == "beta")
        & np.isclose(results.confounding, confounding)
    )
    return results[sel]


# --------------------------------------------------------------------------- measures


def _stat(summary: pd.DataFrame, stat: str, estimand: str = "beta") -> pd.DataFrame:
    return summary[(summary.stat == stat) & (summary.estimand == estimand)]


def _by_factor(
    summary: pd.DataFrame,
    stat: str,
    folder: Path,
    name: str,
    ylabel: str,
    title: str,
    lay: Layout | None,
    reference=None,
) -> Path | None:
    """One panel per combination of the grid's other factors, the x factor on the
    x axis (log scale for n_regions), a line per method (and term, with several)."""
    lay = lay or Layout(None, (), (), ())
    s = label_terms(_stat(summary, stat).copy())
    if s.empty:
        return None
    combos = [c for c in lay.combos() if not lay.select(s, c).empty]
    colors = _method_color(s.method.unique())
    fig, axes = plt.subplots(1, len(combos), figsize=(6.5 * len(combos), 4.8), squeeze=False)
    numeric = lay.x is not None and pd.api.types.is_numeric_dtype(s[lay.x])
    for ax, combo in zip(axes[0], combos, strict=True):
        sub = lay.select(s, combo)
        methods = sorted(sub.method.unique())
        jitter = np.linspace(-0.06, 0.06, len(methods)) if len(methods) > 1 else [0.0]
        ticks = sorted(sub[lay.x].unique()) if lay.x else [0]
        for j, m in zip(jitter, methods, strict=True):
            g = sub[sub.method == m]
            if lay.x is None:
                x = np.zeros(len(g))
            else:
                g = g.sort_values(lay.x)
                if lay.log_x:
                    x = np.log10(g[lay.x].to_numpy(float))
                elif numeric:
                    x = g[lay.x].to_numpy(float)
                else:
                    x = np.array([ticks.index(v) for v in g[lay.x]], float)
            span = (max(ticks) - min(ticks)) if numeric and not lay.log_x and len(ticks) > 1 else 1
            ax.errorbar(
                x + j * span,
                g.est,
                yerr=2 * g.mcse.fillna(0),
                marker="o",
                ms=4,
                capsize=2,
                color=colors[m],
                label=m,
            )
        if reference is not None:
            reference(ax, sub)
        if lay.x is None:
            ax.set_xticks([0], ["the condition"])
        elif lay.log_x:
            ax.set_xticks(np.log10(ticks), [str(t) for t in ticks])
        elif not numeric:
            ax.set_xticks(range(len(ticks)), [str(t) for t in ticks])
        xlabel = "number of regions" if lay.log_x else (lay.x or "")
        ax.set(xlabel=xlabel, ylabel=ylabel, title=layout_title(combo))
    axes[0][-1].legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle(title)
    return _save(fig, folder, name)


def bias_plot(summary: pd.DataFrame, folder: Path, lay: Layout | None = None):
    """5. Bias of beta with +-2 MCSE bars against the grid's x factor."""
    return _by_factor(
        summary,
        "bias",
        folder,
        "05_bias",
        "bias of beta (estimate - truth)",
        "Bias of the within effect, +-2 Monte Carlo SE",
        lay,
        reference=lambda ax, sub: ax.axhline(0, color="k", lw=1),
    )


def coverage_plot(summary: pd.DataFrame, folder: Path, level: float, lay: Layout | None = None):
    """6. Coverage against the grid's x factor, nominal level and its Monte Carlo band."""
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

    return _by_factor(
        summary,
        "cover",
        folder,
        "06_coverage",
        "coverage of beta",
        f"Coverage of {level:.0%} intervals for beta",
        lay,
        reference=band,
    )


def width_plot(summary: pd.DataFrame, folder: Path, lay: Layout | None = None):
    """7. Mean interval width against the grid's x factor."""
    return _by_factor(
        summary,
        "width",
        folder,
        "07_width",
        "mean interval width",
        "Mean width of the intervals for beta, +-2 Monte Carlo SE",
        lay,
    )


def zip_plot(results: pd.DataFrame, folder: Path, level: float, n_regions=None, confounding=None):
    """8. Zip plot (rsimsum): intervals ranked by the p-value of |estimate - truth| / SE."""
    beta = results[(results.estimand == "beta") & np.isfinite(results.estimate)]
    if beta.empty:
        return None
    confounding = beta.confounding.max() if confounding is None else confounding
    levels = sorted(beta.n_regions.unique())
    n_regions = levels[len(levels) // 2] if n_regions is None else n_regions
    beta = beta[np.isclose(beta.confounding, confounding) & (beta.n_regions == n_regions)]
    methods = sorted(beta.method.unique())
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
        truth = float(g.beta.iloc[0])
        z = np.abs(g.estimate - truth) / g.se
        rank = norm.cdf(z.to_numpy()).argsort().argsort() / max(len(g) - 1, 1) * 100
        covers = ((g.lower <= truth) & (truth <= g.upper)).to_numpy()
        for lo, hi, y, c in zip(g.lower, g.upper, rank, covers, strict=True):
            ax.plot([lo, hi], [y, y], color="C0" if c else "C3", lw=0.5, alpha=0.8)
        ax.axvline(truth, color="k", lw=1)
        ax.axhline(level * 100, color="k", ls=":", lw=1)
        ax.set(title=f"{m} (cover {covers.mean():.3f})", xlabel="interval for beta")
    for ax in axes[:, 0]:
        ax.set_ylabel("fractional centile of |z|")
    for ax in axes.ravel()[len(methods) :]:
        ax.axis("off")
    fig.suptitle(
        f"Zip plot: intervals ranked by |estimate - truth| / SE, R = {n_regions}, "
        f"confounding {confounding:g} (red = miss)"
    )
    return _save(fig, folder, "08_zip")


def rejection_plot(summary: pd.DataFrame, folder: Path, alpha: float):
    """9. Rejection rate against confounding: Hausman tests and the correlation flag."""
    rej = summary[
        ((summary.stat == "rejection") & summary.method.isin(TESTS)) | (summary.stat == "flag_rate")
    ]
    if rej.empty:
        return None
    levels = sorted(rej.n_regions.unique())
    fig, axes = plt.subplots(
        1, len(levels), figsize=(4.5 * len(levels), 4), squeeze=False, sharey=True
    )
    for ax, r in zip(axes[0], levels, strict=True):
        sub = rej[rej.n_regions == r]
        for key, g in sub.groupby(["method", "stat"]):
            g = g.sort_values("confounding")
            label = key[0] if key[1] == "rejection" else f"{key[0]} |corr(beta, sigma_a)| flag"
            ax.errorbar(
                g.confounding, g.est, yerr=2 * g.mcse, marker="o", ms=3, capsize=2, label=label
            )
        ax.axhline(alpha, color="k", ls=":", lw=1)
        ax.set(xlabel="confounding slope", title=f"R = {r}", ylim=(-0.02, 1.02))
    axes[0][0].set_ylabel(f"rejection rate (alpha = {alpha:g})")
    axes[0][-1].legend(fontsize=8, loc="lower right")
    fig.suptitle("Detecting the violated random-effects assumption: size at 0, power above")
    return _save(fig, folder, "09_rejection")


def dag_plot(folder: Path, dgp) -> Path:
    """10. The DAG of the seed's data-generating process, labelled with ``dgp``'s values."""
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
        ("C", "A", f"confounding\nslope {dgp.confounding:g}", (0.315, 0.86)),
        ("A", "X", "", None),
        ("X", "Y", f"beta = {dgp.beta:g}\n(the estimand)", (0.685, 0.1)),
        ("C", "Y", f"effect {dgp.competition_effect:g}", (0.62, 0.53)),
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
