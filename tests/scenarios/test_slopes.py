"""The slopes scenario: its knobs, truths and draws, and a study over it.

Statistical checks compare an estimate with its target in units of its
empirical (group-clustered) MCSE and pass when |z| < 5: a false failure about
6e-7 per check, under 1e-5 over the file. The relative checks of SDs allow
more than 6 of their SEs.
"""

import numpy as np
import pytest

from mlmbias import ConfigError, Slopes, Study, condition_id, load_study, simulate_condition
from mlmbias.scenarios import get_scenario, scenario_names
from mlmbias.simulate import to_frame


def test_defaults_truths_and_registry():
    s = Slopes()
    assert get_scenario("slopes") is Slopes and "slopes" in scenario_names()
    assert (s.n_regions, s.group_size, s.group_sizes) == (50, 10.0, "balanced")
    assert (s.intercept_sd, s.slope_sd, s.slope_corr, s.x_mean) == (1.0, 0.5, 0.0, 0.0)
    assert s.truths() == {("beta", "x"): 1.0}
    assert s.replace(beta=-2.0).truths() == {("beta", "x"): -2.0}
    assert "u1_j" in s.equations() and "50 groups" in s.equations()
    assert condition_id(s) != condition_id(s.replace(slope_sd=0.0))
    for changes, message in [
        ({"slope_corr": 1.2}, "'slope_corr' must be <= 1"),
        ({"slope_sd": -0.1}, "'slope_sd' must be >= 0"),
        ({"group_size": 2.5}, "balanced groups need an integer group_size"),
        ({"group_df": 2.0}, "'group_df' must be > 2"),
    ]:
        with pytest.raises(ConfigError, match=message):
            s.replace(**changes)


def _z(values, target=0.0):
    values = np.asarray(values, float)
    return (values.mean() - target) / (values.std() / np.sqrt(values.size))


@pytest.fixture(scope="module")
def big():
    """One replication of 4,000 groups of 5 with every knob of x and u at work."""
    s = Slopes(
        n_regions=4000, group_size=5.0, intercept=0.5, beta=1.5, intercept_sd=1.5,
        slope_sd=0.8, slope_corr=0.5, x_mean=2.0, x_between_sd=0.7, x_within_sd=1.2,
        confounding=1.0, slope_confounding=0.6, noise_sd=0.9,
    )  # fmt: skip
    p = simulate_condition(s, 8, [0])
    assert p.x.shape == (1, s.obs_bound(), 1) and p.z.shape == (1, 4000, 0)
    assert list(to_frame(p).columns) == ["region", "x", "y"]
    mask = np.asarray(p.mask[0])
    region = np.asarray(p.region[0])[mask]
    x = np.asarray(p.x[0, :, 0])[mask]
    y = np.asarray(p.y[0])[mask]
    latent = {k: np.asarray(v[0]) for k, v in p.latent.items()}
    return s, region, x, y, latent


def test_group_effects_and_x_have_the_moments_asked(big):
    s, region, x, y, lat = big
    u0, u1, m = lat["u0"], lat["u1"], lat["m"]
    # SD of a sample SD of 4000 normals: 1.1%; of a correlation about 0.012
    assert u0.std() == pytest.approx(1.5, rel=0.07) and u1.std() == pytest.approx(0.8, rel=0.07)
    assert np.corrcoef(u0, u1)[0, 1] == pytest.approx(0.5, abs=0.06)
    a, sl = u0 / 1.5, u1 / 0.8  # the standardized effects m is built from
    assert abs(_z(m * a, 1.0 + 0.6 * 0.5)) < 5  # cov(m, a) = confounding + sc rho
    assert abs(_z(m * sl, 1.0 * 0.5 + 0.6)) < 5  # cov(m, s) = confounding rho + sc
    xbar = np.bincount(region, weights=x) / np.bincount(region)
    assert abs(_z(xbar - m, 2.0)) < 5  # x's mean
    within = (x - xbar[region]) ** 2 * 5 / 4  # unbiased within variance, group by group
    assert abs(_z(np.bincount(region, weights=within) / 5, 1.2**2)) < 5
    assert float(s.x_sd()) ** 2 == pytest.approx(1 + 0.36 + 2 * 0.6 * 0.5 + 0.49 + 1.44)


def _cluster_slope(region, x, y):
    """The least-squares slope of y on x and its group-clustered SE."""
    xc = x - x.mean()
    slope = (xc * (y - y.mean())).sum() / (xc**2).sum()
    resid = y - y.mean() - slope * xc
    score = np.bincount(region, weights=xc * resid)
    return slope, np.sqrt((score**2).sum()) / (xc**2).sum()


def test_within_estimate_is_unbiased_and_pooled_follows_the_formula(big):
    s, region, x, y, lat = big
    # within (FE): unbiased for beta whatever the confounding of x with u0 and u1
    xbar = np.bincount(region, weights=x) / np.bincount(region)
    ybar = np.bincount(region, weights=y) / np.bincount(region)
    fe, fe_se = _cluster_slope(region, x - xbar[region], y - ybar[region])
    assert abs((fe - s.beta) / fe_se) < 5
    # pooled OLS: beta + cov(x, u0 + u1 x)/var(x), the docstring's formula
    rho, c, sc = s.slope_corr, s.confounding, s.slope_confounding
    cov = s.intercept_sd * (c + sc * rho) + s.slope_sd * s.x_mean * (c * rho + sc)
    pooled, pooled_se = _cluster_slope(region, x, y)
    target = s.beta + cov / float(s.x_sd()) ** 2
    assert abs((pooled - target) / pooled_se) < 5
    assert abs((pooled - s.beta) / pooled_se) > 20  # and far from beta


def test_a_study_grids_over_slope_sd(tmp_path):
    path = tmp_path / "slopes.toml"
    path.write_text(
        'methods = ["fe"]\nreplications = 4\n[dgp]\nscenario = "slopes"\nx_mean = 1.0\n'
        "[grid]\nslope_sd = [0.0, 0.5, 1.0]\n"
    )
    study = load_study(path)
    conditions = study.conditions()
    assert study.scenario == "slopes" and [c.slope_sd for c in conditions] == [0.0, 0.5, 1.0]
    assert all(c.x_mean == 1.0 and isinstance(c, Slopes) for c in conditions)
    assert len({condition_id(c) for c in conditions}) == 3
    with pytest.raises(ConfigError, match="'slope_sd' must be >= 0"):
        Study(methods=["fe"], dgp={"scenario": "slopes"}, grid={"slope_sd": [-1.0, 1.0]})
