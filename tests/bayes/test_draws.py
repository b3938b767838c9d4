"""Batched posterior sampling (mlmbias.bayes.draws): the lockstep accounting of ``sample``."""

import numpy as np
import pytest

from mlmbias.bayes.draws import Draws, lockstep_steps, sample
from mlmbias.bayes.options import settings_from_options

from .conftest import SEED_DGP, SMALL, make_batch


def test_lockstep_steps_by_hand():
    warm = np.array([[1, 3], [3, 3]])  # (chains, warmup)
    kept = np.array([[7, 1, 2], [1, 1, 4]])  # (chains, draws)
    used, paid = np.asarray(lockstep_steps(warm, kept))
    assert used == pytest.approx((2 + 3) + (4 + 1 + 3))  # per-iteration means
    assert paid == 3 + 3 + 7 + 1 + 4  # per-iteration maxima
    one_chain = np.asarray(lockstep_steps(warm[:1], kept[:1]))
    assert one_chain[0] == one_chain[1]  # nothing waits for anything


def test_lockstep_waste_from_batch_steps():
    draws = Draws(*([None] * 5), batch_steps=np.array([[6.0, 8.0], [2.0, 2.0]]))
    assert draws.lockstep_waste() == pytest.approx(1 - 8 / 10)


def test_sample_reports_every_batch_and_iteration():
    """10 replications in batches of 8: two batches (the second padded). Each
    iteration takes at least one leapfrog step, the mean across chains is at
    most the maximum, and the kept draws' share agrees with ``num_steps``."""
    settings = settings_from_options(SMALL)
    batch = make_batch("bayes-re", SEED_DGP, 3, np.arange(10))
    draws = sample("re", batch.keys, batch.stats, settings)
    assert draws.batch_steps.shape == (2, 2)
    used, paid = draws.batch_steps.T
    iterations = settings.warmup + settings.draws
    assert np.all(used >= iterations) and np.all(paid >= used)
    assert 0.0 < draws.lockstep_waste() < 1.0
    # the first batch holds replications 0-7 and nothing else: its kept draws used
    # draws * mean(num_steps) steps per chain, the warm-up at least one per iteration
    kept = settings.draws * draws.num_steps[:8].mean()
    assert used[0] >= kept + settings.warmup - 1e-9
    assert used[0] <= kept + settings.warmup * 2**settings.max_tree_depth
