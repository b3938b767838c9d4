"""Replications per second: every frequentist estimator batched in JAX against a loop
of linearmodels/statsmodels fits, in the same run.

At R = 50 regions (the seed's design otherwise):

* batched: all thirteen frequentist methods through the registry's fit functions
  on one batch of ``--reps`` replications (default 10,000), from the simulated
  panels' region sums (the ``group_stats`` segment sums are included in the
  time, the simulation is not);
* loop: the same estimators fitted with the reference packages one replication
  at a time, on ``--loop-reps`` replications (default 20) whose DataFrames are
  built beforehand (not timed): linearmodels PooledOLS (unadjusted and
  clustered), BetweenOLS, PanelOLS with entity effects (unadjusted and
  clustered), RandomEffects (plain, Mundlak, Mundlak clustered for the robust
  Hausman test), statsmodels MixedLM (REML, ML, Mundlak REML), and the classic
  and sigmamore Hausman statistics from the PanelOLS and RandomEffects fits.

Compilation is excluded (the batch runs once untimed first) and reported apart.
Both sides use one CPU thread by default (``XLA_FLAGS``, unless already set;
``--all-threads`` lets XLA use every core), so that they compete for the same
resources. Peak memory of the batch: the process's resident high-water mark
while the timed batch runs (reset through /proc/self/clear_refs where Linux
allows it), less the resident size before it, and XLA's own accounting of each
compiled program (arguments + outputs + temporaries; the largest is the
batch's peak, as the methods run one after another).

    python bench/bench_frequentist.py [--reps 10000] [--regions 50] [--loop-reps 20]

prints the figures and writes bench/results/frequentist.json.
"""

from __future__ import annotations

import argparse
import os
import sys

_ARGS = argparse.ArgumentParser(description=__doc__.splitlines()[0])
_ARGS.add_argument("--reps", type=int, default=10_000, help="batch size (default 10000)")
_ARGS.add_argument("--regions", type=int, default=50, help="regions R (default 50)")
_ARGS.add_argument("--loop-reps", type=int, default=20, help="loop replications (default 20)")
_ARGS.add_argument("--all-threads", action="store_true", help="let XLA use every core")
_ARGS.add_argument("--out", default=None, help="JSON file (default bench/results/frequentist.json)")

if __name__ == "__main__":
    _OPTS = _ARGS.parse_args()
    if not _OPTS.all_threads:
        os.environ.setdefault(
            "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        )
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(var, "1")

import json  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import _derive  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402
from _checks import WrongResult, check_estimates, check_same  # noqa: E402

from mlmbias import DGP, flags, group_stats, simulate_condition, to_frame  # noqa: E402
from mlmbias.frequentist import METHOD_SPECS  # noqa: E402
from mlmbias.provenance import environment  # noqa: E402
from mlmbias.registry import Batch  # noqa: E402

SEED = 20250713
LEVEL = 0.94
BETA = ("beta", "x0")  # the one covariate's slope
RESULTS = Path(__file__).resolve().parent / "results" / "frequentist.json"


# --------------------------------------------------------------------------- memory


def _proc_status(field: str) -> int | None:
    """A ``/proc/self/status`` size in bytes (VmRSS, VmHWM), None where unavailable."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    """Reset the resident high-water mark (Linux >= 4.0); False where not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _xla_bytes(fit, stats) -> dict[str, int] | None:
    try:
        m = fit.compiled.lower(stats).compile().memory_analysis()
    except Exception:  # noqa: BLE001 (not every backend reports it)
        return None
    if m is None:
        return None
    args, out, temp = (
        int(m.argument_size_in_bytes),
        int(m.output_size_in_bytes),
        int(m.temp_size_in_bytes),
    )
    return {"argument": args, "output": out, "temp": temp, "total": args + out + temp}


# --------------------------------------------------------------------------- batched


# The methods the loop fits with linearmodels/statsmodels: the speedup compares these.
REFERENCED = (
    "pooled", "pooled-cluster", "between", "fe", "fe-cluster", "re-fgls", "re-reml", "re-ml",
    "mundlak-fgls", "mundlak-reml", "hausman", "hausman-sigmamore", "hausman-robust",
)  # fmt: skip
# The few-cluster methods: no Python package computes CR2 with Satterthwaite df, the
# cluster jackknife or REML with Satterthwaite / Kenward-Roger df, so they are timed
# apart (per replication); hausman-wild is also timed against wildboottest's loop.
# The random-slope methods have their own benchmark (bench_random_slopes.py).
OWN_BENCH = tuple(s.name for s in METHOD_SPECS if s.family == "random slopes")
FEW_CLUSTER = tuple(s.name for s in METHOD_SPECS if s.name not in REFERENCED + OWN_BENCH)


def batched(panel, reps: int, names=REFERENCED) -> tuple[dict, dict]:
    """The timed figures and the methods' outputs (checked: see ``_checks``)."""
    fits = {s.name: s.load() for s in METHOD_SPECS if s.name in names}

    def run() -> tuple[dict, dict]:
        times = {}
        t_all = time.perf_counter()
        stats = group_stats(panel)
        jax.block_until_ready(stats)
        times["group_stats"] = time.perf_counter() - t_all
        batch = Batch(keys=None, stats=stats)
        outs = {}
        for name, fit in fits.items():
            t0 = time.perf_counter()
            outs[name] = fit(batch, LEVEL, {})  # NumPy arrays: the work is done
            times[name] = time.perf_counter() - t0
        times["total"] = time.perf_counter() - t_all
        return times, outs

    t0 = time.perf_counter()
    run()  # compiles every program
    first = time.perf_counter() - t0
    rss_before = _proc_status("VmRSS")
    reset = _reset_peak()
    times, outs = run()
    hwm = _proc_status("VmHWM")
    for name, out in outs.items():
        if BETA in out:
            cols = out[BETA]
            computed = (cols["flag"] & flags.NONFINITE) == 0
            label = f"{name} batched, {reps} replications"
            check_estimates(label, name, cols["estimate"][computed], computed, 0.99)
    stats = group_stats(panel)
    xla = {name: _xla_bytes(fit, stats) for name, fit in fits.items()}
    xla_peak = max((v["total"] for v in xla.values() if v), default=None)
    seconds = times.pop("total")
    flagged = {
        f"{m}/{e[0]}": float(np.mean(cols["flag"] != 0))
        for m, out in outs.items()
        for e, cols in out.items()
    }
    record = {
        "reps": reps,
        "seconds": seconds,
        "reps_per_second": reps / seconds,
        "compile_seconds": max(first - seconds, 0.0),
        "seconds_by_step": times,
        "flagged_fraction": flagged,
        "mean_beta": {
            m: float(np.nanmean(o[BETA]["estimate"])) for m, o in outs.items() if BETA in o
        },
        "peak_memory": {
            "rss_high_water_bytes": hwm if reset else None,
            "rss_before_bytes": rss_before,
            "batch_increment_bytes": (hwm - rss_before) if (reset and hwm and rss_before) else None,
            "xla_largest_program_bytes": xla_peak,
            "xla_by_method": xla,
            "note": "rss: process resident set; xla: arguments + outputs + temporaries",
        },
    }
    return record, outs


# --------------------------------------------------------------------------- loop


def _frames(panel, reps: int):
    out = []
    for i in range(reps):
        f = to_frame(panel, i)
        f["xbar"] = f.groupby("region")["ad_spend"].transform("mean")
        d = f.set_index(["region", "month"])
        d["const"] = 1.0
        out.append((f, d))
    return out


def _timed(steps: dict[str, float], name: str, fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    steps[name] = steps.get(name, 0.0) + time.perf_counter() - t0
    return out


def fit_one(f, d, steps: dict[str, float]) -> tuple[float, float]:
    """Every estimator on one replication with the reference packages; the FE and
    REML betas."""
    import linearmodels as lm
    import statsmodels.formula.api as smf
    from scipy import stats as st

    cl = {"cov_type": "clustered", "cluster_entity": True, "group_debias": True}
    y, x, xm = d.profit, d[["const", "ad_spend"]], d[["const", "ad_spend", "xbar"]]
    _timed(steps, "pooled", lm.PooledOLS(y, x).fit)
    _timed(steps, "pooled-cluster", lm.PooledOLS(y, x).fit, **cl)
    _timed(steps, "between", lm.BetweenOLS(y, x).fit)
    fe = _timed(steps, "fe", lm.PanelOLS(y, x, entity_effects=True).fit)
    _timed(steps, "fe-cluster", lm.PanelOLS(y, x, entity_effects=True).fit, **cl)
    re = _timed(steps, "re-fgls", lm.RandomEffects(y, x).fit)
    groups = f["region"]
    reml = _timed(steps, "re-reml", smf.mixedlm("profit ~ ad_spend", f, groups=groups).fit)
    _timed(steps, "re-ml", smf.mixedlm("profit ~ ad_spend", f, groups=groups).fit, reml=False)
    _timed(steps, "mundlak-fgls", lm.RandomEffects(y, xm).fit)
    _timed(steps, "mundlak-reml", smf.mixedlm("profit ~ ad_spend + xbar", f, groups=groups).fit)

    def hausman():
        c = fe.params["ad_spend"] - re.params["ad_spend"]
        v = fe.std_errors["ad_spend"] ** 2 - re.std_errors["ad_spend"] ** 2
        return st.chi2.sf(c * c / v, 1) if v > 0 else np.nan

    def hausman_sigmamore():  # Stata's sigmamore: both variances on RE's sigma_e^2
        c = fe.params["ad_spend"] - re.params["ad_spend"]
        v = re.s2 * fe.std_errors["ad_spend"] ** 2 / fe.s2 - re.std_errors["ad_spend"] ** 2
        return st.chi2.sf(c * c / v, 1)

    def hausman_robust():
        r = lm.RandomEffects(y, xm).fit(**cl)
        return st.chi2.sf((r.params["xbar"] / r.std_errors["xbar"]) ** 2, 1)

    _timed(steps, "hausman", hausman)
    _timed(steps, "hausman-sigmamore", hausman_sigmamore)
    _timed(steps, "hausman-robust", hausman_robust)
    return float(fe.params["ad_spend"]), float(reml.fe_params["ad_spend"])


def loop(panel, reps: int) -> dict:
    frames = _frames(panel, reps)
    steps: dict[str, float] = {}
    t_all = time.perf_counter()
    with warnings.catch_warnings():
        # MixedLM turns its convergence warnings on itself; silence their display
        warnings.simplefilter("ignore")
        warnings.showwarning = lambda *args, **kwargs: None
        betas = np.array([fit_one(f, d, steps) for f, d in frames])
    seconds = time.perf_counter() - t_all
    return {
        "reps": reps,
        "seconds": seconds,
        "reps_per_second": reps / seconds,
        "seconds_per_rep_by_estimator": {k: v / reps for k, v in steps.items()},
        "mean_beta_re_reml": float(np.mean(betas[:, 1])),
        "beta_fe": betas[:, 0].tolist(),  # linearmodels' PanelOLS, to check the batched fe
    }


def check_against_loop(outs: dict, lp: dict) -> None:
    """The batched fe of the loop's replications is linearmodels' PanelOLS (1e-8)."""
    reps = len(lp["beta_fe"])
    got = outs["fe"][BETA]["estimate"][:reps]
    check_same(f"fe batched vs PanelOLS, {reps} replications", got, lp["beta_fe"])


# --------------------------------------------------------------------------- main


def main(opts: argparse.Namespace) -> dict:
    dgp = DGP(n_regions=opts.regions)
    t0 = time.perf_counter()
    panel = simulate_condition(dgp, SEED, np.arange(opts.reps))
    jax.block_until_ready(panel)
    sim_seconds = time.perf_counter() - t0
    b, outs = batched(panel, opts.reps)
    lp = loop(panel, opts.loop_reps)
    check_against_loop(outs, lp)
    few, few_outs = batched(panel, opts.reps, FEW_CLUSTER)
    wild = wild_loop(panel, opts.loop_reps)
    check_wild(few_outs, wild)
    few_steps = few["seconds_by_step"]
    result = {
        "benchmark": "frequentist estimators: batched JAX vs linearmodels/statsmodels loop",
        "n_regions": opts.regions,
        "level": LEVEL,
        "methods": list(REFERENCED),
        "simulation_seconds": sim_seconds,
        "batched": b,
        "loop": lp,
        "few_cluster": {
            "methods": list(FEW_CLUSTER),
            "batched": few,
            "seconds_per_rep": {m: few_steps[m] / opts.reps for m in FEW_CLUSTER},
            "wildboottest_loop": wild,
            "wild_speedup": wild["seconds_per_rep"] / (few_steps["hausman-wild"] / opts.reps),
        },
        "environment": environment(),
    }
    _derive.ratio(result, "reps_per_second", _derive.FREQ_TARGET)  # speedup, target, met
    return result


def _wild_design(f):
    """wildboottest's inputs for the Mundlak term of one replication's frame."""
    x = np.column_stack([np.ones(len(f)), f["ad_spend"], f["xbar"]])
    return x, f["profit"].to_numpy(), f["region"].to_numpy()


def wild_loop(panel, reps: int) -> dict:
    """hausman-wild's counterpart: wildboottest (WCR, Rademacher, 999 draws), one
    replication at a time, frames built beforehand (not timed)."""
    from wildboottest.wildboottest import WildboottestCL

    from mlmbias.frequentist.wild import DEFAULT_DRAWS

    designs = [_wild_design(f) for f, _ in _frames(panel, reps)]
    pvalues = []
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for x, y, g in designs:
            boot = WildboottestCL(X=x, Y=y, cluster=g, R=np.array([0.0, 0.0, 1.0]),
                                  B=DEFAULT_DRAWS, seed=1)  # fmt: skip
            boot.get_scores(bootstrap_type="11", impose_null=True)
            boot.get_weights(weights_type="rademacher")
            boot.get_numer()
            boot.get_denom()
            boot.get_tboot()
            boot.get_vcov()
            boot.get_tstat()
            boot.get_pvalue(pval_type="two-tailed")
            pvalues.append(float(boot.pvalue))
    seconds = time.perf_counter() - t0
    return {"reps": reps, "seconds": seconds, "seconds_per_rep": seconds / reps, "p_value": pvalues}


def check_wild(outs: dict, wild: dict) -> None:
    """Random draws differ from wildboottest's, so the p-values agree only within
    Monte Carlo error: |difference| < 5 SEs of the difference of two 999-draw
    p-values (false alarm about 6e-7 a replication)."""
    got = np.asarray(outs["hausman-wild"][("test", "")]["p_value"][: wild["reps"]])
    ref = np.asarray(wild["p_value"])
    tol = 5 * np.sqrt(np.maximum(ref * (1 - ref), 0.01) / 999) * np.sqrt(2)
    bad = np.abs(got - ref) > tol
    if bad.any():
        raise WrongResult(f"hausman-wild p-values far from wildboottest's: {got[bad]}, {ref[bad]}")


def _report(r: dict) -> str:
    b, lp, mem = r["batched"], r["loop"], r["batched"]["peak_memory"]

    def mib(v):
        return "n/a" if v is None else f"{v / 2**20:.1f} MiB"

    lines = [
        f"frequentist estimators, R = {r['n_regions']}, the {len(r['methods'])} methods the loop"
        " also fits, together",
        f"  batched (JAX, {b['reps']} replications): {b['seconds']:.3f} s"
        f" -> {b['reps_per_second']:,.0f} reps/s (compile {b['compile_seconds']:.1f} s, excluded)",
        f"  loop (linearmodels + statsmodels, {lp['reps']} replications): {lp['seconds']:.2f} s"
        f" -> {lp['reps_per_second']:.2f} reps/s",
        f"  speedup: {r['speedup']:,.0f}x",
        f"  peak memory of the batch: RSS high-water {mib(mem['rss_high_water_bytes'])}"
        f" (+{mib(mem['batch_increment_bytes'])} over {mib(mem['rss_before_bytes'])} before);"
        f" largest XLA program {mib(mem['xla_largest_program_bytes'])}",
        "  batched seconds by step: "
        + ", ".join(f"{k} {v:.3f}" for k, v in b["seconds_by_step"].items()),
        "  loop seconds per replication: "
        + ", ".join(f"{k} {v:.4f}" for k, v in lp["seconds_per_rep_by_estimator"].items()),
    ]
    few = r.get("few_cluster")
    if few:
        lines += [
            "  few-cluster methods (no loop counterpart but hausman-wild's), batched, "
            "microseconds per replication: "
            + ", ".join(f"{k} {v * 1e6:.1f}" for k, v in few["seconds_per_rep"].items()),
            f"  hausman-wild (999 draws) vs wildboottest loop "
            f"({few['wildboottest_loop']['reps']} replications, "
            f"{few['wildboottest_loop']['seconds_per_rep'] * 1e3:.1f} ms each): "
            f"{few['wild_speedup']:,.0f}x",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    result = main(_OPTS)
    out = Path(_OPTS.out) if _OPTS.out else RESULTS
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(_report(result))
    print(f"wrote {out}", file=sys.stderr)
