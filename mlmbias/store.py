"""The results store: Parquet parts written atomically, plus a manifest.

Layout of a study folder::

    DIR/manifest.json                       resolved config, versions, backend, shard
    DIR/parts/<condition_id>/<method>/<start>-<stop>.parquet
    DIR/errors/<condition_id>/<method>/<start>-<stop>.json   a failed batch

A part holds one (condition, method, block of replications). It is written to a
temporary name and renamed, so a crash leaves either the whole part or none; a
part that cannot be read in full, or holds the wrong number of rows, is treated
as missing and redone.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mlmbias.errors import ConfigError

MANIFEST = "manifest.json"
PARTS = "parts"
ERRORS = "errors"


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


def part_path(root: Path, unit: Unit) -> Path:
    return root / PARTS / f"{unit.name}.parquet"


def error_path(root: Path, unit: Unit) -> Path:
    return root / ERRORS / f"{unit.name}.json"


def _atomic_write_bytes(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_part(root: Path, unit: Unit, frame: pd.DataFrame) -> Path:
    import pyarrow as pa  # imported on first use: `import mlmbias` need not load Arrow
    import pyarrow.parquet as pq

    path = part_path(root, unit)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    _atomic_write_bytes(path, lambda fh: pq.write_table(table, fh))
    return path


def read_part(path: Path, expected_rows: int | None = None) -> pd.DataFrame | None:
    """The part's rows, or None when it is missing, unreadable or incomplete."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        frame = pq.read_table(path).to_pandas()
    except (OSError, pa.ArrowException, ValueError):
        return None
    if expected_rows is not None and len(frame) != expected_rows:
        return None
    return frame


def write_error(root: Path, unit: Unit, record: dict[str, Any]) -> None:
    data = json.dumps(record, indent=2).encode()
    _atomic_write_bytes(error_path(root, unit), lambda fh: fh.write(data))


def clear_error(root: Path, unit: Unit) -> None:
    error_path(root, unit).unlink(missing_ok=True)


def read_errors(root: Path) -> list[dict[str, Any]]:
    out = []
    for path in sorted((root / ERRORS).rglob("*.json")):
        try:
            out.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return out


def remove_temporaries(root: Path) -> None:
    """Temporary files left by a run that was killed mid-write."""
    for path in (root / PARTS).rglob(".*.tmp"):
        path.unlink(missing_ok=True)


def write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    data = json.dumps(manifest, indent=2, sort_keys=True).encode()
    _atomic_write_bytes(root / MANIFEST, lambda fh: fh.write(data))


def read_manifest(root: Path) -> dict[str, Any] | None:
    path = Path(root) / MANIFEST
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise ConfigError(f"corrupt manifest {path}: {exc}") from None


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


def load_results(root: str | Path) -> pd.DataFrame:
    """Every stored row of a study folder as one tidy DataFrame.

    Sorted by condition, method, replication and estimand, so two runs of the
    same study compare equal however they were batched, resumed or sharded.
    """
    root = Path(root)
    if read_manifest(root) is None:
        raise ConfigError(f"{root} holds no study (no {MANIFEST})")
    frames = [f for f in (read_part(p) for p in part_files(root)) if f is not None]
    if not frames:
        return pd.DataFrame()
    frame = pd.concat(frames, ignore_index=True)
    keys = ["condition_index", "method", "rep", "estimand"]
    return frame.sort_values(keys, kind="stable").reset_index(drop=True)
