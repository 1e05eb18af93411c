package testbed

import (
	"fmt"
	"os"
	"strings"
	"time"
)

// RequiredPackages lists the Debian packages the testbed needs: the DPDK
// build of OVS, dpdk-dev (which ships dpdk-testpmd), the memif PMD (a plugin
// package: listed explicitly because EAL silently lacks net_memif without it)
// and iproute2 for "ip netns".
func RequiredPackages() []string {
	return []string{"openvswitch-switch-dpdk", "dpdk-dev", "librte-net-memif23", "iproute2"}
}

// EnsurePackages installs the given Debian packages that are not installed
// yet. As root it runs apt-get install (running apt-get update once and
// retrying if the first install fails, as on a fresh machine with no package
// lists); otherwise it returns an error naming the missing packages.
func EnsurePackages(pkgs ...string) error {
	var missing []string
	for _, p := range pkgs {
		if !installed(p) {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("missing Debian packages (need root to install): %s", strings.Join(missing, " "))
	}
	env := append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	install := append([]string{"install", "-y", "--no-install-recommends"}, missing...)
	if _, err := run(15*time.Minute, env, "apt-get", install...); err != nil {
		if _, uerr := run(10*time.Minute, env, "apt-get", "update"); uerr != nil {
			return fmt.Errorf("installing %v: %v; apt-get update: %w", missing, err, uerr)
		}
		if _, err := run(15*time.Minute, env, "apt-get", install...); err != nil {
			return fmt.Errorf("installing %v: %w", missing, err)
		}
	}
	for _, p := range missing {
		if !installed(p) {
			return fmt.Errorf("package %s still not installed after apt-get install", p)
		}
	}
	return nil
}

// installed asks dpkg whether pkg is fully installed (not just known or
// "config-files" after removal).
func installed(pkg string) bool {
	out, err := run(30*time.Second, nil, "dpkg-query", "-W", "-f=${db:Status-Status}", pkg)
	return err == nil && out == "installed"
}
