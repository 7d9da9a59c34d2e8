# The README documents these targets; CI runs `make test`.
SHELL := /bin/bash
UV := $(or $(shell command -v uv 2>/dev/null),.tools/bin/uv)
INSTALLED := .venv/.installed
FINAL_TEST_DATA := $(foreach f,$(wildcard services/ingestor/cryptocast_ingestor/data/binance_4h/*_4h.csv.gz),--data $(subst _4h.csv.gz,,$(notdir $(f)))=$(f))

.PHONY: install up test chaos lint build-data train evaluate backtest bench bench-pipeline
.DEFAULT_GOAL := up

.tools/bin/uv:
	python3 -m venv .tools && .tools/bin/pip install --quiet uv

$(INSTALLED): pyproject.toml uv.lock libs/common/pyproject.toml $(wildcard services/*/pyproject.toml) | $(UV)
	$(UV) sync --all-packages --frozen
	@touch $@

install: $(INSTALLED)  ## create .venv with every service and the dev tools

up: install  ## the whole pipeline on the embedded default, API on 127.0.0.1:8000
	.venv/bin/cryptocast-up

test: lint  ## lint, then unit, integration and end-to-end tests with branch coverage (starts RabbitMQ if needed, installs Chromium for the dashboard test and promtool for the alert rules if missing)
	scripts/ensure-rabbitmq.sh
	scripts/ensure-chromium.sh
	scripts/ensure-promtool.sh
	.venv/bin/pytest --cov=libs --cov=services --cov=cryptocast --cov-branch --cov-report=term:skip-covered

chaos: install  ## fault injection on a throwaway RabbitMQ node (not part of test); results in .chaos/table.md
	.venv/bin/pytest tests/chaos -m chaos

lint: install  ## ruff's linter and formatter check, and mypy (strict on libs/common and the handlers)
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy

build-data: install  ## rebuild the bundled candles from ../shared/data and report what was dropped
	.venv/bin/cryptocast-build-data --shared ../shared/data

train: install  ## the trainer (cryptocast_trainer.train): retrain the previous LSTM on the bundled candles; writes a new artifact version
	.venv/bin/cryptocast-train

evaluate: install  ## the trainer's evaluator: make evaluate DATA=<file.csv> SYMBOL=<sym> [MODEL=name@version]
	@test -n "$(DATA)" -a -n "$(SYMBOL)" || { echo "usage: make evaluate DATA=<file.csv> SYMBOL=<sym> [MODEL=name@version]"; exit 2; }
	.venv/bin/cryptocast-evaluate --data "$(DATA)" --symbol "$(SYMBOL)" $(if $(MODEL),--model "$(MODEL)")

backtest: install  ## make backtest [DATA=<file.csv> SYMBOL=<sym>] [MODEL=name@version] [SINCE=<date>]; default: every bundled Binance coin, final test year
	.venv/bin/cryptocast-backtest $(if $(DATA),--data "$(DATA)" --symbol "$(SYMBOL)",$(FINAL_TEST_DATA)) $(if $(or $(SINCE),$(if $(DATA),,x)),--since "$(or $(SINCE),2024-10-24)") $(if $(MODEL),--model "$(MODEL)")

bench: install  ## per-prediction cost of the shipped model and of the previous LSTM (NumPy and Keras)
	.venv/bin/python bench/distribution.py
	.venv/bin/python bench/inference.py

bench-pipeline: install  ## the four services over the machine's RabbitMQ replaying every bundled Binance coin as fast as it goes: make bench-pipeline [CANDLES=300] [COINS=BTC,ETH,...]
	scripts/ensure-rabbitmq.sh
	.venv/bin/python bench/pipeline.py --candles $(or $(CANDLES),300) $(if $(COINS),--coins "$(COINS)")
