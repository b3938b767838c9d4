"""The collapsed models and the observation-level NumPyro models give the same posterior.

Same panel (one replication of the seed's scenario), same priors. For every
model and parameter the posterior means and SDs are compared by a z-score whose
standard error combines both samplers' Monte Carlo SEs (from their ESS). There
are at most 44 comparisons (19 means, 19 SDs, 6 region intercepts); each is
tested two-sided at 0.001 / 44 (Bonferroni), so a correct implementation fails
this test with probability below 0.001.
"""

import functools

import jax
import numpy as np
import pytest
from numpyro.infer import MCMC, NUTS
from scipy.stats import norm

from mlmbias.bayes import collapsed as C
from mlmbias.bayes.draws import QUANTITIES, sample
from mlmbias.bayes.intercepts import draw_intercepts
from mlmbias.bayes.models import MODELS
from mlmbias.bayes.options import settings_from_options
from mlmbias.bayes.summary import ess_mean
from mlmbias.groupstats import GroupStats

from .conftest import SMALL

FAMILY_RATE = 1e-3
N_TESTS = 44
Z_CRIT = norm.ppf(1 - FAMILY_RATE / N_TESTS / 2)

OBS_SITE = {"mu": "mu", "beta": "beta", "contextual": "contextual", "sigma": "sigma"}
OBS_SITE["sigma_a"] = "sigma_a"


def _params(model):
    info = C.MODEL_INFO[model]
    names = ["beta", "sigma"]
    if info.has_mu:
        names.append("mu")
    if info.has_contextual:
        names.append("contextual")
    if info.has_sigma_a:
        names.append("sigma_a")
    return names


def _moments_z(a, b):
    """z-scores of the difference of means and of SDs of draws a, b (chains, draws)."""
    out = {}
    for label, fa, fb in (
        ("mean", a, b),
        ("sd", (a - a.mean()) ** 2, (b - b.mean()) ** 2),
    ):
        ma, mb = fa.mean(), fb.mean()
        se_a = fa.std() / np.sqrt(ess_mean(fa[None])[0])
        se_b = fb.std() / np.sqrt(ess_mean(fb[None])[0])
        if label == "sd":  # delta method: sd = sqrt(E[(x - m)^2])
            ma, mb = np.sqrt(ma), np.sqrt(mb)
            se_a, se_b = se_a / (2 * ma), se_b / (2 * mb)
        out[label] = (ma - mb) / np.hypot(se_a, se_b)
    return out


@functools.cache
def _observation_level(model, region, x, y, n_regions):
    mcmc = MCMC(
        NUTS(functools.partial(MODELS[model], n_regions=n_regions)),
        num_warmup=500,
        num_samples=1000,
        num_chains=4,
        chain_method="sequential",
        progress_bar=False,
    )
    mcmc.run(jax.random.PRNGKey(7), np.asarray(region), np.asarray(x), np.asarray(y))
    return {k: np.asarray(v) for k, v in mcmc.get_samples(group_by_chain=True).items()}


@pytest.mark.parametrize("model", list(C.MODEL_INFO))
def test_collapsed_matches_observation_level(seed_panel, seed_stats, model):
    mask = np.asarray(seed_panel.mask[0])
    region = np.asarray(seed_panel.region[0])[mask]
    x = np.asarray(seed_panel.x[0, :, 0])[mask]
    y = np.asarray(seed_panel.y[0])[mask]
    n_regions = seed_panel.n_regions
    obs = _observation_level(model, tuple(region), tuple(x), tuple(y), n_regions)

    stats = GroupStats(*(np.asarray(a)[:1] for a in seed_stats))
    keys = np.asarray(jax.random.split(jax.random.PRNGKey(3), 1))
    draws = sample(model, keys, stats, settings_from_options(SMALL))
    failures = []
    for name in _params(model):
        col = draws.values[0, :, :, QUANTITIES.index(name)]
        for label, z in _moments_z(col, obs[OBS_SITE[name]]).items():
            if abs(z) > Z_CRIT:
                failures.append(f"{name} {label}: z = {z:.2f}")

    if model in ("re", "mundlak"):
        # exact intercept draws given each collapsed draw vs the latent intercepts
        q = {k: draws.values[0, ..., QUANTITIES.index(k)] for k in QUANTITIES}
        one = GroupStats(*(a[0] for a in stats))
        alpha = np.asarray(draw_intercepts(jax.random.PRNGKey(5), model, one, q))
        for r in (0, 4, 9):
            z = _moments_z(alpha[..., r], obs["alpha"][..., r])["mean"]
            if abs(z) > Z_CRIT:
                failures.append(f"alpha[{r}] mean: z = {z:.2f}")
    assert not failures, f"{model}: {failures} (critical |z| = {Z_CRIT:.2f})"


def test_both_collapse_modes_agree(seed_stats):
    """NUTS over (theta, sigma, sigma_a) with the intercepts integrated out (DESIGN.md's
    form) and NUTS over (sigma, sigma_a) with theta drawn exactly: same posterior.
    10 comparisons at 0.001 / 10 each."""
    stats = GroupStats(*(np.asarray(a)[:1] for a in seed_stats))
    keys = np.asarray(jax.random.split(jax.random.PRNGKey(4), 1))
    a = sample("mundlak", keys, stats, settings_from_options(SMALL))
    b = sample("mundlak", keys, stats, settings_from_options({**SMALL, "collapse": "intercepts"}))
    crit = norm.ppf(1 - FAMILY_RATE / 10 / 2)
    for j, name in enumerate(QUANTITIES):
        for label, z in _moments_z(a.values[0, ..., j], b.values[0, ..., j]).items():
            assert abs(z) < crit, f"{name} {label}: z = {z:.2f}"
