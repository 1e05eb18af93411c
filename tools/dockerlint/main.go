// Command dockerlint lints Dockerfiles offline with BuildKit's own checks
// (the rules `docker build --check` applies, run through the same BuildKit
// code) plus the project's rules (see rules.go): pinned base images, a
// non-root final stage unless `# lint:root-required <reason>` says why not,
// and apt-get installs with --no-install-recommends and cleaned lists.
//
// Usage: dockerlint [-version] Dockerfile...
//
// It prints one line per finding, `file:line: Rule: message`, and exits 1 if
// there was any finding, 2 if a file could not be read or on a usage error.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime/debug"
)

func main() {
	version := flag.Bool("version", false, "print the BuildKit version the checks come from and exit")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: dockerlint [-version] Dockerfile...")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *version {
		fmt.Println("dockerlint, BuildKit " + buildkitVersion())
		return
	}
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}

	all := []Finding{}
	for _, name := range flag.Args() {
		dt, err := os.ReadFile(name)
		if err != nil {
			fmt.Fprintln(os.Stderr, "dockerlint:", err)
			os.Exit(2)
		}
		all = append(all, Lint(name, dt)...)
	}
	for _, f := range all {
		fmt.Println(f)
	}
	if len(all) > 0 {
		fmt.Fprintf(os.Stderr, "dockerlint: %d finding(s) in %d file(s)\n", len(all), flag.NArg())
		os.Exit(1)
	}
}

func buildkitVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/moby/buildkit" {
				return d.Version
			}
		}
	}
	return "(unknown)"
}
