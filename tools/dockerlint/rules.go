package main

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"

	"github.com/distribution/reference"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// The project's rules, on top of BuildKit's: only those a build does not
// enforce, since the end-to-end test builds the images (docker/README.md says
// why each stays). Each can be turned off for one Dockerfile with BuildKit's
// directive, e.g. `# check=skip=AptListsCleaned`.
const (
	// Every FROM names a base image by digest or by a specific tag: not
	// untagged (which means latest), not `latest`, and not a moving tag
	// without a version or date in it (`bookworm`, `stable`, `slim`).
	RulePinnedBaseImage = "PinnedBaseImage"
	// The final stage runs as a non-root USER, unless the stage carries a
	// `# lint:root-required <reason>` comment.
	RuleFinalStageNonRoot = "FinalStageNonRoot"
	// `apt-get install` passes --no-install-recommends.
	RuleAptNoInstallRecommends = "AptNoInstallRecommends"
	// A RUN that installs packages removes /var/lib/apt/lists/* in the same
	// layer (or keeps them in a cache mount).
	RuleAptListsCleaned = "AptListsCleaned"
)

// rootRequired matches the annotation that allows a root final stage; the
// reason is group 1.
var rootRequired = regexp.MustCompile(`^\s*#\s*lint:root-required\b(.*)$`)

func projectRules(filename string, dt []byte) []Finding {
	skip, err := skippedRules(dt)
	if err != nil || skip["all"] {
		return nil // BuildKit reports a malformed check directive itself
	}
	ast, err := parser.Parse(bytes.NewReader(dt))
	if err != nil {
		return nil // reported by BuildKit as a BuildError
	}
	stages, metaArgs, err := instructions.Parse(ast.AST, nil)
	if err != nil || len(stages) == 0 {
		return nil // likewise
	}
	lex := shell.NewLex(ast.EscapeToken)
	env := globalArgs(lex, metaArgs)

	var out []Finding
	add := func(rule string, line int, format string, args ...any) {
		if !skip[rule] {
			out = append(out, Finding{File: filename, Line: line, Rule: rule, Message: fmt.Sprintf(format, args...)})
		}
	}

	// PinnedBaseImage.
	for i, st := range stages {
		base, _, err := lex.ProcessWord(st.BaseName, env)
		if err != nil {
			add(RulePinnedBaseImage, lineOf(st.Location), "cannot expand base image %q: %v", st.BaseName, err)
			continue
		}
		if strings.EqualFold(base, "scratch") || stageIndex(stages[:i], base) >= 0 {
			continue
		}
		if msg := checkPinned(base); msg != "" {
			add(RulePinnedBaseImage, lineOf(st.Location), "%s", msg)
		}
	}

	// FinalStageNonRoot.
	last := len(stages) - 1
	user, userLine := effectiveUser(stages, last, lex, env)
	if user == "" || isRootUser(user) {
		start := 0 // the final stage's region starts after the previous stage
		if last > 0 {
			start = stageEndLine(stages[last-1])
		}
		reason, line, found := rootRequiredComment(dt, start)
		switch {
		case found && strings.TrimSpace(reason) == "":
			add(RuleFinalStageNonRoot, line, "`# lint:root-required` needs a reason: `# lint:root-required <why this image must run as root>`")
		case found:
			// Allowed: the reason is documented.
		case user == "":
			add(RuleFinalStageNonRoot, lineOf(stages[last].Location),
				"the final stage has no USER, so it runs as root: add `USER <uid>:<gid>` (a non-root, preferably numeric user) or a `# lint:root-required <reason>` comment in the stage")
		default:
			add(RuleFinalStageNonRoot, userLine,
				"the final stage runs as root (USER %s): use a non-root user or add a `# lint:root-required <reason>` comment in the stage", user)
		}
	}

	// Apt rules.
	for _, st := range stages {
		for _, c := range st.Commands {
			run, ok := c.(*instructions.RunCommand)
			if !ok {
				continue
			}
			for _, p := range aptProblems(run) {
				add(p.rule, lineOf(run.Location()), "%s", p.msg)
			}
		}
	}
	return out
}

// envMap is a shell.EnvGetter over a map.
type envMap map[string]string

func (e envMap) Get(k string) (string, bool) { v, ok := e[k]; return v, ok }
func (e envMap) Keys() []string {
	keys := make([]string, 0, len(e))
	for k := range e {
		keys = append(keys, k)
	}
	return keys
}

// globalArgs are the ARGs before the first FROM with their default values,
// which is what FROM lines expand with when no --build-arg is given.
func globalArgs(lex *shell.Lex, metaArgs []instructions.ArgCommand) envMap {
	env := envMap{}
	for _, a := range metaArgs {
		for _, kv := range a.Args {
			if kv.Value == nil {
				continue
			}
			v, _, err := lex.ProcessWord(*kv.Value, env)
			if err != nil {
				v = *kv.Value
			}
			env[kv.Key] = v
		}
	}
	return env
}

func stageIndex(stages []instructions.Stage, name string) int {
	for i := len(stages) - 1; i >= 0; i-- {
		if stages[i].Name != "" && strings.EqualFold(stages[i].Name, name) {
			return i
		}
	}
	return -1
}

// checkPinned explains why an image reference is not pinned, or returns "".
func checkPinned(ref string) string {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return fmt.Sprintf("base image %q is not a valid reference: %v", ref, err)
	}
	if _, ok := named.(reference.Digested); ok {
		return ""
	}
	tagged, ok := named.(reference.Tagged)
	if !ok {
		return fmt.Sprintf("base image %q has no tag, so it means :latest: pin a specific tag (e.g. a version or a dated tag) or a digest", ref)
	}
	tag := tagged.Tag()
	if tag == "latest" {
		return fmt.Sprintf("base image %q uses the moving tag latest: pin a specific tag or a digest", ref)
	}
	if !strings.ContainsAny(tag, "0123456789") {
		return fmt.Sprintf("base image %q uses the moving tag %q (no version or date in it): pin a specific tag or a digest", ref, tag)
	}
	return ""
}

// effectiveUser is the user stage i runs as: its last USER, else (when it is
// built FROM an earlier stage) that stage's. "" means none was set: root.
func effectiveUser(stages []instructions.Stage, i int, lex *shell.Lex, env envMap) (user string, line int) {
	for depth := 0; depth <= len(stages); depth++ {
		st := stages[i]
		for j := len(st.Commands) - 1; j >= 0; j-- {
			if u, ok := st.Commands[j].(*instructions.UserCommand); ok {
				// Not expanded: a USER from a variable is taken as set
				// deliberately (BuildKit's UndefinedVar covers typos).
				return u.User, lineOf(u.Location())
			}
		}
		base, _, err := lex.ProcessWord(st.BaseName, env)
		if err != nil {
			return "", 0
		}
		k := stageIndex(stages[:i], base)
		if k < 0 {
			return "", 0
		}
		i = k
	}
	return "", 0
}

func isRootUser(user string) bool {
	name, _, _ := strings.Cut(user, ":")
	return name == "root" || name == "0"
}

// stageEndLine is the last line of a stage's last instruction.
func stageEndLine(st instructions.Stage) int {
	end := endLineOf(st.Location)
	for _, c := range st.Commands {
		end = max(end, endLineOf(c.Location()))
	}
	return end
}

// rootRequiredComment finds a `# lint:root-required` comment on a line after
// line `after` (1-based).
func rootRequiredComment(dt []byte, after int) (reason string, line int, found bool) {
	for i, l := range strings.Split(string(dt), "\n") {
		if i+1 <= after {
			continue
		}
		if m := rootRequired.FindStringSubmatch(strings.TrimRight(l, "\r")); m != nil {
			return m[1], i + 1, true
		}
	}
	return "", 0, false
}

type problem struct{ rule, msg string }

var (
	segmentSep  = regexp.MustCompile(`&&|\|\||[;|&\n()]`)
	assignment  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`)
	aptArgOpts  = map[string]bool{"-o": true, "-c": true, "-t": true, "--option": true, "--config-file": true, "--target-release": true, "--default-release": true}
	aptCommands = map[string]bool{"apt-get": true, "apt": true}
	cmdWrappers = map[string]bool{"env": true, "exec": true, "sudo": true, "command": true, "nice": true,
		"then": true, "do": true, "else": true, "!": true}
)

// aptProblems checks the apt-get/apt install commands of one RUN (shell or
// exec form, heredocs included).
func aptProblems(run *instructions.RunCommand) []problem {
	text := strings.Join(run.CmdLine, " ")
	for _, f := range run.Files {
		text += "\n" + f.Data
	}
	text = strings.ReplaceAll(text, "\\\n", " ")

	var out []problem
	installs, cleaned := false, false
	for _, seg := range segmentSep.Split(text, -1) {
		toks := strings.Fields(seg)
		for i := range toks {
			toks[i] = strings.Trim(toks[i], `"'`)
		}
		// The command word: the first token after variable assignments,
		// shell keywords and wrappers like `env`.
		cmd := 0
		for cmd < len(toks) && (assignment.MatchString(toks[cmd]) || cmdWrappers[toks[cmd]]) {
			cmd++
		}
		if cmd >= len(toks) {
			continue
		}
		name, args := baseName(toks[cmd]), toks[cmd+1:]
		if name == "rm" {
			for _, t := range args {
				if strings.HasPrefix(t, "/var/lib/apt/lists") {
					cleaned = true
				}
			}
		}
		if !aptCommands[name] || aptSubcommand(args) != "install" {
			continue
		}
		installs = true
		line := strings.Join(toks[cmd:], " ")
		if !hasNoRecommends(args) {
			out = append(out, problem{RuleAptNoInstallRecommends, fmt.Sprintf("`%s` lacks --no-install-recommends", line)})
		}
	}
	if installs && !cleaned && !aptListsMounted(run) {
		out = append(out, problem{RuleAptListsCleaned, "this RUN installs packages but does not remove /var/lib/apt/lists/* in the same layer (`&& rm -rf /var/lib/apt/lists/*`)"})
	}
	return out
}

func baseName(t string) string {
	if i := strings.LastIndex(t, "/"); i >= 0 {
		return t[i+1:]
	}
	return t
}

func aptSubcommand(args []string) string {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if aptArgOpts[a] {
			i++ // the option's value
			continue
		}
		if strings.HasPrefix(a, "-") {
			continue
		}
		return a
	}
	return ""
}

func hasNoRecommends(args []string) bool {
	for _, a := range args {
		if a == "--no-install-recommends" {
			return true
		}
		l := strings.ToLower(a)
		if strings.HasPrefix(l, "apt::install-recommends=") {
			v := strings.TrimPrefix(l, "apt::install-recommends=")
			if v == "false" || v == "0" || v == "no" {
				return true
			}
		}
	}
	return false
}

// aptListsMounted: a cache or tmpfs mount over apt's lists keeps them out of
// the image, so they need no removal.
func aptListsMounted(run *instructions.RunCommand) bool {
	// The --mount flags are parsed into mounts when the command is expanded;
	// build args do not matter for the target paths checked here.
	if err := run.Expand(func(w string) (string, error) { return w, nil }); err != nil {
		return false
	}
	for _, m := range instructions.GetMounts(run) {
		t := strings.TrimRight(m.Target, "/")
		if (m.Type == instructions.MountTypeCache || m.Type == instructions.MountTypeTmpfs) &&
			(t == "/var/lib/apt" || t == "/var/lib/apt/lists") {
			return true
		}
	}
	return false
}
