#!/usr/bin/env bash
# Provides a real VPP for the tests and the demo and prints its folder (for
# USERSPACE_VPP_DIR): <dir>/bin/vpp, <dir>/bin/vppctl, and <dir>/plugin-path,
# a file naming the folder with the memif, vhost and ping plugins. That path is
# symlink-free: VPP loads no plugin from a path that goes through a symlink.
#
# Where the VPP comes from, first found wins:
#  1. an installed VPP (FD.io's packages vpp and vpp-plugin-core: /usr/bin/vpp,
#     plugins in /usr/lib/x86_64-linux-gnu/vpp_plugins);
#  2. the relocatable build vpp-25.10-bin-debian12-amd64.tar.xz, found in
#     $USERSPACE_VPP_DIST, else <repo>/../shared/vpp, else /work/shared/vpp;
#  3. a build of vpp-25.10-src.tar.xz from the same places (20 to 60 minutes
#     on 2 cores).
# Each tarball's sha256 is checked before use. What is unpacked or built is
# cached by version in ${USERSPACE_CNI_CACHE:-$XDG_CACHE_HOME/userspace-cni}.
# No VPP to be had is an error, never a skip.
set -euo pipefail

version=25.10
bin_tar=vpp-$version-bin-debian12-amd64.tar.xz
bin_sha=129540ab8c2dd79025a259268104db9869f3b2f335a00d59664b924e6f6c5e9f
src_tar=vpp-$version-src.tar.xz
src_sha=54797f16ef2fb6a4c1733d6c4c5e81a40261940d1cc0f91dcd2eebde17dfe188
plugins=(memif_plugin.so vhost_plugin.so ping_plugin.so)
build_debs=(cmake ninja-build python3-ply python3-jsonschema libssl-dev uuid-dev libnuma-dev pkg-config libelf-dev libpcap-dev gcc g++ make xz-utils)

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${USERSPACE_CNI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/userspace-cni}
mkdir -p "$cache"
cache=$(realpath "$cache")

say() { echo "vpp-assets: $*" >&2; }
fail() { say "$*"; exit 1; }

# has_plugins tells whether folder $1 holds the three plugins the tests use.
has_plugins() {
	local p
	for p in "${plugins[@]}"; do [[ -f $1/$p ]] || return 1; done
}

# publish writes the plugin-path file of assets folder $1 (plugins in $2) and
# prints the folder.
publish() {
	realpath "$2" >"$1/plugin-path.tmp.$$"
	mv -f "$1/plugin-path.tmp.$$" "$1/plugin-path"
	echo "$1"
}

# 1. An installed VPP.
sys_plugins=/usr/lib/x86_64-linux-gnu/vpp_plugins
if [[ -x /usr/bin/vpp && -x /usr/bin/vppctl ]] && has_plugins "$(realpath -m "$sys_plugins")"; then
	assets=$cache/vpp-installed
	mkdir -p "$assets/bin"
	ln -sfn /usr/bin/vpp "$assets/bin/vpp"
	ln -sfn /usr/bin/vppctl "$assets/bin/vppctl"
	publish "$assets" "$sys_plugins"
	exit 0
fi

# One unpack or build at a time: test packages run in parallel, and each may
# call this script on a first run.
exec 9>"$cache/vpp-$version.lock"
flock 9

assets=$cache/vpp-$version
if [[ -x $assets/bin/vpp && -x $assets/bin/vppctl ]] && has_plugins "$assets/lib/x86_64-linux-gnu/vpp_plugins"; then
	publish "$assets" "$assets/lib/x86_64-linux-gnu/vpp_plugins"
	exit 0
fi

# find_dist prints the first of the distribution folders that holds file $1.
find_dist() {
	local d
	for d in ${USERSPACE_VPP_DIST:+"$USERSPACE_VPP_DIST"} "$root/../shared/vpp" /work/shared/vpp; do
		[[ -f $d/$1 ]] && { echo "$d/$1"; return 0; }
	done
	return 1
}

# verify checks file $1 against sha256 $2.
verify() {
	local got
	got=$(sha256sum "$1" | cut -d' ' -f1)
	[[ $got == "$2" ]] || fail "$1: sha256 $got, want $2 (a damaged or different file)"
}

# 2. The relocatable build.
if tarball=$(find_dist "$bin_tar"); then
	verify "$tarball" "$bin_sha"
	say "unpacking $tarball into $assets"
	tmp=$(mktemp -d "$cache/vpp-$version.tmp.XXXXXX")
	trap 'rm -rf -- "$tmp"' EXIT
	tar -xJf "$tarball" -C "$tmp"
	[[ -x $tmp/vpp-$version/bin/vpp ]] || fail "$tarball has no vpp-$version/bin/vpp"
	rm -rf -- "$assets"
	mv "$tmp/vpp-$version" "$assets"
	has_plugins "$assets/lib/x86_64-linux-gnu/vpp_plugins" || fail "$tarball lacks one of ${plugins[*]}"
	publish "$assets" "$assets/lib/x86_64-linux-gnu/vpp_plugins"
	exit 0
fi

# 3. A build from source.
tarball=$(find_dist "$src_tar") || fail "no VPP: neither /usr/bin/vpp (FD.io's packages vpp and vpp-plugin-core) nor $bin_tar or $src_tar in \$USERSPACE_VPP_DIST, $root/../shared/vpp or /work/shared/vpp"
verify "$tarball" "$src_sha"
[[ $(id -u) -eq 0 ]] || fail "building VPP needs root to install its build dependencies: ${build_debs[*]}"
say "building VPP $version from $tarball: this takes 20 to 60 minutes on 2 cores (once; cached in $assets)"
missing=()
for p in "${build_debs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
	say "installing build dependencies: ${missing[*]}"
	{ DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" ||
		{ apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"; }; } >&2
fi
work=$cache/vpp-$version-build
rm -rf -- "$work"
mkdir -p "$work/src" "$work/build"
tar -xJf "$tarball" -C "$work/src" --strip-components=1
# vppapigen runs with /usr/bin/env python3: Debian's python3 (which has ply)
# must come first on PATH. Only memif, vhost and ping: no DPDK, no hugepages.
export PATH=/usr/bin:$PATH
(cd "$work/build" && cmake -G Ninja "$work/src/src" -DCMAKE_BUILD_TYPE=release -DVPP_USE_LTO=OFF \
	-DVPP_PLUGINS=memif,vhost,ping -DPython3_EXECUTABLE=/usr/bin/python3 \
	-DCMAKE_INSTALL_PREFIX="$assets") >"$work/cmake.log" 2>&1 ||
	{ tail -n 40 "$work/cmake.log" >&2; fail "configuring VPP failed (log: $work/cmake.log)"; }
# ninja prints [n/total] per step: one line of progress every 50 steps.
if ! ninja -C "$work/build" 2>&1 | tee "$work/ninja.log" | awk '/^\[[0-9]+\/[0-9]+\]/ { split(substr($1, 2), a, "/"); if (a[1] % 50 == 0 || a[1] == a[2]) { print "vpp-assets: build step " a[1] " of " a[2]; fflush() } }' >&2 ||
	! grep -q '^\[[0-9]*/[0-9]*\]' "$work/ninja.log" || grep -q '^FAILED' "$work/ninja.log"; then
	tail -n 40 "$work/ninja.log" >&2
	fail "building VPP failed (log: $work/ninja.log)"
fi
rm -rf -- "$assets"
for c in vpp vpp-plugin-core libvppinfra; do
	cmake --install "$work/build" --component "$c" >>"$work/install.log" 2>&1 ||
		{ tail -n 20 "$work/install.log" >&2; fail "installing the $c component failed"; }
done
[[ -x $assets/bin/vppctl ]] || cp "$work/build/bin/vppctl" "$assets/bin/vppctl"
has_plugins "$assets/lib/x86_64-linux-gnu/vpp_plugins" || fail "the build lacks one of ${plugins[*]}"
rm -rf -- "$work"
say "built VPP $version into $assets"
publish "$assets" "$assets/lib/x86_64-linux-gnu/vpp_plugins"
