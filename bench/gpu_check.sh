#!/usr/bin/env bash
# GPU check, within 8 minutes: the backend and devices, the batched Bayesian
# benchmark at several GPU batch sizes, and a reduced default study.
#
#   bash bench/gpu_check.sh                     # on a GPU machine
#   GPU_CHECK_SMALL=1 bash bench/gpu_check.sh   # tiny sizes: checks the script on CPU
#
# Install on a GPU machine: pip install -e '.[cuda]' (jax[cuda12] >= 0.11.1;
# '.[cuda13]' for CUDA 13); or use a python3 that already has jax (CUDA),
# numpyro, pandas, pyarrow and scipy: mlmbias need not be installed, the
# repository is put on PYTHONPATH. The interpreter is
# $PY if set, else the first of .venv/bin/python and python3 whose JAX sees an
# accelerator, else the first that imports JAX at all.
#
# Writes into ${GPU_CHECK_OUT:-${OUT:-bench/results/gpu}}: devices.json,
# bayes_batches.json, study.json and gpu_check.log (bench/write_results.py reads
# bench/results/gpu/*.json). Each step has its own time limit inside
# GPU_CHECK_BUDGET seconds (default 470); a step cut short keeps what it wrote.
set -uo pipefail
cd "$(dirname "$0")/.."

DEST=${GPU_CHECK_OUT:-${OUT:-bench/results/gpu}}
SMALL=${GPU_CHECK_SMALL:-0}
BUDGET=${GPU_CHECK_BUDGET:-470}
STUDY_DIR=${GPU_CHECK_STUDY_DIR:-${TMPDIR:-/tmp}/mlmbias_gpu_check_study}
mkdir -p "$DEST"
LOG="$DEST/gpu_check.log"
: >"$LOG"
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1

if [ "$SMALL" != 0 ]; then
  BATCHES=${GPU_CHECK_BATCHES:-"2 4"}
  WARMUP=50 DRAWS=50
  STUDY_SET=(--set replications=20 --set bayes.replications=4 --set bayes.batch_size=4
    --set bayes.warmup=50 --set bayes.draws=50 --set "grid.n_regions=[10]")
else
  BATCHES=${GPU_CHECK_BATCHES:-"64 256 1024"}
  WARMUP=1000 DRAWS=1000
  STUDY_SET=(--set replications=200 --set bayes.replications=256
    --set "grid.n_regions=[10, 50, 200]")
fi
export GC_BATCHES="$BATCHES" GC_WARMUP="$WARMUP" GC_DRAWS="$DRAWS"

start=$(date +%s)
left() { echo $((BUDGET - ($(date +%s) - start))); }
say() { echo "$*" | tee -a "$LOG"; }

# ---------------------------------------------------------------- interpreter
if [ -z "${PY:-}" ]; then
  first=""
  for cand in .venv/bin/python python3; do
    command -v "$cand" >/dev/null 2>&1 || [ -x "$cand" ] || continue
    backend=$(timeout 120 "$cand" -c 'import jax, numpyro, pandas; print(jax.default_backend())' \
      2>/dev/null | tail -n 1)
    [ -n "$backend" ] || continue
    [ -n "$first" ] || first=$cand
    if [ "$backend" != cpu ]; then PY=$cand; break; fi
  done
  PY=${PY:-$first}
fi
if [ -z "${PY:-}" ]; then
  say "gpu_check: no python with jax, numpyro and pandas found (set PY=...)"
  exit 1
fi
say "gpu_check: python $PY, results in $DEST, budget ${BUDGET} s, small=$SMALL"

# ---------------------------------------------------------------- 1. devices
timeout 120 "$PY" - "$DEST/devices.json" <<'PYEOF' 2>&1 | tee -a "$LOG"
import datetime, json, os, platform, shutil, subprocess, sys
import jax, numpyro
info = {
    "command": "bash bench/gpu_check.sh",
    "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    "python": sys.executable, "python_version": platform.python_version(),
    "platform": platform.platform(), "cpu_count": os.cpu_count(),
    "jax": jax.__version__, "numpyro": numpyro.__version__,
    "backend": jax.default_backend(), "devices": [str(d) for d in jax.devices()],
    "device_kinds": sorted({d.device_kind for d in jax.devices()}),
}
if shutil.which("nvidia-smi"):
    q = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
                        "--format=csv,noheader"], capture_output=True, text=True)
    info["nvidia_smi"] = q.stdout.strip().splitlines()
# jax/jaxlib 0.10.2 and 0.11.0 lower float32 scatter-adds on CUDA to CAS loops
# (jax-ml/jax#38806); mlmbias runs in float64, but say so when it is that pair.
import re
v = tuple(int(x) for x in re.match(r"(\d+)\.(\d+)\.(\d+)", jax.__version__).groups())
info["jax_in_slow_gpu_scatter_range"] = (0, 10, 2) <= v <= (0, 11, 0)
print(f"backend: {info['backend']}")
print(f"devices: {', '.join(info['devices'])} ({', '.join(info['device_kinds'])})")
print(f"jax {info['jax']}, numpyro {info['numpyro']}, python {info['python_version']}")
if info["jax_in_slow_gpu_scatter_range"] and info["backend"] == "gpu":
    print(f"warning: jax {jax.__version__} has the slow float32 GPU scatter-add of "
          "jax-ml/jax#38806 (0.10.2-0.11.0); pip install -e '.[cuda]' takes >= 0.11.1")
for line in info.get("nvidia_smi", []):
    print(f"nvidia-smi: {line}")
with open(sys.argv[1], "w") as f:
    json.dump(info, f, indent=2)
PYEOF

# ---------------------------------------------------------------- 2. Bayesian batches
# Leaves at least 200 s (small: 30 s) for the study.
reserve=200
[ "$SMALL" != 0 ] && reserve=30
t=$(($(left) - reserve))
[ "$t" -gt 280 ] && t=280
say ""
say "== batched Bayesian inference at batch sizes $BATCHES (R = 50, 4 chains, $WARMUP + $DRAWS), limit ${t} s"
if [ "$t" -gt 10 ]; then
  timeout "$t" "$PY" - "$DEST/bayes_batches.json" <<'PYEOF' 2>&1 | tee -a "$LOG"
import datetime, json, os, sys, time
import jax, numpy as np, numpyro
from mlmbias import DGP, GroupStats, group_stats, replication_keys, simulate_condition
from mlmbias.registry import Batch, get_method
from mlmbias.seeding import method_keys
sys.path.insert(0, "bench")
from _derive import gpu_fastest

out_path = sys.argv[1]
batches = [int(b) for b in os.environ["GC_BATCHES"].split()]
settings = {"chains": 4, "warmup": int(os.environ["GC_WARMUP"]), "draws": int(os.environ["GC_DRAWS"])}
seed, level, dgp = 20250713, 0.94, DGP(n_regions=50)
result = {
    "command": "bash bench/gpu_check.sh",
    "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    "backend": jax.default_backend(), "devices": [str(d) for d in jax.devices()],
    "jax": jax.__version__, "numpyro": numpyro.__version__,
    "settings": {**settings, "n_regions": dgp.n_regions, "seed": seed},
    "timing": "one batch of batch_size replications; compilation excluded (a first "
              "fit of one replication, padded to the batch, compiles and is timed apart)",
    "rows": [],
}
stats = group_stats(simulate_condition(dgp, seed, np.arange(max(batches))))
for b in batches:
    for model in ("mundlak", "re"):
        method = f"bayes-{model}"
        keys = np.asarray(method_keys(replication_keys(seed, dgp, np.arange(b)), method))
        sub = GroupStats(*(np.asarray(a)[:b] for a in stats))
        one = GroupStats(*(a[:1] for a in sub))
        fit = get_method(method).load()
        options = {**settings, "batch_size": b}
        t0 = time.perf_counter()
        fit(Batch(keys[:1], one), level, options)
        warm = time.perf_counter() - t0
        t0 = time.perf_counter()
        out = fit(Batch(keys, sub), level, options)
        seconds = time.perf_counter() - t0
        row = {
            "model": method, "batch_size": b, "reps": b, "seconds": seconds,
            "posteriors_per_second": b / seconds, "first_call_seconds": warm,
            "converged_fraction": float(np.mean(out[("beta", "x0")]["converged"])),
            "mean_beta": float(np.mean(out[("beta", "x0")]["estimate"])),
        }
        result["rows"].append(row)
        result["fastest"] = gpu_fastest(result["rows"])  # per model, and over the models
        with open(out_path + ".tmp", "w") as f:
            json.dump(result, f, indent=2)
        os.replace(out_path + ".tmp", out_path)
        print(f"{method} batch {b}: {row['posteriors_per_second']:.1f} posteriors/s "
              f"({seconds:.1f} s; first call {warm:.1f} s), "
              f"converged {row['converged_fraction']:.0%}", flush=True)
PYEOF
  say "(exit status $?)"
else
  say "skipped: no time left"
fi

# ---------------------------------------------------------------- 3. reduced default study
t=$(($(left) - 15))
say ""
say "== reduced default study: configs/default.toml ${STUDY_SET[*]}, limit ${t} s"
if ! "$PY" -c 'import pyarrow' 2>/dev/null; then
  say "skipped: pyarrow is missing (the study store writes Parquet)"
elif [ "$t" -gt 10 ]; then
  rm -rf "$STUDY_DIR"
  s0=$(date +%s)
  timeout "$t" "$PY" -m mlmbias run configs/default.toml --out "$STUDY_DIR" --quiet \
    "${STUDY_SET[@]}" 2>&1 | tee -a "$LOG"
  status=${PIPESTATUS[0]}
  wall=$(($(date +%s) - s0))
  say "(exit status $status, ${wall} s)"
  timeout 60 "$PY" - "$DEST/study.json" "$STUDY_DIR" "$status" "$wall" "${STUDY_SET[*]}" \
    <<'PYEOF' 2>&1 | tee -a "$LOG"
import datetime, json, sys
from pathlib import Path
out_path, folder, status, wall, sets = sys.argv[1:6]
info = {
    "command": f"mlmbias run configs/default.toml --out STUDY {sets}",
    "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    "exit_status": int(status), "wall_seconds": float(wall),
    "timed_out": int(status) in (124, 137),
}
try:
    from mlmbias import load_results
    df = load_results(folder)
    info["rows"] = int(len(df))
    info["conditions"] = int(df["condition_index"].nunique())
    per = df.drop_duplicates(["condition_index", "method", "rep"])
    info["replications_by_method"] = {k: int(v) for k, v in per.groupby("method").size().items()}
    # batch_seconds repeats on every row of a batch: one value per (condition, method, batch)
    batches = df.drop_duplicates(["condition_index", "method", "batch_seconds"])
    info["fit_seconds_by_method"] = {
        k: float(v) for k, v in batches.groupby("method")["batch_seconds"].sum().items()
    }
    info["failed_fraction"] = float(df["failed"].mean())
except Exception as exc:  # noqa: BLE001
    info["error"] = f"{type(exc).__name__}: {exc}"
errors = Path(folder) / "errors"
info["failures"] = len(list(errors.glob("**/*.json"))) if errors.exists() else 0
Path(out_path).write_text(json.dumps(info, indent=2))
print(json.dumps({k: v for k, v in info.items() if k != "fit_seconds_by_method"}))
PYEOF
else
  say "skipped: no time left"
fi

say ""
say "gpu_check finished in $(($(date +%s) - start)) s; results in $DEST"
