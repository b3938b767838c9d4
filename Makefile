# Every target that runs code creates the virtual environment first when it is
# missing, so `make test` and `make bench` each work as the only command on a
# fresh clone.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install test test-slow bench perf lint format clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# Two test processes (pytest-xdist, whole files to a worker): compilation, most
# of the suite's time, is single-threaded. TEST_WORKERS=0 runs in one process.
# Files go out longest first (tests/conftest.py orders them; xdist's own
# reordering, by number of tests, is turned off).
TEST_WORKERS ?= 2

test: $(STAMP)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

test-slow: $(STAMP)
	MLMBIAS_SBC_FIGURE=figures/sbc_rank_histograms.png $(PY) -m pytest -m slow

bench: $(STAMP)
	bash bench/bench.sh

perf: $(STAMP)
	$(PY) -m pytest bench/test_perf.py --benchmark-json bench/results/perf.json -p no:cacheprovider
	$(PY) bench/bench_grid.py
	$(PY) bench/bench_chees.py
	$(PY) bench/bench_engines.py
	$(PY) bench/bench_random_slopes.py
	$(PY) bench/write_results.py

lint: $(STAMP)
	$(VENV)/bin/ruff check mlmbias tests bench
	$(VENV)/bin/ruff format --check mlmbias tests bench

format: $(STAMP)
	$(VENV)/bin/ruff format mlmbias tests bench
	$(VENV)/bin/ruff check --fix mlmbias tests bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache results
