# Every target installs what it needs into .venv on first use.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
PYTEST  := $(BIN)/python -m pytest

.PHONY: install test test-all lint demo demo-fit bench bench-quick bench-pairs results real real-one fei photos figures docs tables docs-check clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

# Two workers, one test file each at a time (module fixtures are not built twice): the suite
# is compile-bound and XLA compiles on one core (5:45 on a fresh clone, 2-core AVX-512 CPU;
# docs/performance.md#the-test-suite).
test: $(STAMP)
	$(PYTEST) -q -m "not slow" -n 2 --dist loadfile --durations=15

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
	$(MAKE) tables

# The paper's two experiments on real images (docs/real_results.md): trains smiles_gan and
# mnist_gan from scratch (about 55 and 48 min on 2 cores), evaluates them on the test split
# (docs/results/*_gan.json), exports the shipped models (jwarp/pretrained/) and draws the
# README's pictures (docs/real/). DATA holds SMILEsmileD/, FEI/ and mnist/.
DATA ?= ../shared/data
SMILES_CARD := Real faces aligned by their landmarks (SMILEsmileD and FEI), neutral -> smiling, unpaired WGAN-GP, stationary smoothed field kept off the face's outline (configs/smiles_gan.toml)
MNIST_CARD := Real MNIST 3 -> 4, unpaired WGAN-GP, stationary smoothed field, augmented; digits reframed as MNIST frames them (configs/mnist_gan.toml)
real: $(STAMP)
	$(MAKE) real-one M=smiles D=$(DATA)/SMILEsmileD CARD="$(SMILES_CARD)" X="--fei-dir $(DATA)/FEI"
	$(MAKE) real-one M=mnist D=$(DATA)/mnist CARD="$(MNIST_CARD)"
	$(BIN)/python benchmarks/mnist_heldout.py --data-dir $(DATA)/mnist --workdir runs/mnist_gan \
		--json docs/results/mnist_heldout.json
	$(MAKE) figures
	$(MAKE) tables

real-one: $(STAMP)
	mkdir -p docs/results
	$(BIN)/python train.py --mode gan --data $(M) --data-dir $(D) $(X) --workdir runs/$(M)_gan \
		--no-resume --no-progress
	$(BIN)/python -m jwarp.evaluate --workdir runs/$(M)_gan --json docs/results/$(M)_gan.json
	$(BIN)/python -m jwarp.pretrained --workdir runs/$(M)_gan --name $(M) --description "$(CARD)" \
		--evaluation docs/results/$(M)_gan.json \
		--command "python train.py --mode gan --data $(M) --data-dir $(D) $(X) --workdir runs/$(M)_gan" \
		--command "python -m jwarp.evaluate --workdir runs/$(M)_gan --json docs/results/$(M)_gan.json"

# The paper's paired experiment on real faces (docs/real_results.md): fei_l2 from scratch
# (about 10 min on 2 cores), measured on FEI's 24 test people beside no motion, pair fitting
# (it sees the target) and the unpaired model, then exported as --model fei.
FEI_CARD := Real faces aligned by their landmarks (FEI, the same person neutral and smiling), neutral -> smiling, paired L2, stationary smoothed field kept off the face's outline (configs/fei_l2.toml)
fei: $(STAMP)
	mkdir -p docs/results
	$(BIN)/python train.py --mode l2 --data fei --data-dir $(DATA)/FEI --workdir runs/fei_l2 \
		--no-resume --no-progress
	$(BIN)/python -m jwarp.evaluate --workdir runs/fei_l2 --compare-fit --compare-model smiles \
		--smiles-dir $(DATA)/SMILEsmileD --json docs/results/fei_l2.json
	$(BIN)/python -m jwarp.pretrained --workdir runs/fei_l2 --name fei --description "$(FEI_CARD)" \
		--evaluation docs/results/fei_l2.json \
		--command "python train.py --mode l2 --data fei --data-dir $(DATA)/FEI --workdir runs/fei_l2" \
		--command "python -m jwarp.evaluate --workdir runs/fei_l2 --compare-fit --compare-model smiles --smiles-dir $(DATA)/SMILEsmileD --json docs/results/fei_l2.json"

# The shipped face model on held-out photos of six kinds (docs/faces.md): the set is built
# from DATA outside the repository (FEI and CK+ may not be redistributed), then measured;
# and face finding on the real data sets.
PHOTOS ?= /tmp/jwarp_photo_set
photos: $(STAMP)
	$(BIN)/python docs/make_photo_set.py --data $(DATA) --out $(PHOTOS)
	$(BIN)/python -m jwarp.evaluate --photos $(PHOTOS) --model smiles \
		--smiles-dir $(DATA)/SMILEsmileD --json docs/results/photos.json
	$(BIN)/python -m jwarp.evaluate --photos $(PHOTOS) --model smiles \
		--smiles-dir $(DATA)/SMILEsmileD --judge unaligned --json docs/results/photos_unaligned.json
	$(BIN)/python benchmarks/bench_faces.py --data $(DATA)
	$(MAKE) tables

# The README's pictures of real results (docs/real/): the shipped models and pair fitting.
figures: $(STAMP)
	$(BIN)/python docs/make_real_figures.py --data $(DATA)
	$(BIN)/python docs/make_pair_figures.py --data $(DATA)
	$(BIN)/python docs/make_photo_figures.py --data $(DATA)

# The docs' tables from the JSON results, then the fixtures' GIFs in docs/ from the runs that
# `make results` trains.
docs: tables $(STAMP)
	$(BIN)/python docs/make_gifs.py --runs runs

# The tables of README.md and docs/*.md between <!-- generated:NAME --> markers, from
# docs/results/*.json, benchmarks/results.json and benchmarks/results/cpu_pairs.json
# (docs/make_results.py: standard library only, no install, a second). docs-check changes nothing: it fails if a table is out of date or a
# relative link or heading anchor in README.md or docs/ is broken.
tables:
	$(PY) docs/make_results.py

docs-check:
	$(PY) docs/make_results.py --check
	$(PY) docs/check_links.py

# Every benchmark, one table, benchmarks/results.json (about 40 min on 2 cores; the paper_*
# presets are most of it). bench-quick leaves them out.
bench: $(STAMP)
	$(BIN)/python benchmarks/bench.py
	$(MAKE) tables

bench-quick: $(STAMP)
	$(BIN)/python benchmarks/bench.py --quick --out benchmarks/results_quick.json

# Pair fitting on real face pairs next to dipy's SyN (docs/pairs.md; about 2 min).
bench-pairs: $(STAMP)
	$(BIN)/python -m pip install -q -e ".[bench]"
	$(BIN)/python benchmarks/bench_pairs.py --data-dir $(DATA)
	$(MAKE) tables

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
