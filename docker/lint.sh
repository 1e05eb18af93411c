#!/usr/bin/env bash
# Lints the image Dockerfiles (docker/*/Dockerfile) with tools/dockerlint:
# BuildKit's own Dockerfile checks (those of `docker build --check`, from the
# BuildKit version in tools/dockerlint/go.mod) plus the project's rules that
# a build does not enforce (pinned base images, a non-root final stage unless
# `# lint:root-required <reason>`, apt-get install with
# --no-install-recommends and cleaned lists; docker/README.md says why these
# and no others). Needs no Docker engine.
#
#   docker/lint.sh               lint docker/*/Dockerfile
#   docker/lint.sh FILE...       lint these Dockerfiles
#   docker/lint.sh --self-test   the linter's tests: the fixtures in
#                                docker/testdata must fail (bad-*) or pass (good-*)
#
# Exits non-zero on any finding, and when the linter cannot be built: it never
# skips. The linter is built from the Go module proxy with the machine's Go
# and cached by the hash of its sources in ~/.cache/userspace-cni/ (or
# $USERSPACE_CNI_CACHE), so only the first run pays for the build.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
src="$root/tools/dockerlint"
cache=${USERSPACE_CNI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/userspace-cni}

die() { echo "docker/lint.sh: $*" >&2; exit 1; }

command -v go >/dev/null 2>&1 || die "go is not installed: the linter (tools/dockerlint) is built with Go"
command -v sha256sum >/dev/null 2>&1 || die "sha256sum (coreutils) is missing"

# The linter binary, named by the hash of everything it is built from.
hash=$(cd "$src" && { go env GOVERSION; cat go.mod go.sum ./*.go; } | sha256sum | cut -c1-16)
bin="$cache/dockerlint-$hash"
if [[ ! -x $bin ]]; then
	echo "docker/lint.sh: building the linter into $bin (first run only)" >&2
	mkdir -p "$cache"
	tmp="$bin.tmp.$$"
	trap 'rm -f "$tmp"' EXIT
	(cd "$src" && CGO_ENABLED=0 go build -buildvcs=false -trimpath -o "$tmp" .) ||
		die "building the linter failed (it needs the Go module proxy on the first run)"
	mv -f "$tmp" "$bin"
	trap - EXIT
fi

if [[ ${1:-} == --self-test ]]; then
	# The tests check each fixture's findings against its `# expect:` line;
	# then the binary must exit 1 on the bad fixtures and 0 on the good ones.
	(cd "$src" && CGO_ENABLED=0 go test -vet=off -buildvcs=false -trimpath -count=1 ./...) || die "self-test: the linter's tests failed"
	rc=0
	"$bin" "$root"/docker/testdata/bad-*.Dockerfile >/dev/null 2>&1 || rc=$?
	((rc == 1)) || die "self-test: the linter exits $rc on the bad fixtures, want 1"
	"$bin" "$root"/docker/testdata/good-*.Dockerfile || die "self-test: a good fixture has findings"
	echo "$("$bin" -version): self-test passed"
	exit 0
fi

if (($# > 0)); then
	files=("$@")
else
	shopt -s nullglob
	files=("$root"/docker/*/Dockerfile)
	((${#files[@]} > 0)) || die "no Dockerfiles found under docker/"
	cd "$root"
	files=("${files[@]#"$root"/}")
fi
"$bin" "${files[@]}"
echo "$("$bin" -version): ${#files[@]} Dockerfile(s) clean"
