"""Write bench/RESULTS.md from the JSON records in bench/results/.

    python bench/write_results.py [--results bench/results] [--out bench/RESULTS.md]

Reads, where present: perf_figures.json (``make perf``), bench_rss.json
(``bench/peak_rss.py`` around ``make bench``), gpu/*.json (``bench/gpu_check.sh``),
bayes.json and frequentist.json (``bench/bench_bayes.py``,
``bench/bench_frequentist.py``), random_slopes.json
(``bench/bench_random_slopes.py``), engines_default.json
(``bench/compare_engines.py``). It only formats: every figure, setting and
ratio comes from a record; ``_derive.upgrade`` fills in derived fields that records
written before the benchmarks stored them lack, with the benchmarks' own
functions. Where a figure is missing the text says so.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
from pathlib import Path

import _derive

BENCH = Path(__file__).resolve().parent
NO_GPU = "not measured (no GPU in this session)"
PERF = "`make perf`"
RSS_CMD = "python bench/peak_rss.py bench/results/bench_rss.json -- make bench"


def _load(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _when(path: Path) -> str:
    """The commit date of a file unchanged since its last commit, else its file time."""

    def git(*args: str) -> str:
        try:
            r = subprocess.run(["git", *args], cwd=path.parent, capture_output=True, text=True)
        except OSError:
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


def _gib(v, digits: int = 2) -> str:
    return "n/a" if v is None else f"{v / 2**30:,.{digits}f} GiB"


def _x(v) -> str:
    return "n/a" if v is None else f"{v:,.0f}x"


def _pct(v) -> str:
    return "n/a" if v is None else f"{v:.0%}"


def _head(columns: str) -> list[str]:
    """A table's header and rule from ``"a | b | c"``."""
    return [f"| {columns} |".replace("|  |", "| |"), "|" + " --- |" * (columns.count("|") + 1)]


def _machine(m: dict | None) -> str:
    if not m:
        return "machine not recorded"
    mem = m.get("memory_bytes")
    parts = [
        m.get("cpu") or m.get("processor"),
        f"{m.get('cpu_count')} cores",
        f"{mem / 2**30:.0f} GiB" if mem else None,
        m.get("platform"),
        *(f"{k} {m[k]}" for k in ("backend", "python", "jax", "numpyro") if m.get(k)),
        f"XLA_FLAGS `{m['xla_flags']}`" if m.get("xla_flags") else None,
    ]
    return ", ".join(str(p) for p in parts if p)


def _gpu(results: Path) -> dict:
    out = {n: _load(results / "gpu" / f"{n}.json") for n in ("devices", "bayes_batches", "study")}
    out = {k: v for k, v in out.items() if v is not None}
    backend = (out.get("devices") or out.get("bayes_batches") or {}).get("backend")
    return {} if backend == "cpu" else out  # GPU_CHECK_SMALL=1, or no accelerator


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


def _rate(side: dict | None) -> str:
    return f"{side['posteriors_per_second']:,.1f}" if side else "n/a"


def _met(e: dict) -> str:
    if e.get("speedup") is None:
        return "n/a"
    return f"{_x(e['speedup'])} ({'met' if e['met'] else 'NOT met'})"


def _gpu_cell(e: dict, gpu: dict, summary: bool) -> str:
    if "gpu" not in e:
        return NO_GPU if not gpu else "not measured"
    if (g := e["gpu"]) is None:
        return "not measured at this R"
    if not summary:
        return f"{g['posteriors_per_second']:,.1f}/s (batch {g['batch_size']})"
    vs = f" = {_x(g['vs_cpu_loop'])} the CPU loop" if g.get("vs_cpu_loop") else ""
    return f"{g['posteriors_per_second']:,.1f} posteriors/s at batch {g['batch_size']}{vs}"


def _bayes_entries(fig: dict):
    for method, by_r in fig.get("bayes", {}).items():
        for r, e in sorted(by_r.items(), key=lambda kv: int(kv[0])):
            yield method, r, e


def _summary(fig: dict | None, rss: dict | None, gpu: dict) -> list[str]:
    lines = ["## Summary", ""]
    if not fig:
        return lines + [f"No {PERF} figures yet (bench/results/perf_figures.json).", ""]
    lines += [
        f"CPU figures: {PERF}, {fig.get('finished') or fig.get('started')}; "
        f"machine: {_machine(fig.get('machine'))}.",
        "",
        *_head("figure | target | CPU | GPU | command"),
    ]
    other_gpu = NO_GPU if not gpu else "not measured"
    for m, r, e in _bayes_entries(fig):
        lines.append(
            f"| {m} batched vs `MCMC.run` loop, R = {r} (posteriors/s ratio) "
            f"| >= {e.get('target', _derive.BAYES_TARGET)}x | {_met(e)} "
            f"| {_gpu_cell(e, gpu, True)} | {PERF} |"
        )
    if f := fig.get("frequentist"):
        lines.append(
            "| frequentist estimators batched vs linearmodels/statsmodels loop (replications/s "
            f"ratio) | >= {f.get('target', _derive.FREQ_TARGET)}x | {_met(f)} | {other_gpu} "
            f"| {PERF} |"
        )
    if choice := fig.get("sweep", {}).get("choice"):
        fast, g = (gpu.get("bayes_batches") or {}).get("fastest"), NO_GPU
        if fast and fast.get("batch_size"):
            of = ", ".join(map(str, fast["batch_sizes"]))
            g = f"fastest measured: {fast['batch_size']} (of {of})"
        lines.append(
            "| default Bayesian batch size (replications per batch) | from the sweep "
            f"| {choice['chosen_batch_size']} (current default {choice['current_default']}) "
            f"| {g} | {PERF} |"
        )
    if (mem := fig.get("memory", {})).get("largest_batch"):
        lines.append(
            f"| largest Bayesian batch in {_gib(mem['limit_bytes'], 0)}, R = {mem['n_regions']} "
            f"| - | {mem['largest_batch']:,} replications | {other_gpu} | {PERF} |"
        )
    if rss:
        lines.append(
            f"| peak RSS of `make bench` | - | {_mib(rss.get('peak_rss_bytes'))} "
            f"({rss.get('wall_seconds', 0) / 60:.1f} min, exit {rss.get('exit_status')}) | - "
            f"| `{rss.get('measured_by', RSS_CMD)}` |"
        )
    else:
        lines.append(f"| peak RSS of `make bench` | - | not recorded yet | - | `{RSS_CMD}` |")
    return lines + [""]


def _bayes(fig: dict, gpu: dict) -> list[str]:
    s = fig["settings"]
    numpyro = ".".join((fig.get("machine") or {}).get("numpyro", "").split(".")[:2])
    lines = [
        "## (a) Batched Bayesian inference vs the `MCMC.run` loop",
        "",
        f"Command: {PERF} (tests `test_bayes_batched`, `test_bayes_loop`). "
        f"{s['chains']} chains, {s['warmup']} warm-up + {s['draws']} draws on both sides; "
        "batched: the registry's `bayes-mundlak` / `bayes-re` (collapsed models, NUTS vmapped "
        f"over replications x chains, batch size {s.get('default_batch_size')}), "
        f"{s.get('batched_reps')} replications; loop: `numpyro.infer.MCMC.run` on the "
        "observation-level model, one replication at a time, chains vectorized, "
        "`jit_model_args=True`, with JAX's persistent compilation cache on, because NumPyro "
        f"{numpyro} compiles its sampling loop again at every `MCMC.run` (see the loop variants "
        "below). Compilation excluded on both sides. Converged: split R-hat <= "
        f"{s['rhat_max']} and bulk ESS >= {s['ess_min']:g} for every monitored quantity and no "
        "divergences.",
        "",
        *_head(
            "model | R | batched posteriors/s | batched converged | loop posteriors/s "
            "| loop converged | loop reps | speedup (CPU) | GPU"
        ),
    ]
    for m, r, e in _bayes_entries(fig):
        b, lp = e.get("batched", {}), e.get("loop", {})
        lines.append(
            f"| {m} | {r} | {b.get('posteriors_per_second', float('nan')):,.2f} "
            f"| {_pct(b.get('converged_fraction'))} "
            f"| {lp.get('posteriors_per_second', float('nan')):,.4f} "
            f"| {_pct(lp.get('converged_fraction'))} | {lp.get('reps', 'n/a')} "
            f"| {_x(e.get('speedup'))} | {_gpu_cell(e, gpu, False)} |"
        )
    lines.append("")
    if v := fig.get("loop_variants"):
        lines += [
            f"Loop variants (test `test_loop_variants`): {v['model']}, R = {v['n_regions']}, the "
            "same `MCMC.run` loop in a fresh process each. Without the cache every run compiles "
            "NumPyro's sampling loop again (its `fori_collect` passes a new jit wrapper as a "
            "static argument, so JAX's in-memory cache never hits); the persistent cache loads "
            "the identical program instead.",
            "",
            *_head(
                "chains | persistent compilation cache | warm-up + draws | seconds per posterior "
                "| posteriors/s | converged"
            ),
        ]
        lines += [
            f"| {x['chain_method']} | {'on' if x['compilation_cache'] else 'off'} "
            f"| {x['warmup']} + {x['draws']} | {x['seconds_per_posterior']:.2f} "
            f"| {x['posteriors_per_second']:.3f} | {_pct(x['converged_fraction'])} |"
            for x in v["rows"]
        ] + [""]
    if p := fig.get("profile"):
        lines += [
            f"Where the time goes ({p['model']}, R = {p['n_regions']}, this run). Batched: "
            f"{p['batched_seconds_per_posterior'] * 1e3:.0f} ms per posterior at batch size "
            f"{p['batch_size']}. Its {p['chains_in_lockstep']} chains run in lockstep, so every "
            "iteration pays for the longest trajectory of the batch: "
            f"{p['mean_max_steps_per_iteration']:.1f} leapfrog steps, where a chain needs "
            f"{p['mean_steps_per_iteration']:.1f} on average. That makes "
            f"{p['lockstep_waste']:.0%} of the leapfrog work waiting "
            f"({p['seconds_per_lockstep_step'] * 1e6:.0f} us per lockstep step of the batch). "
            "Without that waste the batch could be at most "
            f"{p['speedup_bound_without_waste']:.1f}x faster. Loop: "
            f"{p['loop_seconds_per_posterior']:.2f} s per posterior. Of that, "
            f"{p['run_overhead_seconds']:.2f} s is what an `MCMC.run` costs at "
            f"{' + '.join(map(str, p['run_overhead_iterations']))} iterations: tracing the "
            "model, lowering, loading the cached program and the diagnostics. Sampling is the "
            "rest.",
            "",
        ]
    return lines


def _frequentist(fig: dict) -> list[str]:
    f = fig.get("frequentist", {})
    b, lp = f.get("batched"), f.get("loop")
    if not b or not lp:
        return []
    mem, methods = b.get("peak_memory", {}), b.get("methods", [])
    return [
        "## (b) Frequentist estimators vs the linearmodels/statsmodels loop",
        "",
        f"Command: {PERF} (tests `test_frequentist_batched`, `test_frequentist_loop`, "
        f"through `bench/bench_frequentist.py`'s functions). R = {b.get('n_regions')}; every "
        f"frequentist method ({len(methods)}: {', '.join(methods)}) on one batch, group "
        "statistics included, simulation not; the loop fits the reference packages' "
        "estimators one replication at a time on prebuilt DataFrames.",
        "",
        *_head("side | replications | seconds | replications/s"),
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


def _sweep(fig: dict) -> list[str]:
    sweep = {k: v for k, v in fig.get("sweep", {}).items() if k.startswith("bayes-")}
    if not sweep:
        return []
    s = fig["settings"]
    head = "batch size | chains in lockstep" + "".join(
        f" | {m} posteriors/s | {m} steps: mean / max per iteration | {m} lockstep waste"
        for m in sweep
    )
    lines = [
        "## (c) Batch-size sweep (CPU)",
        "",
        f"Command: {PERF} (tests `test_batch_size_sweep`, `test_sweep_default`). "
        f"R = {next(iter(sweep.values()))['n_regions']}, {s['chains']} chains, "
        f"{s['warmup']} + {s['draws']}; replications all of one size-class tier (one compiled "
        "program, no padding); compilation excluded. A vmapped NUTS iteration lasts as long as "
        "the longest trajectory among the batch's chains: lockstep waste = 1 - (sum over "
        "iterations of the mean leapfrog steps across the batch's chains) / (sum of the "
        "maximum), over every iteration, warm-up included (`Draws.batch_steps`, "
        "`Draws.lockstep_waste()`).",
        "",
        *_head(head),
    ]
    by_size: dict[int, dict] = {}
    for m, v in sweep.items():
        for row in v["rows"]:
            by_size.setdefault(row["batch_size"], {})[m] = row
    for size, per in sorted(by_size.items()):
        cells = f"| {size} | {next(iter(per.values()))['chains_in_lockstep']} |"
        for m in sweep:
            row = per.get(m)
            cells += (
                f" {row['posteriors_per_second']:,.1f} | {row['mean_steps_per_iteration']:.1f} / "
                f"{row['mean_max_steps_per_iteration']:.1f} | {row['lockstep_waste']:.0%} |"
                if row
                else " n/a | n/a | n/a |"
            )
        lines.append(cells)
    if choice := fig["sweep"].get("choice"):
        per = ", ".join(f"{m}: {b}" for m, b in choice["per_model_choice"].items())
        lines += [
            "",
            f"**Default CPU batch size from the sweep: {choice['chosen_batch_size']}** "
            f"(rule: {choice['rule']}; per model: {per}; the current default in "
            f"`mlmbias/bayes/options.py` is {choice['current_default']}).",
        ]
    return lines + [""]


def _memory(fig: dict) -> list[str]:
    m = fig.get("memory")
    if not m or not m.get("rows"):
        return []
    s, limit = fig["settings"], _gib(m["limit_bytes"], 0)
    lines = [
        f"## (d) Memory: the largest Bayesian batch in {limit} at R = {m['n_regions']}",
        "",
        f"Command: {PERF} (test `test_memory_r1000`), model {m['model']}, {s['chains']} chains, "
        f"{s['warmup']} + {s['draws']}.",
        "",
        *_head(
            "batch size | peak RSS of the unit's process | XLA buffers of the NUTS program "
            "| seconds (unit, compilation included)"
        ),
    ]
    lines += [
        f"| {r['batch_size']} | {_mib(r.get('peak_rss_bytes'))} "
        f"| {_mib(r.get('xla_program_bytes'))} | {r.get('seconds', float('nan')):.1f} |"
        for r in m["rows"]
    ] + [""]
    if f := m.get("rss_fit"):
        lines.append(
            f"Linear fit of the peak RSS: {f['bytes_per_replication'] / 2**20:.2f} MiB per "
            f"replication + {_mib(f['intercept_bytes'])}."
        )
    if f := m.get("xla_fit"):
        lines.append(
            f"XLA's accounting: {f['bytes_per_replication'] / 2**20:.2f} MiB per replication."
        )
    if m.get("largest_batch"):
        est = ", ".join(f"{k}: {v:,}" for k, v in m.get("estimates", {}).items())
        lines += [
            "",
            f"**Largest batch in {limit}: {m['largest_batch']:,} replications** (estimates "
            f"{est}); the NUTS program compiled (not run) at that size plans "
            f"{_gib(m.get('xla_bytes_at_largest'))} of buffers.",
            "",
            f"Method: {m.get('method', '')}.",
        ]
    return lines + [""]


def _rss(rss: dict | None) -> list[str]:
    lines = ["## Peak RSS of `make bench`", ""]
    if not rss:
        return lines + [f"Not recorded yet. Run `{RSS_CMD}`, then this script.", ""]
    return lines + [
        f"Command: `{rss.get('measured_by')}`; {rss.get('started')} to {rss.get('finished')}; "
        f"machine: {_machine(rss.get('machine'))}.",
        "",
        f"Peak RSS {_mib(rss.get('peak_rss_bytes'))} (the largest single process), wall "
        f"{rss.get('wall_seconds', 0):,.0f} s, CPU {rss.get('user_seconds', 0):,.0f} s user + "
        f"{rss.get('system_seconds', 0):,.0f} s system, exit status {rss.get('exit_status')}.",
        "",
    ]


def _gpu_section(gpu: dict, fig: dict | None) -> list[str]:
    lines = [
        "## GPU",
        "",
        "How to measure: README's GPU section (install, jax versions) and "
        "`bash bench/gpu_check.sh` (backend and devices, the batched Bayesian benchmark at a "
        "few batch sizes, a reduced default study); copy the JSON files it writes into "
        "`bench/results/gpu/` and rerun this script.",
        "",
    ]
    if not gpu:
        return lines + [f"GPU: {NO_GPU}.", ""]
    lines += [f"Machine: {_gpu_machine(gpu)}.", ""]
    if (bb := gpu.get("bayes_batches") or {}).get("rows"):
        s, r_key = bb.get("settings", {}), str(bb.get("settings", {}).get("n_regions"))
        cpu = {m: by_r.get(r_key, {}) for m, by_r in (fig or {}).get("bayes", {}).items()}
        lines += [
            f"Command: `bash bench/gpu_check.sh` ({bb.get('date')}); R = {s.get('n_regions')}, "
            f"{s.get('chains')} chains, {s.get('warmup')} + {s.get('draws')}; one batch each, "
            "compilation excluded.",
            "",
            *_head(
                "model | batch size | GPU posteriors/s | converged | first call s "
                f"| CPU posteriors/s (this R, {PERF})"
            ),
        ]
        for r in bb["rows"]:
            c = cpu.get(r["model"], {}).get("batched")
            lines.append(
                f"| {r['model']} | {r['batch_size']} | {r['posteriors_per_second']:,.1f} "
                f"| {_pct(r['converged_fraction'])} | {r['first_call_seconds']:.1f} "
                f"| {_rate(c)} |"
            )
        lines.append("")
    if st := gpu.get("study"):
        lines += [
            f"Reduced default study: `{st.get('command')}` ({st.get('date')}): "
            f"{st.get('wall_seconds', 0):.0f} s, exit status {st.get('exit_status')}"
            + (" (cut at its time limit)" if st.get("timed_out") else "")
            + f", {st.get('rows', 'n/a')} rows over {st.get('conditions', 'n/a')} conditions, "
            f"{st.get('failures', 0)} failed batches.",
            "",
        ]
    return lines


def _scripts(results: Path) -> list[str]:
    bayes_path, freq_path = results / "bayes.json", results / "frequentist.json"
    bayes, freq = _load(bayes_path), _load(freq_path)
    if not (bayes or freq):
        return []
    rs = ((bayes or {}).get("settings", {}).get("n_regions"), (freq or {}).get("n_regions"))
    lines = [
        f"## Stand-alone benchmark scripts (R = {', '.join(sorted({str(r) for r in rs if r}))})",
        "",
    ]
    if bayes:
        s = bayes.get("settings", {})
        lp0 = next(iter(bayes.get("models", {}).values()), {}).get("loop", {})
        lines += [
            f"`python bench/bench_bayes.py` ({_when(bayes_path)}; machine: "
            f"{_machine(bayes.get('machine'))}); {s.get('chains')} chains, "
            f"{s.get('warmup')} + {s.get('draws')}, batch size {s.get('batch_size')}; loop: "
            f"chains {lp0.get('chain_method')}, persistent compilation cache "
            f"{'on' if lp0.get('compilation_cache') else 'off'}:",
            "",
            *_head(
                "model | batched posteriors/s (converged) | loop posteriors/s (converged) | speedup"
            ),
        ]
        for m, e in bayes.get("models", {}).items():
            b, lp = e["batched"], e["loop"]
            lines.append(
                f"| {m} | {b['posteriors_per_second']:.2f} ({_pct(b['converged_fraction'])}) "
                f"| {lp['posteriors_per_second']:.3f} ({_pct(lp['converged_fraction'])}) "
                f"| {_x(e['speedup'])} |"
            )
        lines.append("")
    if freq:
        env, b, lp = freq.get("environment", {}), freq["batched"], freq["loop"]
        lines += [
            f"`python bench/bench_frequentist.py` ({_when(freq_path)}; {env.get('device')}, "
            f"{env.get('cpu_count')} cores, jax {env.get('jax')}): "
            f"{b['reps_per_second']:,.0f} replications/s batched ({b['reps']:,}) vs "
            f"{lp['reps_per_second']:.2f}/s loop ({lp['reps']}): {_x(freq.get('speedup'))}.",
            "",
        ]
    if few := (freq or {}).get("few_cluster"):
        w = few["wildboottest_loop"]
        lines += [
            "Few-cluster methods (no Python package computes them, hausman-wild aside), "
            "batched in the same run, microseconds per replication: "
            + ", ".join(f"{m} {v * 1e6:,.1f}" for m, v in few["seconds_per_rep"].items())
            + f". hausman-wild against wildboottest's loop ({w['reps']} replications, "
            f"{w['seconds_per_rep'] * 1e3:,.1f} ms each): {_x(few['wild_speedup'])}.",
            "",
        ]
    return lines


def _random_slopes(results: Path) -> list[str]:
    path = results / "random_slopes.json"
    rec = _load(path)
    if not rec:
        return []
    lines = [
        "## Random slopes (`python bench/bench_random_slopes.py`)",
        "",
        f'`rs-reml` batched against a loop of statsmodels `MixedLM(re_formula="~x")` '
        f"REML fits ({_when(path)}; machine: {_machine(rec.get('machine'))}); compilation "
        "apart; agreement on the loop's replications where statsmodels converged:",
        "",
        *_head(
            "R | batched reps/s (compile s) | loop reps/s (converged) | speedup "
            "| same optimum / ours higher / lower | max rel. diff of the slope there"
        ),
    ]
    for r, e in rec.get("regions", {}).items():
        b, lp, a = e["batched"], e["loop"], e.get("agreement", {})
        diff = a.get("max_rel_diff_beta")
        same = f"{a.get('same_optimum')} / {a.get('ours_higher')} / {a.get('ours_lower')}"
        lines.append(
            f"| {r} | {b['reps_per_second']:,.1f} ({b['compile_seconds']:.1f}) "
            f"| {lp['reps_per_second']:.2f} ({_pct(lp['converged_fraction'])}) "
            f"| {_x(e['speedup'])} | {same} | {'n/a' if diff is None else f'{diff:.1e}'} |"
        )
    return lines + [""]


def _engines_default(results: Path) -> list[str]:
    path = results / "engines_default.json"
    rec = _load(path)
    if not rec:
        return []
    nuts = rec.get("engines", {}).get("nuts", {})
    k = rec.get("k", 3)
    lines = [
        "## The default study under each engine (`python bench/compare_engines.py`)",
        "",
        f"`{rec.get('config')}`'s Bayesian methods ({', '.join(rec.get('methods', []))}), "
        f"{rec.get('replications')} replications in each of {rec.get('conditions')} "
        f"conditions, the same panels and keys under every engine, each paired with NUTS "
        f"(`{rec.get('nuts_folder')}`, created {nuts.get('created') or rec.get('nuts_created')}) "
        f"replication by replication ({_when(path)}; machine: {_machine(rec.get('machine'))}). "
        f"A cell (condition x method x estimand) is beyond the criterion when its mean paired "
        f'difference exceeds {k:g} MCSE (sd/sqrt(n) of the differences); "chance" is the '
        f"number expected beyond it with no difference at all:",
        "",
        *_head(
            "engine | wall s (sampling s) | converged | posterior means beyond / cells (chance) "
            "| largest t (Bonferroni p) | largest mean diff, posterior SDs "
            "| in the report's bias MCSE | lower / upper / cover / sq. error beyond"
        ),
    ]
    wall = nuts.get("wall_seconds")
    span = nuts.get("span_seconds")
    if wall is None and span is not None:
        wall_text = f"<= {span:.0f} (run elsewhere; with its frequentist methods)"
    else:
        wall_text = "n/a" if wall is None else f"{wall:.0f}"
    lines.append(
        f"| nuts | {wall_text} "
        f"({nuts.get('sampling_seconds', 0):.0f}) "
        f"| {_pct(nuts.get('converged_fraction'))} | reference | - | - | - | - |"
    )
    for engine, e in rec.get("engines", {}).items():
        if engine == "nuts":
            continue
        f = e["family"]
        est, wall = f["estimate"], e.get("wall_seconds")
        others = " / ".join(
            f"{f[q]['beyond']}/{f[q]['cells']}" for q in ("lower", "upper", "cover", "sq_error")
        )
        lines.append(
            f"| {engine} | {'n/a' if wall is None else f'{wall:.0f}'} "
            f"({e.get('sampling_seconds', 0):.0f}) | {_pct(e.get('converged_fraction'))} "
            f"| {est['beyond']}/{est['cells']} ({est['expected_by_chance']:.2f}) "
            f"| {est['max_abs_t']:.2f} ({est['bonferroni_p']:.2g}) "
            f"| {f['estimate_sd']['max_abs_mean']:.4f} "
            f"| {f['estimate_in_report_mcse']['max_abs']:.3f} | {others} |"
        )
    return lines + [""]


def build(results: Path) -> str:
    fig = _load(results / "perf_figures.json")
    rss = _load(results / "bench_rss.json")
    gpu = _gpu(results)
    _derive.upgrade(fig, gpu)
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
        *_head(" | CPU | GPU"),
        f"| {PERF} | {_machine(fig.get('machine')) if fig else 'not run yet'} "
        f"| {_gpu_machine(gpu)} |",
        "",
    ]
    if fig and fig.get("small"):
        lines += ["**PERF_SMALL=1 run: reduced sizes, not the reference figures.**", ""]
    lines += _summary(fig, rss, gpu)
    if fig:
        lines += _bayes(fig, gpu) if fig.get("bayes") else []
        lines += _frequentist(fig) + _sweep(fig) + _memory(fig)
    lines += _rss(rss) + _gpu_section(gpu, fig) + _scripts(results) + _random_slopes(results)
    lines += _engines_default(results)
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
