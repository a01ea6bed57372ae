# The two commands of the README: `make lab` and `make test`.
GO      ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
BIN     := bin/siteflip
LAB_DIR ?= /tmp/siteflip-lab

.PHONY: all build deps lab lab-down test test-short vet

all: build

deps:
	@scripts/deps.sh

build:
	$(GO) build -o $(BIN) ./cmd/siteflip

# Builds siteflip, installs PostgreSQL when missing (as root), and starts a
# complete three-location lab in $(LAB_DIR).
lab: deps build
	$(BIN) lab up --dir $(LAB_DIR)

lab-down: build
	$(BIN) lab down --dir $(LAB_DIR)

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { echo "gofmt needed:"; gofmt -l .; exit 1; }

# Every test, with real etcd members and real PostgreSQL servers.
test: deps vet
	$(GO) test -race -count=1 -timeout 20m ./...

# The fast unit tests only (no real servers).
test-short:
	$(GO) test -short ./...
