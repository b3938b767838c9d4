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


class Batch(NamedTuple):
    """What a method sees for a batch of replications."""

    keys: jax.Array  # (rep, 2) the method's own key per replication
    stats: GroupStats  # (rep, R, ...) per-region sufficient statistics


Key = tuple[str, str]  # (estimand, term)
FitFn = Callable[[Batch, float, Mapping[str, Any]], dict[Key, dict[str, Any]]]


@dataclass(frozen=True)
class MethodSpec:
    name: str
    kind: str  # "frequentist" or "bayes"
    target: str | FitFn  # the batch fit function, or "module:function" naming it
    estimands: tuple[str, ...]  # in output order; each has one key per term it estimates
    description: str
    family: str = ""  # one of FAMILIES; left empty, inferred by infer_family

    def __post_init__(self) -> None:
        if not self.family:
            object.__setattr__(self, "family", infer_family(self.name, self.kind, self.estimands))

    def load(self) -> FitFn:
        if callable(self.target):
            return self.target
        module, _, func = self.target.partition(":")
        return getattr(importlib.import_module(module), func)


KINDS = ("frequentist", "bayes")

# The families the report groups methods by (one colour each), in legend order.
FAMILIES = (
    "pooled/between",
    "fixed effects",
    "random effects",
    "Mundlak",
    "random slopes",
    "tests",
    "Bayesian",
    "other",
)
_PREFIXES = (  # name prefix -> family, for methods registered without one
    ("bayes-", "Bayesian"),
    ("hausman", "tests"),
    ("mundlak", "Mundlak"),
    ("rewb", "Mundlak"),
    ("re-", "random effects"),
    ("rs-", "random slopes"),
    ("fe-", "fixed effects"),
    ("pooled", "pooled/between"),
    ("between", "pooled/between"),
)


def infer_family(name: str, kind: str, estimands: Sequence[str]) -> str:
    """The family of a method registered without one: Bayesian for kind "bayes",
    tests for a method whose only estimand is "test", else by its name
    ("fe"/"fe-*", "re-*", "pooled*"/"between*", "mundlak*", "hausman*",
    "bayes-*"), else "other"."""
    if kind == "bayes":
        return "Bayesian"
    if tuple(estimands) == ("test",):
        return "tests"
    if name == "fe":
        return "fixed effects"
    return next((fam for prefix, fam in _PREFIXES if name.startswith(prefix)), "other")


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
    """Add a method given as a :class:`MethodSpec` (see :func:`register_method`)."""
    methods()[spec.name] = spec
    return spec


def register_method(
    name: str,
    fn: FitFn,
    *,
    estimands: Sequence[str],
    kind: str = "frequentist",
    description: str = "",
    family: str = "",
) -> MethodSpec:
    """Register ``fn`` as the method ``name``, for studies, ``fit`` and the CLI.

    ``fn(batch, level, options)`` gets a :class:`Batch` (``batch.stats`` the
    group statistics of every replication, ``batch.keys`` a key per replication)
    and returns ``{(estimand, term): {column: array}}`` as the module docstring
    describes. ``estimands`` lists the estimands it reports ("beta",
    "contextual", "test"). ``kind="bayes"`` runs it in the Bayesian blocks of a
    study (``[bayes] replications``, ``batch_size``, and the ``[bayes]`` table as
    ``options``). Registering a name again with another function is an error
    (unregister it first); with the same function it changes nothing, so a
    plugin may be imported twice. ``family`` groups it in the report's figures
    (one colour per family): one of :data:`FAMILIES`; left out, it is inferred
    by :func:`infer_family` ("other" when nothing fits).
    """
    if not isinstance(name, str) or not name or any(c.isspace() or c in ",/" for c in name):
        raise ConfigError(f"a method name must be one word without ',' or '/', got {name!r}")
    if not callable(fn):
        raise ConfigError(f"method '{name}': fn must be callable, got {fn!r}")
    if (
        isinstance(estimands, str)
        or not estimands
        or not all(isinstance(e, str) and e for e in estimands)
    ):
        raise ConfigError(f"method '{name}': estimands must be a list of names, got {estimands!r}")
    if kind not in KINDS:
        raise ConfigError(f"method '{name}': kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if family and family not in FAMILIES:
        raise ConfigError(
            f"method '{name}': family must be one of {', '.join(FAMILIES)}, got {family!r}"
        )
    old = methods().get(name)
    if old is not None and old.target is not fn:
        raise ConfigError(f"a method '{name}' is already registered; unregister it first")
    return register(MethodSpec(name, kind, fn, tuple(estimands), description, family))


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
