"""Shift invariance of the Bayesian models, where the model itself is invariant.

A Bayesian model with a proper prior on its intercept is not location
invariant: N(0, 50) on mu says where y lies. Two shifts leave the posterior of
(beta, contextual, sigma, sigma_a) unchanged exactly, and the collapsed models
must reproduce that to rounding:

* y + c with the prior location of the intercepts moved by c as well
  (``prior_mu_loc``, ``prior_alpha_loc``);
* x + c with priors on the intercepts so wide (sd 1e20) that the prior says
  nothing: mu then absorbs -(beta + contextual) c at no cost.

As in ``tests/frequentist/test_shift.py`` the base panel is the shifted one
minus c (exact), so the comparison measures the algorithm alone: the collapsed
densities, coefficient posteriors and their gradients at 1e-6 relative for a
shift of 1e9 and 1e-3 for 1e12, and the whole NUTS fit (same keys, so the same
trajectories) at 1e-6 for 1e9. Before the statistics were centred, the
coefficient posterior at x + 1e9 came from a Cholesky factor of a matrix with
entries of 1e18 beside entries of 1.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from bayes.conftest import SEED_DGP, SMALL

from mlmbias.bayes import collapsed as C
from mlmbias.bayes.priors import Priors
from mlmbias.groupstats import group_stats
from mlmbias.registry import Batch, get_method
from mlmbias.seeding import method_keys, replication_keys

TOLERANCE = {1e9: 1e-6, 1e12: 1e-3}
FLAT = 1e20
BAYES = ("bayes-pooled", "bayes-fe", "bayes-re", "bayes-mundlak", "bayes-rewb")


def shifted_panels(panel, c: float, which: str):
    """(base, shifted) panels: ``which`` of x, y or both shifted by c."""
    mask = panel.mask

    def move(a):
        moved = jnp.where(mask, a + c, 0.0)
        return moved, jnp.where(mask, moved - c, 0.0)

    x, y = panel.x[..., 0], panel.y
    xs, x0 = move(x) if which in ("x", "xy") else (x, x)
    ys, y0 = move(y) if which in ("y", "xy") else (y, y)
    return (
        dataclasses.replace(panel, x=x0[..., None], y=y0),
        dataclasses.replace(panel, x=xs[..., None], y=ys),
    )


def prior_options(c: float, which: str) -> tuple[dict, dict]:
    """Prior options of the base and the shifted fit that make them the same model."""
    flat = {"prior_mu_scale": FLAT, "prior_alpha_scale": FLAT} if "x" in which else {}
    moved = {"prior_mu_loc": c, "prior_alpha_loc": c} if "y" in which else {}
    return dict(flat), {**flat, **moved}


def priors_of(options: dict) -> Priors:
    return Priors(**{k.removeprefix("prior_"): v for k, v in options.items()})


def _one(stats, rep=0):
    return type(stats)(*(a[rep] for a in stats))


@pytest.mark.parametrize("which", ["y", "x", "xy"])
@pytest.mark.parametrize("shift", sorted(TOLERANCE))
@pytest.mark.parametrize("model", list(C.MODEL_INFO))
def test_collapsed_posterior_is_shift_invariant(seed_panel, model, shift, which):
    tol = TOLERANCE[shift]
    base_opts, shift_opts = prior_options(shift, which)
    out = []
    for panel, opts in zip(
        shifted_panels(seed_panel, shift, which), (base_opts, shift_opts), strict=True
    ):
        stats = _one(group_stats(panel))
        r = stats.n.shape[0]
        cs = C.class_sums(C.region_data(stats), jnp.arange(r), r)
        spec = C.linear_spec(model, priors_of(opts))
        res = {}
        for sigma, sigma_a in [(9.0, 4.0), (12.0, 30.0), (10.0, 0.5)]:
            u = jnp.log(jnp.array([sigma, sigma_a]))
            val, grad = jax.value_and_grad(C.logdensity_scales)(u, cs, spec)
            post = C.coefficient_posterior(spec, cs, *C.scales(spec, u)[:2])
            named = spec.readout @ post.mean
            cov = spec.readout @ C.coefficient_covariance(post) @ spec.readout.T
            res[sigma, sigma_a] = (val, grad, named[1:], cov[1:, 1:])
        out.append(res)
    base, moved = out
    for point in base:
        val0, grad0, mean0, cov0 = (np.asarray(a) for a in base[point])
        val1, grad1, mean1, cov1 = (np.asarray(a) for a in moved[point])
        assert abs(val1 - val0) <= tol * max(abs(val0), 1.0), (point, val0, val1)
        np.testing.assert_allclose(grad1, grad0, rtol=tol, atol=tol * np.abs(grad0).max())
        sd = np.sqrt(np.diag(cov0))
        assert np.all(np.abs(mean1 - mean0) <= tol * np.maximum(np.abs(mean0), sd)), point
        np.testing.assert_allclose(cov1, cov0, rtol=tol, atol=tol * sd.max() ** 2)


@pytest.mark.parametrize("which", ["y", "x"])
def test_nuts_fit_is_shift_invariant(seed_panel, which):
    """Every Bayesian method, end to end, at a shift of 1e9: the same keys give
    the same draws, so every summary agrees to 1e-6."""
    c = 1e9
    tol = TOLERANCE[c]
    base_opts, shift_opts = prior_options(c, which)
    panels = shifted_panels(seed_panel, c, which)
    rep_keys = replication_keys(11, SEED_DGP, np.arange(2))
    for method in BAYES:
        fits = []
        for panel, opts in zip(panels, (base_opts, shift_opts), strict=True):
            batch = Batch(method_keys(rep_keys, method), group_stats(panel))
            fits.append(get_method(method).load()(batch, 0.94, {**SMALL, **opts}))
        for estimand, cols in fits[0].items():
            se = np.asarray(cols["se"], float)
            for col, v0 in cols.items():
                v0 = np.asarray(v0)
                v1 = np.asarray(fits[1][estimand][col])
                if v0.dtype.kind != "f":
                    assert np.array_equal(v0, v1), (method, estimand, col)
                    continue
                scale = np.maximum(np.abs(v0), se if col in ("estimate", "lower", "upper") else 0)
                scale = np.where(scale > 0, scale, 1.0)
                assert np.array_equal(np.isnan(v0), np.isnan(v1)), (method, estimand, col)
                ok = ~np.isnan(v0)
                err = np.max(np.abs(v1 - v0)[ok] / scale[ok], initial=0.0)
                assert err <= tol, f"{method} {estimand} {col}: {v0} vs {v1}"


def _covariate_panel(rng):
    """p = 2, q = 1, 12 groups of 1 to 6 observations."""
    sizes = rng.integers(1, 7, 12)
    codes = np.repeat(np.arange(12), sizes)
    z = rng.normal(size=(12, 1))
    x = rng.normal(size=(12, 2))[codes] * 2 + rng.normal(size=(len(codes), 2))
    y = (
        x @ [1.0, -0.5]
        + 0.8 * z[codes, 0]
        + rng.normal(size=12)[codes]
        + rng.normal(size=len(codes))
    )
    return codes, x, y, z


_posterior = jax.jit(C.coefficient_posterior)
_density = jax.jit(jax.value_and_grad(C.logdensity_scales))
_covariance = jax.jit(C.coefficient_covariance)


@pytest.mark.parametrize("which", ["y", "x", "z"])
@pytest.mark.parametrize("model", list(C.MODEL_INFO))
def test_general_form_is_shift_invariant(model, which):
    """The general form (p = 2, q = 1) at a shift of 1e9 of y, of both x or of z
    (z, like x, with flat priors on the intercepts): densities, gradients and the
    coefficient posterior apart from the intercept to 1e-6."""
    from mlmbias.groupstats import group_stats_from_arrays

    c, tol = 1e9, TOLERANCE[1e9]
    codes, x, y, z = _covariate_panel(np.random.default_rng(4))
    moved = {"x": x + c, "y": y + c, "z": z + c}
    base = {k: moved[k] - c if k == which else v for k, v in (("x", x), ("y", y), ("z", z))}
    shifted = {k: moved[k] if k == which else v for k, v in (("x", x), ("y", y), ("z", z))}
    base_opts, shift_opts = prior_options(c, "x" if which == "z" else which)
    out = []
    for d, opts in ((base, base_opts), (shifted, shift_opts)):
        stats = _one(group_stats_from_arrays(codes, d["x"], d["y"], 12, d["z"]))
        rd = C.region_data(stats)
        cs = C.class_sums(rd, jnp.arange(12), 12)
        spec = C.linear_spec(model, priors_of(opts), 2, 1)
        res = []
        for sigma, sigma_a in [(1.0, 1.5), (3.0, 0.2)]:
            u = jnp.log(jnp.array([sigma, sigma_a]))
            val, grad = _density(u, cs, spec)
            post = _posterior(spec, cs, *C.scales(spec, u)[:2])
            named = spec.readout @ post.mean
            cov = spec.readout @ _covariance(post) @ spec.readout.T
            res.append((val, grad, named[1:], cov[1:, 1:]))
        out.append(res)
    for (val0, grad0, mean0, cov0), (val1, grad1, mean1, cov1) in zip(*out, strict=True):
        val0, grad0, mean0, cov0, val1, grad1, mean1, cov1 = map(
            np.asarray, (val0, grad0, mean0, cov0, val1, grad1, mean1, cov1)
        )
        assert abs(val1 - val0) <= tol * max(abs(val0), 1.0), (val0, val1)
        np.testing.assert_allclose(grad1, grad0, rtol=tol, atol=tol * np.abs(grad0).max())
        sd = np.sqrt(np.diag(cov0))
        assert np.all(np.abs(mean1 - mean0) <= tol * np.maximum(np.abs(mean0), sd))
        np.testing.assert_allclose(cov1, cov0, rtol=tol, atol=tol * sd.max() ** 2)
