"""What a benchmark times must be right: a broken estimator or sampler is never
benchmarked silently.

Each benchmark passes the estimates it timed (and, for a sampler, which
replications converged) to :func:`check_estimates`, which raises
:class:`WrongResult` (an AssertionError, so pytest-benchmark fails the test and a
script stops before writing its JSON) when

- an estimate is not finite;
- fewer than ``min_converged`` of the replications converged;
- for an estimator that is consistent in the seed scenario (fixed effects,
  Mundlak), the mean is not within a two-sided t-test at level ``alpha`` of the
  scenario's true slope: the bound is t(1 - alpha/2, n - 1) * SD / sqrt(n), so a
  correct estimator fails it once in 10,000 runs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats as st

from mlmbias.scenarios import Seed

# The seed scenario's slope of ad spend (1.5), which these estimators are unbiased
# for under its confounding; the others (pooled, between, RE) are biased by design.
TRUTH = Seed().truths()[("beta", "ad_spend")]
CONSISTENT = frozenset(
    {"fe", "fe-cluster", "mundlak-fgls", "mundlak-reml", "bayes-fe", "bayes-mundlak"}
)
ALPHA = 1e-4


class WrongResult(AssertionError):
    """A benchmark's output is not what a correct implementation gives."""


def check_estimates(
    label: str,
    method: str,
    estimates: Sequence[float] | np.ndarray,
    converged: Sequence[bool] | np.ndarray | None = None,
    min_converged: float = 0.8,
    alpha: float = ALPHA,
) -> None:
    """Raise :class:`WrongResult` naming ``label`` if the timed output is wrong."""
    est = np.asarray(estimates, float)
    if est.size == 0 or not np.isfinite(est).all():
        bad = int(np.sum(~np.isfinite(est)))
        raise WrongResult(f"{label}: {bad} of {est.size} estimates are not finite")
    if converged is not None:
        share = float(np.mean(np.asarray(converged, bool)))
        if share < min_converged:
            raise WrongResult(
                f"{label}: only {share:.0%} of {est.size} replications converged "
                f"(at least {min_converged:.0%} expected)"
            )
    if method in CONSISTENT and est.size > 1:
        mean, se = float(est.mean()), float(est.std(ddof=1)) / np.sqrt(est.size)
        bound = float(st.t.ppf(1 - alpha / 2, est.size - 1)) * se
        if abs(mean - TRUTH) > bound:
            raise WrongResult(
                f"{label}: mean estimate {mean:.4f} of {est.size} replications is "
                f"{abs(mean - TRUTH):.4f} from the true {TRUTH}, more than {bound:.4f}"
            )


def check_same(label: str, got: np.ndarray, reference: np.ndarray, rtol: float = 1e-8) -> None:
    """Raise :class:`WrongResult` unless ``got`` matches a reference package's values."""
    got, reference = np.asarray(got, float), np.asarray(reference, float)
    scale = np.maximum(np.abs(reference), 1.0)
    worst = float(np.max(np.abs(got - reference) / scale))
    if not worst <= rtol:
        raise WrongResult(f"{label}: differs from the reference by {worst:.2e} (relative)")
