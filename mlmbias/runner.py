"""Run a study: every condition x method x block of replications, into the store.

The work is a deterministic list of units (condition, method, block). Each unit
simulates its replications from their own keys, computes the group statistics,
fits the method and writes one Parquet part. Completed parts are skipped, so
running the same command again resumes; a shard K/N takes every N-th unit.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from mlmbias import store
from mlmbias.dgp import DGP
from mlmbias.errors import ConfigError
from mlmbias.groupstats import GroupStats, group_stats
from mlmbias.registry import Batch, MethodSpec, get_method
from mlmbias.seeding import condition_id, data_keys, method_keys, replication_keys
from mlmbias.simulate import simulate
from mlmbias.store import Unit
from mlmbias.study import Study

# [bayes] keys the runner reads itself rather than passing to the sampler.
_RUNNER_BAYES_KEYS = ("replications",)


def replications_for(study: Study, spec: MethodSpec) -> int:
    """Replications of a method: ``[bayes] replications`` for Bayesian ones if set."""
    if spec.kind == "bayes":
        return study.bayes.get("replications", study.replications)
    return study.replications


def block_for(study: Study, spec: MethodSpec) -> int:
    """Replications per unit: one vmapped NUTS batch (``[bayes] batch_size``, else
    the backend's default) for Bayesian methods, the study's ``block`` otherwise."""
    if spec.kind == "bayes":
        from mlmbias.bayes.options import default_batch_size

        return int(study.bayes.get("batch_size", default_batch_size()))
    return study.block


def method_options(study: Study, spec: MethodSpec) -> dict[str, Any]:
    if spec.kind == "bayes":
        return {k: v for k, v in study.bayes.items() if k not in _RUNNER_BAYES_KEYS}
    return {}


def plan(study: Study) -> list[Unit]:
    """Every unit of the study, in a fixed order: condition, then block, then method."""
    units = []
    specs = [get_method(m) for m in study.methods]
    for ci, dgp in enumerate(study.conditions()):
        cid = condition_id(dgp)
        for kind in ("frequentist", "bayes"):
            group = [s for s in specs if s.kind == kind]
            if not group:
                continue
            n, block = replications_for(study, group[0]), block_for(study, group[0])
            for start in range(0, n, block):
                for spec in group:
                    units.append(Unit(ci, cid, spec.name, start, min(start + block, n)))
    return units


def shard_units(units: Sequence[Unit], shard: tuple[int, int]) -> list[Unit]:
    k, n = shard
    return [u for i, u in enumerate(units) if i % n == k - 1]


def parse_shard(text: str | None, environ: dict[str, str] | None = None) -> tuple[int, int]:
    """``K/N`` from the option, else from a SLURM array job, else ``(1, 1)``."""
    environ = os.environ if environ is None else environ
    if text is None and "SLURM_ARRAY_TASK_ID" in environ and "SLURM_ARRAY_TASK_COUNT" in environ:
        first = int(environ.get("SLURM_ARRAY_TASK_MIN", "0"))
        k = int(environ["SLURM_ARRAY_TASK_ID"]) - first + 1
        text = f"{k}/{environ['SLURM_ARRAY_TASK_COUNT']}"
    if text is None:
        return (1, 1)
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise ConfigError(f"--shard must look like K/N, got {text!r}") from None
    if not 1 <= k <= n:
        raise ConfigError(f"--shard K/N needs 1 <= K <= N, got {text!r}")
    return (k, n)


def environment() -> dict[str, Any]:
    import numpyro

    from mlmbias import __version__

    return {
        "mlmbias": __version__,
        "jax": jax.__version__,
        "numpyro": numpyro.__version__,
        "python": platform.python_version(),
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "machine": platform.machine(),
    }


def _normalise(obj: Any) -> Any:
    return json.loads(json.dumps(obj))


# --------------------------------------------------------------------------- devices


def _device_count() -> int:
    return len(jax.devices())


def _pad_reps(tree: Any, n: int, multiple: int) -> Any:
    extra = (-n) % multiple
    if not extra:
        return tree
    return jax.tree.map(lambda a: jnp.concatenate([a, jnp.repeat(a[-1:], extra, axis=0)]), tree)


def _shard_over_devices(tree: Any) -> Any:
    """Place a pytree with a leading replication axis across all local devices."""
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    mesh = Mesh(np.array(jax.devices()), ("rep",))
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec("rep")))


# --------------------------------------------------------------------------- one unit


def _simulate_block(study: Study, dgp: DGP, start: int, stop: int):
    reps = np.arange(start, stop)
    rep_keys = replication_keys(study.seed, dgp, reps)
    return rep_keys, group_stats(simulate(dgp, data_keys(rep_keys)))


def fit_unit(
    study: Study, unit: Unit, dgp: DGP, rep_keys: jax.Array, stats: GroupStats
) -> pd.DataFrame:
    """Fit one unit's method and return its tidy rows."""
    spec = get_method(unit.method)
    n = unit.stop - unit.start
    keys = method_keys(rep_keys, spec.name)
    devices = _device_count()
    if devices > 1:
        keys, stats = _shard_over_devices(_pad_reps((keys, stats), n, devices))
    t0 = time.perf_counter()
    out = spec.load()(
        Batch(keys=keys, stats=stats, panel=None), study.level, method_options(study, spec)
    )
    seconds = time.perf_counter() - t0
    words = np.asarray(rep_keys, dtype=np.uint64)
    base = {
        "condition_index": unit.condition_index,
        "condition_id": unit.condition_id,
        **dgp.as_dict(),
        "seed": study.seed,
        "rep": np.arange(unit.start, unit.stop),
        "rep_key": (words[:, 0] << np.uint64(32)) | words[:, 1],
        "method": spec.name,
        "kind": spec.kind,
    }
    frames = []
    for estimand in spec.estimands:
        cols = {k: np.asarray(v)[:n] for k, v in out[estimand].items()}
        frame = pd.DataFrame({**base, "estimand": estimand, **cols})
        frame["width"] = frame["upper"] - frame["lower"]
        frame["failed"] = ~np.isfinite(frame["estimate"].to_numpy(float))
        frame["batch_seconds"] = seconds
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------- a study


def _release_sampler_programs() -> None:
    """Drop the Bayesian sampler's compiled programs, if it was loaded."""
    import sys

    posterior = sys.modules.get("mlmbias.bayes.posterior")
    if posterior is not None:
        posterior._program.cache_clear()


@dataclass
class RunSummary:
    out: Path
    units: int
    skipped: int = 0
    ran: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def lines(self) -> list[str]:
        lines = [
            f"{self.units} batches: {self.skipped} already done, {self.ran} run, "
            f"{len(self.failures)} failed, in {self.seconds:.1f} s; results in {self.out}"
        ]
        for f in self.failures:
            lines.append(
                f"  FAILED condition {f['condition_index']} ({f['condition']}) method "
                f"{f['method']} replications {f['start']}-{f['stop'] - 1}: {f['message']}"
            )
        return lines


def run_study(
    study: Study,
    out: str | Path,
    *,
    force: bool = False,
    shard: tuple[int, int] = (1, 1),
    quiet: bool = False,
    on_part: Callable[[Unit], None] | None = None,
) -> RunSummary:
    """Run (or resume) ``study`` into folder ``out``; see the module docstring."""
    from tqdm.auto import tqdm

    root = Path(out)
    store.prepare_folder(root)
    manifest = {
        "study": _normalise(study.as_dict()),
        "shard": list(shard),
        **environment(),
    }
    old = store.read_manifest(root)
    if old is not None and not force:
        if old.get("study") != manifest["study"]:
            raise ConfigError(
                f"{root} holds a different study ({old.get('study', {}).get('name')}); "
                "use another folder or --force to replace it"
            )
        if old.get("shard") != manifest["shard"]:
            raise ConfigError(
                f"{root} holds shard {old.get('shard')} of this study, not {list(shard)}"
            )
    if old is not None and force and old.get("study") != manifest["study"]:
        import shutil

        shutil.rmtree(root / store.PARTS, ignore_errors=True)
        shutil.rmtree(root / store.ERRORS, ignore_errors=True)
    manifest["created"] = (old or {}).get("created") or _dt.datetime.now(_dt.UTC).isoformat()
    store.write_manifest(root, manifest)
    store.remove_temporaries(root)

    units = shard_units(plan(study), shard)
    conditions = study.conditions()
    summary = RunSummary(out=root, units=len(units))
    t_start = time.perf_counter()
    todo = []
    for unit in units:
        expected = (unit.stop - unit.start) * len(get_method(unit.method).estimands)
        if store.read_part(store.part_path(root, unit), expected) is None:
            todo.append(unit)
        else:
            summary.skipped += 1
    bar = tqdm(total=len(todo), disable=quiet, unit="batch", dynamic_ncols=True)
    cache: tuple[tuple[int, int, int], Any] | None = None
    try:
        for unit in todo:
            dgp = conditions[unit.condition_index]
            bar.set_description(
                f"condition {unit.condition_index + 1}/{len(conditions)} {unit.method} "
                f"reps {unit.start}-{unit.stop - 1}"
            )
            try:
                block = (unit.condition_index, unit.start, unit.stop)
                if cache is not None and conditions[cache[0][0]].n_regions != dgp.n_regions:
                    # compiled NUTS programs for another R are not reused; each
                    # holds thousands of memory mappings, and a long study would
                    # otherwise exhaust the kernel's limit
                    _release_sampler_programs()
                if cache is None or cache[0] != block:
                    cache = (block, _simulate_block(study, dgp, unit.start, unit.stop))
                frame = fit_unit(study, unit, dgp, *cache[1])
                store.write_part(root, unit, frame)
                store.clear_error(root, unit)
                summary.ran += 1
            except Exception as exc:  # recorded; the run goes on
                record = {
                    "condition_index": unit.condition_index,
                    "condition": dgp.as_dict(),
                    "method": unit.method,
                    "start": unit.start,
                    "stop": unit.stop,
                    "message": f"{type(exc).__name__}: {exc}",
                    "traceback": traceback.format_exc(),
                }
                store.write_error(root, unit, record)
                summary.failures.append(record)
            bar.update(1)
            if on_part is not None:
                on_part(unit)
    finally:
        bar.close()
        summary.seconds = time.perf_counter() - t_start
    return summary


def merge(out: str | Path, shard_dirs: Sequence[str | Path]) -> int:
    """Combine shard folders of one study into ``out``; returns the number of parts."""
    import shutil

    if not shard_dirs:
        raise ConfigError("merge needs at least one shard folder")
    manifests = []
    for d in shard_dirs:
        m = store.read_manifest(Path(d))
        if m is None:
            raise ConfigError(f"{d} holds no study (no {store.MANIFEST})")
        manifests.append(m)
    first = manifests[0]["study"]
    for d, m in zip(shard_dirs, manifests, strict=True):
        if m["study"] != first:
            raise ConfigError(f"{d} holds a different study config than {shard_dirs[0]}")
    shards = [tuple(m.get("shard", (1, 1))) for m in manifests]
    if len(set(shards)) != len(shards):
        raise ConfigError(f"the same shard appears twice among {list(map(str, shard_dirs))}")
    root = Path(out)
    if store.read_manifest(root) is not None or store.part_files(root):
        raise ConfigError(f"{root} already holds results; merge into an empty folder")
    seen: dict[str, Path] = {}
    for d in shard_dirs:
        for p in store.part_files(Path(d)):
            rel = p.relative_to(Path(d) / store.PARTS).as_posix()
            if rel in seen:
                raise ConfigError(f"shards overlap: {rel} is in {seen[rel]} and {d}")
            seen[rel] = Path(d)
    store.prepare_folder(root)
    for rel, d in seen.items():
        target = root / store.PARTS / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(d / store.PARTS / rel, target)
    merged = dict(manifests[0])
    merged["shard"] = [1, 1]
    merged["merged_from"] = [
        {"folder": str(d), "shard": list(s)} for d, s in zip(shard_dirs, shards, strict=True)
    ]
    n_total = shards[0][1]
    if sorted(s[0] for s in shards) != list(range(1, n_total + 1)) or any(
        s[1] != n_total for s in shards
    ):
        merged["incomplete"] = True
    store.write_manifest(root, merged)
    return len(seen)
