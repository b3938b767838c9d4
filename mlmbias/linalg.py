"""Small dense linear algebra in plain JAX operations: Cholesky, triangular solves, eigh.

The estimators factor matrices of a few rows (K = 1 + 2p + q coefficients) once
per replication, vmapped over thousands of replications. jaxlib's CPU LAPACK
kernels (jaxlib 0.10) split such a batch across XLA's intra-op thread pool and
block until the pieces finish; when the program runs as many independent
LAPACK calls at once as the pool has threads (2 on a 2-core machine), every
thread waits for work queued behind it and the process hangs for ever
(observed: ``mundlak-reml`` on 1000 replications with two covariates; gdb shows
every pool thread in ``ParallelBatchMap`` / ``BlockingCounter::Wait``).

These versions loop over rows and columns in ``fori_loop`` (a small program
whatever K, cheap to compile and to differentiate twice, as the REML Newton
steps do) for K up to ``UNROLLED``, so they never call LAPACK and vectorise on
any device. Larger matrices fall back to ``jnp.linalg``.

Every function works on one matrix (no batch axes): vmap adds them. Nothing
raises: a matrix that is not positive definite gives NaN.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

UNROLLED = 16  # largest K done here; beyond it jnp.linalg (LAPACK on CPU)
JACOBI_SWEEPS = 12  # cyclic Jacobi converges quadratically: ample for K <= 16 in float64


def cholesky(a: jax.Array) -> jax.Array:
    """Lower Cholesky factor of a symmetric positive definite (K, K) matrix
    (NaN entries where it is not positive definite).

    Column by column in a ``fori_loop`` of K steps (left-looking): a small,
    fixed program whatever K, cheap to compile and to differentiate twice.
    """
    a = jnp.asarray(a)
    k = a.shape[-1]
    if k > UNROLLED:
        return jnp.linalg.cholesky(a)
    idx = jnp.arange(k)

    def column(j, low):
        col = a[:, j] - low @ low[j, :]  # columns >= j of low are still 0
        d = jnp.sqrt(col[j])
        return low.at[:, j].set(jnp.where(idx >= j, col / d, 0.0))

    return jax.lax.fori_loop(0, k, column, jnp.zeros_like(a))


def solve_lower(low: jax.Array, b: jax.Array) -> jax.Array:
    """x with ``low @ x = b`` for lower-triangular ``low`` (K, K); b (K,) or (K, M)."""
    low, b = jnp.asarray(low), jnp.asarray(b)
    k = low.shape[-1]
    if k > UNROLLED:
        return jax.scipy.linalg.solve_triangular(low, b, lower=True)

    def row(i, x):  # rows >= i of x are still 0
        return x.at[i].set((b[i] - low[i, :] @ x) / low[i, i])

    return jax.lax.fori_loop(0, k, row, jnp.zeros_like(b))


def solve_lower_t(low: jax.Array, b: jax.Array) -> jax.Array:
    """x with ``low.T @ x = b`` for lower-triangular ``low`` (K, K); b (K,) or (K, M)."""
    low, b = jnp.asarray(low), jnp.asarray(b)
    k = low.shape[-1]
    if k > UNROLLED:
        return jax.scipy.linalg.solve_triangular(low, b, lower=True, trans=1)

    def row(step, x):  # rows <= i of x are still 0
        i = k - 1 - step
        return x.at[i].set((b[i] - low[:, i] @ x) / low[i, i])

    return jax.lax.fori_loop(0, k, row, jnp.zeros_like(b))


def cho_solve(low: jax.Array, b: jax.Array) -> jax.Array:
    """x with ``A x = b`` where ``low`` is A's lower Cholesky factor."""
    return solve_lower_t(low, solve_lower(low, b))


def inv_logdet(a: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Inverse and log determinant of a symmetric positive definite (K, K) matrix
    (NaN where it is not positive definite).

    The sweep operator (Goodnight 1979) on every index in turn, one ``fori_loop``
    of K rank-one updates: after the last sweep the matrix holds -A^-1, and the
    pivots multiply to det A. Without pivoting, as Cholesky: fine for the
    positive definite, unit-diagonal scaled matrices it is given here.
    """
    a = jnp.asarray(a)
    k = a.shape[-1]
    if k > UNROLLED:
        low = jnp.linalg.cholesky(a)
        inv = jax.scipy.linalg.cho_solve((low, True), jnp.eye(k, dtype=a.dtype))
        return inv, 2.0 * jnp.sum(jnp.log(jnp.diagonal(low)))
    idx = jnp.arange(k)

    def sweep(j, state):
        m, logdet = state
        piv = m[j, j]
        col = m[:, j] / piv
        row = m[j, :]
        swept = m - jnp.outer(col, row)
        on_j = idx == j
        swept = jnp.where(on_j[:, None], row[None, :] / piv, swept)
        swept = jnp.where(on_j[None, :], col[:, None], swept)
        swept = jnp.where(on_j[:, None] & on_j[None, :], -1.0 / piv, swept)
        return swept, logdet + jnp.log(piv)

    m, logdet = jax.lax.fori_loop(0, k, sweep, (a, jnp.zeros((), a.dtype)))
    return -m, logdet


def eigh(a: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Eigenvalues (ascending) and eigenvectors (columns) of a symmetric (K, K) matrix.

    Cyclic Jacobi rotations, ``JACOBI_SWEEPS`` sweeps (a fixed count, as jit
    needs); accurate to rounding for the small, well-scaled matrices here.
    """
    a = jnp.asarray(a)
    k = a.shape[-1]
    if k > UNROLLED:
        return jnp.linalg.eigh(a)
    if k == 1:
        return a[0], jnp.ones((1, 1), a.dtype)
    if k == 2:  # closed form: one rotation diagonalises a 2 x 2 matrix
        b = 0.5 * (a[0, 1] + a[1, 0])
        half = 0.5 * (a[0, 0] - a[1, 1])
        r = jnp.hypot(half, b)
        mid = 0.5 * (a[0, 0] + a[1, 1])
        angle = 0.5 * jnp.arctan2(b, half)  # rotation taking e_0 to the larger eigenvector
        c, s = jnp.cos(angle), jnp.sin(angle)
        vec = jnp.stack([jnp.stack([-s, c]), jnp.stack([c, s])])
        return jnp.stack([mid - r, mid + r]), vec
    eye = jnp.eye(k, dtype=a.dtype)

    pairs = np.array([(p, q) for p in range(k - 1) for q in range(p + 1, k)])

    def rotate(r, state):
        m, v = state
        p, q = jnp.asarray(pairs[:, 0])[r], jnp.asarray(pairs[:, 1])[r]
        apq = m[p, q]
        small = jnp.abs(apq) <= 1e-300
        theta = (m[q, q] - m[p, p]) / (2.0 * jnp.where(small, 1.0, apq))
        t = jnp.sign(theta) / (jnp.abs(theta) + jnp.sqrt(theta**2 + 1.0))
        t = jnp.where(theta == 0, 1.0, t)
        t = jnp.where(small, 0.0, t)
        c = 1.0 / jnp.sqrt(t**2 + 1.0)
        s = t * c
        g = eye.at[p, p].set(c).at[q, q].set(c).at[p, q].set(s).at[q, p].set(-s)
        return (g.T @ m @ g, v @ g)

    def sweep(_, state):
        return jax.lax.fori_loop(0, len(pairs), rotate, state)

    m, v = jax.lax.fori_loop(0, JACOBI_SWEEPS, sweep, (0.5 * (a + a.T), eye))
    lam = jnp.diagonal(m)
    order = jnp.argsort(lam)
    return lam[order], v[:, order]
