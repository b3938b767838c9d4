import atexit
import os
import shutil
import tempfile

# One persistent compilation cache per test process (each xdist worker its own),
# in a folder of its own (never the user's) and shared with the subprocesses the
# tests start: a program that an earlier module or process compiled is loaded
# instead of compiled again after ``_release_compiled_programs`` drops it. A
# JAX_COMPILATION_CACHE_DIR the user set is left alone. Set before JAX is imported.
if os.environ.get("MLMBIAS_TEST_JAX_CACHE") or not os.environ.get("JAX_COMPILATION_CACHE_DIR"):
    _CACHE = tempfile.mkdtemp(prefix="mlmbias-test-jax-cache-")
    os.environ["MLMBIAS_TEST_JAX_CACHE"] = "1"  # ours: an xdist worker makes its own
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _CACHE
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)

import jax  # noqa: E402
import pytest  # noqa: E402

# The command line's persistent compilation cache stays off in tests (and in
# their subprocesses): they must not write into the user's cache folder.
# tests/test_cache.py turns it on in a folder of its own.
os.environ["MLMBIAS_NO_CACHE"] = "1"

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture(scope="session")
def rng_seed() -> int:
    return 20250713


def _map_count_high() -> bool:
    """Whether this process holds more than a third of the kernel's limit of memory
    mappings (always True where /proc cannot tell)."""
    try:
        with open("/proc/sys/vm/max_map_count") as f:
            limit = int(f.read())
        with open("/proc/self/maps", "rb") as f:
            held = sum(1 for _ in f)
    except (OSError, ValueError):
        return True
    return held > limit // 3


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop every compiled program after a test module once they crowd memory.

    Each program XLA compiles for the CPU keeps its own memory mappings, and the
    whole suite in one process would otherwise approach the kernel's limit
    (vm.max_map_count, 65530 by default), where compilation segfaults. Below a
    third of the limit the programs stay for the next modules (they share many);
    above it they are dropped, and the persistent cache above reloads what a later
    module needs.
    """
    yield
    if _map_count_high():
        jax.clear_caches()
