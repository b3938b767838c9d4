"""JAX's persistent compilation cache for the command line.

Almost all of the time of a first ``mlmbias fit`` on a small panel is XLA
compiling the estimators (about 14 s for linearmodels' wage_panel); the compiled
programs depend only on shapes, so later calls with the same shapes can load
them from disk. The cache lives in a per-user folder:

- ``$MLMBIAS_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/mlmbias/jax``, else
  ``~/.cache/mlmbias/jax``;
- ``MLMBIAS_NO_CACHE=1`` turns it off;
- a ``JAX_COMPILATION_CACHE_DIR`` set by the user is left as it is.

A folder that cannot be created only turns the cache off: caching never stops
a command.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import jax

# Every program is cached: the estimators' many small programs add up (measured on
# wage_panel: 9.2 s for a cached call with a 0.2 s threshold, 7.2 s with none).
MIN_COMPILE_SECONDS = 0.0


def cache_dir(environ: Mapping[str, str] | None = None) -> Path | None:
    """The folder the cache would use, or None when it is turned off."""
    environ = os.environ if environ is None else environ
    if environ.get("MLMBIAS_NO_CACHE", "0") not in ("", "0"):
        return None
    if environ.get("MLMBIAS_CACHE_DIR"):
        return Path(environ["MLMBIAS_CACHE_DIR"]).expanduser()
    base = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mlmbias" / "jax"


def enable_compilation_cache(environ: Mapping[str, str] | None = None) -> Path | None:
    """Point JAX's persistent compilation cache at :func:`cache_dir`; returns the
    folder in use (None: off)."""
    environ = os.environ if environ is None else environ
    if environ.get("JAX_COMPILATION_CACHE_DIR"):
        return Path(environ["JAX_COMPILATION_CACHE_DIR"])
    path = cache_dir(environ)
    if path is None:
        return None
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    return path
