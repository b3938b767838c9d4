"""Run a command and record its peak resident memory and wall time to JSON.

    python bench/peak_rss.py OUT.json -- CMD [ARG...]

e.g. ``python bench/peak_rss.py bench/results/bench_rss.json -- make bench``.
The peak is ``ru_maxrss`` of ``getrusage(RUSAGE_CHILDREN)`` after the command
ends: the largest resident set of any single process of the command's tree
(each one counted once it has ended and been waited for), not the sum of
processes that ran at the same time. The command's exit status is passed on.
"""

from __future__ import annotations

import datetime
import json
import os
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path


def _machine() -> dict:
    """The machine as every record names it (without starting a JAX backend)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from mlmbias.provenance import environment

    return environment(with_jax=False)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: python bench/peak_rss.py OUT.json -- CMD [ARG...]", file=sys.stderr)
        return 2
    out, cmd = Path(argv[0]), argv[2:]
    started = _now()
    t0 = time.perf_counter()
    try:
        child = subprocess.Popen(cmd)
    except OSError as exc:
        print(f"peak_rss: cannot run {cmd[0]!r}: {exc}", file=sys.stderr)
        return 127
    try:
        status = child.wait()
    except KeyboardInterrupt:  # the command got the signal too: let it finish
        status = child.wait()
    wall = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    unit = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    record = {
        "command": shlex.join(cmd),
        "cwd": os.getcwd(),
        "exit_status": status,
        "wall_seconds": wall,
        "peak_rss_bytes": usage.ru_maxrss * unit,
        "user_seconds": usage.ru_utime,
        "system_seconds": usage.ru_stime,
        "started": started,
        "finished": _now(),
        "machine": _machine(),
        "measured_by": f"python bench/peak_rss.py {out} -- {shlex.join(cmd)}",
        "note": "ru_maxrss of RUSAGE_CHILDREN: the largest single process of the command's tree",
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(
        f"peak_rss: {record['command']}: exit {status}, {wall:.1f} s, "
        f"peak RSS {record['peak_rss_bytes'] / 2**20:.0f} MiB -> {out}",
        file=sys.stderr,
    )
    return status if status >= 0 else 128 - status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
