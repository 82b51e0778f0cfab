# The two set-up commands of the README. Each creates .venv and installs what it needs on a fresh machine.
#   make demo   builds a ScoreMix dataset with the embedded default generator and discriminator
#   make test   runs the test suite (all of it: what CI runs)
# And, for local runs: make test-fast   the suite without the tests marked slow
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# The CPU build of torch (pip finds it locally on the project's machines; elsewhere it comes from PyPI).
TORCH ?= torch==2.13.0

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@

.PHONY: install demo test test-fast bench glyph-fonts glyphs
install: $(BIN)/.installed

demo: $(BIN)/.installed
	$(BIN)/scoremix-ds build --strategy distant

test: $(BIN)/.installed
	$(BIN)/python -m pytest -q

test-fast: $(BIN)/.installed
	$(BIN)/python -m pytest -q -m "not slow"

bench: $(BIN)/.installed
	$(BIN)/python benchmarks/bench_sampling.py
	$(BIN)/python benchmarks/bench_build.py
	$(BIN)/python benchmarks/bench_distributed.py
	$(BIN)/python benchmarks/bench_classlabel.py

# Maintainers only: re-render the shipped glyphs-han dataset from Debian's font packages (root for apt-get, once).
glyph-fonts: $(BIN)/.installed
	apt-get install -y --no-install-recommends $$($(BIN)/python tools/render_glyphs.py --print-packages)

glyphs: $(BIN)/.installed
	$(BIN)/python tools/render_glyphs.py --out scoremix_ds/default/glyphs-han
