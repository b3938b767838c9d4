import _fake_methods
import numpy as np
import pandas as pd
import pytest

from mlmbias.errors import ConfigError
from mlmbias.registry import unregister
from mlmbias.report.document import write_report
from mlmbias.runner import run_study
from mlmbias.study import Study


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory):
    _fake_methods.register_all()
    out = tmp_path_factory.mktemp("study")
    study = Study(
        seed=1,
        replications=60,
        methods=("t-within", "t-keyed"),
        grid={"n_regions": [5, 10], "confounding": [2.0, 0.0]},
        bayes={"replications": 20, "batch_size": 10},
        name="tiny",
    )
    run_study(study, out, quiet=True)
    yield out
    for spec in _fake_methods.SPECS:
        unregister(spec.name)


def test_report_files(study_dir, tmp_path):
    paths = write_report(study_dir, figures=tmp_path / "figs")
    summary = pd.read_csv(paths.summary)
    assert list(summary.columns[-5:]) == ["method", "estimand", "stat", "est", "mcse"]
    assert {"n_regions", "confounding"} <= set(summary.columns)
    bias = summary[(summary.stat == "bias") & (summary.method == "t-within")]
    assert len(bias) == 4 and np.isfinite(bias.est).all() and (bias.mcse > 0).all()
    text = paths.report.read_text()
    for heading in ("Design (ADEMP)", "Bias of beta", "Coverage", "Convergence and failures"):
        assert heading in text
    assert "| t-within |" in text
    names = {p.name for p in paths.figures}
    assert {
        "01_data.png",
        "05_bias.png",
        "06_coverage.png",
        "07_width.png",
        "08_zip.png",
        "10_dag.png",
    } <= names
    for p in paths.figures:
        assert p.stat().st_size > 5000 and p.with_suffix(".svg").exists()
    # figures that need methods this study lacks are named as skipped, not silently absent
    assert "not drawn" in text


def test_converged_only_is_stated(study_dir, tmp_path):
    paths = write_report(study_dir, figures=tmp_path / "f", converged_only=True)
    assert "converged replications only" in paths.report.read_text()


def test_bad_report_input(tmp_path, study_dir):
    with pytest.raises(ConfigError, match="holds no study"):
        write_report(tmp_path)
    with pytest.raises(ConfigError, match="'alpha'"):
        write_report(study_dir, figures=tmp_path, alpha=1.5)


def test_report_cli(study_dir, tmp_path, capsys):
    from mlmbias.cli import main

    assert main(["report", str(tmp_path / "nothing"), "--figures", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds no study" in err
    code = main(["report", str(study_dir), "--figures", str(tmp_path / "figs"), "--no-pair-plot"])
    assert code == 0
    assert "report:" in capsys.readouterr().out
