"""A simulated panel with two within covariates and one level-2 covariate (p = 2, q = 1)."""

import numpy as np
import pandas as pd


def covariate_panel(rng: np.random.Generator, sizes: np.ndarray) -> pd.DataFrame:
    """Groups of ``sizes``; group effects correlated with the x means (so that
    Mundlak and random effects differ) and with z. Columns g, t, x0, x1, z0, y."""
    g = len(sizes)
    codes = np.repeat(np.arange(g), sizes)
    u = rng.normal(0.0, 2.0, g)
    z = 0.6 * u + rng.normal(0.0, 1.0, g)
    xbar = np.outer(u, [0.8, -0.5]) + rng.normal(0.0, 1.0, (g, 2))
    x = xbar[codes] + rng.normal(0.0, 1.5, (len(codes), 2))
    y = 2.0 + x @ [1.5, -0.7] + 1.2 * z[codes] + u[codes] + rng.normal(0.0, 1.0, len(codes))
    t = np.concatenate([np.arange(s) for s in sizes])
    return pd.DataFrame({"g": codes, "t": t, "x0": x[:, 0], "x1": x[:, 1], "z0": z[codes], "y": y})
