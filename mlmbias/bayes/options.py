"""Settings of the Bayesian methods: the study's ``[bayes]`` table, validated.

=================  ==============  ==================================================
key                default         meaning
=================  ==============  ==================================================
engine             "nuts"          sampler of the (log sigma, log sigma_a) posterior:
                                   "nuts" (batched NUTS, mlmbias.bayes.sampler),
                                   "grid" (quadrature, mlmbias.bayes.grid: exact up
                                   to the grid; needs collapse = "coefficients";
                                   not for the random-slope models) or
                                   "chees" (ChEES-HMC, mlmbias.bayes.chees: many
                                   short chains; chains, warmup, draws, dense_mass,
                                   target_accept, max_tree_depth, rhat_max and
                                   ess_min are NUTS's, the chees_* keys its own)
chains             4               chains per replication
warmup             1000            warm-up (adaptation) iterations per chain
draws              1000            kept draws per chain
dense_mass         false           dense instead of diagonal mass matrix
batch_size         16 CPU (grid:   replications per compiled batch (x chains)
                   64), 256 GPU/TPU
rhat_max           1.01            converged needs split R-hat <= rhat_max ...
ess_min            400             ... bulk ESS >= ess_min, and no divergences
collapse           "coefficients"  what is integrated out analytically before NUTS:
                                   "coefficients" (intercepts and the regression
                                   coefficients: NUTS samples log sigma, log sigma_a;
                                   coefficients drawn exactly) or "intercepts" (the
                                   DESIGN.md form: NUTS samples the coefficients too)
target_accept      0.8             target acceptance probability of the step size
max_tree_depth     10              NUTS maximum tree depth
grid_size          32              grid: cells per axis of the G x G grid over
                                   (log sigma, log sigma_a) (even, 4 to 1024)
grid_edge_tol      1e-3            grid: converged needs the mass in the box's face
                                   cells <= grid_edge_tol ...
grid_refine_tol    0.05            ... and the posterior means and SDs to move by at
                                   most this many posterior SDs from a G/2 grid
chees_chains       16              chees: chains per replication, in ...
chees_superchains  4               ... superchains sharing an initial point (divides
                                   chees_chains; >= 2)
chees_warmup       300             chees: ChEES adaptation iterations (all chains)
chees_draws        250             chees: kept draws per chain
chees_nrhat_max    1.01            chees: converged needs nested R-hat <= this for
                                   every sampled quantity, and no divergences
sampler_error      false           nuts, chees: also integrate each replication's
                                   posterior on the grid (mlmbias.bayes.grid) and add
                                   the column sampler_error = (posterior mean - the
                                   grid's exact one) / posterior SD to every
                                   coefficient's row (NaN where the grid's own check
                                   fails, and for the random-slope models); the
                                   report's summary gains its mean and RMS
sampler_error_max  0.25            with sampler_error: a replication any of whose
                                   |sampler_error| exceeds this is not converged
                                   (flag SAMPLER_DISAGREES) ...
sampler_sd_tol     0.2             ... nor one with a posterior SD off the exact one
                                   by more than a factor 1 + this (the rows' column
                                   sampler_sd_ratio)
prior_*            see priors.py   prior locations and scales
=================  ==============  ==================================================

The NUTS keys (warmup, dense_mass, target_accept, max_tree_depth, rhat_max,
ess_min) are accepted and ignored under engine = "grid", and the grid_* and
chees_* keys under the other engines: a study can switch engines by one key. chains x draws is
the number of grid draws (nearly independent), laid out as chains x draws.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jax

from mlmbias.bayes.priors import Priors, priors_from_options
from mlmbias.checks import check_bool, check_integer, check_number
from mlmbias.errors import ConfigError

COLLAPSE_MODES = ("coefficients", "intercepts")
ENGINES = ("nuts", "grid", "chees")


def default_batch_size(backend: str | None = None, engine: str = "nuts") -> int:
    """Replications per batch: moderate on CPU for the samplers (the batch waits
    for its longest trajectory: 16 from bench/RESULTS.md's sweep), 64 for the
    grid, which waits for nothing and gains from width (bench_bayes.batched on
    256 replications, 2026-11-29: 200-213 posteriors/s in batches of 16,
    245-300 in batches of 64 to 256 at R = 10 and 50), large on accelerators
    (which need width to be busy)."""
    backend = backend or jax.default_backend()
    if backend != "cpu":
        return 256
    return 64 if engine == "grid" else 16


@dataclass(frozen=True)
class BayesSettings:
    engine: str = "nuts"
    chains: int = 4
    warmup: int = 1000
    draws: int = 1000
    dense_mass: bool = False
    batch_size: int = 16
    rhat_max: float = 1.01
    ess_min: float = 400.0
    collapse: str = "coefficients"
    target_accept: float = 0.8
    max_tree_depth: int = 10
    grid_size: int = 32
    grid_edge_tol: float = 1e-3
    grid_refine_tol: float = 0.05
    chees_chains: int = 16
    chees_superchains: int = 4
    chees_warmup: int = 300
    chees_draws: int = 250
    chees_nrhat_max: float = 1.01
    sampler_error: bool = False
    sampler_error_max: float = 0.25
    sampler_sd_tol: float = 0.2
    priors: Priors = field(default_factory=Priors)


def settings_from_options(options: Mapping[str, Any] | None) -> BayesSettings:
    """Validate the ``[bayes]`` table; an unknown key is a ``ConfigError`` naming it."""
    options = dict(options or {})
    known = {
        "engine",
        "chains",
        "warmup",
        "draws",
        "dense_mass",
        "batch_size",
        "rhat_max",
        "ess_min",
        "collapse",
        "target_accept",
        "max_tree_depth",
        "grid_size",
        "grid_edge_tol",
        "grid_refine_tol",
        "chees_chains",
        "chees_superchains",
        "chees_warmup",
        "chees_draws",
        "chees_nrhat_max",
        "sampler_error",
        "sampler_error_max",
        "sampler_sd_tol",
    }
    for key in options:
        if key not in known and not key.startswith("prior_"):
            allowed = ", ".join(sorted(known) + ["prior_*"])
            raise ConfigError(f"unknown [bayes] option '{key}'; allowed: {allowed}")
    out: dict[str, Any] = {"priors": priors_from_options(options)}
    if "engine" in options:
        if options["engine"] not in ENGINES:
            allowed = ", ".join(ENGINES)
            raise ConfigError(f"'engine' must be one of {allowed}, got {options['engine']!r}")
        out["engine"] = options["engine"]
    if "chains" in options:
        out["chains"] = check_integer("chains", options["chains"], 1)
    if "warmup" in options:
        out["warmup"] = check_integer("warmup", options["warmup"], 0)
    if "draws" in options:
        out["draws"] = check_integer("draws", options["draws"], 4)
    if "sampler_error" in options:
        out["sampler_error"] = check_bool("sampler_error", options["sampler_error"])
    if "sampler_error_max" in options:
        out["sampler_error_max"] = check_number(
            "sampler_error_max", options["sampler_error_max"], 0.0, math.inf, open_low=True
        )
    if "sampler_sd_tol" in options:
        out["sampler_sd_tol"] = check_number(
            "sampler_sd_tol", options["sampler_sd_tol"], 0.0, math.inf, open_low=True
        )
    if "dense_mass" in options:
        out["dense_mass"] = check_bool("dense_mass", options["dense_mass"])
    batch = options.get("batch_size")
    out["batch_size"] = (
        default_batch_size(engine=out.get("engine", "nuts"))
        if batch is None
        else check_integer("batch_size", batch, 1)
    )
    if "rhat_max" in options:
        out["rhat_max"] = check_number("rhat_max", options["rhat_max"], 1.0, math.inf)
    if "ess_min" in options:
        out["ess_min"] = check_number("ess_min", options["ess_min"], 0.0, math.inf)
    if "collapse" in options:
        if options["collapse"] not in COLLAPSE_MODES:
            allowed = ", ".join(COLLAPSE_MODES)
            raise ConfigError(f"'collapse' must be one of {allowed}, got {options['collapse']!r}")
        out["collapse"] = options["collapse"]
    if "target_accept" in options:
        out["target_accept"] = check_number(
            "target_accept", options["target_accept"], 0.0, 0.999, open_low=True
        )
    if "max_tree_depth" in options:
        out["max_tree_depth"] = check_integer("max_tree_depth", options["max_tree_depth"], 1, 15)
    if "grid_size" in options:
        out["grid_size"] = check_integer("grid_size", options["grid_size"], 4, 1024)
        if out["grid_size"] % 2:
            raise ConfigError(
                f"'grid_size' must be even (the refinement check halves it), "
                f"got {options['grid_size']!r}"
            )
    if "grid_edge_tol" in options:
        out["grid_edge_tol"] = check_number(
            "grid_edge_tol", options["grid_edge_tol"], 0.0, 1.0, open_low=True
        )
    if "grid_refine_tol" in options:
        out["grid_refine_tol"] = check_number(
            "grid_refine_tol", options["grid_refine_tol"], 0.0, math.inf, open_low=True
        )
    out.update(_chees_options(options))
    settings = BayesSettings(**out)
    check_collapse(settings)
    return settings


# Why the engines other than NUTS need collapse = "coefficients".
_NEEDS_COEFFICIENTS = {
    "grid": "it integrates the two-dimensional (log sigma, log sigma_a) posterior",
    # divergences in 3 of 4 replications of the seed's scenario when tried
    "chees": "with 'intercepts' its single step size per posterior diverges in the "
    "funnel of sigma_a and the coefficients",
}


def check_collapse(settings: BayesSettings, engine: str | None = None) -> None:
    """A ConfigError when ``engine`` (default: the settings' own) cannot sample the
    settings' collapse mode: grid and chees sample collapse "coefficients" only."""
    engine = engine or settings.engine
    why = _NEEDS_COEFFICIENTS.get(engine)
    if why and settings.collapse != "coefficients":
        raise ConfigError(
            f"engine '{engine}' needs collapse = 'coefficients' ({why}), got collapse = "
            f"{settings.collapse!r}; use engine 'nuts' for collapse = 'intercepts'"
        )


RANDOM_SLOPE_MODELS = ("rs", "rs-mundlak")


def check_model(model: str, settings: BayesSettings) -> None:
    """A ConfigError when the settings cannot sample ``model``: the random-slope
    models (mlmbias.bayes.random_slopes) sample a four-dimensional posterior of
    scales (sigma, sigma_a, sigma_b, rho_ab) with the coefficients always
    integrated out, so they run on engines "nuts" and "chees" only and have no
    collapse "intercepts" form. The other models: :func:`check_collapse`."""
    if model not in RANDOM_SLOPE_MODELS:
        check_collapse(settings)
        return
    if settings.engine == "grid":
        raise ConfigError(
            f"bayes-{model} cannot use engine 'grid': the grid integrates a two-dimensional "
            "(log sigma, log sigma_a) posterior and a random-slope model's has four dimensions "
            "(sigma, sigma_a, sigma_b, rho_ab); use engine 'nuts' or 'chees'"
        )
    if settings.collapse != "coefficients":
        raise ConfigError(
            f"bayes-{model} needs collapse = 'coefficients' (its coefficients and group "
            f"effects are always integrated out), got collapse = {settings.collapse!r}"
        )


def check_methods(methods, settings: BayesSettings) -> None:
    """:func:`check_model` for each ``bayes-MODEL`` among ``methods`` (method names),
    so that a study or ``mlmbias fit`` refuses an engine a model cannot use when
    it loads, not when the model's first batch runs."""
    for name in methods:
        if name.startswith("bayes-") and name[len("bayes-") :] in RANDOM_SLOPE_MODELS:
            check_model(name[len("bayes-") :], settings)


def _chees_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The validated chees_* keys (engine "chees", mlmbias.bayes.chees)."""
    out: dict[str, Any] = {}
    if "chees_chains" in options:
        out["chees_chains"] = check_integer("chees_chains", options["chees_chains"], 2)
    if "chees_superchains" in options:
        out["chees_superchains"] = check_integer(
            "chees_superchains", options["chees_superchains"], 2
        )
    chains = out.get("chees_chains", BayesSettings.chees_chains)
    superchains = out.get("chees_superchains", BayesSettings.chees_superchains)
    if chains % superchains:
        raise ConfigError(
            f"'chees_chains' ({chains}) must be a multiple of 'chees_superchains' ({superchains})"
        )
    if "chees_warmup" in options:
        out["chees_warmup"] = check_integer("chees_warmup", options["chees_warmup"], 1)
    if "chees_draws" in options:
        out["chees_draws"] = check_integer("chees_draws", options["chees_draws"], 2)
    if "chees_nrhat_max" in options:
        out["chees_nrhat_max"] = check_number(
            "chees_nrhat_max", options["chees_nrhat_max"], 1.0, math.inf
        )
    return out
