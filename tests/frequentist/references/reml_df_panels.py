"""Write the extra panels of the REML df reference tests to ``reml_df_panels.csv``.

Panels whose REML estimate of the between-region variance is 0 (the boundary):
no region effect in y, and seeds where the estimate falls on 0. ``reml_df.R`` fits them with
the panels of ``few_clusters_panels.csv``; the columns are the same.
Run from the repository root: ``python tests/frequentist/references/reml_df_panels.py``.
"""

from pathlib import Path

import numpy as np
import pandas as pd
from few_clusters_panels import panel_frame

OUT = Path(__file__).with_name("reml_df_panels.csv")
# (panel id, regions, p, q, seed)
DESIGNS = [(100, 8, 1, 0, 1), (101, 12, 2, 1, 0)]


def panel(index: int, g: int, p: int, q: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(2, 9, g)
    codes = np.repeat(np.arange(g), sizes)
    xbar = rng.normal(0.0, 1.0, (g, p))
    x = xbar[codes] + rng.normal(0.0, 1.0, (len(codes), p))
    z = rng.normal(0.0, 1.0, g)
    # no region effect: the seed is one where REML puts s_a^2 at 0
    y = x @ [1.0, -0.5][:p] + xbar[codes] @ [0.5, 0.3][:p] + rng.normal(0.0, 1.0, len(codes))
    y = y + (0.8 * z[codes] if q else 0.0)
    return panel_frame(index, p, q, codes, x, y, z)


def main() -> None:
    frames = [panel(*d) for d in DESIGNS]
    pd.concat(frames).to_csv(OUT, index=False, float_format="%.17g")


if __name__ == "__main__":
    main()
