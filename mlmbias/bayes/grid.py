"""The ``grid`` engine: the exact posterior of the collapsed models by quadrature.

With the intercepts and the regression coefficients integrated out
(:mod:`mlmbias.bayes.collapsed`, ``collapse = "coefficients"``) the posterior
of u = (log sigma, log sigma_a) is known up to a constant, two-dimensional for
re, mundlak and rewb and one-dimensional for pooled and fe (no sigma_a; their
grid is 2-D all the same, over u and the dummy N(0, 1) coordinate that
``collapsed.scales`` gives them as under NUTS, so that one compiled program
serves all five models: 32 x 32 instead of 32 cells costs little). Instead
of sampling it, this engine integrates it on a grid, per replication, inside one
jitted program vmapped over a batch of replications:

1. **Mode.** ``NEWTON_STEPS`` Newton steps on log p(u | y) from the centre NUTS
   starts from (``draws._initial``). Where the Hessian H is not negative
   definite the step is |H|^-1 g (its eigenvalues' signs flipped: a gradient
   step scaled per direction by the curvature); every step is capped at
   ``MAX_STEP`` (log units) and followed by a line search over ``LINE_SEARCH``
   halvings that keeps the best point (or stays put), so the density never
   decreases. The mode is accepted (``mode_ok``) when H is negative definite
   there and the Newton decrement g' (-H)^-1 g is below ``MODE_TOL``.
2. **Box.** Whitened coordinates w, u = mode + L^-T w with -H = L L' at the
   mode (w is N(0, I) for a Gaussian posterior; w1 moves log sigma_a). Along
   each half-axis the box ends where the log density has fallen ``MARGIN`` (12)
   below the mode: distances 1, 2, 4, ... (``DOUBLINGS`` of them) bracket it,
   ``BISECTIONS`` bisections narrow it, the outer end is kept. The left tail in
   log sigma_a is exponential, not Gaussian (p(v) ~ e^v as v -> -inf where the
   data cannot tell sigma_a from 0) and tens of SDs long, and along it the
   conditional mode of log sigma bends away from the whitened axis: a fixed
   +-k SD box loses its mass. So (2-D) the w1 half-axes follow the *ridge*, the
   mode of w0 given w1 (``RIDGE_STEPS`` 1-D Newton steps), and the grid is
   sheared onto it (w0 measured from the ridge, interpolated linearly between
   ``RIDGE_STATIONS`` stations; a shear has Jacobian 1). Then, up to
   ``WIDEN_ROUNDS`` times, a face of the box whose G/2-grid cells are still
   within the margin of the mode moves out by half the box's width. A fall of
   12 leaves beyond the edge about e^-12 = 6e-6 of the mode's density.
3. **Grid.** G cells per axis (``grid_size``, default 32; G^d cells), uniform
   in z with w = sinh(0.3 z) / 0.3 per axis (``STRETCH``): cells of about 1/4
   SD at the mode (for a box of +-5 SD) that grow exponentially into a long
   tail, so one G serves a Gaussian posterior and a 40-SD tail alike; the
   Jacobian cosh(0.3 z) enters the cells' masses. Means and SDs of u and the
   means of the reported quantities (E[readout theta | u] comes with the
   density) are midpoint sums over the cells.
4. **Draws.** A proposal picks a cell by its mass under a log-linear model of
   the density in the cell (slopes from central differences of the neighbours)
   and a point inside it from that exponentially tilted uniform, exactly (by
   inverse CDF); theta is then drawn exactly from its Gaussian conditional
   (``collapsed.coefficient_posterior`` and ``spec.readout``, as after NUTS).
   The in-cell model is only approximate where the density bends within a
   cell (at G = 32 it moved the SD of beta by up to 6% on a long-tailed
   posterior), so the proposals are corrected by independence
   Metropolis-Hastings, per chain, with the exact log density at each proposal:
   the draws' distribution is the posterior restricted to the box, and nearly
   every proposal is accepted (``Draws.accept_prob``, typically 0.95 to 1), so
   the draws are nearly independent. ``Draws.values`` has NUTS's shape (rep,
   chains, draws, quantities) with chains x draws draws, so R-hat and ESS in
   the summaries stay computable (near 1 and near chains x draws).

Replication i with key k_i gives the same numbers whatever else shares its
batch (module docstring of :mod:`mlmbias.bayes.draws`): the computation is a
function of its own data and key, in batches and size-class tiers as for NUTS
(``draws.run_batches``).

Accuracy (tests/bayes/test_grid.py and a 301 x 301 brute-force grid): at G = 32
the posterior means of log sigma, log sigma_a and beta are within 0.3% of a
posterior SD and their SDs within 0.3%, on R = 10 and R = 50 panels, including
ones whose log sigma_a tail reaches 40 SDs.

**Diagnostics** (``Draws.diagnostics``; ``Draws.checks`` is their verdict and
replaces R-hat and ESS in ``converged``):

* ``edge_mass``: the grid's probability in the cells on the box's faces. It is
  large when the box cuts off posterior mass (a density still high at the
  edge). ``grid_edge_tol`` (default 1e-3): with the default margin the faces
  hold 1e-14 to 1e-6 on the seed's panels (R = 10 and 50), so 1e-3 flags only
  a box that truly truncates (the mass beyond the box is of the order of the
  face mass times the tail's length in cells; a box cut at the mode holds
  10% or more on its faces).
* ``refine_change``: the largest change, in posterior SDs, of the posterior
  means and SDs of u and of the posterior means of every reported quantity
  (mu, beta, contextual, delta; SDs of these from the draws) between the G grid
  and the G/2 grid over the same box, both from the cells' masses, not from
  draws. The G/2 grid's error is several times the G grid's (second order or
  better), so the change bounds the G grid's own error from above.
  ``grid_refine_tol`` (default 0.05 SD): at G = 32 the change is typically
  1e-5 to 2e-2 SD on the seed's panels while the G grid's own error is below
  0.003 SD; a posterior the grid cannot resolve changes by tenths of an SD
  (G = 16 on a long-tailed posterior: 0.06 to 0.09; a box without the
  ridge's shear at G = 32: 0.2 to 0.4). 0.05 SD is the error, in an estimate,
  that a study's Monte Carlo SE would never show.
* ``mode_ok``: the Newton iteration converged (see 1).
* ``accept``: the independence Metropolis-Hastings acceptance rate per chain
  (also ``Draws.accept_prob``); informative, not part of the check.
* ``u_mean``, ``u_sd``, ``coef_mean``, ``coef_sd``: the exact posterior means
  and SDs of u and of the reported quantities from the cells' masses (the
  coefficients' SDs as E[Var(. | u)] + Var(E[. | u]), Var(. | u) from theta's
  Gaussian conditional); ``sampler_error`` compares an MCMC run with them.

``checks = mode_ok & edge_mass <= grid_edge_tol & refine_change <=
grid_refine_tol`` and every draw finite. ``divergences`` is 0, ``step_size``
NaN, ``num_steps`` 0, and ``batch_steps`` zeros (no lockstep: a batch's
replications do the same fixed work; ``lockstep_waste`` is NaN).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from mlmbias.bayes import collapsed as C
from mlmbias.bayes.draws import Draws, _initial, named_outputs, quantity_keys, run_batches
from mlmbias.bayes.options import BayesSettings
from mlmbias.groupstats import GroupStats

MARGIN = 12.0  # log-density fall from the mode that ends the box
NEWTON_STEPS = 30
LINE_SEARCH = 8  # step lengths 1, 1/2, ..., 1/128
MAX_STEP = 2.0  # longest Newton or gradient step, in log units
MODE_TOL = 1e-8  # Newton decrement at which the mode is accepted
DOUBLINGS = 8  # box half-widths 1, 2, ..., 128 whitened units
BISECTIONS = 6
RIDGE_STATIONS = 9  # conditional modes along the tail axis, interpolated linearly
RIDGE_STEPS = 6
WIDEN_ROUNDS = 4  # rounds that move out a face of the box still above the margin
STRETCH = 0.3  # the grid is uniform in z, w = sinh(STRETCH z) / STRETCH


def _neg_def(h: jax.Array) -> jax.Array:
    """Whether a 1 x 1 or 2 x 2 symmetric matrix is negative definite (no LAPACK)."""
    if h.shape[0] == 1:
        return h[0, 0] < 0
    return (h[0, 0] < 0) & (h[0, 0] * h[1, 1] - h[0, 1] ** 2 > 0)


def _solve(h: jax.Array, g: jax.Array) -> jax.Array:
    """h^-1 g for a 1 x 1 or 2 x 2 matrix (Cramer's rule)."""
    if h.shape[0] == 1:
        return g / h[0, 0]
    det = h[0, 0] * h[1, 1] - h[0, 1] ** 2
    return jnp.stack([h[1, 1] * g[0] - h[0, 1] * g[1], h[0, 0] * g[1] - h[0, 1] * g[0]]) / det


def _abs_matrix(h: jax.Array) -> jax.Array:
    """|H| = (H^2)^(1/2) of a 1 x 1 or 2 x 2 symmetric matrix (eigenvalues made
    positive, eigenvectors kept), by the 2 x 2 square-root formula: sqrt(M) =
    (M + sqrt(det M) I) / sqrt(tr M + 2 sqrt(det M))."""
    if h.shape[0] == 1:
        return jnp.abs(h)
    m = h @ h
    root_det = jnp.abs(h[0, 0] * h[1, 1] - h[0, 1] ** 2)
    return (m + root_det * jnp.eye(2)) / jnp.sqrt(jnp.trace(m) + 2.0 * root_det)


def _whitener(a: jax.Array) -> jax.Array:
    """W = L^-T for a = L L' (1 x 1 or 2 x 2, positive definite): u = mode + W w."""
    if a.shape[0] == 1:
        return 1.0 / jnp.sqrt(a)
    l00 = jnp.sqrt(a[0, 0])
    l10 = a[1, 0] / l00
    l11 = jnp.sqrt(a[1, 1] - l10**2)
    return jnp.array([[1.0 / l00, -l10 / (l00 * l11)], [0.0, 1.0 / l11]])


def _mode(f, u0: jax.Array):
    """(mode, log density there, Hessian there, converged) by safeguarded Newton from u0."""
    grad = jax.grad(f)
    # the Hessian forward over the gradient, the gradient as its by-product: one pass
    grad_hess = jax.jacfwd(lambda u: (grad(u), grad(u)), has_aux=True)
    ts = 0.5 ** jnp.arange(LINE_SEARCH)

    def step(carry, _):
        u, fu = carry
        h, g = grad_hess(u)
        # Newton where H is negative definite; elsewhere |H|^-1 g, the eigenvalues'
        # signs flipped: an ascent step scaled by each direction's curvature
        direction = _solve(_abs_matrix(h) + 1e-8 * jnp.eye(u.shape[0]), g)
        direction = jnp.where(jnp.all(jnp.isfinite(direction)), direction, 0.0)
        norm = jnp.sqrt(jnp.sum(direction**2))
        direction = direction * jnp.minimum(1.0, MAX_STEP / jnp.maximum(norm, 1e-300))
        cand = u[None, :] + ts[:, None] * direction[None, :]
        fc = jax.vmap(f)(cand)
        fc = jnp.where(jnp.isfinite(fc), fc, -jnp.inf)
        best = jnp.argmax(fc)
        better = fc[best] > fu
        return (jnp.where(better, cand[best], u), jnp.where(better, fc[best], fu)), None

    (u, fu), _ = jax.lax.scan(step, (u0, f(u0)), None, length=NEWTON_STEPS)
    h, g = grad_hess(u)
    nd = _neg_def(h)
    decrement = -g @ _solve(jnp.where(nd, h, -jnp.eye(u.shape[0])), g)
    ok = nd & jnp.isfinite(fu) & (decrement < MODE_TOL)
    return u, fu, h, ok


def _edge(path, fmax, margin):
    """The distance t at which the log density ``path(t)`` (t >= 0, whitened
    units) falls ``margin`` below ``fmax``: bracketed by doubling, narrowed by
    bisection, the outer end kept (the last doubling when it never falls).

    One loop evaluates ``path`` once per turn (DOUBLINGS doublings, then
    BISECTIONS bisections), so that its code, which holds the ridge's second
    derivatives, is compiled once (a vmapped doubling plus a bisection loop
    compiled it twice)."""

    def below(t):
        return ~(path(t) > fmax - margin)  # NaN counts as below

    def turn(i, state):
        found, lo, hi = state
        doubling = i < DOUBLINGS
        r = 2.0 ** jnp.minimum(i, DOUBLINGS - 1).astype(float)
        t = jnp.where(doubling, r, 0.5 * (lo + hi))
        out = below(t)
        # doubling: the first distance below brackets the edge with the one before
        first = doubling & ~found & out
        lo_d = jnp.where(first, jnp.where(i > 0, r / 2.0, 0.0), lo)
        hi_d = jnp.where(first, r, hi)
        # bisection: keep the half that holds the edge
        lo_b = jnp.where(out, lo, t)
        hi_b = jnp.where(out, t, hi)
        return (
            found | first,
            jnp.where(doubling, lo_d, lo_b),
            jnp.where(doubling, hi_d, hi_b),
        )

    last = 2.0 ** (DOUBLINGS - 1)
    init = (jnp.asarray(False), jnp.asarray(0.0), jnp.asarray(last))
    found, _, hi = jax.lax.fori_loop(0, DOUBLINGS + BISECTIONS, turn, init)
    return jnp.where(found, hi, last)


def _cond_mode(g) -> jax.Array:
    """The maximiser of a scalar function ``g`` of one whitened coordinate, by
    ``RIDGE_STEPS`` Newton steps from 0 (gradient steps where g'' >= 0), each
    capped at ``MAX_STEP`` whitened units."""
    d1 = jax.grad(g)

    def step(_, w):
        a, b = jax.jvp(d1, (w,), (jnp.ones_like(w),))  # g' and g'' in one pass
        delta = jnp.where(b < 0, -a / jnp.where(b < 0, b, -1.0), a)
        delta = jnp.where(jnp.isfinite(delta), delta, 0.0)
        return w + jnp.clip(delta, -MAX_STEP, MAX_STEP)

    return jax.lax.fori_loop(0, RIDGE_STEPS, step, jnp.zeros(()))


def _tilted(key: jax.Array, a: jax.Array) -> jax.Array:
    """A draw on [-1, 1] from the density proportional to exp(a s) (inverse CDF)."""
    uni = jax.random.uniform(key, a.shape)
    small = jnp.abs(a) < 1e-8
    safe = jnp.where(small, 1.0, a)
    s = jnp.log1p(uni * jnp.expm1(2.0 * safe)) / safe - 1.0
    return jnp.clip(jnp.where(small, 2.0 * uni - 1.0, s), -1.0, 1.0)


def _slopes(f: jax.Array, h: jax.Array) -> jax.Array:
    """(d, G, ...) central-difference slopes of the grid values ``f`` along each axis."""
    out = []
    for i in range(f.ndim):
        fi = jnp.moveaxis(f, i, 0)
        fwd = jnp.concatenate([fi[1:], fi[-1:]])
        bwd = jnp.concatenate([fi[:1], fi[:-1]])
        span = jnp.full(fi.shape[0], 2.0).at[0].set(1.0).at[-1].set(1.0)
        span = span.reshape((-1,) + (1,) * (f.ndim - 1))
        g = (fwd - bwd) / (span * h[i])
        out.append(jnp.moveaxis(jnp.where(jnp.isfinite(g), g, 0.0), 0, i))
    return jnp.stack(out)


def _axes(lo, hi, g):
    """Cell centres along each axis, (d, g), and the cell widths (d,)."""
    h = (hi - lo) / g
    return lo[:, None] + (jnp.arange(g) + 0.5)[None, :] * h[:, None], h


def _points(centres):
    """(G^d, d) whitened points of the grid with axes ``centres`` (d, G)."""
    mesh = jnp.meshgrid(*centres, indexing="ij")
    return jnp.stack([m.reshape(-1) for m in mesh], axis=-1)


def _to_w(z: jax.Array) -> jax.Array:
    """Grid coordinates z -> whitened w = sinh(k z) / k (k = ``STRETCH``): w ~ z near
    the mode, cells growing exponentially into a long tail."""
    return jnp.sinh(STRETCH * z) / STRETCH


def _to_z(w: jax.Array) -> jax.Array:
    return jnp.arcsinh(STRETCH * w) / STRETCH


def _log_jacobian(z: jax.Array) -> jax.Array:
    """log |dw/dz| of :func:`_to_w` at points z (.., d)."""
    return jnp.sum(jnp.log(jnp.cosh(STRETCH * z)), axis=-1)


def _independence_mh(key, proposals, log_ratio):
    """Independence Metropolis-Hastings over a chain's proposals (draws, Q) with
    log importance ratios log p/q: each proposal replaces the current state with
    probability min(1, ratio / current ratio). The first proposal starts the chain.
    Returns the chain (draws, Q) and its acceptance rate."""
    logu = jnp.log(jax.random.uniform(key, log_ratio.shape))

    def step(state, inp):
        row, lw = state
        prop, lw_new, lu = inp
        take = lu < lw_new - lw
        row = jnp.where(take, prop, row)
        return (row, jnp.where(take, lw_new, lw)), (row, take)

    init = (proposals[0], log_ratio[0])
    _, (chain, took) = jax.lax.scan(step, init, (proposals[1:], log_ratio[1:], logu[1:]))
    chain = jnp.concatenate([proposals[:1], chain])
    return chain, jnp.mean(took)


def _sampled(u: jax.Array, spec) -> jax.Array:
    """u's moments with NaN for the dummy coordinate of a model without sigma_a."""
    return u.at[1].set(jnp.where(spec.sa_sampled > 0, u[1], jnp.nan))


def _faces(g: int, dims: int) -> np.ndarray:
    """(g^d, 2d) bool: whether each cell lies on each face of the box (the lower
    face of every axis, then the upper ones), in the order of :func:`_points`."""
    idx = np.stack(np.meshgrid(*([np.arange(g)] * dims), indexing="ij"), -1).reshape(-1, dims)
    return np.concatenate([idx == 0, idx == g - 1], axis=1)


def _moments(logw: jax.Array, u: jax.Array, named: jax.Array):
    """Mass-weighted means and SDs of u (G^d, 2) and means of ``named`` (G^d, K)."""
    w = jnp.exp(logw - jnp.max(logw))
    w = jnp.where(jnp.isfinite(w), w, 0.0)
    w = w / jnp.sum(w)
    mean = w @ u
    sd = jnp.sqrt(w @ (u - mean[None, :]) ** 2)
    return mean, sd, w @ named, w


@functools.cache
def _program(g: int, chains: int, draws: int, num_classes: int):
    """The jitted grid program for one static configuration."""
    n_draws = chains * draws
    dims = 2  # u = (log sigma, v), for every model (see sample_grid)

    def one(key, rd, ids, spec, tols):
        edge_tol, refine_tol, margin = tols[0], tols[1], tols[2]
        cs = C.class_sums(rd, ids, num_classes)
        centre, var0, _ = _initial(rd, cs, spec, "coefficients")

        def point(x):  # log density, E and Var of the read-out theta given u = x
            sigma, sigma_a, lp = C.scales(spec, x)
            post = C.coefficient_posterior(spec, cs, sigma, sigma_a)
            cov = spec.readout @ C.coefficient_covariance(post) @ spec.readout.T
            return lp + post.log_marginal, spec.readout @ post.mean, jnp.diag(cov)

        def f(x):
            return point(x)[0]

        mode, fmax, hess, mode_ok = _mode(f, centre)
        fallback = jnp.diag(1.0 / var0)
        whiten = _whitener(jnp.where(_neg_def(hess), -hess, fallback))

        def at(w):  # whitened (.., d) -> u (.., d)
            return mode + w @ whiten.T if w.ndim == 1 else mode[None, :] + w @ whiten.T

        # the ridge: the mode of w0 given w1, which bends away from the
        # whitened axis in the long left tail of log sigma_a
        def ridge_at(w1):
            return _cond_mode(lambda w0: f(at(jnp.stack([w0, w1]))))

        def shear(w, stations, ridge):  # (.., 2) -> (.., 2), Jacobian 1
            return w.at[..., 0].add(jnp.interp(w[..., 1], stations, ridge))

        def make_ridge(lo, hi):
            stations = jnp.linspace(lo[1], hi[1], RIDGE_STATIONS)
            return stations, jax.vmap(ridge_at)(stations)

        def edges():  # +w0, +w1, -w0, -w1; the w1 half-axes on the ridge
            # one vmapped edge search over the four half-axes: one copy of its code
            along = jnp.array([0.0, 1.0, 0.0, 1.0])
            signs = jnp.array([1.0, 1.0, -1.0, -1.0])

            def half_axis(sg, al):
                def path(t):
                    w1 = al * sg * t
                    w0 = jnp.where(al > 0, ridge_at(w1), sg * t)
                    return f(at(jnp.stack([w0, w1])))

                return _edge(path, fmax, margin)

            return jax.vmap(half_axis)(signs, along)

        reach = edges()
        lo, hi = -reach[dims:], reach[:dims]

        def grid(size, lo, hi, stations, ridge):
            centres, h = _axes(_to_z(lo), _to_z(hi), size)
            z = _points(centres)
            x = at(shear(_to_w(z), stations, ridge))
            logd, named, named_var = jax.vmap(point)(x)
            return centres, h, x, logd + _log_jacobian(z), named, named_var

        # widen the box where the posterior leaves it: a face of the G/2 grid whose
        # cells are still above the margin moves out by half the box's width; a
        # round that moves no face ends the loop (its G/2 grid, of the final box,
        # is the refinement's), and so does round WIDEN_ROUNDS, which only evaluates
        face_c = _faces(g // 2, dims)
        n_c = (g // 2) ** dims

        def widen(carry):
            i, _, lo, hi = carry[:4]
            stations, ridge = make_ridge(lo, hi)
            _, _, xc, logc, namedc, _ = grid(g // 2, lo, hi, stations, ridge)
            top = jnp.max(jnp.where(face_c, logc[:, None], -jnp.inf), axis=0)
            out = ~(top < fmax - margin) & (i < WIDEN_ROUNDS)  # lower faces, then upper
            step = 0.5 * (hi - lo)
            lo = lo - jnp.where(out[:dims], step, 0.0)
            hi = hi + jnp.where(out[dims:], step, 0.0)
            return i + 1, jnp.any(out), lo, hi, stations, ridge, xc, logc, namedc

        k = spec.loc.shape[-1]
        # the first round computes the ridge: zeros hold its place in the carry
        placeholder = (jnp.zeros(RIDGE_STATIONS), jnp.zeros(RIDGE_STATIONS))
        init = (jnp.asarray(0), jnp.asarray(True), lo, hi, *placeholder)
        init = init + (jnp.zeros((n_c, dims)), jnp.zeros(n_c))
        init = init + (jnp.zeros((n_c, k)),)
        _, _, lo, hi, stations, ridge, xc, logc, namedc = jax.lax.while_loop(
            lambda c: c[1], widen, init
        )
        mean_c, sd_c, named_c, _ = _moments(logc, xc, namedc)
        centres, h, x, logd, named, named_var = grid(g, lo, hi, stations, ridge)
        mean, sd, named_mean, mass = _moments(logd, x, named)
        # exact posterior SDs: E[Var(. | u)] + Var(E[. | u]) over the cells' masses
        named_sd_exact = jnp.sqrt(mass @ named_var + mass @ (named - named_mean[None, :]) ** 2)
        edge_mass = jnp.sum(jnp.where(jnp.any(_faces(g, dims), axis=1), mass, 0.0))

        # draws: cells by their log-linear mass, the position inside by the tilt
        k_cell, k_tilt, k_coef, k_mh = jax.random.split(key, 4)
        fgrid = logd.reshape((g,) * dims)
        slope = _slopes(fgrid, h)  # (d, G, ..)
        a = jnp.clip(slope * (h / 2.0).reshape((dims,) + (1,) * dims), -50.0, 50.0)
        safe = jnp.where(jnp.abs(a) < 1e-8, 1.0, a)
        log_sinhc = jnp.where(jnp.abs(a) < 1e-8, 0.0, jnp.log(jnp.abs(jnp.sinh(safe) / safe))).sum(
            axis=0
        )
        logm = (fgrid + log_sinhc).reshape(-1)
        mcell = jnp.exp(logm - jnp.max(logm))
        mcell = jnp.where(jnp.isfinite(mcell), mcell, 0.0)
        cdf = jnp.cumsum(mcell)
        pick = jax.random.uniform(k_cell, (n_draws,)) * cdf[-1]
        cell = jnp.clip(jnp.searchsorted(cdf, pick, side="right"), 0, cdf.shape[0] - 1)
        a_cell = a.reshape(dims, -1)[:, cell].T  # (n_draws, d)
        s = _tilted(k_tilt, a_cell)
        zs = _points(centres)[cell] + s * (h / 2.0)[None, :]
        xs = at(shear(_to_w(zs), stations, ridge))
        eps = jax.random.normal(k_coef, (n_draws, spec.loc.shape[-1]))

        def propose(xx, e):  # the draw and the log density from one conditional posterior
            sigma, sigma_a, lp = C.scales(spec, xx)
            post = C.coefficient_posterior(spec, cs, sigma, sigma_a)
            theta = C.to_theta(post.centring, C.centred_from_normal(post, e))
            return named_outputs(spec, spec.readout @ theta, sigma, sigma_a), lp + post.log_marginal

        proposals, logp = jax.vmap(propose)(xs, eps)
        # log p / q up to a constant: the log density in z against its log-linear
        # approximation in the cell (q's density is exp(f_c + a's) / const)
        log_ratio = logp + _log_jacobian(zs) - fgrid.reshape(-1)[cell]
        log_ratio = log_ratio - jnp.sum(a_cell * s, axis=-1)
        log_ratio = jnp.where(jnp.isfinite(log_ratio), log_ratio, -jnp.inf)
        values, accept = jax.vmap(_independence_mh)(
            jax.random.split(k_mh, chains),
            proposals.reshape(chains, draws, -1),
            log_ratio.reshape(chains, draws),
        )
        values = values.reshape(n_draws, -1)

        # refinement change, in posterior SDs
        named_sd = jnp.std(values[:, : named.shape[1]], axis=0)
        named_sd = jnp.where(named_sd > 0, named_sd, jnp.inf)
        change = jnp.concatenate(
            [
                jnp.abs(mean - mean_c) / sd,
                jnp.abs(sd - sd_c) / sd,
                jnp.abs(named_mean - named_c) / named_sd,
            ]
        )
        refine = jnp.max(jnp.where(jnp.isnan(change), jnp.inf, change))
        finite = jnp.all(jnp.isfinite(values))
        check = mode_ok & (edge_mass <= edge_tol) & (refine <= refine_tol) & finite
        diag = {
            "edge_mass": edge_mass,
            "refine_change": refine,
            "mode_ok": mode_ok,
            "accept": accept,
            "u_mean": _sampled(mean, spec),
            "u_sd": _sampled(sd, spec),
            "coef_mean": named_mean,
            "coef_sd": named_sd_exact,
        }
        return values, check, diag

    def run(keys, stats, ids, spec, tols):
        rd = C.region_data(stats)
        return jax.vmap(lambda k, r, i: one(k, r, i, spec, tols))(keys, rd, ids)

    return jax.jit(run)


def sample_grid(
    model: str, keys, stats: GroupStats, settings: BayesSettings, margin: float = MARGIN
) -> Draws:
    """Draws of ``model`` by quadrature of the (log sigma, log sigma_a) posterior
    (the ``grid`` engine; module docstring). ``margin`` (log-density units) sets
    where the box ends; tests shrink it to check the edge-mass diagnostic."""
    # pooled and fe too: their second coordinate is collapsed.scales' dummy N(0, 1)
    # (as under NUTS), so one compiled program serves all five models
    spec = C.linear_spec(model, settings.priors, stats.p, stats.q)
    tols = jnp.asarray([settings.grid_edge_tol, settings.grid_refine_tol, margin], float)

    def program(tier):
        prog = _program(settings.grid_size, settings.chains, settings.draws, int(tier))

        def call(k, s, i):
            values, check, diag = prog(k, s, i, spec, tols)
            return (values, check, diag), ()

        return call

    (values, checks, diag), _ = run_batches(keys, stats, settings.batch_size, program)
    n_rep = values.shape[0]
    values = values.reshape(n_rep, settings.chains, settings.draws, values.shape[-1])
    return Draws(
        values=values,
        divergences=np.zeros(n_rep, np.int64),
        step_size=np.full((n_rep, settings.chains), np.nan),
        accept_prob=np.asarray(diag["accept"]),
        num_steps=np.zeros(n_rep),
        batch_steps=np.zeros((1, 2)),
        keys=quantity_keys(stats.p, stats.q),
        checks=np.asarray(checks, bool),
        diagnostics=diag,
    )
