"""The estimation methods a study can name, and how to fit a batch with each.

A method is a pure batch function

    fit(batch: Batch, level: float, options: Mapping) -> dict[(estimand, term), dict[column, array]]

returning, per estimand ("beta", "contextual", or "test" for a test whose
``estimate`` is the statistic) and term, arrays with one entry per replication.
The terms are positional codes of the covariates in the group statistics:
"x0", "x1", ... for the within-varying ones, "z0", ... for the group-level ones,
"" for a test; the caller maps them to column names (the simulations have one
covariate, "x0", ad spend). ``MethodSpec.estimands`` lists the estimands in the
order the keys come; the terms depend on the data. Each key has at least
``estimate``, ``se``, ``lower``, ``upper``, ``p_value`` (NaN where not a test)
and ``flag`` (0 = ok; non-zero codes are the method's own, documented with it),
plus any diagnostics the method has. Implementations are imported on first use,
so the registry names every method without importing JAX models it doesn't need.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax

from mlmbias.errors import ConfigError
from mlmbias.groupstats import GroupStats
from mlmbias.simulate import Panel


class Batch(NamedTuple):
    """What a method sees for a batch of replications."""

    keys: jax.Array  # (rep, 2) the method's own key per replication
    stats: GroupStats  # (rep, R, ...) per-region sufficient statistics
    panel: Panel | None  # observation-level data, when available (simulations)


Key = tuple[str, str]  # (estimand, term)
FitFn = Callable[[Batch, float, Mapping[str, Any]], dict[Key, dict[str, Any]]]


@dataclass(frozen=True)
class MethodSpec:
    name: str
    kind: str  # "frequentist" or "bayes"
    target: str  # "module:function" of the batch fit function
    estimands: tuple[str, ...]  # in output order; each has one key per term it estimates
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


def term_names(x: Sequence[str], z: Sequence[str] = ()) -> dict[str, str]:
    """The column name of each positional term code ("" stays "": a test)."""
    return {
        "": "",
        **{f"x{j}": str(name) for j, name in enumerate(x)},
        **{f"z{j}": str(name) for j, name in enumerate(z)},
    }


def output_items(name: str, out: Mapping[Any, Any]) -> list[tuple[Key, Any]]:
    """A method's output as ((estimand, term), columns) pairs, checked."""
    items = []
    for key, cols in out.items():
        if not (isinstance(key, tuple) and len(key) == 2 and all(isinstance(k, str) for k in key)):
            raise TypeError(
                f"method '{name}' returned the key {key!r}; a method's output is keyed by "
                "(estimand, term) tuples, e.g. ('beta', 'x0')"
            )
        items.append((key, cols))
    return items


def method_names(kind: str | None = None) -> list[str]:
    return [n for n, s in methods().items() if kind is None or s.kind == kind]


def get_method(name: str) -> MethodSpec:
    try:
        return methods()[name]
    except KeyError:
        known = ", ".join(methods()) or "(none registered)"
        raise ConfigError(f"unknown method '{name}'; allowed: {known}") from None
