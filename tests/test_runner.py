import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _fake_methods import fake_methods  # noqa: F401  (autouse: registers the stand-ins)

from mlmbias import store
from mlmbias.cli import main
from mlmbias.errors import ConfigError
from mlmbias.runner import merge, parse_shard, plan, run_study
from mlmbias.store import load_results
from mlmbias.study import Study

TESTS = Path(__file__).parent


def small_study(**changes):
    base = dict(
        seed=3,
        replications=25,
        methods=("t-within", "t-keyed"),
        grid={"n_regions": [3, 5], "confounding": [2.0, 0.0]},
        bayes={"batch_size": 4, "replications": 10},
        name="small",
        block=10,
    )
    base.update(changes)
    return Study(**base)


def run(study, out, **kw):
    return run_study(study, out, quiet=True, **kw)


def test_table_has_one_row_per_condition_rep_method_estimand(tmp_path):
    summary = run(small_study(), tmp_path)
    assert summary.failures == [] and summary.ran == summary.units
    df = load_results(tmp_path)
    assert len(df) == 4 * 25 + 4 * 10
    assert not df.duplicated(["condition_index", "rep", "method", "estimand"]).any()
    assert (df["term"] == "ad_spend").all()  # the one covariate's term, by its name
    assert list(df.columns).index("term") == list(df.columns).index("estimand") + 1
    for col in [
        "n_regions",
        "confounding",
        "rep",
        "seed",
        "rep_key",
        "estimate",
        "se",
        "lower",
        "upper",
        "width",
        "p_value",
        "flag",
        "failed",
        "batch_seconds",
    ]:
        assert col in df.columns, col
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["study"]["name"] == "small"
    assert {"jax", "numpyro", "backend", "devices", "mlmbias"} <= set(manifest)


def test_results_do_not_depend_on_block_size(tmp_path):
    run(small_study(), tmp_path / "a")
    run(small_study(bayes={"batch_size": 3, "replications": 10}), tmp_path / "b")
    a, b = load_results(tmp_path / "a"), load_results(tmp_path / "b")
    cols = ["condition_index", "rep", "method", "estimand", "estimate"]
    pd.testing.assert_frame_equal(a[cols], b[cols])


@pytest.mark.parametrize("stop_after", [1, 7, 13])
def test_interrupted_run_resumes_to_the_same_table(tmp_path, stop_after, capsys):
    full = tmp_path / "full"
    run(small_study(), full)

    class Stop(Exception):
        pass

    done = []

    def interrupt(unit):
        done.append(unit)
        if len(done) == stop_after:
            raise KeyboardInterrupt

    part = tmp_path / "part"
    with pytest.raises(KeyboardInterrupt):
        run(small_study(), part, on_part=interrupt)
    assert len(store.part_files(part)) == stop_after
    # read before it is finished: what is missing is named, not dropped silently
    capsys.readouterr()
    partial = load_results(part)
    n_units = len(plan(small_study()))
    assert len(partial.attrs["completeness"]["missing"]) == n_units - stop_after
    assert f"{n_units - stop_after} of {n_units} batches missing" in capsys.readouterr().err
    summary = run(small_study(), part)
    assert summary.skipped == stop_after
    cols = [c for c in load_results(full).columns if c != "batch_seconds"]
    pd.testing.assert_frame_equal(load_results(full)[cols], load_results(part)[cols])


def test_killed_process_resumes(tmp_path):
    """kill -9 of a real run at a random moment, then the same command again."""
    out = tmp_path / "killed"
    config = tmp_path / "study.toml"
    config.write_text(
        'seed = 1\nreplications = 40\nmethods = ["t-within", "t-keyed"]\n'
        "[grid]\nn_regions = [3, 4, 5, 6]\nconfounding = [2.0, 0.0]\n"
        "[bayes]\nbatch_size = 2\nreplications = 20\n"
    )
    script = (
        "import sys, _fake_methods; _fake_methods.register_all()\n"
        "from mlmbias.cli import main; sys.exit(main(sys.argv[1:]))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    cmd = [sys.executable, "-c", script, "run", str(config), "--out", str(out), "--quiet"]
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    rng = np.random.default_rng(5)
    target = int(rng.integers(5, 60))
    import time

    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if len(store.part_files(out)) >= target:
            proc.kill()
            break
        time.sleep(0.005)
    proc.wait()
    n_before = len(store.part_files(out))
    assert 0 < n_before < len(plan(_study_from(config)))  # it was killed mid-run
    assert subprocess.run(cmd, env=env, capture_output=True).returncode == 0
    ref = tmp_path / "ref"
    run(_study_from(config), ref)
    cols = [c for c in load_results(ref).columns if c != "batch_seconds"]
    pd.testing.assert_frame_equal(load_results(ref)[cols], load_results(out)[cols])


def _study_from(path):
    from mlmbias.study import load_study

    return load_study(path)


def test_truncated_part_is_redone(tmp_path):
    run(small_study(), tmp_path)
    before = load_results(tmp_path)
    victim = store.part_files(tmp_path)[2]
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])
    summary = run(small_study(), tmp_path)
    assert summary.ran == 1
    cols = [c for c in before.columns if c != "batch_seconds"]
    pd.testing.assert_frame_equal(before[cols], load_results(tmp_path)[cols])


def test_different_config_refused_unless_force(tmp_path):
    run(small_study(), tmp_path)
    with pytest.raises(ConfigError, match="holds a different study"):
        run(small_study(seed=4), tmp_path)
    summary = run(small_study(seed=4), tmp_path, force=True)
    assert summary.skipped == 0
    assert (load_results(tmp_path).seed == 4).all()


def test_failed_batch_is_recorded_and_run_goes_on(tmp_path):
    study = small_study(methods=("t-within", "t-boom"), grid={"n_regions": [3, 4]})
    summary = run(study, tmp_path)
    failed = {(f["method"], f["condition"]["n_regions"]) for f in summary.failures}
    assert failed == {("t-boom", 4)}
    assert len(summary.failures) == 3  # 25 replications in blocks of 10
    assert any("FAILED" in line and "boom at R=4" in line for line in summary.lines())
    df = load_results(tmp_path)
    assert set(df[df.n_regions == 4].method) == {"t-within"}
    assert len(store.read_errors(tmp_path)) == 3


def test_shards_merge_to_the_unsharded_run(tmp_path):
    run(small_study(), tmp_path / "all")
    for k in (1, 2, 3):
        run(small_study(), tmp_path / f"s{k}", shard=(k, 3))
    result = merge(tmp_path / "merged", [tmp_path / f"s{k}" for k in (1, 2, 3)])
    assert result.parts == len(plan(small_study()))
    assert not result.incomplete and result.warning() is None
    assert "incomplete" not in json.loads((tmp_path / "merged" / "manifest.json").read_text())
    cols = [c for c in load_results(tmp_path / "all").columns if c != "batch_seconds"]
    pd.testing.assert_frame_equal(
        load_results(tmp_path / "all")[cols], load_results(tmp_path / "merged")[cols]
    )
    with pytest.raises(ConfigError, match="same shard appears twice"):
        merge(tmp_path / "m2", [tmp_path / "s1", tmp_path / "s1"])
    run(small_study(seed=9), tmp_path / "other", shard=(2, 3))
    with pytest.raises(ConfigError, match="different study"):
        merge(tmp_path / "m3", [tmp_path / "s1", tmp_path / "other"])
    with pytest.raises(ConfigError, match="already holds results"):
        merge(tmp_path / "merged", [tmp_path / "s1"])


def test_overlapping_shards_refused(tmp_path):
    run(small_study(), tmp_path / "a", shard=(1, 2))
    run(small_study(), tmp_path / "b", shard=(1, 3))
    with pytest.raises(ConfigError, match="shards overlap"):
        merge(tmp_path / "m", [tmp_path / "a", tmp_path / "b"])


def test_parse_shard_from_option_and_slurm():
    assert parse_shard(None, {}) == (1, 1)
    assert parse_shard("2/5", {}) == (2, 5)
    env = {"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "0"}
    assert parse_shard(None, env) == (1, 4)
    assert parse_shard("3/4", env) == (3, 4)
    for bad in ("0/3", "4/3", "a/b", "3"):
        with pytest.raises(ConfigError):
            parse_shard(bad, {})


def test_parse_shard_from_aws_batch_and_kubernetes():
    """AWS Batch and Kubernetes Indexed Jobs count from 0; --shard still wins."""
    aws = {"AWS_BATCH_JOB_ARRAY_INDEX": "0", "AWS_BATCH_JOB_ARRAY_SIZE": "8"}
    assert parse_shard(None, aws) == (1, 8)
    assert parse_shard(None, {**aws, "AWS_BATCH_JOB_ARRAY_INDEX": "7"}) == (8, 8)
    assert parse_shard("2/3", aws) == (2, 3)
    k8s = {"JOB_COMPLETION_INDEX": "3", "MLMBIAS_SHARD_COUNT": "4"}
    assert parse_shard(None, k8s) == (4, 4)
    with pytest.raises(ConfigError, match="MLMBIAS_SHARD_COUNT is not"):
        parse_shard(None, {"JOB_COMPLETION_INDEX": "3"})
    with pytest.raises(ConfigError, match="gives shard 9/8"):
        parse_shard(None, {**aws, "AWS_BATCH_JOB_ARRAY_INDEX": "8"})
    with pytest.raises(ConfigError, match="JOB_COMPLETION_INDEX must be an integer"):
        parse_shard(None, {**k8s, "JOB_COMPLETION_INDEX": "x"})


def test_two_cpu_devices_give_the_same_numbers(tmp_path):
    config = tmp_path / "study.toml"
    config.write_text(
        'seed = 2\nreplications = 15\nmethods = ["t-within", "t-keyed"]\n'
        "[grid]\nn_regions = [3, 5]\n[bayes]\nbatch_size = 5\nreplications = 7\n"
    )
    script = (
        "import sys, jax, _fake_methods; _fake_methods.register_all()\n"
        "print(len(jax.devices()), file=sys.stderr)\n"
        "from mlmbias.cli import main; sys.exit(main(sys.argv[1:]))\n"
    )
    outs = {}
    for n in (1, 2):
        env = {
            **os.environ,
            "PYTHONPATH": str(TESTS),
            # the suite's flags (its optimisation level) and n host devices
            "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} "
            f"--xla_force_host_platform_device_count={n}",
        }
        out = tmp_path / f"dev{n}"
        proc = subprocess.run(
            [sys.executable, "-c", script, "run", str(config), "--out", str(out), "--quiet"],
            env=env,
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr.splitlines()[0] == str(n)
        assert json.loads((out / "manifest.json").read_text())["devices"].__len__() == n
        outs[n] = load_results(out)
    cols = [c for c in outs[1].columns if c != "batch_seconds"]
    pd.testing.assert_frame_equal(outs[1][cols], outs[2][cols])


def test_run_cli_bad_input(tmp_path, capsys):
    def code(args):
        try:
            return main(args)
        except SystemExit as exc:
            return exc.code

    blocker = tmp_path / "file"
    blocker.write_text("x")
    good = tmp_path / "good.toml"
    good.write_text('replications = 2\nmethods = ["t-within"]\n')
    bad = tmp_path / "bad.toml"
    bad.write_text("replications = = 2")
    cases = [
        ["run", str(tmp_path / "absent.toml"), "--out", str(tmp_path / "o")],
        ["run", str(bad), "--out", str(tmp_path / "o")],
        ["run", str(good), "--out", str(blocker / "sub")],
        ["run", str(good), "--out", str(tmp_path / "o"), "--bogus"],
        ["run", str(good), "--out", str(tmp_path / "o"), "--shard", "5/2"],
        ["run", str(good), "--out", str(tmp_path / "o"), "--set", "level=2"],
        ["run", str(good)],
        ["merge", str(tmp_path / "m"), str(tmp_path / "nothing")],
        ["frobnicate"],
    ]
    for args in cases:
        assert code(args) == 2, args
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err, (args, err)


def test_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for sub in ("simulate", "fit", "run", "report", "merge"):
        assert sub in text
