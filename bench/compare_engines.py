"""The default study's Bayesian estimates under each engine, paired against NUTS.

Issue 14 asks that the default study's estimates stay the same within MCSE
whichever engine is the default. This runs the Bayesian methods of
``configs/default.toml`` (same seed, conditions and ``[bayes] replications``, so
the same simulated panels and replication keys) under ``engine = "grid"`` and
``engine = "chees"``, each in a fresh ``mlmbias run`` process, and reads the
NUTS run from ``--nuts DIR`` (e.g. ``/work/main/results/default``) when its
manifest holds the same study, else runs it too. Each run also fits ``fe`` on the
same replications: its estimates are exact, so equal ``fe`` rows and equal
``rep_key`` columns show the engines saw the same data.

The comparison is paired, per condition x method x estimand (a "cell"): per
replication the engine's posterior mean minus NUTS's (also of the interval
limits, the width, the coverage indicator and the squared error), then the
mean of those differences and its MCSE, sd/sqrt(n). A cell passes when
|mean paired difference| <= ``--k`` (3) MCSE. With m cells and no difference
one expects m * P(|Z| > k) beyond it by chance (0.0027 m at k = 3); the
family-wise look is the Bonferroni p-value of the largest |t| over the m
cells. Since paired MCSEs are small (the engines differ by sampler noise, a
few hundredths of a posterior SD), the magnitude is also given in posterior SDs
(per replication difference / NUTS's posterior SD) and against the report's
own MCSE of the bias, sd(estimate)/sqrt(n): "the same within MCSE" in the
report's sense. Beside the pairs, each engine's measures as the report
computes them (``mlmbias.report.measures.performance``: bias, coverage, width,
RMSE, mean, with MCSEs) are stored.

    python bench/compare_engines.py [--nuts /work/main/results/default]
        [--work /tmp/mlmbias-engines-default] [--engines grid chees] [--k 3]

prints a compact table and writes bench/results/engines_default.json. Runs whose
folder under ``--work`` is already complete are reused (their wall time from
``ENGINE.wall.json`` beside the folder, written when this script ran them).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from mlmbias import load_results
from mlmbias.provenance import environment
from mlmbias.registry import get_method
from mlmbias.report.measures import _mean_se, performance
from mlmbias.runner import completeness
from mlmbias.store import part_files, read_manifest
from mlmbias.study import load_study

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "engines_default.json"
CHECK = "fe"  # an exact frequentist method run beside, to show the data are the same
KEYS = ["condition_index", "method", "estimand", "term", "rep"]
CELL = ["condition_index", "n_regions", "confounding", "method", "estimand", "term"]
STATS = ["bias", "cover", "width", "rmse", "mean"]
# paired quantities: name -> function of the merged rows (suffix _e engine, _n NUTS)
PAIRED = {
    "estimate": lambda m: m.estimate_e - m.estimate_n,
    "lower": lambda m: m.lower_e - m.lower_n,
    "upper": lambda m: m.upper_e - m.upper_n,
    "width": lambda m: m.width_e - m.width_n,
    "cover": lambda m: _covers(m, "_e") - _covers(m, "_n"),
    "sq_error": lambda m: (m.estimate_e - m.truth) ** 2 - (m.estimate_n - m.truth) ** 2,
}


def _covers(m: pd.DataFrame, s: str) -> pd.Series:
    return ((m["lower" + s] <= m.truth) & (m.truth <= m["upper" + s])).astype(float)


def bayes_methods(study) -> list[str]:
    return [m for m in study.methods if get_method(m).kind == "bayes"]


def overrides(study, engine: str) -> list[str]:
    """--set assignments: the Bayesian methods and the check, at [bayes] replications."""
    methods = [CHECK, *bayes_methods(study)]
    reps = study.bayes.get("replications", study.replications)
    return [f"methods={json.dumps(methods)}", f"replications={reps}", f'bayes.engine="{engine}"']


def run_engine(config: Path, study, engine: str, folder: Path) -> dict:
    """Run (or reuse) one engine's study in ``folder``; its wall time if known."""
    wall_file = folder.with_name(f"{folder.name}.wall.json")
    if read_manifest(folder) is not None and completeness(folder).complete:
        print(f"{engine}: reusing {folder}", flush=True)
        try:
            return json.loads(wall_file.read_text())
        except (OSError, ValueError):
            return {"wall_seconds": None}
    cmd = [sys.executable, "-m", "mlmbias", "run", str(config), "--out", str(folder), "--quiet"]
    for s in overrides(study, engine):
        cmd += ["--set", s]
    print(f"{engine}: {' '.join(cmd)}", flush=True)
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ))
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{engine} failed:\n{proc.stderr[-3000:]}")
    record = {"wall_seconds": wall, "command": cmd}
    wall_file.write_text(json.dumps(record, indent=2) + "\n")
    return record


def nuts_matches(folder: Path, study) -> tuple[bool, str]:
    """Whether a NUTS folder holds this study (every setting but the method list)."""
    manifest = read_manifest(folder)
    if manifest is None:
        return False, f"no manifest in {folder}"
    stored = dict(manifest["study"])
    want = json.loads(json.dumps(study.as_dict()))
    if stored.get("bayes", {}).get("engine", "nuts") != "nuts":
        return False, "its engine is not nuts"
    missing = {CHECK, *bayes_methods(study)} - set(stored["methods"])
    if missing:
        return False, f"it lacks {sorted(missing)}"
    for k in ("methods", "name", "replications"):
        stored.pop(k, None)
        want.pop(k, None)
    if stored != want:
        return False, f"its study differs: {stored} != {want}"
    if not completeness(folder).complete:
        return False, "it is incomplete"
    return True, "manifest matches the config (methods aside)"


def sampling_seconds(rows: pd.DataFrame, block: int) -> float:
    """Sum of the Bayesian units' fit times (one batch_seconds per unit)."""
    units = rows.assign(start=rows.rep - rows.rep % block)
    units = units.drop_duplicates(["condition_index", "method", "start"])
    return float(units.batch_seconds.sum())


def span(folder: Path) -> dict:
    """For a run made elsewhere: manifest creation to the newest part's mtime, a
    bound on its wall time (it covers the frequentist methods of the folder too)."""
    manifest, parts = read_manifest(folder), part_files(folder)
    if not manifest or not parts:
        return {}
    created = datetime.datetime.fromisoformat(manifest["created"]).timestamp()
    return {"span_seconds": max(p.stat().st_mtime for p in parts) - created}


def _t_stat(mean: float, mcse: float) -> float:
    if mcse > 0:
        return mean / mcse
    return 0.0 if mean == 0 else math.inf


def paired(engine_rows: pd.DataFrame, nuts_rows: pd.DataFrame, k: float) -> list[dict]:
    """One record per cell: the mean paired difference of each quantity, its MCSE, t."""
    cols = ["estimate", "se", "lower", "upper", "width", "converged"]
    m = engine_rows[[*KEYS, "rep_key", *cols]].merge(
        nuts_rows[[*KEYS, "rep_key", "truth", "n_regions", "confounding", *cols]],
        on=KEYS,
        suffixes=("_e", "_n"),
        validate="one_to_one",
    )
    if len(m) != len(nuts_rows) or (m.rep_key_e != m.rep_key_n).any():
        raise RuntimeError("the engine's replications are not NUTS's (rep_key differs)")
    m = m[np.isfinite(m.estimate_e) & np.isfinite(m.estimate_n)]
    out = []
    for key, g in m.groupby(CELL, sort=True):
        rec = dict(zip(CELL, key, strict=True))
        rec["n"] = n = len(g)
        rec["truth"] = float(g.truth.iloc[0])
        for name, f in PAIRED.items():
            if name in ("cover", "sq_error") and not np.isfinite(rec["truth"]):
                continue
            d = f(g).to_numpy(float)
            mean, mcse = _mean_se(d)  # the report's mean and MCSE
            t = _t_stat(mean, mcse)
            rec[name] = {"mean": mean, "mcse": mcse, "t": t, "pass": bool(abs(t) <= k)}
        z = ((g.estimate_e - g.estimate_n) / g.se_n).to_numpy(float)
        rec["estimate_sd"] = {  # the difference in NUTS posterior SDs
            "mean": float(z.mean()),
            "rms": float(np.sqrt((z**2).mean())),
            "max_abs": float(np.abs(z).max()),
        }
        # against the report's MCSE of the bias (unpaired): sd(estimate) / sqrt(n)
        report_mcse = float(g.estimate_n.std(ddof=1) / np.sqrt(n))
        rec["estimate_in_report_mcse"] = rec["estimate"]["mean"] / report_mcse
        rec["converged"] = {
            "engine": float(g.converged_e.mean()),
            "nuts": float(g.converged_n.mean()),
        }
        out.append(rec)
    return out


def family(cells: list[dict], k: float) -> dict:
    """Per quantity: cells compared, beyond k MCSE, expected by chance, Bonferroni p."""
    p_k = math.erfc(k / math.sqrt(2))
    out = {}
    for name in PAIRED:
        ts = [c[name]["t"] for c in cells if name in c]
        if not ts:
            continue
        big = max(abs(t) for t in ts)
        out[name] = {
            "cells": len(ts),
            "beyond": sum(abs(t) > k for t in ts),
            "expected_by_chance": len(ts) * p_k,
            "max_abs_t": big,
            "bonferroni_p": min(1.0, len(ts) * math.erfc(big / math.sqrt(2))),
        }
    sd = [c["estimate_sd"] for c in cells]
    out["estimate_sd"] = {
        "max_abs_mean": max(abs(s["mean"]) for s in sd),
        "max_rms": max(s["rms"] for s in sd),
        "max_abs": max(s["max_abs"] for s in sd),
    }
    out["estimate_in_report_mcse"] = {
        "max_abs": max(abs(c["estimate_in_report_mcse"]) for c in cells)
    }
    return out


def measures(rows: pd.DataFrame) -> list[dict]:
    """The report's measures per cell (est, mcse), as mlmbias report computes them."""
    s = performance(rows)
    s = s[s.stat.isin(STATS)]
    out = []
    for key, g in s.groupby(["condition_index", "method", "estimand", "term"], sort=True):
        rec = dict(zip(["condition_index", "method", "estimand", "term"], key, strict=True))
        for r in g.itertuples():
            rec[r.stat] = [float(r.est), float(r.mcse)]
        out.append(rec)
    return out


def check_data(engine_rows: pd.DataFrame, nuts_rows: pd.DataFrame) -> float:
    """Largest |difference| of the fe estimates on the same replications (0 if same data)."""
    m = engine_rows.merge(nuts_rows, on=KEYS, suffixes=("_e", "_n"))
    if len(m) != len(engine_rows):
        raise RuntimeError(f"{CHECK}: {len(m)} of {len(engine_rows)} replications matched")
    return float(np.abs(m.estimate_e - m.estimate_n).max())


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def table(engine: str, cells: list[dict], k: float) -> list[str]:
    lines = [
        f"{engine} vs nuts: mean paired difference / MCSE (t); est in posterior SDs",
        f"{'R':>4} {'conf':>4} {'method':<14}{'estimand':<11}"
        f"{'d_est':>9} {'t':>6} {'d/SD':>7} {'t_lo':>6} {'t_up':>6} {'t_cov':>6} {'t_se2':>6}",
    ]
    for c in cells:
        flag = " *" if any(not c[q]["pass"] for q in PAIRED if q in c) else ""
        tc = f"{c['cover']['t']:6.2f}" if "cover" in c else f"{'-':>6}"
        ts = f"{c['sq_error']['t']:6.2f}" if "sq_error" in c else f"{'-':>6}"
        lines.append(
            f"{c['n_regions']:>4} {c['confounding']:>4} {c['method']:<14}{c['estimand']:<11}"
            f"{c['estimate']['mean']:9.5f} {c['estimate']['t']:6.2f} "
            f"{c['estimate_sd']['mean']:7.4f} {c['lower']['t']:6.2f} {c['upper']['t']:6.2f} "
            f"{tc} {ts}{flag}"
        )
    return lines


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "default.toml")
    parser.add_argument("--nuts", type=Path, help="a finished NUTS run of the same study")
    parser.add_argument("--work", type=Path, default=Path("/tmp/mlmbias-engines-default"))
    parser.add_argument("--engines", nargs="+", default=["grid", "chees"])
    parser.add_argument("--k", type=float, default=3.0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    study = load_study(args.config)
    methods = bayes_methods(study)
    args.work.mkdir(parents=True, exist_ok=True)

    runs: dict[str, dict] = {}
    nuts_dir = args.nuts
    if nuts_dir is not None:
        ok, why = nuts_matches(nuts_dir, study)
        print(f"nuts: {nuts_dir}: {why}", flush=True)
        if not ok:
            nuts_dir = None
    if nuts_dir is None:
        nuts_dir = args.work / "nuts"
        runs["nuts"] = run_engine(args.config, study, "nuts", nuts_dir)
    else:
        runs["nuts"] = {"wall_seconds": None, "reused": str(nuts_dir), **span(nuts_dir)}
    for engine in args.engines:
        runs[engine] = run_engine(args.config, study, engine, args.work / engine)

    def rows_of(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
        d = load_results(folder)
        manifest = read_manifest(folder)
        reps = study.bayes.get("replications", study.replications)
        d = d[d.rep < reps]
        return d[d.method.isin(methods)], d[d.method == CHECK], manifest

    nuts_rows, nuts_fe, nuts_manifest = rows_of(nuts_dir)
    report: dict = {
        "machine": environment(),
        "config": str(
            args.config.relative_to(ROOT) if args.config.is_relative_to(ROOT) else args.config
        ),
        "nuts_folder": str(nuts_dir),
        "nuts_created": nuts_manifest.get("created"),
        "k": args.k,
        "methods": methods,
        "replications": int(nuts_rows.groupby(["condition_index", "method"]).size().min()),
        "conditions": int(nuts_rows.condition_index.nunique()),
        "engines": {},
    }
    block = nuts_manifest["blocks"]["bayes"]
    report["engines"]["nuts"] = {
        **runs["nuts"],
        "sampling_seconds": sampling_seconds(nuts_rows, block),
        "converged_fraction": float(nuts_rows.converged.mean()),
        "measures": measures(nuts_rows),
    }
    lines = []
    for engine in args.engines:
        rows, fe, manifest = rows_of(args.work / engine)
        cells = paired(rows, nuts_rows, args.k)
        fam = family(cells, args.k)
        report["engines"][engine] = {
            **runs[engine],
            "created": manifest.get("created"),
            "sampling_seconds": sampling_seconds(rows, manifest["blocks"]["bayes"]),
            "converged_fraction": float(rows.converged.mean()),
            "same_data_max_abs_fe_difference": check_data(fe, nuts_fe),
            "family": fam,
            "cells": cells,
            "measures": measures(rows),
        }
        lines += table(engine, cells, args.k)
        e = fam["estimate"]
        wall = runs[engine].get("wall_seconds")
        lines.append(
            f"{engine}: {e['cells']} cells, posterior means beyond {args.k:g} MCSE in "
            f"{e['beyond']} (chance {e['expected_by_chance']:.2f}); largest |t| "
            f"{e['max_abs_t']:.2f} (Bonferroni p {e['bonferroni_p']:.3g}), largest |mean| "
            f"{fam['estimate_sd']['max_abs_mean']:.4f} posterior SDs, "
            f"{fam['estimate_in_report_mcse']['max_abs']:.3f} of the report's bias MCSE; "
            + ", ".join(
                f"{q} beyond {fam[q]['beyond']}/{fam[q]['cells']}"
                for q in PAIRED
                if q != "estimate"
            )
            + f"; wall {'n/a' if wall is None else f'{wall:.0f} s'}"
        )
        lines.append("")
    print("\n".join(lines))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(_jsonable(report), indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
