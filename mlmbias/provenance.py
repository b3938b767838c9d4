"""Where results were computed: package versions, backend and machine.

One dictionary for the study manifest and every benchmark record, so that they
name the same things the same way.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any


def _proc_field(path: str, key: str) -> str | None:
    """The value of ``key:`` in a /proc file, or None (not Linux, not found)."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def environment(*, with_jax: bool = True) -> dict[str, Any]:
    """Versions, machine and (``with_jax``) JAX's backend and devices.

    ``with_jax=False`` starts no JAX backend (on a GPU that would take its memory):
    for a process that only measures others (``bench/peak_rss.py``).
    """
    from mlmbias import __version__

    memory = _proc_field("/proc/meminfo", "MemTotal:")
    out: dict[str, Any] = {
        "mlmbias": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": _proc_field("/proc/cpuinfo", "model name")
        or platform.processor()
        or platform.machine(),
        "cpu_count": os.cpu_count(),
        "memory_bytes": int(memory.split()[0]) * 1024 if memory else None,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }
    if with_jax:
        import jax
        import numpyro

        devices = jax.devices()
        out |= {
            "jax": jax.__version__,
            "numpyro": numpyro.__version__,
            "backend": jax.default_backend(),
            "devices": [str(d) for d in devices],
            "device": str(devices[0]),
            "x64": bool(jax.config.jax_enable_x64),
        }
    return out
