"""Fit registered methods to one observed panel (a user's own data)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np
import pandas as pd

from mlmbias import flags
from mlmbias.checks import check_level
from mlmbias.errors import ConfigError
from mlmbias.groupstats import group_stats_from_arrays
from mlmbias.registry import Batch, MethodSpec, get_method, method_names, output_items, term_names
from mlmbias.seeding import check_seed, method_keys

# Columns of the comparison table, in order; diagnostics follow where present.
RECORD_KEYS = ("method", "estimand", "term", "estimate", "se", "lower", "upper", "p_value")


def _column(df: pd.DataFrame, name: str, numeric: bool) -> pd.Series:
    if name not in df.columns:
        raise ConfigError(f"column '{name}' not found; columns are: {', '.join(map(str, df))}")
    col = df[name]
    if col.isna().any():
        raise ConfigError(f"column '{name}' has missing values (row {int(col.isna().idxmax())})")
    if numeric:
        converted = pd.to_numeric(col, errors="coerce")
        if converted.isna().any():
            bad = col[converted.isna()].iloc[0]
            raise ConfigError(f"column '{name}' has a non-numeric value {bad!r}")
        if not np.isfinite(converted.to_numpy(float)).all():
            raise ConfigError(f"column '{name}' has non-finite values")
        return converted.astype(float)
    return col


@dataclass
class PanelFit:
    """The comparison table of :func:`fit` and what a reader needs to interpret it.

    ``notes`` has one line per flag that occurs in the table (``name: why``) and
    one for degrees of freedom that are not positive (shown as missing in ``df``).
    """

    table: pd.DataFrame
    n_obs: int
    n_groups: int
    notes: list[str]


def _check_methods(methods: Sequence[str] | None) -> list[str]:
    if methods is None:
        return method_names("frequentist")
    if isinstance(methods, str) or not isinstance(methods, Iterable):
        raise ConfigError(f"'methods' must be a list of method names, got {methods!r}")
    methods = list(methods)
    if not methods:
        raise ConfigError(f"no methods: name at least one of {', '.join(method_names())}")
    for i, m in enumerate(methods):
        if not isinstance(m, str):
            raise ConfigError(f"'methods' must be a list of method names, got {m!r} in it")
        if m in methods[:i]:
            raise ConfigError(f"'methods' names '{m}' twice")
    return methods


def options_for(spec: MethodSpec, options: Mapping[str, Any] | None) -> dict[str, Any]:
    """The options ``spec`` sees: plain keys are the Bayesian methods' settings
    (``draws``, ``chains``, ...), ``METHOD.KEY`` keys a method's own
    (``hausman-wild.draws``), which win."""
    shared, own = {}, {}
    for key, value in (options or {}).items():
        method, dot, name = key.rpartition(".")
        if not dot:
            shared[key] = value
        elif method == spec.name:
            own[name] = value
    return {**(shared if spec.kind == "bayes" else {}), **own}


def fit(
    df: pd.DataFrame,
    group: str,
    x: str | Sequence[str],
    y: str,
    methods: Sequence[str] | None = None,
    level: float = 0.94,
    seed: int = 0,
    options: Mapping[str, Any] | None = None,
    z: str | Sequence[str] | None = None,
) -> pd.DataFrame:
    """Fit ``methods`` (default: every frequentist one) to one panel.

    ``x`` names the within-varying covariate(s), one column or a list; ``z``
    the group-level covariates (each constant within a group), or None.
    Returns one row per (method, estimand, term) with the columns of
    ``RECORD_KEYS`` (``term``: the column an estimate belongs to, "" for a test)
    followed by each method's diagnostics (flag, R-hat, ESS, ...) and
    ``flag_names``, the names of the bits set in ``flag`` (comma-separated, ""
    when none). A ``df`` that is not positive is NaN; :func:`fit_panel` also
    says why.
    """
    return fit_panel(df, group, x, y, methods, level, seed, options, z).table


def _names(value: str | Sequence[str] | None, what: str, required: bool) -> list[str]:
    if value is None:
        names: list[str] = []
    elif isinstance(value, str):
        names = [value]
    elif isinstance(value, Iterable):
        names = list(value)
    else:
        raise ConfigError(f"'{what}' must be a column name or a list of them, got {value!r}")
    for name in names:
        if not isinstance(name, str):
            raise ConfigError(f"'{what}' must be a column name or a list of them, got {name!r}")
    if required and not names:
        raise ConfigError(f"'{what}' names no column; give at least one")
    return names


def _group_constants(df: pd.DataFrame, names: list[str], codes: np.ndarray, groups) -> np.ndarray:
    """The z columns as a (G, q) array, one row per group code; a ConfigError naming
    a column that is not constant within a group."""
    n_groups = len(groups)
    out = np.empty((n_groups, len(names)))
    for k, name in enumerate(names):
        values = _column(df, name, numeric=True).to_numpy()
        first = np.full(n_groups, np.nan)
        first[codes[::-1]] = values[::-1]  # the first value of each group
        differs = values != first[codes]
        if differs.any():
            i = int(np.argmax(differs))
            raise ConfigError(
                f"z column '{name}' is not constant within groups: group {groups[codes[i]]!r} "
                f"has {first[codes[i]]:g} and {values[i]:g}; a level-2 covariate takes one "
                "value per group"
            )
        out[:, k] = first
    return out


def fit_panel(
    df: pd.DataFrame,
    group: str,
    x: str | Sequence[str],
    y: str,
    methods: Sequence[str] | None = None,
    level: float = 0.94,
    seed: int = 0,
    options: Mapping[str, Any] | None = None,
    z: str | Sequence[str] | None = None,
) -> PanelFit:
    """:func:`fit`'s table with the panel's size and a plain-words note per flag."""
    check_level(level)
    try:
        seed = check_seed(seed)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    methods = _check_methods(methods)
    specs = [get_method(m) for m in methods]
    for key in options or {}:
        method, dot, _ = key.rpartition(".")
        if dot and method not in methods:
            raise ConfigError(
                f"option '{key}' is for the method '{method}', which is not fitted; "
                f"methods: {', '.join(methods)}"
            )
    for spec in specs:
        check = getattr(spec.load(), "check_options", None)
        if check is not None:
            check(options_for(spec, options))
    x_names = _names(x, "x", required=True)
    z_names = _names(z, "z", required=False)
    every = [group, y, *x_names, *z_names]
    for i, name in enumerate(every):
        if name in every[:i]:
            raise ConfigError(f"column '{name}' is named twice (group, y, x and z must differ)")
    if not isinstance(df, pd.DataFrame) or len(df) == 0:
        raise ConfigError("the panel has no rows")
    g = _column(df, group, numeric=False)
    xs = np.column_stack([_column(df, name, numeric=True).to_numpy() for name in x_names])
    ys = _column(df, y, numeric=True).to_numpy()
    codes, uniques = pd.factorize(g, sort=True)
    if len(uniques) < 2:
        raise ConfigError(f"group column '{group}' has {len(uniques)} group(s); need at least 2")
    zs = _group_constants(df, z_names, codes, uniques) if z_names else None
    stats = group_stats_from_arrays(codes, xs, ys, len(uniques), zs)
    names = term_names(x_names, z_names)
    rep_key = jax.random.PRNGKey(seed)[None]
    rows: list[dict[str, Any]] = []
    for spec in specs:
        batch = Batch(keys=method_keys(rep_key, spec.name), stats=stats)
        out = spec.load()(batch, level, options_for(spec, options))
        for (estimand, term), cols in output_items(spec.name, out):
            row: dict[str, Any] = {"method": spec.name, "estimand": estimand, "term": names[term]}
            for key, value in cols.items():
                row[key] = np.asarray(value)[0].item()
            rows.append(row)
    frame = pd.DataFrame(rows)
    extra = [c for c in frame.columns if c not in RECORD_KEYS]
    frame = frame.reindex(columns=list(RECORD_KEYS) + extra)
    n_obs, n_groups, p = len(xs), len(uniques), len(x_names)
    notes: list[str] = []
    if "flag" in frame:
        frame.insert(
            frame.columns.get_loc("flag") + 1,
            "flag_names",
            [",".join(flags.names(f)) for f in frame["flag"]],
        )
        seen = 0
        for f in frame["flag"]:
            seen |= max(int(f), 0)
        notes += flags.explain(seen)
    if "df" in frame:
        dof = pd.to_numeric(frame["df"], errors="coerce")
        bad = dof <= 0
        if bad.any():
            which = " and ".join(
                f"{m} ({v:g})"
                for m, v in dict(zip(frame.method[bad], dof[bad], strict=True)).items()
            )
            within = n_obs - n_groups - p
            formula = f", so fixed effects have N - G - {p} = {within} <= 0" if within <= 0 else ""
            notes.append(
                f"df: the residual degrees of freedom are not positive for {which}: "
                f"N = {n_obs} observations in G = {n_groups} groups{formula}; df is shown "
                "as missing and no t interval or test exists"
            )
            frame["df"] = dof.where(~bad)
    return PanelFit(frame, n_obs, n_groups, notes)
