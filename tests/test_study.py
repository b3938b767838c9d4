from pathlib import Path

import pytest

from mlmbias import DGP, ConfigError, Study, condition_id, load_study
from mlmbias.registry import method_names
from mlmbias.study import parse_assignment


def write(tmp_path, text):
    path = tmp_path / "study.toml"
    path.write_text(text)
    return path


METHODS = 'methods = ["fe"]\n'


def test_default_config_loads_and_expands_grid():
    study = load_study("configs/default.toml")
    conds = study.conditions()
    assert len(conds) == 10
    assert {c.n_regions for c in conds} == {10, 20, 50, 100, 200}
    assert {c.confounding for c in conds} == {2.0, 0.0}
    assert study.level == 0.94 and study.name == "default"


@pytest.mark.parametrize("path", sorted(Path("configs").glob("*.toml")), ids=lambda p: p.stem)
def test_every_shipped_study_loads(path):
    """Each study in configs/ parses, names registered methods and known scenario
    fields, and expands its grid into distinct conditions."""
    study = load_study(path)
    conds = study.conditions()
    assert conds and len({condition_id(c) for c in conds}) == len(conds)
    assert set(study.methods) <= set(method_names())


def test_shipped_random_slope_and_non_normal_studies():
    slopes = load_study("configs/random_slopes.toml").conditions()
    assert {c.name for c in slopes} == {"slopes"}
    assert {c.slope_sd for c in slopes} == {0.0, 0.3, 0.6}
    assert {c.n_regions for c in slopes} == {20, 50, 200}
    effects = load_study("configs/nonnormal_effects.toml").conditions()
    assert {c.group_dist for c in effects} == {"normal", "t", "skewed"}
    assert all(c.group_df == 3.0 and c.group_skew_df == 2.0 for c in effects)


def test_dgp_overrides_and_grid(tmp_path):
    study = load_study(
        write(
            tmp_path,
            METHODS
            + "seed = 3\nreplications = 5\n[dgp]\nnoise_sd = 4\n[grid]\nn_regions = [3, 4]\n",
        )
    )
    assert [c.n_regions for c in study.conditions()] == [3, 4]
    assert all(c.noise_sd == 4.0 for c in study.conditions())
    assert study.conditions()[0] == DGP(n_regions=3, noise_sd=4)


@pytest.mark.parametrize(
    "text, message",
    [
        ("replications = 0", "'replications' must be an integer >= 1"),
        ("level = 1.0", "'level' must lie in the open interval"),
        ("level = 0", "'level' must lie in the open interval"),
        ("seed = -1", "'seed' must be an integer with 0 <= seed < 2\\*\\*32"),
        ("seed = 4294967296", "'seed' must be an integer with 0 <= seed < 2\\*\\*32"),
        ("seed = 4294967297", "got 4294967297"),
        ("seed = 1.0", "'seed' must be an integer"),
        ("name = 3", "'name' must be a non-empty string"),
        ("methods = []", "no methods: list at least one of .*fe"),
        ("", "no methods: list at least one of"),
        ("seed = 1", "no methods"),
        ('methods = ["fe", "fe"]', "lists the method 'fe' twice"),
        ('methods = [["fe"]]', "'methods' must be a list of method names"),
        ("[grid]\nn_regions = [10, 10]", "grid field 'n_regions' lists the value 10 twice"),
        ("[grid]\nn_regions = [10, 20, 10.0]", "grid field 'n_regions' lists 10 and 10.0"),
        ("[grid]\nconfounding = [0.0, -0.0]", "grid field 'confounding' lists 0.0 and -0.0"),
        ("[grid]\nconfounding = [2, 2.0]", "grid field 'confounding' lists 2 and 2.0"),
        ('methods = ["no-such-method"]', "unknown method 'no-such-method'"),
        ("[tables]\nx = 1", "unknown field or table 'tables'"),
        ("colour = 1", "unknown field or table 'colour'"),
        ("[grid]\nfoo = [1]", "unknown grid field 'foo'"),
        ("[grid]\nn_regions = [1, 10]", "'n_regions' must be >= 2"),
        ("[grid]\nn_regions = []", "grid field 'n_regions' has no values"),
        ("[dgp]\nnoise_sd = -1", "'noise_sd' must be >= 0"),
        ("[dgp]\nmonths_mean = 0", "'months_mean' must be > 0"),
        ("[dgp]\nmonths_min = 0", "'months_min' must be >= 1"),
        ("[dgp]\nn_regions = 3\n[grid]\nn_regions = [4]", "set in both"),
        ("dgp = 3", "'dgp' must be a table"),
        ("seed = = 3", "malformed TOML"),
        ("[bayes]\nchains = 0", "'chains' must be an integer >= 1"),
        ("[bayes]\nwarmpu = 10", "warmpu"),
        ("[bayes]\nreplications = 0", "'bayes.replications' must be an integer >= 1"),
    ],
)
def test_invalid_study_files(tmp_path, text, message):
    if "methods" not in text and "no methods" not in message:
        text = METHODS + text  # so that the error tested is the one that fires
    with pytest.raises(ConfigError, match=message):
        load_study(write(tmp_path, text))


def test_non_utf8_file_is_a_config_error(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes('name = "régions"\nmethods = ["fe"]\n'.encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_study(path)


def test_a_study_needs_methods():
    with pytest.raises(ConfigError, match="no methods"):
        Study()
    with pytest.raises(ConfigError, match="no methods"):
        Study(methods=())
    with pytest.raises(ConfigError, match="no methods"):
        Study(methods=["fe"]).with_overrides(["methods=[]"])


@pytest.mark.parametrize(
    "grid, message",
    [
        ({"n_regions": [10, 10]}, "lists the value 10 twice"),
        ({"confounding": [0.0, -0.0]}, "lists 0.0 and -0.0"),
        ({"confounding": (1, 2, 1.0)}, "lists 1 and 1.0"),
    ],
)
def test_duplicate_grid_values(grid, message):
    with pytest.raises(ConfigError, match=message):
        Study(methods=["fe"], grid=grid)
    with pytest.raises(ConfigError, match=message):
        Study(methods=["fe"]).with_overrides([f"grid.{k}={list(v)}" for k, v in grid.items()])


def test_conditions_are_distinct_dgps_with_distinct_ids(monkeypatch):
    study = Study(methods=["fe"], grid={"n_regions": [10, 20], "confounding": [0.0, 2.0]})
    conds = study.conditions()
    assert len(set(conds)) == 4
    # a collision of condition ids would give two conditions the same replications
    import mlmbias.study

    monkeypatch.setattr(mlmbias.study, "condition_id", lambda dgp: 7)
    with pytest.raises(ConfigError, match="conditions 1 .* and 2 .* share a condition id"):
        Study(methods=["fe"], grid={"n_regions": [10, 20]})


def test_seed_range_in_overrides():
    study = Study(methods=["fe"])
    assert study.with_overrides(["seed=4294967295"]).seed == 2**32 - 1
    with pytest.raises(ConfigError, match="0 <= seed < 2"):
        study.with_overrides(["seed=4294967297"])


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read study file"):
        load_study(tmp_path / "absent.toml")


def test_overrides():
    study = Study(methods=["fe"], grid={"n_regions": [10, 20]})
    s2 = study.with_overrides(["replications=7", "n_regions=5", "grid.confounding=[0.0, 1.0]"])
    assert s2.replications == 7
    assert [(c.n_regions, c.confounding) for c in s2.conditions()] == [(5, 0.0), (5, 1.0)]
    with pytest.raises(ConfigError, match="unknown field 'zzz'"):
        study.with_overrides(["zzz=1"])
    with pytest.raises(ConfigError, match="expected field=value"):
        study.with_overrides(["replications"])


def test_parse_assignment_types():
    assert parse_assignment("a=5") == ("a", 5)
    assert parse_assignment("a = 0.5") == ("a", 0.5)
    assert parse_assignment("a=[1,2]") == ("a", [1, 2])
    assert parse_assignment("a=text") == ("a", "text")


def test_method_options_table(tmp_path):
    """[options.METHOD] reaches that method alone; a bad value, a method the study
    does not run, and a non-table are one-line errors; no options keeps the hash."""
    from mlmbias.registry import get_method
    from mlmbias.runner import method_options
    from mlmbias.store import study_hash

    path = tmp_path / "s.toml"
    path.write_text(
        'methods = ["fe", "hausman-wild"]\n[options.hausman-wild]\ndraws = 99\nweights = "webb"\n'
    )
    study = load_study(path)
    assert method_options(study, get_method("hausman-wild")) == {"draws": 99, "weights": "webb"}
    assert method_options(study, get_method("fe")) == {}
    assert study.with_overrides(["options.hausman-wild.draws=19"]).options == {
        "hausman-wild": {"draws": 19, "weights": "webb"}
    }
    plain = Study(methods=("fe", "hausman-wild"))
    assert "options" not in plain.as_dict()
    assert study_hash(plain.as_dict()) != study_hash(study.as_dict())
    for options, message in [
        ({"hausman-wild": {"draws": 0}}, "'draws' must be an integer >= 1, got 0"),
        ({"fe-cr2": {"draws": 9}}, "[options.fe-cr2] sets options of a method the study"),
        ({"hausman-wild": 5}, "[options.hausman-wild] must be a table"),
    ]:
        with pytest.raises(ConfigError) as err:
            Study(methods=("fe", "hausman-wild"), options=options)
        assert message in str(err.value) and "\n" not in str(err.value)
