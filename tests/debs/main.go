// Command debs installs the Debian packages `make test` needs that are
// missing (testbed.AllPackages: the one list of them), showing progress.
package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/userspace-cni/userspace/tests/testbed"
)

func main() {
	pkgs := testbed.AllPackages()
	if missing := testbed.MissingPackages(pkgs...); len(missing) > 0 {
		fmt.Println("installing:", strings.Join(missing, " "))
	}
	if err := testbed.InstallPackages(os.Stdout, pkgs...); err != nil {
		fmt.Fprintln(os.Stderr, "debs:", err)
		os.Exit(1)
	}
}
