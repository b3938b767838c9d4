import atexit
import os
import shutil
import tempfile
import uuid

# One persistent compilation cache per test run, in a folder of its own (never
# the user's), shared by the xdist workers of the run and the subprocesses the
# tests start: a program that another worker, an earlier module or a subprocess
# compiled is loaded instead of compiled again (the test modules share padded
# shapes for that). Without xdist the process makes its own and removes it at
# exit; with xdist the controller removes the run's (``pytest_unconfigure``). A
# JAX_COMPILATION_CACHE_DIR the user set is left alone. Set before JAX is imported.
_RUN = os.environ.get("PYTEST_XDIST_TESTRUNUID")  # set in xdist workers
if os.environ.get("MLMBIAS_TEST_JAX_CACHE") or not os.environ.get("JAX_COMPILATION_CACHE_DIR"):
    if _RUN:
        _CACHE = os.path.join(tempfile.gettempdir(), f"mlmbias-test-jax-cache-{_RUN}")
        os.makedirs(_CACHE, exist_ok=True)
    else:
        _CACHE = tempfile.mkdtemp(prefix="mlmbias-test-jax-cache-")
        atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
    os.environ["MLMBIAS_TEST_JAX_CACHE"] = "1"  # ours: a new test run makes its own
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _CACHE
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"

# The tests compile at LLVM's -O0: about half the compile time, which is most of
# the suite's time, for programs that then run somewhat slower (the suite's
# sampling-heavy files took about as long). Results differ from the default build
# only in the last bits of floats, which no tolerance sees; the golden tests that
# pin exact bits compute them in a default-build subprocess (tests/_default_build.py).
# MLMBIAS_TEST_XLA_OPT=default runs the whole suite as users compile.
from _default_build import TEST_XLA_FLAG  # noqa: E402 (no JAX there)

if os.environ.get("MLMBIAS_TEST_XLA_OPT") != "default" and (
    "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", "")
):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {TEST_XLA_FLAG}".strip()

import jax  # noqa: E402
import pytest  # noqa: E402

# The command line's persistent compilation cache stays off in tests (and in
# their subprocesses): they must not write into the user's cache folder.
# tests/test_cache.py turns it on in a folder of its own.
os.environ["MLMBIAS_NO_CACHE"] = "1"

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")


def pytest_configure(config):
    """In the xdist controller: fix the run's id, which names the workers' shared
    compilation cache, so that the controller can remove it at the end."""
    if getattr(config, "workerinput", None) is None and hasattr(config.option, "testrunuid"):
        if config.option.testrunuid is None:
            config.option.testrunuid = uuid.uuid4().hex


def pytest_unconfigure(config):
    if getattr(config, "workerinput", None) is None and getattr(config.option, "numprocesses", 0):
        uid = getattr(config.option, "testrunuid", None)
        if uid and os.environ.get("MLMBIAS_TEST_JAX_CACHE", "1") == "1":
            shutil.rmtree(
                os.path.join(tempfile.gettempdir(), f"mlmbias-test-jax-cache-{uid}"),
                ignore_errors=True,
            )


# The longest test files (minutes of CPU each, measured), started first: pytest-xdist
# hands out whole files in collection order, and a long file handed out last
# leaves the other worker idle at the end of the run.
LONGEST_FIRST = (
    "tests/test_runner.py",
    "tests/frequentist/test_covariates.py",
    "tests/frequentist/test_reml_df.py",
    "tests/bayes/test_chees.py",
    "tests/bayes/test_grid.py",
    "tests/bayes/test_random_slopes.py",
    "tests/frequentist/test_shift.py",
    "tests/frequentist/test_few_clusters.py",
    "tests/bayes/test_shift.py",
    "tests/report/test_follows_study.py",
    "tests/test_store.py",
    "tests/frequentist/test_fitting.py",
    "tests/frequentist/test_random_slopes.py",
    "tests/bayes/test_agreement.py",
)


def pytest_collection_modifyitems(config, items):
    """Order the files longest first (``LONGEST_FIRST``), the others after them in
    their usual order; the tests of a file keep theirs."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    root = config.rootpath

    def key(item):
        path = item.path.relative_to(root).as_posix() if item.path.is_relative_to(root) else ""
        return rank.get(path, len(rank))

    items.sort(key=key)  # stable: the rest keep collection order


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
