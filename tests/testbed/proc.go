package testbed

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc identifies a process we started. The start time (from /proc) guards
// against killing an unrelated process that reused the PID.
type proc struct {
	pid   int
	start string
}

// newProc records pid and its start time; a zero proc means "none".
func newProc(pid int) (proc, error) {
	_, start, err := procStat(pid)
	if err != nil {
		return proc{}, fmt.Errorf("pid %d: %w", pid, err)
	}
	return proc{pid: pid, start: start}, nil
}

// procStat returns the state letter and start time (field 22) of pid.
func procStat(pid int) (state byte, start string, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, "", err
	}
	// comm (field 2) may contain spaces and parentheses: split after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, "", fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:])) // f[0] is field 3 (state)
	if len(f) < 20 {
		return 0, "", fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	return f[0][0], f[19], nil
}

// ProcessRunning reports whether pid exists and is not a zombie. Zombies count
// as gone: daemons started with --detach are re-parented to PID 1, which in
// this sandbox reaps them only after a delay.
func ProcessRunning(pid int) bool {
	if pid <= 0 {
		return false
	}
	state, _, err := procStat(pid)
	return err == nil && state != 'Z' && state != 'X'
}

func (p proc) running() bool {
	if p.pid <= 0 {
		return false
	}
	state, start, err := procStat(p.pid)
	return err == nil && state != 'Z' && state != 'X' && start == p.start
}

// threadsAlive reports whether a thread of the process has not exited yet.
func (p proc) threadsAlive() bool {
	if p.pid <= 0 {
		return false
	}
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", p.pid))
	if err != nil {
		return false
	}
	for _, task := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", p.pid, task.Name()))
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		if f := strings.Fields(string(b[i+1:])); i >= 0 && len(f) > 0 && f[0] != "Z" && f[0] != "X" {
			return true
		}
	}
	return false
}

// terminate sends SIGTERM, waits up to grace, then SIGKILLs and waits again.
func (p proc) terminate(grace time.Duration) error {
	if !p.running() {
		return nil
	}
	_ = syscall.Kill(p.pid, syscall.SIGTERM)
	if p.waitGone(grace) {
		return nil
	}
	_ = syscall.Kill(p.pid, syscall.SIGKILL)
	if p.waitGone(5 * time.Second) {
		return nil
	}
	return fmt.Errorf("pid %d did not exit after SIGKILL", p.pid)
}

// waitGone waits until the process is gone or a zombie whose threads have
// all exited: a killed process's leader is a zombie while its other threads
// still exit, and only then are its files (and the locks on them, such as
// an OVS daemon's pidfile) released.
func (p proc) waitGone(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for p.running() || p.threadsAlive() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// readPidfile parses an OVS-style pidfile.
func readPidfile(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("bad pidfile %s: %q", path, b)
	}
	return pid, nil
}

// run executes a short-lived command with a timeout and returns its trimmed
// stdout. WaitDelay matters: a command that daemonizes (--detach) may leave a
// grandchild holding the output pipe, which would block Wait forever.
func run(timeout time.Duration, env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	cmd.WaitDelay = 2 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	out := strings.TrimSpace(stdout.String())
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("timed out after %v", timeout)
		}
		return out, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err,
			strings.TrimSpace(stderr.String()+"\n"+out))
	}
	return out, nil
}

// UniqueName returns prefix-<8 random hex digits>, short enough for netns
// names, DPDK file prefixes and OVS port names (IFNAMSIZ is 16).
func UniqueName(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b) // never fails on Linux
	return prefix + "-" + hex.EncodeToString(b)
}

// SandboxID returns a random 64-hex id, as container runtimes make sandbox
// (container) ids.
func SandboxID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails on Linux
	return hex.EncodeToString(b)
}

// Leftovers lists what of a run still exists: running processes and mounts
// whose command line or mount entry contains one of marks, and the files
// matching paths (names or glob patterns).
func Leftovers(marks []string, paths ...string) []string {
	has := func(s string) bool {
		for _, m := range marks {
			if m != "" && strings.Contains(s, m) {
				return true
			}
		}
		return false
	}
	var left []string
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range cmdlines {
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(f)))
		b, err := os.ReadFile(f)
		cmd := strings.Fields(strings.ReplaceAll(string(b), "\x00", " "))
		if err == nil && pid != os.Getpid() && len(cmd) > 0 && has(strings.Join(cmd, " ")) && ProcessRunning(pid) {
			left = append(left, fmt.Sprintf("process %d (%s)", pid, cmd[0]))
		}
	}
	if mi, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		for _, l := range strings.Split(string(mi), "\n") {
			if f := strings.Fields(l); len(f) > 4 && has(l) {
				left = append(left, "mount "+f[4])
			}
		}
	}
	for _, p := range paths {
		found, _ := filepath.Glob(p)
		left = append(left, found...)
	}
	return left
}

// DPDKRuntimeDir is where the DPDK EAL keeps the runtime files (config, mp
// socket, fbarray) of a process started with --file-prefix=prefix. EAL never
// removes it, so every Stop does.
func DPDKRuntimeDir(prefix string) string {
	base := "/var/run"
	if os.Geteuid() != 0 {
		base = os.Getenv("XDG_RUNTIME_DIR")
		if base == "" {
			base = "/tmp"
		}
	}
	return filepath.Join(base, "dpdk", prefix)
}

// removeRuntimeDir deletes the EAL runtime dir of prefix; an empty prefix
// would address the whole dpdk dir and is refused.
func removeRuntimeDir(prefix string) error {
	if prefix == "" || strings.ContainsRune(prefix, '/') {
		return errors.New("refusing to remove DPDK runtime dir of an empty or nested prefix")
	}
	return os.RemoveAll(DPDKRuntimeDir(prefix))
}

// TailFile returns at most the last n bytes of path ("" if unreadable).
func TailFile(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > n {
		_, _ = f.Seek(st.Size()-n, 0)
	}
	b, _ := io.ReadAll(io.LimitReader(f, n))
	return string(b)
}

// ChildPIDs lists the running processes whose parent is pid, such as the
// init of a PID namespace that an unshare --fork wrapper started.
func ChildPIDs(pid int) []int {
	dirs, _ := filepath.Glob("/proc/[0-9]*/stat")
	var kids []int
	for _, d := range dirs {
		b, err := os.ReadFile(d) // the process may be gone already
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		f := strings.Fields(string(b[i+1:]))
		if i < 0 || len(f) < 2 || f[1] != strconv.Itoa(pid) {
			continue
		}
		if kid, err := strconv.Atoi(filepath.Base(filepath.Dir(d))); err == nil && ProcessRunning(kid) {
			kids = append(kids, kid)
		}
	}
	return kids
}

// StopPID stops process pid (SIGTERM, then SIGKILL after grace) and waits
// until it is gone; its start time is read first, so a PID that is reused
// meanwhile is never signalled again.
func StopPID(pid int, grace time.Duration) error {
	p, err := newProc(pid)
	if err != nil {
		return nil // already gone
	}
	return p.terminate(grace)
}

// ProcDiag describes why pid may not be exiting: per thread its state,
// wait channel and kernel stack (the stack needs root), its parent, and
// its children, for a failure message.
func ProcDiag(pid int) string {
	var b strings.Builder
	if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, l := range strings.Split(string(st), "\n") {
			if k, _, ok := strings.Cut(l, ":"); ok && (k == "Name" || k == "State" || k == "PPid" ||
				k == "Threads" || k == "SigPnd" || k == "ShdPnd" || k == "VmRSS" || k == "Cpus_allowed_list") {
				b.WriteString(l + "\n")
			}
		}
	} else {
		fmt.Fprintf(&b, "pid %d: %v\n", pid, err)
		return b.String()
	}
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, task := range tasks {
		dir := fmt.Sprintf("/proc/%d/task/%s/", pid, task.Name())
		comm, _ := os.ReadFile(dir + "comm")
		stat, _ := os.ReadFile(dir + "stat")
		state := "?"
		if i := bytes.LastIndexByte(stat, ')'); i >= 0 {
			if f := strings.Fields(string(stat[i+1:])); len(f) > 0 {
				state = f[0]
			}
		}
		wchan, _ := os.ReadFile(dir + "wchan")
		stack, _ := os.ReadFile(dir + "stack")
		// Nanoseconds on a CPU and waiting for one, and timeslices: a
		// runnable thread that waits and waits is starved, not stuck.
		sched, _ := os.ReadFile(dir + "schedstat")
		fmt.Fprintf(&b, "thread %s (%s) state %s wchan %s schedstat %s\n%s", task.Name(), strings.TrimSpace(string(comm)),
			state, wchan, strings.TrimSpace(string(sched)), stack)
	}
	fmt.Fprintf(&b, "children: %v\n", ChildPIDs(pid))
	return b.String()
}
