# Forewarn. `make test` is what CI runs (.ci/run); `make demo` runs the whole product.
SHELL := /bin/bash
GO ?= go
INFLUXD_VERSION := v1.8.10
BIN := $(CURDIR)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all build deps test test-short demo bench bench-ingest fuzz lint clean

all: build

build:
	$(GO) build -o $(BIN)/forewarn ./cmd/forewarn

# deps installs what the tests and the demo run for real, each only when
# missing: mosquitto, postgresql (apt-get; the PostgreSQL cluster is
# started when it is down), chromium (the console's browser tests), curl,
# and influxd 1.8.10 into bin/ (go install).
deps: $(BIN)/influxd
	@if ! command -v mosquitto >/dev/null && [ ! -x /usr/sbin/mosquitto ]; then \
		echo "installing mosquitto (apt-get)"; \
		$(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto; \
	fi
	@if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then \
		echo "installing postgresql (apt-get)"; \
		$(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; \
	fi
	@if command -v pg_lsclusters >/dev/null && pg_lsclusters --no-header | grep -qv online; then \
		for v in $$(ls /etc/postgresql); do $(SUDO) pg_ctlcluster --skip-systemctl-redirect $$v main start || true; done; \
	fi
	@if ! command -v chromium >/dev/null && [ ! -x /usr/bin/chromium ]; then \
		echo "installing chromium (apt-get; the console's browser tests drive it headless)"; \
		$(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	fi
	@if ! command -v curl >/dev/null; then \
		echo "installing curl (apt-get)"; \
		$(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl; \
	fi

$(BIN)/influxd:
	@echo "building influxd $(INFLUXD_VERSION) into bin/ (takes a minute or two)"
	GOBIN=$(BIN) $(GO) install github.com/influxdata/influxdb/cmd/influxd@$(INFLUXD_VERSION)

# test: everything, integration tests against real services included.
test: deps
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...

# test-short: unit tests only, for the edit-test loop.
test-short:
	$(GO) test -short ./...

demo: deps build
	./scripts/demo.sh

bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 6 ./... | tee bench.txt

# bench-ingest: load generator -> Mosquitto -> forewarn serve -> InfluxDB, and
# the same load through Telegraf, at QoS 0 and 1 (see docs/performance.md).
bench-ingest: deps build $(BIN)/telegraf
	$(GO) run ./internal/cmd/benchingest -forewarn $(BIN)/forewarn -telegraf $(BIN)/telegraf -influxd $(BIN)/influxd $(BENCH_INGEST_FLAGS)

$(BIN)/telegraf:
	@echo "building telegraf v1.37.2 (mqtt_consumer, influxdb_v2 and json parsers only) into bin/"
	GOBIN=$(BIN) $(GO) install -tags "custom,inputs.mqtt_consumer,outputs.influxdb_v2,parsers.json_v2,parsers.json" github.com/influxdata/telegraf/cmd/telegraf@v1.37.2

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzDecodeJSON -fuzztime 60s ./ingest
	$(GO) test -run '^$$' -fuzz FuzzDecodeLineProto -fuzztime 60s ./ingest
	$(GO) test -run '^$$' -fuzz FuzzDecodeSenML -fuzztime 60s ./ingest
	$(GO) test -run '^$$' -fuzz FuzzLoad -fuzztime 60s ./config
	$(GO) test -run '^$$' -fuzz FuzzParseDevicesCSV -fuzztime 60s ./ticketing
	$(GO) test -run '^$$' -fuzz FuzzParseDevicesJSON -fuzztime 60s ./ticketing
	$(GO) test -run '^$$' -fuzz FuzzParseCustomersCSV -fuzztime 60s ./ticketing
	$(GO) test -run '^$$' -fuzz FuzzParseCustomersJSON -fuzztime 60s ./ticketing
	$(GO) test -run '^$$' -fuzz FuzzParseClock -fuzztime 60s ./notify
	$(GO) test -run '^$$' -fuzz FuzzParseRetryAfter -fuzztime 60s ./notify

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...

clean:
	rm -rf $(BIN) .demo bench.txt
