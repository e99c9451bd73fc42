# thumbwire: `make run` starts the whole stack, `make test` runs every test. Both start from a
# fresh clone: the targets below create the venv, install, generate stubs and migrate as needed.

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PROTOS := $(wildcard protos/thumbwire/v1/*.proto)
STUBS := $(patsubst protos/%.proto,gen/%_pb2.py,$(PROTOS))

# The browser the page's test drives: Debian's, never one that Playwright would download.
CHROMIUM := /usr/bin/chromium
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1

.PHONY: run test unit lint proto lock bench clean tools browser-deps

run: $(VENV)/.installed $(STUBS)
	$(PY) -m services.devstack

test: $(VENV)/.installed $(STUBS) tools browser-deps
	$(PY) -m pytest

unit: $(VENV)/.installed $(STUBS)
	$(PY) -m pytest tests/unit

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check services tests bench
	$(VENV)/bin/ruff format --check services tests bench

bench: $(VENV)/.installed $(STUBS)
	$(PY) -m bench

proto: $(STUBS)

# tests/e2e/test_browser.py fails (never skips) without it.
browser-deps:
	test -x $(CHROMIUM) || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

# Every package, transitive ones too, at the version the suite last passed with.
lock: $(VENV)/.installed
	$(PY) -m pip freeze --exclude-editable | grep -v '^thumbwire' > constraints.txt

# gen/thumbwire is created before the editable install so that package thumbwire.v1 is mapped to
# it; the stubs generated into it later are then importable without installing again.
$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	mkdir -p gen/thumbwire/v1
	touch gen/thumbwire/__init__.py gen/thumbwire/v1/__init__.py
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

$(STUBS) &: $(PROTOS) $(VENV)/.installed
	$(PY) -m grpc_tools.protoc -Iprotos --python_out=gen --pyi_out=gen --grpc_python_out=gen $(PROTOS)

# Tools from the system's packages that tests need: docker-compose checks deploy/'s compose
# file (there is no Docker engine here, only the file is resolved).
tools:
	@command -v docker-compose >/dev/null || { \
	  echo "installing Debian's docker-compose (for the compose file's test)"; \
	  apt-get install -y -q docker-compose >/dev/null || sudo apt-get install -y -q docker-compose >/dev/null; }

clean:
	rm -rf $(VENV) gen var .pytest_cache
