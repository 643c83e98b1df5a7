# The two commands of the README. Both install what is missing first (scripts/bootstrap.sh).
.PHONY: demo test lint format bench install clean

PY := .venv/bin/python

install:
	@scripts/bootstrap.sh

demo: install
	@$(PY) -m blabs_hub.demo

lint: install
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

format: install
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .

test: lint
	$(PY) -m pytest -ra $(PYTEST_ARGS)

bench: install
	@for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf data .cache test-artifacts .pytest_cache
