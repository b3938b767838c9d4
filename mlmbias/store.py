"""The results store: Parquet parts written atomically, plus a manifest.

Layout of a study folder::

    DIR/manifest.json                       resolved config, study hash, versions, backend, shard
    DIR/.lock                               held (flock) by the run or merge writing DIR
    DIR/parts/<condition_id>/<method>/<start>-<stop>.parquet
    DIR/errors/<condition_id>/<method>/<start>-<stop>.json   a failed batch

A part holds one (condition, method, block of replications). It is written to a
temporary name that carries the writer's pid and renamed, so a crash leaves
either the whole part or none. Every part carries the study's identity in its
Parquet schema metadata (key ``mlmbias``: the study hash, the results format
and the unit's name); a part that cannot be read in full, holds the wrong number
of rows or belongs to another study is not used.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mlmbias.checks import is_integer
from mlmbias.errors import ConfigError

MANIFEST = "manifest.json"
PARTS = "parts"
ERRORS = "errors"
LOCK = ".lock"

# Version of the stored layout. 2: parts carry the study identity in their schema
# metadata and the manifest has ``study_hash`` and ``results_format``. 3: rows
# have a ``term`` column (the covariate an estimand belongs to, "" for a test).
# 4: rows have ``scenario`` and ``truth`` (the scenario's true value, NaN if none).
RESULTS_FORMAT = 4
_IDENTITY_KEY = b"mlmbias"


class StorageError(ConfigError):
    """Writing to the study folder failed (disk full, read-only, no permission)."""


@dataclass(frozen=True)
class Unit:
    """One block of work: a condition, a method and replications [start, stop)."""

    condition_index: int
    condition_id: int
    method: str
    start: int
    stop: int

    @property
    def name(self) -> str:
        return f"{self.condition_id}/{self.method}/{self.start:07d}-{self.stop:07d}"


def study_hash(study: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of a resolved study config and the results format."""
    canonical = json.dumps(
        {"results_format": RESULTS_FORMAT, "study": study}, sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def part_path(root: Path, unit: Unit) -> Path:
    return root / PARTS / f"{unit.name}.parquet"


def error_path(root: Path, unit: Unit) -> Path:
    return root / ERRORS / f"{unit.name}.json"


def _atomic_write_bytes(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_part(root: Path, unit: Unit, frame: pd.DataFrame, study_hash: str) -> Path:
    """Write a unit's rows, stamped with the study's identity."""
    import pyarrow as pa  # imported on first use: `import mlmbias` need not load Arrow
    import pyarrow.parquet as pq

    path = part_path(root, unit)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    identity = {"study_hash": study_hash, "results_format": RESULTS_FORMAT, "unit": unit.name}
    metadata = {**(table.schema.metadata or {}), _IDENTITY_KEY: json.dumps(identity).encode()}
    table = table.replace_schema_metadata(metadata)
    _atomic_write_bytes(path, lambda fh: pq.write_table(table, fh))
    return path


def _identity(metadata: Mapping[bytes, bytes] | None) -> dict[str, Any] | None:
    raw = (metadata or {}).get(_IDENTITY_KEY)
    if raw is None:
        return None
    try:
        identity = json.loads(raw)
    except ValueError:
        return None
    return identity if isinstance(identity, dict) else None


def part_identity(path: Path) -> dict[str, Any] | None:
    """A part's identity from its footer alone, or None when it has none or is unreadable."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return _identity(pq.read_schema(path).metadata)
    except (OSError, pa.ArrowException, ValueError):
        return None


def check_part(
    path: Path,
    study_hash: str,
    reps: int | None = None,
    unit: str | None = None,
    rows: bool = True,
    min_items: int = 1,
) -> tuple[str, pd.DataFrame | None]:
    """``(status, rows)``: status is "ok" (rows given when ``rows``), "missing",
    "unreadable" (cannot be read in full, or a row count that is not ``reps`` rows
    for each of at least ``min_items`` (estimand, term) pairs) or "foreign" (no
    identity, another study's, or another unit's)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not path.exists():
        return "missing", None
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException, ValueError):
        return "unreadable", None
    identity = _identity(table.schema.metadata)
    if (
        identity is None
        or identity.get("study_hash") != study_hash
        or (unit is not None and identity.get("unit") != unit)
    ):
        return "foreign", None
    if reps is not None and (table.num_rows % max(reps, 1) or table.num_rows < reps * min_items):
        return "unreadable", None
    if not rows:
        return "ok", None
    try:
        return "ok", table.to_pandas()
    except (pa.ArrowException, ValueError):
        return "unreadable", None


def read_part(
    path: Path, study_hash: str, reps: int | None = None, unit: str | None = None
) -> pd.DataFrame | None:
    """The part's rows, or None when it is missing, unreadable, incomplete or not
    this study's (see :func:`check_part`)."""
    return check_part(path, study_hash, reps, unit)[1]


def write_error(root: Path, unit: Unit, record: dict[str, Any]) -> None:
    data = json.dumps(record, indent=2).encode()
    _atomic_write_bytes(error_path(root, unit), lambda fh: fh.write(data))


def clear_error(root: Path, unit: Unit) -> None:
    error_path(root, unit).unlink(missing_ok=True)


def error_files(root: Path) -> list[Path]:
    return sorted((Path(root) / ERRORS).rglob("*.json"))


def read_errors(root: Path) -> list[dict[str, Any]]:
    out = []
    for path in error_files(root):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(record, dict):
            out.append(record)
    return out


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    except OSError:
        return False
    return True


def _writer_pid(tmp: Path) -> int | None:
    """The pid in ``.<name>.<pid>.<hex>.tmp``, or None for another naming."""
    parts = tmp.name.rsplit(".", 3)
    if len(parts) != 4 or not parts[1].isdigit():
        return None
    return int(parts[1])


def remove_temporaries(root: Path) -> None:
    """Temporary files left by a writer that is gone (killed mid-write).

    A temporary whose writer is still alive is left alone; one without a pid in
    its name (an older mlmbias) is removed.
    """
    for path in temporaries(root):
        pid = _writer_pid(path)
        if pid is None or not _pid_alive(pid):
            path.unlink(missing_ok=True)


def temporaries(root: Path) -> list[Path]:
    root = Path(root)
    return sorted(
        [*root.glob(".*.tmp"), *(root / PARTS).rglob(".*.tmp"), *(root / ERRORS).rglob(".*.tmp")]
    )


@contextmanager
def lock_folder(root: Path, what: str = "run") -> Iterator[None]:
    """Hold an exclusive lock on ``root`` (flock on ``root/.lock``) for the block.

    A second holder is refused with a ConfigError naming the first one's pid. The
    kernel releases the lock when its process dies, so a killed run blocks nothing.
    """
    import fcntl

    root = Path(root)
    path = root / LOCK
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise ConfigError(f"cannot write to folder {root}: {exc.strerror or exc}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = os.pread(fd, 64, 0).decode(errors="replace").split()
            except OSError:
                holder = []
            pid = holder[0] if holder else "unknown"
            raise ConfigError(
                f"{root} is in use by another mlmbias run or merge (pid {pid}); wait for it "
                "to finish or use another folder"
            ) from None
        except OSError as exc:  # a file system without locks
            print(
                f"mlmbias {what}: note: cannot lock {path} ({exc.strerror or exc}); make "
                "sure no other run writes to this folder",
                file=sys.stderr,
            )
        else:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {what}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    data = json.dumps(manifest, indent=2, sort_keys=True).encode()
    _atomic_write_bytes(root / MANIFEST, lambda fh: fh.write(data))


def _check_manifest(path: Path, manifest: Any) -> dict[str, Any]:
    """The manifest if its shape is right, else a one-line ConfigError."""

    def bad(what: str) -> ConfigError:
        return ConfigError(f"corrupt manifest {path}: {what}")

    if not isinstance(manifest, dict):
        raise bad(f"expected a JSON object, got {type(manifest).__name__}")
    if not isinstance(manifest.get("study"), dict):
        raise bad("'study' is missing or not an object")
    shard = manifest.get("shard", [1, 1])
    if (
        not isinstance(shard, list)
        or len(shard) != 2
        or not all(is_integer(v) for v in shard)
        or not 1 <= shard[0] <= shard[1]
    ):
        raise bad(f"'shard' must be [K, N] with 1 <= K <= N, got {shard!r}")
    for key, kind in (
        ("study_hash", str),
        ("blocks", dict),
        ("incomplete", bool),
        ("results_format", int),
        ("mlmbias", str),
    ):
        if key in manifest and not isinstance(manifest[key], kind):
            raise bad(f"'{key}' has the wrong type ({type(manifest[key]).__name__})")
    for key, value in manifest.get("blocks", {}).items():
        if not is_integer(value) or value < 1:
            raise bad(f"'blocks.{key}' must be an integer >= 1, got {value!r}")
    return manifest


def read_manifest(root: Path) -> dict[str, Any] | None:
    path = Path(root) / MANIFEST
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text())
    except ValueError as exc:
        raise ConfigError(f"corrupt manifest {path}: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    return _check_manifest(path, manifest)


def format_problem(root: Path, manifest: Mapping[str, Any]) -> str | None:
    """None when ``manifest`` is in this results format, else one line saying which
    format and mlmbias version wrote the folder and which this one reads."""
    from mlmbias import __version__

    fmt = manifest.get("results_format", 1)
    if fmt == RESULTS_FORMAT:
        return None
    writer = manifest.get("mlmbias")
    by = f"mlmbias {writer}" if isinstance(writer, str) else "an older mlmbias"
    return (
        f"{root} holds results in format {fmt} written by {by}; this mlmbias "
        f"{__version__} reads and writes format {RESULTS_FORMAT}"
    )


def check_format(root: Path, manifest: Mapping[str, Any]) -> str:
    """The study hash of a manifest written in this results format, else a ConfigError."""
    problem = format_problem(root, manifest)
    if problem is not None:
        raise ConfigError(
            f"{problem}; rows of different formats are never mixed: report it with the "
            "mlmbias that wrote it, or run the study again into another folder"
        )
    if "study_hash" not in manifest:
        raise ConfigError(f"corrupt manifest {Path(root) / MANIFEST}: 'study_hash' is missing")
    expected = study_hash(manifest["study"])
    if manifest["study_hash"] != expected:
        raise ConfigError(
            f"corrupt manifest {Path(root) / MANIFEST}: its study_hash does not match its "
            "study (was it edited by hand?)"
        )
    return expected


def study_manifest(root: Path) -> dict[str, Any]:
    """The manifest of a study folder written in this results format, else a
    one-line ConfigError (no study, a corrupt manifest, another format)."""
    manifest = read_manifest(root)
    if manifest is None:
        raise ConfigError(f"{root} holds no study (no {MANIFEST})")
    check_format(root, manifest)
    return manifest


def prepare_folder(root: Path) -> None:
    """Create the study folder, or fail with a one-line reason."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".write-test-{uuid.uuid4().hex}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"cannot write to folder {root}: {exc.strerror or exc}") from None


def part_files(root: Path) -> list[Path]:
    return sorted((Path(root) / PARTS).rglob("*.parquet"))


def part_name(root: Path, path: Path) -> str:
    """The unit name a part's path stands for."""
    return path.relative_to(Path(root) / PARTS).as_posix().removesuffix(".parquet")


def load_results(root: str | Path) -> pd.DataFrame:
    """Every stored row of a study folder as one tidy DataFrame.

    Sorted by condition, method, replication, estimand and term, so two runs of the
    same study compare equal however they were batched, resumed or sharded.
    Only parts of the study's plan that carry its identity are read. Batches
    that are missing, failed or unreadable are named on stderr; the rows that
    are there are returned, with the check in ``frame.attrs["completeness"]``
    (:meth:`mlmbias.runner.Completeness.as_dict`: ``complete``, ``planned``,
    ``present`` and the names ``missing``, ``failed``, ``unreadable``, ``foreign``).
    """
    from mlmbias.runner import scan

    root = Path(root)
    check, frames = scan(root, study_manifest(root), keep_rows=True)
    if not check.complete or check.extra:
        lines = check.lines()
        print(f"mlmbias: {lines[0]}", file=sys.stderr)
        for line in lines[1:]:
            print(line, file=sys.stderr)
    if not frames:
        frame = pd.DataFrame()
    else:
        frame = pd.concat(frames, ignore_index=True)
        keys = ["condition_index", "method", "rep", "estimand", "term"]
        frame = frame.sort_values(keys, kind="stable").reset_index(drop=True)
    frame.attrs["completeness"] = check.as_dict()  # plain JSON: to_parquet keeps working
    return frame
