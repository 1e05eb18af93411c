package testbed

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	ovsSchema   = "/usr/share/openvswitch/vswitch.ovsschema"
	vswitchdBin = "/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk"

	// maxDirLen keeps Dir + "/" + a socket name under the 107-byte sun_path
	// limit; a longer BaseDir (e.g. t.TempDir()) makes binds fail obscurely.
	maxDirLen = 80
)

// OVSOptions configures StartOVS. The zero value starts a DPDK-enabled switch.
type OVSOptions struct {
	// BaseDir is the parent of the private directory ("" = os.TempDir()).
	// Keep it short: unix socket paths are limited to 107 bytes.
	BaseDir string
	// NoVswitchd starts only ovsdb-server, simulating "switch down".
	// StartVswitchd can start the switch later.
	NoVswitchd bool
	// NoDPDK sets dpdk-init=false, simulating a switch that is not
	// DPDK-capable: dpdk_initialized stays false and DPDK ports fail.
	NoDPDK bool
	// MemoryMB is the switch's EAL -m (default 512, plain pages).
	MemoryMB int
	// SharedMempool uses OVS's default shared mempools instead of
	// per-port ones: needed for hundreds of ports (a per-port pool takes
	// tens of MB), and needs MemoryMB of about 1024 or more.
	SharedMempool bool
	// PMDCPUMask is other_config:pmd-cpu-mask (default "0x2": the PMD on CPU
	// 1, the main thread on CPU 0).
	PMDCPUMask string
	// ReadyTimeout bounds each start step (default 30s).
	ReadyTimeout time.Duration
	// Echo, if set, is called with each command that starts the switch,
	// before it runs (the demo prints them as a user would type them).
	Echo func(argv []string)
}

// OVS is a private ovsdb-server + ovs-vswitchd-dpdk pair. All its files live
// in Dir; it never touches the system OVS (/var/run/openvswitch, /etc).
//
// Found by experiment in this sandbox (Debian 12, OVS 3.1, DPDK 22.11, no
// systemd, no hugepages, no /proc/modules): with --no-huge --no-pci the DPDK
// vswitchd needs neither /dev/hugepages, modprobe, vfio nor the openvswitch
// kernel module (it only logs that the "ovs_datapath" netlink family is
// missing, harmless for datapath_type=netdev). We deliberately bypass
// ovs-ctl, which would modprobe and touch system paths.
//
// The netdev datapath does create kernel TAP devices: "ovs-netdev" and one
// per bridge (its internal port). Two switches in one network namespace
// collide on those names ("creating tap device failed: Device or resource
// busy", the bridge is not created), so the vswitchd runs in a private
// network namespace. Clients are unaffected: OVSDB and vhost-user use
// filesystem unix sockets, which are not scoped by network namespace.
// Apart from Dir and that namespace, the only global state is the EAL
// runtime dir /var/run/dpdk/<FilePrefix>.
type OVS struct {
	Dir        string // private directory: db, logs, pidfiles, sockets
	DBSocket   string // absolute path of the OVSDB unix socket
	RunDir     string // OVS_RUNDIR: dpdkvhostuser (server-mode) sockets appear here
	FilePrefix string // DPDK --file-prefix of the vswitchd
	NetNS      string // path of the vswitchd's network namespace (owned by OVS)

	opts OVSOptions
	env  []string
	ns   *NetNS

	mu      sync.Mutex
	db, vs  proc
	stopped bool
}

// StartOVS creates a fresh database and starts ovsdb-server and (unless
// opts.NoVswitchd) ovs-vswitchd-dpdk, waiting until DPDK is initialized.
// On error everything started so far is stopped again.
func StartOVS(opts OVSOptions) (*OVS, error) {
	if opts.MemoryMB == 0 {
		opts.MemoryMB = 512
	}
	if opts.PMDCPUMask == "" {
		opts.PMDCPUMask = "0x2"
	}
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 30 * time.Second
	}
	if err := ReapOrphans(); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(opts.BaseDir, "usp-ovs-")
	if err != nil {
		return nil, err
	}
	if dir, err = filepath.Abs(dir); err != nil { // a relative BaseDir
		return nil, err
	}
	o := &OVS{
		Dir:        dir,
		DBSocket:   filepath.Join(dir, "db.sock"),
		RunDir:     dir,
		FilePrefix: UniqueName("usp-ovs"), // also names the netns, for debugging
		opts:       opts,
		// These variables redirect every default path of the OVS tools
		// (pidfiles, ctl sockets, logs, db, ssl config) into dir.
		env: append(os.Environ(),
			"OVS_RUNDIR="+dir, "OVS_LOGDIR="+dir, "OVS_DBDIR="+dir, "OVS_SYSCONFDIR="+dir),
	}
	if len(dir) > maxDirLen {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("testbed dir %q longer than %d bytes: unix socket paths would not fit", dir, maxDirLen)
	}
	if err := o.register(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	if err := o.start(); err != nil {
		if serr := o.Stop(); serr != nil {
			err = errors.Join(err, serr)
		}
		return nil, err
	}
	return o, nil
}

func (o *OVS) start() error {
	var err error
	if o.ns, err = NewNetNS(o.FilePrefix); err != nil {
		return err
	}
	o.NetNS = o.ns.Path()
	if err := o.startDB(true); err != nil {
		return err
	}
	if o.opts.NoVswitchd {
		return nil
	}
	return o.startVswitchd()
}

// startDB starts ovsdb-server, on a new database initialised as a node's
// start-up scripts would (DPDK settings, no bridge) when fresh is set.
func (o *OVS) startDB(fresh bool) error {
	t := o.opts.ReadyTimeout
	db := filepath.Join(o.Dir, "conf.db")
	if fresh {
		if err := os.Remove(db); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if _, err := o.runEcho(t, "ovsdb-tool", "create", db, ovsSchema); err != nil {
			return err
		}
	}
	// --detach returns once the server listens, so no polling is needed.
	if _, err := o.runEcho(t, "ovsdb-server", db,
		"--remote=punix:"+o.DBSocket,
		"--pidfile="+o.path("ovsdb-server.pid"),
		"--unixctl="+o.path("ovsdb-server.ctl"),
		"--log-file="+o.path("ovsdb-server.log"),
		"--detach"); err != nil {
		return err
	}
	var err error
	if o.db, err = o.pidOf("ovsdb-server.pid"); err != nil {
		return err
	}
	if !fresh {
		return nil
	}
	dpdkInit := "true"
	if o.opts.NoDPDK {
		dpdkInit = "false"
	}
	// --no-wait: no vswitchd is running yet to acknowledge the change.
	_, err = o.runEcho(t, "ovs-vsctl", "--timeout=10", "--db="+o.DBEndpoint(), "--no-wait", "init", "--", "set", "Open_vSwitch", ".",
		"other_config:dpdk-init="+dpdkInit,
		fmt.Sprintf("other_config:dpdk-extra=--no-huge -m %d --legacy-mem --no-pci --file-prefix=%s",
			o.opts.MemoryMB, o.FilePrefix),
		// Per-port mempools: the shared default pool would not fit in -m 512.
		fmt.Sprintf("other_config:per-port-memory=%t", !o.opts.SharedMempool),
		"other_config:pmd-cpu-mask="+o.opts.PMDCPUMask,
		// Let idle PMDs sleep up to 10 ms: idle switch CPU drops from a
		// whole core to ~1%, leaving CPU for the testpmd "pods".
		"other_config:pmd-maxsleep=10000")
	return err
}

// RestartDB stops ovsdb-server (SIGTERM) and starts it again, on a new
// database initialised as at start (no bridge, no port) when empty is set,
// as a containerized OVS that keeps no conf.db does. ovs-vswitchd keeps
// running and reconnects by itself.
func (o *OVS) RestartDB(empty bool) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.stopped {
		return errors.New("OVS already stopped")
	}
	if err := o.db.terminate(5 * time.Second); err != nil {
		return err
	}
	o.db = proc{}
	return o.startDB(empty)
}

// StartVswitchd (re)starts ovs-vswitchd-dpdk on the existing database and
// waits until dpdk_initialized is true (unless NoDPDK).
func (o *OVS) StartVswitchd() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.stopped {
		return errors.New("OVS already stopped")
	}
	return o.startVswitchd()
}

func (o *OVS) startVswitchd() error {
	if o.vs.running() {
		return fmt.Errorf("ovs-vswitchd already running as pid %d", o.vs.pid)
	}
	// A SIGKILLed EAL leaves its runtime dir behind; start from scratch.
	if err := removeRuntimeDir(o.FilePrefix); err != nil {
		return err
	}
	// A previous run may have marked DPDK initialized; clear it so the wait
	// below observes this run.
	if _, err := o.Vsctl("--no-wait", "set", "Open_vSwitch", ".", "dpdk_initialized=false"); err != nil {
		return err
	}
	// --detach returns after the first database read, which is where DPDK
	// is initialized (~0.2 s here). nsenter execs, so the pidfile is still
	// the vswitchd's own.
	if _, err := o.runEcho(o.opts.ReadyTimeout, "nsenter", "--net="+o.NetNS, "--", vswitchdBin, o.DBEndpoint(),
		"--pidfile="+o.path("ovs-vswitchd.pid"),
		"--unixctl="+o.path("ovs-vswitchd.ctl"),
		"--log-file="+o.path("ovs-vswitchd.log"),
		"--detach"); err != nil {
		return fmt.Errorf("%w\nvswitchd log:\n%s", err, o.Logs())
	}
	var err error
	if o.vs, err = o.pidOf("ovs-vswitchd.pid"); err != nil {
		return err
	}
	if o.opts.NoDPDK {
		return nil
	}
	deadline := time.Now().Add(o.opts.ReadyTimeout)
	for {
		out, err := o.Vsctl("get", "Open_vSwitch", ".", "dpdk_initialized")
		if err == nil && out == "true" {
			return nil
		}
		if !o.vs.running() {
			return fmt.Errorf("ovs-vswitchd exited during DPDK init\nvswitchd log:\n%s", o.Logs())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("ovs-vswitchd: dpdk_initialized=%q after %v (%v)\nvswitchd log:\n%s",
				out, o.opts.ReadyTimeout, err, o.Logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// StopVswitchd kills only the switch (SIGTERM, then SIGKILL), leaving
// ovsdb-server running, to test "switch down" and restarts. On SIGTERM the
// switch unlinks its dpdkvhostuser sockets. After a crash (e.g. a test's own
// SIGKILL) they stay behind, and a restarted switch then fails to create
// those ports ("failed to bind: Address already in use") until they are
// removed: the same happens with a real OVS.
func (o *OVS) StopVswitchd() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.stopVswitchd()
}

func (o *OVS) stopVswitchd() error {
	err := o.vs.terminate(5 * time.Second)
	if err == nil {
		o.vs = proc{}
	}
	// Only after the EAL process is gone is its runtime dir unused.
	if !o.vs.running() {
		err = errors.Join(err, removeRuntimeDir(o.FilePrefix))
	}
	return err
}

// Stop kills the vswitchd and ovsdb-server by PID, verifies they are gone,
// and removes the DPDK runtime dir, Dir and the netns. It is safe to call
// twice. The daemons detach (setsid), so they outlive a killed test binary:
// always defer or t.Cleanup a Stop.
func (o *OVS) Stop() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.stopped {
		return nil
	}
	o.stopped = true
	if o.db.running() {
		_ = syscall.Kill(o.db.pid, syscall.SIGCONT) // a paused server would ignore SIGTERM
	}
	errs := []error{o.stopVswitchd(), o.db.terminate(5 * time.Second)}
	// The pidfiles are the truth for daemons that forked before we could
	// record them (e.g. a start that failed half-way).
	for _, name := range []string{"ovs-vswitchd.pid", "ovsdb-server.pid"} {
		if p, err := o.pidOf(name); err == nil {
			errs = append(errs, p.terminate(5*time.Second))
		}
	}
	for _, p := range []proc{o.vs, o.db} {
		if p.running() {
			errs = append(errs, fmt.Errorf("pid %d still running after Stop", p.pid))
		}
	}
	errs = append(errs, os.RemoveAll(o.Dir)) // stopVswitchd removed the EAL runtime dir
	if o.ns != nil {
		errs = append(errs, o.ns.Close())
	}
	err := errors.Join(errs...)
	if err == nil {
		err = o.unregister()
	}
	return err
}

// runEcho runs a start-up command, telling opts.Echo first.
func (o *OVS) runEcho(timeout time.Duration, name string, args ...string) (string, error) {
	if o.opts.Echo != nil {
		o.opts.Echo(append([]string{name}, args...))
	}
	return run(timeout, o.env, name, args...)
}

// DBEndpoint is the OVSDB remote for ovs-vsctl --db= or libovsdb.
func (o *OVS) DBEndpoint() string { return "unix:" + o.DBSocket }

// VswitchdPID is the PID of the running vswitchd (0 if none).
func (o *OVS) VswitchdPID() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.vs.pid
}

// PIDs lists the processes currently owned by o, for leftover checks.
func (o *OVS) PIDs() []int {
	o.mu.Lock()
	defer o.mu.Unlock()
	var pids []int
	for _, p := range []proc{o.db, o.vs} {
		if p.pid > 0 {
			pids = append(pids, p.pid)
		}
	}
	return pids
}

// Vsctl runs ovs-vsctl against this database, for test setup and
// inspection. The --timeout matters: without it ovs-vsctl waits forever for
// a vswitchd that is down (pass "--no-wait" first in that case).
func (o *OVS) Vsctl(args ...string) (string, error) {
	return run(15*time.Second, o.env, "ovs-vsctl",
		append([]string{"--timeout=10", "--db=" + o.DBEndpoint()}, args...)...)
}

// Appctl runs ovs-appctl against this vswitchd (e.g. "dpif-netdev/pmd-stats-show").
func (o *OVS) Appctl(args ...string) (string, error) {
	return run(15*time.Second, o.env, "ovs-appctl",
		append([]string{"--timeout=10", "-t", o.path("ovs-vswitchd.ctl")}, args...)...)
}

var (
	dpPortLine  = regexp.MustCompile(`(?m)^\s*port (\d+): (\S+)`)
	flowPackets = regexp.MustCompile(`packets:(\d+)`)
)

// PacketsFrom is how many packets the datapath flows from port name have
// counted: OVS 3.1 has no packet counters for dpdkvhostuser ports.
func (o *OVS) PacketsFrom(name string) (uint64, error) {
	show, err := o.Appctl("dpctl/show")
	if err != nil {
		return 0, err
	}
	dp := ""
	for _, m := range dpPortLine.FindAllStringSubmatch(show, -1) {
		if m[2] == name {
			dp = m[1]
		}
	}
	if dp == "" {
		return 0, fmt.Errorf("port %s not in dpctl/show:\n%s", name, show)
	}
	flows, err := o.Appctl("dpctl/dump-flows")
	if err != nil {
		return 0, err
	}
	var n uint64
	for _, l := range strings.Split(flows, "\n") {
		if m := flowPackets.FindStringSubmatch(l); m != nil && strings.Contains(l, "in_port("+dp+"),") {
			v, _ := strconv.ParseUint(m[1], 10, 64)
			n += v
		}
	}
	return n, nil
}

// Logs returns the tail of the vswitchd log, for failure messages.
func (o *OVS) Logs() string { return TailFile(o.path("ovs-vswitchd.log"), 8<<10) }

func (o *OVS) path(name string) string { return filepath.Join(o.Dir, name) }

// pidOf reads a pidfile and checks that the PID still runs the daemon that
// wrote it, so a stale pidfile never makes us kill a recycled PID.
func (o *OVS) pidOf(pidfile string) (proc, error) {
	pid, err := readPidfile(o.path(pidfile))
	if err != nil {
		return proc{}, err
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	daemon := strings.TrimSuffix(pidfile, ".pid") // e.g. ovs-vswitchd for ovs-vswitchd-dpdk
	if err != nil || !strings.HasPrefix(filepath.Base(exe), daemon) {
		return proc{}, fmt.Errorf("%s: pid %d is not %s (exe %q, %v)", pidfile, pid, daemon, exe, err)
	}
	return newProc(pid)
}

// PauseDB stops ovsdb-server with SIGSTOP: it keeps its sockets and
// accepts connections (the kernel queues them) but answers nothing, as a
// hung server does. ResumeDB undoes it; Stop resumes it first.
func (o *OVS) PauseDB() error { return o.signalDB(syscall.SIGSTOP) }

// ResumeDB continues a paused ovsdb-server.
func (o *OVS) ResumeDB() error { return o.signalDB(syscall.SIGCONT) }

func (o *OVS) signalDB(sig syscall.Signal) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.db.running() {
		return errors.New("ovsdb-server is not running")
	}
	return syscall.Kill(o.db.pid, sig)
}

// KillVswitchd kills the switch with SIGKILL, as a crash would: it leaves
// its server-mode sockets behind, and ovsdb-server keeps its ports.
func (o *OVS) KillVswitchd() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.vs.running() {
		return errors.New("ovs-vswitchd is not running")
	}
	_ = syscall.Kill(o.vs.pid, syscall.SIGKILL)
	if !o.vs.waitGone(5 * time.Second) {
		return fmt.Errorf("ovs-vswitchd (pid %d) did not exit after SIGKILL", o.vs.pid)
	}
	o.vs = proc{}
	return removeRuntimeDir(o.FilePrefix)
}
