package vppstub

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"go.fd.io/govpp/binapi/interface_types"
	"go.fd.io/govpp/binapi/memif"
)

// rawPeer is a hand-driven memif slave control connection.
type rawPeer struct {
	t *testing.T
	c *net.UnixConn
}

func dialPeer(t *testing.T, path string) *rawPeer {
	t.Helper()
	c, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: path, Net: "unixpacket"})
	if err != nil {
		t.Fatalf("dial %s: %v", path, err)
	}
	p := &rawPeer{t: t, c: c}
	t.Cleanup(func() { _ = c.Close() })
	hello := p.recv()
	if msgType(hello) != memifMsgHello || binary.LittleEndian.Uint16(hello[34:]) != memifVersion ||
		binary.LittleEndian.Uint16(hello[40:]) != 0 {
		t.Fatalf("hello % x", hello[:46])
	}
	return p
}

// recv returns the next message, or nil at EOF.
func (p *rawPeer) recv() []byte {
	p.t.Helper()
	_ = p.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, memifMsgSize)
	n, _, _, _, err := p.c.ReadMsgUnix(b, make([]byte, 64))
	if errors.Is(err, io.EOF) || (err == nil && n == 0) {
		return nil
	}
	if err != nil {
		p.t.Fatalf("memif peer read: %v", err)
	}
	return b[:n]
}

func (p *rawPeer) sendInit(id uint32, mode uint8, secret string) {
	p.t.Helper()
	b := make([]byte, memifMsgSize)
	binary.LittleEndian.PutUint16(b, memifMsgInit)
	binary.LittleEndian.PutUint16(b[2:], memifVersion)
	binary.LittleEndian.PutUint32(b[4:], id)
	b[8] = mode
	copy(b[9:33], secret)
	copy(b[33:65], "rawpeer")
	if _, err := p.c.Write(b); err != nil {
		p.t.Fatal(err)
	}
}

// wantDisconnect expects a disconnect message with the reason, then EOF.
func (p *rawPeer) wantDisconnect(reason string) {
	p.t.Helper()
	m := p.recv()
	if msgType(m) != memifMsgDisconnect || disconnectReason(m) != reason {
		p.t.Fatalf("got message type %d %q, want disconnect %q", msgType(m), disconnectReason(m), reason)
	}
	if m := p.recv(); m != nil {
		p.t.Fatalf("message type %d after disconnect", msgType(m))
	}
	_ = p.c.Close()
}

// openFDs lists this process's descriptors and what they refer to.
func openFDs(t *testing.T) []string {
	t.Helper()
	e, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range e {
		l, _ := os.Readlink("/proc/self/fd/" + f.Name())
		out = append(out, f.Name()+"->"+l)
	}
	return out
}

// The stand-in validates a peer's init like VPP, survives peers that hang up
// mid-handshake, disconnects peers of deleted interfaces and leaks nothing.
func TestMemifPeerHandshake(t *testing.T) {
	baseFDs, baseGoroutines := openFDs(t), runtime.NumGoroutine()
	s, dir := startStub(t, Options{})
	conn := connect(t, s)
	mc := memif.NewServiceClient(conn)
	c := ctx(t)
	path := filepath.Join(dir, "m.sock")
	r := must[*memif.MemifSocketFilenameAddDelV2Reply](t, "socket")(mc.MemifSocketFilenameAddDelV2(c,
		&memif.MemifSocketFilenameAddDelV2{IsAdd: true, SocketID: 9, SocketFilename: path}))
	eth := must[*memif.MemifCreateV2Reply](t, "create")(mc.MemifCreateV2(c, &memif.MemifCreateV2{
		Role: memif.MEMIF_ROLE_API_MASTER, SocketID: r.SocketID, ID: 0, Secret: "s3cret"}))
	ipm := must[*memif.MemifCreateV2Reply](t, "create")(mc.MemifCreateV2(c, &memif.MemifCreateV2{
		Role: memif.MEMIF_ROLE_API_MASTER, SocketID: r.SocketID, ID: 1, Mode: memif.MEMIF_MODE_API_IP}))

	dialPeer(t, path).sendInitAnd(7, 0, "", "unmatched interface id")
	_ = dialPeer(t, path).c.Close() // hangs up before its init
	dialPeer(t, path).sendInitAnd(0, 0, "wrong", "incorrect secret")
	dialPeer(t, path).sendInitAnd(0, 1, "s3cret", "mode mismatch")

	a := dialPeer(t, path)
	a.sendInit(0, 0, "s3cret")
	if m := a.recv(); msgType(m) != memifMsgAck {
		t.Fatalf("valid init answered with type %d %q", msgType(m), disconnectReason(m))
	}
	dialPeer(t, path).sendInitAnd(0, 0, "s3cret", "already connected")
	b := dialPeer(t, path)
	b.sendInit(1, 1, "")
	if m := b.recv(); msgType(m) != memifMsgAck {
		t.Fatalf("second interface on the socket: type %d %q", msgType(m), disconnectReason(m))
	}
	// Hanging up mid-handshake releases the interface for the next peer.
	_ = b.c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b2 := dialPeer(t, path)
		b2.sendInit(1, 1, "")
		m := b2.recv()
		_ = b2.c.Close()
		if msgType(m) == memifMsgAck {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("interface 1 still taken after its peer left: %q", disconnectReason(m))
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Deleting the interface disconnects its peer (the socket file stays).
	if _, err := mc.MemifDelete(c, &memif.MemifDelete{SwIfIndex: eth.SwIfIndex}); err != nil {
		t.Fatal(err)
	}
	a.wantDisconnect("interface deleted")
	if !isSocket(path) {
		t.Error("socket file removed")
	}
	if _, err := mc.MemifDelete(c, &memif.MemifDelete{SwIfIndex: ipm.SwIfIndex}); err != nil {
		t.Fatal(err)
	}
	if _, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: path, Net: "unixpacket"}); err == nil {
		t.Error("the listener is still open after its last interface was deleted")
	}
	if m := s.Memifs(); len(m) != 0 {
		t.Errorf("memifs left: %+v", m)
	}

	conn.Disconnect()
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	// gomemif leaks two descriptors per connection unless closed for it.
	// govpp ends its goroutines asynchronously.
	deadline = time.Now().Add(5 * time.Second)
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

func (p *rawPeer) sendInitAnd(id uint32, mode uint8, secret, reason string) {
	p.t.Helper()
	p.sendInit(id, mode, secret)
	p.wantDisconnect(reason)
}

// Stop disconnects connected peers and ends every goroutine.
func TestStopWithPeers(t *testing.T) {
	s, dir := startStub(t, Options{})
	mc := memif.NewServiceClient(connect(t, s))
	path := filepath.Join(dir, "m.sock")
	_, sw := createMaster(t, mc, path, 0)
	p := dialPeer(t, path)
	p.sendInit(0, 0, "")
	if m := p.recv(); msgType(m) != memifMsgAck {
		t.Fatalf("type %d", msgType(m))
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	p.wantDisconnect("VPP stopped")
	if s.Counters(sw) != (Counters{}) {
		t.Error("counters of a forgotten interface")
	}
	_ = interface_types.InterfaceIndex(sw)
}
