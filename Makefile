# The userspace CNI plugin. `make test` installs what is missing (Debian
# packages; Go modules come through the module proxy; VPP through
# hack/vpp-assets.sh) and runs every test against a real OVS-DPDK, a real
# VPP 25.10 and a real kube-apiserver.
# Run as root: the tests create network namespaces
# and start a private switch.

GO        ?= go
BIN       ?= bin
PKGS      := ./cmd/... ./pkg/...
# A count, not a duration: go1.26's fuzz coordinator can report its own
# -fuzztime deadline as a failure ("context deadline exceeded", no crasher;
# go.dev/issue/75804, fixed in go1.27). 400k inputs is 8-15 s per target here.
FUZZTIME  ?= 400000x
BENCHTIME ?= 50x

# A real VPP (hack/vpp-assets.sh: an installed one, else the relocatable
# build in ../shared/vpp, else built from source once), for every target
# that runs VPP: the folder it prints is USERSPACE_VPP_DIR.
VPP_DIR    = $$(./hack/vpp-assets.sh)

.PHONY: all build deps lint unit fuzz integration chaos kube e2e demo demo-k8s demo-k8s-down test bench clean

all: build

# The plugin and its Kubernetes helper, the pod-side helpers dpdk-args and
# vpp-app, and the node agent.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o $(BIN)/userspace ./cmd/userspace
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o $(BIN)/userspace-kube ./cmd/userspace-kube
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o $(BIN)/dpdk-args ./cmd/dpdk-args
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o $(BIN)/vpp-app ./cmd/vpp-app
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o $(BIN)/userspace-agent ./cmd/userspace-agent

# Install missing Debian packages: the one list is testbed.AllPackages.
deps:
	$(GO) run ./tests/debs

lint:
	@test -z "$$(gofmt -l cmd pkg internal tests demo)" || { echo "gofmt needed:"; gofmt -l cmd pkg internal tests demo; exit 1; }
	$(GO) vet ./...
	$(GO) tool staticcheck ./...
	shellcheck demo/pod.sh hack/*.sh deploy/*.sh docker/*.sh docker/*/*.sh
	@# Processes are stopped by PID, never by name: another suite's etcd or
	@# switch may be running on the same machine.
	@if grep -rnwE 'pkill|killall' --include='*.sh' --include='*.go' --include='Dockerfile*' --include='run' \
		cmd pkg tests hack demo deploy docker .ci; then echo "lint: stop processes by PID, not by name"; exit 1; fi
	@# The pod-side commands read what the plugin publishes (pkg/configdata)
	@# and link no node-side code.
	@if $(GO) list -deps ./cmd/dpdk-args ./cmd/vpp-app | grep -E '/pkg/(policy|deviceinfo|sockdir|state|plugin|ovsdb|vpp|kube|logging|engine)$$'; then \
		echo "lint: a pod-side command links the node-side packages above"; exit 1; fi
	@# Every plugin call starts a process, and every package it links is
	@# initialised before main (issue 13, start-up): the plugin links neither
	@# client-go (its helper cmd/userspace-kube does) nor libcni's invoke (which
	@# brings OpenTelemetry, net/http and crypto/tls; pkg/cniexec runs IPAM),
	@# nor govpp's core and socket client (with logrus and fsnotify;
	@# pkg/vppapi connects), nor crypto/rand.
	@if $(GO) list -deps ./cmd/userspace | grep -E '^(k8s\.io/|sigs\.k8s\.io/|go\.opentelemetry\.io/|github\.com/containernetworking/cni/pkg/invoke$$|net/http$$|crypto/tls$$|crypto/rand$$|go\.fd\.io/govpp/(core|adapter/socketclient)$$|github\.com/sirupsen/logrus$$|github\.com/fsnotify/)|/pkg/kube$$'; then \
		echo "lint: cmd/userspace links the packages above, which cost every call start-up time"; exit 1; fi
	docker/lint.sh
	docker/lint.sh --self-test

# pkg/podvpp's tests and the test bed's run real VPPs.
unit:
	vpp=$(VPP_DIR) && USERSPACE_VPP_DIR=$$vpp $(GO) test -race -count=1 $(PKGS) ./tests/testbed/

fuzz:
	$(GO) test -run='^$$' -fuzz='^FuzzParse$$' -fuzztime=$(FUZZTIME) ./pkg/netconf/
	$(GO) test -run='^$$' -fuzz='^FuzzParseArgs$$' -fuzztime=$(FUZZTIME) ./pkg/netconf/
	$(GO) test -run='^$$' -fuzz='^FuzzPreprocess$$' -fuzztime=$(FUZZTIME) ./pkg/netconf/
	$(GO) test -run='^$$' -fuzz='^FuzzAdmit$$' -fuzztime=$(FUZZTIME) ./pkg/policy/
	$(GO) test -run='^$$' -fuzz='^FuzzOwnerTag$$' -fuzztime=$(FUZZTIME) ./pkg/vpp/

integration:
	vpp=$(VPP_DIR) && USERSPACE_VPP_DIR=$$vpp $(GO) test -count=1 -timeout 20m ./tests/integration/

# The node agent's chaos test (tests/integration/chaos_test.go) alone: switch
# restarts under DPDK traffic. `make integration` runs it too, with its
# default 2 rounds; here e.g. USERSPACE_CHAOS_ROUNDS=10 for the issue's
# figure.
chaos:
	vpp=$(VPP_DIR) && USERSPACE_VPP_DIR=$$vpp $(GO) test -run '^TestAgentChaos$$' -v -count=1 -timeout 60m ./tests/integration/

# Kubernetes: a real kube-apiserver (built once from the Go module proxy by
# hack/kube-assets.sh, cached by version outside the repo) and etcd (Debian);
# tests/multus also runs the real Multus thin plugin and the bridge and
# host-local reference plugins (hack/node-assets.sh --multus, cached likewise).
MULTUS_ASSETS = $$(./hack/node-assets.sh --multus)
kube:
	assets=$$(./hack/kube-assets.sh) && multus=$(MULTUS_ASSETS) && vpp=$(VPP_DIR) && \
	KUBEBUILDER_ASSETS=$$assets $(GO) test -race -count=1 -timeout 20m ./tests/kubetest/ && \
	KUBEBUILDER_ASSETS=$$assets USERSPACE_MULTUS_ASSETS=$$multus USERSPACE_VPP_DIR=$$vpp $(GO) test -count=1 -timeout 20m ./tests/multus/

# A real single-node cluster (kubelet, containerd, runc, the real Multus, the
# DaemonSet of deploy/) running the notes' pods: binaries from
# hack/node-assets.sh, images built here by hack/node-images.sh, both cached
# by version outside the repo.
e2e:
	assets=$$(./hack/node-assets.sh) && images=$$(./hack/node-images.sh) && \
	USERSPACE_NODE_ASSETS=$$assets USERSPACE_NODE_IMAGES=$$images $(GO) test -v -count=1 -timeout 30m ./tests/e2e/

# The notes' scenarios on the e2e test's node, left running: tests/e2e's
# TestNode in its demo mode (USERSPACE_E2E_DEMO), in the background, until
# make demo-k8s-down sends it SIGTERM and it cleans up as after a test.
DEMO_K8S = $(CURDIR)/$(BIN)/demo-k8s
demo-k8s:
	@if [ -s $(DEMO_K8S)/pid ] && kill -0 "$$(cat $(DEMO_K8S)/pid)" 2>/dev/null; then echo "demo-k8s is running (PID $$(cat $(DEMO_K8S)/pid)); make demo-k8s-down first"; exit 1; fi
	rm -rf $(DEMO_K8S) && mkdir -p $(DEMO_K8S)
	assets=$$(./hack/node-assets.sh) && images=$$(./hack/node-images.sh) && \
	hack/progress.sh "building the node test" $(GO) test -c -o $(DEMO_K8S)/e2e.test ./tests/e2e/ && \
	cd tests/e2e && { USERSPACE_NODE_ASSETS=$$assets USERSPACE_NODE_IMAGES=$$images USERSPACE_E2E_DEMO=$(DEMO_K8S) \
		setsid $(DEMO_K8S)/e2e.test -test.run '^TestNode$$' -test.v -test.timeout 0 >$(DEMO_K8S)/log 2>&1 </dev/null & } && \
	pid=$$! && echo "==> bringing the node up (PID $$pid, log: $(DEMO_K8S)/log)" && \
	while [ ! -s $(DEMO_K8S)/pid ]; do \
		if ! kill -0 $$pid 2>/dev/null; then tail -40 $(DEMO_K8S)/log; echo "demo-k8s failed (log: $(DEMO_K8S)/log)"; exit 1; fi; \
		sleep 1; \
	done && \
	cat $(DEMO_K8S)/commands

demo-k8s-down:
	@if [ ! -s $(DEMO_K8S)/pid ]; then echo "demo-k8s is not running"; exit 0; fi; \
	pid=$$(cat $(DEMO_K8S)/pid); \
	if kill -TERM "$$pid" 2>/dev/null; then \
		echo "==> stopping the demo node (PID $$pid)"; \
		while kill -0 "$$pid" 2>/dev/null; do sleep 1; done; \
	fi; \
	tail -5 $(DEMO_K8S)/log; rm -f $(DEMO_K8S)/pid

# The README's "run it" command: the notes' scenarios on a private OVS-DPDK
# and a private VPP (demo/, a program on the test bed). Built, then run, so
# that Ctrl-C and SIGTERM reach the demo itself, which cleans up. -trimpath
# as the demo's own builds of the plugin: a first run compiles the modules
# they share once, not twice.
demo:
	@echo "==> building the demo (the first time Go downloads and compiles its modules: minutes)"
	hack/progress.sh "building the demo" $(GO) build -trimpath -o $(BIN)/demo ./demo
	vpp=$(VPP_DIR) && USERSPACE_VPP_DIR=$$vpp $(BIN)/demo

# The README's test command: everything, on a fresh machine.
test: deps lint unit fuzz integration kube e2e demo

# Each command gets its own switch: the scale benchmark leaves 1000 ports.
bench: deps
	vpp=$(VPP_DIR) && USERSPACE_VPP_DIR=$$vpp \
	$(GO) test -run='^$$' -bench='AddDel|Version|Startup|Scale' -benchtime=$(BENCHTIME) -timeout 30m ./tests/bench/ && \
	USERSPACE_VPP_DIR=$$vpp $(GO) test -run='^$$' -bench='Parallel' -benchtime=1x -timeout 30m ./tests/bench/ && \
	USERSPACE_VPP_DIR=$$vpp $(GO) test -run='^$$' -bench='Restore' -benchtime=3x -timeout 30m ./tests/bench/
	assets=$$(./hack/kube-assets.sh) && multus=$(MULTUS_ASSETS) && vpp=$(VPP_DIR) && \
	KUBEBUILDER_ASSETS=$$assets USERSPACE_MULTUS_ASSETS=$$multus USERSPACE_VPP_DIR=$$vpp \
	$(GO) test -run='^$$' -bench='KubeAddDel' -benchtime=$(BENCHTIME) -timeout 30m ./tests/multus/

clean:
	rm -rf $(BIN)
