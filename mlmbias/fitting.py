"""Fit registered methods to one observed panel (a user's own data)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np
import pandas as pd

from mlmbias.errors import ConfigError
from mlmbias.groupstats import group_stats_from_arrays
from mlmbias.registry import Batch, get_method, method_names
from mlmbias.seeding import method_keys

# Columns of the comparison table, in order; diagnostics follow where present.
RECORD_KEYS = ("method", "estimand", "estimate", "se", "lower", "upper", "p_value")


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


def fit(
    df: pd.DataFrame,
    group: str,
    x: str,
    y: str,
    methods: Sequence[str] | None = None,
    level: float = 0.94,
    seed: int = 0,
    options: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Fit ``methods`` (default: every frequentist one) to one panel.

    Returns one row per (method, estimand) with the columns of ``RECORD_KEYS``
    followed by each method's diagnostics (flag, R-hat, ESS, ...).
    """
    if not 0 < level < 1:
        raise ConfigError(f"'level' must lie in the open interval (0, 1), got {level!r}")
    methods = list(methods) if methods else method_names("frequentist")
    specs = [get_method(m) for m in methods]
    if not isinstance(df, pd.DataFrame) or len(df) == 0:
        raise ConfigError("the panel has no rows")
    g = _column(df, group, numeric=False)
    xs = _column(df, x, numeric=True).to_numpy()
    ys = _column(df, y, numeric=True).to_numpy()
    codes, uniques = pd.factorize(g, sort=True)
    if len(uniques) < 2:
        raise ConfigError(f"group column '{group}' has {len(uniques)} group(s); need at least 2")
    stats = group_stats_from_arrays(codes, xs, ys, len(uniques))
    rep_key = jax.random.PRNGKey(seed)[None]
    rows: list[dict[str, Any]] = []
    for spec in specs:
        batch = Batch(keys=method_keys(rep_key, spec.name), stats=stats, panel=None)
        out = spec.load()(batch, level, dict(options or {}))
        for estimand, cols in out.items():
            row: dict[str, Any] = {"method": spec.name, "estimand": estimand}
            for key, value in cols.items():
                row[key] = np.asarray(value)[0].item()
            rows.append(row)
    frame = pd.DataFrame(rows)
    extra = [c for c in frame.columns if c not in RECORD_KEYS]
    return frame.reindex(columns=list(RECORD_KEYS) + extra)
