import math

import pytest
from scipy.stats import poisson

from mlmbias import DGP, ConfigError


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"n_regions": 1}, "'n_regions' must be >= 2"),
        ({"n_regions": 2.5}, "'n_regions' must be an integer"),
        ({"noise_sd": -1}, "'noise_sd' must be >= 0"),
        ({"competition_sd": -0.1}, "'competition_sd' must be >= 0"),
        ({"adspend_sd": -2}, "'adspend_sd' must be >= 0"),
        ({"adspend_region_sd": -2}, "'adspend_region_sd' must be >= 0"),
        ({"months_mean": 0}, "'months_mean' must be > 0"),
        ({"months_min": 0}, "'months_min' must be >= 1"),
        ({"beta": float("nan")}, "'beta' must be finite"),
        ({"beta": "big"}, "'beta' must be a number"),
        ({"bogus": 1}, "scenario 'seed': unknown field 'bogus'"),
    ],
)
def test_invalid_fields_name_the_field(changes, message):
    with pytest.raises(ConfigError, match=message):
        DGP().replace(**changes)


def test_defaults_are_the_seed():
    d = DGP()
    assert (d.n_regions, d.competition_sd, d.confounding, d.adspend_region_sd) == (10, 10, 2, 2)
    assert (d.months_mean, d.months_min, d.adspend_sd) == (5, 2, 5)
    assert (d.intercept, d.competition_effect, d.beta, d.noise_sd) == (8, -3, 1.5, 10)


@pytest.mark.parametrize("n_regions, months_mean", [(2, 0.1), (10, 5), (200, 5), (1000, 30)])
def test_obs_bound_tail_probability_is_negligible(n_regions, months_mean):
    d = DGP(n_regions=n_regions, months_mean=months_mean)
    lam = n_regions * months_mean
    extra = d.obs_bound() - n_regions * d.months_min
    assert poisson.logsf(extra, lam) / math.log(10) < -26


def test_negative_zero_becomes_zero():
    # equal by value means one condition: -0.0 and 0.0 must not hash differently
    d = DGP(confounding=-0.0, beta=-0.0)
    assert math.copysign(1.0, d.confounding) == 1.0 and math.copysign(1.0, d.beta) == 1.0
    assert d == DGP(confounding=0.0, beta=0.0) and repr(d) == repr(DGP(confounding=0.0, beta=0.0))
