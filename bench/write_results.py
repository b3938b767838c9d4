"""Write bench/RESULTS.md from the JSON files in bench/results/.

    python bench/write_results.py [--results bench/results] [--out bench/RESULTS.md]

Reads, where present: perf_figures.json and perf.json (``make perf``),
bayes.json (``bench/bench_bayes.py``), frequentist.json
(``bench/bench_frequentist.py``), bench_rss.json (``bench/peak_rss.py`` around
``make bench``) and gpu/*.json (``bench/gpu_check.sh`` on a GPU machine). Every
figure is printed with the command that produced it, the machine and the date;
where a figure is missing the table says so.
"""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path

BENCH = Path(__file__).resolve().parent
NO_GPU = "not measured (no GPU in this session)"
PERF_CMD = "make perf"
BAYES_TARGET, FREQ_TARGET = 100, 1000


def _load(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _mtime(path: Path) -> str:
    """The commit date of a file unchanged since its last commit, else its file time."""
    import subprocess

    def git(*args: str) -> str:
        try:
            r = subprocess.run(
                ["git", *args], cwd=path.parent, capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.SubprocessError):
            return ""
        return r.stdout.strip() if r.returncode == 0 else ""

    if not git("status", "--porcelain", "--", path.name):
        date = git("log", "-1", "--format=%cI", "--", path.name)
        if date:
            return f"committed {date}"
    t = datetime.datetime.fromtimestamp(path.stat().st_mtime, datetime.UTC)
    return f"file written {t.isoformat(timespec='seconds')}"


def _mib(v) -> str:
    return "n/a" if v is None else f"{v / 2**20:,.1f} MiB"


def _gib(v) -> str:
    return "n/a" if v is None else f"{v / 2**30:,.2f} GiB"


def _x(v) -> str:
    return "n/a" if v is None else f"{v:,.0f}x"


def _pct(v) -> str:
    return "n/a" if v is None else f"{v:.0%}"


def _machine_line(m: dict | None) -> str:
    if not m:
        return "machine not recorded"
    mem = m.get("memory_bytes")
    parts = [
        m.get("cpu") or m.get("processor"),
        f"{m.get('cpu_count')} cores",
        f"{mem / 2**30:.0f} GiB" if mem else None,
        m.get("platform"),
        f"backend {m.get('backend')}" if m.get("backend") else None,
        f"python {m['python']}" if m.get("python") else None,
        f"jax {m['jax']}" if m.get("jax") else None,
        f"numpyro {m['numpyro']}" if m.get("numpyro") else None,
        f"XLA_FLAGS `{m['xla_flags']}`" if m.get("xla_flags") else None,
    ]
    return ", ".join(str(p) for p in parts if p)


def _gpu(results: Path) -> dict:
    folder = results / "gpu"
    out = {}
    for name in ("devices", "bayes_batches", "study"):
        data = _load(folder / f"{name}.json")
        if data is not None:
            out[name] = data
    backend = (out.get("devices") or out.get("bayes_batches") or {}).get("backend")
    if backend == "cpu":  # GPU_CHECK_SMALL=1 or a machine without an accelerator
        return {}
    return out


def _gpu_machine(gpu: dict) -> str:
    d = gpu.get("devices")
    if not d:
        return NO_GPU
    smi = "; ".join(d.get("nvidia_smi", [])) or ", ".join(d.get("device_kinds", []))
    return (
        f"{smi} (backend {d.get('backend')}, devices {', '.join(d.get('devices', []))}), "
        f"jax {d.get('jax')}, numpyro {d.get('numpyro')}, python {d.get('python_version')}, "
        f"{d.get('date')}"
    )


def _gpu_rows(gpu: dict) -> list[dict]:
    return (gpu.get("bayes_batches") or {}).get("rows", [])


def _gpu_best(gpu: dict, method: str) -> dict | None:
    rows = [r for r in _gpu_rows(gpu) if r["model"] == method]
    return max(rows, key=lambda r: r["posteriors_per_second"]) if rows else None


def _section_summary(fig: dict | None, rss: dict | None, gpu: dict) -> list[str]:
    lines = ["## Summary", ""]
    if not fig:
        return lines + [f"No `{PERF_CMD}` figures yet (bench/results/perf_figures.json).", ""]
    gpu_note = "" if gpu.get("bayes_batches") else NO_GPU
    lines += [
        f"CPU figures: `{PERF_CMD}`, {fig.get('finished') or fig.get('started')}; "
        f"machine: {_machine_line(fig.get('machine'))}.",
        "",
        "| figure | target | CPU | GPU | command |",
        "| --- | --- | --- | --- | --- |",
    ]
    for method, by_r in fig.get("bayes", {}).items():
        for r, e in sorted(by_r.items(), key=lambda kv: int(kv[0])):
            cpu = _x(e.get("speedup"))
            if e.get("speedup") is not None:
                met = "met" if e["speedup"] >= BAYES_TARGET else "NOT met"
                cpu += f" ({met})"
            g = gpu_note
            best = _gpu_best(gpu, method)
            if best and r == str(gpu.get("bayes_batches", {}).get("settings", {}).get("n_regions")):
                loop = e.get("loop", {}).get("posteriors_per_second")
                g = (
                    f"{best['posteriors_per_second']:,.1f} posteriors/s at batch "
                    f"{best['batch_size']}"
                    + (
                        f" = {best['posteriors_per_second'] / loop:,.0f}x the CPU loop"
                        if loop
                        else ""
                    )
                )
            elif best:
                g = "not measured at this R"
            lines.append(
                f"| {method} batched vs `MCMC.run` loop, R = {r} (posteriors/s ratio) "
                f"| >= {BAYES_TARGET}x | {cpu} | {g} | `{PERF_CMD}` |"
            )
    f = fig.get("frequentist", {})
    if f:
        cpu = _x(f.get("speedup"))
        if f.get("speedup") is not None:
            cpu += " (met)" if f["speedup"] >= FREQ_TARGET else " (NOT met)"
        lines.append(
            f"| frequentist estimators batched vs linearmodels/statsmodels loop "
            f"(replications/s ratio) | >= {FREQ_TARGET}x | {cpu} "
            f"| {NO_GPU if not gpu else 'not measured'} | `{PERF_CMD}` |"
        )
    choice = fig.get("sweep", {}).get("choice")
    if choice:
        gpu_b = NO_GPU
        rows = _gpu_rows(gpu)
        if rows:
            sizes = sorted({r["batch_size"] for r in rows})
            best = {
                b: sum(r["posteriors_per_second"] for r in rows if r["batch_size"] == b)
                for b in sizes
            }
            gpu_b = f"fastest measured: {max(best, key=best.get)} (of {', '.join(map(str, sizes))})"
        lines.append(
            f"| default Bayesian batch size (replications per batch) | from the sweep "
            f"| {choice['chosen_batch_size']} (current default {choice['current_default']}) "
            f"| {gpu_b} | `{PERF_CMD}` |"
        )
    mem = fig.get("memory", {})
    if mem.get("largest_batch"):
        lines.append(
            f"| largest Bayesian batch in 24 GiB, R = {mem['n_regions']} | - "
            f"| {mem['largest_batch']:,} replications | {NO_GPU if not gpu else 'not measured'} "
            f"| `{PERF_CMD}` |"
        )
    if rss:
        lines.append(
            f"| peak RSS of `make bench` | - | {_mib(rss.get('peak_rss_bytes'))} "
            f"({rss.get('wall_seconds', 0) / 60:.1f} min, exit {rss.get('exit_status')}) | - "
            f"| `{rss.get('measured_by', 'python bench/peak_rss.py ... -- make bench')}` |"
        )
    else:
        lines.append(
            "| peak RSS of `make bench` | - | not recorded yet | - "
            "| `python bench/peak_rss.py bench/results/bench_rss.json -- make bench` |"
        )
    return lines + [""]


def _section_bayes(fig: dict, gpu: dict) -> list[str]:
    s = fig["settings"]
    lines = [
        "## (a) Batched Bayesian inference vs the `MCMC.run` loop",
        "",
        f"Command: `{PERF_CMD}` (tests `test_bayes_batched`, `test_bayes_loop`). "
        f"{s['chains']} chains, {s['warmup']} warm-up + {s['draws']} draws on both sides; "
        f"batched: the registry's `bayes-mundlak` / `bayes-re` (collapsed models, NUTS vmapped "
        f"over replications x chains, batch size {s.get('default_batch_size')}), "
        f"{s.get('batched_reps')} replications; loop: `numpyro.infer.MCMC.run` on the "
        "observation-level model, one replication at a time, chains vectorized, "
        "`jit_model_args=True`, with JAX's persistent compilation cache on, because NumPyro "
        "0.22 compiles its sampling loop again at every `MCMC.run` (see the loop variants "
        "below). Compilation excluded on both sides. "
        "Converged: split R-hat <= 1.01 and bulk ESS >= 400 for every monitored quantity and "
        "no divergences.",
        "",
        "| model | R | batched posteriors/s | batched converged | loop posteriors/s "
        "| loop converged | loop reps | speedup (CPU) | GPU |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    gpu_r = str((gpu.get("bayes_batches") or {}).get("settings", {}).get("n_regions"))
    for method, by_r in fig.get("bayes", {}).items():
        for r, e in sorted(by_r.items(), key=lambda kv: int(kv[0])):
            b, lp = e.get("batched", {}), e.get("loop", {})
            best = _gpu_best(gpu, method)
            if best and r == gpu_r:
                g = f"{best['posteriors_per_second']:,.1f}/s (batch {best['batch_size']})"
            elif best:
                g = "not measured at this R"
            else:
                g = NO_GPU
            lines.append(
                f"| {method} | {r} | {b.get('posteriors_per_second', float('nan')):,.2f} "
                f"| {_pct(b.get('converged_fraction'))} "
                f"| {lp.get('posteriors_per_second', float('nan')):,.4f} "
                f"| {_pct(lp.get('converged_fraction'))} | {lp.get('reps', 'n/a')} "
                f"| {_x(e.get('speedup'))} | {g} |"
            )
    lines.append("")
    variants = fig.get("loop_variants")
    if variants:
        lines += [
            f"Loop variants (test `test_loop_variants`): {variants['model']}, "
            f"R = {variants['n_regions']}, the same `MCMC.run` loop in a fresh process each. "
            "Without the cache every run compiles NumPyro's sampling loop again (its "
            "`fori_collect` passes a new jit wrapper as a static argument, so JAX's in-memory "
            "cache never hits); the persistent cache loads the identical program instead.",
            "",
            "| chains | persistent compilation cache | warm-up + draws | seconds per posterior "
            "| posteriors/s | converged |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for r in variants["rows"]:
            lines.append(
                f"| {r['chain_method']} | {'on' if r['compilation_cache'] else 'off'} "
                f"| {r['warmup']} + {r['draws']} "
                f"| {r['seconds_per_posterior']:.2f} | {r['posteriors_per_second']:.3f} "
                f"| {_pct(r['converged_fraction'])} |"
            )
        lines.append("")
        lines += _profile(fig, variants)
    return lines


def _profile(fig: dict, variants: dict) -> list[str]:
    """Where each side's time goes at the variants' R, from figures of this run."""
    s = fig["settings"]
    r = str(variants["n_regions"])
    model = variants["model"]
    sweep = fig.get("sweep", {}).get(model, {})
    batched = fig.get("bayes", {}).get(model, {}).get(r, {}).get("batched")
    row = (
        next((x for x in sweep.get("rows", []) if x["batch_size"] == batched["batch_size"]), None)
        if batched
        else None
    )
    short = next((x for x in variants["rows"] if x["warmup"] < s["warmup"]), None)
    full = next(
        (
            x
            for x in variants["rows"]
            if x["warmup"] == s["warmup"] and x["chain_method"] == "vectorized"
        ),
        None,
    )
    if not (row and short and full and str(sweep.get("n_regions")) == r):
        return []
    spp = 1.0 / batched["posteriors_per_second"]
    per_leapfrog = (
        spp * row["batch_size"] / ((s["warmup"] + s["draws"]) * row["mean_max_steps_per_iteration"])
    )
    return [
        f"Where the time goes ({model}, R = {r}, this run). Batched: "
        f"{spp * 1e3:.0f} ms per posterior at batch size {row['batch_size']}. Its "
        f"{row['chains_in_lockstep']} chains run in lockstep, so every iteration pays for the "
        f"longest trajectory of the batch: {row['mean_max_steps_per_iteration']:.1f} leapfrog "
        f"steps, where a chain needs {row['mean_steps_per_iteration']:.1f} on average. That makes "
        f"{row['lockstep_waste']:.0%} of the leapfrog work waiting "
        f"({per_leapfrog * 1e6:.0f} us per lockstep step of the batch). Without that waste the "
        f"batch could be at most {1 / (1 - row['lockstep_waste']):.1f}x faster. Loop: "
        f"{full['seconds_per_posterior']:.2f} s per posterior. Of that, "
        f"{short['seconds_per_posterior']:.2f} s is what an `MCMC.run` costs at "
        f"{short['warmup']} + {short['draws']} iterations: tracing the model, lowering, "
        "loading the cached program and the diagnostics. Sampling is the rest.",
        "",
    ]


def _section_frequentist(fig: dict) -> list[str]:
    f = fig.get("frequentist", {})
    b, lp = f.get("batched"), f.get("loop")
    if not b or not lp:
        return []
    mem = b.get("peak_memory", {})
    return [
        "## (b) Frequentist estimators vs the linearmodels/statsmodels loop",
        "",
        f"Command: `{PERF_CMD}` (tests `test_frequentist_batched`, `test_frequentist_loop`, "
        "through `bench/bench_frequentist.py`'s functions). R = 50; every frequentist method "
        f"({len(b.get('methods', []))}: {', '.join(b.get('methods', []))}) on one batch, "
        "group statistics included, simulation not; the loop fits the reference packages' "
        "estimators one replication at a time on prebuilt DataFrames.",
        "",
        "| side | replications | seconds | replications/s |",
        "| --- | --- | --- | --- |",
        f"| batched (JAX, median of {b.get('rounds', 1)} rounds) | {b['reps']:,} "
        f"| {b['seconds']:.3f} | {b['reps_per_second']:,.0f} |",
        f"| loop (linearmodels + statsmodels) | {lp['reps']} | {lp['seconds']:.2f} "
        f"| {lp['reps_per_second']:.2f} |",
        f"| **speedup** | | | **{_x(f.get('speedup'))}** |",
        "",
        f"Compilation of the batch (excluded): {b.get('compile_seconds', float('nan')):.1f} s. "
        f"Peak memory of the batch: RSS high-water {_mib(mem.get('rss_high_water_bytes'))}, "
        f"largest XLA program {_mib(mem.get('xla_largest_program_bytes'))}.",
        "",
    ]


def _section_sweep(fig: dict) -> list[str]:
    sweep = {k: v for k, v in fig.get("sweep", {}).items() if k.startswith("bayes-")}
    if not sweep:
        return []
    s = fig["settings"]
    models = list(sweep)
    r = next(iter(sweep.values()))["n_regions"]
    head = "| batch size | chains in lockstep |"
    rule = "| --- | --- |"
    for m in models:
        head += f" {m} posteriors/s | {m} steps: mean / max per iteration | {m} lockstep waste |"
        rule += " --- | --- | --- |"
    lines = [
        "## (c) Batch-size sweep (CPU)",
        "",
        f"Command: `{PERF_CMD}` (tests `test_batch_size_sweep`, `test_sweep_default`). "
        f"R = {r}, {s['chains']} chains, {s['warmup']} + {s['draws']}; replications all of one "
        "size-class tier (one compiled program, no padding); compilation excluded. A vmapped "
        "NUTS iteration lasts as long as the longest trajectory among the batch's chains: "
        "lockstep waste = 1 - (sum over iterations of the mean leapfrog steps across the "
        "batch's chains) / (sum of the maximum), over every iteration, warm-up included "
        "(`Draws.batch_steps`, `Draws.lockstep_waste()`).",
        "",
        head,
        rule,
    ]
    sizes = sorted({row["batch_size"] for v in sweep.values() for row in v["rows"]})
    for b in sizes:
        cells = [str(b), str(b * s["chains"])]
        for m in models:
            row = next((x for x in sweep[m]["rows"] if x["batch_size"] == b), None)
            if row is None:
                cells += ["n/a"] * 3
                continue
            cells += [
                f"{row['posteriors_per_second']:,.1f}",
                f"{row['mean_steps_per_iteration']:.1f} / "
                f"{row['mean_max_steps_per_iteration']:.1f}",
                f"{row['lockstep_waste']:.0%}",
            ]
        lines.append("| " + " | ".join(cells) + " |")
    choice = fig["sweep"].get("choice")
    if choice:
        per = ", ".join(f"{m}: {b}" for m, b in choice["per_model_choice"].items())
        lines += [
            "",
            f"**Default CPU batch size from the sweep: {choice['chosen_batch_size']}** "
            f"(rule: {choice['rule']}; per model: {per}; the current default in "
            f"`mlmbias/bayes/options.py` is {choice['current_default']}).",
        ]
    return lines + [""]


def _section_memory(fig: dict) -> list[str]:
    m = fig.get("memory")
    if not m or not m.get("rows"):
        return []
    lines = [
        f"## (d) Memory: the largest Bayesian batch in 24 GiB at R = {m['n_regions']}",
        "",
        f"Command: `{PERF_CMD}` (test `test_memory_r1000`), model {m['model']}, "
        f"{fig['settings']['chains']} chains, {fig['settings']['warmup']} + "
        f"{fig['settings']['draws']}.",
        "",
        "| batch size | peak RSS of the unit's process | XLA buffers of the NUTS program "
        "| seconds (unit, compilation included) |",
        "| --- | --- | --- | --- |",
    ]
    for r in m["rows"]:
        lines.append(
            f"| {r['batch_size']} | {_mib(r.get('peak_rss_bytes'))} "
            f"| {_mib(r.get('xla_program_bytes'))} | {r.get('seconds', float('nan')):.1f} |"
        )
    rf, xf = m.get("rss_fit"), m.get("xla_fit")
    lines.append("")
    if rf:
        lines.append(
            f"Linear fit of the peak RSS: {rf['bytes_per_replication'] / 2**20:.2f} MiB per "
            f"replication + {_mib(rf['intercept_bytes'])}."
        )
    if xf:
        lines.append(
            f"XLA's accounting: {xf['bytes_per_replication'] / 2**20:.2f} MiB per replication."
        )
    if m.get("largest_batch"):
        est = ", ".join(f"{k}: {v:,}" for k, v in m.get("estimates", {}).items())
        lines += [
            "",
            f"**Largest batch in 24 GiB: {m['largest_batch']:,} replications** "
            f"(estimates {est}); the NUTS program compiled (not run) at that size plans "
            f"{_gib(m.get('xla_bytes_at_largest'))} of buffers.",
            "",
            f"Method: {m.get('method', '')}.",
        ]
    return lines + [""]


def _section_rss(rss: dict | None) -> list[str]:
    lines = ["## Peak RSS of `make bench`", ""]
    if not rss:
        return lines + [
            "Not recorded yet. Run `python bench/peak_rss.py bench/results/bench_rss.json -- "
            "make bench`, then `python bench/write_results.py`.",
            "",
        ]
    return lines + [
        f"Command: `{rss.get('measured_by')}`; {rss.get('started')} to {rss.get('finished')}; "
        f"machine: {_machine_line(rss.get('machine'))}.",
        "",
        f"Peak RSS {_mib(rss.get('peak_rss_bytes'))} (the largest single process), wall "
        f"{rss.get('wall_seconds', 0):,.0f} s, CPU {rss.get('user_seconds', 0):,.0f} s user + "
        f"{rss.get('system_seconds', 0):,.0f} s system, exit status {rss.get('exit_status')}.",
        "",
    ]


def _loop_kind(loop: dict) -> str:
    cache = "on" if loop["compilation_cache"] else "off"
    return f"loop: chains {loop['chain_method']}, persistent compilation cache {cache}"


def _section_scripts(results: Path) -> list[str]:
    lines = ["## Stand-alone benchmark scripts (R = 50)", ""]
    bayes_path, freq_path = results / "bayes.json", results / "frequentist.json"
    bayes, freq = _load(bayes_path), _load(freq_path)
    if bayes:
        s = bayes.get("settings", {})
        lines += [
            f"`python bench/bench_bayes.py` ({_mtime(bayes_path)}; machine: "
            f"{_machine_line(bayes.get('machine'))}); {s.get('chains')} chains, "
            f"{s.get('warmup')} + {s.get('draws')}, batch size {s.get('batch_size')}; "
            + _loop_kind(next(iter(bayes.get("models", {}).values()), {}).get("loop", {}))
            + ":",
            "",
            "| model | batched posteriors/s (converged) | loop posteriors/s (converged) "
            "| speedup |",
            "| --- | --- | --- | --- |",
        ]
        for method, e in bayes.get("models", {}).items():
            b, lp = e["batched"], e["loop"]
            lines.append(
                f"| {method} | {b['posteriors_per_second']:.2f} ({_pct(b['converged_fraction'])}) "
                f"| {lp['posteriors_per_second']:.3f} ({_pct(lp['converged_fraction'])}) "
                f"| {_x(e['speedup'])} |"
            )
        lines.append("")
    if freq:
        env = freq.get("environment", {})
        lines += [
            f"`python bench/bench_frequentist.py` ({_mtime(freq_path)}; {env.get('device')}, "
            f"{env.get('cpu_count')} cores, jax {env.get('jax')}): "
            f"{freq['batched']['reps_per_second']:,.0f} replications/s batched "
            f"({freq['batched']['reps']:,}) vs {freq['loop']['reps_per_second']:.2f}/s loop "
            f"({freq['loop']['reps']}): {_x(freq.get('speedup'))}.",
            "",
        ]
    return lines if (bayes or freq) else []


def _section_gpu(gpu: dict, fig: dict | None) -> list[str]:
    lines = [
        "## GPU",
        "",
        "Install: `pip install -e '.[cuda]'` (jax[cuda12] >= 0.11.1; `.[cuda13]` for CUDA 13; "
        "0.10.2 and 0.11.0 have a slow float32 GPU scatter-add, jax-ml/jax#38806) "
        "or any python3 with a CUDA JAX, "
        "numpyro, pandas, pyarrow and scipy; then `bash bench/gpu_check.sh` (within 8 minutes: "
        "backend and devices, the batched Bayesian benchmark at batch sizes 64, 256 and 1024, "
        "and a reduced default study). Copy the JSON files it writes into "
        "`bench/results/gpu/` and rerun this script. The accelerator default batch size is "
        "256 (`mlmbias/bayes/options.py`).",
        "",
    ]
    if not gpu:
        return lines + [f"GPU: {NO_GPU}.", ""]
    lines += [f"Machine: {_gpu_machine(gpu)}.", ""]
    rows = _gpu_rows(gpu)
    if rows:
        s = gpu["bayes_batches"].get("settings", {})
        lines += [
            f"Command: `bash bench/gpu_check.sh` ({gpu['bayes_batches'].get('date')}); "
            f"R = {s.get('n_regions')}, {s.get('chains')} chains, {s.get('warmup')} + "
            f"{s.get('draws')}; one batch each, compilation excluded.",
            "",
            "| model | batch size | GPU posteriors/s | converged | first call s "
            "| CPU posteriors/s (this R, make perf) |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for r in rows:
            cpu = "n/a"
            if fig:
                e = fig.get("bayes", {}).get(r["model"], {}).get(str(s.get("n_regions")), {})
                if "batched" in e:
                    cpu = f"{e['batched']['posteriors_per_second']:,.1f}"
            lines.append(
                f"| {r['model']} | {r['batch_size']} | {r['posteriors_per_second']:,.1f} "
                f"| {_pct(r['converged_fraction'])} | {r['first_call_seconds']:.1f} | {cpu} |"
            )
        lines.append("")
    st = gpu.get("study")
    if st:
        lines += [
            f"Reduced default study: `{st.get('command')}` ({st.get('date')}): "
            f"{st.get('wall_seconds', 0):.0f} s, exit status {st.get('exit_status')}"
            + (" (cut at its time limit)" if st.get("timed_out") else "")
            + f", {st.get('rows', 'n/a')} rows over {st.get('conditions', 'n/a')} conditions, "
            f"{st.get('failures', 0)} failed batches.",
            "",
        ]
    return lines


def build(results: Path) -> str:
    fig = _load(results / "perf_figures.json")
    rss = _load(results / "bench_rss.json")
    gpu = _gpu(results)
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    lines = [
        "# Throughput results",
        "",
        f"Written by `python bench/write_results.py` on {now} from the JSON files in "
        "`bench/results/`. Every ratio compares two sides measured in the same run on the "
        "same machine, both on one CPU thread (`XLA_FLAGS` below). "
        "`bench/results/perf.json` holds pytest-benchmark's raw timings of the same run.",
        "",
        "## Machines",
        "",
        "| | CPU | GPU |",
        "| --- | --- | --- |",
        f"| `{PERF_CMD}` | {_machine_line(fig.get('machine')) if fig else 'not run yet'} "
        f"| {_gpu_machine(gpu)} |",
        "",
    ]
    if fig and fig.get("small"):
        lines += ["**PERF_SMALL=1 run: reduced sizes, not the reference figures.**", ""]
    lines += _section_summary(fig, rss, gpu)
    if fig:
        if fig.get("bayes"):
            lines += _section_bayes(fig, gpu)
        lines += _section_frequentist(fig)
        lines += _section_sweep(fig)
        lines += _section_memory(fig)
    lines += _section_rss(rss)
    lines += _section_gpu(gpu, fig)
    lines += _section_scripts(results)
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=BENCH / "results")
    parser.add_argument("--out", type=Path, default=BENCH / "RESULTS.md")
    args = parser.parse_args(argv)
    args.out.write_text(build(args.results))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
