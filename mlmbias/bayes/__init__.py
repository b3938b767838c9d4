"""Bayesian models in NumPyro, run as batched NUTS over replications and chains.

Modules (imported on first use; importing this package does not import NumPyro):

- ``priors``: the documented default priors and their ``prior_*`` overrides;
- ``options``: the ``[bayes]`` settings (chains, warmup, draws, ...);
- ``models``: observation-level NumPyro models with latent non-centred intercepts
  (the reference an analyst would write);
- ``collapsed``: the same models' log densities from the group statistics alone;
- ``sampler``: batched NUTS over replications x chains (NumPyro's functional ``hmc``);
- ``draws``: draws for many replications; ``summary``: summaries and diagnostics;
- ``random_slopes``: the random-slope models (bayes-rs, bayes-rs-mundlak), collapsed;
- ``intercepts``: exact conditional draws of the region intercepts;
- ``methods``: the registry's fit functions.
"""

from mlmbias.registry import MethodSpec

_ESTIMANDS_BETA = ("beta",)
_ESTIMANDS_CONTEXT = ("beta", "contextual")

METHOD_SPECS: list[MethodSpec] = [
    MethodSpec(
        "bayes-pooled",
        "bayes",
        "mlmbias.bayes.methods:fit_pooled",
        _ESTIMANDS_BETA,
        "Bayesian pooled regression: one intercept for all regions",
        family="Bayesian",
    ),
    MethodSpec(
        "bayes-fe",
        "bayes",
        "mlmbias.bayes.methods:fit_fe",
        _ESTIMANDS_BETA,
        "Bayesian dummy-variable model: independent region intercepts, wide fixed prior",
        family="Bayesian",
    ),
    MethodSpec(
        "bayes-re",
        "bayes",
        "mlmbias.bayes.methods:fit_re",
        _ESTIMANDS_BETA,
        "Bayesian random intercepts (the seed's naive model)",
        family="Bayesian",
    ),
    MethodSpec(
        "bayes-mundlak",
        "bayes",
        "mlmbias.bayes.methods:fit_mundlak",
        _ESTIMANDS_CONTEXT,
        "Bayesian random intercepts plus the region means of the x (contextual effects)",
        family="Bayesian",
    ),
    MethodSpec(
        "bayes-rewb",
        "bayes",
        "mlmbias.bayes.methods:fit_rewb",
        _ESTIMANDS_CONTEXT,
        "Bayesian within-between model: region-mean-centred ad spend plus the region mean",
        family="Bayesian",
    ),
    MethodSpec(
        "bayes-rs",
        "bayes",
        "mlmbias.bayes.methods:fit_rs",
        _ESTIMANDS_BETA,
        "Bayesian random intercepts and a random slope on the first x, correlated (LKJ)",
        family="Bayesian",
    ),
    MethodSpec(
        "bayes-rs-mundlak",
        "bayes",
        "mlmbias.bayes.methods:fit_rs_mundlak",
        _ESTIMANDS_CONTEXT,
        "Bayesian random intercepts and slope on the first x plus the region means of the x",
        family="Bayesian",
    ),
]
