# MyloWare developer commands. `make dev` runs the system, `make test` tests it.

CARGO ?= cargo
COMPOSE ?= docker compose

.PHONY: dev test lint fmt build release migrate ingest validate up down logs clean

## Run both services in one process (API :8080, orchestrator :8090), SQLite, mock providers.
dev:
	$(CARGO) run --bin mw -- dev

## Every test. Store and HTTP tests also run on Postgres when TEST_DATABASE_URL is set.
test:
	$(CARGO) test --workspace --locked

## Formatting and lints, as CI checks them.
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

fmt:
	$(CARGO) fmt --all

build:
	$(CARGO) build --workspace --locked

release:
	$(CARGO) build --release --locked --bin mw

migrate:
	$(CARGO) run --bin mw -- migrate

ingest:
	$(CARGO) run --bin mw -- ingest run

validate:
	$(CARGO) run --bin mw -- validate env

## The full stack in containers (docker-compose.yml): api, orchestrator, Postgres, Prometheus, Grafana.
up:
	$(COMPOSE) up -d --build

## Stops the stack; `docker compose down -v` also drops the Postgres and Prometheus data.
down:
	$(COMPOSE) down

## Follows the API's and the orchestrator's logs (`docker compose logs -f` alone shows every container).
logs:
	$(COMPOSE) logs -f --tail=200 api orchestrator

clean:
	$(CARGO) clean
	rm -rf data
