# vmssd developer entry points. `make help` lists them.
#
# Build configurations: `make build` compiles the executables optimised (.build/release), which
# `make run` uses. `make test` builds the debug configuration that `swift test` compiles anyway
# and runs pytest against .build/debug/vmssd, so a test run never pays for a second,
# optimised compile. TEST_CONFIG=release makes pytest use the release binaries instead.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

TEST_CONFIG ?= debug
SWIFT_FORMAT_PATHS := Package.swift Sources Tests
GO_PACKAGES := ./clients/go/... ./benchmarks/goserver ./tests/interop/go
# GOPATH mode with Debian's Go packages; the repository is visible as import path "vmssd".
GO_ENV := source scripts/go-env.sh && cd "$$VMSSD_GO_SRC"

.PHONY: help deps build build-debug go go-test interop-selfcheck test run demo generate \
	check-generated format lint clean bench fuzz soak sanitize

help:
	@echo "make deps             install missing Debian and Python dependencies (no-op when present)"
	@echo "make build            release vmssd and vmssctl, plus the Go client, server and checker"
	@echo "make test             check-generated, go vet/test, swift test, pytest tests/"
	@echo "make run              fake Azure with the demo inventory + vmssd in the foreground"
	@echo "make demo             the scripted demonstration"
	@echo "make bench            vmssd against its goals, ~6 min (BENCH_QUICK=1: ~1 min); one table"
	@echo "                      and benchmarks/out/results.json"
	@echo "make generate         regenerate protoc-c and Go code from Protos/"
	@echo "make check-generated  fail if committed generated code is out of date"
	@echo "make format | lint    swift format (see .swift-format)"
	@echo "make fuzz             libFuzzer + ASan on each fuzz target, FUZZ_SECONDS each (default 60)"
	@echo "make soak             mixed load against vmssd + a churning fake Azure, SOAK_SECONDS (600)"
	@echo "make sanitize         swift test under AddressSanitizer, then ThreadSanitizer"
	@echo "make clean            remove build outputs and generated test stubs"
	@echo "parts of make test:   build-debug, go, go-test, interop-selfcheck"

deps:
	@scripts/install-deps.sh

build: go
	swift build -c release --product vmssd
	swift build -c release --product vmssctl

build-debug:
	swift build --product vmssd
	swift build --product vmssctl

go:
	$(GO_ENV) && go vet $(GO_PACKAGES)
	$(GO_ENV) && mkdir -p .build/go && go build -o .build/go/goserver ./benchmarks/goserver
	$(GO_ENV) && go build -o .build/go/interopclient ./tests/interop/go

go-test:
	$(GO_ENV) && go test ./clients/go/...

# The interop checks must pass against the grpc-go server before they can judge vmssd.
interop-selfcheck: go
	scripts/interop-goserver.sh >/dev/null && echo "interop-selfcheck: grpc-go checks pass against goserver"

test: deps check-generated go go-test interop-selfcheck build-debug
	swift test
	TEST_CONFIG=$(TEST_CONFIG) scripts/pytest.sh

run: deps build
	scripts/run.sh

demo: deps build
	scripts/demo.sh

# Builds only what the benchmark runs, then measures; every ratio comes from the same run.
bench: deps
	swift build -c release --product vmssd
	swift build -c release --product vmssctl
	swift build -c release --product vmssbench
	$(GO_ENV) && mkdir -p .build/go && go build -o .build/go/goserver ./benchmarks/goserver
	$(GO_ENV) && go vet ./benchmarks/goclient ./benchmarks/godecode
	$(GO_ENV) && go build -o .build/go/goclient ./benchmarks/goclient
	$(GO_ENV) && go build -o .build/go/godecode ./benchmarks/godecode
	python3 scripts/bench.py

generate:
	scripts/generate.sh

check-generated:
	scripts/check-generated.sh

format:
	swift format format --in-place --recursive $(SWIFT_FORMAT_PATHS)

lint:
	swift format lint --strict --recursive $(SWIFT_FORMAT_PATHS)

clean:
	rm -rf .build tests/gen

fuzz:
	FUZZ_SECONDS=$${FUZZ_SECONDS:-60} scripts/fuzz.sh

soak: build-debug
	python3 scripts/soak.py --binary .build/$(TEST_CONFIG)/vmssd --seconds $${SOAK_SECONDS:-600}

sanitize:
	scripts/sanitize.sh
