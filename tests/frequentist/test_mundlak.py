"""The Mundlak model by FGLS against linearmodels RandomEffects(y, [const, x, xbar]).

(Its REML version is compared with MixedLM in test_random_effects.py.)
"""

import numpy as np
from frequentist.reference import (
    CLOSED_FORM_RTOL,
    LEVEL,
    assert_close,
    column,
    lm_re,
    panel_data,
)

from mlmbias import flags


def test_fgls_matches_randomeffects(reference):
    for i, frame in enumerate(reference.frames):
        res = lm_re(panel_data(frame), mundlak=True)
        ci = res.conf_int(LEVEL)
        what = f"mundlak-fgls rep {i} ({reference.labels[i]})"
        for estimand, name in [("beta", "ad_spend"), ("contextual", "xbar")]:
            got = column(reference.results, "mundlak-fgls", i, estimand)
            assert_close(got["estimate"], res.params[name], CLOSED_FORM_RTOL, what)
            assert_close(got["se"], res.std_errors[name], CLOSED_FORM_RTOL, what)
            assert_close(
                [got["lower"], got["upper"]], ci.loc[name].to_numpy(), CLOSED_FORM_RTOL, what
            )
            assert got["df"] == res.df_resid
            assert got["flag"] & ~flags.BOUNDARY_VARIANCE == 0


def test_within_effect_equals_fixed_effects(reference):
    """In the Mundlak model beta is the within estimator, whatever the variance ratio."""
    fe = reference.results["fe"][("beta", "x0")]["estimate"]
    for method in ("mundlak-fgls", "mundlak-reml"):
        beta = reference.results[method][("beta", "x0")]["estimate"]
        np.testing.assert_allclose(beta, fe, rtol=1e-10)


def test_variance_components_equal_random_effects(reference):
    """xbar adds nothing to the within or between regressions of Swamy-Arora."""
    for col in ("sigma", "sigma_a"):
        np.testing.assert_allclose(
            reference.results["mundlak-fgls"][("beta", "x0")][col],
            reference.results["re-fgls"][("beta", "x0")][col],
            rtol=1e-10,
        )
