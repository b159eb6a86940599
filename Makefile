# Two commands matter: `make test` (bootstraps everything, runs every test) and `make setup`.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
CONSTRAINTS := tools/constraints.txt
STAMP := $(VENV)/.installed
TEKTON_LINT := tests/manifests/node_modules/.bin/tekton-lint
# The vLLM CPU build pins its own torch and transformers, so it lives in a venv of its own.
VLLM_VENV := .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.installed

.PHONY: help setup venv vllm-venv eval-env system-tools node-tools test test-unit lint clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

venv: $(STAMP) ## create .venv with both projects installed editable (idempotent)

# torch is pinned by the constraints file in the same pip command, so no CUDA wheel or torchvision sneaks in.
$(STAMP): tools/pyproject.toml runtime/pyproject.toml $(CONSTRAINTS)
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --quiet --disable-pip-version-check -c $(CONSTRAINTS) -e 'tools[dev]' -e 'runtime[dev]'
	@! $(PIP) show --quiet torchvision 2>/dev/null || { echo "torchvision must not be installed" >&2; exit 1; }
	touch $@

vllm-venv: $(VLLM_STAMP) ## create .venv-vllm with the vLLM CPU server (idempotent; used by LLM tests and local runs)

$(VLLM_STAMP): tools/vllm-constraints.txt tools/scripts/setup-vllm-venv.sh
	tools/scripts/setup-vllm-venv.sh $(VLLM_VENV) >/dev/null
	touch $@

# lm-eval and guidellm in their own venv: `modelpipe evaluate` and the LLM benchmark run them from there.
eval-env: ## create .venv-eval with lm-eval and guidellm, pinned by tools/eval-constraints.txt (idempotent)
	tools/scripts/setup-eval-env.sh .venv-eval

system-tools: ## install buildah, skopeo, docker-registry, shellcheck, crun when missing
	tools/scripts/install-system-tools.sh

node-tools: $(TEKTON_LINT) ## install @ibm/tekton-lint into tests/manifests/node_modules

$(TEKTON_LINT): tests/manifests/package.json tests/manifests/package-lock.json
	npm ci --prefix tests/manifests --no-audit --no-fund --silent
	touch $@

setup: venv vllm-venv eval-env system-tools node-tools ## everything the tests need

test: setup ## run every test (unit, integration, e2e, manifests)
	$(PY) -m pytest -c tests/pytest.ini --rootdir . tests

test-unit: venv ## fast unit tests only
	$(PY) -m pytest -c tests/pytest.ini --rootdir . tests/unit

lint: setup ## ruff, mypy, then the manifest checks (kustomize, CRD schemas, tekton-lint, shellcheck, hadolint)
	$(VENV)/bin/ruff check --config tools/pyproject.toml tools runtime tests benchmarks
	$(VENV)/bin/ruff format --check --config tools/pyproject.toml tools runtime tests benchmarks
	$(VENV)/bin/mypy --config-file tools/pyproject.toml tools/modelpipe runtime/diffusers_runtime
	$(PY) -m pytest -c tests/pytest.ini --rootdir . tests/manifests

clean: ## remove local state (.local/) and caches; keeps .venv
	rm -rf .local .pytest_cache .ruff_cache
