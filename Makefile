# The two set-up commands of the README: `make demo` and `make test`. Both create .venv if missing and install.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch and torchvision are pinned to the releases that lie on this project's machines (pip takes them from disk);
# override TORCH_SPEC elsewhere, e.g. TORCH_SPEC="torch torchvision" for the newest.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.installed-stamp
# glibc's malloc tuning that makes CPU training ~3x faster (FINDINGS); the CLI sets it itself too.
export GLIBC_TUNABLES ?= glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=4000000000

.PHONY: install demo test bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q $(TORCH_SPEC)
	$(PY) -m pip install --disable-pip-version-check -q -e ".[dev]"
	touch $(STAMP)

demo: install
	$(VENV)/bin/shoulders demo

# pytest's exit code is kept in $(VENV)/pytest-exit-code so .ci/run can tell "no tests" (5) from a failure.
test: install
	$(VENV)/bin/pytest -q -p no:cacheprovider $(PYTEST_ARGS); rc=$$?; echo $$rc > $(VENV)/pytest-exit-code; exit $$rc

bench: install
	$(PY) -m benchmarks --profile quick

clean:
	rm -rf $(VENV) runs .pytest_cache
