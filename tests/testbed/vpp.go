package testbed

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// VPPDirEnv names the folder hack/vpp-assets.sh prints (bin/vpp,
// bin/vppctl, plugin-path). Without it the test bed runs the script itself,
// so a plain `go test` works too.
const VPPDirEnv = "USERSPACE_VPP_DIR"

// VPPPlugins are the plugins a test VPP loads by default: memif, vhost-user
// and ping. No DPDK plugin, so no hugepages are needed.
var VPPPlugins = []string{"memif_plugin.so", "vhost_plugin.so", "ping_plugin.so"}

// VPPOptions configures StartVPP.
type VPPOptions struct {
	// BaseDir is the parent of the VPP's private directory ("" = /tmp).
	// Keep it short: unix socket paths are limited to 107 bytes.
	BaseDir string
	// NetNS is a network namespace path to run VPP in (a pod's own VPP).
	NetNS string
	// Plugins replaces VPPPlugins (e.g. without memif, for a VPP that
	// lacks the messages the plugin needs).
	Plugins []string
	// ReadyTimeout bounds the wait for the API and CLI sockets (default 30s).
	ReadyTimeout time.Duration
}

// VPPInstall is a VPP installation: its binaries and plugin folder.
type VPPInstall struct {
	VPP, Vppctl string
	// PluginDir is symlink-free: VPP loads no plugin through a symlink.
	PluginDir string
}

var (
	installOnce sync.Once
	install     VPPInstall
	installErr  error
)

// FindVPP locates VPP through $USERSPACE_VPP_DIR or, without it, by running
// hack/vpp-assets.sh (which unpacks or builds one on first use). No VPP is an
// error: the tests fail rather than skip.
func FindVPP() (VPPInstall, error) {
	installOnce.Do(func() { install, installErr = findVPP() })
	return install, installErr
}

func findVPP() (VPPInstall, error) {
	dir := os.Getenv(VPPDirEnv)
	if dir == "" {
		_, file, _, ok := runtime.Caller(0)
		if !ok {
			return VPPInstall{}, errors.New("cannot locate hack/vpp-assets.sh: set " + VPPDirEnv)
		}
		script := filepath.Join(filepath.Dir(file), "..", "..", "hack", "vpp-assets.sh")
		cmd := exec.Command(script)
		cmd.Stderr = os.Stderr // progress of a first unpack or build
		out, err := cmd.Output()
		if err != nil {
			return VPPInstall{}, fmt.Errorf("%s: %w (set %s to a folder it printed)", script, err, VPPDirEnv)
		}
		dir = strings.TrimSpace(string(out))
	}
	pd, err := os.ReadFile(filepath.Join(dir, "plugin-path"))
	if err != nil {
		return VPPInstall{}, fmt.Errorf("%s=%s is not a folder from hack/vpp-assets.sh: %w", VPPDirEnv, dir, err)
	}
	in := VPPInstall{VPP: filepath.Join(dir, "bin", "vpp"), Vppctl: filepath.Join(dir, "bin", "vppctl"), PluginDir: strings.TrimSpace(string(pd))}
	for _, f := range []string{in.VPP, in.Vppctl, filepath.Join(in.PluginDir, "memif_plugin.so")} {
		if _, err := os.Stat(f); err != nil {
			return VPPInstall{}, fmt.Errorf("VPP from %s: %w", dir, err)
		}
	}
	return in, nil
}

// VPP is a private VPP 25.10 process: no hugepages, no DPDK, its own runtime
// directory, API, CLI and stats sockets and shared-memory prefix, so several
// run side by side (a host VPP and one per pod). It is stopped by PID.
type VPP struct {
	Dir       string // private directory: startup.conf, log, sockets
	APISocket string
	CLISocket string
	Prefix    string // api-segment prefix: /dev/shm/<Prefix>-*

	in   VPPInstall
	opts VPPOptions

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	stopped bool
}

// StartVPP starts a VPP and waits until its API and CLI sockets accept.
func StartVPP(opts VPPOptions) (*VPP, error) {
	in, err := FindVPP()
	if err != nil {
		return nil, err
	}
	if opts.BaseDir == "" {
		opts.BaseDir = "/tmp"
	}
	if opts.Plugins == nil {
		opts.Plugins = VPPPlugins
	}
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 30 * time.Second
	}
	dir, err := os.MkdirTemp(opts.BaseDir, "usp-vpp-")
	if err != nil {
		return nil, err
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return nil, err
	}
	if len(dir) > maxDirLen {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("VPP dir %q longer than %d bytes: unix socket paths would not fit", dir, maxDirLen)
	}
	v := &VPP{Dir: dir, APISocket: filepath.Join(dir, "api.sock"), CLISocket: filepath.Join(dir, "cli.sock"),
		Prefix: UniqueName("usp-vpp"), in: in, opts: opts}
	if err := os.WriteFile(filepath.Join(dir, "startup.conf"), []byte(v.startupConf()), 0o644); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	if err := v.start(); err != nil {
		return nil, errors.Join(err, v.Stop())
	}
	return v, nil
}

// startupConf is VPP's configuration for a machine whose few cores the
// switch, the apps and the tests share: the main loop sleeps between polls
// (poll-sleep-usec), no worker threads, 4k pages only (no hugepages to
// reserve), and only the plugins asked for.
func (v *VPP) startupConf() string {
	var plugins strings.Builder
	for _, p := range v.opts.Plugins {
		fmt.Fprintf(&plugins, " plugin %s { enable }", p)
	}
	return fmt.Sprintf(`unix { nodaemon runtime-dir %[1]s cli-listen %[2]s log %[1]s/vpp.log pidfile %[1]s/vpp.pid nosyslog poll-sleep-usec 100 }
api-segment { prefix %[3]s }
socksvr { socket-name %[4]s }
statseg { socket-name %[1]s/stats.sock size 32m page-size 4k }
memory { main-heap-size 256M main-heap-page-size 4k }
buffers { buffers-per-numa 16384 page-size 4k default data-size 2048 }
cpu { main-core 0 workers 0 }
plugins { path %[5]s plugin default { disable }%[6]s }
`, v.Dir, v.CLISocket, v.Prefix, v.APISocket, v.in.PluginDir, plugins.String())
}

func (v *VPP) start() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.stopped {
		return errors.New("VPP already stopped")
	}
	if v.running() {
		return fmt.Errorf("VPP already running as pid %d", v.cmd.Process.Pid)
	}
	logf, err := os.OpenFile(filepath.Join(v.Dir, "stdout.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	name, args := v.in.VPP, []string{"-c", filepath.Join(v.Dir, "startup.conf")}
	if v.opts.NetNS != "" {
		// nsenter execs, so the PID stays VPP's.
		name, args = "nsenter", append([]string{"--net=" + v.opts.NetNS, "--", v.in.VPP}, args...)
	}
	// A restart finds the sockets the killed VPP left (VPP replaces them):
	// remove them so that the wait below sees the new ones.
	for _, s := range []string{v.APISocket, v.CLISocket} {
		_ = os.Remove(s)
	}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// A crashed test must not leave a VPP behind (same caveat as testpmd:
	// the starting OS thread must outlive it).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", v.in.VPP, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	v.cmd, v.done = cmd, done
	deadline := time.Now().Add(v.opts.ReadyTimeout)
	for {
		if !v.running() {
			return fmt.Errorf("VPP exited during start-up:\n%s", v.logs())
		}
		if isSocket(v.APISocket) && isSocket(v.CLISocket) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("VPP's sockets not there after %v:\n%s", v.opts.ReadyTimeout, v.logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func isSocket(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode()&os.ModeSocket != 0
}

// running reports whether the process still runs; v.mu is held.
func (v *VPP) running() bool {
	if v.cmd == nil {
		return false
	}
	select {
	case <-v.done:
		return false
	default:
		return true
	}
}

// PID is VPP's process id (0 when not running).
func (v *VPP) PID() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.running() {
		return 0
	}
	return v.cmd.Process.Pid
}

// signal sends sig to the running VPP.
func (v *VPP) signal(sig syscall.Signal) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.running() {
		return errors.New("VPP is not running")
	}
	return v.cmd.Process.Signal(sig)
}

// Pause stops VPP with SIGSTOP: it keeps its sockets but answers nothing,
// as a hung VPP. Resume continues it.
func (v *VPP) Pause() error { return v.signal(syscall.SIGSTOP) }

// Resume continues a paused VPP (SIGCONT).
func (v *VPP) Resume() error { return v.signal(syscall.SIGCONT) }

// Kill ends VPP with SIGKILL, as a crash: its socket files stay behind.
func (v *VPP) Kill() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.kill()
}

func (v *VPP) kill() error {
	if !v.running() {
		return nil
	}
	_ = v.cmd.Process.Signal(syscall.SIGCONT) // a paused VPP dies as well
	_ = v.cmd.Process.Kill()
	select {
	case <-v.done:
	case <-time.After(10 * time.Second):
		return fmt.Errorf("VPP pid %d did not exit after SIGKILL", v.cmd.Process.Pid)
	}
	return v.removeShm()
}

// removeShm removes the shared-memory files a killed VPP leaves
// (/dev/shm/<prefix>-global_vm, -vpe-api); only this VPP's prefix.
func (v *VPP) removeShm() error {
	if v.Prefix == "" || strings.ContainsRune(v.Prefix, '/') {
		return errors.New("refusing to remove shared memory of an empty prefix")
	}
	files, _ := filepath.Glob(filepath.Join("/dev/shm", v.Prefix+"-*"))
	var errs []error
	for _, f := range files {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Restart kills VPP (if it runs) and starts it again on the same sockets:
// all configuration is lost, as with a real restart.
func (v *VPP) Restart() error {
	if err := v.Kill(); err != nil {
		return err
	}
	return v.start()
}

// Stop ends VPP (SIGTERM, then SIGKILL after 5 s) and removes its directory
// and shared memory. It is safe to call twice.
func (v *VPP) Stop() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.stopped {
		return nil
	}
	v.stopped = true
	var errs []error
	if v.running() {
		_ = v.cmd.Process.Signal(syscall.SIGCONT)
		_ = v.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-v.done:
		case <-time.After(5 * time.Second):
		}
		errs = append(errs, v.kill())
	}
	errs = append(errs, v.removeShm(), os.RemoveAll(v.Dir))
	return errors.Join(errs...)
}

// Vppctl runs one CLI command through this VPP's CLI socket.
func (v *VPP) Vppctl(args ...string) (string, error) {
	return run(20*time.Second, nil, v.in.Vppctl, append([]string{"-s", v.CLISocket}, args...)...)
}

func (v *VPP) logs() string {
	return TailFile(filepath.Join(v.Dir, "stdout.log"), 4<<10) + TailFile(filepath.Join(v.Dir, "vpp.log"), 4<<10)
}

// Logs returns the tail of VPP's output and log, for failure messages.
func (v *VPP) Logs() string { return v.logs() }
