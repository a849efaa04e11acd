# eccflow: every target creates the virtualenv on first use.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
TORCH  ?= torch==2.13.0

CODE     ?= BCH_n63_k45
DECODER  ?= bp
ITERS    ?= 5
EBN0     ?= 4 5 6
OUT      ?= results
space   := $(subst ,, )

PIPELINE  ?= neural_bp
PROFILE   ?= quick
OVERRIDES ?=
OVERRIDES_FILE ?=

STAGE   ?= train
TRIALS  ?= 20
STORAGE ?=
STUDY   ?=
MULTI   ?=

.PHONY: venv test test-servers eval pipeline study report bench bench-env clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH)
	$(PIP) install -q -e '.[dev,export]'
	touch $@

venv: $(VENV)/.installed

# One worker per core, one torch thread each (OMP_NUM_THREADS reaches the tests' subprocesses too).
test: $(VENV)/.installed
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -n auto --dist worksteal -m "not servers"

# Real servers: a throwaway PostgreSQL (Optuna + MLflow store), mlflow server, two study workers, model serving.
$(VENV)/.servers: $(VENV)/.installed
	$(PIP) install -q -e '.[dev,export,servers]'
	touch $@

test-servers: $(VENV)/.servers
	$(PY) -m pytest -q -m servers

# DECODER may list several specs (DECODER="bp:5 bp:50 osd:2"): decoded on the same words, paired differences.
eval: $(VENV)/.installed
	$(VENV)/bin/eccflow eval --code $(CODE) $(foreach d,$(DECODER),--decoder $(d)) --iters $(ITERS) --ebn0 $(EBN0) \
		--json $(OUT)/$(CODE)_$(subst :,,$(subst $(space),_,$(DECODER))).json

# OVERRIDES and STORAGE reach eccflow through the environment, untouched by the shell: values keep their
# spaces (OVERRIDES="trainer.max_epochs=2 stages.evaluate.ebn0_db=[4.0, 5.0]") and passwords their quotes.
pipeline study: export ECCFLOW_OVERRIDES := $(OVERRIDES)
study: export ECCFLOW_STORAGE := $(STORAGE)

pipeline: $(VENV)/.installed
	$(VENV)/bin/eccflow pipeline --code $(CODE) --pipeline $(PIPELINE) --profile $(PROFILE) \
		$(if $(OVERRIDES_FILE),--overrides-file $(OVERRIDES_FILE)) --overrides "$$ECCFLOW_OVERRIDES"

# Optuna study: STORAGE=postgresql://user:pw@host/db lets workers on several machines share it;
# MULTI=1 optimises the stage's multi_objectives (Pareto front).
study: $(VENV)/.installed
	$(VENV)/bin/eccflow study --stage $(STAGE) --code $(CODE) --trials $(TRIALS) --pipeline $(PIPELINE) \
		--profile $(PROFILE) $(if $(STORAGE),--storage "$$ECCFLOW_STORAGE") $(if $(STUDY),--study-name $(STUDY)) \
		$(if $(MULTI),--multi-objective) $(if $(OVERRIDES_FILE),--overrides-file $(OVERRIDES_FILE)) \
		--overrides "$$ECCFLOW_OVERRIDES"

# Peer-library environment for side-by-side benchmarks (sionna-no-rt, PyTorch-based).
BENCH_VENV ?= .venv-bench
$(BENCH_VENV)/.installed: pyproject.toml
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install -q --upgrade pip
	$(BENCH_VENV)/bin/pip install -q $(TORCH) sionna-no-rt==2.2.0 ldpc==2.4.1
	$(BENCH_VENV)/bin/pip install -q -e '.[dev,export]'
	touch $@

bench-env: $(BENCH_VENV)/.installed

bench: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python benchmarks/bp_throughput.py --out benchmarks/results/bp_throughput.md
	OMP_NUM_THREADS=1 $(BENCH_VENV)/bin/python benchmarks/training_throughput.py --sections stage \
		--out benchmarks/results/training_throughput --seconds 3 --repeats 1
	OMP_NUM_THREADS=1 $(BENCH_VENV)/bin/python benchmarks/export_families.py --out benchmarks/results/export.md

# Paper-style tables from the MLflow store: REPORT_ARGS="--family ecct --code BCH_n31_k16 --select champion".
REPORT_ARGS ?=
report: $(VENV)/.installed
	$(VENV)/bin/eccflow report --out $(OUT)/report $(REPORT_ARGS)

clean:
	rm -rf $(VENV) $(BENCH_VENV)

# MLflow UI on the embedded store: http://127.0.0.1:5000 (runs logged by eccflow keep their artifacts
# under mlruns/artifacts; --artifacts-destination serves uploads made through the UI's own server).
.PHONY: ui
ui: $(VENV)/.installed
	mkdir -p mlruns
	@echo "open http://127.0.0.1:5000/#/experiments?workflowType=machine_learning (the runs, not the GenAI overview)"
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(VENV)/bin/mlflow ui --host 127.0.0.1 --port 5000 \
		--backend-store-uri sqlite:///$(CURDIR)/mlruns/mlflow.db --artifacts-destination $(CURDIR)/mlruns/artifacts
