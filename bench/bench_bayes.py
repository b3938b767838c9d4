"""Posteriors per second: batched collapsed NUTS against a loop of ``MCMC.run``.

At R = 50 regions (the seed's design otherwise), 4 chains, 1000 warm-up + 1000
draws, in the same run:

* batched: ``bayes-mundlak`` and ``bayes-re`` through the registry's fit
  function (collapsed models, NUTS vmapped over replications x chains, summaries
  and diagnostics included), on ``--reps`` replications;
* loop: ``numpyro.infer.MCMC.run`` on the observation-level NumPyro model of
  the same name, one replication at a time (``--loop-reps`` of them), chains
  one after another. The ``MCMC`` object is built once with
  ``jit_model_args=True``, so the loop pays no recompilation per replication:
  the fastest honest loop, not the naive one.

Compilation is excluded on both sides (each side runs once untimed first) and
reported apart. Both sides use one CPU thread (``XLA_FLAGS``, unless set), so
they compete for the same resources. The converged fraction uses the same
summaries and thresholds for both (split R-hat <= 1.01, bulk ESS >= 400 for every
parameter, no divergences).

    python bench/bench_bayes.py [--reps 64] [--loop-reps 3] [--intercepts-form]

prints the figures and writes bench/results/bayes.json.
"""

from __future__ import annotations

import os

os.environ.setdefault(
    "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
)

import argparse  # noqa: E402
import functools  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402

import mlmbias  # noqa: E402
from mlmbias import DGP, group_stats, replication_keys, simulate_condition  # noqa: E402
from mlmbias.registry import Batch, get_method  # noqa: E402
from mlmbias.seeding import method_keys  # noqa: E402

SEED = 20250713
RESULTS = Path(__file__).resolve().parent / "results" / "bayes.json"
SETTINGS = {"chains": 4, "warmup": 1000, "draws": 1000}


def batched(method: str, dgp: DGP, reps: int, options: dict) -> dict:
    idx = np.arange(reps)
    panel = simulate_condition(dgp, SEED, idx)
    keys = method_keys(replication_keys(SEED, dgp, idx), method)
    batch = Batch(keys, group_stats(panel), None)
    fit = get_method(method).load()
    t0 = time.perf_counter()
    fit(batch, 0.94, options)  # compiles every program these replications need
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = fit(batch, 0.94, options)
    seconds = time.perf_counter() - t0
    return {
        "reps": reps,
        "seconds": seconds,
        "seconds_per_posterior": seconds / reps,
        "posteriors_per_second": reps / seconds,
        "compile_seconds": max(first - seconds, 0.0),
        "converged_fraction": float(out["beta"]["converged"].mean()),
        "mean_beta": float(out["beta"]["estimate"].mean()),
    }


def loop(model: str, dgp: DGP, reps: int) -> dict:
    from numpyro.infer import MCMC, NUTS

    from mlmbias.bayes.methods import monitored
    from mlmbias.bayes.models import MODELS
    from mlmbias.bayes.summary import bulk_ess, split_rhat

    panel = simulate_condition(dgp, SEED, np.arange(reps + 1))
    mcmc = MCMC(
        NUTS(functools.partial(MODELS[model], n_regions=dgp.n_regions)),
        num_warmup=SETTINGS["warmup"],
        num_samples=SETTINGS["draws"],
        num_chains=SETTINGS["chains"],
        chain_method="sequential",
        progress_bar=False,
        jit_model_args=True,
    )

    def run(i: int) -> dict:
        args = (panel.region[i], panel.ad_spend[i], panel.profit[i], panel.mask[i])
        mcmc.run(jax.random.PRNGKey(i), *args, extra_fields=("diverging",))
        samples = mcmc.get_samples(group_by_chain=True)
        jax.block_until_ready(samples)
        return samples

    t0 = time.perf_counter()
    run(reps)  # compile, untimed replication
    first = time.perf_counter() - t0
    converged, times, betas = [], [], []
    for i in range(reps):
        t0 = time.perf_counter()
        samples = run(i)
        times.append(time.perf_counter() - t0)
        divergences = int(np.asarray(mcmc.get_extra_fields()["diverging"]).sum())
        ok = divergences == 0
        for name in monitored(model):
            x = np.asarray(samples[name])[None]
            ok &= bool(split_rhat(x)[0] <= 1.01) and bool(bulk_ess(x)[0] >= 400)
        converged.append(ok)
        betas.append(float(np.asarray(samples["beta"]).mean()))
    seconds = float(np.sum(times))
    return {
        "reps": reps,
        "seconds": seconds,
        "seconds_per_posterior": seconds / reps,
        "posteriors_per_second": reps / seconds,
        "compile_seconds": max(first - seconds / reps, 0.0),
        "converged_fraction": float(np.mean(converged)),
        "mean_beta": float(np.mean(betas)),
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
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    dgp = DGP(n_regions=50)
    options = dict(SETTINGS)
    if args.batch_size:
        options["batch_size"] = args.batch_size
    from mlmbias.bayes.options import settings_from_options

    batch_size = settings_from_options(options).batch_size
    report: dict = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "jax": jax.__version__,
            "backend": jax.default_backend(),
            "device": str(jax.devices()[0]),
            "xla_flags": os.environ.get("XLA_FLAGS", ""),
            "mlmbias": mlmbias.__version__,
        },
        "settings": {**SETTINGS, "n_regions": dgp.n_regions, "batch_size": batch_size},
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
        entry["speedup"] = (
            entry["batched"]["posteriors_per_second"] / entry["loop"]["posteriors_per_second"]
        )
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
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
