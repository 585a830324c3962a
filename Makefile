# rigwatch: `make demo` runs a station on real recordings; `make test` runs every test.
# Both set up what they need: the virtual environment, the front end, and Chromium for e2e tests.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
STATIC := src/rigwatch/web/static/index.html
FLEET_STATIC := src/rigwatch/fleet/static/index.html
# The page's TypeScript types are generated from the station API's OpenAPI document, which the
# Python code under these folders shapes (response models, routers): a field renamed there
# fails `npm run build` (tsc), not the page.
OPENAPI := frontend/openapi.json
API_SRC := $(shell find src/rigwatch/web src/rigwatch/recordings -name '*.py' 2>/dev/null)
FRONTEND_SRC := $(shell find frontend \( -path frontend/node_modules -o -path frontend/src/generated \) -prune \
  -o -type f ! -name openapi.json -print 2>/dev/null)

.PHONY: demo test lint bench setup frontend chromium clean

# the acoustic camera's demo recording (configs/ball_mill.toml --simulate, acoustic_replay.toml):
# the shipped drone recording propagated to the ball mill's array, written once
SCENE := data/acoustics/ball_mill_scene.h5

setup: $(STAMP) $(STATIC) $(FLEET_STATIC) $(SCENE)

$(SCENE): $(STAMP) data/acoustics/measurement_drone.wav
	$(VENV)/bin/rigwatch acoustics scene $@

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

frontend: $(STATIC) $(FLEET_STATIC)

$(OPENAPI): $(STAMP) $(API_SRC)
	$(VENV)/bin/rigwatch openapi -o $@

# npm ci installs exactly package-lock.json; the build generates src/generated/api.ts from
# openapi.json (openapi-typescript), type-checks (tsc) and bundles (vite) into web/static.
# one build writes both pages: the station's (web/static) and the fleet dashboard (fleet/static)
$(STATIC) $(FLEET_STATIC) &: $(OPENAPI) $(FRONTEND_SRC)
	cd frontend && npm ci --no-audit --no-fund --loglevel=error && npm run build

chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Chromium (Debian package) for end-to-end tests"; \
	  apt-get install -y -q chromium >/dev/null 2>&1 || \
	  { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }; }

demo: setup
	$(VENV)/bin/rigwatch demo

test: lint chromium
	$(PY) -m pytest -q

# style, the layers of docs/architecture.md, and the types of src/
lint: setup
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

bench: setup
	$(PY) bench/acquisition.py --quick

clean:
	rm -rf $(VENV) frontend/node_modules frontend/src/generated $(OPENAPI) $(SCENE) \
	  src/rigwatch/web/static/assets $(STATIC) src/rigwatch/fleet/static
