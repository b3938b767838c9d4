"""Status flags: bits that jitted code returns instead of raising.

A replication's ``flag`` is the bitwise OR of the conditions met. A flag does
not by itself mean the estimate is unusable: ``failed`` in the results is a
non-finite estimate, and ``converged`` is the Bayesian convergence verdict.
"""

OK = 0
SINGLETON_GROUP = 1  # a region with a single observation
NO_WITHIN_VARIATION = 2  # the predictor does not vary within regions
BOUNDARY_VARIANCE = 4  # between-region variance estimated at or below 0, truncated at 0
NOT_POSITIVE_DEFINITE = 8  # Hausman: variance difference not positive
NOT_CONVERGED = 16  # MCMC: R-hat / ESS thresholds not met
DIVERGENT = 32  # MCMC: divergent transitions
NONFINITE = 64  # the estimate or its SE is not finite
OPTIMIZER = 128  # the REML/ML profile optimisation did not meet its tolerance

NAMES = {
    SINGLETON_GROUP: "singleton_group",
    NO_WITHIN_VARIATION: "no_within_variation",
    BOUNDARY_VARIANCE: "boundary_variance",
    NOT_POSITIVE_DEFINITE: "not_positive_definite",
    NOT_CONVERGED: "not_converged",
    DIVERGENT: "divergent",
    NONFINITE: "nonfinite",
    OPTIMIZER: "optimizer",
}


def describe(flag: int) -> list[str]:
    """Names of the bits set in ``flag``."""
    return [name for bit, name in NAMES.items() if flag & bit]
