"""Study configuration: seed, replications, level, methods, scenario, its fields, grid.

Loaded from TOML::

    seed = 20250713
    replications = 500
    level = 0.94
    methods = ["fe", "re-reml"]
    block = 1000     # replications per stored batch of the frequentist methods
    [dgp]            # the scenario ("seed" by default) and its fields for every condition
    scenario = "seed"
    noise_sd = 10
    [grid]           # scenario field -> list of values; conditions are their product
    n_regions = [10, 50]
    confounding = [2.0, 0.0]
    [bayes]          # settings of the Bayesian methods (chains, warmup, draws, ...)
    chains = 4
    [options.hausman-wild]   # a method's own settings (``--set options.hausman-wild.draws=199``)
    draws = 999
"""

from __future__ import annotations

import dataclasses
import itertools
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlmbias.checks import check_integer, check_level, is_integer, is_number
from mlmbias.errors import ConfigError
from mlmbias.registry import get_method, method_names
from mlmbias.scenarios import DEFAULT, Scenario, get_scenario
from mlmbias.seeding import UINT32_LIMIT, condition_id

_TABLES = ("dgp", "grid", "bayes", "options")
_SCALARS = ("name", "seed", "replications", "level", "methods", "block", "plugins")


@dataclass(frozen=True)
class Study:
    seed: int = 0
    replications: int = 100
    level: float = 0.94
    methods: tuple[str, ...] = ()
    dgp: Mapping[str, Any] = field(default_factory=dict)
    grid: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    bayes: Mapping[str, Any] = field(default_factory=dict)
    name: str = "study"
    block: int = 1000  # replications per stored batch of the frequentist methods
    plugins: tuple[str, ...] = ()  # modules or .py files imported before methods are resolved
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # method -> its own

    def __post_init__(self) -> None:
        seed = self.seed
        if not is_integer(seed) or not 0 <= seed < UINT32_LIMIT:
            raise ConfigError(
                f"'seed' must be an integer with 0 <= seed < 2**32 = {UINT32_LIMIT}, got {seed!r}"
            )
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigError(f"'name' must be a non-empty string, got {self.name!r}")
        check_integer("replications", self.replications, 1)
        check_integer("block", self.block, 1)
        check_level(self.level)
        if isinstance(self.plugins, str) or not isinstance(self.plugins, Iterable):
            raise ConfigError(f"'plugins' must list modules or .py files, got {self.plugins!r}")
        object.__setattr__(self, "plugins", tuple(self.plugins))
        from mlmbias.plugins import import_plugins

        import_plugins(self.plugins)  # they register methods and scenarios the study may name
        if isinstance(self.methods, str) or not isinstance(self.methods, Iterable):
            raise ConfigError(f"'methods' must be a list of method names, got {self.methods!r}")
        object.__setattr__(self, "methods", tuple(self.methods))
        if not self.methods:
            raise ConfigError(
                f"no methods: list at least one of {', '.join(method_names())} in 'methods'"
            )
        for i, m in enumerate(self.methods):
            if not isinstance(m, str):
                raise ConfigError(f"'methods' must be a list of method names, got {m!r} in it")
            get_method(m)
            if m in self.methods[:i]:
                raise ConfigError(f"'methods' lists the method '{m}' twice")
        if not isinstance(self.dgp, Mapping):
            raise ConfigError("'dgp' must be a table ([dgp])")
        object.__setattr__(self, "dgp", dict(self.dgp))
        cls = self.scenario_class()
        for key in self.dgp:
            if key != "scenario" and key not in cls.field_names():
                raise ConfigError(
                    f"unknown field '{key}' of scenario '{cls.name}' in [dgp]; allowed: "
                    f"scenario, {', '.join(cls.field_names())}"
                )
        grid = {}
        for key, values in dict(self.grid).items():
            if key == "scenario":
                raise ConfigError(
                    "'scenario' cannot vary in [grid]: set it in [dgp] and run one study "
                    "per scenario"
                )
            if key not in cls.field_names():
                raise ConfigError(
                    f"unknown grid field '{key}' of scenario '{cls.name}'; allowed: "
                    f"{', '.join(cls.field_names())}"
                )
            if key in self.dgp:
                raise ConfigError(f"field '{key}' is set in both [dgp] and [grid]")
            if isinstance(values, str | bytes) or not isinstance(values, Iterable):
                values = [values]
            values = tuple(values)
            if not values:
                raise ConfigError(f"grid field '{key}' has no values")
            _check_distinct(key, values)
            grid[key] = values
        object.__setattr__(self, "grid", grid)
        object.__setattr__(self, "bayes", dict(self.bayes))
        self._validate_bayes()
        self._validate_options()
        self._check_conditions()

    def _validate_options(self) -> None:
        """``[options.METHOD]``: a table per listed method, checked by the method
        when it can check (its fit function's ``check_options``)."""
        if not isinstance(self.options, Mapping):
            raise ConfigError("'options' must be a table of tables ([options.METHOD])")
        options = {}
        for name, table in self.options.items():
            if name not in self.methods:
                raise ConfigError(
                    f"[options.{name}] sets options of a method the study does not run; "
                    f"methods: {', '.join(self.methods)}"
                )
            if not isinstance(table, Mapping):
                raise ConfigError(f"[options.{name}] must be a table of settings, got {table!r}")
            check = getattr(get_method(name).load(), "check_options", None)
            if check is not None:
                check(table)
            options[name] = dict(table)
        object.__setattr__(self, "options", options)

    def _validate_bayes(self) -> None:
        """``[bayes] replications`` here, the sampler settings by the Bayesian package."""
        from mlmbias.bayes.options import check_methods, settings_from_options

        settings = {k: v for k, v in self.bayes.items() if k != "replications"}
        check_integer("bayes.replications", self.bayes.get("replications", 1), 1)
        check_methods(self.methods, settings_from_options(settings))

    @property
    def scenario(self) -> str:
        """The name of the study's scenario (``[dgp] scenario``, "seed" by default)."""
        return self.dgp.get("scenario", DEFAULT)

    def scenario_class(self) -> type[Scenario]:
        return get_scenario(self.scenario)

    def _check_conditions(self) -> None:
        """Every condition of the grid is valid, and no two conditions are the same
        (by value) or share a condition id (their replications would share keys)."""
        by_dgp: dict[Scenario, int] = {}
        by_id: dict[int, int] = {}
        conditions = self.conditions()
        for j, dgp in enumerate(conditions):
            cid = condition_id(dgp)
            i = by_dgp.get(dgp, by_id.get(cid))
            if i is not None:
                what = (
                    "the same condition"
                    if conditions[i] == dgp
                    else "distinct but share a condition id"
                )
                raise ConfigError(
                    f"conditions {i + 1} ({self._grid_point(conditions[i])}) and {j + 1} "
                    f"({self._grid_point(dgp)}) of the grid are {what}; "
                    "each condition must be distinct"
                )
            by_dgp[dgp] = by_id[cid] = j

    def _grid_point(self, dgp: Scenario) -> str:
        return ", ".join(f"{k} = {getattr(dgp, k)!r}" for k in self.grid) or "no grid"

    def conditions(self) -> list[Scenario]:
        """Every condition of the grid (the product of its lists, in file order)."""
        fields = {k: v for k, v in self.dgp.items() if k != "scenario"}
        base = self.scenario_class()().replace(**fields)
        keys = list(self.grid)
        return [
            base.replace(**dict(zip(keys, combo, strict=True)))
            for combo in itertools.product(*(self.grid[k] for k in keys))
        ]

    def as_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["methods"] = list(self.methods)
        out["plugins"] = list(self.plugins)
        out["grid"] = {k: list(v) for k, v in self.grid.items()}
        if not out["options"]:
            del out["options"]  # the study hash of a study without options is as before
        return out

    def with_overrides(self, assignments: Iterable[str]) -> Study:
        """Apply ``field=value`` strings: a study field, ``dgp.F``/``grid.F``/``bayes.F``,
        or ``options.METHOD.F``.

        A bare field name of the scenario (or ``scenario``) sets it in ``[dgp]``
        (and removes it from the grid).
        Values are parsed as TOML (``5``, ``0.9``, ``[10, 20]``, ``"x"``), else as text.
        """
        data = self.as_dict()
        for text in assignments:
            key, value = parse_assignment(text)
            table, _, sub = key.rpartition(".")
            if table.startswith("options."):
                data.setdefault("options", {}).setdefault(table[len("options.") :], {})[sub] = value
            elif table:
                if table not in _TABLES:
                    raise ConfigError(f"unknown table '{table}' in --set {text!r}")
                data[table][sub] = value
            elif key in _SCALARS:
                data[key] = value
            elif (
                key == "scenario"
                or key in get_scenario(data["dgp"].get("scenario", DEFAULT)).field_names()
            ):
                data["grid"].pop(key, None)
                data["dgp"][key] = value
            else:
                raise ConfigError(f"unknown field '{key}' in --set {text!r}")
        return Study(**data)


def _check_distinct(key: str, values: tuple[Any, ...]) -> None:
    """No value of a grid list equals an earlier one (by value: 10 and 10.0, or
    0.0 and -0.0, are the same condition and would be written over each other)."""
    seen: dict[float, int] = {}
    for i, v in enumerate(values):
        if not is_number(v):
            continue  # not a number: the scenario's validation names it
        first = seen.setdefault(v, i)
        if first != i:
            w = values[first]
            same = f"the value {v!r} twice" if repr(v) == repr(w) else f"{w!r} and {v!r}"
            raise ConfigError(f"grid field '{key}' lists {same}; each value must appear once")


def parse_assignment(text: str) -> tuple[str, Any]:
    """Split ``field=value`` and parse the value as a TOML value (else keep the text)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"expected field=value, got {text!r}")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return key, value


def study_from_dict(data: Mapping[str, Any]) -> Study:
    unknown = sorted(set(data) - set(_TABLES) - set(_SCALARS))
    if unknown:
        raise ConfigError(
            f"unknown field or table '{unknown[0]}' in study; allowed: "
            f"{', '.join(_SCALARS + _TABLES)}"
        )
    for table in _TABLES:
        if table in data and not isinstance(data[table], Mapping):
            raise ConfigError(f"'{table}' must be a table ([{table}])")
    return Study(**data)


def load_study(path: str | Path) -> Study:
    """Read and validate a study from a TOML file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read study file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"study file {path} is not UTF-8 text (byte {exc.start}); TOML files must be UTF-8"
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"malformed TOML in {path}: {exc}") from None
    if isinstance(data.get("plugins"), list):
        from mlmbias.plugins import resolve

        data["plugins"] = list(resolve(data["plugins"], path.parent))
    study = study_from_dict(data)
    if "name" not in data:
        study = dataclasses.replace(study, name=path.stem)
    return study
