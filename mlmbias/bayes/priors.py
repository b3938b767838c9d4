"""Default priors of the Bayesian models, and their overrides from a study's ``[bayes]`` table.

Every prior is weakly informative on the scale of the seed's data: profit is in
tens (sd about 13 around a mean near 8), ad spend in tens (sd about 20 between
regions, 5 within), the region intercepts spread by about 30 under the seed's
competition. The defaults put little mass on values an order of magnitude
beyond those and are otherwise flat over the plausible range:

============  ===================  ======================================================
parameter     default prior        meaning (option keys ``prior_<name>_loc``/``_scale``)
============  ===================  ======================================================
mu            Normal(0, 50)        intercept (pooled) or mean of the region intercepts
                                   (re, mundlak, rewb)
beta          Normal(0, 10)        within-region effect of ad spend on profit (the estimand)
contextual    Normal(0, 10)        Mundlak's coefficient of the region mean of ad spend
between       Normal(0, 10)        within-between model's coefficient of the region mean
                                   (its contextual effect is between - beta)
sigma         HalfNormal(25)       residual (month-level) SD; the seed's is 10
                                   (``prior_sigma_scale`` only)
sigma_a       HalfNormal(50)       SD of the region intercepts around their mean
                                   (``prior_sigma_a_scale`` only)
sigma_b       HalfNormal(10)       SD of the region slopes on the first x around beta
                                   (bayes-rs, bayes-rs-mundlak; the beta prior's scale)
                                   (``prior_sigma_b_scale`` only)
lkj_eta       LKJ(1)               shape of the LKJ prior on the correlation rho_ab of
                                   the random intercepts and slopes: (rho_ab + 1) / 2
                                   ~ Beta(eta, eta); 1 is uniform (``prior_lkj_eta``)
alpha         Normal(0, 1000)      the dummy-variable model's region intercepts, each
                                   independent: a wide, fixed prior, so that the model
                                   is the no-pooling (classical fixed-effects) model
                                   (see below)
============  ===================  ======================================================

The dummy-variable prior is much wider than the others on purpose. Any common
prior on the region intercepts partially pools them towards its mean, and
under confounding the intercepts correlate with the region means of ad spend,
so pooling leaks the confounded between-region slope into beta: with sd 100
the seed's scenario (R = 10, intercepts spread by 30) gives beta a bias of
about -0.05; with sd 1000 it is a hundred times smaller.

With several covariates every slope gets the prior of its kind, independently:
each within effect beta_j and each level-2 effect delta_k (the coefficient of a
group-level covariate z_k) the ``beta`` prior, each contextual coefficient
gamma_j the ``contextual`` prior (mundlak) and each between coefficient the
``between`` prior (rewb). There is no separate option for delta.

A study overrides any of them in its ``[bayes]`` table, e.g. ``prior_beta_scale = 5``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlmbias.checks import is_number
from mlmbias.errors import ConfigError


@dataclass(frozen=True)
class Priors:
    """Locations and scales of the priors (see the module docstring)."""

    mu_loc: float = 0.0
    mu_scale: float = 50.0
    beta_loc: float = 0.0
    beta_scale: float = 10.0
    contextual_loc: float = 0.0
    contextual_scale: float = 10.0
    between_loc: float = 0.0
    between_scale: float = 10.0
    sigma_scale: float = 25.0
    sigma_a_scale: float = 50.0
    sigma_b_scale: float = 10.0
    lkj_eta: float = 1.0
    alpha_loc: float = 0.0
    alpha_scale: float = 1000.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            key = PREFIX + f.name
            if not is_number(value):
                raise ConfigError(f"'{key}' must be a number, got {value!r}")
            if not math.isfinite(value):
                raise ConfigError(f"'{key}' must be finite, got {value!r}")
            if (f.name.endswith("_scale") or f.name == "lkj_eta") and value <= 0:
                raise ConfigError(f"'{key}' must be > 0, got {value!r}")
            object.__setattr__(self, f.name, float(value))

    @classmethod
    def option_keys(cls) -> tuple[str, ...]:
        return tuple(PREFIX + f.name for f in dataclasses.fields(cls))


PREFIX = "prior_"


def priors_from_options(options: Mapping[str, Any]) -> Priors:
    """The default priors with the ``prior_*`` entries of ``options`` applied.

    Other keys are ignored here (the caller validates them); an unknown
    ``prior_*`` key is a ``ConfigError`` naming it.
    """
    changes = {}
    for key, value in options.items():
        if not key.startswith(PREFIX):
            continue
        name = key[len(PREFIX) :]
        if name not in {f.name for f in dataclasses.fields(Priors)}:
            raise ConfigError(
                f"unknown prior option '{key}'; allowed: {', '.join(Priors.option_keys())}"
            )
        changes[name] = value
    return Priors(**changes)
