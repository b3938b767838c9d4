"""How a study's grid is laid out in tables and figures.

The factor on the x axis (and in table columns) is the grid factor with most
levels (``n_regions`` on a tie, else the first in file order); every
combination of the other factors with more than one level is a panel of a
figure and a block of a table, in the grid's file order.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Layout:
    x: str | None  # the factor on the x axis; None for a single condition
    x_values: tuple[Any, ...]
    panels: tuple[str, ...]  # factors whose combinations are panels / blocks
    panel_values: tuple[tuple[Any, ...], ...]

    @property
    def log_x(self) -> bool:
        return self.x == "n_regions"

    def combos(self) -> Iterator[dict[str, Any]]:
        """Each panel as {factor: value}, in grid order (one empty panel without any)."""
        for combo in itertools.product(*self.panel_values):
            yield dict(zip(self.panels, combo, strict=True))

    def select(self, frame: pd.DataFrame, combo: dict[str, Any]) -> pd.DataFrame:
        """The rows of ``frame`` in the panel ``combo``."""
        keep = np.ones(len(frame), bool)
        for k, v in combo.items():
            col = frame[k]
            if isinstance(v, int | float) and not isinstance(v, bool):
                keep &= np.isclose(col.to_numpy(float), float(v))
            else:
                keep &= (col == v).to_numpy()
        return frame[keep]


def _fmt(v: Any) -> str:
    return f"{v:g}" if isinstance(v, int | float) and not isinstance(v, bool) else str(v)


def title(combo: dict[str, Any]) -> str:
    """``factor = value, ...`` of a panel ("" without factors)."""
    return ", ".join(f"{k} = {_fmt(v)}" for k, v in combo.items())


def layout(study: dict) -> Layout:
    """The layout of a study's grid (a manifest's ``study``)."""
    grid = {k: tuple(v) for k, v in (study.get("grid") or {}).items()}
    if not grid:
        return Layout(None, (), (), ())
    most = max(len(v) for v in grid.values())
    top = [k for k, v in grid.items() if len(v) == most]
    x = "n_regions" if "n_regions" in top else top[0]
    panels = tuple(k for k in grid if k != x and len(grid[k]) > 1)
    return Layout(x, grid[x], panels, tuple(grid[k] for k in panels))


def label_terms(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with ``method`` read "method (term)" when a method has several
    terms (several covariates), so that each term gets its own row or line."""
    if "term" in frame and frame.groupby("method")["term"].nunique().max() > 1:
        frame = frame.assign(method=frame["method"] + " (" + frame["term"].astype(str) + ")")
    return frame
