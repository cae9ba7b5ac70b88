# Two commands: `make run` (install + run the nightly pipeline once on the sample)
# and `make test` (install test tools + run the whole suite). Everything is pinned
# by uv.lock; state stays in .venv/, .qres/, data/sample/ and bundles/.

PYTHON     ?= python3
UV_VERSION ?= 0.13.8
TOOLS      := .qres/tools
UV         := $(TOOLS)/bin/uv
QRES       := .venv/bin/qres
export UV_LINK_MODE := copy
export UV_PYTHON_DOWNLOADS := never
# Bytecode at install time: this environment sets PYTHONDONTWRITEBYTECODE=1, so without it every
# qres process compiles ~15,000 library files again (measured: imports of `qres run` 15.1 s of
# CPU without .pyc files, 7.3 s with them).
export UV_COMPILE_BYTECODE := 1
# ... and the project's own packages, installed editable (uv compiles only site-packages): about
# half of a `qres --help` (0.39 -> 0.18 s median wall, 0.65 -> 0.36 s for `qres verify`). An edited
# file's stale .pyc is ignored (Python checks the source's mtime), so this never hides a change.
COMPILE_OWN = .venv/bin/python -m compileall -q -j0 flows tasks policies client >/dev/null

.PHONY: run test lint system-packages install install-test sample clean help

help:  ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/:/'

$(UV):
	@$(PYTHON) -m venv $(TOOLS)
	@$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

install: $(UV)  ## create .venv with the locked runtime set
	@$(UV) sync --frozen --inexact --quiet --python $(PYTHON)
	@$(COMPILE_OWN)

install-test: $(UV)  ## create .venv with the locked runtime + test set
	@$(UV) sync --frozen --group test --quiet --python $(PYTHON)
	@$(COMPILE_OWN)

data/sample: | install
	@$(QRES) sample --out data/sample

sample: data/sample  ## generate the bundled sample telemetry if absent

run: install data/sample  ## install and run the nightly pipeline once on the sample (signing keys made on first use)
	@$(QRES) keys init --exist-ok
	@$(QRES) run

lint: install-test  ## ruff (lint and format) and the import-linter layer contracts
	@.venv/bin/ruff check --quiet .
	@.venv/bin/ruff format --check --quiet .
	@.venv/bin/lint-imports --no-cache >/dev/null || .venv/bin/lint-imports --no-cache

# Debian packages the suite runs for real: a Prometheus server (the connector's tests) and
# Chromium (the HTML report's rendering test). Installed when missing, as root with apt-get.
system-packages:  ## install the Debian packages the suite uses (prometheus, chromium) when missing
	@missing=""; \
	command -v prometheus >/dev/null && command -v promtool >/dev/null || missing="$$missing prometheus"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
		echo "make test: installing Debian packages:$$missing (apt-get)"; \
		apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

test: install-test lint system-packages  ## install test tools and Debian packages, check lint and layers, run the suite
	@.venv/bin/python -m pytest -n auto --dist loadfile

clean:  ## remove local state (keeps data/sample)
	rm -rf .qres bundles
