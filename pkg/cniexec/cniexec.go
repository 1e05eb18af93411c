// Package cniexec runs a CNI plugin binary as a runtime does: found by its
// type in CNI_PATH, given the CNI environment and the network configuration
// on stdin, its stdout read as a result or a CNI error.
//
// It stands in for libcni's pkg/invoke, which links OpenTelemetry's
// propagation and with it net/http, crypto/tls and dozens more packages whose
// init runs at every start of the plugin, though it needs none of them.
package cniexec

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/types/create"
	"github.com/containernetworking/cni/pkg/version"
)

// Find returns the path of the plugin called name in the first directory of
// dirs that holds a regular file of that name. The name is a file name, never
// a path: a network configuration must not run a binary outside CNI_PATH.
func Find(name string, dirs []string) (string, error) {
	if name == "" {
		return "", errors.New("no CNI plugin name given")
	}
	if strings.ContainsRune(name, os.PathSeparator) {
		return "", fmt.Errorf("invalid CNI plugin name %q: a file name is expected, not a path", name)
	}
	if len(dirs) == 0 {
		return "", fmt.Errorf("cannot find CNI plugin %q: CNI_PATH is empty", name)
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p, nil
		}
	}
	return "", fmt.Errorf("CNI plugin %q not found in CNI_PATH %s", name, strings.Join(dirs, string(os.PathListSeparator)))
}

// Retries on ETXTBSY: the binary is being written (a DaemonSet installing
// it), or, briefly, another fork of this process holds it open for writing.
const (
	defaultBusyRetries = 5
	defaultBusyWait    = time.Second
)

// waitDelay bounds the wait for the plugin's output once it has been killed
// or has exited: a child it left behind may hold stdout or stderr open.
const waitDelay = time.Second

// stderrKept bounds how much of a failed plugin's stderr goes into the error.
const stderrKept = 4096

// Cmd is one run of a CNI plugin.
type Cmd struct {
	Path   string    // the plugin's binary, as Find returns it
	Env    []string  // its whole environment (CNI_COMMAND and the rest)
	Stdin  []byte    // the network configuration
	Stderr io.Writer // gets the plugin's stderr unless the error holds it; nil drops it

	// busyRetries and busyWait replace the ETXTBSY defaults when set (tests).
	busyRetries int
	busyWait    time.Duration
}

// Error is a run that failed without a CNI error on stdout: the plugin
// could not start, crashed, was killed, or printed something else.
type Error struct {
	Plugin string // the binary's path
	Err    error  // how the run ended
	Stderr string // the end of the plugin's stderr
	Stdout string // the plugin's stdout, when it printed something
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "CNI plugin %s failed: %v", e.Plugin, e.Err)
	if e.Stderr != "" {
		fmt.Fprintf(&b, "; stderr: %q", e.Stderr)
	}
	if e.Stdout != "" {
		fmt.Fprintf(&b, "; stdout (not a CNI error): %q", e.Stdout)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Run runs the plugin and returns its stdout. A plugin that fails with a CNI
// error on stdout gets that *types.Error back unchanged (its code is the
// caller's answer); any other failure is an *Error. The context bounds the
// run: at its end the plugin is killed.
func (c *Cmd) Run(ctx context.Context) ([]byte, error) {
	for try := 0; ; try++ {
		out, errOut, err := c.once(ctx)
		if err == nil {
			c.forward(errOut)
			return out, nil
		}
		if errors.Is(err, syscall.ETXTBSY) && try < cmp.Or(c.busyRetries, defaultBusyRetries) {
			select {
			case <-time.After(cmp.Or(c.busyWait, defaultBusyWait)):
				continue
			case <-ctx.Done():
			}
		}
		return nil, c.failure(ctx, err, out, errOut)
	}
}

func (c *Cmd) once(ctx context.Context) (stdout, stderr []byte, err error) {
	var o, e bytes.Buffer
	cmd := exec.CommandContext(ctx, c.Path)
	cmd.Env = c.Env
	if cmd.Env == nil {
		cmd.Env = []string{} // nil would hand over this process's environment
	}
	cmd.Stdin = bytes.NewReader(c.Stdin)
	cmd.Stdout, cmd.Stderr = &o, &e
	cmd.WaitDelay = waitDelay
	err = cmd.Run()
	if errors.Is(err, exec.ErrWaitDelay) {
		// The plugin exited 0; a child it left holds the pipes. What the
		// plugin itself printed is all there.
		err = nil
	}
	return o.Bytes(), e.Bytes(), err
}

func (c *Cmd) forward(stderr []byte) {
	if c.Stderr != nil && len(stderr) > 0 {
		_, _ = c.Stderr.Write(stderr) // informational only
	}
}

func (c *Cmd) failure(ctx context.Context, err error, stdout, stderr []byte) error {
	if out := bytes.TrimSpace(stdout); len(out) > 0 {
		var cniErr types.Error
		if json.Unmarshal(out, &cniErr) == nil && (cniErr.Code != 0 || cniErr.Msg != "") {
			c.forward(stderr)
			return &cniErr
		}
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		err = fmt.Errorf("%w (%v)", ctxErr, err)
	}
	e := &Error{Plugin: c.Path, Err: err, Stdout: string(bytes.TrimSpace(stdout))}
	se := bytes.TrimSpace(stderr)
	if len(se) > stderrKept {
		se = append([]byte("..."), se[len(se)-stderrKept:]...)
	}
	e.Stderr = string(se)
	return e
}

// RunForResult runs the plugin (ADD) and decodes its stdout as DecodeResult
// does.
func (c *Cmd) RunForResult(ctx context.Context) (types.Result, error) {
	out, err := c.Run(ctx)
	if err != nil {
		return nil, err
	}
	res, err := DecodeResult(c.Stdin, out)
	if err != nil {
		return nil, fmt.Errorf("CNI plugin %s: %w", c.Path, err)
	}
	return res, nil
}

// DecodeResult decodes a plugin's stdout as a result of the version it
// names, or, when it names none, of the network configuration's cniVersion
// (older plugins leave it out).
func DecodeResult(netconf, stdout []byte) (types.Result, error) {
	confVersion, err := (&version.ConfigDecoder{}).Decode(netconf)
	if err != nil {
		return nil, fmt.Errorf("reading the network configuration's cniVersion: %w", err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(stdout, &raw); err != nil {
		return nil, fmt.Errorf("decoding the result %q: %w", bytes.TrimSpace(stdout), err)
	}
	if raw == nil { // the plugin printed null
		raw = map[string]json.RawMessage{}
	}
	var ver string
	if v, ok := raw["cniVersion"]; ok {
		_ = json.Unmarshal(v, &ver) // a non-string counts as absent
	}
	if ver == "" {
		ver = confVersion
		v, err := json.Marshal(confVersion)
		if err != nil {
			return nil, err
		}
		raw["cniVersion"] = v
		if stdout, err = json.Marshal(raw); err != nil {
			return nil, fmt.Errorf("re-encoding the result: %w", err)
		}
	}
	res, err := create.Create(ver, stdout)
	if err != nil {
		return nil, fmt.Errorf("decoding the result as CNI %s: %w", ver, err)
	}
	return res, nil
}
