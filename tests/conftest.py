import os

import jax
import pytest

# The command line's persistent compilation cache stays off in tests (and in
# their subprocesses): they must not write into the user's cache folder.
# tests/test_cache.py turns it on in a folder of its own.
os.environ["MLMBIAS_NO_CACHE"] = "1"

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture(scope="session")
def rng_seed() -> int:
    return 20250713
