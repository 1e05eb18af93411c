package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// out prints the demo's steps the way the shell demo did: numbered steps,
// commands as a user would type them, results indented, OK lines.
type out struct {
	mu            sync.Mutex // progress lines come from other goroutines
	w             io.Writer
	step          int
	bold, green   string
	red, noColour string
}

func newOut() *out {
	o := &out{w: os.Stdout}
	if _, err := unix.IoctlGetTermios(int(os.Stdout.Fd()), unix.TCGETS); err == nil { // a terminal
		o.bold, o.green, o.red, o.noColour = "\x1b[1m", "\x1b[32m", "\x1b[31m", "\x1b[0m"
	}
	return o
}

func (o *out) printf(format string, a ...any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	fmt.Fprintf(o.w, format, a...)
}

// Step starts the next numbered step.
func (o *out) Step(format string, a ...any) {
	o.mu.Lock()
	o.step++
	n := o.step
	o.mu.Unlock()
	o.printf("\n%s==> %d. %s%s\n", o.bold, n, fmt.Sprintf(format, a...), o.noColour)
}

// Say prints a line of explanation.
func (o *out) Say(format string, a ...any) { o.printf("    %s\n", fmt.Sprintf(format, a...)) }

// Cmd prints a command line as a user would type it.
func (o *out) Cmd(argv ...string) { o.Say("$ %s", quote(argv)) }

// OK prints a check that passed.
func (o *out) OK(format string, a ...any) {
	o.printf("    %sOK%s %s\n", o.green, o.noColour, fmt.Sprintf(format, a...))
}

// Indent prints text (a command's output) indented under the step.
func (o *out) Indent(text string) {
	text = strings.TrimRight(text, "\n")
	if text == "" {
		return
	}
	o.printf("      %s\n", strings.ReplaceAll(text, "\n", "\n      "))
}

// JSON prints data (a CNI result, config data) indented as jq would.
func (o *out) JSON(data []byte) {
	var b bytes.Buffer
	if err := json.Indent(&b, bytes.TrimSpace(data), "", "  "); err != nil {
		o.Indent(string(data))
		return
	}
	o.Indent(b.String())
}

// Writer is a writer whose lines Say prints: the test bed's progress and
// the commands it runs.
func (o *out) Writer() io.Writer { return sayWriter{o} }

type sayWriter struct{ o *out }

func (s sayWriter) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		s.o.Say("%s", line)
	}
	return len(p), nil
}

var plainWord = regexp.MustCompile(`^[A-Za-z0-9_./:=,@%+-]+$`)

// quote joins argv into a shell command line, quoting what needs it.
func quote(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		if plainWord.MatchString(a) {
			q[i] = a
		} else {
			q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(q, " ")
}
