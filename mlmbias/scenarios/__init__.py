"""Scenarios: the data-generating processes a study can simulate, by name.

``seed`` (the blog post's regions, the default), ``contextual`` (Bell &
Jones 2015) and ``slopes`` (random slopes) are built in;
:func:`register_scenario` adds a user's own (see :mod:`mlmbias.scenarios.base`
for the interface).
"""

from __future__ import annotations

import dataclasses

from mlmbias.errors import ConfigError
from mlmbias.scenarios.base import Knob as Knob
from mlmbias.scenarios.base import Scenario as Scenario
from mlmbias.scenarios.base import contiguous_layout as contiguous_layout
from mlmbias.scenarios.base import knob as knob
from mlmbias.scenarios.base import observation_normals as observation_normals
from mlmbias.scenarios.contextual import Contextual as Contextual
from mlmbias.scenarios.seed import Seed as Seed
from mlmbias.scenarios.slopes import Slopes as Slopes

DEFAULT = "seed"
_SCENARIOS: dict[str, type[Scenario]] = {"seed": Seed, "contextual": Contextual, "slopes": Slopes}
_BUILTIN = tuple(_SCENARIOS)


def register_scenario(name: str, cls: type[Scenario]) -> type[Scenario]:
    """Register the scenario class ``cls`` as ``name`` for studies (``[dgp] scenario``).

    ``cls`` is a frozen dataclass subclassing :class:`Scenario` whose ``name``
    is ``name``; every field needs a default (``cls()`` is the default
    condition). Registering a name again with another class is an error; with
    the same class it changes nothing, so a plugin may be imported twice.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ConfigError(f"a scenario name must be an identifier, got {name!r}")
    if not (isinstance(cls, type) and issubclass(cls, Scenario)):
        raise ConfigError(f"scenario '{name}': {cls!r} is not a subclass of mlmbias.Scenario")
    if not dataclasses.is_dataclass(cls) or not cls.__dataclass_params__.frozen:
        raise ConfigError(f"scenario '{name}': {cls.__name__} must be a frozen dataclass")
    if cls.name != name:
        raise ConfigError(
            f"scenario '{name}': {cls.__name__}.name is {cls.name!r}; set name = {name!r}"
        )
    old = _SCENARIOS.get(name)
    if old is not None and old is not cls:
        raise ConfigError(f"a scenario '{name}' is already registered; unregister it first")
    try:
        cls()
    except TypeError as exc:
        raise ConfigError(f"scenario '{name}': {cls.__name__}() fails: {exc}") from None
    _SCENARIOS[name] = cls
    return cls


def unregister_scenario(name: str) -> None:
    if name in _BUILTIN:
        raise ConfigError(f"the built-in scenario '{name}' cannot be unregistered")
    _SCENARIOS.pop(name, None)


def scenario_names() -> list[str]:
    return list(_SCENARIOS)


def get_scenario(name: str) -> type[Scenario]:
    if not isinstance(name, str) or name not in _SCENARIOS:
        raise ConfigError(
            f"unknown scenario {name!r}; allowed: {', '.join(_SCENARIOS)} "
            "(a plugin may register more)"
        )
    return _SCENARIOS[name]
