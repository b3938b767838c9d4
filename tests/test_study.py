import pytest

from mlmbias import DGP, ConfigError, Study, load_study
from mlmbias.study import parse_assignment


def write(tmp_path, text):
    path = tmp_path / "study.toml"
    path.write_text(text)
    return path


def test_default_config_loads_and_expands_grid():
    study = load_study("configs/default.toml")
    conds = study.conditions()
    assert len(conds) == 10
    assert {c.n_regions for c in conds} == {10, 20, 50, 100, 200}
    assert {c.confounding for c in conds} == {2.0, 0.0}
    assert study.level == 0.94 and study.name == "default"


def test_dgp_overrides_and_grid(tmp_path):
    study = load_study(
        write(
            tmp_path,
            "seed = 3\nreplications = 5\n[dgp]\nnoise_sd = 4\n[grid]\nn_regions = [3, 4]\n",
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
        ("seed = -1", "'seed' must be an integer >= 0"),
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
    with pytest.raises(ConfigError, match=message):
        load_study(write(tmp_path, text))


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read study file"):
        load_study(tmp_path / "absent.toml")


def test_overrides():
    study = Study(grid={"n_regions": [10, 20]})
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
