"""Type and range checks of user-given values (study files, ``[bayes]``, priors,
scenario knobs, manifests), each a one-line :class:`ConfigError` naming the key.

A TOML or JSON ``true`` is a Python ``bool``, which is also an ``int``: every
check here refuses it where a number is expected.
"""

from __future__ import annotations

import math
from typing import Any

from mlmbias.errors import ConfigError


def is_integer(value: Any) -> bool:
    """An ``int`` that is not a ``bool``."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """An ``int`` or ``float`` that is not a ``bool`` (it may be NaN or infinite)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_bool(key: str, value: Any) -> bool:
    """``value`` if it is true or false (not 0 or 1), else a ConfigError."""
    if not isinstance(value, bool):
        raise ConfigError(f"'{key}' must be true or false, got {value!r}")
    return value


def check_integer(key: str, value: Any, low: int, high: int | None = None) -> int:
    """``value`` if it is an integer in [low, high], else a ConfigError."""
    if not is_integer(value) or value < low:
        raise ConfigError(f"'{key}' must be an integer >= {low}, got {value!r}")
    if high is not None and value > high:
        raise ConfigError(f"'{key}' must be an integer <= {high}, got {value!r}")
    return int(value)


def check_number(key: str, value: Any, low: float, high: float, open_low: bool = False) -> float:
    """``value`` as a float if it is a finite number in [low, high] (or (low, high])."""
    if not is_number(value) or not math.isfinite(value):
        raise ConfigError(f"'{key}' must be a finite number, got {value!r}")
    if value < low or value > high or (open_low and value == low):
        bracket = "(" if open_low else "["
        raise ConfigError(f"'{key}' must lie in {bracket}{low}, {high}], got {value!r}")
    return float(value)


def check_level(value: Any, key: str = "level") -> float:
    """An interval level or test size: a number in the open interval (0, 1)."""
    if not is_number(value) or not math.isfinite(value) or not 0 < value < 1:
        raise ConfigError(f"'{key}' must lie in the open interval (0, 1), got {value!r}")
    return float(value)
