# Everything starts from a fresh machine: the first target that needs Python builds .venv.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_DISABLE_TELEMETRY := 1

.PHONY: demo test bench bench-quick clean

$(BIN)/lungfast: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, alone: pinned wheels, never a resolver detour to other builds
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q -e '.[test]'
	touch $@

demo: $(BIN)/lungfast
	$(BIN)/lungfast demo

test: $(BIN)/lungfast
	HF_HUB_OFFLINE=1 $(BIN)/pytest

clean:
	rm -rf $(VENV) results/demo-work
