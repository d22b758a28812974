# Front door for contributors; .ci/run calls the same targets.
PYTHON ?= python3
PIP := $(PYTHON) -m pip

.PHONY: dev test rust-test lint bench demo

# Build the extension (release) and install the package with its test and lint extras.
dev:
	$(PIP) install -e ".[test,lint]"

# The README's test command.
test:
	$(PIP) install -e ".[test]" && $(PYTHON) -m pytest

rust-test:
	cargo test

lint:
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	cargo clippy --all-targets --features python -- -D warnings
	$(PYTHON) -m ruff check python tests benches
	$(PYTHON) -m ruff format --check python tests benches
	$(PYTHON) -m mypy
	$(PYTHON) -m mypy.stubtest resumable_samplers._core

bench:
	$(PYTHON) -m resumable_samplers bench

demo:
	$(PYTHON) -m resumable_samplers demo
