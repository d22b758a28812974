# Front door for contributors; .ci/run calls the same targets.
PYTHON ?= python3
PIP := $(PYTHON) -m pip

.PHONY: dev test rust-test lint docs wheel bench demo ci

# Build the extension (release) and install the package with its test, lint and docs extras.
dev:
	$(PIP) install -e ".[test,lint,docs]"

# The README's test command.
test:
	$(PIP) install -e ".[test]" && $(PYTHON) -m pytest

rust-test:
	cargo test

lint:
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	cargo clippy --all-targets --features python -- -D warnings
	$(PYTHON) -m ruff check python tests benches examples docs/_ext
	$(PYTHON) -m ruff format --check python tests benches examples docs/_ext
	$(PYTHON) -m mypy
	$(PYTHON) -m mypy.stubtest resumable_samplers._core

docs:
	$(PYTHON) -m mkdocs build --strict

# The abi3 wheel (one wheel for CPython >= 3.10) and the sdist, into dist/.
wheel:
	$(PYTHON) -m maturin build --release --out dist
	$(PYTHON) -m maturin sdist --out dist

bench:
	$(PYTHON) -m resumable_samplers bench

demo:
	$(PYTHON) -m resumable_samplers demo

# What CI runs, in a virtual environment of its own (see .ci/run).
ci:
	bash .ci/run
