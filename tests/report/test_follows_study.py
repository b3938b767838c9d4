"""The figures follow the study: a grid over months_mean and confounding (n_regions
fixed) and a three-factor grid give figures labelled from the grid and the
scenario, every method of the study in the legends (a user-registered one too),
and the nested-loop plot for the three factors; report.html opens in a real
headless browser (chromium) with every image decoded and no console error.

The matplotlib figures are checked as drawn: ``figures._save`` is wrapped to
record each figure's titles, axis labels, legend entries and texts.
"""

import json
import os
import re
import shutil
import subprocess

import _fake_methods
import matplotlib.pyplot as plt
import pandas as pd
import pytest

from mlmbias import Study, run_study
from mlmbias.registry import unregister
from mlmbias.report import figures
from mlmbias.report.document import write_report


def _describe(fig) -> dict:
    axes = []
    for ax in fig.axes:
        if not ax.axison:
            continue
        legend = ax.get_legend()
        axes.append(
            {
                "title": ax.get_title(),
                "xlabel": ax.get_xlabel(),
                "ylabel": ax.get_ylabel(),
                "legend": [t.get_text() for t in legend.get_texts()] if legend else [],
                "texts": [t.get_text() for t in ax.texts],
                "xticks": [t.get_text() for t in ax.get_xticklabels()],
            }
        )
    title = fig._suptitle.get_text() if fig._suptitle is not None else ""
    texts = [t.get_text() for ax in fig.axes for t in [ax.title, *ax.texts]]
    return {"suptitle": title, "axes": axes, "texts": texts}


def _report(study: Study, folder):
    """Run ``study`` into ``folder`` and report it; (paths, {figure name: description})."""
    run_study(study, folder, quiet=True)
    seen = {}

    def save(fig, where, name):  # a small PNG only: SVGs and 130 dpi take most of the time
        seen[name] = _describe(fig)
        where.mkdir(parents=True, exist_ok=True)
        fig.savefig(where / f"{name}.png", dpi=40)
        plt.close(fig)
        return where / f"{name}.png"

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(figures, "_save", save)
        paths = write_report(folder, figures=folder / "figures")
    return paths, seen


def _legend(fig: dict) -> list[str]:
    return [t for ax in fig["axes"] for t in ax["legend"]]


@pytest.fixture(scope="module")
def months(tmp_path_factory):
    _fake_methods.register_all()  # t-within: a user method without a family
    try:
        study = Study(
            seed=3,
            replications=10,
            methods=["fe", "t-within", "re-reml", "hausman"],
            dgp={"n_regions": 8},
            grid={"months_mean": [2.0, 5.0, 10.0], "confounding": [0.0, 2.0]},
            name="months",
        )
        yield _report(study, tmp_path_factory.mktemp("months"))
    finally:
        for spec in _fake_methods.SPECS:
            unregister(spec.name)


@pytest.fixture(scope="module")
def three(tmp_path_factory):
    study = Study(
        seed=4,
        replications=8,
        methods=["re-reml", "fe"],
        grid={"n_regions": [5, 10], "confounding": [0.0, 2.0], "months_mean": [2.0, 4.0, 8.0]},
        name="three",
    )
    return _report(study, tmp_path_factory.mktemp("three"))


def test_months_grid_figures_are_labelled_from_the_grid(months):
    paths, seen = months
    for name in ("05_bias", "06_coverage", "07_width", "09_rejection"):
        fig = seen[name]
        assert [ax["title"] for ax in fig["axes"]] == ["confounding = 0", "confounding = 2"], name
        assert {ax["xlabel"] for ax in fig["axes"]} == {"months_mean"}, name
        assert all(ax["xticks"] for ax in fig["axes"])
    bias = seen["05_bias"]
    assert bias["axes"][0]["ylabel"] == "bias of beta (estimate - truth)"
    assert "true beta of ad_spend = 1.5" in bias["suptitle"]
    # every method of the study, in family order; the user's method too
    assert _legend(bias) == ["fe", "re-reml", "t-within"]
    assert _legend(seen["06_coverage"]) == [
        "nominal 94% +-2 MCSE",
        "fe",
        "re-reml",
        "t-within",
    ]
    assert _legend(seen["09_rejection"]) == ["alpha = 0.05", "hausman"]
    assert "flag" not in seen["09_rejection"]["suptitle"]  # no Bayesian method: no flag
    # single-condition figures say which condition they show
    assert "confounding = 2" in seen["02_intervals_random_intercept"]["axes"][0]["title"]
    assert {ax["xlabel"] for ax in seen["02_intervals_random_intercept"]["axes"]} == {"months_mean"}
    assert "months_mean = 5, confounding = 2" in seen["08_zip"]["suptitle"]
    # the DAG shows the grid's values of a knob the grid varies
    dag = " ".join(seen["10_dag"]["texts"])
    assert "confounding\nin {0, 2}" in dag and "beta = 1.5" in dag
    assert "11_nested_loop" not in seen  # two factors: panels suffice
    everything = json.dumps(seen)
    assert "n_regions" not in everything and "R = " not in everything
    assert "log10" not in everything
    text = paths.report.read_text()
    # this grid used to stop with pandas' "Index contains duplicate entries"
    assert "**confounding = 0**" in text and "**confounding = 2**" in text
    assert "| method | 2.0 | 5.0 | 10.0 |" in text
    assert set(pd.read_csv(paths.summary).months_mean) == {2.0, 5.0, 10.0}
    assert {p.name for p in paths.figures} >= {"05_bias.png", "06_coverage.png", "07_width.png"}
    assert "Rejection rates against months_mean" in text
    assert "Random-effects intervals by months_mean" in text


def test_three_factor_grid_has_panels_and_a_nested_loop_plot(three):
    paths, seen = three
    bias = seen["05_bias"]
    titles = [ax["title"] for ax in bias["axes"]]
    assert len(titles) == 4 and all("n_regions = " in t and "confounding = " in t for t in titles)
    assert {ax["xlabel"] for ax in bias["axes"]} == {"months_mean"}
    nlp = seen["11_nested_loop"]
    assert [ax["ylabel"] for ax in nlp["axes"]] == ["bias of beta", "coverage of 94% intervals"]
    xlabel = nlp["axes"][-1]["xlabel"]
    assert xlabel.startswith("condition, ordered by ") and xlabel.endswith("then months_mean")
    assert {"n_regions", "confounding"} <= set(re.findall(r"\w+", xlabel))
    assert nlp["axes"][-1]["xticks"] == [str(i) for i in range(1, 13)]
    for ax in nlp["axes"]:
        assert ax["legend"] == ["fe", "re-reml"]
        assert {"n_regions: 5, 10", "confounding: 0, 2", "months_mean: 2, 4, 8"} == set(ax["texts"])
    assert "over 12 conditions" in nlp["suptitle"]
    assert "Nested-loop plot" in paths.report.read_text()
    assert "](figures/11_nested_loop.png)" in paths.report.read_text()


def test_html_is_self_contained(three):
    paths, _ = three
    page = paths.html.read_text()
    assert paths.html.name == "report.html" and paths.html.parent == paths.report.parent
    n_images = paths.report.read_text().count("![")
    assert page.count('<img src="data:image/png;base64,') == n_images > 5
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", page)
    assert "<link" not in page and page.count('<table class="sortable">') >= 5


CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)

# Injected into a copy of the page: errors are recorded from the first script on;
# after load every image must be decoded, a header click sorts without error.
_HEAD = """<script>
window.__errors = [];
window.addEventListener("error", function (e) {
  window.__errors.push(String(e.message || (e.target && e.target.src) || e));
}, true);
var __err = console.error;
console.error = function () {
  window.__errors.push(Array.prototype.join.call(arguments, " "));
  __err.apply(console, arguments);
};
</script>"""
_TAIL = """<script>
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var bad = imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); });
  var th = document.querySelector("table.sortable thead th:nth-child(2)");
  var before = th.closest("table").tBodies[0].rows[0].cells[0].textContent;
  th.click(); th.click();
  var p = document.createElement("pre");
  p.id = "probe";
  p.textContent = "PROBE " + JSON.stringify({images: imgs.length, bad: bad.length,
    sorted: th.className, errors: window.__errors, first: before}) + " PROBE";
  document.body.appendChild(p);
});
</script>"""


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium not installed (apt-get install chromium; .ci/run installs it as root)",
)
def test_html_opens_in_a_headless_browser(three, tmp_path):
    paths, _ = three
    page = paths.html.read_text()
    assert page.count("<head>") == 1 and page.count("</body>") == 1
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("<head>", "<head>" + _HEAD).replace("</body>", _TAIL + "</body>"))
    profile = tmp_path / "profile"
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=20000",
        "--dump-dom",
        probe.as_uri(),
    ]
    env = {**os.environ, "HOME": str(tmp_path)}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
    found = re.search(r'<pre id="probe">PROBE (.*?) PROBE</pre>', done.stdout)
    assert found, f"no probe in the page (rc {done.returncode}): {done.stderr[-2000:]}"
    result = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert result["images"] == page.count("<img ") > 5
    assert result["bad"] == 0, result
    assert result["errors"] == [], result
    assert result["sorted"] == "desc"  # two clicks: ascending, then descending
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line]
    assert console == [], console
