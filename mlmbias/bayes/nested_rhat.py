"""Nested R-hat: convergence of many short chains grouped in superchains.

Margossian, Hoffman, Sountsov, Riou-Durand, Vehtari and Gelman (2024),
"Nested R-hat: assessing the convergence of Markov chain Monte Carlo when
running many short chains", Bayesian Analysis, doi:10.1214/24-BA1453
(arXiv:2110.13017). The K x M chains are grouped into K superchains of M
chains; the chains of a superchain start from the same point, the superchains
from different (overdispersed) points. With N draws per chain, f_nmk the
draw n of chain m of superchain k, chain means f_.mk, superchain means f_..k
and the overall mean f_...:

    B_nu = 1/(K-1) sum_k (f_..k - f_...)^2                  between superchains
    Btilde_k = 1/(M-1) sum_m (f_.mk - f_..k)^2              (0 when M = 1)
    Wtilde_k = 1/M sum_m 1/(N-1) sum_n (f_nmk - f_.mk)^2    (0 when N = 1)
    W_nu = 1/K sum_k (Btilde_k + Wtilde_k)                  within superchains
    nR-hat = sqrt(1 + B_nu / W_nu)

(the paper's eqs. for B_nu, W_nu and nR-hat; the same as the ``rhat_nested``
of Stan's posterior package). Unlike split R-hat it needs no long chains: the
within-superchain variance includes the variance between the chains of a
superchain, so N = 1 works. Once the chains have forgotten their starting
points, B_nu estimates the variance of a superchain's mean, Var(f) / ESS_k
with ESS_k the effective sample size of a superchain's M x N draws, and W_nu
estimates Var(f), so nR-hat^2 - 1 ~ 1 / ESS_k: the threshold 1 + delta asks
for ESS_k of about 1 / (2 delta) per superchain, i.e. 50 for delta = 0.01.
The paper frames the check as nR-hat < 1 + delta for a small delta; we take
delta = 0.01 (``chees_nrhat_max``, 1.01: the threshold Vehtari et al. 2021 give
for R-hat) on every sampled quantity;
B_nu has K - 1 degrees of freedom, so at stationarity a replication whose
superchains have ESS_k well above 50 fails only by chance (for K = 4 and
ESS_k = 500, B_nu / W_nu > 0.0201 needs a chi-square_3 / 3 above 10:
probability about 1e-6 per quantity).

A constant quantity (a fixed sigma_a, an unused slot) has B_nu = W_nu = 0 and
nR-hat 1; a non-finite draw gives NaN, which fails any threshold.
"""

from __future__ import annotations

import jax.numpy as jnp


def nested_rhat(x, superchains: int):
    """Nested R-hat of draws ``x`` (..., chains, draws), the chains ordered by
    superchain: chains ``k * M .. (k + 1) * M - 1`` form superchain k, M =
    chains / ``superchains``. Returns an array of shape ``x.shape[:-2]``.

    Works on numpy and JAX arrays (jnp; pure, usable under jit and vmap).
    """
    x = jnp.asarray(x)
    *lead, chains, n = x.shape
    k = superchains
    if k < 2 or chains % k:
        raise ValueError(f"{chains} chains do not form {k} >= 2 equal superchains")
    m = chains // k
    x = x.reshape(*lead, k, m, n)
    chain_mean = x.mean(axis=-1)  # (..., K, M)
    super_mean = chain_mean.mean(axis=-1)  # (..., K)
    overall = super_mean.mean(axis=-1)  # (...)
    b_nu = jnp.sum((super_mean - overall[..., None]) ** 2, axis=-1) / (k - 1)
    if m > 1:
        b_tilde = jnp.sum((chain_mean - super_mean[..., None]) ** 2, axis=-1) / (m - 1)
    else:
        b_tilde = jnp.zeros_like(super_mean)
    if n > 1:
        chain_var = jnp.sum((x - chain_mean[..., None]) ** 2, axis=-1) / (n - 1)
        w_tilde = chain_var.mean(axis=-1)
    else:
        w_tilde = jnp.zeros_like(super_mean)
    w_nu = jnp.mean(b_tilde + w_tilde, axis=-1)
    constant = (b_nu == 0) & (w_nu == 0)
    ratio = b_nu / jnp.where(constant, 1.0, w_nu)
    return jnp.sqrt(1.0 + ratio)
