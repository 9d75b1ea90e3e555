# segrl — the two set-up commands are `make demo` and `make test`; both install what they need.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
VENV ?= .venv
PY := $(VENV)/bin/python
SEGRL := $(VENV)/bin/segrl
# CPU installs pin torch to the local CPU wheel (an unpinned torch pulls CUDA packages).
# GPU users: `make install TORCH=` keeps the torch already in the environment.
TORCH ?= torch==2.13.0
CONFIG ?= configs/multichart_cpu.yaml
DEMO_RUNS := runs/demo

.PHONY: install test test-slow demo lint clean golden-update # Regenerate the golden trajectory's reference (tests/golden/reference.json). Only when a change is
# meant to move the numbers; say why in the commit.
golden-update: install
	$(PY) tests/golden/golden.py

reproduce-table1 reproduce-table2 reproduce-table3 reproduce-table4

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip 2>&1 | grep -v "is ignored" || true
	if [ -n "$(TORCH)" ]; then $(PY) -m pip install -q "$(TORCH)" 2>&1 | grep -v "is ignored" || true; fi
	$(PY) -m pip install -q -e ".[test]" 2>&1 | grep -v "is ignored" || true
	$(PY) -c "import torch, trl, transformers, segrl; print('segrl env: torch', torch.__version__, 'trl', trl.__version__)"
	touch $@

install: $(VENV)/.installed

test: install
	$(PY) -m pytest -q

test-slow: install
	$(PY) -m pytest -q -m slow

lint: install
	$(PY) -m pip install -q ruff 2>&1 | grep -v "is ignored" || true
	$(VENV)/bin/ruff check segrl tests

# The main job on the embedded default: real MultiChartQA charts, tiny offline LLaVA,
# SFT warm start, SD-GRPO and GRPO with the same budget, evaluation, report.
demo: install
	$(SEGRL) build-data multichart --source ../shared/data/multichartqa --out data/multichart
	$(SEGRL) make-tiny-model --data data/multichart --out models/tiny
	$(SEGRL) warm-start --config $(CONFIG) --model models/tiny --out models/tiny-sft
	$(SEGRL) eval multichart --model models/tiny-sft --data data/multichart --max-image-side 112 --out $(DEMO_RUNS)/sft/eval
	for algo in sd_grpo grpo; do \
	  $(SEGRL) train --config $(CONFIG) --model models/tiny-sft --algo $$algo --output-dir $(DEMO_RUNS)/$$algo; \
	  $(SEGRL) eval multichart --model $(DEMO_RUNS)/$$algo --data data/multichart --max-image-side 112 --out $(DEMO_RUNS)/$$algo/eval; \
	done
	$(SEGRL) report $(DEMO_RUNS) --out results/demo --title "MultiChartQA sample (test split), tiny LLaVA, CPU"

reproduce-table1 reproduce-table2 reproduce-table3 reproduce-table4:
	@echo "$@: not implemented yet (see the open issues: table1 #3, table2/table4 #9, table3 #4)." >&2; exit 2

clean:
	rm -rf data models runs
