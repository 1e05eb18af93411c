package testbed

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"syscall"
	"time"
)

// App is a pod's application run as a container runtime runs it: PID 1 of
// new mount and PID namespaces inside the pod's network namespace, its
// output in a log file.
type App struct {
	Log  string
	cmd  *exec.Cmd // the unshare wrapper; its child is the pod's PID 1
	done chan struct{}
}

// StartApp runs argv in the network namespace netns (a path) with env
// added to this process's environment. The app gets its own process group,
// so a Ctrl-C reaches only its starter, which stops it in order; if the
// starter dies, so does the app (and, through --kill-child, everything in
// it).
func StartApp(netns, log string, env []string, argv ...string) (*App, error) {
	logf, err := os.Create(log)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child keeps its own copy
	args := append([]string{"--net=" + netns, "--",
		"unshare", "--mount", "--pid", "--fork", "--mount-proc", "--kill-child", "--"}, argv...)
	a := &App{Log: log, cmd: exec.Command("nsenter", args...), done: make(chan struct{})}
	a.cmd.Env = append(os.Environ(), env...)
	a.cmd.Stdout, a.cmd.Stderr = logf, logf
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := a.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = a.cmd.Wait(); close(a.done) }()
	return a, nil
}

// PID is the wrapper's process id.
func (a *App) PID() int { return a.cmd.Process.Pid }

// Running reports whether the app has not exited.
func (a *App) Running() bool {
	select {
	case <-a.done:
		return false
	default:
		return true
	}
}

// Output is the tail of the app's log.
func (a *App) Output() string { return TailFile(a.Log, 4<<10) }

// WaitOutput waits until the app's log matches re and returns the log; it
// fails if the app exits, timeout passes or ctx ends.
func (a *App) WaitOutput(ctx context.Context, re *regexp.Regexp, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		b, _ := os.ReadFile(a.Log)
		switch {
		case re.Match(b):
			return string(b), nil
		case !a.Running():
			return "", fmt.Errorf("exited; its output:\n%s", a.Output())
		case time.Now().After(deadline):
			return "", fmt.Errorf("no /%s/ after %v; its output:\n%s", re, timeout, a.Output())
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Stop stops the app's PID 1, which takes every other process of the pod
// with it, then the wrapper, by PID. It is safe to call twice.
func (a *App) Stop() error {
	if !a.Running() {
		return nil
	}
	var err error
	for _, kid := range ChildPIDs(a.PID()) {
		err = StopPID(kid, 5*time.Second)
	}
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
	case <-time.After(5 * time.Second):
		_ = a.cmd.Process.Kill()
		<-a.done
	}
	return err
}
