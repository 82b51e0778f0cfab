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

.PHONY: install demo test test-fast bench glyph-fonts glyphs device-wheels
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

# The wheels the lent GPU machine lacks (python 3.12, manylinux x86_64, no network there): the versions installed here
# of the dependencies that machine does not have (the package itself travels as the working tree);
# benchmarks/device.sh installs them there with --no-index.
DEVICE_WHEELS := diffusers datasets huggingface_hub dill multiprocess importlib_metadata mlxtend typer fsspec
device-wheels: $(BIN)/.installed
	rm -rf .whl && mkdir -p .whl
	$(BIN)/python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
		--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
		$$($(BIN)/python -m pip freeze | grep -iE "^($$(echo $(DEVICE_WHEELS) | tr ' ' '|' | sed 's/_/[-_]/g'))==")
	ls -la .whl
