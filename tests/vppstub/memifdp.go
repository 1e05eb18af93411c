package vppstub

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"reflect"
	"sync"
	"syscall"
	"time"

	"go.fd.io/govpp/binapi/memif"
	gomemif "go.fd.io/govpp/extras/gomemif/memif"
)

// The data path. Each accepted connection on a master's socket is greeted
// and its init message validated here (like VPP: id, role, mode, secret,
// already connected); then the control connection is relayed, descriptors
// included, to a private gomemif master created for that connection only.
// Why not serve the socket with gomemif directly (v0.1.0):
//   - one gomemif socket dispatches ring interrupts only for its last
//     interface and keeps a stale interrupt fd number after a disconnect,
//     which a new connection's fd can reuse and then never be served;
//   - a peer hanging up before its init message makes gomemif dereference a
//     nil interface and crash the process;
//   - it never closes accepted connections nor its wake eventfd;
//   - it binds the socket only when polling starts and removes the file on
//     delete, whereas VPP binds at create time and leaves the file.
// The stand-in therefore owns the real listener (created by memif_create),
// and a gomemif instance per connection, fed only after a validated init and
// torn down single-threaded after StopPolling, avoids all of these.

const (
	handshakeTimeout = 10 * time.Second
	rxBatch          = 32
	rxBudget         = 1024 // frames per interrupt before yielding to other events
	maxFrame         = 64 << 10
	maxTxFrame       = memifDefaultBufferSize // gomemif corrupts chained tx buffers
)

// memifConn is one peer connection on a master memif's socket.
type memifConn struct {
	s    *Server
	st   *state
	sock *memifSocket
	peer *net.UnixConn // the slave

	cmu   sync.Mutex
	inner *net.UnixConn // our end of the private gomemif connection

	ifc *iface // set by claim
	mif *memifIf

	gsock     *gomemif.Socket
	gifc      *gomemif.Interface
	drainStop chan struct{}

	killOnce  sync.Once
	killCh    chan struct{}
	killWhy   string
	goneOnce  sync.Once
	gone      chan struct{} // gomemif disconnected on its own
	relayEnd  chan struct{}
	remoteWhy string // the peer's disconnect reason (cmu)
	relays    sync.WaitGroup
	done      chan struct{}

	// qmu guards the gomemif queues: after DisconnectedFunc gomemif unmaps
	// the rings, and touching them would crash.
	qmu       sync.Mutex
	connected bool
	stopping  bool
	broken    bool
	rxq, txq  *gomemif.Queue
	rxFd      int
	rbuf      []byte
	slab      []byte
	frames    [][]byte
	outs      []output
}

type output struct {
	dst   port
	ifc   *iface
	frame []byte
	host  bool // sent by the IP host
}

func (s *Server) acceptMemif(st *state, sock *memifSocket, ln *net.UnixListener) {
	defer s.wg.Done()
	for {
		pc, err := ln.AcceptUnix()
		if err != nil {
			return // listener closed
		}
		c := &memifConn{s: s, st: st, sock: sock, peer: pc, killCh: make(chan struct{}),
			gone: make(chan struct{}), relayEnd: make(chan struct{}, 2), done: make(chan struct{}), rxFd: -1}
		s.mu.Lock()
		if s.closing || s.st != st {
			s.mu.Unlock()
			_ = pc.Close()
			continue
		}
		s.mconns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go c.run()
	}
}

// kill asks the connection to end (interface deleted, stop); idempotent.
func (c *memifConn) kill(why string) {
	c.killOnce.Do(func() {
		c.killWhy = why
		close(c.killCh)
		now := time.Now()
		_ = c.peer.SetDeadline(now)
		c.cmu.Lock()
		if c.inner != nil {
			_ = c.inner.SetDeadline(now)
		}
		c.cmu.Unlock()
	})
}

func (c *memifConn) run() {
	defer c.s.wg.Done()
	defer func() {
		c.s.mu.Lock()
		delete(c.s.mconns, c)
		c.s.mu.Unlock()
		close(c.done)
	}()
	why, err := c.handshake()
	if err != nil {
		c.s.logf("memif %s: %v", c.sock.filename, err)
		select {
		case <-c.killCh:
			why = c.killWhy
		default:
		}
	} else {
		select {
		case <-c.relayEnd:
		case <-c.killCh:
			why = c.killWhy
		case <-c.gone:
		}
	}
	c.teardown(why)
	c.relays.Wait()
}

// handshake greets the peer, validates its init, starts the private gomemif
// master, hands it the init and relays its ack. On error it returns the
// reason to send to the peer, if any.
func (c *memifConn) handshake() (string, error) {
	_ = c.peer.SetDeadline(time.Now().Add(handshakeTimeout))
	if _, _, err := c.peer.WriteMsgUnix(memifHello(), nil, nil); err != nil {
		return "", fmt.Errorf("sending hello: %w", err)
	}
	buf, oob := make([]byte, memifMsgSize), make([]byte, 512)
	n, fds, err := readMsg(c.peer, buf, oob)
	closeFDs(fds)
	if err != nil {
		return "", fmt.Errorf("waiting for init: %w", err)
	}
	initMsg := append([]byte(nil), buf[:n]...)
	in, err := parseMemifInit(initMsg)
	if err != nil {
		return "invalid message", err
	}
	if why := c.s.claim(c, in); why != "" {
		return why, fmt.Errorf("refused peer %q id %d: %s", in.name, in.id, why)
	}
	if err := c.startGomemif(in); err != nil {
		return "internal error", err
	}
	inner, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: c.gsock.GetFilename(), Net: "unixpacket"})
	if err != nil {
		return "internal error", fmt.Errorf("connecting to gomemif: %w", err)
	}
	c.cmu.Lock()
	c.inner = inner
	c.cmu.Unlock()
	select {
	case <-c.killCh:
		return c.killWhy, errors.New("killed during handshake")
	default:
	}
	_ = inner.SetDeadline(time.Now().Add(handshakeTimeout))
	// gomemif greets every connection; the peer already has our hello.
	if n, fds, err = readMsg(inner, buf, oob); err != nil || msgType(buf[:n]) != memifMsgHello {
		closeFDs(fds)
		return "internal error", fmt.Errorf("gomemif hello: type %d, %v", msgType(buf[:n]), err)
	}
	if _, _, err := inner.WriteMsgUnix(initMsg, nil, nil); err != nil {
		return "internal error", fmt.Errorf("init to gomemif: %w", err)
	}
	// Its ack means the connection is bound to the interface: only from
	// then on may the connection be closed (gomemif crashes otherwise).
	if n, fds, err = readMsg(inner, buf, oob); err != nil || msgType(buf[:n]) != memifMsgAck {
		closeFDs(fds)
		return "internal error", fmt.Errorf("gomemif refused init: type %d %q, %v",
			msgType(buf[:n]), disconnectReason(buf[:n]), err)
	}
	if _, _, err := c.peer.WriteMsgUnix(buf[:n], nil, nil); err != nil {
		return "", fmt.Errorf("ack to peer: %w", err)
	}
	_ = c.peer.SetDeadline(time.Time{})
	_ = inner.SetDeadline(time.Time{})
	c.relays.Add(2)
	go c.relay(c.peer, inner, true)
	go c.relay(inner, c.peer, false)
	return "", nil
}

// claim validates an init message like VPP's memif_msg_receive_init and
// binds the connection to the interface.
func (s *Server) claim(c *memifConn, in memifInit) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing || s.st != c.st || s.st.sockets[c.sock.id] != c.sock {
		return "interface not available"
	}
	if in.version != memifVersion {
		return "incompatible memif version"
	}
	sw, ok := c.sock.byID[in.id]
	if !ok {
		return "unmatched interface id"
	}
	ifc := c.st.ifaces[sw]
	m := ifc.memif
	switch {
	case m.role != memif.MEMIF_ROLE_API_MASTER:
		return "cannot connect to slave"
	case m.conn != nil:
		return "already connected"
	case uint32(in.mode) != uint32(m.mode):
		return "mode mismatch"
	case m.secret != "" && m.secret != in.secretString():
		return "incorrect secret"
	}
	m.conn, c.ifc, c.mif = c, ifc, m
	m.remoteName = in.name
	return ""
}

func (c *memifConn) startGomemif(in memifInit) error {
	c.s.mu.Lock()
	c.s.nextPriv++
	path := filepath.Join(c.s.privDir, fmt.Sprintf("c%d.sock", c.s.nextPriv))
	name := c.ifc.name
	c.s.mu.Unlock()
	gs, err := gomemif.NewSocket(memifAppName, path)
	if err != nil {
		return fmt.Errorf("gomemif socket: %w", err)
	}
	args := &gomemif.Arguments{Id: in.id, IsMaster: true, Name: name, Secret: in.secret,
		ConnectedFunc: c.onConnected, DisconnectedFunc: c.onDisconnected, InterruptFunc: c.onInterrupt}
	if c.mif.mode == memif.MEMIF_MODE_API_IP {
		args.Mode = gomemif.InterfaceModeIp
	}
	gi, err := gs.NewInterface(args)
	if err != nil {
		leaked := gomemifLeakedFDs(gs, nil)
		_ = gs.Delete()
		closeFDs(leaked)
		return fmt.Errorf("gomemif interface: %w", err)
	}
	errCh := make(chan error)
	c.drainStop = make(chan struct{})
	c.relays.Add(1)
	go func() {
		// gomemif sends every error, blocking, on this channel.
		defer c.relays.Done()
		for {
			select {
			case err := <-errCh:
				c.s.logf("gomemif %s: %v", name, err)
			case <-c.drainStop:
				return
			}
		}
	}()
	c.gsock, c.gifc = gs, gi
	gs.StartPolling(errCh)
	return nil
}

// relay copies control messages, with their descriptors, in one direction.
// A disconnect from the peer ends the connection without reaching gomemif,
// whose own disconnect handling is avoided.
func (c *memifConn) relay(from, to *net.UnixConn, fromPeer bool) {
	defer c.relays.Done()
	defer func() { c.relayEnd <- struct{}{} }()
	buf, oob := make([]byte, memifMsgSize), make([]byte, 512)
	for {
		n, fds, err := readMsg(from, buf, oob)
		if err != nil {
			closeFDs(fds)
			return
		}
		t := msgType(buf[:n])
		if fromPeer && t == memifMsgDisconnect {
			closeFDs(fds)
			why := disconnectReason(buf[:n])
			c.cmu.Lock()
			c.remoteWhy = why
			c.cmu.Unlock()
			c.s.logf("memif peer disconnected: %q", why)
			return
		}
		var rights []byte
		if len(fds) > 0 {
			rights = syscall.UnixRights(fds...)
		}
		_, _, err = to.WriteMsgUnix(buf[:n], rights, nil)
		closeFDs(fds)
		if err != nil || t == memifMsgDisconnect {
			return
		}
	}
}

// teardown stops gomemif (single-threaded from here on), deletes it, closes
// what it leaks, tells the peer why and closes both connections.
func (c *memifConn) teardown(why string) {
	c.qmu.Lock()
	c.stopping = true
	c.qmu.Unlock()
	// The reason is recorded before the link goes down (gomemif's
	// DisconnectedFunc, called by Delete, takes it down).
	c.cmu.Lock()
	reason := c.remoteWhy
	c.cmu.Unlock()
	switch {
	case why != "":
		reason = why
	case reason != "":
		reason = "disconnected by peer: " + reason
	default:
		reason = "connection closed"
	}
	c.s.mu.Lock()
	if c.mif != nil && c.mif.conn == c {
		c.mif.discReason = reason
	}
	c.s.mu.Unlock()
	if c.gsock != nil {
		_ = c.gsock.StopPolling()
		leaked := gomemifLeakedFDs(c.gsock, c.gifc)
		if err := c.gsock.Delete(); err != nil {
			c.s.logf("gomemif delete: %v", err)
		}
		closeFDs(leaked)
		close(c.drainStop)
	}
	if why != "" {
		_ = c.peer.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		_, _, _ = c.peer.WriteMsgUnix(memifDisconnect(why), nil, nil)
	}
	_ = c.peer.Close()
	c.cmu.Lock()
	if c.inner != nil {
		_ = c.inner.Close()
	}
	c.cmu.Unlock()
	c.qmu.Lock()
	c.connected = false
	c.qmu.Unlock()
	c.s.mu.Lock()
	if c.mif != nil && c.mif.conn == c {
		c.mif.conn = nil
		c.ifc.linkUp = false
	}
	c.s.mu.Unlock()
}

// gomemifLeakedFDs returns the descriptors gomemif v0.1.0 never closes: the
// socket's wake eventfd and the control connection. They are read (never
// written) with reflect once polling has stopped; a different layout yields
// nothing, i.e. a leak rather than a wrong close.
func gomemifLeakedFDs(gs *gomemif.Socket, gi *gomemif.Interface) (fds []int) {
	defer func() {
		if recover() != nil {
			fds = nil
		}
	}()
	if w := reflect.ValueOf(gs).Elem().FieldByName("wakeEvent"); w.IsValid() {
		fds = append(fds, int(w.FieldByName("Fd").Int()))
	}
	if gi != nil {
		if cc := reflect.ValueOf(gi).Elem().FieldByName("cc"); cc.IsValid() && !cc.IsNil() {
			fds = append(fds, int(cc.Elem().FieldByName("event").FieldByName("Fd").Int()))
		}
	}
	return fds
}

// onConnected runs on gomemif's goroutine once the rings are mapped.
func (c *memifConn) onConnected(i *gomemif.Interface) error {
	rxq, err := i.GetRxQueue(0)
	if err != nil {
		return err
	}
	txq, err := i.GetTxQueue(0)
	if err != nil {
		return err
	}
	fd, _ := rxq.GetEventFd()
	c.qmu.Lock()
	if c.stopping {
		c.qmu.Unlock()
		return errors.New("stopping")
	}
	c.rxq, c.txq, c.rxFd, c.connected = rxq, txq, fd, true
	c.qmu.Unlock()
	c.s.mu.Lock()
	if c.mif.conn == c {
		c.ifc.linkUp = true
		c.mif.connections++
	}
	c.s.mu.Unlock()
	c.s.logf("memif %s connected", i.GetName())
	return nil
}

// onDisconnected runs before gomemif closes the queues and unmaps the rings.
func (c *memifConn) onDisconnected(*gomemif.Interface) error {
	c.qmu.Lock()
	c.connected = false
	c.rxq, c.txq, c.rxFd = nil, nil, -1
	c.qmu.Unlock()
	c.qmu.Lock()
	stopping := c.stopping
	c.qmu.Unlock()
	c.s.mu.Lock()
	if c.mif.conn == c {
		c.ifc.linkUp = false
		if !stopping { // gomemif saw the peer go
			c.mif.discReason = "connection closed"
		}
	}
	c.s.mu.Unlock()
	c.goneOnce.Do(func() { close(c.gone) })
	return nil
}

// onInterrupt runs on gomemif's goroutine when the peer signals the rx
// ring's eventfd. gomemif polls that fd level-triggered, so it is drained
// before the ring is emptied; a long burst re-signals it to yield.
func (c *memifConn) onInterrupt(*gomemif.Interface) error {
	defer func() {
		if r := recover(); r != nil {
			c.s.logf("memif rx: %v", r)
			c.qmu.Lock()
			c.broken = true
			c.qmu.Unlock()
			c.goneOnce.Do(func() { close(c.gone) })
		}
	}()
	for done := 0; done < rxBudget; {
		c.qmu.Lock()
		if !c.connected || c.stopping {
			c.qmu.Unlock()
			return nil
		}
		if done == 0 || c.broken {
			eventfdRead(c.rxFd)
		}
		if c.broken {
			c.qmu.Unlock()
			return nil
		}
		frames := c.readBatch()
		c.qmu.Unlock()
		if len(frames) == 0 {
			return nil
		}
		c.s.receive(c.ifc, frames, &c.outs)
		done += len(frames)
	}
	c.qmu.Lock()
	if c.connected && !c.stopping {
		eventfdWrite(c.rxFd)
	}
	c.qmu.Unlock()
	return nil
}

// readBatch copies up to rxBatch frames out of the rx ring (qmu held).
func (c *memifConn) readBatch() [][]byte {
	if c.rbuf == nil {
		c.rbuf = make([]byte, maxFrame)
	}
	c.slab, c.frames = c.slab[:0], c.frames[:0]
	for len(c.frames) < rxBatch {
		n, err := c.rxq.ReadPacket(c.rbuf)
		if err != nil {
			c.s.logf("memif rx: %v", err)
			break
		}
		if n == 0 {
			break
		}
		start := len(c.slab)
		c.slab = append(c.slab, c.rbuf[:n]...)
		c.frames = append(c.frames, c.slab[start:])
	}
	// Slices taken before the slab grew still point to the old array, so
	// re-slice all of them from the final one.
	off := 0
	for i, f := range c.frames {
		c.frames[i] = c.slab[off : off+len(f) : off+len(f)]
		off += len(f)
	}
	return c.frames
}

func eventfdRead(fd int) {
	var b [8]byte
	_, _ = syscall.Read(fd, b[:])
}

func eventfdWrite(fd int) {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], 1)
	_, _ = syscall.Write(fd, b[:])
}

// port is where an interface's frames go: a connected memif peer.
type port interface {
	// send writes one frame; false if the peer cannot take it.
	send(f []byte) bool
}

// port returns the interface's peer, or nil (s.mu held).
func (ifc *iface) port() port {
	if m := ifc.memif; m != nil {
		if m.conn != nil {
			return m.conn
		}
		if m.slave != nil && m.slave.sess != nil {
			return m.slave.sess
		}
	}
	return nil
}

// receive handles frames received on ifc. In a bridge domain they are
// switched: learning source MACs, forwarding known unicast, flooding
// broadcast/multicast (flood flag) and unknown unicast (uu_flood flag),
// honouring split-horizon groups. Otherwise they go to the interface's IP
// host (ARP, ND, ICMP echo; see iphost.go). Frames received while admin down
// are dropped. scratch is the caller's reusable output buffer.
func (s *Server) receive(ifc *iface, frames [][]byte, scratch *[]output) {
	outs := (*scratch)[:0]
	s.mu.Lock()
	st := s.st
	if st.ifaces[ifc.sw] != ifc {
		s.mu.Unlock()
		return
	}
	var bd *bridgeDomain
	if ifc.inBD {
		bd = st.bds[ifc.bdID]
	}
	for _, f := range frames {
		ifc.cnt.rxPkts.Add(1)
		ifc.cnt.rxBytes.Add(uint64(len(f)))
		if !ifc.adminUp || (ifc.inBD && (bd == nil || len(f) < 14)) {
			ifc.cnt.drops.Add(1)
			continue
		}
		if bd == nil {
			outs = st.ipInput(ifc, f, outs)
			continue
		}
		n := len(outs)
		for _, t := range st.l2Switch(bd, ifc, f) {
			if p := t.port(); t.adminUp && p != nil {
				outs = append(outs, output{dst: p, ifc: t, frame: f})
			}
		}
		if len(outs) == n {
			ifc.cnt.drops.Add(1)
		}
	}
	s.mu.Unlock()
	for _, o := range outs {
		o.transmit()
	}
	clear(outs) // drop references to frames
	*scratch = outs[:0]
}

// transmit sends one frame and counts it on its interface. It is counted
// before the peer can see it (and uncounted if the peer cannot take it), so
// that counters read after a reply came back include the request.
func (o output) transmit() {
	n := uint64(len(o.frame))
	o.ifc.cnt.txPkts.Add(1)
	o.ifc.cnt.txBytes.Add(n)
	if o.host {
		o.ifc.cnt.hostTx.Add(1)
	}
	if o.dst.send(o.frame) {
		return
	}
	o.ifc.cnt.txPkts.Add(^uint64(0))
	o.ifc.cnt.txBytes.Add(-n)
	if o.host {
		o.ifc.cnt.hostTx.Add(^uint64(0))
	}
	o.ifc.cnt.drops.Add(1)
}

// l2Switch learns the source MAC of an ethernet frame received on src and
// returns the bridge domain members it goes to.
func (st *state) l2Switch(bd *bridgeDomain, src *iface, f []byte) []*iface {
	var dst, srcMAC [6]byte
	copy(dst[:], f[0:6])
	copy(srcMAC[:], f[6:12])
	if bd.learn && srcMAC[0]&1 == 0 {
		bd.fib[srcMAC] = src.sw
	}
	if dst[0]&1 == 0 && bd.forward {
		if sw, ok := bd.fib[dst]; ok {
			if t := st.ifaces[sw]; t != nil && t.inBD && t.bdID == bd.id {
				if sw == src.sw {
					return nil
				}
				return []*iface{t}
			}
		}
	}
	if (dst[0]&1 == 1 && !bd.flood) || (dst[0]&1 == 0 && !bd.uuFlood) {
		return nil
	}
	var out []*iface
	for _, sw := range bd.members {
		t := st.ifaces[sw]
		if t == nil || sw == src.sw || (src.shg != 0 && t.shg == src.shg) {
			continue
		}
		out = append(out, t)
	}
	return out
}

// send writes one frame to the peer's rx ring; false if it cannot take it.
func (c *memifConn) send(f []byte) (ok bool) {
	if len(f) > maxTxFrame {
		return false
	}
	c.qmu.Lock()
	defer c.qmu.Unlock()
	if !c.connected || c.stopping || c.broken {
		return false
	}
	defer func() {
		if r := recover(); r != nil {
			c.s.logf("memif tx: %v", r)
			c.broken = true
			c.goneOnce.Do(func() { close(c.gone) })
			ok = false
		}
	}()
	return c.txq.WritePacket(f) == len(f)
}
