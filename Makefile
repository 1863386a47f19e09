# Sluice build entry points. CI runs `make test` (see .ci/run).
#
#   make deps    install missing system packages (PostgreSQL server, pgbench, kcat, prometheus)
#   make build   build bin/sluice
#   make test    deps, go vet, then every test; integration tests start their own servers
#   make lint    gofmt, go vet, staticcheck
#   make demo    run `sluice demo`
#   make bench   run the benchmark harness with $(BENCH_ARGS)
#   make fuzz    run every Fuzz target for $(FUZZTIME) each
#   make clean   remove build output

SHELL := bash
.SHELLFLAGS := -euo pipefail -c

GO                  ?= go
FUZZTIME            ?= 30s
BENCH_ARGS          ?=
STATICCHECK_VERSION ?= latest

.PHONY: all deps build test lint demo bench fuzz clean

all: build

deps:
	bash scripts/deps.sh

build:
	$(GO) build -o bin/sluice ./cmd/sluice

test: deps
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 20m ./...

lint:
	@unformatted="$$(gofmt -l .)"; \
	if [[ -n "$$unformatted" ]]; then echo "gofmt -w needed on:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	GOBIN="$(CURDIR)/bin" $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	bin/staticcheck ./...

demo: deps build
	./bin/sluice demo

bench: deps build
	$(GO) run ./bench $(BENCH_ARGS)

# `go test -list` prints each package's matching names, then its "ok <package>" line.
fuzz:
	@$(GO) test -list '^Fuzz' ./... \
	| awk '/^Fuzz/ { names[n++] = $$1; next } /^ok/ { for (i = 0; i < n; i++) print $$2, names[i]; n = 0 }' \
	| while read -r pkg target; do \
		echo "== $$pkg $$target ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) "$$pkg" </dev/null; \
	done

clean:
	rm -rf bin/ coverage.* cover.*
