package vppstub

import (
	"errors"
	"net"
	"os"
	"runtime"
	"slices"
	"testing"

	"go.fd.io/govpp/binapi/memif"
	"golang.org/x/sys/unix"

	"github.com/userspace-cni/userspace/tests/testbed"
)

func frame(dst, src byte) []byte {
	f := make([]byte, 60)
	f[0], f[5] = 0x02, dst
	f[6], f[11] = 0x02, src
	if dst == 0xff {
		copy(f[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	}
	return f
}

func sws(ifs []*iface) []uint32 {
	var out []uint32
	for _, i := range ifs {
		out = append(out, i.sw)
	}
	slices.Sort(out)
	return out
}

// The bridge domain's switching decisions: learning, known unicast, flood
// and unknown-unicast flood flags, split horizon.
func TestL2Switching(t *testing.T) {
	st := newState(&Server{opts: Options{}})
	bd := &bridgeDomain{id: 1, flood: true, uuFlood: true, forward: true, learn: true, fib: map[[6]byte]uint32{}}
	st.bds[1] = bd
	for sw := uint32(1); sw <= 3; sw++ {
		st.ifaces[sw] = &iface{sw: sw, inBD: true, bdID: 1, memif: &memifIf{mode: memif.MEMIF_MODE_API_ETHERNET}}
		bd.members = append(bd.members, sw)
	}
	a, b, c := st.ifaces[1], st.ifaces[2], st.ifaces[3]
	check := func(what string, src *iface, f []byte, want ...uint32) {
		t.Helper()
		if got := sws(st.l2Switch(bd, src, f)); !slices.Equal(got, want) {
			t.Errorf("%s: to %v, want %v", what, got, want)
		}
	}
	check("broadcast from A", a, frame(0xff, 0xa), 2, 3)
	check("unicast to A's learnt MAC", b, frame(0xa, 0xb), 1)
	check("unicast to B's learnt MAC", a, frame(0xb, 0xa), 2)
	check("unknown unicast", a, frame(0xc, 0xa), 2, 3)
	check("to its own port", a, frame(0xa, 0xa))
	check("A's MAC moves to C", c, frame(0xff, 0xa), 1, 2)
	check("unicast follows the move", b, frame(0xa, 0xb), 3)

	bd.uuFlood = false
	check("unknown unicast without uu-flood", a, frame(0xd, 0xe))
	bd.flood = false
	check("broadcast without flood", a, frame(0xff, 0xe))
	bd.flood, bd.uuFlood, bd.forward = true, true, false
	check("forwarding disabled floods known unicast", b, frame(0xa, 0xb), 1, 3)
	bd.forward = true
	b.shg, c.shg = 1, 1
	check("split horizon", b, frame(0xff, 0xb), 1)
	bd.learn = false
	clear(bd.fib)
	check("no learning", a, frame(0xff, 0xa), 2, 3)
	check("nothing learnt", b, frame(0xa, 0xb), 1)
}

// A master on "abstract:<name>,netns_name=<path>" listens inside that
// network namespace only.
func TestMemifAbstractSocketInNetns(t *testing.T) {
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
	s, _ := startStub(t, Options{})
	mc := memif.NewServiceClient(connect(t, s))
	name := testbed.UniqueName("vs-memif")
	createMaster(t, mc, "abstract:"+name+",netns_name="+ns.Path(), 0)

	addr := &net.UnixAddr{Name: "@" + name, Net: "unixpacket"}
	if c, err := net.DialUnix("unixpacket", nil, addr); err == nil {
		_ = c.Close()
		t.Fatal("abstract socket reachable from the host namespace")
	}
	// Dial from a thread inside the namespace (discarded afterwards).
	type res struct {
		hello []byte
		err   error
	}
	ch := make(chan res, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		f, err := os.Open(ns.Path())
		if err != nil {
			ch <- res{err: err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- res{err: err}
			return
		}
		c, err := net.DialUnix("unixpacket", nil, addr)
		if err != nil {
			ch <- res{err: err}
			return
		}
		defer c.Close()
		b := make([]byte, memifMsgSize)
		n, err := c.Read(b)
		ch <- res{hello: b[:n], err: err}
	}()
	r := <-ch
	if r.err != nil || msgType(r.hello) != memifMsgHello {
		t.Fatalf("inside the namespace: %v, message type %d", r.err, msgType(r.hello))
	}
	if f := s.SocketFiles(); len(f) != 2 || !f[1].Listening {
		t.Errorf("socket files %+v", f)
	}
	if _, err := os.Stat(name); !errors.Is(err, os.ErrNotExist) {
		t.Error("an abstract socket created a file")
	}
}
