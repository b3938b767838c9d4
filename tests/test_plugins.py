"""User methods: ``mlmbias.register_method`` and a study's ``plugins``."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import mlmbias
from mlmbias.errors import ConfigError
from mlmbias.registry import get_method
from mlmbias.study import Study

PLUGIN = '''
"""A user's own method: the within estimator with a normal interval."""
import numpy as np
from scipy.stats import norm

import mlmbias


def my_within(batch, level, options):
    cross = np.asarray(batch.stats.cross)  # (rep, R, 2, 2): [x, y] centred sums
    n = np.asarray(batch.stats.n)
    wxx, wxy, wyy = (cross[..., i, j].sum(-1) for i, j in ((0, 0), (0, 1), (1, 1)))
    beta = wxy / wxx
    df = n.sum(-1) - (n > 0).sum(-1) - 1
    se = np.sqrt((wyy - beta * wxy) / df / wxx)
    q = norm.ppf(0.5 + level / 2)
    cols = {"estimate": beta, "se": se, "lower": beta - q * se, "upper": beta + q * se,
            "p_value": np.full_like(beta, np.nan), "flag": np.zeros(beta.shape, np.int32)}
    return {("beta", "x0"): cols}


mlmbias.register_method("my-within", my_within, estimands=["beta"],
                        description="the within estimator, written as a plugin")
'''

STUDY = """
seed = 4
replications = 300
methods = ["my-within", "fe"]
plugins = ["plugin.py"]
[grid]
n_regions = [10]
"""


def _cli(args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "mlmbias", *map(str, args)], cwd=cwd, capture_output=True, text=True
    )


def test_plugin_method_runs_through_run_and_report(tmp_path):
    (tmp_path / "plugin.py").write_text(PLUGIN)
    (tmp_path / "study.toml").write_text(STUDY)
    out = tmp_path / "res"
    ran = _cli(["run", "study.toml", "--out", out, "--quiet"], cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    # the report runs elsewhere: the manifest holds the plugin's absolute path
    rep = _cli(["report", out, "--no-pair-plot", "--strict"], cwd=tmp_path.parent)
    assert rep.returncode == 0, rep.stderr
    summary = pd.read_csv(out / "summary.csv")
    bias = summary[summary.stat == "bias"].set_index("method").est
    assert bias["my-within"] == pytest.approx(bias["fe"], abs=1e-12)  # the same estimator
    cover = summary[summary.stat == "cover"].set_index("method").est
    assert 0.85 < cover["my-within"] <= 1.0
    assert "the within estimator, written as a plugin" in (out / "report.md").read_text()


def test_missing_or_failing_plugin_is_one_line(tmp_path):
    (tmp_path / "bad.py").write_text("raise RuntimeError('broken plugin')\n")
    for entry, message in [("absent.py", "not found"), ("bad.py", "broken plugin")]:
        (tmp_path / "study.toml").write_text(f'methods = ["fe"]\nplugins = ["{entry}"]\n')
        res = _cli(["run", "study.toml", "--out", tmp_path / "r"], cwd=tmp_path)
        assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
        assert message in res.stderr


def test_register_method_in_process_and_its_checks():
    def fit(batch, level, options):
        est = np.zeros(len(batch.keys))
        return {
            ("beta", "x0"): {
                "estimate": est,
                "se": est + 1,
                "lower": est - 1,
                "upper": est + 1,
                "p_value": est * np.nan,
                "flag": est.astype(int),
            }
        }

    spec = mlmbias.register_method("zero", fit, estimands=["beta"])
    try:
        assert get_method("zero").load() is fit and spec.kind == "frequentist"
        assert (
            mlmbias.register_method("zero", fit, estimands=["beta"]) is not None
        )  # again: same fn
        with pytest.raises(ConfigError, match="already registered"):
            mlmbias.register_method("zero", lambda *a: {}, estimands=["beta"])
        assert Study(methods=["zero", "fe"]).methods == ("zero", "fe")
    finally:
        mlmbias.unregister("zero")
    for kwargs, message in [
        ({"name": "a b"}, "one word"),
        ({"fn": 3}, "callable"),
        ({"estimands": "beta"}, "estimands"),
        ({"kind": "mcmc"}, "kind must be one of"),
    ]:
        args = {"name": "x", "fn": fit, "estimands": ["beta"], **kwargs}
        name, fn = args.pop("name"), args.pop("fn")
        with pytest.raises(ConfigError, match=message):
            mlmbias.register_method(name, fn, **args)
