"""A study over the DGP's intercept reports the same slope measures at every intercept.

The intercept moves every profit by a constant and changes no slope, so bias,
empirical SE, model SE and coverage of every frequentist estimator must agree
across ``intercept = [8, 1e9, 1e10]`` within Monte Carlo error (the conditions
draw different data: the intercept is part of the condition id). Before the
group statistics were centred, at 1e10 ``fe`` covered 1.000 with model SE 2.73
against an empirical SE of 0.25, and ``re-reml`` took the pooled bias.

Each check is a z-test of the difference of two conditions' estimates against
sqrt(MCSE_a² + MCSE_b²) at |z| < 4.5 (two-sided false-failure rate 6.8e-6 per
check; about 100 checks, so under 1e-3 for the file by Bonferroni). The seed is
fixed, so a pass is reproducible.
"""

import numpy as np
import pytest
from frequentist.reference import GENERIC_METHODS

from mlmbias.report.measures import performance
from mlmbias.runner import run_study
from mlmbias.store import load_results
from mlmbias.study import Study

Z = 4.5
INTERCEPTS = (8.0, 1e9, 1e10)
STATS = ("bias", "empse", "modse", "cover")
METHODS = tuple(m for m in GENERIC_METHODS if not m.startswith("hausman"))


@pytest.fixture(scope="module")
def summary(tmp_path_factory):
    out = tmp_path_factory.mktemp("intercepts")
    study = Study(
        seed=5,
        replications=1000,
        methods=METHODS,
        grid={"intercept": list(INTERCEPTS)},
        name="intercepts",
    )
    run_study(study, out, quiet=True)
    return performance(load_results(out))


def test_every_condition_reported(summary):
    assert sorted(summary.intercept.unique()) == sorted(INTERCEPTS)
    assert set(summary.method) == set(METHODS)


@pytest.mark.parametrize("stat", STATS)
@pytest.mark.parametrize("intercept", INTERCEPTS[1:])
def test_slope_measures_do_not_depend_on_the_intercept(summary, stat, intercept):
    s = summary[summary.stat == stat].set_index(["method", "estimand", "intercept"])
    checked = 0
    for method, estimand in {(m, e) for m, e, _ in s.index}:
        a = s.loc[(method, estimand, INTERCEPTS[0])]
        b = s.loc[(method, estimand, intercept)]
        mcse = np.hypot(a.mcse, b.mcse)  # 0 for a proportion of 0 or 1 in both
        z = (b.est - a.est) / mcse if mcse > 0 else (0.0 if b.est == a.est else np.inf)
        assert abs(z) < Z, f"{method} {estimand} {stat}: {a.est:.4f} vs {b.est:.4f} (z = {z:.1f})"
        checked += 1
    assert checked >= len(METHODS)
