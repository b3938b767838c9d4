"""Shared data and settings of the Bayesian tests.

Every default (non-slow) test that samples the collapsed models uses
``SMALL`` on panels of R = 10 regions, so one compiled NUTS program serves
all five models and all those tests.
"""

import numpy as np
import pytest

import mlmbias
from mlmbias import DGP, group_stats, replication_keys, simulate_condition
from mlmbias.registry import Batch
from mlmbias.seeding import method_keys

# Settings of the default tests: shorter than the study defaults (1000 + 1000),
# enough for the claims tested (ESS in the thousands for the collapsed models).
SMALL = {"warmup": 300, "draws": 500, "chains": 4, "batch_size": 8}

SEED_DGP = DGP()  # the seed's scenario, R = 10


def make_batch(method: str, dgp: DGP, seed: int, reps) -> Batch:
    reps = np.asarray(reps)
    panel = simulate_condition(dgp, seed, reps)
    keys = method_keys(replication_keys(seed, dgp, reps), method)
    return Batch(keys=keys, stats=group_stats(panel))


@pytest.fixture(scope="session")
def seed_panel():
    """Two replications of the seed's scenario (R = 10)."""
    return simulate_condition(SEED_DGP, 11, np.arange(2))


@pytest.fixture(scope="session")
def seed_stats(seed_panel):
    return group_stats(seed_panel)


assert mlmbias  # x64 is on
