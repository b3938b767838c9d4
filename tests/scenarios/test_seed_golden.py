"""Golden values of the seed scenario: its condition ids and data must never change.

The values were computed before the scenario interface existed (commit 9572d50,
``DGP`` and ``simulate``); the README's numbers depend on them. A change here
means every stored study and every published figure would silently move.
"""

import numpy as np
from _default_build import in_default_build

from mlmbias import DGP, condition_id, load_study, simulate_condition, to_frame
from mlmbias.scenarios import Seed, get_scenario

SEED = 20250713


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


# run in a default-build subprocess (tests/_default_build.py): the pinned bits are
# those users get, and the test processes compile at -O0
_FIRST_REPLICATION = f"""
import hashlib, json
import numpy as np
from mlmbias import DGP, simulate_condition, to_frame
panel = simulate_condition(DGP(), {SEED}, [0])
frame = to_frame(panel)
digest = lambda a: hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]
print(json.dumps({{
    "columns": list(frame.columns), "shape": list(frame.shape),
    "ad_spend": frame["ad_spend"].iloc[:3].tolist(), "profit": frame["profit"].iloc[:3].tolist(),
    "digests": [digest(frame[c].to_numpy()) for c in frame.columns],
    "competition": float(panel.latent["competition"][0, 0]),
    "adspend_avg": float(panel.latent["adspend_avg"][0, 0]),
}}))
"""


def test_first_replication_data_are_pinned():
    got = in_default_build(_FIRST_REPLICATION)
    assert got["columns"] == ["region", "month", "ad_spend", "profit"]
    assert got["shape"] == [70, 4]
    assert got["ad_spend"] == [
        -17.717442557080222, -11.686719872423483, -14.907243205709495,
    ]  # fmt: skip
    assert got["profit"] == [
        11.058853940657528, 20.82631186002057, 16.788755030164317,
    ]  # fmt: skip
    assert got["digests"] == [
        "05863abc310457fc", "57d41f825ca033e5", "32d406f4dc5e8175", "f225dcf76a2afeb5",
    ]  # fmt: skip
    assert got["competition"] == -10.743827884770795
    assert got["adspend_avg"] == -18.909298582430058
    # the same data in this (-O0) process, to rounding: what the other tests see
    frame = to_frame(simulate_condition(DGP(), SEED, [0]))
    np.testing.assert_allclose(frame["ad_spend"].iloc[:3], got["ad_spend"], rtol=1e-13)
    np.testing.assert_allclose(frame["profit"].iloc[:3], got["profit"], rtol=1e-13)
