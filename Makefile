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

.PHONY: install test test-slow demo lint clean golden-update \
	reproduce-table1 reproduce-table2 reproduce-table3 reproduce-table4

# Regenerate the golden trajectory's reference (tests/golden/reference.json). Only when a change is
# meant to move the numbers; say why in the commit.
golden-update: install
	$(PY) tests/golden/golden.py

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
	$(PY) -m pip install -q "ruff==0.17.6" 2>&1 | grep -v "is ignored" || true
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

# Table 1 (CPU preset): multi-panel captioning, K panels, SD-GRPO vs GRPO (and the Dr. variants).
# One SFT warm start per K shared by every algorithm; resumable: finished runs are skipped.
TABLE1_K ?= 1 2 4 8
TABLE1_ALGOS ?= grpo sd_grpo dr_grpo sd_dr_grpo
TABLE1_SEEDS ?= 0 1 2
reproduce-table1: install
	for K in $(TABLE1_K); do \
	  test -d data/docci-k$$K || $(SEGRL) build-data docci --panels $$K --panel-side 56 --count 200 --out data/docci-k$$K; \
	  test -d models/tiny-docci-k$$K || $(SEGRL) make-tiny-model --data data/docci-k$$K --out models/tiny-docci-k$$K; \
	  test -d models/tiny-docci-k$$K-sft || $(SEGRL) warm-start --config configs/docci_cpu.yaml \
	    --set data.path=data/docci-k$$K --model models/tiny-docci-k$$K --out models/tiny-docci-k$$K-sft; \
	  for algo in $(TABLE1_ALGOS); do for seed in $(TABLE1_SEEDS); do \
	    run=runs/table1/k$$K/$$algo/seed$$seed; \
	    test -f $$run/eval/metrics.json && continue; \
	    $(SEGRL) train --config configs/docci_cpu.yaml --set data.path=data/docci-k$$K \
	      --set train.max_completion_length=$$((40 * K)) --model models/tiny-docci-k$$K-sft \
	      --algo $$algo --seed $$seed --output-dir $$run --resume off; \
	    $(SEGRL) eval docci --model $$run --data data/docci-k$$K --max-new-tokens $$((40 * K)) --out $$run/eval; \
	  done; done; \
	done
	$(SEGRL) report table1

reproduce-table2:
	@echo "$@: not implemented yet (issue #9)." >&2; exit 2

reproduce-table3:
	@echo "$@: not implemented yet (issue #4)." >&2; exit 2

reproduce-table4:
	@echo "$@: not implemented yet (issue #9)." >&2; exit 2

clean:
	rm -rf data models runs
