import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from mlmbias import DGP, simulate_condition, to_frame
from mlmbias.cli import main


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
        bad.stderr.strip() == "mlmbias simulate: error: DGP field 'n_regions' must be >= 2, got 1"
    )
    helped = subprocess.run(
        [sys.executable, "-m", "mlmbias", "--help"], capture_output=True, text=True
    )
    assert helped.returncode == 0
    for command in ("simulate", "fit"):
        assert command in helped.stdout
