#!/usr/bin/env bash
# Provides what the node test (tests/e2e) runs and prints a folder whose bin/
# holds all of it: kube-apiserver, kubelet, kube-controller-manager,
# kube-scheduler, kubectl (hack/kube-assets.sh --node), containerd 2.x with its
# runc shim and ctr, the Multus thin plugin and the CNI reference plugins, each
# built from the Go module proxy by its module in tools/ (exact versions in
# their go.mod) and cached by version in
# ${USERSPACE_CNI_CACHE:-$XDG_CACHE_HOME/userspace-cni}; etcd and runc are
# Debian's. The CNI plugins go to bin/cni/, the test's private CNI bin dir
# source (the machine's /opt/cni/bin is never touched).
#
# With --multus it provides only what tests/multus runs (make kube): the Multus
# thin plugin and the bridge and host-local reference plugins, and prints a
# folder holding just those three (no kubelet, containerd or runc).
set -euo pipefail

multus_only=false
if [[ ${1:-} == --multus ]]; then
	multus_only=true
fi

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${USERSPACE_CNI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/userspace-cni}
mkdir -p "$cache"
cache=$(realpath "$cache")
say() { echo "node-assets: $*" >&2; }

# modver prints the version tools/$1/go.mod requires of module $2.
modver() {
	local v
	v=$(awk -v m="$2" '($1 == m && $2 ~ /^v/) {print $2} ($1 == "require" && $2 == m) {print $3}' "$root/tools/$1/go.mod" | head -1)
	[[ -n $v ]] || { say "cannot read the $2 version from tools/$1/go.mod"; exit 1; }
	echo "$v"
}

# build DIR MODULE LDFLAGS PKG... builds the packages of tools/MODULE into the
# cache folder DIR unless every binary is there; one build at a time per DIR.
build() {
	local dir=$1 mod=$2 ldflags=$3 p missing=()
	shift 3
	mkdir -p "$dir"
	exec 9>"$dir.lock"
	flock 9
	for p in "$@"; do [[ -x $dir/${p##*/} ]] || missing+=("$p"); done
	if ((${#missing[@]})); then
		say "building ${missing[*]##*/} into $dir (first run only)"
		local tmp=$dir/build.tmp.$$
		rm -rf "$tmp" && mkdir -p "$tmp"
		(cd "$root/tools/$mod" && GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags "-s -w $ldflags" -o "$tmp/" "${missing[@]}") >&2
		for p in "${missing[@]}"; do mv -f "$tmp/${p##*/}" "$dir/"; done
		rmdir "$tmp"
	fi
	exec 9>&-
}

multus_v=$(modver multus gopkg.in/k8snetworkplumbingwg/multus-cni.v4)
multus=$cache/multus-$multus_v
build "$multus" multus "-X gopkg.in/k8snetworkplumbingwg/multus-cni.v4/pkg/multus.version=$multus_v" \
	gopkg.in/k8snetworkplumbingwg/multus-cni.v4/cmd/multus

cni_v=$(modver cni-plugins github.com/containernetworking/plugins)
cni=$cache/cni-plugins-$cni_v
build "$cni" cni-plugins "" \
	github.com/containernetworking/plugins/plugins/ipam/host-local \
	github.com/containernetworking/plugins/plugins/main/bridge

if $multus_only; then
	# Links named by both versions, so two checkouts pinning different
	# versions never share the folder.
	out=$cache/multus-test-$multus_v-cni-$cni_v
	mkdir -p "$out"
	exec 9>"$out.lock"
	flock 9
	ln -sfn "$multus/multus" "$out/multus"
	for b in bridge host-local; do ln -sfn "$cni/$b" "$out/$b"; done
	echo "$out"
	exit 0
fi

# The rest only for the node: the CNI plugins a node's pods use besides, runc
# and containerd.
build "$cni" cni-plugins "" \
	github.com/containernetworking/plugins/plugins/main/loopback \
	github.com/containernetworking/plugins/plugins/meta/portmap

# runc, containerd's runtime, is Debian's.
if ! dpkg-query -W -f='${Status}' runc 2>/dev/null | grep -q "ok installed"; then
	say "installing runc"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends runc >&2 ||
		{ apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends runc >&2; }
fi

ctrd_v=$(modver containerd github.com/containerd/containerd/v2)
ctrd=$cache/containerd-$ctrd_v
build "$ctrd" containerd "-X github.com/containerd/containerd/v2/version.Version=$ctrd_v" \
	github.com/containerd/containerd/v2/cmd/containerd \
	github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2 \
	github.com/containerd/containerd/v2/cmd/ctr

# Last: the longest build, and another run of kube-assets.sh may hold its lock.
kube=$("$root/hack/kube-assets.sh" --node)

# The folder of links, named by every version, so two checkouts pinning
# different versions never share it.
out=$cache/node-$(basename "$kube" | sed 's/^kube-//')-containerd-$ctrd_v-multus-$multus_v-cni-$cni_v
mkdir -p "$out/bin/cni"
exec 9>"$out.lock"
flock 9
for b in kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet; do ln -sfn "$kube/$b" "$out/bin/$b"; done
ln -sfn "$(command -v etcd || echo /usr/bin/etcd)" "$out/bin/etcd"
ln -sfn "$(command -v runc || echo /usr/sbin/runc)" "$out/bin/runc"
for b in containerd containerd-shim-runc-v2 ctr; do ln -sfn "$ctrd/$b" "$out/bin/$b"; done
ln -sfn "$multus/multus" "$out/bin/cni/multus"
for b in host-local bridge loopback portmap; do ln -sfn "$cni/$b" "$out/bin/cni/$b"; done
echo "$out"
