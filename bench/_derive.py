"""Figures derived from measured ones, for the benchmarks' JSON records.

The benchmarks call these when they write a record, so the record holds the
result (``bench/test_perf.py``, ``bench/gpu_check.sh``). ``bench/write_results.py``
only formats records; it calls :func:`upgrade` first, which fills in, with the
same functions, what a record written before a field existed lacks. Pure
Python, no JAX: the renderer imports it without starting a backend.
"""

from __future__ import annotations

# Targets (not measurements): batched Bayesian inference against the MCMC.run loop,
# the batched frequentist estimators against the linearmodels/statsmodels loop.
BAYES_TARGET, FREQ_TARGET = 100, 1000
# The convergence bounds that records written before test_perf and bench_bayes
# stored ``rhat_max`` / ``ess_min`` were measured with (mlmbias/bayes/options.py's
# defaults then).
LEGACY_RHAT_MAX, LEGACY_ESS_MIN = 1.01, 400


def ratio(entry: dict, rate: str, target: int) -> None:
    """``speedup`` (batched over loop ``rate``), its ``target`` and whether it is ``met``."""
    if "batched" in entry and "loop" in entry:
        entry["speedup"] = entry["batched"][rate] / entry["loop"][rate]
        entry["target"] = target
        entry["met"] = entry["speedup"] >= target


def profile(fig: dict) -> dict | None:
    """Where each side's time goes, at the loop variants' model and R: the batched
    fit's lockstep cost (from the sweep row at the batch size it ran with) and the
    loop's cost of an ``MCMC.run`` besides sampling (the short variant)."""
    s, variants = fig.get("settings", {}), fig.get("loop_variants")
    if not variants:
        return None
    model, r = variants["model"], str(variants["n_regions"])
    sweep = fig.get("sweep", {}).get(model, {})
    batched = fig.get("bayes", {}).get(model, {}).get(r, {}).get("batched")
    if not batched or str(sweep.get("n_regions")) != r:
        return None
    row = next((x for x in sweep["rows"] if x["batch_size"] == batched["batch_size"]), None)
    short = next((x for x in variants["rows"] if x["warmup"] < s["warmup"]), None)
    full = next(
        (
            x
            for x in variants["rows"]
            if x["warmup"] == s["warmup"] and x["chain_method"] == "vectorized"
        ),
        None,
    )
    if not (row and short and full):
        return None
    spp = 1.0 / batched["posteriors_per_second"]
    iterations = s["warmup"] + s["draws"]
    return {
        "model": model,
        "n_regions": variants["n_regions"],
        "batch_size": row["batch_size"],
        "chains_in_lockstep": row["chains_in_lockstep"],
        "batched_seconds_per_posterior": spp,
        "mean_steps_per_iteration": row["mean_steps_per_iteration"],
        "mean_max_steps_per_iteration": row["mean_max_steps_per_iteration"],
        "lockstep_waste": row["lockstep_waste"],
        "seconds_per_lockstep_step": spp
        * row["batch_size"]
        / (iterations * row["mean_max_steps_per_iteration"]),
        "speedup_bound_without_waste": 1.0 / (1.0 - row["lockstep_waste"]),
        "loop_seconds_per_posterior": full["seconds_per_posterior"],
        "run_overhead_seconds": short["seconds_per_posterior"],
        "run_overhead_iterations": [short["warmup"], short["draws"]],
    }


def gpu_fastest(rows: list[dict]) -> dict:
    """From gpu_check's rows: the fastest row per model, and the batch size with the
    most posteriors/s summed over the models."""
    best: dict = {}
    for r in rows:
        if (
            r["model"] not in best
            or r["posteriors_per_second"] > best[r["model"]]["posteriors_per_second"]
        ):
            best[r["model"]] = r
    sizes = sorted({r["batch_size"] for r in rows})
    total = {
        b: sum(r["posteriors_per_second"] for r in rows if r["batch_size"] == b) for b in sizes
    }
    return {
        "by_model": best,
        "batch_size": max(total, key=total.get) if total else None,
        "batch_sizes": sizes,
    }


def join_gpu(fig: dict, gpu_batches: dict) -> None:
    """Beside each CPU entry at gpu_check's R, the model's fastest GPU row and its
    ratio to this CPU loop (two records, two machines: joined when rendering)."""
    r = str(gpu_batches.get("settings", {}).get("n_regions"))
    for method, by_r in fig.get("bayes", {}).items():
        best = gpu_batches["fastest"]["by_model"].get(method)
        if not best:
            continue
        for key, entry in by_r.items():
            if key != r:
                entry["gpu"] = None  # measured, at another R
                continue
            loop = entry.get("loop", {}).get("posteriors_per_second")
            vs = best["posteriors_per_second"] / loop if loop else None
            entry["gpu"] = {**best, "vs_cpu_loop": vs}


def upgrade(fig: dict | None, gpu: dict) -> None:
    """Fill in, in place, the derived fields that older records lack."""
    if fig:
        settings = fig.setdefault("settings", {})
        settings.setdefault("rhat_max", LEGACY_RHAT_MAX)
        settings.setdefault("ess_min", LEGACY_ESS_MIN)
        for by_r in fig.get("bayes", {}).values():
            for entry in by_r.values():
                if "met" not in entry:
                    ratio(entry, "posteriors_per_second", BAYES_TARGET)
        freq = fig.get("frequentist")
        if freq and "met" not in freq:
            ratio(freq, "reps_per_second", FREQ_TARGET)
        if "profile" not in fig:
            fig["profile"] = profile(fig)
    batches = gpu.get("bayes_batches")
    if batches:
        if "fastest" not in batches:
            batches["fastest"] = gpu_fastest(batches.get("rows", []))
        if fig:
            join_gpu(fig, batches)
