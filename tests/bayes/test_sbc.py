"""Simulation-based calibration of bayes-re and bayes-mundlak (slow: `make test-slow`).

1000 trials per model, parameters from the prior, data from the model on the
seed's ad-spend design (R = 10), ranks among L = 99 thinned draws of 4 chains x
1000 draws after 500 warm-up iterations (NUTS), or of the chees engine's 16 chains
x 250 draws at its defaults, at R = 10 and R = 200. Each parameter's rank histogram (20
bins) is tested for uniformity by Pearson's chi-square; 9 tests at 0.01 / 9
each (Bonferroni), so a calibrated sampler fails with probability below 0.01
(per test: the NUTS one and each chees one).
The grid engine (mlmbias.bayes.grid) is checked the same way at R = 10 and
R = 200 regions (4 x 1000 draws, no warm-up; ranks among the same L = 99
thinned draws), 9 tests per R at 0.01 / 9 each.
The figure goes to pytest's tmp_path, and also to the file that
``MLMBIAS_SBC_FIGURE`` names (``make test-slow`` sets it to
figures/sbc_rank_histograms.png, the README's figure); a test never writes into
figures/ by itself.
"""

import os
import shutil

import pytest

from mlmbias.bayes.options import settings_from_options
from mlmbias.bayes.sbc import chi_square, plot_ranks, run_sbc
from mlmbias.scenarios import Seed

TRIALS = 1000
FAMILY_RATE = 0.01
SETTINGS = {"warmup": 500, "draws": 1000, "chains": 4, "batch_size": 16}
CHEES = {"engine": "chees"}  # its defaults: 16 chains x (300 + 250)


@pytest.mark.slow
def test_sbc_ranks_uniform(tmp_path):
    settings = settings_from_options(SETTINGS)
    results = [run_sbc(m, TRIALS, settings, seed=s) for m, s in (("re", 1), ("mundlak", 2))]
    figure = tmp_path / "sbc_rank_histograms.png"
    plot_ranks(results, figure)
    assert figure.stat().st_size > 0
    if os.environ.get("MLMBIAS_SBC_FIGURE"):
        shutil.copyfile(figure, os.environ["MLMBIAS_SBC_FIGURE"])
    _assert_calibrated(results)


@pytest.mark.slow
@pytest.mark.parametrize("regions", [10, 200])
def test_sbc_ranks_uniform_chees(tmp_path, regions):
    settings = settings_from_options(CHEES)
    dgp = Seed(n_regions=regions)
    results = [
        run_sbc(m, TRIALS, settings, seed=s, dgp=dgp) for m, s in (("re", 1), ("mundlak", 2))
    ]
    plot_ranks(results, tmp_path / f"sbc_chees_R{regions}.png")
    _assert_calibrated(results)


def _assert_calibrated(results):
    pvalues = {(r.model, k): p for r in results for k, p in chi_square(r).items()}
    print("SBC chi-square p-values:", {f"{m}:{k}": round(p, 3) for (m, k), p in pvalues.items()})
    level = FAMILY_RATE / len(pvalues)
    bad = {k: p for k, p in pvalues.items() if p < level}
    assert not bad, f"rank histograms not uniform at {level:.4f}: {bad}"
    for r in results:
        assert r.divergent.mean() < 0.05, (r.model, r.divergent.mean())


@pytest.mark.slow
@pytest.mark.parametrize("n_regions", [10, 200])
def test_sbc_ranks_uniform_grid(n_regions):
    settings = settings_from_options({"engine": "grid", "draws": 1000, "chains": 4})
    dgp = Seed(n_regions=n_regions)
    results = [
        run_sbc(m, TRIALS, settings, seed=s, dgp=dgp) for m, s in (("re", 3), ("mundlak", 4))
    ]
    pvalues = {(r.model, k): p for r in results for k, p in chi_square(r).items()}
    print(
        f"grid SBC chi-square p-values, R = {n_regions}:",
        {f"{m}:{k}": round(p, 3) for (m, k), p in pvalues.items()},
    )
    level = FAMILY_RATE / len(pvalues)
    bad = {k: p for k, p in pvalues.items() if p < level}
    assert not bad, f"rank histograms not uniform at {level:.4f}: {bad}"
