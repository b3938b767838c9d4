"""On a reduced study, the directions the default run shows (issue: report).

Each check is a z-test of the bias against its Monte Carlo SE at |z| = 4
(two-sided false-failure rate 6.3e-5 per check, under 1e-3 for all 16).
The Bayesian methods run 64 replications with shortened chains: enough for
the directions, not for the default study's precision.
The seed is fixed, so a pass is reproducible.
"""

import numpy as np
import pytest

from mlmbias.report.measures import performance
from mlmbias.runner import run_study
from mlmbias.store import load_results
from mlmbias.study import Study

# `make test-slow`: 400 replications a condition and 64 posteriors per method
pytestmark = pytest.mark.slow

Z = 4.0
UNBIASED = ("fe", "fe-cluster", "mundlak-fgls", "mundlak-reml", "bayes-mundlak")
RANDOM_INTERCEPT = ("re-fgls", "re-reml", "bayes-re")


@pytest.fixture(scope="module")
def summary(tmp_path_factory):
    out = tmp_path_factory.mktemp("directions")
    study = Study(
        seed=7,
        replications=400,
        methods=UNBIASED + RANDOM_INTERCEPT,
        grid={"n_regions": [20], "confounding": [2.0, 0.0]},
        bayes={"replications": 64, "warmup": 400, "draws": 400},
        name="directions",
    )
    run_study(study, out, quiet=True)
    return performance(load_results(out))


def bias_z(summary, method, confounding):
    row = summary[
        (summary.method == method)
        & (summary.stat == "bias")
        & np.isclose(summary.confounding, confounding)
    ]
    assert len(row) == 1
    return float(row.est.iloc[0] / row.mcse.iloc[0])


@pytest.mark.parametrize("method", UNBIASED)
@pytest.mark.parametrize("confounding", [2.0, 0.0])
def test_within_estimators_unbiased(summary, method, confounding):
    assert abs(bias_z(summary, method, confounding)) < Z


@pytest.mark.parametrize("method", RANDOM_INTERCEPT)
def test_random_intercepts_biased_down_under_confounding(summary, method):
    assert bias_z(summary, method, 2.0) < -Z


@pytest.mark.parametrize("method", RANDOM_INTERCEPT)
def test_random_intercepts_unbiased_in_the_control(summary, method):
    assert abs(bias_z(summary, method, 0.0)) < Z
