"""Scenarios by name: the registry, and how a study names one and its fields."""

from dataclasses import dataclass

import pytest

import mlmbias
from mlmbias import ConfigError, Study, condition_id
from mlmbias.scenarios import Seed, get_scenario, scenario_names


@dataclass(frozen=True)
class Twin(Seed):
    """The seed's process under another name: the same fields, other condition ids."""

    name = "twin"

    def identity(self):
        return {"scenario": self.name, **self.as_dict()}


def test_builtin_scenarios_and_unknown_names():
    assert scenario_names()[:2] == ["seed", "contextual"]
    with pytest.raises(ConfigError, match="unknown scenario 'nope'; allowed: seed, contextual"):
        get_scenario("nope")
    with pytest.raises(ConfigError, match="cannot be unregistered"):
        mlmbias.unregister_scenario("seed")


def test_register_scenario_checks_and_is_idempotent():
    try:
        assert mlmbias.register_scenario("twin", Twin) is Twin
        mlmbias.register_scenario("twin", Twin)  # the same class again: nothing changes
        assert get_scenario("twin") is Twin
        # same fields and values, another scenario: another condition id (other keys)
        assert condition_id(Twin()) != condition_id(Seed())

        @dataclass(frozen=True)
        class Other(Seed):
            name = "twin"

        with pytest.raises(ConfigError, match="already registered"):
            mlmbias.register_scenario("twin", Other)
        with pytest.raises(ConfigError, match=r"Twin.name is 'twin'; set name = 'triplet'"):
            mlmbias.register_scenario("triplet", Twin)
        with pytest.raises(ConfigError, match="not a subclass of mlmbias.Scenario"):
            mlmbias.register_scenario("plain", dict)
        with pytest.raises(ConfigError, match="must be an identifier"):
            mlmbias.register_scenario("two words", Twin)
    finally:
        mlmbias.unregister_scenario("twin")
    with pytest.raises(ConfigError, match="unknown scenario 'twin'"):
        get_scenario("twin")


def test_a_study_names_its_scenario_and_its_fields():
    study = Study(
        methods=["fe"],
        dgp={"scenario": "contextual", "icc": 0.2},
        grid={"contextual": [0.0, 0.5], "group_sizes": ["balanced", "skewed"]},
    )
    conditions = study.conditions()
    assert study.scenario == "contextual" and len(conditions) == 4
    assert {c.name for c in conditions} == {"contextual"} and conditions[0].icc == 0.2
    assert [c.group_sizes for c in conditions] == ["balanced", "skewed"] * 2
    assert len({condition_id(c) for c in conditions}) == 4
    assert Study(methods=["fe"]).conditions()[0] == Seed()  # the default scenario


@pytest.mark.parametrize(
    "dgp, grid, message",
    [
        ({"scenario": "contextual"}, {"confounding": [0.0, 1.0]},
         "unknown grid field 'confounding' of scenario 'contextual'"),
        ({"scenario": "contextual", "months_mean": 3}, {},
         "unknown field 'months_mean' of scenario 'contextual' in \\[dgp\\]"),
        ({}, {"scenario": ["seed", "contextual"]}, "'scenario' cannot vary in \\[grid\\]"),
        ({"scenario": "nope"}, {}, "unknown scenario 'nope'"),
        ({"scenario": "contextual"}, {"group_sizes": ["balanced", "balanced"]},
         "are the same condition"),
        ({"scenario": "contextual"}, {"icc": [0.5, 1.5]}, "'icc' must be < 1"),
    ],
)  # fmt: skip
def test_study_errors_name_the_scenario_field(dgp, grid, message):
    with pytest.raises(ConfigError, match=message):
        Study(methods=["fe"], dgp=dgp, grid=grid)


def test_overrides_switch_scenario_and_set_its_fields():
    study = Study(methods=["fe"]).with_overrides(["scenario=contextual", "icc=0.1"])
    assert study.scenario == "contextual" and study.conditions()[0].icc == 0.1
    with pytest.raises(ConfigError, match="unknown field 'icc'"):
        Study(methods=["fe"]).with_overrides(["icc=0.1"])
