# Two commands do all the set-up on a fresh machine (README):
#   make serve   - the service on the default bundle, embedded SQLite under ./data
#   make test    - the whole test suite (installs the train, dev and ray extras and headless Chromium)
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: serve test install-service install-dev browser lint bench default-bundle real-benchmarks

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

install-service: $(BIN)/python
	$(BIN)/pip install -q -e .

install-dev: $(BIN)/python
	$(BIN)/pip install -q -e '.[train,dev,ray]'

serve: install-service
	$(BIN)/returns-inspect serve --host $(HOST) --port $(PORT) --bundle models/default --data-dir data

# Debian's Chromium for the operator-page test (Playwright drives it by executablePath).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "chromium could not be installed: browser tests will skip"; \
	  else echo "no chromium and no root apt-get: browser tests will skip"; fi; }

test: install-dev browser
	$(BIN)/python -m pytest

lint: install-dev
	$(BIN)/ruff check inspection training tests bench

bench: install-dev
	$(BIN)/python bench/bench_inference.py --quick
	$(BIN)/python bench/bench_service.py --quick

# Reproduces models/default from nothing but this repository (5-20 minutes on 2 CPU cores), with
# the library releases that produced it (BUNDLE_PINS; a card lists its own as training.libraries).
SAMPLE = datasets/sample/manifest.csv
BUNDLE_PINS = training/recipes/default-bundle.constraints.txt
default-bundle: $(BIN)/python  # install-dev's install, with the pins
	$(BIN)/pip install -q -c $(BUNDLE_PINS) -e '.[train,dev,ray]'
	$(BIN)/returns-inspect dataset synth --out datasets/sample
	$(BIN)/returns-inspect dataset validate $(SAMPLE)
	$(BIN)/returns-inspect train --recipe training/recipes/default.yaml --out runs/default
	rm -rf models/default
	$(BIN)/returns-inspect export --checkpoint runs/default/best.pt --out models/default \
	    --name returns-default --version 1.0.0
	$(BIN)/returns-inspect calibrate --bundle models/default --manifest $(SAMPLE) \
	    --target damage_recall=0.9 --target accessory_recall=0.95
	$(BIN)/returns-inspect anomaly fit --bundle models/default --manifest $(SAMPLE)
	$(BIN)/returns-inspect case fit --bundle models/default --manifest $(SAMPLE)
	$(BIN)/returns-inspect evaluate --bundle models/default --manifest $(SAMPLE) --split test \
	    --out runs/default/eval --update-card

# Issue 2's real-photo figures (needs ../shared/datasets): fine-tuned vs frozen-backbone baseline.
real-benchmarks: install-dev
	$(BIN)/python bench/supervised_real.py
