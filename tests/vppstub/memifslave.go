package vppstub

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Slave memifs. The stand-in implements the slave (client) side of the memif
// protocol itself rather than with gomemif v0.1.0, whose slave gives its rx
// and tx rings the same packet buffers (initializeQueues numbers the buffers
// of both ring types from slot 0), so frames are corrupted as soon as
// traffic flows both ways (upstream issue 164).
//
// Like VPP's memif-process, a slave that is admin up and not connected
// connects to its socket file; VPP retries every 3 s, the stand-in every
// slaveRetryInterval. The layout is VPP's (memif_init_regions_and_queues,
// copy mode): one region holding the S2M rings, then the M2S rings, then the
// packet buffers of the S2M rings followed by those of the M2S rings. The
// stand-in uses a single queue pair, whatever the peer offers.
//
// Admin down does not disconnect a connected slave (memif_interface_admin_up_down
// in VPP 25.10 only stops new attempts); frames are dropped both ways while
// the interface is down. memif_delete, Stop and Restart disconnect it.

const (
	slaveRetryInterval = 150 * time.Millisecond

	memifMsgAddRegion = 4
	memifMsgAddRing   = 5
	memifMsgConnect   = 6
	memifMsgConnected = 7

	memifCookie          = 0x3e31f20
	memifRingHeader      = 128 // cookie, flags, head; tail at 64; descriptors at 128
	memifDescSize        = 16
	memifDescFlagNext    = 1
	memifRingFlagMaskInt = 1
	memifAddRingFlagS2M  = 1
)

// slaveLink drives one slave memif for its whole life: it waits for admin
// up, connects, runs the session and retries.
type slaveLink struct {
	s   *Server
	st  *state
	ifc *iface
	mif *memifIf

	filename string
	name     string // interface name, sent in the connect message
	id       uint32
	mode     uint8
	secret   string
	log2Ring uint8
	bufSize  uint32

	wake     chan struct{} // admin state changed
	killCh   chan struct{}
	killOnce sync.Once
	killWhy  string
	done     chan struct{}

	cmu  sync.Mutex
	conn *net.UnixConn // control connection being set up or in use

	sess    *slaveSession // connected session, guarded by s.mu
	lastErr string        // last connect failure logged (run goroutine only)
}

// newSlaveLink is called with s.mu held from memif_create; the goroutine is
// started by the caller.
func (st *state) newSlaveLink(ifc *iface, sock *memifSocket) *slaveLink {
	m := ifc.memif
	l := &slaveLink{s: st.s, st: st, ifc: ifc, mif: m, filename: sock.filename, name: ifc.name,
		id: m.id, mode: uint8(m.mode), secret: m.secret,
		log2Ring: uint8(bits.TrailingZeros32(m.ringSize)), bufSize: uint32(m.bufferSize),
		wake: make(chan struct{}, 1), killCh: make(chan struct{}), done: make(chan struct{})}
	return l
}

// kick tells the link that the admin state changed.
func (l *slaveLink) kick() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// kill ends the link (interface deleted, stop); the peer gets why. Idempotent.
func (l *slaveLink) kill(why string) {
	l.killOnce.Do(func() {
		l.killWhy = why
		close(l.killCh)
		l.cmu.Lock()
		if l.conn != nil {
			_ = l.conn.SetDeadline(time.Now())
		}
		l.cmu.Unlock()
	})
}

func (l *slaveLink) killed() bool {
	select {
	case <-l.killCh:
		return true
	default:
		return false
	}
}

func (l *slaveLink) run() {
	defer l.s.wg.Done()
	defer func() {
		l.s.mu.Lock()
		delete(l.s.slaves, l)
		l.s.mu.Unlock()
		close(l.done)
	}()
	retry := time.NewTimer(0)
	defer retry.Stop()
	for {
		if !l.waitAdminUp() {
			return
		}
		l.attempt()
		retry.Reset(slaveRetryInterval)
		select {
		case <-l.killCh:
			return
		case <-retry.C:
		}
	}
}

// waitAdminUp blocks until the interface is admin up; false once killed.
func (l *slaveLink) waitAdminUp() bool {
	for {
		l.s.mu.Lock()
		up := l.ifc.adminUp && l.s.st == l.st && l.st.ifaces[l.ifc.sw] == l.ifc
		l.s.mu.Unlock()
		if up {
			return !l.killed()
		}
		select {
		case <-l.killCh:
			return false
		case <-l.wake:
		}
	}
}

func (l *slaveLink) noteErr(err error) {
	if msg := err.Error(); msg != l.lastErr {
		l.lastErr = msg
		l.s.logf("memif slave %s: %v (retrying every %v)", l.name, err, slaveRetryInterval)
	}
}

// remoteDisconnect is a disconnect message received from the master.
type remoteDisconnect string

func (r remoteDisconnect) Error() string { return "disconnected by peer: " + string(r) }

// attempt makes one connection and, if it succeeds, serves it until it ends.
func (l *slaveLink) attempt() {
	c, err := dialMemif(l.filename)
	if err != nil {
		l.noteErr(err)
		return
	}
	_ = c.SetDeadline(time.Now().Add(handshakeTimeout))
	l.cmu.Lock()
	l.conn = c
	l.cmu.Unlock()
	defer func() {
		l.cmu.Lock()
		l.conn = nil
		l.cmu.Unlock()
		_ = c.Close()
	}()
	if l.killed() {
		return
	}
	ss, local, err := l.handshake(c)
	if err != nil {
		if why := l.killReason(); why != "" {
			sendDisconnect(c, why)
			return
		}
		if local != "" {
			sendDisconnect(c, local)
		}
		l.noteErr(err)
		l.s.mu.Lock()
		l.mif.discReason = err.Error()
		l.s.mu.Unlock()
		return
	}
	l.lastErr = ""
	// From here on only a kill may set the deadline.
	l.cmu.Lock()
	killed := l.killed()
	if !killed {
		_ = c.SetDeadline(time.Time{})
	}
	l.cmu.Unlock()
	if killed || !l.up(ss) {
		ss.close(l.killReason())
		return
	}
	go ss.rxLoop()
	why := ss.control()
	local = l.killReason()
	if local != "" {
		why = local
	}
	l.down(ss, why)
	ss.close(local)
}

// killReason is why the link was killed, "" if it was not.
func (l *slaveLink) killReason() string {
	if l.killed() {
		return l.killWhy // written before killCh was closed
	}
	return ""
}

// up publishes a connected session: link up, frames flow.
func (l *slaveLink) up(ss *slaveSession) bool {
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	if l.s.st != l.st || l.st.ifaces[l.ifc.sw] != l.ifc || l.mif.slave != l {
		return false
	}
	ss.mu.Lock()
	ss.connected = true
	ss.resync()
	ss.mu.Unlock()
	l.sess = ss
	l.ifc.linkUp = true
	l.mif.connections++
	l.mif.discReason = ""
	l.s.logf("memif %s connected to %q (%s)", l.name, l.mif.remoteName, l.filename)
	return true
}

func (l *slaveLink) down(ss *slaveSession, why string) {
	l.s.mu.Lock()
	if l.sess == ss {
		l.sess = nil
		l.ifc.linkUp = false
		l.mif.discReason = why
	}
	l.s.mu.Unlock()
	l.s.logf("memif %s disconnected: %s", l.name, why)
}

// handshake runs the slave's side of the control protocol up to
// "connected". On error it returns the reason to send the peer, if any.
func (l *slaveLink) handshake(c *net.UnixConn) (*slaveSession, string, error) {
	buf, oob := make([]byte, memifMsgSize), make([]byte, 512)
	expect := func(want uint16) ([]byte, string, error) {
		n, fds, err := readMsg(c, buf, oob)
		closeFDs(fds)
		if err != nil {
			return nil, "", err
		}
		switch t := msgType(buf[:n]); {
		case t == want:
			return buf[:n], "", nil
		case t == memifMsgDisconnect:
			return nil, "", remoteDisconnect(disconnectReason(buf[:n]))
		default:
			return nil, "unexpected message", fmt.Errorf("message type %d while waiting for %d", t, want)
		}
	}
	hello, local, err := expect(memifMsgHello)
	if err != nil {
		return nil, local, fmt.Errorf("hello: %w", err)
	}
	if len(hello) < 45 {
		return nil, "invalid message", errors.New("short hello")
	}
	minV, maxV := binary.LittleEndian.Uint16(hello[34:]), binary.LittleEndian.Uint16(hello[36:])
	if minV > memifVersion || maxV < memifVersion {
		return nil, "incompatible protocol version", fmt.Errorf("peer speaks memif %#x..%#x", minV, maxV)
	}
	log2 := min(l.log2Ring, hello[44], memifMaxLog2Ring)
	l.s.mu.Lock()
	l.mif.remoteName = cString(hello[2:34])
	l.mif.runLog2, l.mif.runBuf, l.mif.runSet = log2, uint16(l.bufSize), true
	l.s.mu.Unlock()

	ss, err := newSlaveSession(l, c, log2)
	if err != nil {
		return nil, "internal error", err
	}
	fail := func(local string, err error) (*slaveSession, string, error) {
		ss.release()
		return nil, local, err
	}
	steps := []struct {
		what string
		msg  []byte
		fd   int
		want uint16
	}{
		{"init", l.initMsg(), -1, memifMsgAck},
		{"add_region", ss.addRegionMsg(), ss.memfd, memifMsgAck},
		{"add_ring s2m", ss.addRingMsg(true), ss.s2mEvt, memifMsgAck},
		{"add_ring m2s", ss.addRingMsg(false), ss.m2sFd, memifMsgAck},
		{"connect", nameMsg(memifMsgConnect, l.name), -1, memifMsgConnected},
	}
	for _, step := range steps {
		var rights []byte
		if step.fd >= 0 {
			rights = unix.UnixRights(step.fd)
		}
		if _, _, err := c.WriteMsgUnix(step.msg, rights, nil); err != nil {
			return fail("", fmt.Errorf("%s: %w", step.what, err))
		}
		m, local, err := expect(step.want)
		if err != nil {
			return fail(local, fmt.Errorf("%s: %w", step.what, err))
		}
		if step.want == memifMsgConnected {
			l.s.mu.Lock()
			l.mif.remoteIf = cString(m[2:34])
			l.s.mu.Unlock()
		}
	}
	return ss, "", nil
}

func (l *slaveLink) initMsg() []byte {
	b := make([]byte, memifMsgSize)
	binary.LittleEndian.PutUint16(b, memifMsgInit)
	binary.LittleEndian.PutUint16(b[2:], memifVersion)
	binary.LittleEndian.PutUint32(b[4:], l.id)
	b[8] = l.mode
	copy(b[9:33], l.secret)
	copy(b[33:64], memifAppName)
	return b
}

func nameMsg(t uint16, name string) []byte {
	b := make([]byte, memifMsgSize)
	binary.LittleEndian.PutUint16(b, t)
	copy(b[2:33], name)
	return b
}

func sendDisconnect(c *net.UnixConn, why string) {
	_ = c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	_, _, _ = c.WriteMsgUnix(memifDisconnect(why), nil, nil)
}

// slaveSession is one connection of a slave memif: its shared region,
// rings and interrupt eventfds.
type slaveSession struct {
	l    *slaveLink
	conn *net.UnixConn

	memfd   int
	region  []byte
	s2mEvt  int      // signalled by us when the master has frames to read
	m2sFd   int      // signalled by the master; read through m2sFile
	m2sFile *os.File // owns m2sFd once created
	rxDone  chan struct{}

	ringSize, mask uint16
	bufSize        uint32
	s2mOff, m2sOff int
	bufOff         int

	mu        sync.Mutex // the rings and connected
	connected bool
	s2mHead   uint16
	m2sHead   uint16
	m2sTail   uint16 // last tail consumed
	slab      []byte
	frames    [][]byte
	outs      []output // used by rxLoop only
}

func newSlaveSession(l *slaveLink, c *net.UnixConn, log2 uint8) (ss *slaveSession, err error) {
	ringSize := 1 << log2
	ringBytes := memifRingHeader + memifDescSize*ringSize
	ss = &slaveSession{l: l, conn: c, memfd: -1, s2mEvt: -1, m2sFd: -1, rxDone: make(chan struct{}),
		ringSize: uint16(ringSize), mask: uint16(ringSize - 1), bufSize: l.bufSize,
		s2mOff: 0, m2sOff: ringBytes, bufOff: 2 * ringBytes}
	defer func() {
		if err != nil {
			ss.release()
		}
	}()
	size := ss.bufOff + 2*ringSize*int(l.bufSize)
	if ss.memfd, err = unix.MemfdCreate(l.name+" region 0", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING); err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	if err = unix.Ftruncate(ss.memfd, int64(size)); err != nil {
		return nil, fmt.Errorf("ftruncate: %w", err)
	}
	if ss.region, err = unix.Mmap(ss.memfd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED); err != nil {
		return nil, fmt.Errorf("mmap: %w", err)
	}
	if ss.s2mEvt, err = unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC); err != nil {
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	if ss.m2sFd, err = unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC); err != nil {
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	// Non-blocking, so reads wait in the runtime's poller and Close wakes them.
	ss.m2sFile = os.NewFile(uintptr(ss.m2sFd), "memif-m2s-interrupt")

	for i, off := range []int{ss.s2mOff, ss.m2sOff} {
		binary.LittleEndian.PutUint32(ss.region[off:], memifCookie)
		for slot := range ringSize {
			ss.putDesc(off, uint16(slot), 0, uint32(ss.bufferOffset(i == 1, uint16(slot))), l.bufSize)
		}
	}
	// All M2S buffers belong to the master from the start (VPP refills
	// them on its first input run right after connecting).
	ss.m2sHead = uint16(ringSize)
	ss.storeHead(ss.m2sOff, ss.m2sHead)
	return ss, nil
}

func (ss *slaveSession) addRegionMsg() []byte {
	b := make([]byte, memifMsgSize)
	binary.LittleEndian.PutUint16(b, memifMsgAddRegion)
	binary.LittleEndian.PutUint16(b[2:], 0)
	binary.LittleEndian.PutUint32(b[4:], uint32(len(ss.region)))
	return b
}

func (ss *slaveSession) addRingMsg(s2m bool) []byte {
	b := make([]byte, memifMsgSize)
	binary.LittleEndian.PutUint16(b, memifMsgAddRing)
	off := ss.m2sOff
	if s2m {
		binary.LittleEndian.PutUint16(b[2:], memifAddRingFlagS2M)
		off = ss.s2mOff
	}
	binary.LittleEndian.PutUint16(b[4:], 0) // ring index
	binary.LittleEndian.PutUint16(b[6:], 0) // region
	binary.LittleEndian.PutUint32(b[8:], uint32(off))
	b[12] = uint8(bits.TrailingZeros16(ss.ringSize))
	binary.LittleEndian.PutUint16(b[13:], 0) // private header size
	return b
}

// bufferOffset is the fixed buffer of a ring slot (copy mode).
func (ss *slaveSession) bufferOffset(m2s bool, slot uint16) int {
	n := int(slot & ss.mask)
	if m2s {
		n += int(ss.ringSize)
	}
	return ss.bufOff + n*int(ss.bufSize)
}

func (ss *slaveSession) descAt(ring int, slot uint16) []byte {
	off := ring + memifRingHeader + int(slot&ss.mask)*memifDescSize
	return ss.region[off : off+memifDescSize]
}

func (ss *slaveSession) putDesc(ring int, slot uint16, flags uint16, offset, length uint32) {
	d := ss.descAt(ring, slot)
	binary.LittleEndian.PutUint16(d[0:], flags)
	binary.LittleEndian.PutUint16(d[2:], 0) // region
	binary.LittleEndian.PutUint32(d[4:], length)
	binary.LittleEndian.PutUint32(d[8:], offset)
	binary.LittleEndian.PutUint32(d[12:], 0)
}

// Ring head (ours) and tail (the master's) are 16-bit fields shared with
// another process: access them atomically through their 32-bit words
// (flags|head at offset 4, tail at offset 64; little endian).
func (ss *slaveSession) word(off int) *uint32 { return (*uint32)(unsafe.Pointer(&ss.region[off])) }

func (ss *slaveSession) loadTail(ring int) uint16 {
	return uint16(atomic.LoadUint32(ss.word(ring + 64)))
}

func (ss *slaveSession) ringFlags(ring int) uint16 {
	return uint16(atomic.LoadUint32(ss.word(ring + 4)))
}

func (ss *slaveSession) loadHead(ring int) uint16 {
	return uint16(atomic.LoadUint32(ss.word(ring+4)) >> 16)
}

// resync reloads the heads once connected (ss.mu held): a master may reset
// the rings while connecting (DPDK's memif_connect zeroes head and tail of
// every ring), and the M2S slots it took back are refilled, as VPP's first
// input run after connecting does.
func (ss *slaveSession) resync() {
	ss.s2mHead = ss.loadHead(ss.s2mOff)
	ss.m2sHead = ss.loadHead(ss.m2sOff)
	ss.refill()
}

func (ss *slaveSession) storeHead(ring int, head uint16) {
	p := ss.word(ring + 4)
	for {
		old := atomic.LoadUint32(p)
		if atomic.CompareAndSwapUint32(p, old, old&0xffff|uint32(head)<<16) {
			return
		}
	}
}

// control reads control messages until the session ends and says why.
func (ss *slaveSession) control() string {
	buf, oob := make([]byte, memifMsgSize), make([]byte, 512)
	for {
		n, fds, err := readMsg(ss.conn, buf, oob)
		closeFDs(fds)
		if err != nil {
			return "connection closed: " + err.Error()
		}
		if msgType(buf[:n]) == memifMsgDisconnect {
			return "disconnected by peer: " + disconnectReason(buf[:n])
		}
		// Anything else after "connected" is ignored, as VPP does.
	}
}

// rxLoop moves frames from the M2S ring to the stand-in until the session
// is closed. The ring is drained before waiting on the interrupt eventfd.
func (ss *slaveSession) rxLoop() {
	defer close(ss.rxDone)
	var b [8]byte
	for {
		frames, ok := ss.readBatch()
		if !ok {
			return
		}
		if len(frames) == 0 {
			if _, err := ss.m2sFile.Read(b[:]); err != nil {
				return
			}
			continue
		}
		ss.l.s.receive(ss.l.ifc, frames, &ss.outs)
	}
}

// readBatch copies up to rxBatch frames out of the M2S ring and gives the
// slots back to the master; ok is false once the session is closed.
func (ss *slaveSession) readBatch() (frames [][]byte, ok bool) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if !ss.connected {
		return nil, false
	}
	tail := ss.loadTail(ss.m2sOff)
	slot := ss.m2sTail
	ss.slab, ss.frames = ss.slab[:0], ss.frames[:0]
	var lens []int
	bad := 0
	for slot != tail && len(lens) < rxBatch {
		start, s, complete, broken := len(ss.slab), slot, false, false
		for s != tail {
			d := ss.descAt(ss.m2sOff, s)
			s++
			flags := binary.LittleEndian.Uint16(d[0:])
			region := binary.LittleEndian.Uint16(d[2:])
			length := int(binary.LittleEndian.Uint32(d[4:]))
			off := int(binary.LittleEndian.Uint32(d[8:]))
			if region != 0 || off < 0 || length < 0 || off+length > len(ss.region) || len(ss.slab)-start+length > maxFrame {
				broken = true
			} else if !broken {
				ss.slab = append(ss.slab, ss.region[off:off+length]...)
			}
			if flags&memifDescFlagNext == 0 {
				complete = true
				break
			}
		}
		if !complete {
			ss.slab = ss.slab[:start] // the master is still writing the chain
			break
		}
		slot = s
		if broken {
			ss.slab = ss.slab[:start]
			bad++
			continue
		}
		lens = append(lens, len(ss.slab)-start)
	}
	ss.m2sTail = slot
	ss.refill()
	if bad > 0 {
		ss.l.ifc.cnt.drops.Add(uint64(bad))
	}
	off := 0
	for _, n := range lens {
		ss.frames = append(ss.frames, ss.slab[off:off+n:off+n])
		off += n
	}
	return ss.frames, true
}

// refill hands the consumed M2S slots back to the master (ss.mu held).
func (ss *slaveSession) refill() {
	head := ss.m2sHead
	n := ss.ringSize - (head - ss.m2sTail)
	if n == 0 {
		return
	}
	for range n {
		ss.putDesc(ss.m2sOff, head, 0, uint32(ss.bufferOffset(true, head)), ss.bufSize)
		head++
	}
	ss.m2sHead = head
	ss.storeHead(ss.m2sOff, head)
}

// send writes one frame to the S2M ring (chained over several buffers if
// needed) and signals the master unless it polls; false if it cannot.
func (ss *slaveSession) send(f []byte) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if !ss.connected || len(f) == 0 || len(f) > maxFrame {
		return false
	}
	bs := int(ss.bufSize)
	need := (len(f) + bs - 1) / bs
	head := ss.s2mHead
	if free := int(ss.ringSize - (head - ss.loadTail(ss.s2mOff))); need > free {
		return false
	}
	for off := 0; off < len(f); {
		n := min(bs, len(f)-off)
		bo := ss.bufferOffset(false, head)
		copy(ss.region[bo:bo+n], f[off:off+n])
		var flags uint16
		if off+n < len(f) {
			flags = memifDescFlagNext
		}
		ss.putDesc(ss.s2mOff, head, flags, uint32(bo), uint32(n))
		off += n
		head++
	}
	ss.s2mHead = head
	ss.storeHead(ss.s2mOff, head)
	if ss.ringFlags(ss.s2mOff)&memifRingFlagMaskInt == 0 {
		eventfdWrite(ss.s2mEvt)
	}
	return true
}

// close ends the session: no more frames, the rx goroutine gone, the peer
// told why (if the reason is ours), then everything released.
func (ss *slaveSession) close(why string) {
	ss.mu.Lock()
	started := ss.connected
	ss.connected = false
	ss.mu.Unlock()
	_ = ss.m2sFile.Close()
	if started {
		<-ss.rxDone
	}
	if why != "" {
		sendDisconnect(ss.conn, why)
	}
	_ = ss.conn.Close()
	ss.release()
}

// release frees the region and descriptors (nothing may use them anymore).
func (ss *slaveSession) release() {
	if ss.region != nil {
		_ = unix.Munmap(ss.region)
		ss.region = nil
	}
	if ss.m2sFile != nil {
		_ = ss.m2sFile.Close()
	} else if ss.m2sFd >= 0 {
		_ = unix.Close(ss.m2sFd)
	}
	ss.m2sFd = -1
	for _, fd := range []*int{&ss.memfd, &ss.s2mEvt} {
		if *fd >= 0 {
			_ = unix.Close(*fd)
			*fd = -1
		}
	}
}

// dialMemif connects to a master's socket: a path, or VPP's
// "abstract:<name>[,netns_name=<path>]".
func dialMemif(filename string) (*net.UnixConn, error) {
	name, netns, abstract := parseAbstract(filename)
	if !abstract {
		return net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: filename, Net: "unixpacket"})
	}
	addr := &net.UnixAddr{Name: "@" + name, Net: "unixpacket"}
	if netns == "" {
		return net.DialUnix("unixpacket", nil, addr)
	}
	var c *net.UnixConn
	err := inNetns(netns, func() (err error) {
		c, err = net.DialUnix("unixpacket", nil, addr)
		return err
	})
	return c, err
}
