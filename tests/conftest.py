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


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop every compiled program after each test module.

    Each program XLA compiles for the CPU keeps its own memory mappings, and the
    whole suite in one process would otherwise approach the kernel's limit
    (vm.max_map_count, 65530 by default), where compilation segfaults. A module
    still reuses its own programs; the next module compiles what it needs.
    """
    yield
    jax.clear_caches()
