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
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from mlmbias import store
from mlmbias.errors import ConfigError
from mlmbias.groupstats import GroupStats, group_stats
from mlmbias.progress import progress
from mlmbias.provenance import environment
from mlmbias.registry import Batch, MethodSpec, get_method, output_items, term_names
from mlmbias.scenarios import Scenario
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


def block_for(study: Study, spec: MethodSpec, bayes_block: int | None = None) -> int:
    """Replications per unit: one vmapped NUTS batch (``[bayes] batch_size``, else
    ``bayes_block``, else the backend's default) for Bayesian methods, the study's
    ``block`` otherwise."""
    if spec.kind == "bayes":
        from mlmbias.bayes.options import default_batch_size

        if "batch_size" in study.bayes:
            return int(study.bayes["batch_size"])
        if bayes_block is not None:
            return int(bayes_block)
        return default_batch_size(engine=study.bayes.get("engine", "nuts"))
    return study.block


def resolved_blocks(study: Study) -> dict[str, int]:
    """The block sizes a run uses here, recorded in the manifest: without ``[bayes]
    batch_size`` the Bayesian one depends on the backend (CPU or GPU), and a resume,
    a report or a merge elsewhere must plan the same units."""
    from mlmbias.bayes.options import default_batch_size

    return {
        "frequentist": study.block,
        "bayes": int(
            study.bayes.get(
                "batch_size", default_batch_size(engine=study.bayes.get("engine", "nuts"))
            )
        ),
    }


def method_options(study: Study, spec: MethodSpec) -> dict[str, Any]:
    """[bayes] for a Bayesian method, then the method's own [options.METHOD]."""
    shared = {}
    if spec.kind == "bayes":
        shared = {k: v for k, v in study.bayes.items() if k not in _RUNNER_BAYES_KEYS}
    return {**shared, **study.options.get(spec.name, {})}


def plan(study: Study, bayes_block: int | None = None) -> list[Unit]:
    """Every unit of the study, in a fixed order: condition, then block, then method.

    ``bayes_block`` is the Bayesian block size when ``[bayes] batch_size`` is not
    set (the manifest's ``blocks``); by default the backend's."""
    units = []
    specs = [get_method(m) for m in study.methods]
    for ci, dgp in enumerate(study.conditions()):
        cid = condition_id(dgp)
        for kind in ("frequentist", "bayes"):
            group = [s for s in specs if s.kind == kind]
            if not group:
                continue
            n = replications_for(study, group[0])
            block = block_for(study, group[0], bayes_block)
            for start in range(0, n, block):
                for spec in group:
                    units.append(Unit(ci, cid, spec.name, start, min(start + block, n)))
    return units


def shard_units(units: Sequence[Unit], shard: tuple[int, int]) -> list[Unit]:
    k, n = shard
    return [u for i, u in enumerate(units) if i % n == k - 1]


def _env_int(environ: Mapping[str, str], name: str) -> int:
    raw = environ.get(name, "0")
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"environment variable {name} must be an integer, got {raw!r}") from None


# Array-job schedulers: (index variable, count variable, index of the first task).
# Kubernetes sets only the index; its count is the Job's spec.completions, which
# the manifest passes in MLMBIAS_SHARD_COUNT.
ARRAY_JOBS = (
    ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN"),
    ("AWS_BATCH_JOB_ARRAY_INDEX", "AWS_BATCH_JOB_ARRAY_SIZE", None),
    ("JOB_COMPLETION_INDEX", "MLMBIAS_SHARD_COUNT", None),
)


def _shard_from_environment(environ: Mapping[str, str]) -> str | None:
    for index_var, count_var, first_var in ARRAY_JOBS:
        if index_var not in environ:
            continue
        if count_var not in environ:
            raise ConfigError(
                f"{index_var} is set but {count_var} is not: set it to the number of "
                "array tasks, or pass --shard K/N"
            )
        task, count = _env_int(environ, index_var), _env_int(environ, count_var)
        first = _env_int(environ, first_var) if first_var else 0
        k = task - first + 1
        if not 1 <= k <= count:
            where = f" with {first_var}={first}" if first_var else ""
            raise ConfigError(
                f"{index_var}={task}{where} and {count_var}={count} gives shard {k}/{count}, "
                "outside 1 <= K <= N (an array with a step is not supported); pass --shard K/N"
            )
        return f"{k}/{count}"
    return None


def parse_shard(text: str | None, environ: Mapping[str, str] | None = None) -> tuple[int, int]:
    """``K/N`` from the option, else from an array job (SLURM, AWS Batch, a
    Kubernetes Indexed Job; ``ARRAY_JOBS``), else ``(1, 1)``."""
    environ = os.environ if environ is None else environ
    if text is None:
        text = _shard_from_environment(environ)
    if text is None:
        return (1, 1)
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise ConfigError(f"--shard must look like K/N, got {text!r}") from None
    if not 1 <= k <= n:
        raise ConfigError(f"--shard K/N needs 1 <= K <= N, got {text!r}")
    return (k, n)


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


def _simulate_block(study: Study, dgp: Scenario, start: int, stop: int):
    reps = np.arange(start, stop)
    rep_keys = replication_keys(study.seed, dgp, reps)
    return rep_keys, group_stats(simulate(dgp, data_keys(rep_keys)))


def fit_unit(
    study: Study, unit: Unit, dgp: Scenario, rep_keys: jax.Array, stats: GroupStats
) -> pd.DataFrame:
    """Fit one unit's method and return its tidy rows.

    Each row names its ``term`` (the covariate, from the scenario's names) and
    carries the scenario's ``truth`` for its (estimand, term), NaN where it has none.
    """
    spec = get_method(unit.method)
    n = unit.stop - unit.start
    keys = method_keys(rep_keys, spec.name)
    devices = _device_count()
    if devices > 1:
        keys, stats = _shard_over_devices(_pad_reps((keys, stats), n, devices))
    t0 = time.perf_counter()
    out = spec.load()(Batch(keys=keys, stats=stats), study.level, method_options(study, spec))
    seconds = time.perf_counter() - t0
    words = np.asarray(rep_keys, dtype=np.uint64)
    terms = term_names(dgp.x_names, dgp.z_names)
    truths = dgp.truths()
    base = {
        "condition_index": unit.condition_index,
        "condition_id": unit.condition_id,
        "scenario": dgp.name,
        **dgp.as_dict(),
        "seed": study.seed,
        "rep": np.arange(unit.start, unit.stop),
        "rep_key": (words[:, 0] << np.uint64(32)) | words[:, 1],
        "method": spec.name,
        "kind": spec.kind,
    }
    frames = []
    for (estimand, term), columns in output_items(spec.name, out):
        clash = sorted(set(columns) & (set(base) | {"estimand", "term", "truth"}))
        if clash:  # a diagnostic must never overwrite a condition field or a key
            raise ValueError(
                f"method '{spec.name}' returns a column '{clash[0]}' that is also a column "
                f"of every row (a field of scenario '{dgp.name}' or a key); rename it"
            )
        cols = {k: np.asarray(v)[:n] for k, v in columns.items()}
        name = terms.get(term, term)
        truth = float(truths.get((estimand, name), np.nan))
        frame = pd.DataFrame({**base, "estimand": estimand, "term": name, "truth": truth, **cols})
        frame["width"] = frame["upper"] - frame["lower"]
        frame["failed"] = ~np.isfinite(frame["estimate"].to_numpy(float))
        frame["batch_seconds"] = seconds
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------- a study


def _release_sampler_programs() -> None:
    """Drop the Bayesian sampler's compiled programs, if it was loaded."""
    import sys

    draws = sys.modules.get("mlmbias.bayes.draws")
    if draws is not None:
        draws._program.cache_clear()


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


def _storage_error(root: Path, exc: OSError) -> store.StorageError:
    return store.StorageError(
        f"cannot write to {root}: {exc.strerror or exc}; the finished batches are saved: "
        "free space (or fix the folder's permissions) and run the same command again to resume"
    )


def _clear_results(root: Path) -> None:
    import shutil

    shutil.rmtree(root / store.PARTS, ignore_errors=True)
    shutil.rmtree(root / store.ERRORS, ignore_errors=True)


def _foreign_files(root: Path, ident: str, names: set[str]) -> list[Path]:
    """Parts and error records in ``root`` that are not this study's: no identity (an
    older mlmbias, or unreadable), another study's hash, or a unit outside its plan."""
    foreign = []
    for path in store.part_files(root):
        identity = store.part_identity(path)
        name = store.part_name(root, path)
        if (
            identity is None
            or identity.get("study_hash") != ident
            or identity.get("unit") != name
            or name not in names
        ):
            foreign.append(path)
    for path in store.error_files(root):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            record = None
        if not isinstance(record, dict) or record.get("study_hash") != ident:
            foreign.append(path)
    return foreign


def run_study(
    study: Study,
    out: str | Path,
    *,
    force: bool = False,
    shard: tuple[int, int] = (1, 1),
    quiet: bool = False,
    on_part: Callable[[Unit], None] | None = None,
) -> RunSummary:
    """Run (or resume) ``study`` into folder ``out``; see the module docstring.

    The folder is locked for the whole run: a second run into it is refused.
    """
    root = Path(out)
    store.prepare_folder(root)
    with store.lock_folder(root, "run"):
        return _run_locked(study, root, force, shard, quiet, on_part)


def _run_locked(
    study: Study,
    root: Path,
    force: bool,
    shard: tuple[int, int],
    quiet: bool,
    on_part: Callable[[Unit], None] | None,
) -> RunSummary:
    study_dict = _normalise(study.as_dict())
    ident = store.study_hash(study_dict)
    blocks = resolved_blocks(study)
    old = store.read_manifest(root)
    created = None
    if old is None:
        # parts without a manifest: keep only those that carry this study's identity
        names = {u.name for u in plan(study, blocks["bayes"])}
        foreign = _foreign_files(root, ident, names)
        if foreign and not force:
            example = foreign[0].relative_to(root).as_posix()
            raise ConfigError(
                f"{root} has no {store.MANIFEST} and holds {len(foreign)} stored files that "
                f"do not belong to this study (e.g. {example}: another study, another batch "
                "size or an older mlmbias); use another folder or --force to remove them"
            )
        for path in foreign:
            path.unlink(missing_ok=True)
        if foreign:
            print(
                f"mlmbias run: --force: removed {len(foreign)} files of another study from {root}",
                file=sys.stderr,
            )
    elif (problem := store.format_problem(root, old)) is not None:
        # checked before the study: another format may resolve the same config differently
        if not force:
            raise ConfigError(
                f"{problem}; rows of different formats are never mixed: use another "
                "folder, or --force to replace its results"
            )
        _clear_results(root)
    elif old["study"] != study_dict:
        if not force:
            raise ConfigError(
                f"{root} holds a different study ({old['study'].get('name')}); "
                "use another folder or --force to replace it"
            )
        _clear_results(root)
    elif old.get("study_hash") != ident:
        if not force:
            raise ConfigError(
                f"corrupt manifest {root / store.MANIFEST}: its study_hash does not match "
                "its study (was it edited by hand?); use another folder or --force to redo it"
            )
        _clear_results(root)
    else:
        if old.get("shard", [1, 1]) != list(shard) and not force:
            raise ConfigError(
                f"{root} holds shard {old.get('shard')} of this study, not {list(shard)}"
            )
        recorded = old.get("blocks") or {}
        if isinstance(recorded.get("bayes"), int):
            blocks["bayes"] = recorded["bayes"]  # plan the units the folder was started with
        created = old.get("created")
    manifest = {
        "study": study_dict,
        "study_hash": ident,
        "results_format": store.RESULTS_FORMAT,
        "shard": list(shard),
        "blocks": blocks,
        **environment(),
        "created": created or _dt.datetime.now(_dt.UTC).isoformat(),
    }
    try:
        store.write_manifest(root, manifest)
    except OSError as exc:
        raise _storage_error(root, exc) from None
    store.remove_temporaries(root)

    units = shard_units(plan(study, blocks["bayes"]), shard)
    conditions = study.conditions()
    summary = RunSummary(out=root, units=len(units))
    t_start = time.perf_counter()
    todo = []
    for unit in units:
        status, _ = store.check_part(
            store.part_path(root, unit),
            ident,
            unit.stop - unit.start,
            unit.name,
            False,
            len(get_method(unit.method).estimands),
        )
        if status != "ok":
            todo.append(unit)
        else:
            summary.skipped += 1
    bar = progress(len(todo), quiet)
    cache: tuple[tuple[int, int, int], Any] | None = None

    def record_failure(unit: Unit, dgp: Scenario, exc: Exception) -> None:
        record = {
            "condition_index": unit.condition_index,
            "condition": dgp.as_dict(),
            "method": unit.method,
            "start": unit.start,
            "stop": unit.stop,
            "message": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc(),
            "unit": unit.name,
            "study_hash": ident,
        }
        try:
            store.write_error(root, unit, record)
        except OSError as err:
            raise _storage_error(root, err) from None
        summary.failures.append(record)

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
            except Exception as exc:  # recorded; the run goes on
                record_failure(unit, dgp, exc)
            else:
                try:
                    store.write_part(root, unit, frame, ident)
                    store.clear_error(root, unit)
                except OSError as err:  # disk full, read-only, ...: stop, data so far are safe
                    raise _storage_error(root, err) from None
                except Exception as exc:  # a frame Arrow cannot store: recorded
                    record_failure(unit, dgp, exc)
                else:
                    summary.ran += 1
            bar.update(1)
            if on_part is not None:
                on_part(unit)
    finally:
        bar.close()
        summary.seconds = time.perf_counter() - t_start
    return summary


# --------------------------------------------------------------------------- what is stored


@dataclass(frozen=True)
class Completeness:
    """What a study folder holds against its plan (the manifest's study and shard).

    Batch names are unit names, ``<condition_id>/<method>/<start>-<stop>``, the
    paths of their parts under ``parts/`` and of their records under ``errors/``.
    """

    folder: str
    planned: int | None  # None: the plan could not be rebuilt (see ``reason``)
    present: int
    missing: tuple[str, ...] = ()  # never written
    failed: tuple[str, ...] = ()  # recorded in errors/, no part
    unreadable: tuple[str, ...] = ()  # a part that cannot be read in full
    foreign: tuple[str, ...] = ()  # a part without this study's identity
    extra: int = 0  # parts outside the plan, not read
    flagged: bool = False  # the manifest says "incomplete" (a merge lacked shards)
    reason: str = ""

    @property
    def absent(self) -> tuple[str, ...]:
        return self.failed + self.unreadable + self.foreign + self.missing

    @property
    def complete(self) -> bool:
        return self.planned is not None and not self.absent and not self.flagged

    def as_dict(self) -> dict[str, Any]:
        import dataclasses

        return {**dataclasses.asdict(self), "complete": self.complete}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Completeness:
        import dataclasses

        names = {f.name for f in dataclasses.fields(cls)}
        return cls(
            **{k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in names}
        )

    def summary(self) -> str:
        """One line: what is missing, or that nothing is."""
        if self.planned is None:
            return (
                f"{self.folder}: cannot check that the study is complete ({self.reason}); "
                f"{self.present} parts read"
            )
        if self.absent:
            kinds = [
                (len(self.failed), "failed"),
                (len(self.unreadable), "unreadable"),
                (len(self.foreign), "not of this study"),
                (len(self.missing), "never written"),
            ]
            detail = ", ".join(f"{n} {what}" for n, what in kinds if n)
            text = (
                f"{self.folder}: incomplete study: {len(self.absent)} of {self.planned} "
                f"batches missing ({detail})"
            )
        elif self.flagged:
            text = f"{self.folder}: incomplete study: the manifest says so (a merge lacked shards)"
        else:
            text = f"{self.folder}: complete: all {self.planned} batches present"
        if self.flagged and self.absent:
            text += "; the manifest says the merge lacked shards"
        return text

    def named(self) -> list[str]:
        return (
            [f"{n} (failed)" for n in self.failed]
            + [f"{n} (unreadable)" for n in self.unreadable]
            + [f"{n} (not of this study)" for n in self.foreign]
            + [f"{n} (never written)" for n in self.missing]
        )

    def lines(self, limit: int = 10) -> list[str]:
        """The summary, then up to ``limit`` batch names and how many more."""
        named = self.named()
        out = [self.summary()]
        out += [f"  {n}" for n in named[:limit]]
        if len(named) > limit:
            out.append(f"  ... and {len(named) - limit} more")
        if self.extra:
            out.append(
                f"  {self.extra} parts in {self.folder}/{store.PARTS} are outside the plan "
                "and were not read"
            )
        return out

    def one_line(self, limit: int = 3) -> str:
        named = self.named()
        text = self.summary()
        if named:
            text += ": " + ", ".join(named[:limit])
            if len(named) > limit:
                text += f" and {len(named) - limit} more"
        return text


def manifest_plan(manifest: dict[str, Any]) -> list[Unit]:
    """The units of a manifest's study and shard, with the block sizes it recorded."""
    study = Study(**manifest["study"])
    bayes_block = (manifest.get("blocks") or {}).get("bayes")
    return shard_units(plan(study, bayes_block), tuple(manifest.get("shard", (1, 1))))


def scan(
    root: str | Path, manifest: dict[str, Any] | None = None, *, keep_rows: bool = False
) -> tuple[Completeness, list[pd.DataFrame]]:
    """Check every planned part of a study folder; with ``keep_rows`` also its rows."""
    root = Path(root)
    if manifest is None:
        manifest = store.study_manifest(root)
    ident = store.check_format(root, manifest)
    flagged = bool(manifest.get("incomplete", False))
    frames: list[pd.DataFrame] = []
    try:
        units = manifest_plan(manifest)
    except (TypeError, ValueError) as exc:  # ConfigError is a ValueError
        # e.g. a method this installation does not have: read what carries the identity
        for path in store.part_files(root):
            frame = store.read_part(path, ident, unit=store.part_name(root, path))
            if frame is not None and keep_rows:
                frames.append(frame)
        reason = f"cannot rebuild its plan: {exc}".replace("\n", " ")
        return Completeness(str(root), None, len(frames), flagged=flagged, reason=reason), frames
    found: dict[str, list[str]] = {"missing": [], "failed": [], "unreadable": [], "foreign": []}
    present = 0
    planned_paths = set()
    for unit in units:
        path = store.part_path(root, unit)
        planned_paths.add(path)
        status, frame = store.check_part(
            path,
            ident,
            unit.stop - unit.start,
            unit.name,
            rows=keep_rows,
            min_items=len(get_method(unit.method).estimands),
        )
        if status == "ok":
            present += 1
            if keep_rows:
                frames.append(frame)
        elif status == "missing" and store.error_path(root, unit).exists():
            found["failed"].append(unit.name)
        else:
            found[status].append(unit.name)
    extra = sum(1 for p in store.part_files(root) if p not in planned_paths)
    check = Completeness(
        str(root),
        len(units),
        present,
        missing=tuple(found["missing"]),
        failed=tuple(found["failed"]),
        unreadable=tuple(found["unreadable"]),
        foreign=tuple(found["foreign"]),
        extra=extra,
        flagged=flagged,
    )
    return check, frames


def completeness(root: str | Path) -> Completeness:
    """What a study folder holds against its plan; see :class:`Completeness`."""
    return scan(root)[0]


# --------------------------------------------------------------------------- merging


@dataclass
class MergeSummary:
    out: Path
    parts: int
    errors: int
    shards: list[tuple[int, int]]
    missing_shards: list[int]
    completeness: Completeness

    @property
    def incomplete(self) -> bool:
        return bool(self.missing_shards) or not self.completeness.complete

    def lines(self) -> list[str]:
        return [
            f"merged {self.parts} parts and {self.errors} failed-batch records from "
            f"{len(self.shards)} shard folders into {self.out}"
        ]

    def warning(self) -> str | None:
        """One line when the merged study is incomplete, else None."""
        if not self.incomplete:
            return None
        n = self.shards[0][1]
        shards = (
            f"shards {', '.join(f'{k}/{n}' for k in self.missing_shards)} not given; "
            if self.missing_shards
            else ""
        )
        return f"{shards}{self.completeness.one_line()}; `mlmbias report` will say so"


def merge(out: str | Path, shard_dirs: Sequence[str | Path]) -> MergeSummary:
    """Combine shard folders of one study into ``out`` (parts and failed-batch records).

    The output folder is locked while merging. The summary says whether the
    merged study is complete; the merged manifest has ``"incomplete": true`` if not.
    """
    import shutil

    if not shard_dirs:
        raise ConfigError("merge needs at least one shard folder")
    manifests = [store.study_manifest(Path(d)) for d in shard_dirs]
    first = manifests[0]
    for d, m in zip(shard_dirs, manifests, strict=True):
        if m["study"] != first["study"]:
            raise ConfigError(f"{d} holds a different study config than {shard_dirs[0]}")
        if m.get("blocks") != first.get("blocks"):
            raise ConfigError(
                f"{d} was planned with other batch sizes ({m.get('blocks')}) than "
                f"{shard_dirs[0]} ({first.get('blocks')}), e.g. on another backend; set "
                "[bayes] batch_size in the study and run the shards again"
            )
    shards = [tuple(m.get("shard", (1, 1))) for m in manifests]
    if len(set(shards)) != len(shards):
        raise ConfigError(f"the same shard appears twice among {list(map(str, shard_dirs))}")
    root = Path(out)

    def refuse_if_used() -> None:
        if (
            store.read_manifest(root) is not None
            or store.part_files(root)
            or store.error_files(root)
        ):
            raise ConfigError(f"{root} already holds results; merge into an empty folder")

    refuse_if_used()
    seen: dict[str, Path] = {}
    for sub in (store.PARTS, store.ERRORS):
        files = store.part_files if sub == store.PARTS else store.error_files
        for d in shard_dirs:
            for p in files(Path(d)):
                rel = f"{sub}/{p.relative_to(Path(d) / sub).as_posix()}"
                if rel in seen:
                    raise ConfigError(f"shards overlap: {rel} is in {seen[rel]} and {d}")
                seen[rel] = Path(d)
    store.prepare_folder(root)
    with store.lock_folder(root, "merge"):
        refuse_if_used()
        try:
            for rel, d in seen.items():
                target = root / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(d / rel, target)
        except OSError as exc:
            raise ConfigError(
                f"cannot write to {root}: {exc.strerror or exc}; remove it, free space and "
                "merge again"
            ) from None
        merged = dict(first)
        merged.pop("incomplete", None)
        merged["shard"] = [1, 1]
        merged["merged_from"] = [
            {"folder": str(d), "shard": list(s)} for d, s in zip(shard_dirs, shards, strict=True)
        ]
        n_total = shards[0][1]
        missing_shards = sorted(set(range(1, n_total + 1)) - {k for k, n in shards if n == n_total})
        check, _ = scan(root, merged)
        if missing_shards or any(n != n_total for _, n in shards) or not check.complete:
            merged["incomplete"] = True
        try:
            store.write_manifest(root, merged)
        except OSError as exc:
            raise ConfigError(f"cannot write to {root}: {exc.strerror or exc}") from None
    return MergeSummary(
        out=root,
        parts=sum(1 for rel in seen if rel.startswith(store.PARTS + "/")),
        errors=sum(1 for rel in seen if rel.startswith(store.ERRORS + "/")),
        shards=shards,
        missing_shards=missing_shards,
        completeness=check,
    )
