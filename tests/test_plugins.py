"""User methods and scenarios: ``mlmbias.register_method``, ``mlmbias.register_scenario``
and a study's ``plugins``."""

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
"""A user's own method (the within estimator with a normal interval) and scenario."""
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from scipy.stats import norm

import mlmbias


@dataclass(frozen=True)
class Toy(mlmbias.Scenario):
    """Balanced groups; dose correlates with the group effect u (slope 1)."""

    name = "toy"
    x_names = ("dose",)
    y_name = "response"

    n_regions: int = 10
    size: int = mlmbias.knob(6, low=2)
    slope: float = 0.7
    group_sd: float = mlmbias.knob(1.0, low=0)

    def obs_bound(self):
        return self.n_regions * self.size

    def min_obs(self):
        return self.n_regions * self.size

    def truths(self):
        return {("beta", "dose"): self.slope}

    def equations(self):
        return f"response = {self.slope:g} dose + u_g + e, dose = u_g + e', u_g ~ N(0, sd²)"

    def simulate(self, key, max_obs):
        k_u, k_x, k_e = jax.random.split(key, 3)
        u = self.group_sd * jax.random.normal(k_u, (self.n_regions,))
        sizes = jnp.full(self.n_regions, self.size)
        region, _, mask, n_obs = mlmbias.contiguous_layout(sizes, max_obs)
        x = u[region] + mlmbias.observation_normals(k_x, max_obs)
        y = self.slope * x + u[region] + mlmbias.observation_normals(k_e, max_obs)
        return mlmbias.Panel(
            region=region, x=jnp.where(mask, x, 0.0)[:, None], y=jnp.where(mask, y, 0.0),
            mask=mask, n_obs=n_obs, z=jnp.zeros((self.n_regions, 0)), latent={"u": u},
            x_names=self.x_names, z_names=self.z_names, y_name=self.y_name,
        )


mlmbias.register_scenario("toy", Toy)


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
methods = ["my-within", "fe", "re-reml"]
plugins = ["plugin.py"]
[dgp]
scenario = "toy"
[grid]
n_regions = [10]
group_sd = [0.0, 1.0]
"""


def _cli(args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "mlmbias", *map(str, args)], cwd=cwd, capture_output=True, text=True
    )


def test_plugin_method_and_scenario_run_through_run_and_report(tmp_path):
    (tmp_path / "plugin.py").write_text(PLUGIN)
    (tmp_path / "study.toml").write_text(STUDY)
    out = tmp_path / "res"
    ran = _cli(["run", "study.toml", "--out", out, "--quiet"], cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    # the report runs elsewhere: the manifest holds the plugin's absolute path
    rep = _cli(["report", out, "--no-pair-plot", "--strict"], cwd=tmp_path.parent)
    assert rep.returncode == 0, rep.stderr
    summary = pd.read_csv(out / "summary.csv")
    assert set(summary.term.dropna()) == {"dose"} and set(summary.scenario) == {"toy"}
    bias = summary[summary.stat == "bias"].set_index(["group_sd", "method"])
    for sd in (0.0, 1.0):  # the same estimator
        assert bias.est[(sd, "my-within")] == pytest.approx(bias.est[(sd, "fe")], abs=1e-12)
    # the scenario's truth reaches the measures: random intercepts are biased only
    # when dose correlates with u (|z| > 8 and < 4 on the MCSE; false failure < 1e-4)
    z = bias.est / bias.mcse
    assert abs(z[(0.0, "re-reml")]) < 4 and abs(z[(1.0, "fe")]) < 4
    assert z[(1.0, "re-reml")] > 8
    cover = summary[summary.stat == "cover"].set_index(["group_sd", "method"]).est
    assert 0.85 < cover[(1.0, "my-within")] <= 1.0
    report = (out / "report.md").read_text()
    assert "the within estimator, written as a plugin" in report
    assert "Scenario `toy`" in report and "response = 0.7 dose" in report
    assert "**n_regions = 10**" not in report  # the x factor is group_sd, one block


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


def test_a_method_column_never_overwrites_a_condition_field(tmp_path):
    """A diagnostic named like a scenario field (here the seed's ``confounding``)
    would silently replace the condition's value in every row: the batch fails
    with a message that names the column instead."""

    def fit(batch, level, options):
        est = np.zeros(len(batch.keys))
        cols = {"estimate": est, "se": est + 1, "lower": est - 1, "upper": est + 1}
        return {("beta", "x0"): {**cols, "p_value": est, "flag": est, "confounding": est}}

    mlmbias.register_method("clashing", fit, estimands=["beta"])
    try:
        summary = mlmbias.run_study(
            Study(methods=["clashing"], replications=3), tmp_path, quiet=True
        )
    finally:
        mlmbias.unregister("clashing")
    assert summary.ran == 0 and len(summary.failures) == 1
    assert "returns a column 'confounding'" in summary.failures[0]["message"]
