"""Observation-level NumPyro models: the reference forms, as an analyst writes them.

Each model takes one panel as flat arrays: ``region`` (obs,) int ids in [0, R),
``x`` (ad spend), ``y`` (profit), an optional boolean ``mask`` for padded
observations, and ``n_regions``. Region intercepts are latent and non-centred
(alpha_r = location + scale * z_r, z_r ~ N(0, 1)), which avoids the funnel of
the centred form. The priors are those of :mod:`mlmbias.bayes.priors`, the same
as the collapsed forms of :mod:`mlmbias.bayes.collapsed`, so both must give the
same posterior (tests/bayes/test_agreement.py).

``rs_model`` (random intercepts and a random slope on the first x, the reference
of :mod:`mlmbias.bayes.random_slopes`) is outside ``MODELS``: it takes x (obs, p),
z and a ``contextual`` switch.

Sites: ``mu``, ``beta``, ``contextual`` (Mundlak), ``beta_between`` (within-
between), ``sigma``, ``sigma_a``, ``z`` and the deterministic ``alpha`` (region
intercepts in y = alpha_r + beta x form; for rewb, alpha_r = mu + (beta_between
- beta) xbar_r + a_r) and, for rewb, the deterministic ``contextual``.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist

from mlmbias.bayes.priors import Priors


def _region_means(region, x, mask, n_regions):
    w = jnp.ones_like(x) if mask is None else mask.astype(x.dtype)
    n = jax.ops.segment_sum(w, region, num_segments=n_regions)
    sx = jax.ops.segment_sum(w * x, region, num_segments=n_regions)
    return sx / jnp.maximum(n, 1.0)


def _likelihood(mean, sigma, y, mask):
    with numpyro.plate("obs", y.shape[0]):
        with numpyro.handlers.mask(mask=True if mask is None else mask):
            numpyro.sample("y", dist.Normal(mean, sigma), obs=y)


def _z(n_regions):
    with numpyro.plate("regions", n_regions):
        return numpyro.sample("z", dist.Normal(0.0, 1.0))


def pooled_model(region, x, y, mask=None, *, n_regions: int, priors: Priors | None = None):
    """One intercept for all regions: y = mu + beta x + e."""
    p = priors or Priors()
    mu = numpyro.sample("mu", dist.Normal(p.mu_loc, p.mu_scale))
    beta = numpyro.sample("beta", dist.Normal(p.beta_loc, p.beta_scale))
    sigma = numpyro.sample("sigma", dist.HalfNormal(p.sigma_scale))
    _likelihood(mu + beta * x, sigma, y, mask)


def fe_model(region, x, y, mask=None, *, n_regions: int, priors: Priors | None = None):
    """Dummy-variable model: independent alpha_r ~ N(alpha_loc, alpha_scale^2), fixed prior."""
    p = priors or Priors()
    beta = numpyro.sample("beta", dist.Normal(p.beta_loc, p.beta_scale))
    sigma = numpyro.sample("sigma", dist.HalfNormal(p.sigma_scale))
    alpha = numpyro.deterministic("alpha", p.alpha_loc + p.alpha_scale * _z(n_regions))
    _likelihood(alpha[region] + beta * x, sigma, y, mask)


def re_model(region, x, y, mask=None, *, n_regions: int, priors: Priors | None = None):
    """Random intercepts (the seed's naive model): alpha_r ~ N(mu, sigma_a^2)."""
    p = priors or Priors()
    mu = numpyro.sample("mu", dist.Normal(p.mu_loc, p.mu_scale))
    beta = numpyro.sample("beta", dist.Normal(p.beta_loc, p.beta_scale))
    sigma = numpyro.sample("sigma", dist.HalfNormal(p.sigma_scale))
    sigma_a = numpyro.sample("sigma_a", dist.HalfNormal(p.sigma_a_scale))
    alpha = numpyro.deterministic("alpha", mu + sigma_a * _z(n_regions))
    _likelihood(alpha[region] + beta * x, sigma, y, mask)


def mundlak_model(region, x, y, mask=None, *, n_regions: int, priors: Priors | None = None):
    """Random intercepts plus the region mean of x: alpha_r ~ N(mu + gamma xbar_r, sigma_a^2).

    gamma is the site ``contextual``.
    """
    p = priors or Priors()
    xbar = _region_means(region, x, mask, n_regions)
    mu = numpyro.sample("mu", dist.Normal(p.mu_loc, p.mu_scale))
    beta = numpyro.sample("beta", dist.Normal(p.beta_loc, p.beta_scale))
    gamma = numpyro.sample("contextual", dist.Normal(p.contextual_loc, p.contextual_scale))
    sigma = numpyro.sample("sigma", dist.HalfNormal(p.sigma_scale))
    sigma_a = numpyro.sample("sigma_a", dist.HalfNormal(p.sigma_a_scale))
    alpha = numpyro.deterministic("alpha", mu + gamma * xbar + sigma_a * _z(n_regions))
    _likelihood(alpha[region] + beta * x, sigma, y, mask)


def rewb_model(region, x, y, mask=None, *, n_regions: int, priors: Priors | None = None):
    """Within-between: y = mu + beta (x - xbar_r) + beta_between xbar_r + a_r + e."""
    p = priors or Priors()
    xbar = _region_means(region, x, mask, n_regions)
    mu = numpyro.sample("mu", dist.Normal(p.mu_loc, p.mu_scale))
    beta = numpyro.sample("beta", dist.Normal(p.beta_loc, p.beta_scale))
    beta_b = numpyro.sample("beta_between", dist.Normal(p.between_loc, p.between_scale))
    sigma = numpyro.sample("sigma", dist.HalfNormal(p.sigma_scale))
    sigma_a = numpyro.sample("sigma_a", dist.HalfNormal(p.sigma_a_scale))
    numpyro.deterministic("contextual", beta_b - beta)
    a = sigma_a * _z(n_regions)
    alpha = numpyro.deterministic("alpha", mu + (beta_b - beta) * xbar + a)
    _likelihood(alpha[region] + beta * x, sigma, y, mask)


def rs_model(
    region,
    x,
    y,
    mask=None,
    *,
    n_regions: int,
    z=None,
    contextual: bool = False,
    priors: Priors | None = None,
):
    """Random intercepts and a random slope on the first x (lme4's ``(1 + x0 | g)``):

        y = mu + x'beta [+ xbar_r'gamma] + z_r'delta + u0_r + u1_r x0 + e,
        (u0_r, u1_r) ~ N(0, diag(sigma_a, sigma_b) R diag(sigma_a, sigma_b)),

    R the correlation matrix of ``rho_ab`` ~ LKJ(lkj_eta), i.e. (rho_ab + 1) / 2 ~
    Beta(eta, eta). ``x`` is (obs,) or (obs, p), ``z`` (n_regions, q) or None;
    ``contextual`` adds the region means of every x (rs-mundlak). Sites: ``mu``,
    ``beta`` (p,), ``contextual`` (p,), ``delta`` (q,), ``sigma``, ``sigma_a``,
    ``sigma_b``, ``rho_ab``, ``w`` (n_regions, 2) standard normals, non-centred:
    (u0_r, u1_r) = L w_r with L the Cholesky factor of the covariance. The
    reference of :mod:`mlmbias.bayes.random_slopes`.
    """
    pr = priors or Priors()
    x = x[:, None] if x.ndim == 1 else x
    p = x.shape[1]
    mu = numpyro.sample("mu", dist.Normal(pr.mu_loc, pr.mu_scale))
    beta = numpyro.sample("beta", dist.Normal(pr.beta_loc, pr.beta_scale).expand([p]))
    mean = mu + x @ beta
    if contextual:
        xbar = jnp.stack([_region_means(region, x[:, j], mask, n_regions) for j in range(p)], -1)
        gamma = numpyro.sample(
            "contextual", dist.Normal(pr.contextual_loc, pr.contextual_scale).expand([p])
        )
        mean = mean + (xbar @ gamma)[region]
    if z is not None and z.shape[-1] > 0:
        delta = numpyro.sample(
            "delta", dist.Normal(pr.beta_loc, pr.beta_scale).expand([z.shape[-1]])
        )
        mean = mean + (z @ delta)[region]
    sigma = numpyro.sample("sigma", dist.HalfNormal(pr.sigma_scale))
    sigma_a = numpyro.sample("sigma_a", dist.HalfNormal(pr.sigma_a_scale))
    sigma_b = numpyro.sample("sigma_b", dist.HalfNormal(pr.sigma_b_scale))
    rho = numpyro.sample(
        "rho_ab",
        dist.TransformedDistribution(
            dist.Beta(pr.lkj_eta, pr.lkj_eta), dist.transforms.AffineTransform(-1.0, 2.0)
        ),
    )
    with numpyro.plate("regions", n_regions):
        w = numpyro.sample("w", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
    u0 = sigma_a * w[:, 0]
    u1 = sigma_b * (rho * w[:, 0] + jnp.sqrt(jnp.clip(1.0 - rho**2, 0.0)) * w[:, 1])
    _likelihood(mean + u0[region] + u1[region] * x[:, 0], sigma, y, mask)


MODELS: dict[str, Callable[..., None]] = {
    "pooled": pooled_model,
    "fe": fe_model,
    "re": re_model,
    "mundlak": mundlak_model,
    "rewb": rewb_model,
}
