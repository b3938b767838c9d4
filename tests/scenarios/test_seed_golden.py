"""Golden values of the seed scenario: its condition ids and data must never change.

The values were computed before the scenario interface existed (commit 9572d50,
``DGP`` and ``simulate``); the README's numbers depend on them. A change here
means every stored study and every published figure would silently move.
"""

import hashlib

import numpy as np

from mlmbias import DGP, condition_id, load_study, simulate_condition, to_frame
from mlmbias.scenarios import Seed, get_scenario

SEED = 20250713


def _digest(a) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]


def test_default_condition_id_is_pinned():
    assert condition_id(DGP()) == 103736113
    assert condition_id(Seed()) == 103736113
    assert condition_id(get_scenario("seed")()) == 103736113


def test_default_study_condition_ids_are_pinned():
    study = load_study("configs/default.toml")
    assert [condition_id(c) for c in study.conditions()] == [
        103736113, 104987799, 742155792, 1381860929, 227646122,
        1605795045, 143512917, 61218517, 1295717422, 1255406894,
    ]  # fmt: skip


def test_first_replication_data_are_pinned():
    panel = simulate_condition(DGP(), SEED, [0])
    frame = to_frame(panel)
    assert list(frame.columns) == ["region", "month", "ad_spend", "profit"]
    assert frame.shape == (70, 4)
    assert frame["ad_spend"].iloc[:3].tolist() == [
        -17.717442557080222, -11.686719872423483, -14.907243205709495,
    ]  # fmt: skip
    assert frame["profit"].iloc[:3].tolist() == [
        11.058853940657528, 20.82631186002057, 16.788755030164317,
    ]  # fmt: skip
    assert _digest(frame["region"].to_numpy()) == "05863abc310457fc"
    assert _digest(frame["month"].to_numpy()) == "57d41f825ca033e5"
    assert _digest(frame["ad_spend"].to_numpy()) == "32d406f4dc5e8175"
    assert _digest(frame["profit"].to_numpy()) == "f225dcf76a2afeb5"
    assert float(panel.latent["competition"][0, 0]) == -10.743827884770795
    assert float(panel.latent["adspend_avg"][0, 0]) == -18.909298582430058
