# Two entry points (README quick start): `make build` and `make test`. Each sets up .venv itself.
PYTHON ?= python3
VENV ?= .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.esb-hw-installed

.PHONY: build test test-all lint bench report accuracy frontier figures clean

$(STAMP): pyproject.toml tools/bootstrap.sh
	@sh tools/bootstrap.sh "$(PYTHON)" "$(VENV)"
	@touch $@

build: $(STAMP)
	$(VPY) build.py --board zcu102

# The quick suite (about 10 minutes on 2 cores from a fresh clone); `slow` tests only in test-all.
test: $(STAMP)
	@sh tools/ensure-iverilog.sh
	$(VENV)/bin/ruff check .
	$(VPY) -m pytest -m "not slow" --durations=25

# Everything, the longer simulations included: run it before a change lands.
test-all: $(STAMP)
	@sh tools/ensure-iverilog.sh
	$(VENV)/bin/ruff check .
	$(VPY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	$(VPY) bench/quant_speed.py

report: $(STAMP)
	$(VPY) -m esb_hw.quant.report --update-readme README.md

# The digits accuracy and accuracy-per-LUT tables and the residual network's table of the README (about four
# minutes).
accuracy: $(STAMP)
	$(VPY) -m esb_hw.frontend.accuracy --update-readme README.md
	$(VPY) -m esb_hw.frontend.accuracy --model resnet_mnist --update-readme README.md

# The README's accuracy-per-LUT frontier: the formats sweep on Ray (yosys per format; the 8-bit formats with many
# significand bits run into the sweep's 900 s timeout), its table, plot and results file. Reruns use build/'s cache.
frontier: $(STAMP)
	$(VENV)/bin/esb-hw explore examples/sweeps/formats.toml --out build/explore/formats --update-readme README.md \
		--plot docs/digits_frontier.png --force
	cp build/explore/formats/explore.json esb_hw/data/digits/formats_explore.json

# The README's measured figures (digits RTL, system Fmax, chip table) from the benches' JSON (bench/results/,
# esb_hw/data/timing.json); tests/test_readme_figures.py fails when they differ.
figures: $(STAMP)
	$(VPY) bench/readme_figures.py --update

clean:
	rm -rf build .pytest_cache sim_build
