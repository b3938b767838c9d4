"""The estimation methods a study can name, and how to fit a batch with each.

A method is a pure batch function

    fit(batch: Batch, level: float, options: Mapping) -> dict[estimand, dict[column, array]]

returning, per estimand ("beta", "contextual", or "test" for a test whose
``estimate`` is the statistic), arrays with one entry per replication: at least
``estimate``, ``se``, ``lower``, ``upper``, ``p_value`` (NaN where not a test)
and ``flag`` (0 = ok; non-zero codes are the method's own, documented with it),
plus any diagnostics the method has. Implementations are imported on first use,
so the registry names every method without importing JAX models it doesn't need.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax

from mlmbias.errors import ConfigError
from mlmbias.groupstats import GroupStats
from mlmbias.simulate import Panel


class Batch(NamedTuple):
    """What a method sees for a batch of replications."""

    keys: jax.Array  # (rep, 2) the method's own key per replication
    stats: GroupStats  # (rep, R) per-region sufficient statistics
    panel: Panel | None  # observation-level data, when available (simulations)


FitFn = Callable[[Batch, float, Mapping[str, Any]], dict[str, dict[str, Any]]]


@dataclass(frozen=True)
class MethodSpec:
    name: str
    kind: str  # "frequentist" or "bayes"
    target: str  # "module:function" of the batch fit function
    estimands: tuple[str, ...]
    description: str

    def load(self) -> FitFn:
        module, _, func = self.target.partition(":")
        return getattr(importlib.import_module(module), func)


# Packages whose ``METHOD_SPECS`` list the methods they implement.
_CATALOG = ("mlmbias.frequentist", "mlmbias.bayes")
_METHODS: dict[str, MethodSpec] = {}
_LOADED: list[bool] = []


def methods() -> dict[str, MethodSpec]:
    """Every registered method by name, in catalogue order."""
    if not _LOADED:
        for package in _CATALOG:
            for spec in importlib.import_module(package).METHOD_SPECS:
                _METHODS.setdefault(spec.name, spec)
        _LOADED.append(True)
    return _METHODS


def register(spec: MethodSpec) -> MethodSpec:
    """Add a method of one's own (its target must be importable by name)."""
    methods()[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    methods().pop(name, None)


def method_names(kind: str | None = None) -> list[str]:
    return [n for n, s in methods().items() if kind is None or s.kind == kind]


def get_method(name: str) -> MethodSpec:
    try:
        return methods()[name]
    except KeyError:
        known = ", ".join(methods()) or "(none registered)"
        raise ConfigError(f"unknown method '{name}'; allowed: {known}") from None
