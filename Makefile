# gpulab: `make up` runs the hub, `make test` runs the tests. Both set up this host first.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
IMAGE_BUILD_FLAGS ?= --bootstrap-if-unpullable

.PHONY: up test unit lint bench soak host venv images check

host:
	bash scripts/setup-host.sh

venv: $(VENV)/.installed

$(VENV)/.installed: setup.py client/pyproject.toml spawner/core/versions.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ./client
	$(BIN)/pip install -q -e '.[test]'
	npm install -g --silent --prefix $(VENV) configurable-http-proxy
	touch $@

images: host venv
	$(BIN)/gpulab images build $(IMAGE_BUILD_FLAGS) base hub

gpulab.yaml:
	cp gpulab.example.yaml gpulab.yaml
	mkdir -p /srv/gpulab/datasets
	@echo "Created gpulab.yaml from the example. Create the first admin with: .venv/bin/gpulab admin create admin ; then edit gpulab.yaml for your lab."

check: venv gpulab.yaml
	$(BIN)/gpulab check

up: images gpulab.yaml
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/gpulab up

unit: venv
	$(BIN)/pytest -q tests/unit

lint: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: images
	bash scripts/install-test-gpu-hook.sh
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest -v -rA tests

bench: images
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m benchmarks.run --n $(or $(N),20) --burst $(or $(BURST),100) --swarm --plot docs/img/bench-burst.png
	$(BIN)/python -m benchmarks.scale --runs 3 --plot docs/img/scale.png

# a lab day on a real hub (benchmarks/soak.py): USERS=30 MINUTES=15 by default; CI runs a short one
soak: images
	bash scripts/install-test-gpu-hook.sh
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m benchmarks.soak --users $(or $(USERS),30) --minutes $(or $(MINUTES),15) --json soak.json --plot docs/img/soak.png
