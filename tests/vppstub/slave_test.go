package vppstub

import (
	"net/netip"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	interfaces "go.fd.io/govpp/binapi/interface"
	"go.fd.io/govpp/binapi/interface_types"
	"go.fd.io/govpp/binapi/ip_types"
	"go.fd.io/govpp/binapi/l2"
	"go.fd.io/govpp/binapi/memif"
	"go.fd.io/govpp/core"

	"github.com/userspace-cni/userspace/tests/testbed"
)

// hostMaster creates a master memif the way the plugin does (socket ~0,
// memif_create_v2, L2 bridge, admin up) and returns its sw_if_index.
func hostMaster(t *testing.T, conn *core.Connection, path string, bd uint32) uint32 {
	t.Helper()
	_, sw := createMaster(t, memif.NewServiceClient(conn), path, 0)
	if bd != 0 {
		if _, err := l2.NewServiceClient(conn).SwInterfaceSetL2Bridge(ctx(t), &l2.SwInterfaceSetL2Bridge{
			RxSwIfIndex: interface_types.InterfaceIndex(sw), BdID: bd, Enable: true}); err != nil {
			t.Fatal(err)
		}
	}
	setAdmin(t, conn, sw, true)
	return sw
}

func setAdmin(t *testing.T, conn *core.Connection, sw uint32, up bool) {
	t.Helper()
	var flags interface_types.IfStatusFlags
	if up {
		flags = interface_types.IF_STATUS_API_FLAG_ADMIN_UP
	}
	if _, err := interfaces.NewServiceClient(conn).SwInterfaceSetFlags(ctx(t), &interfaces.SwInterfaceSetFlags{
		SwIfIndex: interface_types.InterfaceIndex(sw), Flags: flags}); err != nil {
		t.Fatal(err)
	}
}

func addAddress(t *testing.T, conn *core.Connection, sw uint32, prefix string) {
	t.Helper()
	p, err := ip_types.ParseAddressWithPrefix(prefix)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := interfaces.NewServiceClient(conn).SwInterfaceAddDelAddress(ctx(t), &interfaces.SwInterfaceAddDelAddress{
		SwIfIndex: interface_types.InterfaceIndex(sw), IsAdd: true, Prefix: p}); err != nil {
		t.Fatalf("address %s: %v", prefix, err)
	}
}

// podSlave configures a pod's VPP the way vpp-app does: registers the
// socket, creates a slave memif on it, adds the addresses and sets it up.
func podSlave(t *testing.T, conn *core.Connection, path string, prefixes ...string) uint32 {
	t.Helper()
	mc := memif.NewServiceClient(conn)
	r := must[*memif.MemifSocketFilenameAddDelV2Reply](t, "socket add")(mc.MemifSocketFilenameAddDelV2(ctx(t),
		&memif.MemifSocketFilenameAddDelV2{IsAdd: true, SocketID: ^uint32(0), SocketFilename: path}))
	cr := must[*memif.MemifCreateV2Reply](t, "memif create")(mc.MemifCreateV2(ctx(t),
		&memif.MemifCreateV2{Role: memif.MEMIF_ROLE_API_SLAVE, SocketID: r.SocketID, ID: 0}))
	sw := uint32(cr.SwIfIndex)
	for _, p := range prefixes {
		addAddress(t, conn, sw, p)
	}
	setAdmin(t, conn, sw, true)
	return sw
}

func memifOf(t *testing.T, s *Server, sw uint32) Memif {
	t.Helper()
	for _, m := range s.Memifs() {
		if m.SwIfIndex == sw {
			return m
		}
	}
	t.Fatalf("no memif %d", sw)
	return Memif{}
}

func mustPing(t *testing.T, s *Server, sw uint32, dst string, count int) {
	t.Helper()
	n, err := s.Ping(sw, netip.MustParseAddr(dst), count, 2*time.Second)
	if err != nil || n != count {
		t.Fatalf("ping %s from sw_if_index %d: %d/%d replies, %v", dst, sw, n, count, err)
	}
}

// Two pod stand-ins with slave memifs on the host stand-in's masters in
// bridge domain 4 ping each other through the host's bridge.
func TestSlavePingAcrossBridge(t *testing.T) {
	host, dir := startStub(t, Options{})
	hc := connect(t, host)
	if _, err := l2.NewServiceClient(hc).BridgeDomainAddDelV2(ctx(t), &l2.BridgeDomainAddDelV2{BdID: 4, IsAdd: true,
		Flood: true, UuFlood: true, Forward: true, Learn: true}); err != nil {
		t.Fatal(err)
	}
	sockA, sockB := filepath.Join(dir, "a.sock"), filepath.Join(dir, "b.sock")
	hostA, hostB := hostMaster(t, hc, sockA, 4), hostMaster(t, hc, sockB, 4)

	podA, _ := startStub(t, Options{})
	podB, _ := startStub(t, Options{})
	ca, cb := connect(t, podA), connect(t, podB)
	swA := podSlave(t, ca, sockA, "172.22.0.2/24", "fd00:22::2/64")
	swB := podSlave(t, cb, sockB, "172.22.0.3/24", "fd00:22::3/64")
	waitFor(t, "both slaves to connect", 5*time.Second, func() bool {
		return memifConnected(podA, swA) && memifConnected(podB, swB) &&
			memifConnected(host, hostA) && memifConnected(host, hostB)
	})

	// What the pod's client sees: link up, the negotiated sizes, the
	// host's socket file.
	ic := interfaces.NewServiceClient(ca)
	d := drain(t, must[interfaces.RPCService_SwInterfaceDumpClient](t, "dump")(ic.SwInterfaceDump(ctx(t),
		&interfaces.SwInterfaceDump{SwIfIndex: interface_types.InterfaceIndex(swA)})).Recv)
	if len(d) != 1 || d[0].Flags != interface_types.IF_STATUS_API_FLAG_ADMIN_UP|interface_types.IF_STATUS_API_FLAG_LINK_UP {
		t.Errorf("pod A sw_interface_details %+v", d)
	}
	md := drain(t, must[memif.RPCService_MemifDumpClient](t, "memif dump")(memif.NewServiceClient(ca).MemifDump(ctx(t),
		&memif.MemifDump{})).Recv)
	if len(md) != 1 || md[0].Role != memif.MEMIF_ROLE_API_SLAVE || md[0].RingSize != 1024 || md[0].BufferSize != 2048 ||
		md[0].Flags&interface_types.IF_STATUS_API_FLAG_LINK_UP == 0 {
		t.Errorf("pod A memif_details %+v", md)
	}
	if m := memifOf(t, podA, swA); m.SocketFilename != sockA || m.Role != memif.MEMIF_ROLE_API_SLAVE ||
		m.Mode != memif.MEMIF_MODE_API_ETHERNET || m.RemoteName != memifAppName || m.RemoteInterface == "" ||
		m.Connections != 1 {
		t.Errorf("pod A memif %+v", m)
	}
	if m := memifOf(t, host, hostA); m.RemoteName != memifAppName || m.Connections != 1 {
		t.Errorf("host memif %+v", m)
	}

	before := host.Counters(hostB)
	const n = 5
	mustPing(t, podA, swA, "172.22.0.3", n)
	mustPing(t, podB, swB, "172.22.0.2", n)
	mustPing(t, podA, swA, "fd00:22::3", n)

	// The frames crossed the host's bridge both ways.
	ha, hb := host.Counters(hostA), host.Counters(hostB)
	t.Logf("host A %+v\nhost B %+v\npod A %+v\npod B %+v", ha, hb, podA.Counters(swA), podB.Counters(swB))
	// Pod A's 3n echo requests and replies plus one ARP request and reply
	// and one NS/NA each way at least.
	if ha.RxPackets < 3*n+2 || hb.TxPackets-before.TxPackets < 3*n+2 || hb.RxPackets < 3*n+2 || ha.TxPackets < 3*n+2 {
		t.Errorf("host counters A %+v, B %+v", ha, hb)
	}
	if pa := podA.Counters(swA); pa.TxPackets != ha.RxPackets || pa.RxPackets != ha.TxPackets || pa.HostRx < 3*n {
		t.Errorf("pod A counters %+v do not mirror host A %+v", pa, ha)
	}
	if pb := podB.Counters(swB); pb.HostRx < 3*n || pb.HostTx < 3*n || pb.Drops != 0 {
		t.Errorf("pod B counters %+v", pb)
	}
	nbrs := podA.Neighbors(swA)
	if len(nbrs) != 2 || nbrs[0].IP.String() != "172.22.0.3" || nbrs[1].IP.String() != "fd00:22::3" ||
		nbrs[0].MAC.String() != podB.Interfaces()[1].MAC.String() {
		t.Errorf("pod A neighbours %v, pod B MAC %v", nbrs, podB.Interfaces()[1].MAC)
	}

	// Nobody answers for .9; nothing is routed off-link.
	if got, err := podA.Ping(swA, netip.MustParseAddr("172.22.0.9"), 1, 300*time.Millisecond); err == nil ||
		!strings.Contains(err.Error(), "ARP for 172.22.0.9 unanswered") {
		t.Errorf("ping of a missing host: %d, %v", got, err)
	}
	if _, err := podA.Ping(swA, netip.MustParseAddr("10.1.1.1"), 1, time.Second); err == nil ||
		!strings.Contains(err.Error(), "no route") {
		t.Errorf("ping without a route: %v", err)
	}
	if _, err := host.Ping(hostA, netip.MustParseAddr("172.22.0.2"), 1, time.Second); err == nil ||
		!strings.Contains(err.Error(), "bridge domain 4") {
		t.Errorf("ping from an L2 interface: %v", err)
	}

	// A route through pod B (which also owns 10.50.0.1) lets A reach it.
	addAddress(t, cb, swB, "10.50.0.1/16")
	addRoute(t, ca, "10.50.0.0/16", "172.22.0.3", swA)
	mustPing(t, podA, swA, "10.50.0.1", 2)
}

// addRoute adds (replacing) a route as vpp-app does.
func addRoute(t *testing.T, conn *core.Connection, prefix, nh string, sw uint32) {
	t.Helper()
	if _, err := routeAdd(t, conn, true, false, prefix, path(nh, sw)); err != nil {
		t.Fatalf("route %s via %s: %v", prefix, nh, err)
	}
}

// A slave memif against DPDK's memif PMD as server: testpmd's icmpecho
// engine answers the stand-in's ARP and ICMP echo requests.
func TestSlaveWithTestPMD(t *testing.T) {
	// CI must fail, not skip, without DPDK.
	if err := testbed.EnsurePackages("dpdk-dev", "librte-net-memif23"); err != nil {
		t.Fatal(err)
	}
	pod, dir := startStub(t, Options{})
	conn := connect(t, pod)
	sock := filepath.Join(dir, "pmd.sock")
	pmd, err := testbed.StartTestPMD(testbed.TestPMDOptions{VDevs: []string{testbed.MemifVDev(0, sock, "server")},
		ForwardMode: "icmpecho", EALArgs: []string{"--no-shconf"}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := pmd.Stop(); err != nil {
			t.Error(err)
		}
	}()
	sw := podSlave(t, conn, sock, "10.9.0.1/24")
	waitFor(t, "the slave to connect to testpmd", 10*time.Second, func() bool { return memifConnected(pod, sw) })
	if m := memifOf(t, pod, sw); !strings.HasPrefix(m.RemoteName, "DPDK") {
		t.Errorf("remote name %q, want DPDK's", m.RemoteName)
	}

	const n = 20
	got, err := pod.Ping(sw, netip.MustParseAddr("10.9.0.77"), n, 2*time.Second)
	c := pod.Counters(sw)
	t.Logf("ping: %d/%d replies, %v; counters %+v", got, n, err, c)
	if err != nil || got != n {
		t.Fatalf("ping through testpmd: %d/%d replies, %v\n%s", got, n, err, pmd.Output())
	}
	if c.RxPackets < n+1 || c.TxPackets < n+1 || c.HostRx < n+1 || c.Drops != 0 {
		t.Errorf("counters %+v", c)
	}
	waitFor(t, "testpmd to report the frames", 5*time.Second, func() bool {
		st, err := pmd.Stats()
		return err == nil && st.RxPackets >= n+1 && st.TxPackets >= n+1
	})

	// Deleting the slave disconnects it; testpmd survives.
	if _, err := memif.NewServiceClient(conn).MemifDelete(ctx(t), &memif.MemifDelete{SwIfIndex: interface_types.InterfaceIndex(sw)}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if pmd.Exited() {
		t.Errorf("testpmd died when the slave was deleted:\n%s", pmd.Output())
	}
}

// A slave's life: it connects only when admin up, stays connected (dropping
// frames) while admin down, disconnects on memif_delete, reconnects by
// itself after the master's VPP restarts, and Stop leaks nothing.
func TestSlaveLifecycle(t *testing.T) {
	baseFDs, baseGoroutines := openFDs(t), runtime.NumGoroutine()
	host, dir := startStub(t, Options{})
	hc := connect(t, host)
	sock := filepath.Join(dir, "m.sock")
	// An L3 master: the host answers pings itself.
	hsw := hostMaster(t, hc, sock, 0)
	addAddress(t, hc, hsw, "172.30.0.1/24")

	pod, _ := startStub(t, Options{})
	pc := connect(t, pod)
	mc := memif.NewServiceClient(pc)
	r := must[*memif.MemifSocketFilenameAddDelV2Reply](t, "socket add")(mc.MemifSocketFilenameAddDelV2(ctx(t),
		&memif.MemifSocketFilenameAddDelV2{IsAdd: true, SocketID: ^uint32(0), SocketFilename: sock}))
	create := func() uint32 {
		cr := must[*memif.MemifCreateV2Reply](t, "memif create")(mc.MemifCreateV2(ctx(t),
			&memif.MemifCreateV2{Role: memif.MEMIF_ROLE_API_SLAVE, SocketID: r.SocketID}))
		return uint32(cr.SwIfIndex)
	}
	sw := create()
	addAddress(t, pc, sw, "172.30.0.2/24")
	time.Sleep(3 * slaveRetryInterval)
	if memifConnected(pod, sw) || memifConnected(host, hsw) || memifOf(t, pod, sw).Connections != 0 {
		t.Fatal("an admin-down slave connected")
	}
	setAdmin(t, pc, sw, true)
	waitFor(t, "the slave to connect", 5*time.Second, func() bool { return memifConnected(pod, sw) && memifConnected(host, hsw) })
	mustPing(t, pod, sw, "172.30.0.1", 3)
	mustPing(t, host, hsw, "172.30.0.2", 3)

	// Admin down: still connected (VPP 25.10), frames dropped.
	setAdmin(t, pc, sw, false)
	time.Sleep(3 * slaveRetryInterval)
	if !memifConnected(pod, sw) {
		t.Error("admin down disconnected the slave")
	}
	if _, err := pod.Ping(sw, netip.MustParseAddr("172.30.0.1"), 1, time.Second); err == nil ||
		!strings.Contains(err.Error(), "admin down") {
		t.Errorf("ping from an admin-down interface: %v", err)
	}
	drops := pod.Counters(sw).Drops
	if n, err := host.Ping(hsw, netip.MustParseAddr("172.30.0.2"), 2, 200*time.Millisecond); n != 0 || err != nil {
		t.Errorf("an admin-down pod answered: %d, %v", n, err)
	}
	if d := pod.Counters(sw).Drops; d != drops+2 {
		t.Errorf("drops %d -> %d, want 2 more", drops, d)
	}
	setAdmin(t, pc, sw, true)
	mustPing(t, pod, sw, "172.30.0.1", 1)

	// memif_delete disconnects before replying.
	if _, err := mc.MemifDelete(ctx(t), &memif.MemifDelete{SwIfIndex: interface_types.InterfaceIndex(sw)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the host to see the disconnect", 5*time.Second, func() bool { return !memifConnected(host, hsw) })
	if m := memifOf(t, host, hsw); m.DisconnectReason != "disconnected by peer: interface deleted" {
		t.Errorf("host disconnect reason %q", m.DisconnectReason)
	}
	sw = create()
	addAddress(t, pc, sw, "172.30.0.2/24")
	setAdmin(t, pc, sw, true)
	waitFor(t, "the new slave to connect", 5*time.Second, func() bool { return memifConnected(pod, sw) })

	// The host's VPP restarts: the slave retries until the master is back.
	if err := host.Restart(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the slave to see the restart", 5*time.Second, func() bool { return !memifConnected(pod, sw) })
	if m := memifOf(t, pod, sw); m.DisconnectReason != "disconnected by peer: VPP stopped" || !isSocket(sock) {
		t.Errorf("after the host restart: %+v", m)
	}
	time.Sleep(3 * slaveRetryInterval) // attempts fail: nobody listens
	hc2 := connect(t, host)
	hsw = hostMaster(t, hc2, sock, 0)
	addAddress(t, hc2, hsw, "172.30.0.1/24")
	waitFor(t, "the slave to reconnect", 5*time.Second, func() bool { return memifConnected(pod, sw) })
	if m := memifOf(t, pod, sw); m.Connections != 2 {
		t.Errorf("connections %d, want 2", m.Connections)
	}
	mustPing(t, pod, sw, "172.30.0.1", 2)

	// The pod's VPP stops: the host sees its slave go.
	pc.Disconnect()
	if err := pod.Stop(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the host to see the pod stop", 5*time.Second, func() bool { return !memifConnected(host, hsw) })
	hc.Disconnect()
	hc2.Disconnect()
	if err := host.Stop(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > baseGoroutines && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > baseGoroutines {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines after Stop, %d before Start:\n%s", n, baseGoroutines, buf[:runtime.Stack(buf, true)])
	}
	if fds := openFDs(t); len(fds) > len(baseFDs) {
		t.Errorf("descriptors open after Stop:\n%v\nbefore Start:\n%v", fds, baseFDs)
	}
}

// IP-mode memifs carry bare IP packets (no ARP); a slave reaches a master
// listening on an abstract socket inside a network namespace.
func TestSlaveIPModeAbstractNetns(t *testing.T) {
	if err := testbed.EnsurePackages("iproute2"); err != nil {
		t.Fatal(err)
	}
	ns, err := testbed.NewNetNS(testbed.UniqueName("vs"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := ns.Close(); err != nil {
			t.Error(err)
		}
	}()
	sock := "abstract:" + testbed.UniqueName("vs-memif") + ",netns_name=" + ns.Path()
	ipMemif := func(conn *core.Connection, role memif.MemifRole, prefix string) uint32 {
		mc := memif.NewServiceClient(conn)
		r := must[*memif.MemifSocketFilenameAddDelV2Reply](t, "socket add")(mc.MemifSocketFilenameAddDelV2(ctx(t),
			&memif.MemifSocketFilenameAddDelV2{IsAdd: true, SocketID: ^uint32(0), SocketFilename: sock}))
		cr := must[*memif.MemifCreateV2Reply](t, "memif create")(mc.MemifCreateV2(ctx(t),
			&memif.MemifCreateV2{Role: role, Mode: memif.MEMIF_MODE_API_IP, SocketID: r.SocketID, ID: 7}))
		sw := uint32(cr.SwIfIndex)
		addAddress(t, conn, sw, prefix)
		setAdmin(t, conn, sw, true)
		return sw
	}
	host, _ := startStub(t, Options{})
	pod, _ := startStub(t, Options{})
	hsw := ipMemif(connect(t, host), memif.MEMIF_ROLE_API_MASTER, "172.31.0.1/24")
	psw := ipMemif(connect(t, pod), memif.MEMIF_ROLE_API_SLAVE, "172.31.0.2/24")
	waitFor(t, "the IP-mode slave to connect", 5*time.Second, func() bool { return memifConnected(pod, psw) })
	mustPing(t, pod, psw, "172.31.0.1", 3)
	mustPing(t, host, hsw, "172.31.0.2", 3)
	if c := pod.Counters(psw); c.RxPackets != 6 || c.TxPackets != 6 || c.RxBytes != 6*84 {
		t.Errorf("IP-mode counters %+v: want 6 bare 84-byte packets each way", c)
	}
	if n := pod.Neighbors(psw); len(n) != 0 {
		t.Errorf("neighbours on an IP-mode memif: %v", n)
	}
}

// A master that refuses the slave (wrong secret) leaves it down, retrying,
// with the master's reason; fixing the master lets it in.
func TestSlaveRefused(t *testing.T) {
	host, dir := startStub(t, Options{})
	hc := connect(t, host)
	sock := filepath.Join(dir, "m.sock")
	hm := memif.NewServiceClient(hc)
	r := must[*memif.MemifSocketFilenameAddDelV2Reply](t, "socket add")(hm.MemifSocketFilenameAddDelV2(ctx(t),
		&memif.MemifSocketFilenameAddDelV2{IsAdd: true, SocketID: ^uint32(0), SocketFilename: sock}))
	cr := must[*memif.MemifCreateV2Reply](t, "memif create")(hm.MemifCreateV2(ctx(t),
		&memif.MemifCreateV2{Role: memif.MEMIF_ROLE_API_MASTER, SocketID: r.SocketID, Secret: "s3cret"}))

	pod, _ := startStub(t, Options{})
	sw := podSlave(t, connect(t, pod), sock)
	waitFor(t, "the refusal", 5*time.Second, func() bool {
		return strings.Contains(memifOf(t, pod, sw).DisconnectReason, "incorrect secret")
	})
	time.Sleep(5 * slaveRetryInterval)
	if m := memifOf(t, pod, sw); m.Connected || m.Connections != 0 || m.RemoteName != memifAppName {
		t.Errorf("refused slave %+v", m)
	}
	if _, err := hm.MemifDelete(ctx(t), &memif.MemifDelete{SwIfIndex: cr.SwIfIndex}); err != nil {
		t.Fatal(err)
	}
	hostMaster(t, hc, sock, 0)
	waitFor(t, "the slave to get in", 5*time.Second, func() bool { return memifConnected(pod, sw) })
}

// Slave memifs in a bridge domain are switched like masters: two L3
// stand-ins with masters ping each other through a third stand-in whose
// bridge domain holds two slaves.
func TestSlavesBridged(t *testing.T) {
	p1, dir1 := startStub(t, Options{})
	p2, dir2 := startStub(t, Options{})
	c1, c2 := connect(t, p1), connect(t, p2)
	sock1, sock2 := filepath.Join(dir1, "p.sock"), filepath.Join(dir2, "p.sock")
	sw1, sw2 := hostMaster(t, c1, sock1, 0), hostMaster(t, c2, sock2, 0)
	addAddress(t, c1, sw1, "10.0.0.1/24")
	addAddress(t, c2, sw2, "10.0.0.2/24")

	mid, _ := startStub(t, Options{})
	mc := connect(t, mid)
	s1, s2 := podSlave(t, mc, sock1), podSlave(t, mc, sock2)
	for _, sw := range []uint32{s1, s2} {
		if _, err := l2.NewServiceClient(mc).SwInterfaceSetL2Bridge(ctx(t), &l2.SwInterfaceSetL2Bridge{
			RxSwIfIndex: interface_types.InterfaceIndex(sw), BdID: 9, Enable: true}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "both slaves to connect", 5*time.Second, func() bool {
		return memifConnected(mid, s1) && memifConnected(mid, s2)
	})
	mustPing(t, p1, sw1, "10.0.0.2", 4)
	mustPing(t, p2, sw2, "10.0.0.1", 4)
	a, b := mid.Counters(s1), mid.Counters(s2)
	// At least 1 ARP and 8 ICMP frames each way (ARP may be repeated).
	if a.RxPackets < 9 || b.TxPackets != a.RxPackets || b.RxPackets < 9 || a.TxPackets != b.RxPackets ||
		a.HostRx != 0 || a.Drops+b.Drops != 0 {
		t.Errorf("bridged slaves: %+v, %+v", a, b)
	}
}
