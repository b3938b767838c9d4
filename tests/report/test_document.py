import shutil

import _fake_methods
import numpy as np
import pandas as pd
import pytest

from mlmbias import store
from mlmbias.errors import ConfigError
from mlmbias.registry import unregister
from mlmbias.report.document import sampler_section, write_report
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
    assert list(summary.columns[-6:]) == ["method", "estimand", "term", "stat", "est", "mcse"]
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
    assert paths.html == paths.report.with_suffix(".html")
    assert paths.html.read_text().count("<img ") == text.count("![")


def test_converged_only_is_stated(study_dir, tmp_path):
    paths = write_report(study_dir, figures=tmp_path / "f", converged_only=True)
    assert "converged replications only" in paths.report.read_text()


def test_sampler_error_section_only_when_the_summary_has_one(study_dir, tmp_path, monkeypatch):
    figs = tmp_path / "f"
    plain = write_report(study_dir, figures=figs).report.read_text()
    assert "Sampler error" not in plain
    load = store.load_results

    def with_sampler_error(folder):  # as [bayes] sampler_error = true gives t-keyed's rows
        r = load(folder)
        e = np.random.default_rng(0).normal(0.0, 0.05, len(r))
        r["sampler_error"] = np.where(r.method == "t-keyed", e, np.nan)
        return r

    monkeypatch.setattr(store, "load_results", with_sampler_error)
    paths = write_report(study_dir, figures=figs)
    text = paths.report.read_text()
    start = text.index("## Sampler error of the MCMC engines")
    section = text[start : text.index("## Intervals of single replications")]
    assert text.replace(section, "") == plain  # the rest of the report is unchanged
    assert "Mean sampler error of beta:" in section and "RMS sampler error of beta:" in section
    assert "| t-keyed |" in section and "t-within" not in section
    summary = pd.read_csv(paths.summary)
    rms = summary[summary.stat == "sampler_rmse"].iloc[0]
    assert f"| {rms.est:.3f} ({rms.mcse:.3f}) |" in section
    nan = summary.assign(est=np.where(summary.stat.str.startswith("sampler"), np.nan, summary.est))
    assert sampler_section(nan) == ""  # all NaN (the random-slope models): no section


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
    out = capsys.readouterr().out
    assert f"report:  {study_dir / 'report.md'}" in out
    assert f"html:    {study_dir / 'report.html'}" in out


def _code(args):
    from mlmbias.cli import main

    return main([str(a) for a in args])


def test_complete_study_has_no_warning_and_passes_strict(study_dir, tmp_path, capsys):
    capsys.readouterr()
    assert (
        _code(["report", study_dir, "--figures", tmp_path / "f", "--no-pair-plot", "--strict"]) == 0
    )
    assert capsys.readouterr().err == ""
    text = (study_dir / "report.md").read_text()
    assert "Incomplete study" not in text and "Failed batches: None." in text


def test_incomplete_study_is_flagged_and_strict_writes_nothing(study_dir, tmp_path, capsys):
    folder = tmp_path / "copy"
    shutil.copytree(study_dir, folder)
    for name in ("report.md", "summary.csv"):
        (folder / name).unlink(missing_ok=True)
    parts = store.part_files(folder)
    names = [store.part_name(folder, p) for p in parts[:2]]
    for p in parts[:2]:
        p.unlink()
    planned = len(parts)
    figs = tmp_path / "figs"
    capsys.readouterr()
    assert _code(["report", folder, "--figures", figs, "--no-pair-plot", "--strict"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("mlmbias report: error: ")
    assert f"2 of {planned} batches missing" in err and names[0] in err and "--strict" in err
    assert not (folder / "report.md").exists() and not (folder / "summary.csv").exists()
    assert not figs.exists()

    assert _code(["report", folder, "--figures", figs, "--no-pair-plot"]) == 0
    err = capsys.readouterr().err
    assert f"incomplete study: 2 of {planned} batches missing (2 never written)" in err
    assert names[0] in err and names[1] in err
    text = (folder / "report.md").read_text()
    head = text.split("## Design")[0]
    block = f"> **Incomplete study: 2 of {planned} batches missing**: `{names[0]} (never written)`"
    assert block in head and f"`{names[1]} (never written)`" in head
    assert text.index(block) < text.index("Produced by")


def test_merged_report_names_failed_batches_and_missing_shards(study_dir, tmp_path, capsys):
    from mlmbias.runner import merge

    study = Study(
        seed=2,
        replications=12,
        block=6,
        methods=("t-within", "t-boom"),
        grid={"n_regions": [3, 4]},
        name="boom",
    )
    for k in (1, 2):  # shard 2 holds every t-boom batch; two fail (R = 4)
        run_study(study, tmp_path / f"s{k}", quiet=True, shard=(k, 2))
    merge(tmp_path / "m", [tmp_path / "s1", tmp_path / "s2"])
    text = write_report(tmp_path / "m", figures=tmp_path / "f").report.read_text()
    assert "Failed batches: None." not in text
    assert text.count("RuntimeError: boom at R=4") == 2
    assert "> **Incomplete study: 2 of 8 batches missing**" in text
    merge(tmp_path / "m1", [tmp_path / "s1"])
    text = write_report(tmp_path / "m1", figures=tmp_path / "f").report.read_text()
    assert "> **Incomplete study: 4 of 8 batches missing**" in text
    assert "the merge that made this folder lacked shards" in text
    assert "shards" in capsys.readouterr().err
