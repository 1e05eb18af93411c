package cniexec

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	types040 "github.com/containernetworking/cni/pkg/types/040"
	types100 "github.com/containernetworking/cni/pkg/types/100"
)

// script writes an executable shell script called name into dir.
func script(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFind(t *testing.T) {
	a, b, c := t.TempDir(), t.TempDir(), t.TempDir()
	script(t, b, "ipam", "exit 0\n")
	script(t, c, "ipam", "exit 0\n")
	// A directory of the name is no plugin: the search goes on.
	if err := os.Mkdir(filepath.Join(a, "ipam"), 0o755); err != nil {
		t.Fatal(err)
	}
	if p, err := Find("ipam", []string{a, b, c}); err != nil || p != filepath.Join(b, "ipam") {
		t.Errorf("Find = %q, %v; want the first regular file, %s", p, err, filepath.Join(b, "ipam"))
	}
	if p, err := Find("ipam", []string{c, b}); err != nil || p != filepath.Join(c, "ipam") {
		t.Errorf("Find in reversed order = %q, %v; want %s", p, err, filepath.Join(c, "ipam"))
	}

	for _, tc := range []struct {
		name string
		dirs []string
		want []string // in the error
	}{
		{name: "missing", dirs: []string{a, b}, want: []string{`"missing"`, a, b}},
		{name: "", dirs: []string{b}, want: []string{"no CNI plugin name"}},
		{name: filepath.Join(b, "ipam"), dirs: []string{b}, want: []string{"invalid CNI plugin name", "not a path"}},
		{name: "../" + filepath.Base(b) + "/ipam", dirs: []string{b}, want: []string{"invalid CNI plugin name"}},
		{name: "ipam", dirs: nil, want: []string{`"ipam"`, "CNI_PATH is empty"}},
	} {
		p, err := Find(tc.name, tc.dirs)
		if err == nil {
			t.Errorf("Find(%q, %v) = %q, want an error", tc.name, tc.dirs, p)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("Find(%q, %v) error %q does not name %q", tc.name, tc.dirs, err, w)
			}
		}
	}
}

// The plugin gets exactly the given environment and stdin; its stdout is the
// answer and its stderr goes to Stderr.
func TestRunPassesEnvAndStdin(t *testing.T) {
	t.Setenv("CNIEXEC_TEST_LEAK", "from the parent")
	p := script(t, t.TempDir(), "echo", `printf '%s|%s|%s|' "$CNI_COMMAND" "$CNI_PATH" "$CNIEXEC_TEST_LEAK"
cat
echo "a note" >&2
`)
	var stderr bytes.Buffer
	c := &Cmd{Path: p, Env: []string{"CNI_COMMAND=DEL", "CNI_PATH=/x:/y"}, Stdin: []byte(`{"cniVersion":"1.0.0"}`), Stderr: &stderr}
	out, err := c.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := `DEL|/x:/y||{"cniVersion":"1.0.0"}`; string(out) != want {
		t.Errorf("stdout %q, want %q", out, want)
	}
	if stderr.String() != "a note\n" {
		t.Errorf("stderr %q, want the plugin's", stderr.String())
	}
}

// A CNI error on stdout comes back as the *types.Error it is.
func TestRunReturnsThePluginsCNIError(t *testing.T) {
	p := script(t, t.TempDir(), "failing", `cat >/dev/null
echo '{"cniVersion":"1.0.0","code":11,"msg":"pool exhausted","details":"10.0.0.0/30"}'
echo "allocator: no free address" >&2
exit 1
`)
	var stderr bytes.Buffer
	_, err := (&Cmd{Path: p, Stdin: []byte("{}"), Stderr: &stderr}).Run(context.Background())
	cniErr, ok := err.(*types.Error)
	if !ok {
		t.Fatalf("error %T %v, want a *types.Error", err, err)
	}
	if cniErr.Code != 11 || cniErr.Msg != "pool exhausted" || cniErr.Details != "10.0.0.0/30" {
		t.Errorf("error %+v, want the plugin's code, msg and details", *cniErr)
	}
	if !strings.Contains(stderr.String(), "no free address") {
		t.Errorf("stderr %q: the plugin's stderr was not passed on", stderr.String())
	}
}

// A failure without a CNI error names the plugin and carries its exit status
// and stderr.
func TestRunFailureWithoutCNIError(t *testing.T) {
	dir := t.TempDir()
	crash := script(t, dir, "crash", `echo "panic: nil map" >&2
exit 3
`)
	garbage := script(t, dir, "garbage", `echo 'not json'
exit 1
`)
	var stderr bytes.Buffer
	_, err := (&Cmd{Path: crash, Stderr: &stderr}).Run(context.Background())
	var e *Error
	var exit *exec.ExitError
	if !errors.As(err, &e) || !errors.As(err, &exit) || exit.ExitCode() != 3 {
		t.Fatalf("error %T %v, want an *Error wrapping exit status 3", err, err)
	}
	for _, w := range []string{crash, "exit status 3", "panic: nil map"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not name %q", err, w)
		}
	}
	if stderr.Len() != 0 {
		t.Errorf("stderr %q passed on though the error holds it", stderr.String())
	}

	_, err = (&Cmd{Path: garbage}).Run(context.Background())
	if !errors.As(err, &e) || !strings.Contains(err.Error(), "not json") {
		t.Errorf("error %v, want an *Error quoting the stdout", err)
	}

	_, err = (&Cmd{Path: filepath.Join(dir, "absent")}).Run(context.Background())
	if !errors.As(err, &e) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("running a missing binary: %v, want an *Error wrapping fs.ErrNotExist", err)
	}
}

// The context's end kills a hanging plugin.
func TestRunKillsAtTheDeadline(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	p := script(t, dir, "hang", "echo $$ >"+pidFile+"\nexec sleep 60\n")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := (&Cmd{Path: p}).Run(ctx)
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("Run returned after %v", took)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v, want the deadline", err)
	}
	data, rerr := os.ReadFile(pidFile)
	if rerr != nil {
		t.Fatal(rerr)
	}
	pid, rerr := strconv.Atoi(strings.TrimSpace(string(data)))
	if rerr != nil {
		t.Fatal(rerr)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("plugin process %d still exists (kill 0: %v)", pid, err)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// A plugin that exits but leaves a child holding its stdout does not hold
// the caller until that child ends.
func TestRunDoesNotWaitForTheChildren(t *testing.T) {
	p := script(t, t.TempDir(), "forks", "sleep 5 &\necho done\n")
	start := time.Now()
	out, err := (&Cmd{Path: p}).Run(context.Background())
	if err != nil || string(out) != "done\n" {
		t.Errorf("Run = %q, %v; want the plugin's stdout", out, err)
	}
	if took := time.Since(start); took > 4*time.Second {
		t.Errorf("Run waited %v for the plugin's child", took)
	}
}

// A binary held open for writing (being installed) is retried until it is
// closed, and a bounded number of times.
func TestRunRetriesABusyBinary(t *testing.T) {
	const wait = 50 * time.Millisecond
	dir := t.TempDir()
	p := filepath.Join(dir, "installing")

	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("#!/bin/sh\necho ran\n"); err != nil {
		t.Fatal(err)
	}
	_, err = (&Cmd{Path: p, busyRetries: 2, busyWait: wait}).Run(context.Background())
	if !errors.Is(err, syscall.ETXTBSY) {
		t.Errorf("running a binary open for writing: %v, want ETXTBSY after the retries", err)
	}

	go func() {
		time.Sleep(300 * time.Millisecond)
		f.Close()
	}()
	out, err := (&Cmd{Path: p, busyRetries: 40, busyWait: wait}).Run(context.Background())
	if err != nil || string(out) != "ran\n" {
		t.Errorf("Run = %q, %v; want a run once the binary is closed", out, err)
	}
}

func TestRunForResult(t *testing.T) {
	dir := t.TempDir()
	p := script(t, dir, "ipam", `cat >/dev/null
echo '{"ips":[{"address":"10.1.2.3/24","gateway":"10.1.2.1"}]}'
`)
	r, err := (&Cmd{Path: p, Stdin: []byte(`{"cniVersion":"1.0.0","name":"n"}`)}).RunForResult(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	res, ok := r.(*types100.Result)
	if !ok || res.CNIVersion != "1.0.0" || len(res.IPs) != 1 || res.IPs[0].Address.String() != "10.1.2.3/24" {
		t.Errorf("result %T %+v, want a 1.0.0 result with 10.1.2.3/24", r, r)
	}

	bad := script(t, dir, "bad", "cat >/dev/null\necho '[1]'\n")
	if _, err := (&Cmd{Path: bad, Stdin: []byte(`{"cniVersion":"1.0.0"}`)}).RunForResult(context.Background()); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("a result that is no object: %v, want an error naming the plugin", err)
	}
}

func TestDecodeResult(t *testing.T) {
	for _, tc := range []struct {
		name, conf, out, want string // want: the result's version, "" for an error
	}{
		{name: "version of the result wins", conf: `{"cniVersion":"0.4.0"}`, out: `{"cniVersion":"1.0.0","ips":[]}`, want: "1.0.0"},
		{name: "no version: the config's", conf: `{"cniVersion":"0.4.0"}`, out: `{"ips":[]}`, want: "0.4.0"},
		{name: "empty version: the config's", conf: `{"cniVersion":"1.1.0"}`, out: `{"cniVersion":"","ips":[]}`, want: "1.1.0"},
		{name: "null", conf: `{"cniVersion":"1.0.0"}`, out: "null", want: "1.0.0"},
		{name: "not json", conf: `{"cniVersion":"1.0.0"}`, out: "ok"},
		{name: "unknown version", conf: `{"cniVersion":"1.0.0"}`, out: `{"cniVersion":"9.9.9"}`},
		{name: "bad config", conf: `{`, out: `{}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := DecodeResult([]byte(tc.conf), []byte(tc.out))
			if tc.want == "" {
				if err == nil {
					t.Fatalf("DecodeResult = %+v, want an error", r)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.Version() != tc.want {
				t.Errorf("result version %s, want %s", r.Version(), tc.want)
			}
			if tc.want == "0.4.0" {
				if _, ok := r.(*types040.Result); !ok {
					t.Errorf("result %T, want a 0.4.0 result", r)
				}
			}
		})
	}
}
