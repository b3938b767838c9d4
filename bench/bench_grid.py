"""Posteriors per second: the grid engine against a loop of ``MCMC.run``.

At R = 10, 50 and 200 regions (the seed's design otherwise), in the same run:

* grid: ``bayes-mundlak`` through the registry's fit function with
  ``engine = "grid"`` (quadrature of the (log sigma, log sigma_a) posterior,
  4 x 1000 draws, summaries and diagnostics included) on ``--reps``
  replications: :func:`bench_bayes.batched`;
* loop: ``numpyro.infer.MCMC.run`` on the observation-level model, 4 chains,
  1000 warm-up + 1000 draws, one replication at a time (``--loop-reps``):
  :func:`bench_bayes.loop`, the loop ``bench/bench_bayes.py`` measures.

Compilation is excluded on both sides and reported apart; both sides use one
CPU thread (``XLA_FLAGS``, set by importing bench_bayes first). The converged
fraction is the grid's own check (edge mass, refinement) for the grid and R-hat,
ESS and divergences for the loop.

    python bench/bench_grid.py [--reps 256] [--loop-reps 5] [--regions 10 50 200]

prints the figures and writes bench/results/grid.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import bench_bayes  # noqa: I001  (first: sets XLA_FLAGS and the loop's cache before JAX loads)

from mlmbias import DGP
from mlmbias.bayes.options import settings_from_options
from mlmbias.provenance import environment

RESULTS = Path(__file__).resolve().parent / "results" / "grid.json"
TARGET = 500  # the target: the grid engine against the MCMC.run loop
MODEL = "mundlak"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=256, help="replications, grid side")
    parser.add_argument("--loop-reps", type=int, default=5, help="replications, loop side")
    parser.add_argument("--regions", type=int, nargs="+", default=[10, 50, 200])
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    options = {"engine": "grid", "chains": 4, "draws": bench_bayes.SETTINGS["draws"]}
    if args.batch_size:
        options["batch_size"] = args.batch_size
    chosen = settings_from_options(options)
    report: dict = {
        "machine": environment(),
        "settings": {
            "model": MODEL,
            "chains": chosen.chains,
            "draws": chosen.draws,
            "grid_size": chosen.grid_size,
            "grid_edge_tol": chosen.grid_edge_tol,
            "grid_refine_tol": chosen.grid_refine_tol,
            "batch_size": chosen.batch_size,
            "loop": bench_bayes.SETTINGS,
        },
        "regions": {},
    }
    method = f"bayes-{MODEL}"
    for r in args.regions:
        dgp = DGP(n_regions=r)
        entry = {"batched": bench_bayes.batched(method, dgp, args.reps, options)}
        entry["loop"] = bench_bayes.loop(MODEL, dgp, args.loop_reps)
        entry["speedup"] = (
            entry["batched"]["posteriors_per_second"] / entry["loop"]["posteriors_per_second"]
        )
        entry["target"] = TARGET
        entry["met"] = entry["speedup"] >= TARGET
        report["regions"][str(r)] = entry
        b, lp = entry["batched"], entry["loop"]
        print(
            f"R = {r}: grid {b['posteriors_per_second']:.1f} posteriors/s "
            f"({1000 * b['seconds_per_posterior']:.2f} ms each, {b['reps']} reps, converged "
            f"{b['converged_fraction']:.0%}, compile {b['compile_seconds']:.1f} s); loop "
            f"{lp['posteriors_per_second']:.3f} posteriors/s ({lp['reps']} reps, converged "
            f"{lp['converged_fraction']:.0%}, compile {lp['compile_seconds']:.1f} s); "
            f"speedup {entry['speedup']:.0f}x (target {TARGET}x)",
            flush=True,
        )
    bench_bayes.write_report(args.out, report)
    return report


if __name__ == "__main__":
    main()
