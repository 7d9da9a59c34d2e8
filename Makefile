# The README documents these targets; CI runs `make test`.
SHELL := /bin/bash
UV := $(or $(shell command -v uv 2>/dev/null),.tools/bin/uv)
INSTALLED := .venv/.installed

.PHONY: install up test lint build-data
.DEFAULT_GOAL := up

.tools/bin/uv:
	python3 -m venv .tools && .tools/bin/pip install --quiet uv

$(INSTALLED): pyproject.toml uv.lock libs/common/pyproject.toml $(wildcard services/*/pyproject.toml) | $(UV)
	$(UV) sync --all-packages --frozen
	@touch $@

install: $(INSTALLED)  ## create .venv with every service and the dev tools

up: install  ## the whole pipeline on the embedded default, API on 127.0.0.1:8000
	.venv/bin/cryptocast-up

test: install  ## lint, then unit, integration and end-to-end tests (starts RabbitMQ if needed)
	scripts/ensure-rabbitmq.sh
	.venv/bin/ruff check .
	.venv/bin/pytest

lint: install
	.venv/bin/ruff check .

build-data: install  ## rebuild the bundled candles from ../shared/data and report what was dropped
	.venv/bin/cryptocast-build-data --shared ../shared/data
