#!/usr/bin/env bash
# Builds the node test's container images on this machine, with no Docker
# engine and no registry, and prints the folder holding the ones the node
# imports, as docker-archive tarballs (for `ctr images import`):
#   registry.k8s.io/pause:3.10.1   the sandbox image: Kubernetes' own pause.c
#                                  (k8s.io/kubernetes build/pause), static
#   userspace-cni:latest           docker/installer/Dockerfile, as it is
#   userspace-cni-dpdk-app:0.1.0   docker/dpdk-app/Dockerfile, as it is
#   userspace-cni-vpp-app:0.1.0    docker/vpp-app/Dockerfile with one step
#                                  replaced: FD.io's package repository is
#                                  not reachable here, so VPP 25.10 comes from
#                                  hack/vpp-assets.sh (the build the test bed
#                                  runs), copied to /usr where the packages
#                                  put it; every other step is the file's
# and, only in the build storage, the stand-ins for the Dockerfiles' bases:
#   debian:bookworm-20260824-slim  a Debian 12 root file system (debootstrap)
#   golang:1.26.8-bookworm         that plus this machine's Go (the same
#                                  version, checked)
# Each is built by Debian's buildah (chroot isolation, host network for apt
# and the module proxy) with the overlay storage driver and --layers, in a
# private storage under ${USERSPACE_CNI_CACHE:-$XDG_CACHE_HOME/userspace-cni}/images:
# layers are stored once, as differences, and a change to cmd/ or pkg/
# rebuilds only the Go stages and the final stages' COPY of the binaries;
# the package steps (apt, l3fwd) come from the layer cache, and the Go
# stages the change replaced are pruned at the end. The build
# context is the repository's .dockerignore allowlist (tests excluded), and
# an image is rebuilt at all only when a hash of what its build reads
# changes.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${USERSPACE_CNI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/userspace-cni}
mkdir -p "$cache/images/node"
cache=$(realpath "$cache")
out=$cache/images
node=$out/node
say() { echo "node-images: $*" >&2; }

debs=()
for p in buildah debootstrap; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || debs+=("$p")
done
if ((${#debs[@]})); then
	say "installing ${debs[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${debs[@]}" >&2 ||
		{ apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${debs[@]}" >&2; }
fi

# One build at a time; the private storage is not shared with anyone else.
exec 9>"$out.lock"
flock 9
store=(--root "$out/overlay" --runroot "$out/overlay-run" --storage-driver overlay)
bh() { buildah "${store[@]}" "$@"; }

# inStore REF: the image is in the storage.
inStore() { bh inspect --type image "$1" >/dev/null 2>&1; }
# have REF ARCHIVE: the archive exists and the image is in the storage.
have() { [[ -s $2 ]] && inStore "$1"; }

# save REF ARCHIVE writes image REF as a docker-archive tarball.
save() {
	rm -f "$2.tmp"
	bh push -q "$1" "docker-archive:$2.tmp:$1" >&2
	mv -f "$2.tmp" "$2"
}

# build NAME CONTEXT DOCKERFILE REF: buildah bud with the layer cache; its
# output goes to $out/NAME.log (shown on failure). The intermediate images
# the build used or made are listed in $node/NAME.layers, for the pruning
# at the end.
build() {
	local log=$out/$1.log
	if ! bh bud --pull=never --isolation chroot --network host --layers \
		-v "$(go env GOMODCACHE):/go/pkg/mod" -v "$(go env GOCACHE):/root/.cache/go-build" \
		-f "$3" -t "$4" "$2" >"$log" 2>&1; then
		tail -40 "$log" >&2
		say "building $4 failed (log: $log)"
		exit 1
	fi
	sed -nE 's/^--> (Using cache )?([0-9a-f]{11,64})$/\2/p' "$log" >"$node/$1.layers.tmp"
}

# The Debian base, in the storage only: a point release of bookworm does not
# change what the tests use.
debian=docker.io/library/debian:bookworm-20260824-slim
if ! inStore "$debian"; then
	say "debootstrap bookworm (minbase)"
	rootfs=$(mktemp -d "$out/rootfs.XXXXXX")
	debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >&2
	rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb
	tar -C "$rootfs" -cf "$out/rootfs.tar" .
	rm -rf "$rootfs"
	c=$(bh from scratch)
	bh add "$c" "$out/rootfs.tar" / >&2
	bh config --cmd bash "$c"
	bh commit -q "$c" "$debian" >&2
	bh rm "$c" >/dev/null
	rm -f "$out/rootfs.tar"
fi

# The Go base, with the Go that built everything else here.
gover=$(go env GOVERSION)
golang=docker.io/library/golang:1.26.8-bookworm
[[ $gover == go1.26.8 ]] || { say "Go $gover here, the Dockerfiles pin golang:1.26.8"; exit 1; }
if ! inStore "$golang"; then
	say "golang stand-in from $(go env GOROOT)"
	c=$(bh from --pull=never "$debian")
	bh copy "$c" "$(go env GOROOT)" /usr/local/go >&2
	bh run "$c" -- sh -c 'apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*' >&2
	bh config --env GOPATH=/go --env GOTOOLCHAIN=local \
		--env PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		--workingdir /go "$c"
	bh commit -q "$c" "$golang" >&2
	bh rm "$c" >/dev/null
fi

# The sandbox image: Kubernetes' pause, from the k8s.io/kubernetes version the
# node runs.
kver=$(awk '($1 == "k8s.io/kubernetes" && $2 ~ /^v/) {print $2}' "$root/tools/kube/go.mod" | head -1)
pause=registry.k8s.io/pause:3.10.1
if ! have "$pause" "$node/pause-$kver.tar"; then
	src=$(cd "$root/tools/kube" && GOFLAGS=-mod=mod go list -m -f '{{.Dir}}' k8s.io/kubernetes)/build/pause/linux/pause.c
	say "pause from $src"
	tmp=$(mktemp -d)
	gcc -Os -static -Wall -Werror -DVERSION="$kver" -o "$tmp/pause" "$src" >&2
	c=$(bh from scratch)
	bh copy "$c" "$tmp/pause" /pause >&2
	bh config --entrypoint '["/pause"]' --user 65535:65535 "$c"
	bh commit -q "$c" "$pause" >&2
	bh rm "$c" >/dev/null
	rm -rf "$tmp"
	save "$pause" "$node/pause-$kver.tar"
fi

# The project's images from their Dockerfiles. The build context is what
# .dockerignore lets through (docker/README.md); an image's key hashes the
# same files, its Dockerfile and the bases' IDs.
bases=$(bh inspect --format '{{.FromImageID}}' "$debian")$(bh inspect --format '{{.FromImageID}}' "$golang")
# inputs FILE...: the context files under the given paths, as .dockerignore
# keeps them (no tests, no testdata), NUL-separated.
inputs() { (cd "$root" && find "$@" -type f ! -name '*_test.go' ! -path '*/testdata/*' -print0 | sort -z); }
keyOf() { (echo "$bases"; cd "$root" && xargs -0 sha256sum) | sha256sum | cut -c1-16; }
for spec in installer:docker.io/library/userspace-cni:latest dpdk-app:docker.io/library/userspace-cni-dpdk-app:0.1.0; do
	name=${spec%%:*} ref=${spec#*:}
	key=$(inputs .dockerignore go.mod go.sum cmd pkg deploy/userspace-cni-install.sh deploy/get-prefix.sh "docker/$name" | keyOf)
	archive=$node/$name-$key.tar
	if have "$ref" "$archive"; then continue; fi
	say "building $ref from docker/$name/Dockerfile"
	# The Dockerfile's `go mod download` fetches every module of go.mod; the
	# host may hold only those its builds used, and inside the build the
	# module proxy's certificate authority (this machine's) is unknown: a
	# fresh machine's first build failed there. Fill the mounted cache first.
	(cd "$root" && go mod download) >&2
	# The host's module and build caches save the go mod download's network
	# round trips and recompiling (same content: go.sum and build IDs check it).
	build "$name" "$root" "docker/$name/Dockerfile" "$ref"
	rm -f "$node/$name"-*.tar
	save "$ref" "$archive"
	mv -f "$node/$name.layers.tmp" "$node/$name.layers"
done

# vpp-app: a context of the files its Dockerfile copies (as .dockerignore
# keeps them), plus vpp/ (bin/vpp, bin/vppctl, lib/x86_64-linux-gnu/ with the
# libraries and the memif, ping and vhost plugins; the binaries find them
# through their RUNPATH $ORIGIN/../lib/x86_64-linux-gnu and VPP its plugins
# beside them).
vppdir=$("$root/hack/vpp-assets.sh")
libdir=$(dirname "$(cat "$vppdir/plugin-path")")
ref=docker.io/library/userspace-cni-vpp-app:0.1.0
key=$( (inputs .dockerignore go.mod go.sum cmd pkg docker/vpp-app | keyOf;
	sha256sum "$vppdir/bin/vpp" "$vppdir/bin/vppctl" "$libdir"/*.so* "$libdir"/vpp_plugins/*.so) | sha256sum | cut -c1-16)
archive=$node/vpp-app-$key.tar
if ! have "$ref" "$archive"; then
	say "building $ref from docker/vpp-app/Dockerfile, VPP from $vppdir"
	ctx=$(mktemp -d "$out/vpp-ctx.XXXXXX")
	mkdir -p "$ctx/vpp/bin" "$ctx/vpp/lib/x86_64-linux-gnu/vpp_plugins"
	inputs go.mod go.sum cmd pkg docker/vpp-app | (cd "$root" && xargs -0 cp --parents -t "$ctx/")
	{ cat "$root/.dockerignore"; echo '!vpp/'; } >"$ctx/.dockerignore"
	cp -L "$vppdir/bin/vpp" "$vppdir/bin/vppctl" "$ctx/vpp/bin/"
	cp -L "$libdir"/*.so* "$ctx/vpp/lib/x86_64-linux-gnu/"
	cp -L "$libdir"/vpp_plugins/{memif,ping,vhost}_plugin.so "$ctx/vpp/lib/x86_64-linux-gnu/vpp_plugins/"
	# The final stage's package step (from its RUN apt-get to the end of
	# that RUN) becomes one COPY; the build fails if that step is not found.
	awk '/^FROM debian/ {final=1} final && !done && /^RUN apt-get update/ {skip=1}
		skip { if ($0 !~ /\\$/) {skip=0; done=1; print "COPY vpp/ /usr/"}; next } {print}' \
		"$root/docker/vpp-app/Dockerfile" >"$ctx/Dockerfile"
	# Comments mention the repository; only instructions must not.
	if ! grep -q '^COPY vpp/ /usr/$' "$ctx/Dockerfile" || grep -v '^[[:space:]]*#' "$ctx/Dockerfile" | grep -q packagecloud; then
		rm -rf "$ctx"
		say "docker/vpp-app/Dockerfile: its package step was not replaced as expected"
		exit 1
	fi
	build vpp-app "$ctx" "$ctx/Dockerfile" "$ref"
	rm -rf "$ctx"
	rm -f "$node"/vpp-app-*.tar
	save "$ref" "$archive"
	mv -f "$node/vpp-app.layers.tmp" "$node/vpp-app.layers"
fi

# Prune the layer cache: each change to cmd/ or pkg/ leaves the previous
# Go stages' intermediate images (about 100 MB) behind. Unnamed images that
# no current image's build used go; the package steps' stay, as every
# build lists them. An image still a parent of another is refused by
# buildah and stays too.
# Only when every image's list exists (a cache from before the lists is
# left as it is).
if [[ -s $node/installer.layers && -s $node/dpdk-app.layers && -s $node/vpp-app.layers ]]; then
	used=$(cat "$node"/*.layers)
	bh images -a --format '{{.ID}} {{.Name}}' | while read -r id name; do
		[[ $name == '<none>' ]] || continue
		grep -q "^${id:0:11}" <<<"$used" && continue
		bh rmi "$id" >/dev/null 2>&1 || true
	done
fi
echo "$node"
