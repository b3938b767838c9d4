"""``mlmbias report``: summary.csv, the figures, a readable report.md of a study and
report.html, the same sections as one self-contained page (:mod:`mlmbias.report.html`)."""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mlmbias import store
from mlmbias.errors import ConfigError
from mlmbias.registry import methods as registered
from mlmbias.report import figures as fig
from mlmbias.report.html import to_html
from mlmbias.report.layout import Layout, label_terms, layout, title
from mlmbias.report.measures import performance
from mlmbias.report.styles import ordered
from mlmbias.scenarios import DEFAULT, Scenario, get_scenario
from mlmbias.simulate import simulate_condition, to_frame


@dataclass
class ReportPaths:
    summary: Path
    report: Path
    figures: list[Path]
    html: Path | None = None  # report.html: report.md's sections, self-contained


def _cell(est: float, mcse: float, digits: int = 3) -> str:
    if not np.isfinite(est):
        return "–"
    if not np.isfinite(mcse):
        return f"{est:.{digits}f}"
    return f"{est:.{digits}f} ({mcse:.{digits}f})"


def _markdown(frame: pd.DataFrame) -> str:
    cols = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(lines)


def measure_table(
    summary: pd.DataFrame, stat: str, estimand: str = "beta", lay: Layout | None = None
) -> str:
    """Methods by the grid's x factor (:mod:`mlmbias.report.layout`), one block per
    combination of the other factors: 'est (mcse)'."""
    lay = lay or Layout(None, (), (), ())
    s = label_terms(summary[(summary.stat == stat) & (summary.estimand == estimand)].copy())
    if s.empty:
        return "_not available for these methods_"
    s["cell"] = [_cell(e, m) for e, m in zip(s.est, s.mcse, strict=True)]
    blocks = []
    for combo in lay.combos():
        sub = lay.select(s, combo)
        if sub.empty:
            continue
        if lay.x is None:
            table = sub.groupby("method", sort=False)["cell"].first().to_frame(stat)
            table = table.reindex(ordered(table.index))
        else:
            table = sub.pivot_table(
                index="method", columns=lay.x, values="cell", aggfunc="first", sort=False
            )
            order = [v for v in sorted(sub[lay.x].unique()) if v in table.columns]
            table = table.reindex(index=ordered(table.index), columns=order).fillna("–")
        head = f"**{title(combo)}**\n\n" if combo else ""
        blocks.append(head + _markdown(table.reset_index()))
    return "\n\n".join(blocks)


def sampler_section(summary: pd.DataFrame, lay: Layout | None = None) -> str:
    """report.md's section on ``[bayes] sampler_error = true``: the mean and RMS of
    the sampler error per estimand, method and condition; "" when no row has one."""
    stats = ["sampler_error", "sampler_rmse"]
    s = summary[summary.stat.isin(stats) & np.isfinite(summary.est)]
    if s.empty:
        return ""
    parts = [
        "## Sampler error of the MCMC engines",
        "Each Bayesian replication's posterior mean minus the exact one (integrated on "
        "the grid engine's grid), in posterior SDs: its mean (systematic error) and "
        "RMS (total error) over replications. Monte Carlo noise alone gives an RMS "
        "of about 1/sqrt(ESS).",
    ]
    for estimand in dict.fromkeys(s.estimand):
        for stat, what in zip(stats, ("Mean", "RMS"), strict=True):
            parts.append(f"{what} sampler error of {estimand}:")
            parts.append(measure_table(summary, stat, estimand, lay))
    return "\n\n".join(parts) + "\n\n"


def counts_table(summary: pd.DataFrame) -> str:
    c = summary[summary.stat.isin(["n_total", "n_used", "n_failed", "n_not_converged"])]
    keys = ["method", "estimand"]
    if "term" in c and c.groupby(keys)["term"].nunique().max() > 1:
        keys.append("term")  # several covariates: a row each
    t = c.pivot_table(index=keys, columns="stat", values="est", aggfunc="sum")
    t = t.reindex(columns=["n_total", "n_used", "n_failed", "n_not_converged"]).astype(int)
    return _markdown(t.reset_index())


def base_scenario(study: dict) -> Scenario:
    """The study's scenario with its ``[dgp]`` fields (the grid's first condition
    differs only in the grid's factors)."""
    dgp = dict(study.get("dgp", {}))
    cls = get_scenario(dgp.pop("scenario", DEFAULT))
    return cls().replace(**dgp)


_SEED_AIMS = """Measure how well each estimator recovers the within-region effect of ad
spend on profit when a regional confounder (competition) drives both the
region's average ad spend and its profit, and how well its intervals cover."""


def _design(study: dict, conditions: Sequence[int], methods: Sequence[str], n_reps) -> str:
    specs = registered()
    grid = study.get("grid", {})
    grid_text = "; ".join(f"{k} in {v}" for k, v in grid.items()) or "a single condition"
    varied = ", ".join(f"`{k}`" for k in grid)
    varied = f"; the conditions below replace {varied}" if varied else ""
    scenario = base_scenario(study)
    method_lines = "\n".join(
        f"- `{m}` ({specs[m].kind}): {specs[m].description}" if m in specs else f"- `{m}`"
        for m in methods
    )
    truths = "; ".join(
        f"{estimand} of {term} = {value:g}" for (estimand, term), value in scenario.truths().items()
    )
    if scenario.name == "seed":
        aims = _SEED_AIMS
        extra = " Confounding 0 is the control in which the random-intercept assumption holds."
        untrue = (
            "the Mundlak models' contextual effect is reported by its truth-free measures "
            "(mean, empirical and model SE, width)"
        )
    else:
        aims = (
            "Measure how well each estimator recovers the scenario's effects (bias, "
            "coverage, interval width), and how its tests behave."
        )
        extra = ""
        untrue = "estimates without a true value are reported by their truth-free measures"
    return f"""## Design (ADEMP)

**Aims.** {aims}

**Data-generating mechanism.** Scenario `{scenario.name}`, per condition (the study's
`[dgp]` values{varied}): {scenario.equations()}
Conditions: {grid_text} ({len(conditions)} in all).{extra} Replications per condition:
{n_reps}. Seed {study.get("seed")}.

**Estimands.** {truths or "none with a known true value"}; {untrue}; the
tests by their rejection rate.

**Methods.**
{method_lines}

**Performance measures.** Bias, relative bias, empirical SE, model SE and its
relative error, MSE and RMSE, coverage, bias-eliminated coverage, mean interval
width, rejection rate of the tests and of the seed's red flag (|posterior
corr(beta, sigma_a)| above a threshold), each with its Monte Carlo SE in
brackets (Morris, White & Crowther 2019). Interval level {study.get("level")}.
"""


def seed_dataset(study: dict) -> tuple[pd.DataFrame, Scenario]:
    """The replication the seed's data plot shows: R = 10 (or the grid's smallest),
    the grid's strongest confounding."""
    base = base_scenario(study)
    grid = study.get("grid", {})
    changes = {k: v[0] for k, v in grid.items()}
    if "n_regions" in grid:
        changes["n_regions"] = 10 if 10 in grid["n_regions"] else min(grid["n_regions"])
    if "confounding" in grid:
        changes["confounding"] = max(grid["confounding"])
    dgp = base.replace(**changes)
    return to_frame(simulate_condition(dgp, study.get("seed", 0), [0])), dgp


def incomplete_block(check: dict | None, limit: int = 10) -> str:
    """The warning that opens report.md when the study is incomplete, else ""."""
    from mlmbias.runner import Completeness

    if check is None:
        return ""
    c = Completeness.from_dict(check)
    if c.complete:
        return ""
    if c.planned is None:
        return f"> **Completeness not checked**: {c.reason}.\n\n"
    lines = []
    if c.absent:
        named = [f"`{n}`" for n in c.named()]
        more = f" and {len(named) - limit} more" if len(named) > limit else ""
        lines.append(
            f"> **Incomplete study: {len(c.absent)} of {c.planned} batches missing**: "
            f"{', '.join(named[:limit])}{more}."
        )
    if c.flagged:
        lines.append("> **Incomplete study**: the merge that made this folder lacked shards.")
    lines.append(
        "> The tables and figures below cover only the batches present. `mlmbias run` "
        "with the same config and folder redoes the missing ones; failed batches are "
        "listed at the end."
    )
    return "\n>\n".join(lines) + "\n\n"


def check_outputs(folder: Path, figdir: Path) -> None:
    """Raise a ConfigError unless summary.csv, report.md and report.html in ``folder`` and the
    figures in ``figdir`` can all be written; called before anything is written."""

    def denied(path: Path, what: str) -> ConfigError:
        return ConfigError(f"cannot write {what}: {path} is not writable (permission denied)")

    if not folder.is_dir():
        raise ConfigError(f"the study folder {folder} does not exist or is not a folder")
    for name in ("summary.csv", "report.md", "report.html"):
        path = folder / name
        if path.is_dir():
            raise ConfigError(f"cannot write {path}: it is a folder; move it away")
        if path.exists() and not os.access(path, os.W_OK):
            raise denied(path, name)
        if not path.exists() and not os.access(folder, os.W_OK | os.X_OK):
            raise denied(folder, f"{name} into the study folder")
    if figdir.exists() and not figdir.is_dir():
        raise ConfigError(
            f"the figures folder {figdir} is a file; give a folder (created if missing)"
        )
    ancestor = figdir
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ConfigError(f"cannot create the figures folder {figdir}: {ancestor} is a file")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise denied(ancestor, f"the figures folder {figdir}")
    if ancestor == figdir:
        for path in sorted(figdir.glob("*.png")) + sorted(figdir.glob("*.svg")):
            if path.is_dir() or not os.access(path, os.W_OK):
                raise denied(path, "the figures")


def _io_errors_as_config_errors(func):
    """An OSError while reading or writing becomes a one-line ConfigError."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except OSError as exc:
            where = f" ({exc.filename})" if exc.filename else ""
            raise ConfigError(f"report not completed: {exc.strerror or exc}{where}") from None

    return wrapper


@_io_errors_as_config_errors
def write_report(
    folder: str | Path,
    figures: str | Path | None = None,
    alpha: float = 0.05,
    corr_threshold: float = 0.5,
    converged_only: bool = False,
    pair_draws=None,
) -> ReportPaths:
    """Write summary.csv and report.md into the study folder and figures into
    ``figures`` (default: the folder ``figures`` inside the study folder).

    Every output location is checked to be writable before anything is written.
    """
    folder = Path(folder)
    manifest = store.read_manifest(folder)
    if manifest is None:
        raise ConfigError(f"{folder} holds no study (no {store.MANIFEST})")
    if not 0 < alpha < 1:
        raise ConfigError(f"'alpha' must lie in the open interval (0, 1), got {alpha}")
    if not 0 <= corr_threshold <= 1:
        raise ConfigError(f"'corr_threshold' must lie in [0, 1], got {corr_threshold}")
    results = store.load_results(folder)  # names what is missing on stderr
    if results.empty:
        raise ConfigError(f"{folder} holds no results yet; run the study first")
    warning = incomplete_block(results.attrs.get("completeness"))
    study = manifest["study"]
    level = float(study["level"])
    summary = performance(results, alpha, corr_threshold, converged_only)
    figdir = folder / "figures" if figures is None else Path(figures)
    check_outputs(folder, figdir)
    summary_path = folder / "summary.csv"
    summary.to_csv(summary_path, index=False)

    made: dict[str, Path | None] = {}
    lay = layout(study)
    note = fig.truth_note(results)
    seed = base_scenario(study).name == "seed"
    if seed:  # the seed's own figures
        df, dgp = seed_dataset(study)
        made["data"] = fig.data_plot(df, figdir, dgp.beta)
        made["pair"] = fig.pair_plot(pair_draws, figdir, dgp.beta) if pair_draws else None
        made["dag"] = fig.dag_plot(figdir, dgp, study.get("grid"))
    made["intervals"] = fig.interval_plot(results, figdir, level, lay)
    made["comparison"] = fig.comparison_plot(results, figdir, level, lay)
    made["zip"] = fig.zip_plot(results, figdir, level, lay)
    made["rejection"] = fig.rejection_plot(summary, figdir, alpha, lay)
    made["bias"] = fig.bias_plot(summary, figdir, lay, note)
    made["coverage"] = fig.coverage_plot(summary, figdir, level, lay, note)
    made["width"] = fig.width_plot(summary, figdir, lay)
    if len(lay.panels) >= 2:
        made["nested"] = fig.nested_loop_plot(summary, figdir, level, lay, note)

    methods = ordered(dict.fromkeys(results.method))
    reps = results.groupby("kind").rep.nunique().to_dict() if "kind" in results else {}
    n_reps = ", ".join(f"{v} ({k})" for k, v in reps.items()) or str(study["replications"])
    used = (
        "converged replications only"
        if converged_only
        else ("every replication that produced a finite estimate (converged or not)")
    )

    def img(key: str, caption: str) -> str:
        if key == "nested" and key not in made:
            return ""
        if key not in made:
            return f"_{caption}: drawn for the seed scenario only._"
        path = made.get(key)
        if path is None:
            return f"_{caption}: not drawn (the study has none of the methods it needs)._"
        rel = os.path.relpath(path, folder)
        return f"![{caption}]({rel})\n\n*{caption}*"

    x_name = lay.x or "the condition"
    nested_caption = (
        "Nested-loop plot: every condition, ordered by "
        + ", then ".join((*lay.panels, lay.x or ""))
        + "; the factors' levels as steps beneath"
    )
    failures = store.read_errors(folder)
    failure_text = (
        "\n".join(
            f"- condition {f['condition_index']}, `{f['method']}`, replications "
            f"{f['start']}-{f['stop'] - 1}: {f['message']}"
            for f in failures
        )
        or "None."
    )
    text = f"""# Report: {study.get("name", "study")}

{warning}Produced by `mlmbias report` from `{folder}` (mlmbias {manifest.get("mlmbias")},
JAX {manifest.get("jax")}, NumPyro {manifest.get("numpyro")}, backend
{manifest.get("backend")}, devices {", ".join(manifest.get("devices", []))}).
Measures use {used}. Numbers in brackets are Monte Carlo standard errors.
The long table of every measure is `summary.csv`.

{img("dag", "The data-generating process")}

{_design(study, sorted(results.condition_index.unique()), methods, n_reps)}
## Bias of beta

{measure_table(summary, "bias", lay=lay)}

{img("bias", "Bias with +-2 MCSE bars")}

## Coverage of the {level:.0%} intervals for beta

{measure_table(summary, "cover", lay=lay)}

{img("coverage", "Coverage with the nominal level and its Monte Carlo band")}

## Mean interval width for beta

{measure_table(summary, "width", lay=lay)}

{img("width", "Mean interval width")}

{img("nested", nested_caption)}

## Empirical SE and model SE of beta

Empirical SE:

{measure_table(summary, "empse", lay=lay)}

Relative error of the model SE (%):

{measure_table(summary, "relerror", lay=lay)}

## Tests: rejection rates at alpha = {alpha:g}

Tests (size where their null holds, power where it does not):

{measure_table(summary, "rejection", estimand="test", lay=lay)}

The seed's red flag, |posterior corr(beta, sigma_a)| > {corr_threshold:g}:

{measure_table(summary, "flag_rate", lay=lay)}

{img("rejection", f"Rejection rates against {x_name}")}

{sampler_section(summary, lay)}## Intervals of single replications

{img("intervals", f"Random-effects intervals by {x_name}")}

{img("comparison", "Random-effects against Mundlak intervals")}

{img("zip", "Zip plot of the intervals")}

## The seed's figures

{img("data", "Ad spend against profit by region, pooled and within-region fits")}

{img("pair", "Posterior draws of beta against sigma_a")}

## Convergence and failures

Replications per method and estimand, summed over conditions:

{counts_table(summary)}

Failed batches: {failure_text}
"""
    report_path = folder / "report.md"
    report_path.write_text(text)
    html_path = folder / "report.html"
    html_path.write_text(to_html(text, folder, f"Report: {study.get('name', 'study')}"))
    figures_made = [p for p in made.values() if p is not None]
    return ReportPaths(summary_path, report_path, figures_made, html_path)
