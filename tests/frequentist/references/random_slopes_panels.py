"""Write the panels of the random-slope reference tests to ``random_slopes_panels.csv``.

Unbalanced panels (regions of 1 to 14 observations, singletons among them) with
a random intercept and a random slope on x0, correlated with each other and
with the region means of x (so that the Mundlak terms are not zero): small
(G = 8 to 12) and large (G = 60 to 90), p = 1 without z and p = 2 with one z,
and per shape one panel whose slope SD is 0 (REML puts Sigma on its boundary).
x0 has a mean far from 0 in some panels, so that the intercept SD and the
correlation, which depend on the location of x0, are checked on the raw scale.
``random_slopes.R`` fits them with lme4. Columns as ``few_clusters_panels.csv``.
Run from the repository root: ``python tests/frequentist/references/random_slopes_panels.py``.
"""

from pathlib import Path

import numpy as np
import pandas as pd
from few_clusters_panels import panel_frame

OUT = Path(__file__).with_name("random_slopes_panels.csv")
# (panel id, regions, p, q, slope SD, mean of x0, seed)
DESIGNS = [
    (0, 8, 1, 0, 0.8, 0.0, 1),
    (1, 70, 1, 0, 0.5, 3.0, 2),
    (2, 30, 1, 0, 0.0, 0.0, 11),
    (3, 12, 2, 1, 0.7, 0.0, 4),
    (4, 90, 2, 1, 0.4, 10.0, 5),
    (5, 25, 2, 1, 0.0, 2.0, 12),
]


def panel(index: int, g: int, p: int, q: int, sd_b: float, mu: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(2, 15, g)
    sizes[0] = 1  # a singleton region
    codes = np.repeat(np.arange(g), sizes)
    u = rng.normal(0.0, 1.0, g)
    v = sd_b * (0.5 * u + np.sqrt(0.75) * rng.normal(0.0, 1.0, g))
    xbar = np.outer(u, [0.6, -0.4][:p]) + rng.normal(0.0, 1.0, (g, p))
    x = xbar[codes] + rng.normal(0.0, 1.0, (len(codes), p))
    z = 0.5 * u + rng.normal(0.0, 1.0, g)
    e = rng.normal(0.0, 1.0, len(codes))
    y = 1.0 + x @ [1.0, -0.5][:p] + (0.8 * z[codes] if q else 0.0) + u[codes]
    y = y + v[codes] * x[:, 0] + e
    x[:, 0] += mu  # the same model, x0 measured from another origin
    return panel_frame(index, p, q, codes, x, y, z)


def main() -> None:
    frames = [panel(*d) for d in DESIGNS]
    pd.concat(frames).to_csv(OUT, index=False, float_format="%.17g")


if __name__ == "__main__":
    main()
