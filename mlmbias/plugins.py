"""User modules that register methods before a study names them.

A study's ``plugins`` list holds module names (importable from ``sys.path`` or
the working folder) or paths to ``.py`` files; ``load_study`` makes a relative
path absolute against the study file's folder, so the manifest records where
the file is and ``mlmbias report`` can import it again. Importing a plugin runs
its ``mlmbias.register_method(...)`` calls. A file is imported once per process.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Iterable
from pathlib import Path

from mlmbias.errors import ConfigError

_FILES: dict[str, object] = {}


def resolve(entries: Iterable[str], base: Path) -> tuple[str, ...]:
    """``entries`` with relative ``.py`` paths made absolute against ``base``."""
    out = []
    for entry in entries:
        if isinstance(entry, str) and entry.endswith(".py") and not Path(entry).is_absolute():
            entry = str((base / entry).resolve())
        out.append(entry)
    return tuple(out)


def import_plugins(entries: Iterable[str]) -> None:
    """Import every plugin; a missing or failing one is a one-line ConfigError."""
    for entry in entries:
        if not isinstance(entry, str) or not entry.strip():
            raise ConfigError(f"'plugins' must list module names or .py files, got {entry!r}")
        try:
            if entry.endswith(".py"):
                _import_file(Path(entry))
            else:
                if os.getcwd() not in sys.path:
                    sys.path.append(os.getcwd())
                importlib.import_module(entry)
        except ConfigError:
            raise
        except FileNotFoundError:
            raise ConfigError(f"plugin file {entry} not found") from None
        except Exception as exc:  # the plugin's own error, reported in one line
            raise ConfigError(
                f"cannot import plugin {entry!r}: {type(exc).__name__}: {exc}"
            ) from None


def _import_file(path: Path) -> None:
    key = str(path.resolve())
    if key in _FILES:
        return
    if not path.is_file():
        raise FileNotFoundError(key)
    name = f"mlmbias_plugin_{path.stem}_{len(_FILES)}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    _FILES[key] = module
