"""Replications per second: ``rs-reml`` batched in JAX against a loop of statsmodels
``MixedLM`` random-slope fits, in the same run.

At R = 10, 50 and 200 regions (the seed's design otherwise: y = profit, x =
ad_spend), with the model y ~ x + (1 + x | region) fitted by REML:

* batched: ``rs-reml`` through the registry's fit function on ``--reps``
  replications from their region sums (the ``group_stats`` segment sums are
  included in the time, the simulation is not);
* loop: ``smf.mixedlm("profit ~ ad_spend", frame, groups=region,
  re_formula="~ad_spend").fit(reml=True)`` one replication at a time, on the
  first ``--loop-reps`` of the same replications (DataFrames built beforehand,
  not timed).

Compilation is excluded (the batch runs once untimed first) and reported apart.
Both sides use one CPU thread (``XLA_FLAGS`` and the BLAS variables, unless
already set). The agreement of the two on the loop's replications is reported
too, on the replications statsmodels reports converged: how many sit at the
same REML optimum (log-likelihoods within ``SAME_OPTIMUM``), and there the
largest relative difference of the slope; how many end where ours is higher
(statsmodels stopped short, often near the boundary) or lower.

    python bench/bench_random_slopes.py [--reps 256] [--loop-reps 24] [--regions 10 50 200]

prints a table and writes bench/results/random_slopes.json.
"""

from __future__ import annotations

import argparse
import os

if __name__ == "__main__":
    os.environ.setdefault(
        "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    )
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import json  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402

from mlmbias import DGP, flags, group_stats, simulate_condition, to_frame  # noqa: E402
from mlmbias.provenance import environment  # noqa: E402
from mlmbias.registry import Batch, get_method  # noqa: E402

SEED = 20250713
LEVEL = 0.95
METHOD = "rs-reml"
BETA = ("beta", "x0")
MODEL = "y ~ x + (1 + x | g)"
RESULTS = Path(__file__).resolve().parent / "results" / "random_slopes.json"


def batched(panel, reps: int) -> tuple[dict, dict]:
    """Timed figures of one batch (compile apart) and the method's output."""
    fit = get_method(METHOD).load()

    def run():
        batch = Batch(keys=None, stats=group_stats(panel))
        return fit(batch, LEVEL, {})  # NumPy arrays: the work is done

    t0 = time.perf_counter()
    run()
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = run()
    seconds = time.perf_counter() - t0
    flag = out[BETA]["flag"]
    figures = {
        "reps": reps,
        "seconds": seconds,
        "reps_per_second": reps / seconds,
        "compile_seconds": max(first - seconds, 0.0),
        "optimizer_flagged": float(np.mean(flag & flags.OPTIMIZER > 0)),
        "boundary": float(np.mean(flag & flags.BOUNDARY_VARIANCE > 0)),
    }
    return figures, out


def loop(panel, reps: int) -> tuple[dict, list]:
    """statsmodels MixedLM with a random slope, one replication at a time."""
    import statsmodels.formula.api as smf

    frames = [to_frame(panel, i) for i in range(reps)]
    fits = []
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for f in frames:
            model = smf.mixedlm("profit ~ ad_spend", f, groups=f["region"], re_formula="~ad_spend")
            try:
                fits.append(model.fit(reml=True))
            except Exception:  # noqa: BLE001 (a failed fit counts as not converged)
                fits.append(None)
    seconds = time.perf_counter() - t0
    converged = [r is not None and bool(r.converged) for r in fits]
    figures = {
        "reps": reps,
        "seconds": seconds,
        "reps_per_second": reps / seconds,
        "converged_fraction": float(np.mean(converged)),
    }
    return figures, fits


SAME_OPTIMUM = 1e-6  # |loglik difference| below which two fits sit at the same optimum


def agreement(out: dict, fits: list) -> dict:
    """Ours against statsmodels' converged fits: where the REML log-likelihoods agree
    (the same optimum), the largest relative difference of the slope; elsewhere, how
    often ours is higher (statsmodels stopped at a worse point) or lower."""
    rel, gain = [], []
    for i, r in enumerate(fits):
        if r is None or not r.converged:
            continue
        g = float(out[BETA]["loglik"][i]) - float(r.llf)
        gain.append(g)
        if abs(g) < SAME_OPTIMUM:
            ours, theirs = out[BETA]["estimate"][i], float(r.fe_params.iloc[1])
            rel.append(abs(ours - theirs) / max(abs(theirs), 1e-12))
    gain = np.asarray(gain)
    return {
        "compared": int(gain.size),
        "same_optimum": len(rel),
        "ours_higher": int(np.sum(gain >= SAME_OPTIMUM)),
        "ours_lower": int(np.sum(gain <= -SAME_OPTIMUM)),
        "max_loglik_gain": float(gain.max()) if gain.size else None,
        "min_loglik_gain": float(gain.min()) if gain.size else None,
        "max_rel_diff_beta": float(np.max(rel)) if rel else None,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=256, help="replications, batched side")
    parser.add_argument("--loop-reps", type=int, default=24, help="replications, loop side")
    parser.add_argument("--regions", type=int, nargs="+", default=[10, 50, 200])
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    report: dict = {
        "machine": environment(),
        "settings": {
            "method": METHOD,
            "seed": SEED,
            "level": LEVEL,
            "model": "y ~ x + (1 + x | g)",
        },
        "regions": {},
    }
    print(
        f"{'R':>5} {'batched reps/s':>15} {'compile s':>10} {'loop reps/s':>12} "
        f"{'speedup':>8} {'sm conv.':>9} {'same/hi/lo':>14} {'max rel. diff':>14}"
    )
    for r in args.regions:
        dgp = DGP(n_regions=r)
        panel = simulate_condition(dgp, SEED, np.arange(args.reps))
        jax.block_until_ready(panel)
        b, out = batched(panel, args.reps)
        lp, fits = loop(panel, min(args.loop_reps, args.reps))
        agree = agreement(out, fits)
        diff = agree["max_rel_diff_beta"] or float("nan")
        same = f"{agree['same_optimum']}/{agree['ours_higher']}/{agree['ours_lower']}"
        entry = {
            "batched": b,
            "loop": lp,
            "speedup": b["reps_per_second"] / lp["reps_per_second"],
            "agreement": agree,
        }
        report["regions"][str(r)] = entry
        print(
            f"{r:>5} {b['reps_per_second']:>15,.1f} {b['compile_seconds']:>10.1f} "
            f"{lp['reps_per_second']:>12,.2f} {entry['speedup']:>7,.0f}x "
            f"{lp['converged_fraction']:>9.0%} {same:>14} {diff:>14.1e}",
            flush=True,
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
