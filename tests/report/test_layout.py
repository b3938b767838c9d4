"""The report's layout follows the grid: any factors, any scenario, no traceback."""

from mlmbias import Study, run_study
from mlmbias.report.document import write_report
from mlmbias.report.layout import layout, title


def test_layout_puts_the_longest_factor_on_x_and_drops_single_levels():
    lay = layout({"grid": {"confounding": [2.0, 0.0], "n_regions": [10, 50], "noise_sd": [1.0]}})
    assert lay.x == "n_regions" and lay.panels == ("confounding",)  # tie: n_regions
    assert [title(c) for c in lay.combos()] == ["confounding = 2", "confounding = 0"]
    lay = layout({"grid": {"confounding": [0.0, 2.0], "months_mean": [2.0, 5.0, 10.0]}})
    assert lay.x == "months_mean" and lay.panels == ("confounding",)
    three = {"n_regions": [5, 10], "confounding": [0.0, 2.0], "months_mean": [2.0, 4.0, 8.0]}
    lay = layout({"grid": three})  # three multi-level factors: the report adds a nested-loop plot
    assert lay.x == "months_mean" and lay.panels == ("n_regions", "confounding")
    assert len(list(lay.combos())) == 4
    lay = layout({"grid": {}})
    assert lay.x is None and list(lay.combos()) == [{}]


# A study over months_mean and confounding (n_regions fixed), which used to stop
# with pandas' "Index contains duplicate entries": tests/report/test_follows_study.py.


def test_report_on_a_single_contextual_condition(tmp_path):
    study = Study(
        seed=3,
        replications=20,
        methods=["mundlak-reml", "fe"],
        dgp={"scenario": "contextual", "n_regions": 12, "contextual": 0.5},
    )
    run_study(study, tmp_path, quiet=True)
    paths = write_report(tmp_path, figures=tmp_path / "fig")
    text = paths.report.read_text()
    assert "Scenario `contextual`" in text and "0.5 xbar1_j" in text
    assert "contextual of x1 = 0.5" in text
    assert "| mundlak-reml (x1) |" in text  # one row per method and term
    assert "drawn for the seed scenario only" in text
