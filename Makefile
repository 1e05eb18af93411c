# The userspace CNI plugin. `make test` installs what is missing (Debian
# packages; Go modules come through the module proxy) and runs every test
# against a real OVS-DPDK. Run as root: the tests create network namespaces
# and start a private switch.

GO        ?= go
BIN       ?= bin
PKGS      := ./cmd/... ./pkg/...
FUZZTIME  ?= 15s
BENCHTIME ?= 50x
# Debian packages the tests and the test bed need.
DEBS      := openvswitch-switch-dpdk dpdk-dev librte-net-memif23 iproute2

.PHONY: all build deps lint unit fuzz integration test bench clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o $(BIN)/userspace ./cmd/userspace

# Install missing Debian packages (the test bed also checks this itself).
deps:
	@missing=""; for p in $(DEBS); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

lint:
	@test -z "$$(gofmt -l cmd pkg tests)" || { echo "gofmt needed:"; gofmt -l cmd pkg tests; exit 1; }
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

unit:
	$(GO) test -race -count=1 $(PKGS) ./tests/testbed/

fuzz:
	$(GO) test -run='^$$' -fuzz='^FuzzParse$$' -fuzztime=$(FUZZTIME) ./pkg/netconf/
	$(GO) test -run='^$$' -fuzz='^FuzzParseArgs$$' -fuzztime=$(FUZZTIME) ./pkg/netconf/

integration:
	$(GO) test -count=1 -timeout 20m ./tests/integration/

# The README's test command: everything, on a fresh machine.
test: deps lint unit fuzz integration

# Each command gets its own switch: the scale benchmark leaves 1000 ports.
bench: deps
	$(GO) test -run='^$$' -bench='AddDel|Version|Scale' -benchtime=$(BENCHTIME) -timeout 30m ./tests/bench/
	$(GO) test -run='^$$' -bench='Parallel' -benchtime=1x -timeout 30m ./tests/bench/

clean:
	rm -rf $(BIN)
