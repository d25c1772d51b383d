# The two commands of the README:
#   make demo   set up the environment and run the main job on the embedded default
#   make test   set up the same environment and run the test suite (offline)
# Both create .venv on first use and reinstall only when pyproject.toml or the requirements files change.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.rlhfkit-installed
# Test processes (pytest-xdist workers), one torch thread each: two fill the 2-core machines this project targets
# and halve the suite's wall time there. `make test TEST_WORKERS=0` runs it in one process.
TEST_WORKERS ?= 2

.PHONY: demo test setup browser bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml requirements.lock requirements-nodeps.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first and pinned, so nothing later can pull a multi-GB CUDA build in its place.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -r requirements.lock
	# Packages whose declared dependencies are not wanted (the file says why), installed without them.
	$(BIN)/python -m pip install --quiet --no-deps -r requirements-nodeps.txt
	$(BIN)/python -m pip install --quiet --no-deps -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/rlhfkit build-default
	HF_HUB_OFFLINE=1 $(BIN)/rlhfkit pipeline --out runs/pipeline

# Debian's chromium for the widgets' browser test (Playwright's own browser download cannot work offline).
# Installs with apt-get when run as root and /usr/bin/chromium is missing; otherwise the browser test skips.
browser:
	@sh .ci/install-chromium

test: $(STAMP) browser
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal

bench: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python bench/sampling_batching.py
	HF_HUB_OFFLINE=1 $(BIN)/python bench/dashboard_overhead.py
	HF_HUB_OFFLINE=1 $(BIN)/python bench/label_store.py
	HF_HUB_OFFLINE=1 $(BIN)/python bench/ppo_vs_trl.py
	HF_HUB_OFFLINE=1 $(BIN)/python bench/threads_under_load.py

clean:
	rm -rf $(VENV) .cache runs
