"""``make perf``: the throughput figures, as pytest-benchmark benchmarks.

    .venv/bin/python -m pytest bench/test_perf.py \\
        --benchmark-json bench/results/perf.json -p no:cacheprovider
    .venv/bin/python bench/write_results.py

Not collected by ``make test`` (``testpaths`` is ``tests``). Every figure is
measured in this run, against baselines measured in this run; nothing is
asserted about time. Besides pytest-benchmark's JSON, the suite writes the
figures and ratios to ``bench/results/perf_figures.json`` (after every test, so
a run cut short keeps what it measured), which ``bench/write_results.py`` turns
into ``bench/RESULTS.md``.

(a) ``test_bayes_batched`` / ``test_bayes_loop``: posteriors per second of the
    batched collapsed ``bayes-mundlak`` and ``bayes-re`` (the registry's fit
    functions: NUTS vmapped over replications x chains, summaries and
    diagnostics included) against a loop of ``numpyro.infer.MCMC.run`` on the
    observation-level NumPyro model, one replication at a time, at R = 10, 50
    and 200; 4 chains, 1000 warm-up + 1000 draws on both sides; the converged
    fraction (split R-hat <= 1.01 and bulk ESS >= 400 for every monitored
    quantity, no divergences) for both. Compilation is excluded on both sides:
    the batched side first fits one replication of each size-class tier (which
    compiles every program the timed batch uses), the loop side first runs one
    extra replication. The ``MCMC`` object is built once with
    ``jit_model_args=True`` and its chains run vectorized; NumPyro 0.22 still
    compiles its sampling loop again at every ``MCMC.run``, so JAX's persistent
    compilation cache is on (``bench_bayes.LOOP_CACHE``) and loads that program
    instead: the fastest honest loop we found, not the naive one.
    ``test_loop_variants`` times the loop with and without the cache, chains
    sequential and vectorized. The loop runs 10 replications per R (3 per variant).
(b) ``test_frequentist_batched`` / ``test_frequentist_loop``: all thirteen
    frequentist estimators batched in JAX against the linearmodels/statsmodels
    loop, through ``bench/bench_frequentist.py``'s own functions.
(c) ``test_batch_size_sweep``: posteriors per second and lockstep waste at 1 to
    256 replications per batch (R = 50); ``test_sweep_default`` picks the
    default batch size from it. The timed work is the registry's fit function's
    (``draws.sample`` then ``methods.summarize_draws``), called directly so
    that the draws' lockstep accounting is kept. Lockstep: a vmapped NUTS
    iteration lasts as long as the longest trajectory of the batch
    (replications x chains), so per iteration the batch pays max(steps) while
    each chain needs its own; the efficiency is sum over iterations of
    mean(steps) / sum of max(steps), warm-up included (``Draws.batch_steps``),
    and the waste is 1 - efficiency.
(d) ``test_memory_r1000``: peak resident memory of a fresh process running one
    Bayesian unit as the runner does (simulate, group statistics, fit) at
    R = 1000 for a few batch sizes, extrapolated linearly to the largest batch that fits in 24 GiB,
    checked against XLA's own buffer accounting of the NUTS program compiled
    (not run) at that size.

Both sides of every comparison run on one CPU thread (``XLA_FLAGS`` and the
BLAS thread variables, unless already set), so that they compete for the same
resources. ``PERF_SMALL=1`` shrinks every size for a quick check of the suite.
"""

from __future__ import annotations

import os

os.environ.setdefault(
    "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
)
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
# First: bench_bayes turns on JAX's persistent compilation cache (for the MCMC.run
# loop, see there) through environment variables that JAX reads on import.
import bench_bayes as bb  # noqa: E402, I001
from _checks import check_estimates  # noqa: E402
import _derive  # noqa: E402

import datetime  # noqa: E402
import functools  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from mlmbias import DGP, GroupStats, group_stats, replication_keys, simulate_condition  # noqa: E402
from mlmbias.bayes import collapsed as C  # noqa: E402
from mlmbias.provenance import environment  # noqa: E402
from mlmbias.bayes import draws as bayes_draws  # noqa: E402
from mlmbias.bayes.methods import summarize_draws  # noqa: E402
from mlmbias.bayes.options import default_batch_size, settings_from_options  # noqa: E402
from mlmbias.frequentist import METHOD_SPECS  # noqa: E402
from mlmbias.registry import Batch, get_method  # noqa: E402
from mlmbias.seeding import method_keys  # noqa: E402

import bench_frequentist as bf  # noqa: E402

SMALL = os.environ.get("PERF_SMALL", "") not in ("", "0")
FIGURES_PATH = Path(os.environ.get("PERF_FIGURES", BENCH / "results" / "perf_figures.json"))
COMMAND = (
    "make perf  (.venv/bin/python -m pytest bench/test_perf.py "
    "--benchmark-json bench/results/perf.json -p no:cacheprovider)"
)
SEED = 20250713
LEVEL = 0.94
GiB = 2**30

if SMALL:
    SETTINGS = {"chains": 4, "warmup": 60, "draws": 60}
    REGIONS = (10, 50)
    BATCHED_REPS = 8
    LOOP_REPS = {10: 1, 50: 1}
    VARIANT_REPS = 1
    SWEEP_SIZES = (1, 2, 4)
    SWEEP_MIN_REPS = 4
    SWEEP_MODELS = ("mundlak",)
    FREQ_REPS, FREQ_LOOP = 500, 2
    MEMORY_SIZES = (2, 4, 8)
    MEMORY_REGIONS = 200
else:
    SETTINGS = {"chains": 4, "warmup": 1000, "draws": 1000}
    REGIONS = (10, 50, 200)
    BATCHED_REPS = 64
    # the loop's seconds per posterior vary with the replication (tree depths): 10 each
    LOOP_REPS = {10: 10, 50: 10, 200: 10}
    VARIANT_REPS = 3
    SWEEP_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256)
    SWEEP_MIN_REPS = 64
    SWEEP_MODELS = ("mundlak", "re")
    FREQ_REPS, FREQ_LOOP = 10_000, 20
    MEMORY_SIZES = (16, 64, 256)
    MEMORY_REGIONS = 1000
SWEEP_MODELS = tuple(os.environ.get("PERF_SWEEP_MODELS", ",".join(SWEEP_MODELS)).split(","))
SWEEP_REGIONS = 50
MEMORY_LIMIT = 24 * GiB
# Pick the smallest batch whose throughput is within this fraction of the best.
DEFAULT_TOLERANCE = 0.05


# --------------------------------------------------------------------------- figures


FIGURES: dict = {
    "command": COMMAND,
    "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    "small": SMALL,
    "settings": {
        **SETTINGS,
        "level": LEVEL,
        "seed": SEED,
        "batched_reps": BATCHED_REPS,
        "loop_reps": {str(k): v for k, v in LOOP_REPS.items()},
        "default_batch_size": default_batch_size(),
        # the converged fraction's bounds, on both sides (bench_bayes.loop_runner)
        "rhat_max": settings_from_options(SETTINGS).rhat_max,
        "ess_min": settings_from_options(SETTINGS).ess_min,
    },
    "bayes": {},
    "frequentist": {},
    "sweep": {},
    "memory": {},
}


def _save() -> None:
    FIGURES["machine"] = environment()
    FIGURES["profile"] = _derive.profile(FIGURES)  # where the time goes, once its inputs exist
    FIGURES["finished"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    FIGURES_PATH.parent.mkdir(parents=True, exist_ok=True)
    tmp = FIGURES_PATH.with_suffix(".tmp")
    tmp.write_text(json.dumps(FIGURES, indent=2, default=float) + "\n")
    tmp.replace(FIGURES_PATH)


def _timed(benchmark, fn, rounds: int = 1):
    """Run ``fn`` under pytest-benchmark (``rounds`` rounds, one call each) and
    return its last result and the median of our own wall-clock times (the same
    calls), so the figures exist with ``--benchmark-disable`` too."""
    times: list[float] = []
    results: list = []

    def target():
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
        results.append(out)
        return out

    benchmark.pedantic(target, rounds=rounds, iterations=1, warmup_rounds=0)
    return results[-1], statistics.median(times)


@pytest.fixture(autouse=True)
def _free_compiled_programs():
    """Drop every compiled program after each test. XLA's CPU JIT keeps each
    executable's code in its own memory mappings; the suite compiles hundreds of
    programs (every batch size, R and loop model), which otherwise exhausts the
    kernel's per-process mapping limit (vm.max_map_count, 65530 here) and
    aborts with "LLVM compilation error: Cannot allocate memory"."""
    yield
    bayes_draws._program.cache_clear()
    jax.clear_caches()
    gc.collect()


# --------------------------------------------------------------------------- Bayesian inputs


@functools.cache
def _panel_stats(n_regions: int, reps: int) -> GroupStats:
    panel = simulate_condition(DGP(n_regions=n_regions), SEED, np.arange(reps))
    return GroupStats(*(np.asarray(a) for a in group_stats(panel)))


def _tiers(stats: GroupStats) -> np.ndarray:
    """The size-class tier of every replication (one compiled program per tier)."""
    n = np.asarray(stats.n)
    ids, _ = C.size_classes(n)
    return np.array([bayes_draws.class_tier(int(d), n.shape[1]) for d in ids.max(axis=1) + 1])


def _inputs(method: str, n_regions: int, idx: np.ndarray) -> Batch:
    dgp = DGP(n_regions=n_regions)
    stats = _panel_stats(n_regions, int(max(idx.max() + 1, 1)))
    keys = np.asarray(method_keys(replication_keys(SEED, dgp, idx), method))
    return Batch(keys, GroupStats(*(a[idx] for a in stats)))


def _subset(batch: Batch, idx: np.ndarray) -> Batch:
    return Batch(batch.keys[idx], GroupStats(*(a[idx] for a in batch.stats)))


def _one_per_tier(batch: Batch) -> np.ndarray:
    _, first = np.unique(_tiers(batch.stats), return_index=True)
    return np.sort(first)


def _same_tier(n_regions: int, reps: int) -> np.ndarray:
    """``reps`` replication indices that all share the most common tier (one program,
    no padding from a second tier)."""
    pool = max(2 * reps, 64)
    while True:
        tiers = _tiers(_panel_stats(n_regions, pool))
        values, counts = np.unique(tiers, return_counts=True)
        members = np.flatnonzero(tiers == values[np.argmax(counts)])
        if len(members) >= reps:
            return members[:reps]
        pool *= 2


def _batched_fit(method: str, batch: Batch, options: dict) -> tuple:
    """A fit of ``batch`` with every program compiled beforehand; returns the timed
    callable and the seconds of the warm-up (compilation + one batch per tier)."""
    fit = get_method(method).load()
    t0 = time.perf_counter()
    fit(_subset(batch, _one_per_tier(batch)), LEVEL, options)
    warm = time.perf_counter() - t0
    return (lambda: fit(batch, LEVEL, options)), warm


def _converged(out: dict) -> np.ndarray:
    return np.asarray(out[("beta", "x0")]["converged"], bool)


# --------------------------------------------------------------------------- (a) Bayesian


def _entry(model: str, n_regions: int) -> dict:
    return FIGURES["bayes"].setdefault(f"bayes-{model}", {}).setdefault(str(n_regions), {})


def _ratio(entry: dict) -> None:
    _derive.ratio(entry, "posteriors_per_second", _derive.BAYES_TARGET)


@pytest.mark.parametrize("n_regions", REGIONS)
@pytest.mark.parametrize("model", ["mundlak", "re"])
def test_bayes_batched(benchmark, model: str, n_regions: int) -> None:
    method = f"bayes-{model}"
    options = dict(SETTINGS)
    batch = _inputs(method, n_regions, np.arange(BATCHED_REPS))
    run, warm = _batched_fit(method, batch, options)
    out, seconds = _timed(benchmark, run)
    reps = BATCHED_REPS
    cols = out[("beta", "x0")]
    label = f"{method} batched, R = {n_regions}"
    check_estimates(label, method, cols["estimate"], cols["converged"])
    figure = {
        "reps": reps,
        "batch_size": settings_from_options(options).batch_size,
        "seconds": seconds,
        "seconds_per_posterior": seconds / reps,
        "posteriors_per_second": reps / seconds,
        "warmup_call_seconds": warm,
        "converged_fraction": float(_converged(out).mean()),
        "mean_beta": float(np.mean(out[("beta", "x0")]["estimate"])),
    }
    benchmark.extra_info.update(figure)
    entry = _entry(model, n_regions)
    entry["batched"] = figure
    _ratio(entry)
    _save()


@pytest.mark.parametrize("n_regions", REGIONS)
@pytest.mark.parametrize("model", ["mundlak", "re"])
def test_bayes_loop(benchmark, model: str, n_regions: int) -> None:
    reps = LOOP_REPS[n_regions]
    run, first = bb.loop_runner(model, DGP(n_regions=n_regions), reps, SETTINGS)
    out, seconds = _timed(benchmark, run)
    # NumPyro's observation-level models converge less often (bayes-re at R = 10:
    # 1 of 10), so only the estimates are checked here
    check_estimates(f"{model} loop, R = {n_regions}", f"bayes-{model}", [b for _, b in out])
    figure = {
        "reps": reps,
        "seconds": seconds,
        "seconds_per_posterior": seconds / reps,
        "posteriors_per_second": reps / seconds,
        "first_run_seconds": first,
        "compile_seconds": max(first - seconds / reps, 0.0),
        "converged_fraction": float(np.mean([ok for ok, _ in out])),
        "mean_beta": float(np.mean([b for _, b in out])),
        "chain_method": "vectorized",
        "compilation_cache": bb.LOOP_CACHE,
    }
    benchmark.extra_info.update(figure)
    entry = _entry(model, n_regions)
    entry["loop"] = figure
    _ratio(entry)
    _save()


def _env_without_loop_cache() -> dict[str, str]:
    """This process's environment less the persistent compilation cache that
    bench_bayes turns on for the loop: a child process then runs as a study does."""
    return {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}


LOOP_VARIANTS = (  # (chain method, persistent compilation cache, iterations or None: SETTINGS)
    ("sequential", False, None),  # MCMC.run as NumPyro 0.22 ships it: recompiles at every run
    ("sequential", True, None),
    ("vectorized", True, None),  # the loop of test_bayes_loop
    ("vectorized", True, 10),  # 10 + 10 iterations: what a run costs besides sampling
)


def test_loop_variants() -> None:
    """Where the loop's time goes: the same MCMC.run loop (bayes-mundlak, R = 50)
    with NumPyro's recompilation at every run and without it, chains sequential
    and vectorized, and with 10 + 10 iterations (the cost of a run besides its
    sampling); each in a fresh process (the cache is set when JAX loads)."""
    rows = []
    for method, cache, iterations in LOOP_VARIANTS:
        warmup, draws = (
            (iterations, iterations) if iterations else (SETTINGS["warmup"], SETTINGS["draws"])
        )
        cmd = [sys.executable, str(BENCH / "bench_bayes.py"), "--loop-only", method]
        cmd += ["--regions", "50", "--loop-reps", str(VARIANT_REPS)]
        cmd += ["--warmup", str(warmup), "--draws", str(draws)]
        env = {**_env_without_loop_cache(), "BENCH_LOOP_CACHE": "1" if cache else "0"}
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    FIGURES["loop_variants"] = {"model": "bayes-mundlak", "n_regions": 50, "rows": rows}
    _save()


# --------------------------------------------------------------------------- (b) frequentist


@functools.cache
def _freq_panel():
    panel = simulate_condition(DGP(n_regions=50), bf.SEED, np.arange(FREQ_REPS))
    return jax.block_until_ready(panel)


def _freq_ratio() -> None:
    _derive.ratio(FIGURES["frequentist"], "reps_per_second", _derive.FREQ_TARGET)


def test_frequentist_batched(benchmark) -> None:
    panel = _freq_panel()
    # bench_frequentist's own measurement: compiles, times one batch, peak memory
    info, checked = bf.batched(panel, FREQ_REPS)  # its outputs are checked there
    fits = {s.name: s.load() for s in METHOD_SPECS if s.name not in bf.OWN_BENCH}

    def run_all():  # the same work as bench_frequentist.batched's timed run
        batch = Batch(keys=None, stats=group_stats(panel))
        return {name: fit(batch, bf.LEVEL, {}) for name, fit in fits.items()}

    outs, seconds = _timed(benchmark, run_all, rounds=3)
    for name, out in outs.items():  # what was timed is what was checked
        for key, cols in out.items():
            np.testing.assert_array_equal(cols["estimate"], checked[name][key]["estimate"])
    figure = {
        "reps": FREQ_REPS,
        "n_regions": 50,
        "methods": list(fits),
        "seconds": seconds,
        "reps_per_second": FREQ_REPS / seconds,
        "rounds": 3,
        "compile_seconds": info["compile_seconds"],
        "single_run_reps_per_second": info["reps_per_second"],
        "seconds_by_step": info["seconds_by_step"],
        "peak_memory": {k: v for k, v in info["peak_memory"].items() if k != "xla_by_method"},
    }
    benchmark.extra_info.update({k: figure[k] for k in ("reps", "reps_per_second")})
    FIGURES["frequentist"]["batched"] = figure
    _freq_ratio()
    _save()


def test_frequentist_loop(benchmark) -> None:
    lp, _ = _timed(benchmark, lambda: bf.loop(_freq_panel(), FREQ_LOOP))
    batch = Batch(keys=None, stats=group_stats(_freq_panel()))
    bf.check_against_loop({"fe": get_method("fe").load()(batch, bf.LEVEL, {})}, lp)
    # bench_frequentist.loop times the fits alone (DataFrames built beforehand)
    benchmark.extra_info.update({k: lp[k] for k in ("reps", "seconds", "reps_per_second")})
    FIGURES["frequentist"]["loop"] = lp
    _freq_ratio()
    _save()


# --------------------------------------------------------------------------- (c) sweep


def _lockstep(draws) -> dict:
    """Lockstep figures from ``Draws.batch_steps``: per compiled batch, the sums over
    its iterations (warm-up and draws) of the mean and the maximum leapfrog steps
    across its chains."""
    used, paid = np.asarray(draws.batch_steps, float).sum(axis=0)
    iterations = len(draws.batch_steps) * (SETTINGS["warmup"] + SETTINGS["draws"])
    return {
        "mean_steps_per_iteration": used / iterations,
        "mean_max_steps_per_iteration": paid / iterations,
        "lockstep_efficiency": 1.0 - draws.lockstep_waste(),
        "lockstep_waste": draws.lockstep_waste(),
        "batches_counted": len(draws.batch_steps),
    }


@pytest.mark.parametrize("batch_size", SWEEP_SIZES)
@pytest.mark.parametrize("model", SWEEP_MODELS)
def test_batch_size_sweep(benchmark, model: str, batch_size: int) -> None:
    method = f"bayes-{model}"
    reps = max(batch_size, SWEEP_MIN_REPS)
    reps += -reps % batch_size
    idx = _same_tier(SWEEP_REGIONS, reps)
    batch = _inputs(method, SWEEP_REGIONS, idx)
    settings = settings_from_options({**SETTINGS, "batch_size": batch_size})

    def fit(b: Batch):  # the registry's fit function (methods.fit_model), draws kept
        draws = bayes_draws.sample(model, b.keys, b.stats, settings)
        return draws, summarize_draws(model, draws, LEVEL, settings.rhat_max, settings.ess_min)

    t0 = time.perf_counter()
    fit(_subset(batch, _one_per_tier(batch)))  # compiles
    warm = time.perf_counter() - t0
    (draws, out), seconds = _timed(benchmark, lambda: fit(batch))
    cols = out[("beta", "x0")]
    label = f"{method} batch size {batch_size}"
    check_estimates(label, method, cols["estimate"], cols["converged"])
    figure = {
        "batch_size": batch_size,
        "chains_in_lockstep": batch_size * SETTINGS["chains"],
        "reps": reps,
        "seconds": seconds,
        "posteriors_per_second": reps / seconds,
        "warmup_call_seconds": warm,
        "converged_fraction": float(_converged(out).mean()),
        **_lockstep(draws),
    }
    benchmark.extra_info.update(figure)
    rows = FIGURES["sweep"].setdefault(method, {"n_regions": SWEEP_REGIONS, "rows": []})["rows"]
    rows[:] = [r for r in rows if r["batch_size"] != batch_size] + [figure]
    rows.sort(key=lambda r: r["batch_size"])
    _save()


def _choose(rows: list[dict]) -> int:
    best = max(r["posteriors_per_second"] for r in rows)
    good = [
        r["batch_size"]
        for r in rows
        if r["posteriors_per_second"] >= (1 - DEFAULT_TOLERANCE) * best
    ]
    return min(good)


def test_sweep_default() -> None:
    """The CPU default batch size from the sweep: the smallest batch within 5% of the
    best throughput of the sum over the swept models (a study runs them all)."""
    sweeps = {m: s["rows"] for m, s in FIGURES["sweep"].items() if m.startswith("bayes-")}
    if not sweeps:
        pytest.skip("no sweep measured in this run")
    sizes = sorted(set.intersection(*({r["batch_size"] for r in rows} for rows in sweeps.values())))
    combined = []
    for b in sizes:
        # seconds per posterior add up over the models a study runs
        spp = sum(
            1.0 / next(r for r in rows if r["batch_size"] == b)["posteriors_per_second"]
            for rows in sweeps.values()
        )
        combined.append({"batch_size": b, "posteriors_per_second": len(sweeps) / spp})
    chosen = _choose(combined)
    FIGURES["sweep"]["choice"] = {
        "rule": (
            f"smallest batch size within {DEFAULT_TOLERANCE:.0%} of the best combined "
            f"throughput (harmonic mean of posteriors/s over {', '.join(sweeps)})"
        ),
        "combined": combined,
        "chosen_batch_size": chosen,
        "per_model_choice": {m: _choose(rows) for m, rows in sweeps.items()},
        "current_default": default_batch_size("cpu"),
    }
    _save()


# --------------------------------------------------------------------------- (d) memory


def _xla_bytes(program, *args) -> int | None:
    try:
        m = program.lower(*args).compile().memory_analysis()
    except Exception:  # noqa: BLE001 (not every backend reports it)
        return None
    if m is None:
        return None
    return int(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes)


def _program_args(model: str, batch: Batch, settings, size: int) -> tuple:
    """The NUTS batch program that ``sample`` runs for ``batch``'s tier, and abstract
    arguments for a batch of ``size`` replications: compiled, never run or allocated."""
    stats = GroupStats(*(np.asarray(a) for a in batch.stats))
    ids, _ = C.size_classes(stats.n)
    tier = int(_tiers(stats)[0])
    program = bayes_draws._program(
        settings.collapse, settings.chains, bayes_draws.nuts_settings(settings), tier
    )

    def shape(a):
        a = np.asarray(a)
        return jax.ShapeDtypeStruct((size, *a.shape[1:]), a.dtype)

    args = (
        shape(batch.keys),
        GroupStats(*(shape(a) for a in stats)),
        shape(ids),
        C.linear_spec(model, settings.priors),
    )
    return program, args


# One runner unit in a fresh process: simulate, group statistics, fit (compiling).
_UNIT = """
import json, sys, time
import numpy as np
from mlmbias import DGP, group_stats, replication_keys, simulate_condition
from mlmbias.registry import Batch, get_method
from mlmbias.seeding import method_keys
a = json.loads(sys.argv[1])
dgp, idx = DGP(n_regions=a["n_regions"]), np.array(a["reps"])
t0 = time.perf_counter()
stats = group_stats(simulate_condition(dgp, a["seed"], idx))
keys = method_keys(replication_keys(a["seed"], dgp, idx), a["method"])
out = get_method(a["method"]).load()(Batch(keys, stats), a["level"], a["options"])
seconds = time.perf_counter() - t0
hwm = None  # VmHWM: this process's own peak (ru_maxrss would include a forked parent's)
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        hwm = int(line.split()[1]) * 1024
print(json.dumps({"seconds": seconds, "vm_hwm_bytes": hwm,
                  "converged": float(np.mean(out[("beta", "x0")]["converged"]))}))
"""


def _unit_peak(method: str, idx: np.ndarray, options: dict) -> dict:
    """Peak RSS of one unit run alone in a fresh process (its own VmHWM)."""
    import tempfile

    arg = {
        "n_regions": MEMORY_REGIONS,
        "reps": [int(i) for i in idx],
        "seed": SEED,
        "method": method,
        "level": LEVEL,
        "options": options,
    }
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(
            [sys.executable, "-c", _UNIT, json.dumps(arg)],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env=_env_without_loop_cache(),
        )
        with child.stdout:
            out = child.stdout.read()
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        if child.returncode != 0:
            err.seek(0)
            raise RuntimeError(f"memory child failed ({child.returncode}):\n{err.read()[-4000:]}")
    child_out = json.loads(out.strip().splitlines()[-1])
    # ru_maxrss of a child starts at its forked parent's RSS (Linux keeps the high-water
    # mark across exec), which hides the unit behind this large pytest process
    return {
        "wall_seconds": wall,
        "peak_rss_bytes": child_out.pop("vm_hwm_bytes") or usage.ru_maxrss * 1024,
        "ru_maxrss_bytes": usage.ru_maxrss * 1024,
        **child_out,
    }


def test_memory_r1000(benchmark) -> None:
    """Largest Bayesian batch in 24 GiB at R = 1000, from peak RSS at a few sizes."""
    model, method = "mundlak", "bayes-mundlak"
    pool = _same_tier(MEMORY_REGIONS, max(MEMORY_SIZES))
    rows = []
    for b in MEMORY_SIZES:
        options = {**SETTINGS, "batch_size": b}
        if b == MEMORY_SIZES[-1]:
            child, _ = _timed(benchmark, lambda b=b, o=options: _unit_peak(method, pool[:b], o))
        else:
            child = _unit_peak(method, pool[:b], options)
        program, args = _program_args(
            model, _inputs(method, MEMORY_REGIONS, pool[:b]), settings_from_options(options), b
        )
        rows.append(
            {
                "batch_size": b,
                **child,
                "xla_program_bytes": _xla_bytes(program, *args),
            }
        )
    figure: dict = {"n_regions": MEMORY_REGIONS, "model": method, "limit_bytes": MEMORY_LIMIT}
    figure["rows"] = rows
    sizes = np.array([r["batch_size"] for r in rows], float)
    estimates = {}
    intercept = None
    if all(r["peak_rss_bytes"] for r in rows):
        slope, intercept = np.polyfit(sizes, [r["peak_rss_bytes"] for r in rows], 1)
        figure["rss_fit"] = {"bytes_per_replication": slope, "intercept_bytes": intercept}
        if slope > 1024:  # below a KiB per replication the fit is noise
            estimates["rss"] = int((MEMORY_LIMIT - intercept) // slope)
    if all(r["xla_program_bytes"] for r in rows) and intercept is not None:
        slope, xla_intercept = np.polyfit(sizes, [r["xla_program_bytes"] for r in rows], 1)
        figure["xla_fit"] = {"bytes_per_replication": slope, "intercept_bytes": xla_intercept}
        if slope > 0:
            estimates["xla"] = int((MEMORY_LIMIT - intercept - max(xla_intercept, 0)) // slope)
    figure["estimates"] = estimates
    if estimates:
        largest = max(64 * (min(estimates.values()) // 64), 1)  # a multiple of 64
        figure["largest_batch"] = largest
        program, args = _program_args(
            model,
            _inputs(method, MEMORY_REGIONS, pool[: MEMORY_SIZES[0]]),
            settings_from_options(SETTINGS),
            largest,
        )
        figure["xla_bytes_at_largest"] = _xla_bytes(program, *args)
        figure["method"] = (
            "peak RSS (VmHWM) of a fresh process running one runner unit (simulate, group "
            "statistics, fit, compilation included) at each batch size, fitted linearly in the "
            "batch size; the largest batch is (24 GiB - intercept) / slope, using the larger of "
            "the RSS slope and the slope of XLA's buffer accounting (arguments + outputs + "
            "temporaries) of the NUTS program, rounded down to a multiple of 64; "
            "xla_bytes_at_largest is that program compiled (never run) at the largest batch"
        )
    benchmark.extra_info.update({"largest_batch": figure.get("largest_batch")})
    FIGURES["memory"] = figure
    _save()
