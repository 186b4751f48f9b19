# The two set-up commands of the README. Both work on a fresh machine: they create .venv if it is
# missing and install what they need first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# On machines without an NVIDIA GPU, pin the CPU build of torch so that pip never pulls a
# multi-GB CUDA build; on GPU machines keep whatever torch the user installed.
TORCH_PIN := $(shell command -v nvidia-smi >/dev/null 2>&1 || echo "torch==2.13.0")
STAMP  := $(VENV)/.installed
# make demo installs only what the demo needs (the demo extra); make test installs everything.
DEMO_STAMP := $(VENV)/.installed-demo

.PHONY: demo test lint install clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(STAMP): $(PY) pyproject.toml
	@# The viewer's browser tests drive the system Chromium (Debian package); they skip with a
	@# reason where it cannot be installed (no root, no apt).
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
		&& (apt-get install -y -q chromium >/dev/null 2>&1 || (apt-get update -q >/dev/null 2>&1 \
		&& apt-get install -y -q chromium >/dev/null 2>&1)) ; } || echo "chromium not installed: browser tests will skip"
	$(PY) -m pip install -q $(TORCH_PIN)
	$(PY) -m pip install -q -e ".[dev,masks,keras,download,baselines,viewer,inpaint,openvino,stac,s1]" $(TORCH_PIN)
	touch $(STAMP)

install: $(STAMP)

$(DEMO_STAMP): $(PY) pyproject.toml
	@if [ -f $(STAMP) ] && [ $(STAMP) -nt pyproject.toml ]; then :; else \
		$(PY) -m pip install -q $(TORCH_PIN) && \
		$(PY) -m pip install -q -e ".[demo]" $(TORCH_PIN); fi
	touch $(DEMO_STAMP)

demo: $(DEMO_STAMP)
	$(VENV)/bin/cloudfree demo --out demo_out

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) demo_out .pytest_cache
