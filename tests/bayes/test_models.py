"""The observation-level reference models: masking, sites, and the registry's import cost."""

import functools
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.infer.util import log_density

from mlmbias.bayes.models import MODELS

PARAMS = {
    "mu": 4.0,
    "beta": 1.3,
    "contextual": -0.8,
    "beta_between": 0.4,
    "sigma": 9.0,
    "sigma_a": 3.0,
}


@pytest.mark.parametrize("model", list(MODELS))
def test_padding_is_masked_out(seed_panel, model):
    """Padded observations (mask False) change neither the density nor the region means."""
    mask = np.asarray(seed_panel.mask[0])
    region = np.asarray(seed_panel.region[0])
    x = np.asarray(seed_panel.x[0, :, 0])
    y = np.asarray(seed_panel.y[0])
    r = seed_panel.n_regions
    fn = functools.partial(MODELS[model], n_regions=r)
    params = {k: jnp.asarray(v) for k, v in PARAMS.items()}
    params["z"] = jnp.linspace(-1.0, 1.0, r)
    # padding with junk values that would matter if not masked
    x_pad = np.where(mask, x, 1e3)
    y_pad = np.where(mask, y, -1e3)
    padded, tr_pad = log_density(fn, (region, x_pad, y_pad, mask), {}, params)
    exact, tr = log_density(fn, (region[mask], x[mask], y[mask]), {}, params)
    assert float(padded) == pytest.approx(float(exact), rel=1e-12)
    if "alpha" in tr:
        np.testing.assert_allclose(tr_pad["alpha"]["value"], tr["alpha"]["value"], rtol=1e-12)


def test_registry_does_not_import_numpyro():
    code = (
        "import sys, mlmbias.registry as r; r.methods(); "
        "assert 'numpyro' not in sys.modules, 'numpyro imported'; "
        "assert len(r.method_names('bayes')) == 7"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
