package testbed

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// TestPMDOptions configures StartTestPMD.
type TestPMDOptions struct {
	// VDevs are EAL --vdev values, one per port, e.g. from VhostUserVDev or
	// MemifVDev (a leading "--vdev=" is accepted too).
	VDevs []string
	// ForwardMode is testpmd's --forward-mode: rxonly (default, receiver),
	// txonly (sender), io or macswap (echo).
	ForwardMode string
	// EALArgs are extra EAL arguments (before "--"), e.g. "--no-shconf".
	EALArgs []string
	// AppArgs are extra testpmd arguments (after "--"), e.g. "--txpkts=128".
	AppArgs []string
	// NetNS is a network namespace path (e.g. NetNS.Path()) to run in.
	NetNS string
	// LogFile receives testpmd's output (default: a private temp file,
	// removed by Stop). Stats are parsed from it.
	LogFile string
	// MemoryMB is the EAL -m in plain pages (default 256).
	MemoryMB int
	// Lcores is the EAL --lcores map (default "0@0,1@0": testpmd needs a
	// main and a forwarding lcore; both float on CPU 0, away from the
	// switch PMD on CPU 1).
	Lcores string
	// ReadyTimeout bounds the wait for the first statistics of every port
	// (default 30s).
	ReadyTimeout time.Duration
	// NoWait returns right after the process started; use WaitReady later.
	// Needed when a vhost-user server-mode testpmd must be started before
	// its client exists, since EAL init blocks until the client connects.
	NoWait bool
}

// AppLcores puts a testpmd's lcores on CPU 1, beside the switch's PMD
// (OVS) and away from the switch's main thread on CPU 0 (OVS and VPP). Two
// busy-polling lcores on CPU 0 starve a restarting switch there: seen here,
// a restarted ovs-vswitchd hung over 30 s (once over 120 s) in DPDK's
// initialisation in 3 of 6 restarts under traffic, and a restarted VPP
// answered its first requests after the agent's 3 s call bound.
const AppLcores = "0@1,1@1"

// VhostUserVDev returns a virtio_user vdev for a vhost-user socket. With
// server=true testpmd creates the socket (for an OVS dpdkvhostuserclient
// port); otherwise it connects to a socket OVS created (dpdkvhostuser).
func VhostUserVDev(id int, socket string, server bool) string {
	v := fmt.Sprintf("virtio_user%d,path=%s,queues=1", id, socket)
	if server {
		v += ",server=1"
	}
	return v
}

// MemifVDev returns a memif vdev with role "client" or "server". The socket
// is a filesystem path: abstract sockets (the memif default) are scoped to
// the network namespace and would not be shared between a pod and the host.
func MemifVDev(id int, socket, role string) string {
	return fmt.Sprintf("net_memif%d,role=%s,socket=%s,socket-abstract=no", id, role, socket)
}

// PortStats are the NIC counters testpmd reports for one port.
type PortStats struct {
	RxPackets, RxMissed, RxBytes, RxErrors, RxNoMbuf uint64
	TxPackets, TxErrors, TxBytes                     uint64
}

// TestPMD is a running dpdk-testpmd "pod" application.
//
// It runs non-interactively with --stats-period=1, and Stats parses the
// latest per-port block from its output. That is more robust than driving
// the interactive prompt over a pipe: testpmd's command output goes through
// stdio, which is block-buffered on a pipe and so never arrives, whereas the
// periodic statistics are flushed explicitly. In this mode testpmd never
// reads stdin and runs until signalled. Counters are at most ~1 s old.
type TestPMD struct {
	FilePrefix string // DPDK --file-prefix, unique per process
	LogFile    string // testpmd's combined stdout/stderr

	ports   int
	tmpDir  string // removed by Stop if we created the log file
	cmd     *exec.Cmd
	done    chan struct{} // closed when the process has been reaped
	waitErr error         // valid after done

	stopOnce sync.Once
	stopErr  error
}

// StartTestPMD starts dpdk-testpmd without hugepages or PCI devices and,
// unless opts.NoWait, waits until every port reports statistics (ports
// probed and forwarding started). An early exit or a failed probe is
// returned as an error including testpmd's output.
func StartTestPMD(opts TestPMDOptions) (*TestPMD, error) {
	if opts.ForwardMode == "" {
		opts.ForwardMode = "rxonly"
	}
	if opts.MemoryMB == 0 {
		opts.MemoryMB = 256
	}
	if opts.Lcores == "" {
		opts.Lcores = "0@0,1@0"
	}
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 30 * time.Second
	}
	t := &TestPMD{
		FilePrefix: UniqueName("usp-pmd"),
		LogFile:    opts.LogFile,
		ports:      max(1, len(opts.VDevs)),
		done:       make(chan struct{}),
	}
	if t.LogFile == "" {
		dir, err := os.MkdirTemp("", "usp-pmd-")
		if err != nil {
			return nil, err
		}
		t.tmpDir, t.LogFile = dir, filepath.Join(dir, "testpmd.log")
	}
	logf, err := os.Create(t.LogFile)
	if err != nil {
		_ = os.RemoveAll(t.tmpDir)
		return nil, err
	}
	defer logf.Close() // the child keeps its own copy

	// --in-memory would avoid the runtime dir but is incompatible with
	// --no-huge, hence a unique --file-prefix and cleanup in Stop.
	args := []string{"--no-pci", "--no-huge", "-m", strconv.Itoa(opts.MemoryMB),
		"--lcores=" + opts.Lcores, "--file-prefix=" + t.FilePrefix}
	for _, v := range opts.VDevs {
		args = append(args, "--vdev="+strings.TrimPrefix(v, "--vdev="))
	}
	args = append(args, opts.EALArgs...)
	// The default mbuf pool does not fit in -m 256 without hugepages.
	args = append(args, "--", "--total-num-mbufs=8192",
		"--forward-mode="+opts.ForwardMode, "--stats-period=1")
	args = append(args, opts.AppArgs...)

	name := "dpdk-testpmd"
	if opts.NetNS != "" {
		// nsenter setns()es and then execs, so the PID stays testpmd's.
		args = append([]string{"--net=" + opts.NetNS, "--", name}, args...)
		name = "nsenter"
	}
	t.cmd = exec.Command(name, args...)
	t.cmd.Stdout, t.cmd.Stderr = logf, logf
	// A crashed test must not leave a busy-polling testpmd behind. Caveat:
	// Pdeathsig fires when the starting OS thread exits, so do not call
	// StartTestPMD from a goroutine that exits with its thread locked.
	t.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := t.cmd.Start(); err != nil {
		_ = os.RemoveAll(t.tmpDir)
		return nil, err
	}
	go func() {
		t.waitErr = t.cmd.Wait()
		close(t.done)
	}()
	if !opts.NoWait {
		if err := t.WaitReady(opts.ReadyTimeout); err != nil {
			return nil, errors.Join(err, t.Stop())
		}
	}
	return t, nil
}

// WaitReady waits until every port has reported statistics once.
func (t *TestPMD) WaitReady(timeout time.Duration) error {
	// After these messages testpmd keeps running, but with fewer or zero
	// ports (e.g. a vhost-user client socket that does not exist) or, for a
	// mistyped --forward-mode, silently in "io" mode.
	failed := regexp.MustCompile(`No probed ethernet devices|probe failed|Invalid \S+ packet forwarding mode`)
	deadline := time.Now().Add(timeout)
	for {
		if t.Exited() {
			return fmt.Errorf("testpmd exited early (%v):\n%s", t.waitErr, t.Output())
		}
		out := t.Output()
		if m := failed.FindString(out); m != "" {
			return fmt.Errorf("testpmd reported %q:\n%s", m, out)
		}
		if st := ParseTestPMDStats(out); len(st) >= t.ports {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("testpmd not ready after %v:\n%s", timeout, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stats returns the latest counters of port 0.
func (t *TestPMD) Stats() (PortStats, error) {
	all, err := t.AllStats()
	if err != nil {
		return PortStats{}, err
	}
	st, ok := all[0]
	if !ok {
		return PortStats{}, fmt.Errorf("no statistics for port 0 yet:\n%s", t.Output())
	}
	return st, nil
}

// AllStats returns the latest counters of every port, keyed by port id.
func (t *TestPMD) AllStats() (map[int]PortStats, error) {
	if t.Exited() {
		return nil, fmt.Errorf("testpmd exited (%v):\n%s", t.waitErr, t.Output())
	}
	// The tail holds many periods even with several ports, and bounds the
	// cost of a long-running demo's growing log.
	return ParseTestPMDStats(TailFile(t.LogFile, 64<<10)), nil
}

// WaitRx waits until port 0 has received at least n packets and returns the
// last counters seen.
func (t *TestPMD) WaitRx(n uint64, timeout time.Duration) (PortStats, error) {
	deadline := time.Now().Add(timeout)
	for {
		st, err := t.Stats()
		if err == nil && st.RxPackets >= n {
			return st, nil
		}
		if t.Exited() || time.Now().After(deadline) {
			return st, fmt.Errorf("port 0 received %d < %d packets within %v (%v):\n%s",
				st.RxPackets, n, timeout, err, t.Output())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// WaitFlowing waits until port 0's received counter rose in two of
// testpmd's statistics printouts in a row (with --stats-period 1, about
// once a second): packets cross the switch now, not only before (say) a
// restart.
func (t *TestPMD) WaitFlowing(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var prev uint64
	rises := -1 // the first reading is no rise
	for {
		st, err := t.Stats()
		if err == nil {
			if rises >= 0 && st.RxPackets > prev {
				rises++
			} else {
				rises = 0
			}
			prev = st.RxPackets
		}
		if rises >= 2 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("packets do not flow within %v: the receiver counts %d (%v)", timeout, prev, err)
		}
		time.Sleep(1100 * time.Millisecond)
	}
}

// statsRE matches one complete per-port block printed by --stats-period
// (not the different "Forward statistics" printed at exit).
var statsRE = regexp.MustCompile(`NIC statistics for port (\d+)\s+#+\s+` +
	`RX-packets:\s*(\d+)\s+RX-missed:\s*(\d+)\s+RX-bytes:\s*(\d+)\s+` +
	`RX-errors:\s*(\d+)\s+RX-nombuf:\s*(\d+)\s+` +
	`TX-packets:\s*(\d+)\s+TX-errors:\s*(\d+)\s+TX-bytes:\s*(\d+)`)

// ParseTestPMDStats returns the last complete block of --stats-period
// statistics per port in out (testpmd's output).
func ParseTestPMDStats(out string) map[int]PortStats {
	res := map[int]PortStats{}
	for _, m := range statsRE.FindAllStringSubmatch(out, -1) {
		var n [9]uint64
		for i := range n {
			n[i], _ = strconv.ParseUint(m[i+1], 10, 64)
		}
		res[int(n[0])] = PortStats{
			RxPackets: n[1], RxMissed: n[2], RxBytes: n[3], RxErrors: n[4], RxNoMbuf: n[5],
			TxPackets: n[6], TxErrors: n[7], TxBytes: n[8],
		}
	}
	return res
}

// Output returns the tail of testpmd's output, for failure messages.
func (t *TestPMD) Output() string { return TailFile(t.LogFile, 16<<10) }

// PID is the testpmd process id (also with NetNS, as nsenter execs).
func (t *TestPMD) PID() int { return t.cmd.Process.Pid }

// Exited reports whether the process has terminated.
func (t *TestPMD) Exited() bool {
	select {
	case <-t.done:
		return true
	default:
		return false
	}
}

// ExitSignal is the signal that ended testpmd, if one did: false while it
// runs or after it exited by itself.
func (t *TestPMD) ExitSignal() (syscall.Signal, bool) {
	if !t.Exited() {
		return 0, false
	}
	var ee *exec.ExitError
	if errors.As(t.waitErr, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return ws.Signal(), true
		}
	}
	return 0, false
}

// Stop terminates testpmd (SIGTERM, which it handles by closing its ports,
// then SIGKILL after 5 s), waits for it (30 s at most), and removes its DPDK runtime dir
// and private temp dir. It is safe to call twice.
func (t *TestPMD) Stop() error {
	t.stopOnce.Do(func() {
		_ = t.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-t.done:
		case <-time.After(5 * time.Second):
			_ = t.cmd.Process.Kill()
			// Exiting unmaps its DPDK memory: with page faults as dear as
			// on these machines and other DPDK apps busy-polling both
			// cores, one took over 5 s after SIGKILL.
			select {
			case <-t.done:
			case <-time.After(30 * time.Second):
				t.stopErr = fmt.Errorf("testpmd pid %d did not exit 30 s after SIGKILL:\n%s", t.PID(), ProcDiag(t.PID()))
				return // keep the runtime dir: it is still in use
			}
		}
		t.stopErr = errors.Join(removeRuntimeDir(t.FilePrefix), os.RemoveAll(t.tmpDir))
	})
	return t.stopErr
}
