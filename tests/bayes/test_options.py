"""Settings and priors of the [bayes] table."""

import pytest

from mlmbias import ConfigError
from mlmbias.bayes.options import BayesSettings, default_batch_size, settings_from_options
from mlmbias.bayes.priors import Priors, priors_from_options


def test_defaults():
    s = settings_from_options({})
    assert (s.chains, s.warmup, s.draws, s.dense_mass) == (4, 1000, 1000, False)
    assert (s.rhat_max, s.ess_min, s.collapse) == (1.01, 400.0, "coefficients")
    assert s.batch_size == default_batch_size()
    assert default_batch_size("cpu") == 16 and default_batch_size("gpu") > 16
    assert s.priors == Priors()
    assert isinstance(s, BayesSettings)


def test_documented_default_priors():
    p = Priors()
    assert (p.mu_loc, p.mu_scale, p.beta_scale, p.contextual_scale) == (0, 50, 10, 10)
    assert (p.sigma_scale, p.sigma_a_scale, p.alpha_scale) == (25, 50, 1000)


def test_overrides():
    s = settings_from_options(
        {"chains": 2, "draws": 200, "dense_mass": True, "prior_beta_scale": 2, "batch_size": 3}
    )
    assert (s.chains, s.draws, s.dense_mass, s.batch_size) == (2, 200, True, 3)
    assert s.priors.beta_scale == 2.0 and s.priors.mu_scale == 50.0


@pytest.mark.parametrize(
    "options, key",
    [
        ({"warmups": 1}, "warmups"),
        ({"prior_gamma_scale": 1}, "prior_gamma_scale"),
        ({"prior_mu_scale": 0}, "prior_mu_scale"),
        ({"prior_mu_loc": float("nan")}, "prior_mu_loc"),
        ({"draws": 3}, "draws"),
        ({"batch_size": 0}, "batch_size"),
        ({"ess_min": -1}, "ess_min"),
        ({"target_accept": 1.0}, "target_accept"),
        ({"max_tree_depth": 20}, "max_tree_depth"),
        ({"chains": True}, "chains"),
    ],
)
def test_invalid(options, key):
    with pytest.raises(ConfigError, match=key):
        settings_from_options(options)


def test_priors_from_options_ignores_other_keys():
    assert priors_from_options({"chains": 3, "prior_sigma_scale": 5}).sigma_scale == 5.0


def test_grid_batches_default_wider_on_cpu():
    # the grid waits for nothing in a batch: wider batches by default on CPU
    assert default_batch_size("cpu", engine="grid") == 64
    assert settings_from_options({"engine": "grid"}).batch_size == default_batch_size(engine="grid")
    assert settings_from_options({"engine": "grid", "batch_size": 8}).batch_size == 8
    assert default_batch_size("gpu", engine="grid") == default_batch_size("gpu")
