package vppstub

import (
	"path/filepath"
	"syscall"
	"testing"
	"time"

	interfaces "go.fd.io/govpp/binapi/interface"
	"go.fd.io/govpp/binapi/interface_types"
	"go.fd.io/govpp/binapi/l2"
	"go.fd.io/govpp/binapi/memif"

	"github.com/userspace-cni/userspace/tests/testbed"
)

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func memifConnected(s *Server, sw uint32) bool {
	for _, m := range s.Memifs() {
		if m.SwIfIndex == sw {
			return m.Connected
		}
	}
	return false
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Two dpdk-testpmd "pods" (memif PMD, client role) on two master memifs in
// one bridge domain: packets sent by one cross the stand-in's bridge to the
// other.
func TestDataPathTestPMD(t *testing.T) {
	// CI must fail, not skip, without DPDK.
	if err := testbed.EnsurePackages("dpdk-dev", "librte-net-memif23"); err != nil {
		t.Fatal(err)
	}
	s, dir := startStub(t, Options{})
	conn := connect(t, s)
	mc, lc, ic := memif.NewServiceClient(conn), l2.NewServiceClient(conn), interfaces.NewServiceClient(conn)
	// The whole test, packets included, is bounded by this context.
	c := ctxFor(t, 3*time.Minute)
	sockA, sockB := filepath.Join(dir, "a.sock"), filepath.Join(dir, "b.sock")
	_, swA := createMaster(t, mc, sockA, 0)
	_, swB := createMaster(t, mc, sockB, 0)
	if _, err := lc.BridgeDomainAddDelV2(c, &l2.BridgeDomainAddDelV2{BdID: 100, IsAdd: true,
		Flood: true, UuFlood: true, Forward: true, Learn: true}); err != nil {
		t.Fatal(err)
	}
	for _, sw := range []uint32{swA, swB} {
		if _, err := lc.SwInterfaceSetL2Bridge(c, &l2.SwInterfaceSetL2Bridge{RxSwIfIndex: interface_types.InterfaceIndex(sw),
			BdID: 100, Enable: true}); err != nil {
			t.Fatal(err)
		}
		if _, err := ic.SwInterfaceSetFlags(c, &interfaces.SwInterfaceSetFlags{SwIfIndex: interface_types.InterfaceIndex(sw),
			Flags: interface_types.IF_STATUS_API_FLAG_ADMIN_UP}); err != nil {
			t.Fatal(err)
		}
	}

	rx, err := testbed.StartTestPMD(testbed.TestPMDOptions{VDevs: []string{testbed.MemifVDev(0, sockB, "client")},
		ForwardMode: "rxonly", EALArgs: []string{"--no-shconf"}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := rx.Stop(); err != nil {
			t.Error(err)
		}
	}()
	waitFor(t, "the receiver's memif to connect", 30*time.Second, func() bool { return memifConnected(s, swB) })

	// Connected but idle: the pollers must sleep (gomemif spins otherwise).
	cpu0, wall0 := cpuTime(), time.Now()
	time.Sleep(2 * time.Second)
	if used, wall := cpuTime()-cpu0, time.Since(wall0); used > wall/10 {
		t.Errorf("idle stand-in with a connected peer used %v CPU in %v", used, wall)
	}

	tx, err := testbed.StartTestPMD(testbed.TestPMDOptions{VDevs: []string{testbed.MemifVDev(0, sockA, "client")},
		ForwardMode: "txonly", EALArgs: []string{"--no-shconf"}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := tx.Stop(); err != nil {
			t.Error(err)
		}
	}()
	waitFor(t, "the sender's memif to connect", 30*time.Second, func() bool { return memifConnected(s, swA) })

	const want = 10000
	st, err := rx.WaitRx(want, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ca, cb := s.Counters(swA), s.Counters(swB)
	t.Logf("testpmd receiver: %d packets; stand-in: %s rx %d (drops %d), %s tx %d (drops %d)",
		st.RxPackets, "A", ca.RxPackets, ca.Drops, "B", cb.TxPackets, cb.Drops)
	if ca.RxPackets < want || cb.TxPackets < st.RxPackets || cb.TxBytes == 0 {
		t.Errorf("counters A %+v, B %+v; the receiver got %d", ca, cb, st.RxPackets)
	}
	if ca.TxPackets != 0 || cb.RxPackets != 0 {
		t.Errorf("traffic in the wrong direction: A %+v, B %+v", ca, cb)
	}
	// Both testpmd report once a second: the sender catches up.
	waitFor(t, "the sender to report what the receiver got", 10*time.Second, func() bool {
		txst, err := tx.Stats()
		return err == nil && txst.TxPackets >= st.RxPackets
	})

	// The sender leaves: its memif goes down, the other stays up and idle.
	if err := tx.Stop(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the sender's memif to go down", 10*time.Second, func() bool { return !memifConnected(s, swA) })
	if !memifConnected(s, swB) {
		t.Error("receiver's memif went down with the sender")
	}
	cpu0, wall0 = cpuTime(), time.Now()
	time.Sleep(time.Second)
	if used, wall := cpuTime()-cpu0, time.Since(wall0); used > wall/10 {
		t.Errorf("stand-in used %v CPU in %v after the traffic stopped", used, wall)
	}
	// Deleting a connected memif disconnects its peer and keeps the file.
	if _, err := mc.MemifDelete(c, &memif.MemifDelete{SwIfIndex: interface_types.InterfaceIndex(swB)}); err != nil {
		t.Fatal(err)
	}
	if !isSocket(sockB) {
		t.Error("memif_delete removed the socket file")
	}
	if rx.Exited() {
		t.Errorf("testpmd died when its memif was deleted:\n%s", rx.Output())
	}
}
