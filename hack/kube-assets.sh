#!/usr/bin/env bash
# Puts kube-apiserver and etcd where envtest finds them and prints that folder
# (for KUBEBUILDER_ASSETS). kube-apiserver is built from the Go module proxy by
# the separate module in tools/kube and cached by version outside the repo, so
# only the first run pays the ~8.5-minute build. etcd comes from Debian.
#
# With --node it also builds what a node needs (kubelet, kube-controller-manager,
# kube-scheduler, kubectl) into the same folder: the missing binaries are built
# by one `go build`, so the packages they share are compiled once.
set -euo pipefail

want=(kube-apiserver)
if [[ ${1:-} == --node ]]; then
	want=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet)
fi

root=$(cd "$(dirname "$0")/.." && pwd)
version=$(awk '($1 == "k8s.io/kubernetes" && $2 ~ /^v/) {print $2} ($1 == "require" && $2 == "k8s.io/kubernetes") {print $3}' "$root/tools/kube/go.mod" | head -1)
[[ -n $version ]] || { echo "cannot read the k8s.io/kubernetes version from tools/kube/go.mod" >&2; exit 1; }
cache=${USERSPACE_CNI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/userspace-cni}
assets="$cache/kube-$version"
mkdir -p "$assets"

# One build at a time: make's kube and e2e targets, and a CI run, may ask at
# once; the second finds the binaries the first built.
exec 9>"$assets.lock"
flock 9
missing=()
for b in "${want[@]}"; do [[ -x "$assets/$b" ]] || missing+=("$b"); done
if ((${#missing[@]})); then
	echo "building ${missing[*]} $version into $assets (first run only, several minutes)" >&2
	tmp="$assets/build.tmp.$$"
	rm -rf "$tmp" && mkdir -p "$tmp"
	(cd "$root/tools/kube" && GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath \
		-ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$(cut -d. -f2 <<<"$version")" \
		-o "$tmp/" "${missing[@]/#/k8s.io/kubernetes/cmd/}") >&2
	for b in "${missing[@]}"; do mv -f "$tmp/$b" "$assets/$b"; done
	rmdir "$tmp"
fi

if ! command -v etcd >/dev/null 2>&1 && [[ ! -x /usr/bin/etcd ]]; then
	if [[ $(id -u) -ne 0 ]]; then
		echo "etcd is missing: install Debian's etcd-server" >&2
		exit 1
	fi
	echo "installing etcd-server from Debian" >&2
	# The package would start a system etcd on the default ports; tests run
	# their own. A policy-rc.d that refuses (exit 101) keeps invoke-rc.d from
	# starting it during the install, so no process has to be stopped after:
	# on a shared machine, stopping "etcd" by name would hit other suites' etcd.
	# An administrator's own policy-rc.d is kept and put back.
	prc=/usr/sbin/policy-rc.d saved=""
	if [[ -e $prc ]]; then saved=$(mktemp); cp -p "$prc" "$saved"; fi
	printf '#!/bin/sh\nexit 101\n' >"$prc" && chmod 0755 "$prc"
	restore() { if [[ -n $saved ]]; then mv -f "$saved" "$prc"; else rm -f "$prc"; fi; }
	trap restore EXIT
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q etcd-server >&2 ||
		{ apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q etcd-server >&2; }
	restore
	trap - EXIT
	# Without systemd nothing else could have started it; with systemd, the
	# unit is disabled so a reboot does not start it either (by unit, not name).
	if [[ -d /run/systemd/system ]]; then systemctl disable etcd.service >/dev/null 2>&1 || true; fi
fi
ln -sf "$(command -v etcd || echo /usr/bin/etcd)" "$assets/etcd"
echo "$assets"
