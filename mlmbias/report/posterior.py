"""Posterior draws on one dataset for the seed's pair plot (beta against sigma_a).

Fits the observation-level reference models (what an analyst writes) with
NumPyro's ``MCMC``: one dataset, so the batched sampler is not needed here.
"""

from __future__ import annotations

import jax
import numpy as np
import pandas as pd

PAIR_MODELS = {"bayes-re": "re", "bayes-mundlak": "mundlak"}


def pair_draws(
    df: pd.DataFrame, seed: int = 0, chains: int = 4, warmup: int = 1000, draws: int = 1000
) -> dict[str, dict[str, np.ndarray]]:
    """Draws of beta and sigma_a under the random-intercept and the Mundlak model."""
    from numpyro.infer import MCMC, NUTS

    from mlmbias.bayes.models import MODELS

    codes, uniques = pd.factorize(df["region"], sort=True)
    region = jax.numpy.asarray(codes)
    x = jax.numpy.asarray(df["ad_spend"].to_numpy(float))
    y = jax.numpy.asarray(df["profit"].to_numpy(float))
    out = {}
    for i, (name, model) in enumerate(PAIR_MODELS.items()):
        mcmc = MCMC(
            NUTS(MODELS[model]),
            num_warmup=warmup,
            num_samples=draws,
            num_chains=chains,
            chain_method="vectorized",
            progress_bar=False,
        )
        mcmc.run(jax.random.PRNGKey(seed + i), region, x, y, n_regions=len(uniques))
        samples = mcmc.get_samples()
        out[name] = {k: np.asarray(samples[k]) for k in ("beta", "sigma_a")}
    return out
