"""Posteriors per second: batched collapsed NUTS against a loop of ``MCMC.run``.

At R = 50 regions (the seed's design otherwise), 4 chains, 1000 warm-up + 1000
draws, in the same run:

* batched: ``bayes-mundlak`` and ``bayes-re`` through the registry's fit
  function (collapsed models, NUTS vmapped over replications x chains, summaries
  and diagnostics included), on ``--reps`` replications;
* loop: ``numpyro.infer.MCMC.run`` on the observation-level NumPyro model of
  the same name, one replication at a time (``--loop-reps`` of them), chains
  vectorized. The ``MCMC`` object is built once with ``jit_model_args=True``,
  and JAX's persistent compilation cache is on, because NumPyro 0.22 compiles
  its sampling loop again at every run regardless (``LOOP_CACHE`` below): the
  fastest honest loop we found, not the naive one.

Compilation is excluded on both sides (each side runs once untimed first) and
reported apart. Both sides use one CPU thread (``XLA_FLAGS``, unless set), so
they compete for the same resources. The converged fraction uses the same
summaries and thresholds for both (split R-hat <= 1.01, bulk ESS >= 400 for every
parameter, no divergences).

    python bench/bench_bayes.py [--reps 64] [--loop-reps 3] [--intercepts-form]
    python bench/bench_bayes.py --loop-only {sequential,vectorized} [--regions 50]

prints the figures and writes bench/results/bayes.json (``--loop-only``: prints
the loop's figures as one JSON line, writes nothing; BENCH_LOOP_CACHE=0 turns
the compilation cache off).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

os.environ.setdefault(
    "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
)
# NumPyro 0.22's MCMC.run compiles its sampling loop afresh at every call, even
# with jit_model_args=True: fori_collect passes a new jit wrapper of its body as a
# static argument, so JAX's in-memory cache never hits (about 2 s per chain at
# R = 50 on this CPU, most of a replication's time). JAX's persistent compilation
# cache keys on the compiled program itself, so the identical program is loaded
# instead of compiled. Set before JAX is imported; BENCH_LOOP_CACHE=0 leaves the
# loop as NumPyro ships it.
LOOP_CACHE = os.environ.get("BENCH_LOOP_CACHE", "1") != "0"
if LOOP_CACHE and "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _cache_dir = tempfile.mkdtemp(prefix="mlmbias-bench-jax-cache-")
    atexit.register(shutil.rmtree, _cache_dir, ignore_errors=True)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache_dir
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "-1")

import argparse  # noqa: E402
import functools  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import _derive  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402
from _checks import check_estimates  # noqa: E402

from mlmbias import DGP, group_stats, replication_keys, simulate_condition  # noqa: E402
from mlmbias.provenance import environment  # noqa: E402
from mlmbias.registry import Batch, get_method  # noqa: E402
from mlmbias.seeding import method_keys  # noqa: E402

SEED = 20250713
RESULTS = Path(__file__).resolve().parent / "results" / "bayes.json"
SETTINGS = {"chains": 4, "warmup": 1000, "draws": 1000}


def batched(method: str, dgp: DGP, reps: int, options: dict) -> dict:
    idx = np.arange(reps)
    panel = simulate_condition(dgp, SEED, idx)
    keys = method_keys(replication_keys(SEED, dgp, idx), method)
    batch = Batch(keys, group_stats(panel))
    fit = get_method(method).load()
    t0 = time.perf_counter()
    fit(batch, 0.94, options)  # compiles every program these replications need
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = fit(batch, 0.94, options)
    seconds = time.perf_counter() - t0
    cols = out[("beta", "x0")]
    label = f"{method} batched, R = {dgp.n_regions}"
    check_estimates(label, method, cols["estimate"], cols["converged"])
    return {
        "reps": reps,
        "seconds": seconds,
        "seconds_per_posterior": seconds / reps,
        "posteriors_per_second": reps / seconds,
        "compile_seconds": max(first - seconds, 0.0),
        "converged_fraction": float(out[("beta", "x0")]["converged"].mean()),
        "mean_beta": float(out[("beta", "x0")]["estimate"].mean()),
    }


def loop_runner(model: str, dgp: DGP, reps: int, settings: dict, chain_method: str = "vectorized"):
    """``MCMC.run`` on the observation-level model, one replication at a time.

    Returns ``(run, first_seconds)``: ``run()`` fits replications ``0..reps-1``
    and returns one ``(converged, mean beta)`` per replication; building the
    runner fits replication ``reps`` once, untimed, to compile. The ``MCMC``
    object is built once with ``jit_model_args=True``; with the persistent
    compilation cache on (``LOOP_CACHE``, the default) a run loads its sampling
    loop instead of compiling it again. The chains run vectorized by default,
    the fastest of NumPyro's methods here (one sampling loop per run instead of
    one per chain). ``bench/test_perf.py`` uses the same runner.
    """
    from numpyro.infer import MCMC, NUTS

    from mlmbias.bayes.methods import monitored
    from mlmbias.bayes.models import MODELS
    from mlmbias.bayes.options import settings_from_options
    from mlmbias.bayes.summary import bulk_ess, split_rhat

    thresholds = settings_from_options(settings)  # the batched side's R-hat and ESS bounds
    rhat_max, ess_min = thresholds.rhat_max, thresholds.ess_min
    panel = simulate_condition(dgp, SEED, np.arange(reps + 1))
    mcmc = MCMC(
        NUTS(functools.partial(MODELS[model], n_regions=dgp.n_regions)),
        num_warmup=settings["warmup"],
        num_samples=settings["draws"],
        num_chains=settings["chains"],
        chain_method=chain_method,
        progress_bar=False,
        jit_model_args=True,
    )

    def one(i: int) -> tuple[bool, float]:
        args = (panel.region[i], panel.x[i, :, 0], panel.y[i], panel.mask[i])
        mcmc.run(jax.random.PRNGKey(i), *args, extra_fields=("diverging",))
        samples = jax.block_until_ready(mcmc.get_samples(group_by_chain=True))
        ok = int(np.asarray(mcmc.get_extra_fields()["diverging"]).sum()) == 0
        for name, _ in monitored(model):  # (estimand, term); one x: the site is the estimand
            x = np.asarray(samples[name])[None]
            ok &= bool(split_rhat(x)[0] <= rhat_max) and bool(bulk_ess(x)[0] >= ess_min)
        return ok, float(np.asarray(samples["beta"]).mean())

    t0 = time.perf_counter()
    one(reps)  # compiles; an extra replication, not timed
    first = time.perf_counter() - t0
    return (lambda: [one(i) for i in range(reps)]), first


def loop(
    model: str, dgp: DGP, reps: int, chain_method: str = "vectorized", settings: dict = SETTINGS
) -> dict:
    run, first = loop_runner(model, dgp, reps, settings, chain_method=chain_method)
    t0 = time.perf_counter()
    out = run()
    seconds = time.perf_counter() - t0
    if settings["warmup"] >= SETTINGS["warmup"]:  # not the 10 + 10 iterations of a variant
        # NumPyro's observation-level models converge less often: only the estimates
        label = f"{model} loop, R = {dgp.n_regions}"
        check_estimates(label, f"bayes-{model}", [b for _, b in out])
    return {
        "reps": reps,
        "seconds": seconds,
        "seconds_per_posterior": seconds / reps,
        "posteriors_per_second": reps / seconds,
        "compile_seconds": max(first - seconds / reps, 0.0),
        "converged_fraction": float(np.mean([ok for ok, _ in out])),
        "mean_beta": float(np.mean([b for _, b in out])),
        "chain_method": chain_method,
        "compilation_cache": LOOP_CACHE,
        "warmup": settings["warmup"],
        "draws": settings["draws"],
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=64, help="replications, batched side")
    parser.add_argument("--loop-reps", type=int, default=3, help="replications, loop side")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument(
        "--intercepts-form",
        action="store_true",
        help="also time the DESIGN.md form (NUTS over coefficients too, collapse='intercepts')",
    )
    parser.add_argument(
        "--loop-only",
        choices=("sequential", "vectorized"),
        help="time only the loop, with this chain method, at --regions; print one JSON line",
    )
    parser.add_argument("--regions", type=int, default=50, help="R for --loop-only")
    parser.add_argument("--model", default="mundlak", help="model for --loop-only")
    parser.add_argument("--warmup", type=int, default=SETTINGS["warmup"], help="for --loop-only")
    parser.add_argument("--draws", type=int, default=SETTINGS["draws"], help="for --loop-only")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.loop_only:
        settings = {**SETTINGS, "warmup": args.warmup, "draws": args.draws}
        dgp = DGP(n_regions=args.regions)
        figure = loop(args.model, dgp, args.loop_reps, args.loop_only, settings)
        print(json.dumps(figure))
        return figure

    dgp = DGP(n_regions=50)
    options = dict(SETTINGS)
    if args.batch_size:
        options["batch_size"] = args.batch_size
    from mlmbias.bayes.options import settings_from_options

    chosen = settings_from_options(options)
    report: dict = {
        "machine": environment(),
        "settings": {
            **SETTINGS,
            "n_regions": dgp.n_regions,
            "batch_size": chosen.batch_size,
            "rhat_max": chosen.rhat_max,
            "ess_min": chosen.ess_min,
        },
        "models": {},
    }
    for model in ("mundlak", "re"):
        method = f"bayes-{model}"
        entry = {"batched": batched(method, dgp, args.reps, options)}
        if args.intercepts_form:
            entry["batched_intercepts_form"] = batched(
                method, dgp, args.reps, {**options, "collapse": "intercepts"}
            )
        entry["loop"] = loop(model, dgp, args.loop_reps)
        _derive.ratio(entry, "posteriors_per_second", _derive.BAYES_TARGET)
        report["models"][method] = entry
        b, lp = entry["batched"], entry["loop"]
        print(
            f"{method}: batched {b['posteriors_per_second']:.2f} posteriors/s "
            f"({b['seconds_per_posterior']:.3f} s each, {b['reps']} reps, "
            f"converged {b['converged_fraction']:.0%}, compile {b['compile_seconds']:.1f} s); "
            f"loop {lp['posteriors_per_second']:.3f} posteriors/s "
            f"({lp['seconds_per_posterior']:.2f} s each, {lp['reps']} reps, "
            f"converged {lp['converged_fraction']:.0%}); speedup {entry['speedup']:.0f}x"
        )
        if args.intercepts_form:
            f = entry["batched_intercepts_form"]
            print(
                f"  intercepts-only collapse: {f['posteriors_per_second']:.2f} posteriors/s "
                f"({f['seconds_per_posterior']:.3f} s each, converged "
                f"{f['converged_fraction']:.0%})"
            )
    write_report(args.out, report)
    return report


def write_report(path: Path, report: dict) -> None:
    """Write a benchmark's figures as JSON (the bench scripts' common last step)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
