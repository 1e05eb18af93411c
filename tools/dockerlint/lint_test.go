package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// repoRoot is the project's root, two levels up from tools/dockerlint.
const repoRoot = "../.."

// TestFixtures lints each docker/testdata/*.Dockerfile and compares the set of
// rules it breaks with its `# expect:` line (`# expect: none` for a
// Dockerfile that must pass).
func TestFixtures(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(repoRoot, "docker/testdata/*.Dockerfile"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures in docker/testdata (%v)", err)
	}
	sawBad := false
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			dt, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			want := expectedRules(t, dt)
			if strings.HasPrefix(filepath.Base(f), "bad-") {
				sawBad = true
				if len(want) == 0 {
					t.Fatal("a bad- fixture must expect findings")
				}
			}
			findings := Lint(filepath.Base(f), dt)
			var got []string
			for _, fd := range findings {
				if !slices.Contains(got, fd.Rule) {
					got = append(got, fd.Rule)
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				var lines []string
				for _, fd := range findings {
					lines = append(lines, fd.String())
				}
				t.Errorf("rules broken = %v, want %v; findings:\n%s", got, want, strings.Join(lines, "\n"))
			}
		})
	}
	if !sawBad {
		t.Error("no bad- fixture: the linter's failures are not exercised")
	}
}

func expectedRules(t *testing.T, dt []byte) []string {
	t.Helper()
	for _, l := range strings.Split(string(dt), "\n") {
		if rest, ok := strings.CutPrefix(l, "# expect:"); ok {
			rules := strings.Fields(rest)
			if len(rules) == 1 && rules[0] == "none" {
				return nil
			}
			slices.Sort(rules)
			return rules
		}
	}
	t.Fatal("fixture has no `# expect:` line")
	return nil
}

// TestProjectDockerfiles: the images' Dockerfiles are clean.
func TestProjectDockerfiles(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(repoRoot, "docker/*/Dockerfile"))
	if err != nil || len(files) < 3 {
		t.Fatalf("want the three Dockerfiles under docker/, found %v (%v)", files, err)
	}
	for _, f := range files {
		dt, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, fd := range Lint(f, dt) {
			t.Errorf("%s", fd)
		}
	}
}

func TestCheckPinned(t *testing.T) {
	for ref, ok := range map[string]bool{
		"debian":                        false,
		"debian:latest":                 false,
		"docker.io/library/debian":      false,
		"debian:bookworm":               false,
		"debian:bookworm-slim":          false,
		"golang:1.26.8-bookworm":        true,
		"debian:bookworm-20260824-slim": true,
		"busybox:1.37.0":                true,
		"registry.example.com:5000/team/app@sha256:" + strings.Repeat("a", 64): true,
		"registry.example.com:5000/team/app":                                   false,
		"Debian:1":                                                             false, // not a valid reference
	} {
		if got := checkPinned(ref) == ""; got != ok {
			t.Errorf("checkPinned(%q) pinned = %v, want %v (%s)", ref, got, ok, checkPinned(ref))
		}
	}
}

func TestAptRules(t *testing.T) {
	for run, want := range map[string][]string{
		"RUN apt-get update && apt-get install -y --no-install-recommends a && rm -rf /var/lib/apt/lists/*":                 nil,
		"RUN apt-get install -qqy --no-install-recommends a; rm -rf /var/lib/apt/lists":                                     nil,
		"RUN apt-get -o Dpkg::Options::=--force-confnew install -y --no-install-recommends a && rm -r /var/lib/apt/lists/*": nil,
		"RUN apt-get update && apt-get upgrade -y":                                                                          nil, // not an install
		"RUN echo apt-get install is documented here":                                                                       nil,
		"RUN apt-get install -y a && rm -rf /var/lib/apt/lists/*":                                                           {RuleAptNoInstallRecommends},
		"RUN apt-get install -y --no-install-recommends a":                                                                  {RuleAptListsCleaned},
		"RUN /usr/bin/apt-get --yes install b && rm -fr /var/lib/apt/lists/*":                                               {RuleAptNoInstallRecommends},
		"RUN apt-get install --no-install-recommends -y a && apt-get install -y a && rm -rf /var/lib/apt/lists/*":           {RuleAptNoInstallRecommends},
	} {
		dt := "FROM debian:bookworm-20260824-slim\n" + run + "\nUSER 1\n"
		var got []string
		for _, f := range Lint("Dockerfile", []byte(dt)) {
			got = append(got, f.Rule)
		}
		slices.Sort(got)
		w := slices.Clone(want)
		slices.Sort(w)
		if !slices.Equal(got, w) {
			t.Errorf("%s: rules %v, want %v", run, got, w)
		}
	}
}

func TestFinalStageUser(t *testing.T) {
	const base = "FROM debian:bookworm-20260824-slim AS a\n"
	for df, bad := range map[string]bool{
		base:                                       true,
		base + "USER 10001\n":                      false,
		base + "USER app:app\n":                    false,
		base + "USER 0:0\n":                        true,
		base + "USER 1000\nUSER root\n":            true,
		base + "USER root\nUSER 1000\n":            false,
		base + "USER 1000\nFROM a\n":               false, // inherits the earlier stage's USER
		base + "USER 1000\nFROM a\nUSER root\n":    true,
		base + "# lint:root-required needs /dev\n": false,
		"# lint:root-required only for stage a\n" + base + "USER 1\nFROM debian:bookworm-20260824-slim\n": true, // a comment in another stage does not count
		base + "# lint:root-required\n": true,
		base + "ARG U=0\nUSER ${U}\n":   false, // a USER from a variable is taken as deliberate
	} {
		found := false
		for _, f := range Lint("Dockerfile", []byte(df)) {
			if f.Rule == RuleFinalStageNonRoot {
				found = true
			}
		}
		if found != bad {
			t.Errorf("%q: FinalStageNonRoot reported = %v, want %v", df, found, bad)
		}
	}
}

func TestBuildError(t *testing.T) {
	fs := Lint("Dockerfile", []byte("FROM debian:bookworm-20260824-slim\nFETCH /a /b\nUSER 1\n"))
	if len(fs) != 1 || fs[0].Rule != "BuildError" || fs[0].Line != 2 {
		t.Errorf("findings %v, want one BuildError on line 2 for the unknown instruction", fs)
	}
}
