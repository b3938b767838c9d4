"""Simulation-based calibration (Talts, Betancourt, Simpson, Vehtari and Gelman 2018).

For each of N trials: draw the parameters from the prior, data from the model
(the seed's ad-spend design as the fixed covariate, the outcome drawn from the
model being checked), fit the collapsed model, and record the rank of each true
parameter among L thinned posterior draws. If the sampler and the model agree,
every rank is uniform on {0, ..., L}. :func:`chi_square` tests that per
parameter; :func:`plot_ranks` draws the rank histograms.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
from scipy import stats as st

from mlmbias.bayes.collapsed import MODEL_INFO
from mlmbias.bayes.draws import sample
from mlmbias.bayes.options import BayesSettings
from mlmbias.groupstats import group_stats
from mlmbias.scenarios import Seed
from mlmbias.simulate import simulate_condition


class SBCResult(NamedTuple):
    model: str
    params: tuple[str, ...]
    ranks: np.ndarray  # (trials, params) in 0..thin
    thin: int  # L: ranks take L + 1 values
    divergent: np.ndarray  # (trials,) bool


RANDOM_SLOPES = ("rs", "rs-mundlak")


def prior_draws(model: str, settings: BayesSettings, n: int, rng) -> dict[str, np.ndarray]:
    """n draws of the model's parameters from its prior (re, mundlak and the
    random-slope rs, rs-mundlak: those add sigma_b and rho_ab, and rs-mundlak's
    contextual effect is mundlak's)."""
    if model not in ("re", "mundlak", *RANDOM_SLOPES):
        raise ValueError("SBC is set up for the 're', 'mundlak', 'rs' and 'rs-mundlak' models")
    p = settings.priors
    out = {
        "mu": rng.normal(p.mu_loc, p.mu_scale, n),
        "beta": rng.normal(p.beta_loc, p.beta_scale, n),
        "contextual": (
            rng.normal(p.contextual_loc, p.contextual_scale, n)
            if model == "mundlak"
            else np.zeros(n)
        ),
        "sigma": np.abs(rng.normal(0.0, p.sigma_scale, n)),
        "sigma_a": np.abs(rng.normal(0.0, p.sigma_a_scale, n)),
    }
    if model in RANDOM_SLOPES:
        out["contextual"] = (
            rng.normal(p.contextual_loc, p.contextual_scale, n)
            if model == "rs-mundlak"
            else np.zeros(n)
        )
        out["sigma_b"] = np.abs(rng.normal(0.0, p.sigma_b_scale, n))
        out["rho_ab"] = 2.0 * rng.beta(p.lkj_eta, p.lkj_eta, n) - 1.0
    return out


def run_sbc(
    model: str,
    trials: int,
    settings: BayesSettings,
    thin: int = 99,
    seed: int = 0,
    dgp: Seed | None = None,
) -> SBCResult:
    """Ranks of the true parameters among ``thin`` posterior draws, for ``trials`` trials."""
    dgp = dgp or Seed()
    rng = np.random.default_rng(seed)
    truth = prior_draws(model, settings, trials, rng)
    panel = simulate_condition(dgp, seed, np.arange(trials))
    region = np.asarray(panel.region)
    x = np.asarray(panel.x[..., 0])
    mask = np.asarray(panel.mask)
    r = dgp.n_regions
    w = mask.astype(float)
    n_r = np.stack([np.bincount(region[i], w[i], r) for i in range(trials)])
    sx = np.stack([np.bincount(region[i], w[i] * x[i], r) for i in range(trials)])
    xbar = sx / np.maximum(n_r, 1)
    w0 = rng.normal(size=(trials, r))
    a = w0 * truth["sigma_a"][:, None]
    mean_r = truth["mu"][:, None] + truth["contextual"][:, None] * xbar + a
    slope = np.broadcast_to(truth["beta"][:, None], (trials, r))
    if model in RANDOM_SLOPES:  # (a_r, b_r) correlated by rho_ab; b_r the slope's deviation
        rho = truth["rho_ab"][:, None]
        w1 = rng.normal(size=(trials, r))
        slope = slope + truth["sigma_b"][:, None] * (rho * w0 + np.sqrt(1.0 - rho**2) * w1)
    mean = np.take_along_axis(mean_r, region, axis=1) + np.take_along_axis(slope, region, 1) * x
    y = np.where(mask, mean + truth["sigma"][:, None] * rng.normal(size=x.shape), 0.0)
    stats = group_stats(dataclasses.replace(panel, y=jnp.asarray(y)))
    keys = rng.integers(0, 2**32, (trials, 2), dtype=np.uint32)
    if model in RANDOM_SLOPES:
        from mlmbias.bayes import random_slopes

        draws = random_slopes.sample(model, keys, stats, settings)
        names = random_slopes.params(model)
    else:
        draws = sample(model, keys, stats, settings)
        names = MODEL_INFO[model].params
    total = draws.values.shape[1] * draws.values.shape[2]  # chains x draws, any engine
    idx = np.linspace(0, total - 1, thin).round().astype(int)
    ranks = np.empty((trials, len(names)), int)
    for j, name in enumerate(names):
        pooled = draws.get(name).reshape(trials, -1)[:, idx]
        ranks[:, j] = (pooled < truth[name][:, None]).sum(axis=1)
    return SBCResult(model, names, ranks, thin, draws.divergences > 0)


def chi_square(result: SBCResult, bins: int = 20) -> dict[str, float]:
    """p-value of Pearson's chi-square test of uniform ranks, per parameter.

    ``bins`` must divide L + 1, so that every bin holds the same number of ranks.
    """
    values = result.thin + 1
    if values % bins:
        raise ValueError(f"bins={bins} must divide the {values} possible ranks")
    out = {}
    for j, name in enumerate(result.params):
        counts = np.bincount(result.ranks[:, j] * bins // values, minlength=bins)
        out[name] = float(st.chisquare(counts).pvalue)
    return out


def plot_ranks(results: list[SBCResult], path: str | Path, bins: int = 20) -> Path:
    """Rank histograms, one row per model, with the 99% band of a uniform histogram."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ncol = max(len(r.params) for r in results)
    fig, axes = plt.subplots(
        len(results), ncol, figsize=(2.6 * ncol, 2.4 * len(results)), squeeze=False
    )
    for row, res in zip(axes, results, strict=True):
        trials = res.ranks.shape[0]
        values = res.thin + 1
        expected = trials / bins
        lo, hi = st.binom.ppf([0.005, 0.995], trials, 1 / bins)
        pvals = chi_square(res, bins)
        for ax, (j, name) in zip(row, enumerate(res.params), strict=False):
            counts = np.bincount(res.ranks[:, j] * bins // values, minlength=bins)
            ax.axhspan(lo, hi, color="0.85")
            ax.axhline(expected, color="0.4", lw=0.8)
            ax.bar(np.arange(bins), counts, width=1.0, color="C0", edgecolor="white")
            ax.set_title(f"{res.model}: {name}\nchi-square p = {pvals[name]:.2f}", fontsize=9)
            ax.set_xticks([])
        for ax in row[len(res.params) :]:
            ax.axis("off")
    fig.suptitle(
        f"SBC rank histograms ({results[0].ranks.shape[0]} trials, L = {results[0].thin}, "
        "grey: 99% band under uniformity)",
        fontsize=10,
    )
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
