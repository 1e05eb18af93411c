#!/usr/bin/env bash
# Puts kube-apiserver and etcd where envtest finds them and prints that folder
# (for KUBEBUILDER_ASSETS). kube-apiserver is built from the Go module proxy by
# the separate module in tools/kube and cached by version outside the repo, so
# only the first run pays the ~8.5-minute build. etcd comes from Debian.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
version=$(awk '($1 == "k8s.io/kubernetes" && $2 ~ /^v/) {print $2} ($1 == "require" && $2 == "k8s.io/kubernetes") {print $3}' "$root/tools/kube/go.mod" | head -1)
[[ -n $version ]] || { echo "cannot read the k8s.io/kubernetes version from tools/kube/go.mod" >&2; exit 1; }
cache=${USERSPACE_CNI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/userspace-cni}
assets="$cache/kube-$version"
mkdir -p "$assets"

if [[ ! -x "$assets/kube-apiserver" ]]; then
	echo "building kube-apiserver $version into $assets (first run only, several minutes)" >&2
	tmp="$assets/kube-apiserver.tmp.$$"
	(cd "$root/tools/kube" && GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath \
		-ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$(cut -d. -f2 <<<"$version")" \
		-o "$tmp" k8s.io/kubernetes/cmd/kube-apiserver) >&2
	mv -f "$tmp" "$assets/kube-apiserver"
fi

if ! command -v etcd >/dev/null 2>&1 && [[ ! -x /usr/bin/etcd ]]; then
	if [[ $(id -u) -ne 0 ]]; then
		echo "etcd is missing: install Debian's etcd-server" >&2
		exit 1
	fi
	echo "installing etcd-server from Debian" >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q etcd-server >&2 ||
		{ apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q etcd-server >&2; }
	# The package starts a system etcd on the default ports; tests run their own.
	systemctl disable --now etcd >/dev/null 2>&1 || true
	pkill -x etcd 2>/dev/null || true
fi
ln -sf "$(command -v etcd || echo /usr/bin/etcd)" "$assets/etcd"
echo "$assets"
