package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/frontend/dockerfile/dockerfile2llb"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerui"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// Finding is one lint violation.
type Finding struct {
	File    string
	Line    int // 1-based; 0 when the rule has no location
	Rule    string
	Message string
	URL     string
}

func (f Finding) String() string {
	s := fmt.Sprintf("%s:%d: %s: %s", f.File, f.Line, f.Rule, f.Message)
	if f.URL != "" {
		s += " (" + f.URL + ")"
	}
	return s
}

// Lint runs BuildKit's Dockerfile checks (the ones `docker build --check`
// runs, through the same code: dockerfile2llb.DockerfileLint) and the
// project's rules (rules.go) on one Dockerfile. Base images are not fetched:
// a stub resolver answers for every image (see stubResolver), so the checks
// run offline. A Dockerfile that BuildKit cannot parse or convert yields a
// BuildError finding.
func Lint(filename string, dt []byte) []Finding {
	var out []Finding

	opt := dockerfile2llb.ConvertOpt{
		// Definition must be set: LintResults.AddSource serialises it.
		SourceMap:    &llb.SourceMap{Filename: filename, Language: "Dockerfile", Data: dt, Definition: &llb.Definition{}},
		MetaResolver: stubResolver{},
		Config: dockerui.Config{
			// linux/amd64, whatever the host: the images are built for it,
			// and findings must not depend on where the linter runs.
			TargetPlatforms: []ocispecs.Platform{{OS: "linux", Architecture: "amd64"}},
		},
	}
	res, err := dockerfile2llb.DockerfileLint(context.Background(), dt, opt)
	if err != nil {
		return []Finding{{File: filename, Rule: "BuildError", Message: err.Error()}}
	}
	for _, w := range res.Warnings {
		line := 0
		if w.Location != nil && len(w.Location.Ranges) > 0 {
			line = int(w.Location.Ranges[0].Start.Line)
		}
		out = append(out, Finding{File: filename, Line: line, Rule: w.RuleName, Message: w.Detail, URL: w.URL})
	}
	if res.Error != nil {
		line := 0
		if len(res.Error.Location.Ranges) > 0 {
			line = int(res.Error.Location.Ranges[0].Start.Line)
		}
		out = append(out, Finding{File: filename, Line: line, Rule: "BuildError", Message: res.Error.Message})
	}

	out = append(out, projectRules(filename, dt)...)
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Line != out[j].Line {
			return out[i].Line < out[j].Line
		}
		return out[i].Rule < out[j].Rule
	})
	return out
}

// skippedRules are the rules a `# check=skip=A,B` directive turns off (the
// same directive BuildKit honours for its own rules); "all" skips every rule.
func skippedRules(dt []byte) (map[string]bool, error) {
	v, _, _, _ := parser.ParseDirective("check", dt)
	cfg, err := linter.ParseLintOptions(v)
	if err != nil {
		return nil, err
	}
	skip := map[string]bool{}
	if cfg.SkipAll {
		skip["all"] = true
	}
	for _, r := range cfg.SkipRules {
		skip[r] = true
	}
	return skip, nil
}

// stubResolver stands in for a registry: every image "exists", for the
// requested platform, with one layer and the environment its official image
// has (so BuildKit's UndefinedVar rule knows PATH, GOPATH and so on). Only
// the image's platform and environment matter to the checks.
type stubResolver struct{}

func (stubResolver) ResolveImageConfig(_ context.Context, ref string, opt sourceresolver.Opt) (string, digest.Digest, []byte, error) {
	p := ocispecs.Platform{OS: "linux", Architecture: "amd64"}
	if opt.ImageOpt != nil && opt.ImageOpt.Platform != nil {
		p = *opt.ImageOpt.Platform
	}
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	name := ref
	if i := strings.LastIndex(name, "/"); i >= 0 {
		name = name[i+1:]
	}
	name, _, _ = strings.Cut(name, "@")
	name, _, _ = strings.Cut(name, ":")
	if name == "golang" {
		env = []string{
			"PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			"GOLANG_VERSION=", "GOTOOLCHAIN=local", "GOPATH=/go",
		}
	}
	cfg := map[string]any{
		"architecture": p.Architecture,
		"os":           p.OS,
		"variant":      p.Variant,
		"config":       map[string]any{"Env": env},
		"rootfs": map[string]any{
			"type":     "layers",
			"diff_ids": []string{digest.FromString(ref).String()},
		},
	}
	dt, err := json.Marshal(cfg)
	if err != nil {
		return "", "", nil, err
	}
	return ref, "", dt, nil
}

// lineOf returns the 1-based line of the first range, or 0.
func lineOf(loc []parser.Range) int {
	if len(loc) == 0 {
		return 0
	}
	return loc[0].Start.Line
}

// endLineOf returns the last line of the last range, or 0.
func endLineOf(loc []parser.Range) int {
	if len(loc) == 0 {
		return 0
	}
	return loc[len(loc)-1].End.Line
}
