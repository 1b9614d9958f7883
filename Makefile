# Everything starts from a fresh machine: the first target that needs Python builds .venv.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_DISABLE_TELEMETRY := 1
# CI fails below this share of lungfast's lines run by the tests (97% measured on 2 CPU cores, 2026-12-03)
COVERAGE_FLOOR ?= 93

.PHONY: demo test lint browser bench bench-quick gpu-check clean lock results

# requirements.lock pins every package, transitive ones included: a fresh machine gets what the tests ran with.
$(BIN)/lungfast: pyproject.toml requirements.lock
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip==26.3
	# torch first, alone: pinned wheels, never a resolver detour to other builds
	$(BIN)/pip install -q -c requirements.lock torch torchvision
	$(BIN)/pip install -q -c requirements.lock -e '.[test]'
	touch $@

# A deliberate upgrade: resolve pyproject.toml afresh in a scratch venv, then pin what it installed.
lock:
	rm -rf .lock-venv
	$(PY) -m venv .lock-venv
	.lock-venv/bin/pip install -q --upgrade pip
	.lock-venv/bin/pip install -q torch==2.14.1 torchvision==0.29.1
	.lock-venv/bin/pip install -q -e '.[test]'
	{ sed -n '1,2p' requirements.lock; .lock-venv/bin/pip freeze --exclude-editable | grep -v '^lungfast'; } > requirements.lock.new
	mv requirements.lock.new requirements.lock
	rm -rf .lock-venv
	@echo "requirements.lock regenerated: review git diff requirements.lock, run make test, commit it alone"

demo: $(BIN)/lungfast
	$(BIN)/lungfast demo

# The report test opens report.html in headless Chromium (Debian's chromium + chromium-driver).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; } || \
	  echo "note: no chromium/chromedriver (install Debian's chromium chromium-driver): the browser test will skip"

# every test, one worker per core; coverage of lungfast (the CLI's subprocesses too), with a floor
test: $(BIN)/lungfast browser lint
	HF_HUB_OFFLINE=1 $(BIN)/pytest --cov --cov-report=term --cov-fail-under=$(COVERAGE_FLOOR)

# ruff: lint and format, configured in pyproject.toml (`ruff format .` fixes the format)
lint: $(BIN)/lungfast
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Speed and memory targets: figures printed as key=value, measured side by side in one run.
bench: $(BIN)/lungfast
	$(BIN)/python benchmarks/bench.py --readme docs/results.md

bench-quick: $(BIN)/lungfast
	$(BIN)/python benchmarks/bench.py --quick

# at most 5 minutes on one GPU; on a machine without CUDA it says so and exits 0
gpu-check: $(BIN)/lungfast
	$(BIN)/python benchmarks/gpu_check.py

# Measure install, demo and the shipped CPU experiments from cold caches; rewrite the README's and docs' blocks.
results: $(BIN)/lungfast
	$(BIN)/python tools/refresh_results.py

clean:
	rm -rf $(VENV) results/demo-work
