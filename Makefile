# Every target installs what it needs into .venv on first use.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
PYTEST  := $(BIN)/python -m pytest

.PHONY: install test test-all lint demo demo-fit bench bench-quick results docs clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PYTEST) -q -m "not slow"

test-all: $(STAMP)
	$(PYTEST) -q

lint: $(STAMP)
	test -x $(BIN)/ruff || $(BIN)/python -m pip install -q -e ".[dev]"
	$(BIN)/ruff check jwarp tests benchmarks docs *.py

# Trains the quick CPU preset on the embedded faces for a few minutes and keeps its last sample.
DEMO_STEPS ?= 400
demo: $(STAMP)
	$(BIN)/python train.py --config faces_l2 --steps $(DEMO_STEPS) --workdir runs/demo \
		--no-resume --set train.sample_every=$(DEMO_STEPS)
	cp runs/demo/samples/step_$$(printf %07d $(DEMO_STEPS)).gif demo.gif
	@echo "wrote demo.gif: four test faces side by side, animated from neutral towards a smile"

# Fits one stationary field to one face pair (no training) and writes demo_fit.gif.
demo-fit: $(STAMP)
	$(BIN)/python -m jwarp.demo --out demo_fit.gif

# Trains the three CPU presets (about 1 h on 2 cores), evaluates them and pair fitting on the
# test split, fits the mid frame per pair (docs/mid_frame_fits.py) and writes
# docs/results/*.json (docs/results.md).
results: $(STAMP)
	mkdir -p docs/results
	for p in faces_l2 faces_gan digits_gan; do \
		$(BIN)/python train.py --config $$p --workdir runs/$$p --no-progress && \
		$(BIN)/python -m jwarp.evaluate --workdir runs/$$p --json docs/results/$$p.json || exit 1; \
	done
	$(BIN)/python -m jwarp.evaluate --fit --n 10 --json docs/results/pair_fit.json
	$(BIN)/python docs/mid_frame_fits.py --json docs/results/mid_frame_fits.json

# The README's GIFs in docs/ from the runs that `make results` trains.
docs: $(STAMP)
	$(BIN)/python docs/make_gifs.py --runs runs

# Every benchmark, one table, benchmarks/results.json (about 40 min on 2 cores; the paper_*
# presets are most of it). bench-quick leaves them out.
bench: $(STAMP)
	$(BIN)/python benchmarks/bench.py

bench-quick: $(STAMP)
	$(BIN)/python benchmarks/bench.py --quick --out benchmarks/results_quick.json

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
