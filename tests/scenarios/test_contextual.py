"""The contextual scenario (Bell & Jones 2015): its draws, its knobs and the known pattern.

Statistical checks compare a Monte Carlo mean with its target in units of its
MCSE: |z| < 4 where no bias is expected (false failure about 6e-5 per check),
z > 8 (or < -8) where the theory predicts a bias many MCSEs wide.
"""

import numpy as np
import pytest

from mlmbias import ConfigError, Contextual, Study, condition_id, run_study
from mlmbias.report.measures import performance
from mlmbias.simulate import simulate_condition, to_frame
from mlmbias.store import load_results


def test_defaults_validate_and_name_their_errors():
    c = Contextual()
    assert c.n_regions == 50 and c.group_sizes == "balanced"
    for changes, message in [
        ({"icc": 1.0}, "'icc' must be < 1"),
        ({"x1_u_corr": 1.5}, "'x1_u_corr' must be <= 1"),
        ({"group_sizes": "lognormal"}, "must be one of balanced, poisson, skewed"),
        ({"group_size": 2.5}, "balanced groups need an integer group_size"),
        ({"noise_sd": 0}, "'noise_sd' must be > 0"),
        ({"bogus": 1}, "scenario 'contextual': unknown field 'bogus'"),
    ]:
        with pytest.raises(ConfigError, match=message):
            c.replace(**changes)
    assert c.replace(group_size=2.5, group_sizes="poisson").group_size == 2.5


def test_condition_ids_differ_from_the_seed_and_by_every_field():
    c = Contextual()
    ids = {condition_id(c)}
    for name, value in [("icc", 0.5), ("group_sizes", "skewed"), ("n_regions", 51)]:
        ids.add(condition_id(c.replace(**{name: value})))
    assert len(ids) == 4


def test_panel_shapes_names_and_group_level_z():
    c = Contextual(n_regions=7, group_size=4.0, group_sizes="poisson")
    panel = simulate_condition(c, 3, [0, 1])
    assert panel.x.shape == (2, c.obs_bound(), 2) and panel.z.shape == (2, 7, 1)
    frame = to_frame(panel, 1)
    assert list(frame.columns) == ["region", "x1", "x2", "z", "y"]
    assert (frame.groupby("region").z.nunique() == 1).all()
    assert len(frame) == int(panel.n_obs[1])


@pytest.mark.parametrize("sizes", ["balanced", "poisson", "skewed"])
def test_group_sizes_have_the_mean_and_spread_asked(sizes):
    c = Contextual(n_regions=400, group_size=6.0, group_sizes=sizes)
    n = np.asarray(simulate_condition(c, 1, range(10)).latent["sizes"], float).ravel()
    assert n.min() >= 1
    m = 5.0  # sizes are 1 + m on average; variance 0, m (Poisson), m (1 + m) (geometric)
    var = {"balanced": 0.0, "poisson": m, "skewed": m * (1 + m)}[sizes]
    if var == 0:
        assert (n == 6).all()
        return
    z = (n.mean() - 6.0) / np.sqrt(var / n.size)
    assert abs(z) < 4, (sizes, n.mean())
    assert n.var() == pytest.approx(var, rel=0.15)


def test_icc_and_correlations_of_the_draws():
    c = Contextual(n_regions=2000, group_size=2.0, icc=0.4, x1_u_corr=0.6, z_u_corr=-0.5)
    panel = simulate_condition(c, 2, [0])
    u = np.asarray(panel.latent["u"][0])
    m1 = np.asarray(panel.latent["m1"][0])
    z = np.asarray(panel.z[0, :, 0])
    tau2 = 0.4 / 0.6  # noise_sd = 1
    assert u.var() == pytest.approx(tau2, rel=0.1)
    # a correlation of 2000 draws has SD about (1 - rho^2)/sqrt(2000) < 0.023
    assert np.corrcoef(u, m1)[0, 1] == pytest.approx(0.6, abs=0.07)
    assert np.corrcoef(u, z)[0, 1] == pytest.approx(-0.5, abs=0.07)


STUDY = dict(
    seed=11,
    replications=200,
    methods=["re-reml", "mundlak-reml", "fe"],
    dgp={"scenario": "contextual", "n_regions": 40, "group_sizes": "poisson", "group_size": 8.0},
    grid={"contextual": [0.0, 1.0], "z_u_corr": [0.0, 0.6]},
)


@pytest.fixture(scope="module")
def contextual_summary(tmp_path_factory):
    out = tmp_path_factory.mktemp("contextual")
    run_study(Study(**STUDY), out, quiet=True)
    return performance(load_results(out))


def _z(summary, method, estimand, term, contextual, z_u_corr):
    s = summary[
        (summary.method == method)
        & (summary.estimand == estimand)
        & (summary.term == term)
        & (summary.stat == "bias")
        & np.isclose(summary.contextual, contextual)
        & np.isclose(summary.z_u_corr, z_u_corr)
    ]
    assert len(s) == 1, (method, estimand, term)
    return float(s.est.iloc[0] / s.mcse.iloc[0])


def test_random_intercepts_are_biased_for_x1_only_with_a_contextual_effect(contextual_summary):
    s = contextual_summary
    for zc in (0.0, 0.6):
        assert abs(_z(s, "re-reml", "beta", "x1", 0.0, zc)) < 4
        assert _z(s, "re-reml", "beta", "x1", 1.0, zc) > 8  # pulled towards beta1 + contextual
        for method in ("mundlak-reml", "fe"):
            for ctx in (0.0, 1.0):
                assert abs(_z(s, method, "beta", "x1", ctx, zc)) < 4, (method, ctx, zc)
                assert abs(_z(s, method, "beta", "x2", ctx, zc)) < 4, (method, ctx, zc)
        for ctx in (0.0, 1.0):  # Mundlak's group-mean term recovers the contextual effect
            assert abs(_z(s, "mundlak-reml", "contextual", "x1", ctx, zc)) < 4


def test_every_random_effects_model_is_biased_for_z_iff_z_correlates_with_u(contextual_summary):
    s = contextual_summary
    for method in ("re-reml", "mundlak-reml"):
        assert abs(_z(s, method, "beta", "z", 0.0, 0.0)) < 4
        assert _z(s, method, "beta", "z", 0.0, 0.6) > 8
    assert abs(_z(s, "mundlak-reml", "beta", "z", 1.0, 0.0)) < 4
    assert _z(s, "mundlak-reml", "beta", "z", 1.0, 0.6) > 8
    # fixed effects have no level-2 coefficient
    fe = s[(s.method == "fe") & (s.stat == "n_total")]
    assert set(fe.term) == {"x1", "x2"}
