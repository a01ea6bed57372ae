# The two commands of the README: `make lab` and `make test`.
GO      ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
BIN     := bin/siteflip
LAB_DIR ?= /tmp/siteflip-lab

CHAOS_LOSS ?= 10m

.PHONY: all build deb deps lab lab-down test test-short vet chaos

all: build

deps:
	@scripts/deps.sh

# The version `siteflip --version` shows: the git tag and what follows it.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/siteflip/siteflip/internal/buildinfo.Version=$(VERSION)

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/siteflip

# dist/siteflip_VERSION_ARCH.deb: the binary, the systemd unit, the
# defaults (docs/deploy.md). Needs dpkg-deb only.
deb:
	GO=$(GO) scripts/deb.sh

# Builds siteflip, installs PostgreSQL when missing (as root), and starts a
# complete three-location lab in $(LAB_DIR).
lab: deps build
	$(BIN) lab up --dir $(LAB_DIR)

lab-down: build
	$(BIN) lab down --dir $(LAB_DIR)

vet:
	$(GO) vet ./...
	$(GO) vet -tags chaos ./internal/chaos
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { echo "gofmt needed:"; gofmt -l .; exit 1; }

# Every test, with real etcd members and real PostgreSQL servers.
test: deps vet
	$(GO) test -race -count=1 -timeout 20m ./...

# The fast unit tests only (no real servers).
test-short:
	$(GO) test -short ./...

# The chaos suite (root): every location in its own network namespace,
# nftables for cuts and loss; the lossy-link scenario lasts $(CHAOS_LOSS).
chaos: deps vet
	SITEFLIP_CHAOS_LOSS=$(CHAOS_LOSS) $(GO) test -tags chaos -count=1 -v -timeout 60m ./internal/chaos
