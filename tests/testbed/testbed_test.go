package testbed

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// These tests run the real switch and real testpmd processes. They fail
// (never skip) when a prerequisite is missing, since CI relies on them.

func requirePackages(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the testbed needs root (netns, /var/run/dpdk, vhost-user sockets)")
	}
	if err := EnsurePackages(RequiredPackages()...); err != nil {
		t.Fatal(err)
	}
}

func startOVS(t *testing.T, opts OVSOptions) *OVS {
	t.Helper()
	requirePackages(t)
	start := time.Now()
	o, err := StartOVS(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("StartOVS took %v (dir %s)", time.Since(start).Round(time.Millisecond), o.Dir)
	t.Cleanup(func() {
		if err := o.Stop(); err != nil {
			t.Error(err)
		}
	})
	return o
}

// stopOVS stops o and asserts that nothing it started is left.
func stopOVS(t *testing.T, o *OVS) {
	t.Helper()
	pids := o.PIDs()
	if len(pids) == 0 {
		t.Fatal("OVS reports no processes before Stop")
	}
	if err := o.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := o.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	for _, pid := range pids {
		if ProcessRunning(pid) {
			t.Errorf("OVS pid %d still running after Stop", pid)
		}
	}
	assertGone(t, o.Dir, DPDKRuntimeDir(o.FilePrefix), o.NetNS)
}

func startPMD(t *testing.T, opts TestPMDOptions) *TestPMD {
	t.Helper()
	p, err := StartTestPMD(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Stop(); err != nil {
			t.Error(err)
		}
	})
	return p
}

// stopPMD stops p and asserts that its process and runtime dir are gone.
func stopPMD(t *testing.T, p *TestPMD) {
	t.Helper()
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if ProcessRunning(p.PID()) {
		t.Errorf("testpmd pid %d still running after Stop", p.PID())
	}
	assertGone(t, DPDKRuntimeDir(p.FilePrefix))
}

func assertGone(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still exists after Stop (%v)", p, err)
		}
	}
}

func vsctl(t *testing.T, o *OVS, args ...string) string {
	t.Helper()
	out, err := o.Vsctl(args...)
	if err != nil {
		t.Fatalf("%v\nvswitchd log:\n%s", err, o.Logs())
	}
	return out
}

func addBridge(t *testing.T, o *OVS, br string) {
	t.Helper()
	vsctl(t, o, "add-br", br, "--", "set", "bridge", br, "datapath_type=netdev")
}

// addVhostPort adds a vhost-user port and checks that the switch accepted it.
func addVhostPort(t *testing.T, o *OVS, br, name, typ string, opts ...string) {
	t.Helper()
	args := []string{"add-port", br, name, "--", "set", "Interface", name, "type=" + typ}
	vsctl(t, o, append(args, opts...)...)
	checkPort(t, o, name)
}

// checkPort asserts that the switch gave the interface an OpenFlow port.
func checkPort(t *testing.T, o *OVS, name string) {
	t.Helper()
	ofport, err := strconv.Atoi(vsctl(t, o, "get", "Interface", name, "ofport"))
	if err != nil || ofport <= 0 {
		t.Fatalf("port %s: ofport %d (%v), error column %s\n%s",
			name, ofport, err, vsctl(t, o, "get", "Interface", name, "error"), o.Logs())
	}
}

func TestEnsurePackages(t *testing.T) {
	requirePackages(t)
	if err := EnsurePackages(); err != nil {
		t.Fatal(err)
	}
}

func TestOVSLifecycle(t *testing.T) {
	o := startOVS(t, OVSOptions{})
	if got := vsctl(t, o, "get", "Open_vSwitch", ".", "dpdk_initialized"); got != "true" {
		t.Fatalf("dpdk_initialized = %q", got)
	}
	if o.DBEndpoint() != "unix:"+o.DBSocket || !filepath.IsAbs(o.DBSocket) {
		t.Fatalf("bad endpoint %q", o.DBEndpoint())
	}
	if _, err := os.Stat(DPDKRuntimeDir(o.FilePrefix)); err != nil {
		t.Fatalf("vswitchd EAL runtime dir: %v", err)
	}
	if out, err := o.Appctl("version"); err != nil || !strings.Contains(out, "Open vSwitch") {
		t.Fatalf("appctl version: %q %v", out, err)
	}
	if !strings.Contains(o.Logs(), "DPDK Enabled - initialized") {
		t.Fatalf("unexpected vswitchd log:\n%s", o.Logs())
	}
	// The switch's TAP devices live in its own netns, so a second switch
	// (e.g. another test package running in parallel) can use the same
	// bridge names.
	assertInNetNS(t, o.VswitchdPID(), o.NetNS)
	o2 := startOVS(t, OVSOptions{})
	for _, x := range []*OVS{o, o2} {
		addBridge(t, x, "br-test")
		checkPort(t, x, "br-test")
	}
	stopOVS(t, o2)
	stopOVS(t, o)
}

func TestOVSRestartVswitchd(t *testing.T) {
	o := startOVS(t, OVSOptions{})
	addBridge(t, o, "br-test")
	addVhostPort(t, o, "br-test", "vhu1", "dpdkvhostuser")
	sock := filepath.Join(o.RunDir, "vhu1")
	if _, err := os.Stat(sock); err != nil {
		t.Fatal(err)
	}

	old := o.VswitchdPID()
	if err := o.StopVswitchd(); err != nil {
		t.Fatal(err)
	}
	if ProcessRunning(old) || o.VswitchdPID() != 0 {
		t.Fatalf("vswitchd pid %d survived StopVswitchd", old)
	}
	assertGone(t, DPDKRuntimeDir(o.FilePrefix))
	// The database stays usable while the switch is down (--no-wait).
	vsctl(t, o, "--no-wait", "add-port", "br-test", "vhu2", "--", "set", "Interface", "vhu2", "type=dpdkvhostuser")

	start := time.Now()
	if err := o.StartVswitchd(); err != nil {
		t.Fatal(err)
	}
	t.Logf("StartVswitchd took %v", time.Since(start).Round(time.Millisecond))
	if o.VswitchdPID() == old || !ProcessRunning(o.VswitchdPID()) {
		t.Fatalf("no new vswitchd: old %d new %d", old, o.VswitchdPID())
	}
	if err := o.StartVswitchd(); err == nil {
		t.Fatal("second StartVswitchd succeeded while running")
	}
	for _, name := range []string{"vhu1", "vhu2"} {
		// ovs-vsctl's --timeout bounds the wait for the new switch to apply the port.
		vsctl(t, o, "wait-until", "Interface", name, "ofport>0")
		checkPort(t, o, name)
		if _, err := os.Stat(filepath.Join(o.RunDir, name)); err != nil {
			t.Fatalf("socket after restart: %v", err)
		}
	}
	stopOVS(t, o)
}

func TestOVSWithoutVswitchd(t *testing.T) {
	o := startOVS(t, OVSOptions{NoVswitchd: true})
	if pid := o.VswitchdPID(); pid != 0 {
		t.Fatalf("vswitchd pid %d with NoVswitchd", pid)
	}
	vsctl(t, o, "--no-wait", "add-br", "br-test", "--", "set", "bridge", "br-test", "datapath_type=netdev")
	if err := o.StartVswitchd(); err != nil {
		t.Fatal(err)
	}
	// Now a waiting ovs-vsctl returns as the switch acknowledges.
	addVhostPort(t, o, "br-test", "vhu1", "dpdkvhostuser")
	stopOVS(t, o)
}

func TestOVSNoDPDK(t *testing.T) {
	o := startOVS(t, OVSOptions{NoDPDK: true})
	if got := vsctl(t, o, "get", "Open_vSwitch", ".", "dpdk_initialized"); got != "false" {
		t.Fatalf("dpdk_initialized = %q", got)
	}
	addBridge(t, o, "br-test")
	vsctl(t, o, "add-port", "br-test", "vhu1", "--", "set", "Interface", "vhu1", "type=dpdkvhostuser")
	ofport := vsctl(t, o, "get", "Interface", "vhu1", "ofport")
	errCol := vsctl(t, o, "get", "Interface", "vhu1", "error")
	t.Logf("dpdkvhostuser without DPDK: ofport %s, error %s", ofport, errCol)
	if ofport != "-1" || errCol == "[]" {
		t.Fatalf("DPDK port accepted by a non-DPDK switch: ofport %s error %s", ofport, errCol)
	}
	stopOVS(t, o)
}

// testForwarding runs a txonly and an rxonly testpmd on two vhost-user
// ports of one netdev bridge and waits for the receiver to count packets,
// which reach it through the NORMAL action flooding the unknown destination.
func testForwarding(t *testing.T, ovsServer bool) {
	o := startOVS(t, OVSOptions{})
	addBridge(t, o, "br-test")
	var vdevs [2]string
	for i, name := range []string{"vhu1", "vhu2"} {
		if ovsServer {
			// OVS creates $RunDir/<name>; the app connects as client.
			addVhostPort(t, o, "br-test", name, "dpdkvhostuser")
			vdevs[i] = VhostUserVDev(0, filepath.Join(o.RunDir, name), false)
		} else {
			sock := filepath.Join(o.Dir, name+".sock")
			addVhostPort(t, o, "br-test", name, "dpdkvhostuserclient", "options:vhost-server-path="+sock)
			vdevs[i] = VhostUserVDev(0, sock, true)
		}
	}

	rxOpts := TestPMDOptions{VDevs: vdevs[:1], ForwardMode: "rxonly"}
	var ns *NetNS
	if ovsServer {
		// Run the receiver as a "pod" in its own network namespace.
		var err error
		if ns, err = NewNetNS(""); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = ns.Close() })
		rxOpts.NetNS = ns.Path()
	}
	start := time.Now()
	rx := startPMD(t, rxOpts)
	t.Logf("receiver ready after %v", time.Since(start).Round(time.Millisecond))
	if ns != nil {
		assertInNetNS(t, rx.PID(), ns.Path())
	}
	start = time.Now()
	tx := startPMD(t, TestPMDOptions{VDevs: vdevs[1:], ForwardMode: "txonly"})
	t.Logf("sender ready after %v", time.Since(start).Round(time.Millisecond))

	st, err := rx.WaitRx(1, 60*time.Second)
	if err != nil {
		t.Fatalf("%v\nsender:\n%s\nvswitchd log:\n%s", err, tx.Output(), o.Logs())
	}
	t.Logf("first RX after %v since sender start: %+v", time.Since(start).Round(time.Millisecond), st)
	time.Sleep(2 * time.Second)
	st, _ = rx.Stats()
	txst, _ := tx.Stats()
	t.Logf("after 2 s more: rx port0 RX=%d, tx port0 TX=%d", st.RxPackets, txst.TxPackets)
	if txst.TxPackets == 0 {
		t.Errorf("sender reports no TX: %+v", txst)
	}

	stopPMD(t, tx)
	stopPMD(t, rx)
	stopOVS(t, o)
	if ns != nil {
		if err := ns.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func assertInNetNS(t *testing.T, pid int, nsPath string) {
	t.Helper()
	var a, b syscall.Stat_t
	if err := syscall.Stat(nsPath, &a); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Stat("/proc/"+strconv.Itoa(pid)+"/ns/net", &b); err != nil {
		t.Fatal(err)
	}
	if a.Ino != b.Ino {
		t.Fatalf("pid %d is not in netns %s", pid, nsPath)
	}
}

// OVS is the vhost-user client (dpdkvhostuserclient), testpmd the server.
func TestForwardingVhostUserClient(t *testing.T) { testForwarding(t, false) }

// OVS is the vhost-user server (dpdkvhostuser), testpmd the client.
func TestForwardingVhostUserServer(t *testing.T) { testForwarding(t, true) }

func TestMemifPair(t *testing.T) {
	requirePackages(t)
	sock := filepath.Join(t.TempDir(), "memif.sock")
	rx := startPMD(t, TestPMDOptions{VDevs: []string{MemifVDev(0, sock, "server")}})
	tx := startPMD(t, TestPMDOptions{VDevs: []string{MemifVDev(0, sock, "client")}, ForwardMode: "txonly"})
	st, err := rx.WaitRx(1, 60*time.Second)
	if err != nil {
		t.Fatalf("%v\nsender:\n%s", err, tx.Output())
	}
	t.Logf("memif RX: %+v", st)
	stopPMD(t, tx)
	stopPMD(t, rx)
}

// TestTestPMDExitSignal: a testpmd that a signal ended says which one (the
// chaos test tells a memif PMD crash from other exits by it), and ProcDiag
// describes a running one thread by thread.
func TestTestPMDExitSignal(t *testing.T) {
	requirePackages(t)
	p := startPMD(t, TestPMDOptions{VDevs: []string{MemifVDev(0, filepath.Join(t.TempDir(), "memif.sock"), "server")}})
	if _, ok := p.ExitSignal(); ok {
		t.Fatal("ExitSignal reports a signal while testpmd runs")
	}
	diag := ProcDiag(p.PID())
	if !strings.Contains(diag, "State:") || strings.Count(diag, "\nthread ") < 2 {
		t.Errorf("ProcDiag of a running testpmd lacks its state or threads:\n%s", diag)
	}
	if err := syscall.Kill(p.PID(), syscall.SIGSEGV); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !p.Exited() && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if sig, ok := p.ExitSignal(); !ok || sig != syscall.SIGSEGV {
		t.Errorf("ExitSignal after SIGSEGV: %v, %v", sig, ok)
	}
	stopPMD(t, p)
}

// prefixRE finds the EAL runtime dir in testpmd output quoted in errors.
var prefixRE = regexp.MustCompile(`/dpdk/(usp-pmd-[0-9a-f]+)/mp_socket`)

func TestTestPMDEarlyFailure(t *testing.T) {
	requirePackages(t)
	missing := filepath.Join(t.TempDir(), "nobody-listens.sock")
	for name, opts := range map[string]TestPMDOptions{
		// testpmd stays up with zero ports: detected from its output.
		"missing socket": {VDevs: []string{VhostUserVDev(0, missing, false)}},
		// testpmd would fall back to "io" mode: detected from its output.
		"bad forward mode": {VDevs: []string{MemifVDev(0, missing, "server")}, ForwardMode: "bogus"},
		// testpmd exits by itself.
		"bad argument": {VDevs: []string{MemifVDev(0, missing, "server")}, AppArgs: []string{"--bogus-opt"}},
	} {
		start := time.Now()
		p, err := StartTestPMD(opts)
		if err == nil {
			_ = p.Stop()
			t.Fatalf("%s: StartTestPMD succeeded", name)
		}
		t.Logf("%s: failed after %v: %.200s", name, time.Since(start).Round(time.Millisecond), err)
		m := prefixRE.FindStringSubmatch(err.Error())
		if m == nil {
			t.Fatalf("%s: error lacks testpmd output: %v", name, err)
		}
		assertGone(t, DPDKRuntimeDir(m[1]))
	}
}

func TestNetNS(t *testing.T) {
	requirePackages(t)
	ns, err := NewNetNS("")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ns.Name, "usp-test-") {
		t.Errorf("name %q", ns.Name)
	}
	if _, err := os.Stat(ns.Path()); err != nil {
		t.Fatal(err)
	}
	if err := ns.Close(); err != nil {
		t.Fatal(err)
	}
	if err := ns.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	assertGone(t, ns.Path())
}

func TestParseStats(t *testing.T) {
	block := func(port, rx, tx int) string {
		return "\x1b[2J\x1b[1;1H\nPort statistics ====================================\n" +
			"  ######################## NIC statistics for port " + strconv.Itoa(port) + "  ########################\n" +
			"  RX-packets: " + strconv.Itoa(rx) + "          RX-missed: 0          RX-bytes:  64\n" +
			"  RX-errors: 0\n  RX-nombuf:  0         \n" +
			"  TX-packets: " + strconv.Itoa(tx) + "          TX-errors: 0          TX-bytes:  128\n"
	}
	out := block(0, 1, 2) + block(1, 3, 4) + block(0, 5, 6) +
		"  ---------------------- Forward statistics for port 0  ----------------------\n" +
		"  RX-packets: 99             RX-dropped: 0             RX-total: 99\n" +
		block(1, 7, 8)[:120] // truncated block: ignored
	got := ParseTestPMDStats(out)
	want := map[int]PortStats{
		0: {RxPackets: 5, RxBytes: 64, TxPackets: 6, TxBytes: 128},
		1: {RxPackets: 3, RxBytes: 64, TxPackets: 4, TxBytes: 128},
	}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("ParseTestPMDStats = %+v, want %+v", got, want)
	}
}

// TestReapOrphans: a switch whose test binary died (here: a registry entry
// naming a process that is gone) is stopped by the next test bed.
func TestReapOrphans(t *testing.T) {
	requirePackages(t)
	o, err := StartOVS(OVSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pids := o.PIDs()
	// Pretend the owner died: rewrite the entry with a PID that has exited.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	e := entry{OwnerPID: dead.Process.Pid, OwnerStart: "1", Dir: o.Dir, NetNS: o.FilePrefix, FilePrefix: o.FilePrefix}
	data, _ := json.Marshal(e)
	if err := os.WriteFile(filepath.Join(registryDir, o.FilePrefix+".json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := ReapOrphans(); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		if ProcessRunning(pid) {
			t.Errorf("orphaned daemon %d still running", pid)
		}
	}
	if _, err := os.Stat(o.Dir); !os.IsNotExist(err) {
		t.Errorf("orphan's directory %s left", o.Dir)
	}
	if _, err := os.Stat(filepath.Join("/var/run/netns", o.FilePrefix)); !os.IsNotExist(err) {
		t.Errorf("orphan's netns left")
	}
	_ = o.Stop() // already reaped: must not fail on what is gone
}
