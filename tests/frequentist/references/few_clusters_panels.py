"""Write the panels of the few-cluster reference tests to ``few_clusters_panels.csv``.

Small and unbalanced panels (G from 6 to 30 regions of 1 to 12 observations,
singletons among them), p = 1 or 2 within covariates, with or without a
group-level z (q = 0 or 1); region effects correlated with the x means, so that
the Mundlak term is not zero. ``few_clusters.R`` fits them with clubSandwich.
Run from the repository root: ``python tests/frequentist/references/few_clusters_panels.py``.
"""

from pathlib import Path

import numpy as np
import pandas as pd

OUT = Path(__file__).with_name("few_clusters_panels.csv")
# (regions, p, q) of each panel, seeded by position
DESIGNS = [
    (6, 1, 0),
    (8, 1, 1),
    (10, 2, 0),
    (10, 1, 0),
    (15, 2, 1),
    (20, 1, 1),
    (30, 2, 0),
    (12, 1, 0),
]


def panel(index: int, g: int, p: int, q: int) -> pd.DataFrame:
    rng = np.random.default_rng(1000 + index)
    sizes = rng.integers(1, 13, g)
    sizes[0] = 1 if g > 6 else 2  # a singleton region in most panels
    codes = np.repeat(np.arange(g), sizes)
    u = rng.normal(0.0, 1.5, g)
    xbar = np.outer(u, [0.7, -0.4][:p]) + rng.normal(0.0, 1.0, (g, p))
    x = xbar[codes] + rng.normal(0.0, 1.0, (len(codes), p)) * rng.uniform(0.5, 2.0, g)[codes, None]
    z = 0.5 * u + rng.normal(0.0, 1.0, g)
    # heteroskedastic across regions, as the clusters of a CR2 study
    e = rng.normal(0.0, 1.0, len(codes)) * rng.uniform(0.5, 2.0, g)[codes]
    y = 1.0 + x @ [1.0, -0.5][:p] + (0.8 * z[codes] if q else 0.0) + u[codes] + e
    return panel_frame(index, p, q, codes, x, y, z)


def panel_frame(index, p, q, codes, x, y, z) -> pd.DataFrame:
    """One panel in the CSV's columns: x1 and z0 are 0 where p = 1 or q = 0."""
    frame = pd.DataFrame({"panel": index, "p": p, "q": q, "g": codes, "y": y})
    for j in range(2):
        frame[f"x{j}"] = x[:, j] if j < p else 0.0
    frame["z0"] = z[codes] if q else 0.0
    return frame


def main() -> None:
    frames = [panel(i, *d) for i, d in enumerate(DESIGNS)]
    pd.concat(frames).to_csv(OUT, index=False, float_format="%.17g")


if __name__ == "__main__":
    main()
