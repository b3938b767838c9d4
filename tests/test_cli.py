import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlmbias import DGP, ConfigError, Study, flags, simulate_condition, to_frame
from mlmbias.cli import main
from mlmbias.fitting import fit, fit_panel
from mlmbias.report.document import write_report
from mlmbias.runner import parse_shard, run_study


def test_simulate_writes_the_replication(tmp_path):
    out = tmp_path / "panel.csv"
    assert (
        main(
            [
                "simulate",
                "--regions",
                "6",
                "--seed",
                "9",
                "--confounding",
                "0.5",
                "--set",
                "noise_sd=3",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    got = pd.read_csv(out)
    expected = to_frame(simulate_condition(DGP(n_regions=6, confounding=0.5, noise_sd=3), 9, [0]))
    assert list(got.columns) == ["region", "month", "ad_spend", "profit"]
    np.testing.assert_allclose(got.profit, expected.profit, rtol=1e-12)


def run_cli(args):
    """main()'s exit code, whether it returns it or argparse exits."""
    try:
        return main(args)
    except SystemExit as exc:
        return exc.code


@pytest.mark.parametrize(
    "args",
    [
        ["simulate", "--regions", "1", "--seed", "0", "--out", "{tmp}/x.csv"],
        [
            "simulate",
            "--regions",
            "5",
            "--seed",
            "0",
            "--set",
            "noise_sd=-2",
            "--out",
            "{tmp}/x.csv",
        ],
        [
            "simulate",
            "--regions",
            "5",
            "--seed",
            "0",
            "--set",
            "months_mean=0",
            "--out",
            "{tmp}/x.csv",
        ],
        [
            "simulate",
            "--regions",
            "5",
            "--seed",
            "0",
            "--set",
            "months_min=0",
            "--out",
            "{tmp}/x.csv",
        ],
        ["simulate", "--regions", "5", "--seed", "0", "--set", "nope=1", "--out", "{tmp}/x.csv"],
        ["simulate", "--regions", "5", "--seed", "0", "--set", "novalue", "--out", "{tmp}/x.csv"],
        ["simulate", "--regions", "5", "--seed", "0", "--out", "{tmp}/no/such/dir/x.csv"],
        ["simulate", "--regions", "five", "--seed", "0", "--out", "{tmp}/x.csv"],
        ["simulate", "--seed", "0"],
        ["no-such-command"],
        ["fit", "{tmp}/absent.csv"],
        ["fit", "{tmp}/panel.csv", "--methods", "bayes-re", "--set", "bogus=1"],
        ["fit", "{tmp}/panel.csv", "--methods", "bayes-re", "--set", "chains=0"],
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args):
    to_frame(simulate_condition(DGP(n_regions=3), 0, [0])).to_csv(tmp_path / "panel.csv")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    assert run_cli(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error" in err and "Traceback" not in err


def test_console_script_exit_code_and_help(tmp_path):
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlmbias",
            "simulate",
            "--regions",
            "1",
            "--seed",
            "0",
            "--out",
            str(tmp_path / "x.csv"),
        ],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2
    assert (
        bad.stderr.strip()
        == "mlmbias simulate: error: scenario 'seed': field 'n_regions' must be >= 2, got 1"
    )
    helped = subprocess.run(
        [sys.executable, "-m", "mlmbias", "--help"], capture_output=True, text=True
    )
    assert helped.returncode == 0
    for command in ("simulate", "fit"):
        assert command in helped.stdout


# --- integrity: bad input that used to run silently or end in a traceback ----------

OK_STUDY = 'methods = ["pooled"]\nreplications = 3\n[grid]\nn_regions = [3]\n'


def _inputs(tmp: Path) -> None:
    """The files the bad-input cases below point at."""
    to_frame(simulate_condition(DGP(n_regions=3), 0, [0])).to_csv(tmp / "panel.csv", index=False)
    (tmp / "empty.csv").write_text("")
    (tmp / "header.csv").write_text("region,ad_spend,profit\n")
    (tmp / "latin1.csv").write_bytes("region,ad_spend,profit\nrégion,1,2\n".encode("latin-1"))
    (tmp / "ok.toml").write_text(OK_STUDY)
    (tmp / "dup.toml").write_text('methods = ["pooled"]\n[grid]\nn_regions = [10, 10]\n')
    (tmp / "zero.toml").write_text('methods = ["pooled"]\n[grid]\nconfounding = [0.0, -0.0]\n')
    (tmp / "empty.toml").write_text("")
    (tmp / "nomethods.toml").write_text("methods = []\n")
    (tmp / "latin1.toml").write_bytes('name = "région"\nmethods = ["fe"]\n'.encode("latin-1"))
    (tmp / "afile").write_text("not a folder")


SIM = ["simulate", "--regions", "3", "--out", "{tmp}/x.csv"]


@pytest.mark.parametrize(
    "args, message",
    [
        # 2: seeds and replication indices are uint32 words of the key
        ([*SIM, "--seed", "4294967297"], "--seed must be an integer with 0 <= seed < 2**32"),
        ([*SIM, "--seed", "-1"], "--seed must be an integer with 0 <= seed < 2**32"),
        ([*SIM, "--seed", "0", "--rep", "-1"], "--rep must be an integer with 0 <= rep"),
        ([*SIM, "--seed", "0", "--rep", "4294967296"], "--rep must be an integer with 0 <= rep"),
        (
            ["fit", "{tmp}/panel.csv", "--seed", "4294967296"],
            "--seed must be an integer with 0 <= seed < 2**32",
        ),
        (
            ["fit", "{tmp}/panel.csv", "--seed", "-3"],
            "--seed must be an integer with 0 <= seed < 2**32",
        ),
        (["run", "{tmp}/ok.toml", "--out", "{tmp}/r", "--set", "seed=4294967297"], "2**32"),
        # 1: a grid value listed twice would write one condition over another
        (["run", "{tmp}/dup.toml", "--out", "{tmp}/r"], "'n_regions' lists the value 10 twice"),
        (["run", "{tmp}/zero.toml", "--out", "{tmp}/r"], "'confounding' lists 0.0 and -0.0"),
        (
            ["run", "{tmp}/ok.toml", "--out", "{tmp}/r", "--set", "grid.n_regions=[4, 4.0]"],
            "lists 4 and 4.0",
        ),
        # 3: a study with no methods runs nothing
        (["run", "{tmp}/empty.toml", "--out", "{tmp}/r"], "no methods: list at least one of"),
        (["run", "{tmp}/nomethods.toml", "--out", "{tmp}/r"], "no methods"),
        (["run", "{tmp}/ok.toml", "--out", "{tmp}/r", "--set", "methods=[]"], "no methods"),
        # 4: an option value that names no method
        (["fit", "{tmp}/panel.csv", "--methods", ","], "--methods ',' names no method"),
        (["fit", "{tmp}/panel.csv", "--methods", ""], "names no method"),
        (["fit", "{tmp}/panel.csv", "--methods", " , ,"], "names no method"),
        (["fit", "{tmp}/panel.csv", "--methods", "fe,fe"], "names 'fe' twice"),
        # 7: non-UTF-8 files
        (["run", "{tmp}/latin1.toml", "--out", "{tmp}/r"], "is not UTF-8 text"),
        (["fit", "{tmp}/latin1.csv"], "not UTF-8 text"),
        # 9: other bad input
        (["fit", "{tmp}/panel.csv", "--level", "2"], "'level' must lie in the open interval"),
        (["fit", "{tmp}/panel.csv", "--set", "draws=100"], "setting of the Bayesian methods"),
        (
            ["fit", "{tmp}/panel.csv", "--methods", "fe", "--set", "draws=100"],
            "none of fe is one",
        ),
        (["fit", "{tmp}/panel.csv", "--level", "nan"], "'level' must lie in the open interval"),
        (["fit", "{tmp}/empty.csv"], "cannot read"),
        (["fit", "{tmp}/header.csv"], "the panel has no rows"),
        (["fit", "{tmp}"], "cannot read"),
        ([*SIM, "--seed", "0", "--set", "n_regions=7"], "--set n_regions=... repeats --regions"),
        (
            [*SIM, "--seed", "0", "--confounding", "1", "--set", "confounding=2"],
            "repeats --confounding",
        ),
        (["run", "{tmp}/ok.toml", "--out", "{tmp}/r", "--set", "level=abc"], "'level' must"),
        (["run", "{tmp}/ok.toml", "--out", "{tmp}/r", "--set", "name=[1]"], "'name' must be"),
        (["run", "{tmp}/ok.toml", "--out", "{tmp}/r", "--shard", "3/2"], "1 <= K <= N"),
        (["run", "{tmp}/ok.toml", "--out", "{tmp}/r", "--shard", "a/b"], "K/N"),
        (["run", "{tmp}", "--out", "{tmp}/r"], "cannot read study file"),
        (["report", "{tmp}/no-such-study"], "holds no study"),
    ],
)
def test_bad_input_names_the_problem(tmp_path, capsys, args, message):
    _inputs(tmp_path)
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    assert run_cli(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"mlmbias {args[0]}: error: ") and message in err, err
    assert not (tmp_path / "r").exists()  # refused before any work


@pytest.mark.parametrize(
    "environ, message",
    [
        ({"SLURM_ARRAY_TASK_ID": "abc", "SLURM_ARRAY_TASK_COUNT": "4"}, "SLURM_ARRAY_TASK_ID"),
        ({"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "x"}, "SLURM_ARRAY_TASK_COUNT"),
        (
            {"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "2", "SLURM_ARRAY_TASK_MIN": ""},
            "SLURM_ARRAY_TASK_MIN must be an integer",
        ),
        (
            {
                "SLURM_ARRAY_TASK_ID": "8",
                "SLURM_ARRAY_TASK_COUNT": "2",
                "SLURM_ARRAY_TASK_MIN": "0",
            },
            "gives shard 9/2, outside 1 <= K <= N",
        ),
    ],
)
def test_bad_slurm_environment(tmp_path, capsys, monkeypatch, environ, message):
    with pytest.raises(ConfigError, match=message):
        parse_shard(None, environ)
    _inputs(tmp_path)
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    assert run_cli(["run", str(tmp_path / "ok.toml"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message.split()[0] in err and "Traceback" not in err


def test_slurm_environment_gives_the_shard():
    env = {"SLURM_ARRAY_TASK_ID": "8", "SLURM_ARRAY_TASK_COUNT": "8", "SLURM_ARRAY_TASK_MIN": "1"}
    assert parse_shard(None, env) == (8, 8)
    assert parse_shard("2/3", env) == (2, 3)
    assert parse_shard(None, {}) == (1, 1)


# --- fit on degenerate data: flag names and reasons, no df of -1 ------------------


def _degenerate(tmp_path: Path, kind: str) -> Path:
    if kind == "constant_x":
        frame = pd.DataFrame(
            {"region": [1, 1, 2, 2, 3, 3], "ad_spend": 1.0, "profit": [2, 3, 5, 4, 1, 8]}
        )
    else:  # one observation per group
        frame = pd.DataFrame(
            {"region": [1, 2, 3, 4], "ad_spend": [1, 2, 3, 5], "profit": [2, 3, 5, 4]}
        )
    path = tmp_path / f"{kind}.csv"
    frame.to_csv(path, index=False)
    return path


def test_fit_names_flags_and_says_why(tmp_path, capsys):
    path = _degenerate(tmp_path, "singletons")
    assert main(["fit", str(path), "--methods", "pooled,fe,fe-cluster"]) == 0
    out = capsys.readouterr().out
    table, _, notes = out.partition("\n\n")
    rows = table.splitlines()
    header = rows[0].split()
    assert header[-1] == "flag_names" and "flag" not in header
    fe = dict(zip(header, rows[2].split(), strict=True))
    assert fe["method"] == "fe" and fe["df"] == "NaN"  # not -1
    assert fe["flag_names"] == "singleton_group,no_within_variation,nonfinite"
    assert dict(zip(header, rows[1].split(), strict=True))["flag_names"] == "-"  # pooled: none
    lines = notes.splitlines()
    assert "singleton_group: some group has a single observation" in lines[0]
    assert lines[1].startswith("no_within_variation: x does not vary within any group")
    assert lines[2].startswith("nonfinite: ")
    assert lines[3].startswith("df: the residual degrees of freedom are not positive for ")
    assert "fe (-1) and fe-cluster (-1)" in lines[3] and "N - G - 1 = -1 <= 0" in lines[3]
    assert " -1 " not in table


def test_fit_json_keeps_flag_and_adds_names(tmp_path, capsys):
    path = _degenerate(tmp_path, "constant_x")
    assert main(["fit", str(path), "--methods", "fe,re-fgls", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    fe = records[0]
    assert fe["flag"] == flags.NO_WITHIN_VARIATION | flags.NONFINITE
    assert fe["flag_names"] == ["no_within_variation", "nonfinite"]
    assert all(isinstance(r["flag_names"], list) for r in records)


def test_fit_api_flag_names_nonpositive_df_and_methods():
    frame = pd.DataFrame({"region": [1, 2, 3, 4], "ad_spend": [1, 2, 3, 5], "profit": [2, 3, 5, 4]})
    result = fit_panel(frame, "region", "ad_spend", "profit", methods=["fe", "pooled"])
    table = result.table
    assert (result.n_obs, result.n_groups) == (4, 4)
    fe = table[table.method == "fe"].iloc[0]
    assert (
        np.isnan(fe.df)
        and fe.flag == 67
        and fe.flag_names == "singleton_group,no_within_variation,nonfinite"
    )
    assert table[table.method == "pooled"].iloc[0].flag_names == ""
    assert any(n.startswith("df: ") for n in result.notes)
    assert list(fit(frame, "region", "ad_spend", "profit", methods=["fe"]).columns) == list(
        fit_panel(frame, "region", "ad_spend", "profit", methods=["fe"]).table.columns
    )
    for bad, message in [
        ([], "no methods"),
        ("fe", "list of method names"),
        (["fe", "fe"], "twice"),
    ]:
        with pytest.raises(ConfigError, match=message):
            fit(frame, "region", "ad_spend", "profit", methods=bad)
    for seed in (-1, 2**32):
        with pytest.raises(ConfigError, match="seed must lie in"):
            fit(frame, "region", "ad_spend", "profit", methods=["fe"], seed=seed)


def test_flag_names_and_explanations():
    assert flags.names(0) == [] and flags.explain(0) == []
    assert flags.names(flags.NO_WITHIN_VARIATION | 512) == ["no_within_variation", "bit_512"]
    assert all(name in " ".join(flags.explain(511)) for name in flags.NAMES.values())
    assert set(flags.EXPLANATIONS) == set(flags.NAMES)


# --- report: output locations checked before anything is written ------------------


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("study") / "tiny"
    run_study(
        Study(methods=["pooled"], replications=3, grid={"n_regions": [3]}, name="tiny"),
        out,
        quiet=True,
    )
    return out


def _report_outputs(folder: Path) -> list[str]:
    names = ("summary.csv", "report.md", "report.html")
    return sorted(p.name for p in folder.iterdir() if p.name in names)


def test_report_default_figures_go_inside_the_study(study_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["report", str(study_dir), "--no-pair-plot"]) == 0
    out = capsys.readouterr().out
    assert f"in {study_dir / 'figures'}" in out
    assert (study_dir / "figures" / "10_dag.png").exists()
    assert not (tmp_path / "figures").exists()  # the working folder is left alone
    assert "](figures/10_dag.png)" in (study_dir / "report.md").read_text()
    assert write_report(study_dir).figures[0].parent == study_dir / "figures"


def test_report_figures_at_a_file(study_dir, tmp_path, capsys):
    clean = tmp_path / "study"
    shutil.copytree(
        study_dir, clean, ignore=shutil.ignore_patterns("summary.csv", "report.*", "figures")
    )
    target = tmp_path / "figures.png"
    target.write_text("an existing file")
    with pytest.raises(ConfigError, match="the figures folder .* is a file"):
        write_report(clean, figures=target)
    for figures in (target, target / "sub"):
        code = run_cli(["report", str(clean), "--figures", str(figures), "--no-pair-plot"])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "is a file" in err, err
    assert _report_outputs(clean) == []  # nothing half written
    assert target.read_text() == "an existing file"


def _deny_writes_under(monkeypatch, denied: Path) -> None:
    real = os.access

    def access(path, mode, *args, **kwargs):
        inside = Path(path) == denied or denied in Path(path).parents
        return False if inside and mode & os.W_OK else real(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "access", access)


@pytest.mark.parametrize("where", ["study", "figures"])
def test_report_read_only_location_simulated(study_dir, tmp_path, capsys, monkeypatch, where):
    # run as root here, chmod does not stop writes: os.access is made to say no
    clean = tmp_path / "study"
    shutil.copytree(
        study_dir, clean, ignore=shutil.ignore_patterns("summary.csv", "report.*", "figures")
    )
    figures = tmp_path / "figs"
    figures.mkdir()
    _deny_writes_under(monkeypatch, clean if where == "study" else figures)
    with pytest.raises(ConfigError, match="not writable"):
        write_report(clean, figures=figures)
    code = run_cli(["report", str(clean), "--figures", str(figures / "sub")])  # with pair plot
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "not writable" in err, err
    assert _report_outputs(clean) == [] and list(figures.iterdir()) == []


@pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0,
    reason="root writes into read-only folders; the simulated test above covers this case",
)
def test_report_read_only_folder_for_real(study_dir, tmp_path, capsys):
    clean = tmp_path / "study"
    shutil.copytree(
        study_dir, clean, ignore=shutil.ignore_patterns("summary.csv", "report.*", "figures")
    )
    figures = tmp_path / "figs"
    figures.mkdir()
    figures.chmod(0o555)
    try:
        code = run_cli(["report", str(clean), "--figures", str(figures), "--no-pair-plot"])
    finally:
        figures.chmod(0o755)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "not writable" in err, err
    assert _report_outputs(clean) == []


def test_report_os_error_while_writing_is_one_line(study_dir, tmp_path, capsys, monkeypatch):
    clean = tmp_path / "study"
    shutil.copytree(
        study_dir, clean, ignore=shutil.ignore_patterns("summary.csv", "report.*", "figures")
    )
    from mlmbias.report import figures as fig

    def full(folder, *args):
        raise OSError(errno.ENOSPC, "No space left on device", str(folder / "10_dag.png"))

    monkeypatch.setattr(fig, "dag_plot", full)
    with pytest.raises(ConfigError, match="No space left on device"):
        write_report(clean, figures=tmp_path / "f")
    code = run_cli(["report", str(clean), "--figures", str(tmp_path / "g"), "--no-pair-plot"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "No space left on device" in err, err


def test_os_error_is_one_line(tmp_path, capsys, monkeypatch):
    import mlmbias.runner

    def denied(out, shards):
        raise PermissionError(errno.EACCES, "Permission denied", str(out))

    monkeypatch.setattr(mlmbias.runner, "merge", denied)
    assert run_cli(["merge", str(tmp_path / "m"), str(tmp_path / "s1")]) == 2
    err = capsys.readouterr().err
    assert err == f"mlmbias merge: error: Permission denied: {tmp_path / 'm'}\n"


def test_multi_line_messages_are_joined(tmp_path, capsys):
    (tmp_path / "ragged.csv").write_text("region,ad_spend,profit\n1,2,3\n1,2,3,4,5\n")
    assert run_cli(["fit", str(tmp_path / "ragged.csv")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("mlmbias fit: error: cannot read"), err
