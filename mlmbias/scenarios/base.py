"""The scenario interface: a named, frozen, validated set of parameters that simulates panels.

A scenario is a frozen dataclass subclassing :class:`Scenario`. Its fields are
its knobs: a study sets them in ``[dgp]`` and varies them in ``[grid]``. Each
field is one of three kinds, read from :func:`knob` or, for a plain field,
from its default:

* a float (traced: one compiled simulator serves every value),
* an integer (static: it may set a shape, e.g. ``n_regions``),
* a choice among strings (static, e.g. a group-size distribution).

Every scenario has the integer field ``n_regions`` (the number of groups). A
subclass provides

* ``simulate(self, key, max_obs) -> Panel``: ONE replication, pure JAX, run
  under ``jit`` and ``vmap`` with the float fields as tracers (branch on them
  with ``jnp.where``, never ``if``); the panel is padded to ``max_obs``;
* ``obs_bound(self) -> int``: a padding bound the observation count exceeds
  with negligible probability (a draw above it is raised, never truncated);
* ``truths(self) -> {(estimand, term): value}`` with ``term`` a covariate's
  name, for every estimate with a known true value;
* ``equations(self) -> str``: a short text of the model with its values, used
  by the report;
* ``x_names``, ``z_names`` and ``y_name``: the names of the within-varying
  covariates, the group-level ones and the outcome,

and may override ``check()`` for constraints across fields and
``min_obs()``. See ``mlmbias/scenarios/contextual.py`` for a complete example
and docs/design.md for how a scenario flows through a study.
"""

from __future__ import annotations

import abc
import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import jax
import jax.numpy as jnp

from mlmbias.checks import is_number
from mlmbias.errors import ConfigError


@dataclass(frozen=True)
class Knob:
    """How a field is validated: its kind and bounds."""

    kind: str  # "float", "int" or "choice"
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # low itself is not allowed
    high_open: bool = False
    choices: tuple[str, ...] = ()
    doc: str = ""
    # a knob added after conditions were stored: the condition id hashes it only
    # when it differs from its default, so the older conditions keep their ids
    id_if_changed: bool = False


def knob(
    default: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    integer: bool = False,
    choices: tuple[str, ...] = (),
    doc: str = "",
    id_if_changed: bool = False,
) -> Any:
    """A scenario field with bounds (``low``/``high``, open or closed), an integer
    kind, or a set of string ``choices``. ``id_if_changed``: the condition id
    hashes the field only when it differs from its default (for a knob added to a
    scenario whose conditions are already stored: their ids stay as they were)."""
    if choices:
        kind = "choice"
    elif integer or (isinstance(default, int) and not isinstance(default, bool)):
        kind = "int"
    else:
        kind = "float"
    spec = Knob(kind, low, high, low_open, high_open, tuple(choices), doc, id_if_changed)
    return dataclasses.field(default=default, metadata={"knob": spec})


def _knob_of(f: dataclasses.Field) -> Knob:
    spec = f.metadata.get("knob")
    if spec is not None:
        return spec
    if isinstance(f.default, bool):
        raise TypeError(f"scenario field '{f.name}': booleans are not knobs; use a choice")
    if isinstance(f.default, int):
        return Knob("int")
    if isinstance(f.default, float):
        return Knob("float")
    if isinstance(f.default, str):
        return Knob("choice")
    raise TypeError(f"scenario field '{f.name}' needs a default int, float or str, or knob()")


@dataclass(frozen=True)
class Scenario(abc.ABC):
    """Base class of scenarios; see the module docstring. A subclass that lacks
    ``simulate`` or ``obs_bound`` cannot be instantiated (nor registered)."""

    name: ClassVar[str] = ""
    x_names: ClassVar[tuple[str, ...]] = ()
    z_names: ClassVar[tuple[str, ...]] = ()
    y_name: ClassVar[str] = "y"

    def __post_init__(self) -> None:
        fields = {f.name: f for f in dataclasses.fields(self)}
        if "n_regions" not in fields:
            raise TypeError(f"scenario '{self.name}' must have an integer field 'n_regions'")
        for f in fields.values():
            object.__setattr__(self, f.name, self._validated(f, getattr(self, f.name)))
        if self.n_regions < 2:
            self.fail(f"field 'n_regions' must be >= 2, got {self.n_regions}")
        self.check()

    def fail(self, message: str) -> None:
        """Raise a ConfigError that names the scenario."""
        raise ConfigError(f"scenario '{self.name}': {message}")

    def _validated(self, f: dataclasses.Field, value: Any) -> Any:
        spec = _knob_of(f)
        if spec.kind == "choice":
            if not isinstance(value, str):
                self.fail(f"field '{f.name}' must be a string, got {value!r}")
            if spec.choices and value not in spec.choices:
                self.fail(
                    f"field '{f.name}' must be one of {', '.join(spec.choices)}, got {value!r}"
                )
            return value
        if not is_number(value):
            self.fail(f"field '{f.name}' must be a number, got {value!r}")
        if not math.isfinite(value):
            self.fail(f"field '{f.name}' must be finite, got {value!r}")
        if spec.kind == "int":
            if float(value) != int(value):
                self.fail(f"field '{f.name}' must be an integer, got {value!r}")
            value = int(value)
        else:
            # + 0.0 turns -0.0 into 0.0: equal values are one condition (one id)
            value = float(value) + 0.0
        if spec.low is not None and (value <= spec.low if spec.low_open else value < spec.low):
            self.fail(f"field '{f.name}' must be {'>' if spec.low_open else '>='} {spec.low:g}, "
                      f"got {value!r}")  # fmt: skip
        if spec.high is not None and (value >= spec.high if spec.high_open else value > spec.high):
            self.fail(f"field '{f.name}' must be {'<' if spec.high_open else '<='} {spec.high:g}, "
                      f"got {value!r}")  # fmt: skip
        return value

    # ------------------------------------------------------------------ to override

    def check(self) -> None:  # noqa: B027 (optional hook: most scenarios need none)
        """Constraints across fields; call ``self.fail(message)`` when one is broken."""

    @abc.abstractmethod
    def simulate(self, key: jax.Array, max_obs: int):  # -> Panel
        """One replication, padded to ``max_obs`` (see the module docstring)."""

    @abc.abstractmethod
    def obs_bound(self) -> int:
        """A padding bound a draw exceeds with negligible probability."""

    def min_obs(self) -> int:
        """The fewest observations a replication can have (``max_obs`` must reach it)."""
        return self.n_regions

    def truths(self) -> dict[tuple[str, str], float]:
        return {}

    def equations(self) -> str:
        return ""

    # ------------------------------------------------------------------ shared

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def knobs(cls) -> dict[str, Knob]:
        return {f.name: _knob_of(f) for f in dataclasses.fields(cls)}

    def replace(self, **changes: Any) -> Scenario:
        """A copy with some fields changed; unknown names are a ConfigError."""
        unknown = sorted(set(changes) - set(self.field_names()))
        if unknown:
            self.fail(f"unknown field '{unknown[0]}'; allowed: {', '.join(self.field_names())}")
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.field_names()}

    def id_fields(self) -> dict[str, Any]:
        """Every field but those marked ``id_if_changed`` that hold their default."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if _knob_of(f).id_if_changed and value == f.default:
                continue
            out[f.name] = value
        return out

    def identity(self) -> dict[str, Any]:
        """What the condition id hashes: the scenario's name and every field (but
        an ``id_if_changed`` knob at its default)."""
        return {"scenario": self.name, **self.id_fields()}

    def split_fields(self) -> tuple[tuple[tuple[str, Any], ...], dict[str, float]]:
        """(static fields as sorted pairs, traced float fields): the simulator's arguments."""
        static, traced = [], {}
        for name, spec in self.knobs().items():
            if spec.kind == "float":
                traced[name] = getattr(self, name)
            else:
                static.append((name, getattr(self, name)))
        return tuple(static), traced


def rebuild(cls: type[Scenario], values: dict[str, Any]) -> Scenario:
    """An instance of ``cls`` holding ``values`` (tracers allowed), without validation."""
    obj = object.__new__(cls)
    for name, value in values.items():
        object.__setattr__(obj, name, value)
    return obj


def observation_normals(key: jax.Array, max_obs: int) -> jax.Array:
    """``max_obs`` standard normals, observation j's from ``fold_in(key, j)``: a
    replication's data then do not depend on the padding bound."""
    j = jnp.arange(max_obs)
    return jax.vmap(lambda i: jax.random.normal(jax.random.fold_in(key, i)))(j)


def contiguous_layout(sizes: jax.Array, max_obs: int) -> tuple[jax.Array, ...]:
    """Groups of ``sizes`` laid out in order in a padded panel of ``max_obs`` slots.

    Returns (region, position within the region, mask, n_obs); padding slots
    hold the last region and position 0.
    """
    n_regions = sizes.shape[0]
    ends = jnp.cumsum(sizes)
    starts = ends - sizes
    j = jnp.arange(max_obs)
    region = jnp.minimum(jnp.searchsorted(ends, j, side="right"), n_regions - 1)
    mask = j < ends[-1]
    position = jnp.where(mask, j - starts[region], 0)
    return region.astype(jnp.int32), position.astype(jnp.int32), mask, ends[-1].astype(jnp.int32)
