package vppstub

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"

	"go.fd.io/govpp/api"
	_ "go.fd.io/govpp/binapi/interface" // registers the messages advertised
	_ "go.fd.io/govpp/binapi/ip"
	_ "go.fd.io/govpp/binapi/l2"
	"go.fd.io/govpp/binapi/memclnt"
	_ "go.fd.io/govpp/binapi/memif"
	_ "go.fd.io/govpp/binapi/vhost_user"
	_ "go.fd.io/govpp/binapi/vpe"
	"go.fd.io/govpp/codec"
)

// Options configures a Server.
type Options struct {
	// Socket is the API socket path to listen on (its directory must exist).
	Socket string
	// RuntimeDir stands for VPP's runtime directory: relative memif socket
	// filenames and socket id 0 ("memif.sock") live there. Default: the
	// directory of Socket.
	RuntimeDir string
	// Seed seeds the pseudo-random ids and MACs. Memif socket ids use VPP's
	// own generator (an LCG restarted from the seed on every allocation), so
	// seed 0 reproduces real VPP: 1013904223, then 1196435762, ... MACs
	// (02:fe:xx:xx:xx:xx) also depend on Socket, so that stand-ins differ.
	Seed int64
	// Incompatible names messages (e.g. "memif_create_v2") advertised with a
	// wrong CRC, to simulate an incompatible VPP.
	Incompatible []string
	// Logf receives diagnostics (optional).
	Logf func(format string, args ...any)
}

// Server is a running VPP stand-in. Its methods are safe for concurrent use.
type Server struct {
	opts    Options
	table   *msgTable
	privDir string // private gomemif listeners, one per memif connection

	life sync.Mutex // serializes Stop and Restart

	mu         sync.Mutex
	st         *state
	ln         *net.UnixListener
	conns      map[*apiConn]struct{}
	mconns     map[*memifConn]struct{}
	slaves     map[*slaveLink]struct{}
	pings      map[uint16]chan echoReply // by ICMP identifier, for Ping
	nextPing   uint16
	nbrCh      chan struct{} // closed (and replaced) when a neighbour is learnt
	closing    bool          // Stop or Restart in progress: refuse new work
	stopped    bool
	calls      map[string]int
	nextClient uint32
	nextPriv   uint64

	wg sync.WaitGroup // every goroutine of the server
}

// Start builds the message table and starts serving opts.Socket.
func Start(opts Options) (*Server, error) {
	if opts.Socket == "" {
		return nil, errors.New("vppstub: Options.Socket is required")
	}
	if opts.RuntimeDir == "" {
		opts.RuntimeDir = filepath.Dir(opts.Socket)
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	table, err := newMsgTable(opts.Incompatible)
	if err != nil {
		return nil, err
	}
	priv, err := os.MkdirTemp("", "vppstub-")
	if err != nil {
		return nil, fmt.Errorf("vppstub: private dir: %w", err)
	}
	s := &Server{
		opts: opts, table: table, privDir: priv,
		conns: map[*apiConn]struct{}{}, mconns: map[*memifConn]struct{}{},
		slaves: map[*slaveLink]struct{}{}, pings: map[uint16]chan echoReply{}, nbrCh: make(chan struct{}),
		calls: map[string]int{},
	}
	s.st = newState(s)
	if err := s.listen(); err != nil {
		_ = os.RemoveAll(priv)
		return nil, err
	}
	return s, nil
}

// SocketPath is the API socket path.
func (s *Server) SocketPath() string { return s.opts.Socket }

func (s *Server) listen() error {
	// Like VPP at start-up, replace a stale socket left by a previous run.
	if fi, err := os.Lstat(s.opts.Socket); err == nil && fi.Mode()&fs.ModeSocket != 0 {
		_ = os.Remove(s.opts.Socket)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: s.opts.Socket, Net: "unix"})
	if err != nil {
		return fmt.Errorf("vppstub: listen on %s: %w", s.opts.Socket, err)
	}
	s.mu.Lock()
	s.ln = ln
	s.wg.Add(1)
	s.mu.Unlock()
	go s.serve(ln)
	return nil
}

// Stop closes the API listener and every connection, disconnects memif peers
// (of masters and slaves), removes the API socket file and waits for all
// goroutines. Socket files of memif masters and vhost-user servers stay on
// disk, as after a VPP crash.
func (s *Server) Stop() error {
	s.life.Lock()
	defer s.life.Unlock()
	if s.stopped {
		return nil
	}
	s.shutdown()
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
	err := os.RemoveAll(s.privDir)
	if rerr := os.Remove(s.opts.Socket); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
		err = errors.Join(err, rerr)
	}
	return err
}

// Restart simulates a VPP restart: connections drop and all state is lost
// (only local0 and memif socket id 0 remain); socket files created by memif
// masters stay on disk; the API socket is served again on the same path.
func (s *Server) Restart() error {
	s.life.Lock()
	defer s.life.Unlock()
	if s.stopped {
		return errors.New("vppstub: server stopped")
	}
	s.shutdown()
	s.mu.Lock()
	s.st = newState(s)
	s.closing = false
	s.mu.Unlock()
	return s.listen()
}

// shutdown closes everything of the current run and waits for its goroutines.
func (s *Server) shutdown() {
	s.mu.Lock()
	s.closing = true
	ln := s.ln
	s.ln = nil
	var conns []*apiConn
	for c := range s.conns {
		conns = append(conns, c)
	}
	var mconns []*memifConn
	for c := range s.mconns {
		mconns = append(mconns, c)
	}
	var slaves []*slaveLink
	for l := range s.slaves {
		slaves = append(slaves, l)
	}
	s.st.closeListeners()
	s.mu.Unlock()

	if ln != nil {
		ln.SetUnlinkOnClose(false) // Stop removes it; Restart replaces it
		_ = ln.Close()
	}
	for _, c := range conns {
		_ = c.conn.Close()
	}
	for _, c := range mconns {
		c.kill("VPP stopped")
	}
	for _, l := range slaves {
		l.kill("VPP stopped")
	}
	s.wg.Wait()
}

// Calls returns how many requests of each message name were received since
// Start or ResetCalls (all of them, control_ping and sockclnt_* included).
func (s *Server) Calls() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.calls))
	for k, v := range s.calls {
		out[k] = v
	}
	return out
}

// ResetCalls clears the counts returned by Calls.
func (s *Server) ResetCalls() {
	s.mu.Lock()
	s.calls = map[string]int{}
	s.mu.Unlock()
}

func (s *Server) logf(format string, args ...any) { s.opts.Logf("vppstub: "+format, args...) }

// msgTable is the message table advertised in sockclnt_create_reply.
type msgTable struct {
	byID    map[uint16]api.Message // prototypes
	ids     map[string]uint16      // name_crc -> id (true CRCs)
	byName  map[string]api.Message // name -> prototype, to find reply types
	entries []memclnt.MessageTableEntry
}

// sockclntCreateID is fixed: govpp sends sockclnt_create with id 15 before it
// knows the table.
const sockclntCreateID = 15

func newMsgTable(incompatible []string) (*msgTable, error) {
	t := &msgTable{byID: map[uint16]api.Message{}, ids: map[string]uint16{}, byName: map[string]api.Message{}}
	var keys []string
	all := map[string]api.Message{}
	for _, msgs := range api.GetRegisteredMessages() {
		for k, m := range msgs {
			if _, dup := all[k]; !dup {
				keys = append(keys, k)
			}
			all[k] = m
		}
	}
	sort.Strings(keys)
	bad := map[string]bool{}
	for _, n := range incompatible {
		bad[n] = true
	}
	next := uint16(1)
	for _, k := range keys {
		m := all[k]
		var id uint16
		if m.GetMessageName() == "sockclnt_create" {
			id = sockclntCreateID
		} else {
			if next == sockclntCreateID {
				next++
			}
			id = next
			next++
		}
		t.byID[id] = m
		t.ids[k] = id
		t.byName[m.GetMessageName()] = m
		name := k
		if bad[m.GetMessageName()] {
			crc := "deadbeef"
			if m.GetCrcString() == crc {
				crc = "0badc0de"
			}
			name = m.GetMessageName() + "_" + crc
			delete(bad, m.GetMessageName())
		}
		t.entries = append(t.entries, memclnt.MessageTableEntry{Index: id, Name: name})
	}
	for n := range bad {
		return nil, fmt.Errorf("vppstub: Incompatible names unknown message %q", n)
	}
	return t, nil
}

func newMsg(proto api.Message) api.Message {
	return reflect.New(reflect.TypeOf(proto).Elem()).Interface().(api.Message)
}

// apiConn is one API client connection.
type apiConn struct {
	conn        *net.UnixConn
	r           *bufio.Reader
	w           *bufio.Writer
	clientIndex uint32
}

func (s *Server) serve(ln *net.UnixListener) {
	defer s.wg.Done()
	for {
		uc, err := ln.AcceptUnix()
		if err != nil {
			return // listener closed
		}
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			_ = uc.Close()
			continue
		}
		s.nextClient++
		c := &apiConn{conn: uc, r: bufio.NewReaderSize(uc, 64<<10), w: bufio.NewWriterSize(uc, 64<<10),
			clientIndex: s.nextClient}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.handleConn(c)
	}
}

const maxMsgLen = 16 << 20

// handleConn processes the requests of one connection strictly in order;
// clients pipeline several requests before reading replies.
func (s *Server) handleConn(c *apiConn) {
	defer s.wg.Done()
	defer func() {
		_ = c.conn.Close()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
	var hdr [16]byte
	for {
		if _, err := io.ReadFull(c.r, hdr[:]); err != nil {
			return
		}
		n := binary.BigEndian.Uint32(hdr[8:12])
		if n < 2 || n > maxMsgLen {
			s.logf("client %d: bad message length %d", c.clientIndex, n)
			return
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(c.r, payload); err != nil {
			return
		}
		closeAfter, err := s.process(c, payload)
		if err != nil {
			s.logf("client %d: %v", c.clientIndex, err)
			return
		}
		// Batch the replies of pipelined requests.
		if c.r.Buffered() == 0 || closeAfter {
			if err := c.w.Flush(); err != nil {
				return
			}
		}
		if closeAfter {
			return
		}
	}
}

// process handles one request; it reports whether the connection ends.
func (s *Server) process(c *apiConn, payload []byte) (bool, error) {
	id := binary.BigEndian.Uint16(payload)
	proto, ok := s.table.byID[id]
	if !ok {
		s.logf("client %d: unknown message id %d ignored", c.clientIndex, id)
		return false, nil
	}
	msg := newMsg(proto)
	if err := codec.DefaultCodec.DecodeMsg(payload, msg); err != nil {
		return false, fmt.Errorf("decoding %s: %w", proto.GetMessageName(), err)
	}
	ctx, err := codec.DefaultCodec.DecodeMsgContext(payload, msg.GetMessageType())
	if err != nil {
		return false, fmt.Errorf("context of %s: %w", proto.GetMessageName(), err)
	}
	s.mu.Lock()
	s.calls[msg.GetMessageName()]++
	s.mu.Unlock()

	res := s.dispatch(c, msg, ctx)
	for _, f := range res.after {
		f()
	}
	for _, r := range res.replies {
		if err := s.writeMsg(c, r, ctx); err != nil {
			return false, err
		}
	}
	return res.close, nil
}

// result is what a handler produces: replies (details for dumps) and work
// that must run after the state lock is released (e.g. disconnecting a memif
// peer, whose callbacks take the lock), before the replies are sent.
type result struct {
	replies []api.Message
	after   []func()
	close   bool
}

func reply(m ...api.Message) result { return result{replies: m} }

func (s *Server) writeMsg(c *apiConn, m api.Message, ctx uint32) error {
	id, ok := s.table.ids[m.GetMessageName()+"_"+m.GetCrcString()]
	if !ok {
		return fmt.Errorf("reply %s not in the message table", m.GetMessageName())
	}
	data, err := codec.DefaultCodec.EncodeMsg(m, id)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", m.GetMessageName(), err)
	}
	switch m.GetMessageType() {
	case api.RequestMessage: // sockclnt_create_reply has a request header
		binary.BigEndian.PutUint32(data[2:6], c.clientIndex)
		binary.BigEndian.PutUint32(data[6:10], ctx)
	case api.ReplyMessage:
		binary.BigEndian.PutUint32(data[2:6], ctx)
	}
	var hdr [16]byte
	binary.BigEndian.PutUint32(hdr[8:12], uint32(len(data)))
	if _, err := c.w.Write(hdr[:]); err != nil {
		return err
	}
	_, err = c.w.Write(data)
	return err
}

// unimplemented answers a request the stand-in does not know: its reply with
// Retval UNIMPLEMENTED, or nothing for a dump (the control ping ends it).
func (s *Server) unimplemented(msg api.Message) result {
	if strings.HasSuffix(msg.GetMessageName(), "_dump") {
		return result{}
	}
	rp, ok := s.table.byName[msg.GetMessageName()+"_reply"]
	if !ok {
		s.logf("no reply type for %s: ignored", msg.GetMessageName())
		return result{}
	}
	r := newMsg(rp)
	if f := reflect.ValueOf(r).Elem().FieldByName("Retval"); f.IsValid() && f.Kind() == reflect.Int32 {
		f.SetInt(int64(api.UNIMPLEMENTED))
	}
	return reply(r)
}
