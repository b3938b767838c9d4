"""Status flags: bits that jitted code returns instead of raising.

A replication's ``flag`` is the bitwise OR of the conditions met. A flag does
not by itself mean the estimate is unusable: ``failed`` in the results is a
non-finite estimate, and ``converged`` is the Bayesian convergence verdict.
"""

OK = 0
SINGLETON_GROUP = 1  # a region with a single observation
NO_WITHIN_VARIATION = 2  # a covariate x does not vary within regions
BOUNDARY_VARIANCE = 4  # between-region variance at or below 0, truncated (rs-*: Sigma singular)
NOT_POSITIVE_DEFINITE = 8  # Hausman: variance difference not positive
NOT_CONVERGED = 16  # MCMC: R-hat / ESS thresholds not met
DIVERGENT = 32  # MCMC: divergent transitions
NONFINITE = 64  # the estimate or its SE is not finite
OPTIMIZER = 128  # the REML/ML profile optimisation did not meet its tolerance
SAMPLER_DISAGREES = 256  # MCMC: posterior mean off the exact (grid) one (sampler_error)

NAMES = {
    SINGLETON_GROUP: "singleton_group",
    NO_WITHIN_VARIATION: "no_within_variation",
    BOUNDARY_VARIANCE: "boundary_variance",
    NOT_POSITIVE_DEFINITE: "not_positive_definite",
    NOT_CONVERGED: "not_converged",
    DIVERGENT: "divergent",
    NONFINITE: "nonfinite",
    OPTIMIZER: "optimizer",
    SAMPLER_DISAGREES: "sampler_disagrees",
}


# Why each flag is set, in plain words (``mlmbias fit`` prints these).
EXPLANATIONS = {
    SINGLETON_GROUP: "some group has a single observation, which adds nothing to the "
    "within (fixed-effects) estimate",
    NO_WITHIN_VARIATION: "x does not vary within any group, so the within effect is "
    "not identified (only the between variation is left); with several x, this holds "
    "for at least one of them, whose within effect is then missing",
    BOUNDARY_VARIANCE: "the between-group variance was estimated at or below 0 and set "
    "to 0, so the random-intercept model reduces to one without region intercepts; in "
    "the random-slope models (rs-*): the covariance of intercept and slope is singular "
    "(a variance at 0 or a correlation of +-1, lme4's isSingular)",
    NOT_POSITIVE_DEFINITE: "the Hausman variance difference V_FE - V_RE is not positive, "
    "so the classic test is undefined",
    NOT_CONVERGED: "the MCMC chains did not converge (R-hat above or ESS below the "
    "thresholds); try more warmup or draws",
    DIVERGENT: "the MCMC sampler had divergent transitions, so the posterior may be "
    "explored incompletely",
    NONFINITE: "the estimate or its SE is not finite (NaN or infinite): the method "
    "could not be computed on these data",
    OPTIMIZER: "the REML/ML optimisation of the variance ratio (random slopes: of the "
    "relative covariance factor) did not meet its tolerance",
    SAMPLER_DISAGREES: "with sampler_error = true: some posterior mean of the MCMC run "
    "is more than sampler_error_max posterior SDs from the exact one (the grid's), so "
    "the chains missed part of the posterior (a second mode, say) although their R-hat "
    "looked fine",
}


def names(flag: int) -> list[str]:
    """Names of the bits set in ``flag``; a bit without a name as ``bit_<value>``."""
    flag = int(flag)
    if flag < 0:
        return [f"invalid_{flag}"]
    out = [name for bit, name in NAMES.items() if flag & bit]
    unknown = flag & ~sum(NAMES)
    out += [f"bit_{1 << i}" for i in range(unknown.bit_length()) if unknown >> i & 1]
    return out


def explain(flag: int) -> list[str]:
    """``name: why`` for each bit set in ``flag``."""
    by_name = {NAMES[bit]: text for bit, text in EXPLANATIONS.items()}
    return [
        f"{name}: {by_name.get(name, 'a flag this version of mlmbias does not name')}"
        for name in names(flag)
    ]
