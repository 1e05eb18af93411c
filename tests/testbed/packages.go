package testbed

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// RequiredPackages lists the Debian packages the testbed needs: the DPDK
// build of OVS, dpdk-dev (which ships dpdk-testpmd), the memif PMD (a plugin
// package: listed explicitly because EAL silently lacks net_memif without it),
// iproute2 for "ip netns", util-linux for nsenter and unshare, and xz-utils
// for unpacking the relocatable VPP (hack/vpp-assets.sh).
func RequiredPackages() []string {
	return []string{"openvswitch-switch-dpdk", "dpdk-dev", "librte-net-memif23", "iproute2", "util-linux", "xz-utils"}
}

// L3fwdPackages are what BuildL3fwd needs: DPDK's example sources and
// headers, and the tools its Makefile runs.
func L3fwdPackages() []string {
	return []string{"dpdk-doc", "libdpdk-dev", "pkg-config", "make", "gcc"}
}

// AllPackages is every Debian package `make test` needs: the test bed's, the
// demo's l3fwd build and shellcheck for the lint. The Makefile's deps target
// installs these (go run ./tests/debs), so the list has this one home.
func AllPackages() []string {
	all := append(RequiredPackages(), L3fwdPackages()...)
	return append(all, "shellcheck")
}

// EnsurePackages installs the given Debian packages that are not installed
// yet, quietly (see InstallPackages).
func EnsurePackages(pkgs ...string) error { return InstallPackages(io.Discard, pkgs...) }

// InstallPackages installs the given Debian packages that are not installed
// yet. As root it runs apt-get install (running apt-get update once and
// retrying if the first install fails, as on a fresh machine with no package
// lists); otherwise it returns an error naming the missing packages. It
// tells w what it runs and, since a first install takes minutes, that it is
// still at it every 15 s.
func InstallPackages(w io.Writer, pkgs ...string) error {
	missing := MissingPackages(pkgs...)
	if len(missing) == 0 {
		return nil
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("missing Debian packages (need root to install): %s", strings.Join(missing, " "))
	}
	env := append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	install := append([]string{"install", "-y", "--no-install-recommends"}, missing...)
	apt := func(timeout time.Duration, args ...string) error {
		fmt.Fprintf(w, "$ apt-get %s\n", strings.Join(args, " "))
		defer Progress(w, "running apt-get "+args[0], 15*time.Second)()
		_, err := run(timeout, env, "apt-get", args...)
		return err
	}
	if err := apt(15*time.Minute, install...); err != nil {
		if uerr := apt(10*time.Minute, "update"); uerr != nil {
			return fmt.Errorf("installing %v: %v; apt-get update: %w", missing, err, uerr)
		}
		if err := apt(15*time.Minute, install...); err != nil {
			return fmt.Errorf("installing %v: %w", missing, err)
		}
	}
	if still := MissingPackages(missing...); len(still) > 0 {
		return fmt.Errorf("packages %v still not installed after apt-get install", still)
	}
	return nil
}

// MissingPackages returns those of pkgs that are not installed.
func MissingPackages(pkgs ...string) []string {
	var missing []string
	for _, p := range pkgs {
		if !installed(p) {
			missing = append(missing, p)
		}
	}
	return missing
}

// installed asks dpkg whether pkg is fully installed (not just known or
// "config-files" after removal).
func installed(pkg string) bool {
	out, err := run(30*time.Second, nil, "dpkg-query", "-W", "-f=${db:Status-Status}", pkg)
	return err == nil && out == "installed"
}
