"""End to end: a 256-replication `mlmbias run` of bayes-mundlak per Bayesian engine.

For each engine (nuts, grid, chees) a study of ``--reps`` replications of the
seed's scenario at R regions (default 10 and 50) with ``bayes-mundlak`` alone
runs as a user runs it: ``mlmbias run STUDY --out DIR`` in a fresh process,
with no compilation cache (``MLMBIAS_NO_CACHE=1``), so the wall time includes
the start, the compilation, the simulation, the sampling, the summaries and the
store. The engines' own settings are their defaults (NUTS: 4 chains, 1000
warm-up + 1000 draws; grid: 32², 4 x 1000 draws; chees: 16 chains, 300 + 250).

Reported per engine and R: wall seconds, posteriors per second end to end, the
converged fraction (each engine's own check), and, where
``bench/results/grid.json`` holds the ``MCMC.run`` loop of the same ``make
perf`` run (compilation excluded there, so the ratio understates nothing on the
loop's side), the end-to-end rate over the loop's. The run uses every core
(``make bench``'s setting, not the one-thread setting of the per-posterior
benchmarks).

    python bench/bench_engines.py [--reps 256] [--regions 10 50] [--engines nuts grid chees]

prints the figures and writes bench/results/engines.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mlmbias import load_results
from mlmbias.provenance import environment

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "engines.json"
MLMBIAS = Path(sys.executable).parent / "mlmbias"

STUDY = """seed = 20261129
replications = {reps}
methods = ["bayes-mundlak"]

[grid]
n_regions = [{regions}]

[bayes]
engine = "{engine}"
"""


def _loop_rates() -> dict[str, float]:
    """The MCMC.run loop's posteriors/s by R, from grid.json (same make perf run)."""
    try:
        grid = json.loads((HERE / "results" / "grid.json").read_text())
    except (OSError, ValueError):
        return {}
    return {r: e["loop"]["posteriors_per_second"] for r, e in grid.get("regions", {}).items()}


def run_engine(engine: str, regions: int, reps: int, folder: Path) -> dict:
    study = folder / f"{engine}_{regions}.toml"
    study.write_text(STUDY.format(reps=reps, regions=regions, engine=engine))
    out = folder / f"{engine}_{regions}"
    env = dict(os.environ, MLMBIAS_NO_CACHE="1")
    start = time.perf_counter()
    proc = subprocess.run(
        [str(MLMBIAS), "run", str(study), "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{engine} at R = {regions} failed:\n{proc.stderr[-3000:]}")
    rows = load_results(out)
    rows = rows[(rows.estimand == "beta")]
    if len(rows) != reps or not np.isfinite(rows.estimate).all():
        raise RuntimeError(f"{engine} at R = {regions}: {len(rows)} rows, expected {reps}")
    return {
        "wall_seconds": wall,
        "reps": reps,
        "posteriors_per_second": reps / wall,
        "converged_fraction": float(rows.converged.mean()),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=256)
    parser.add_argument("--regions", type=int, nargs="+", default=[10, 50])
    parser.add_argument("--engines", nargs="+", default=["nuts", "grid", "chees"])
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    loop = _loop_rates()
    report: dict = {"machine": environment(), "reps": args.reps, "engines": {}}
    with tempfile.TemporaryDirectory(prefix="mlmbias-engines-") as tmp:
        for engine in args.engines:
            for r in args.regions:
                e = run_engine(engine, r, args.reps, Path(tmp))
                if str(r) in loop:
                    e["loop_posteriors_per_second"] = loop[str(r)]
                    e["speedup"] = e["posteriors_per_second"] / loop[str(r)]
                report["engines"].setdefault(engine, {})[str(r)] = e
                ratio = f", {e['speedup']:.0f}x the MCMC.run loop" if "speedup" in e else ""
                print(
                    f"{engine} R = {r}: {e['wall_seconds']:.1f} s for {e['reps']} replications "
                    f"end to end ({e['posteriors_per_second']:.2f} posteriors/s{ratio}), "
                    f"converged {e['converged_fraction']:.0%}",
                    flush=True,
                )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
