"""Posteriors per second of engine = "chees" against a loop of ``MCMC.run``.

At R = 10, 50 and 200 regions (the seed's design otherwise), in the same run:

* chees: ``bayes-mundlak`` through the registry's fit function with ``engine =
  "chees"`` and its defaults (16 chains in 4 superchains, 300 warm-up + 250
  draws, nested R-hat <= 1.01), on ``--reps`` replications in batches of 256
  and of the CPU default (16); summaries and diagnostics included;
* loop: ``bench_bayes.loop``, the observation-level NumPyro model run by
  ``MCMC.run`` one replication at a time (4 chains, 1000 + 1000, vectorized
  chains, persistent compilation cache), exactly as bench/bench_bayes.py
  measures it (imported, not copied).

Compilation is excluded on both sides and reported apart (bench_bayes's
``batched`` and ``loop``); one CPU thread (``XLA_FLAGS``, set by importing
bench_bayes before JAX). The lockstep waste comes from one more, untimed,
``draws.sample`` of the same replications: within a posterior ChEES's chains
take the same number of leapfrog steps, so what remains is the waste across
the replications of a batch (each has its own step size and trajectory
length).

    python bench/bench_chees.py [--reps 256] [--loop-reps 3] [--regions 10 50 200]

prints the figures and writes bench/results/chees.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import bench_bayes  # noqa: I001  (first: sets XLA_FLAGS and the compilation cache before JAX)
import numpy as np

from mlmbias import DGP, group_stats, replication_keys, simulate_condition
from mlmbias.bayes.draws import sample
from mlmbias.bayes.options import default_batch_size, settings_from_options
from mlmbias.provenance import environment
from mlmbias.seeding import method_keys

RESULTS = Path(__file__).resolve().parent / "results" / "chees.json"
TARGET_RATIO, TARGET_WASTE = 100, 0.15


def waste(method: str, dgp: DGP, reps: int, options: dict) -> float:
    """Lockstep waste of the batches that ``bench_bayes.batched`` timed (same
    replications and keys), from one more untimed sample."""
    idx = np.arange(reps)
    panel = simulate_condition(dgp, bench_bayes.SEED, idx)
    keys = method_keys(replication_keys(bench_bayes.SEED, dgp, idx), method)
    model = method.removeprefix("bayes-")
    return sample(model, keys, group_stats(panel), settings_from_options(options)).lockstep_waste()


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=256, help="replications, chees side")
    parser.add_argument("--loop-reps", type=int, default=3, help="replications, loop side")
    parser.add_argument("--regions", type=int, nargs="+", default=[10, 50, 200])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[256, default_batch_size()])
    parser.add_argument("--model", default="mundlak")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    method = f"bayes-{args.model}"
    chosen = settings_from_options({"engine": "chees"})
    report: dict = {
        "machine": environment(),
        "settings": {
            "method": method,
            "chees_chains": chosen.chees_chains,
            "chees_superchains": chosen.chees_superchains,
            "chees_warmup": chosen.chees_warmup,
            "chees_draws": chosen.chees_draws,
            "chees_nrhat_max": chosen.chees_nrhat_max,
            "loop": bench_bayes.SETTINGS,
            "reps": args.reps,
            "loop_reps": args.loop_reps,
            "targets": {"ratio": TARGET_RATIO, "lockstep_waste_at_256": TARGET_WASTE},
        },
        "regions": {},
    }
    for r in args.regions:
        dgp = DGP(n_regions=r)
        entry: dict = {}
        for b in args.batch_sizes:
            options = {"engine": "chees", "batch_size": b}
            fig = bench_bayes.batched(method, dgp, args.reps, options)
            fig["lockstep_waste"] = waste(method, dgp, args.reps, options)
            entry[f"chees_batch_{b}"] = fig
        entry["loop"] = bench_bayes.loop(args.model, dgp, args.loop_reps)
        loop_rate = entry["loop"]["posteriors_per_second"]
        for b in args.batch_sizes:
            fig = entry[f"chees_batch_{b}"]
            fig["ratio_to_loop"] = fig["posteriors_per_second"] / loop_rate
            fig["ratio_met"] = fig["ratio_to_loop"] >= TARGET_RATIO
            print(
                f"R = {r}, batch {b}: chees {fig['posteriors_per_second']:.2f} posteriors/s "
                f"(compile {fig['compile_seconds']:.1f} s, converged "
                f"{fig['converged_fraction']:.0%}, lockstep waste {fig['lockstep_waste']:.1%}); "
                f"loop {loop_rate:.3f} posteriors/s; ratio {fig['ratio_to_loop']:.0f}x",
                flush=True,
            )
        report["regions"][str(r)] = entry
    bench_bayes.write_report(args.out, report)
    return report


if __name__ == "__main__":
    main()
