package vpp_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"go.fd.io/govpp/adapter"
	"go.fd.io/govpp/api"
	"go.fd.io/govpp/binapi/ethernet_types"
	interfaces "go.fd.io/govpp/binapi/interface"
	"go.fd.io/govpp/binapi/interface_types"
	"go.fd.io/govpp/binapi/l2"
	"go.fd.io/govpp/binapi/memclnt"
	vppmemif "go.fd.io/govpp/binapi/memif"
	"go.fd.io/govpp/binapi/vhost_user"
	"go.fd.io/govpp/codec"
)

// Return values real VPP gives (vnet/api_errno.h) in the cases the fake
// reproduces.
const (
	rvNoSuchIf     = int32(api.INVALID_SW_IF_INDEX)   // -2: interface gone
	rvNoSuchEntry  = int32(api.NO_SUCH_ENTRY)         // -6: no such bridge domain
	rvSyscall1     = int32(api.SYSCALL_ERROR_1)       // -11: vhost-user socket bind
	rvSyscall4     = int32(api.SYSCALL_ERROR_4)       // -14: memif listener bind
	rvSubifExists  = int32(api.SUBIF_ALREADY_EXISTS)  // -68: memif id/role clash on a socket
	rvInvalidArg   = int32(api.INVALID_ARGUMENT)      // -73: unknown socket id
	rvInUse        = int32(api.UNEXPECTED_INTF_STATE) // -74: socket still used
	rvValueExist   = int32(api.VALUE_EXIST)           // -81: non-socket file at the path
	rvEntryExists  = int32(api.ENTRY_ALREADY_EXISTS)  // socket id taken by another file
	rvIfExists     = int32(api.IF_ALREADY_EXISTS)     // vhost-user socket already used
	rvNonEthernet  = int32(api.NON_ETHERNET)          // ip-mode memif in a bridge domain
	rvBDExists     = int32(api.BD_ALREADY_EXISTS)     // -119
	rvBDInUse      = int32(api.BD_IN_USE)             // -120
	rvBDNotModify  = int32(api.BD_NOT_MODIFIABLE)     // -121: bridge domain 0
	rvInvalidValue = int32(api.INVALID_VALUE)
)

// defaultMemifSocket is socket id 0, which VPP registers at start.
const defaultMemifSocket = "/run/vpp/memif.sock"

const allIndexes = ^uint32(0)

// fakeVPP is an in-memory VPP behind govpp's adapter interface: requests are
// decoded with govpp's codec, answered with the real reply messages through
// the client's callback, and applied to a small state (interfaces, memif
// sockets, bridge domains, vhost-user interfaces, addresses). Its behaviour
// follows real VPP 25.10 where the engine depends on it. Several connections
// (one per newConn) share one state, as several CNI invocations share VPP.
type fakeVPP struct {
	t testing.TB

	// The message table is fixed at creation; only broken changes.
	ids    map[string]uint16 // name_crc -> id, as VPP sends at connect
	types  map[uint16]reflect.Type
	byName map[string]reflect.Type

	mu          sync.Mutex
	broken      map[string]bool
	requests    []string
	injections  []*injection
	gate        chan struct{}
	connects    int
	disconnects int
	// hangFired is set when a hang injection fired, for SendMsg to mark
	// its connection hung.
	hangFired bool
	epoch     int
	st        *fakeState
}

// injection acts on the nth request named name counted from its creation.
type injection struct {
	name   string
	left   int
	retval int32
	before func(*fakeState)
	hang   bool
}

type fakeState struct {
	ifs       map[uint32]*fakeIf
	nextIndex uint32
	vhostInst uint32
	sockets   map[uint32]*fakeSocket
	// seed is VPP's socket id generator state (random_u32 from 0), which a
	// restart resets: the first allocated id is always 1013904223.
	seed uint32
	bds  map[uint32]*fakeBD
}

type fakeSocket struct {
	path string
	refs int
	ln   *net.UnixListener // a master's listener, while it has memifs
}

type fakeIf struct {
	index   uint32
	name    string
	tag     string
	adminUp bool
	mac     ethernet_types.MacAddress
	addrs   []string
	memif   *fakeMemif
	vhost   *fakeVhost
}

type fakeMemif struct {
	id       uint32
	socketID uint32
	role     vppmemif.MemifRole
	mode     vppmemif.MemifMode
	secret   string
	ring     uint32
	buffer   uint16
	queues   uint8
}

type fakeVhost struct {
	path   string
	server bool
	ln     *net.UnixListener
}

type fakeBD struct {
	id                             uint32
	tag                            string
	flood, uuFlood, forward, learn bool
	members                        []uint32
}

func newFakeVPP(t testing.TB) *fakeVPP {
	f := &fakeVPP{
		t:      t,
		ids:    map[string]uint16{},
		types:  map[uint16]reflect.Type{},
		byName: map[string]reflect.Type{},
		broken: map[string]bool{},
	}
	var keys []string
	msgs := map[string]api.Message{}
	for _, byKey := range api.GetRegisteredMessages() {
		for key, m := range byKey {
			if _, dup := msgs[key]; !dup {
				keys = append(keys, key)
				msgs[key] = m
			}
		}
	}
	sort.Strings(keys)
	for i, key := range keys {
		// VPP numbers messages from 1; the low ids are memclnt's.
		id := uint16(16 + i)
		m := msgs[key]
		f.ids[key] = id
		f.types[id] = reflect.TypeOf(m).Elem()
		f.byName[m.GetMessageName()] = reflect.TypeOf(m).Elem()
	}
	f.st = freshState()
	t.Cleanup(func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.st.closeListeners()
	})
	return f
}

// freshState is VPP just started: local0 and memif socket 0.
func freshState() *fakeState {
	return &fakeState{
		ifs:       map[uint32]*fakeIf{0: {index: 0, name: "local0"}},
		nextIndex: 1,
		sockets:   map[uint32]*fakeSocket{0: {path: defaultMemifSocket}},
		bds:       map[uint32]*fakeBD{},
	}
}

// closeListeners stops listening without unlinking: the files stay, as
// after VPP died.
func (s *fakeState) closeListeners() {
	for _, sock := range s.sockets {
		if sock.ln != nil {
			_ = sock.ln.Close()
			sock.ln = nil
		}
	}
	for _, i := range s.ifs {
		if i.vhost != nil && i.vhost.ln != nil {
			_ = i.vhost.ln.Close()
			i.vhost.ln = nil
		}
	}
}

// restart simulates a VPP restart: all configuration is lost, socket files
// stay on disk, and connections made before it are dead.
func (f *fakeVPP) restart() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.st.closeListeners()
	f.st = freshState()
	f.epoch++
}

// breakCRC makes VPP know the named messages only under another CRC, so
// govpp's compatibility check reports them.
func (f *fakeVPP) breakCRC(names ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, n := range names {
		f.broken[n] = true
	}
}

// failNth makes the nth request named name (counting from now) fail with
// retval, changing nothing.
func (f *fakeVPP) failNth(name string, n int, retval int32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.injections = append(f.injections, &injection{name: name, left: n, retval: retval})
}

// beforeNth runs fn on the state just before the nth request named name is
// handled: something else changing VPP between two of the engine's calls.
func (f *fakeVPP) beforeNth(name string, n int, fn func(*fakeState)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.injections = append(f.injections, &injection{name: name, left: n, before: fn})
}

// hangNth makes the nth request named name (counting from now) get no
// reply at all, as from a VPP that stopped (SIGSTOP) while handling it.
func (f *fakeVPP) hangNth(name string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.injections = append(f.injections, &injection{name: name, left: n, hang: true})
}

// blockConnect makes Connect wait until the returned function is called.
func (f *fakeVPP) blockConnect() (release func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	gate := make(chan struct{})
	f.gate = gate
	var once sync.Once
	return func() { once.Do(func() { close(gate) }) }
}

// takeRequests returns the names of the requests received since the last
// call, in order. control_ping, which govpp sends after every dump, is left
// out.
func (f *fakeVPP) takeRequests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.requests
	f.requests = nil
	return r
}

func (f *fakeVPP) counts() (connects, disconnects int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.connects, f.disconnects
}

// with runs fn on the state under the lock, for assertions and setup.
func (f *fakeVPP) with(fn func(*fakeState)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f.st)
}

// newConn is a new client connection, the adapter govpp drives.
func (f *fakeVPP) newConn() *fakeConn {
	return &fakeConn{vpp: f, epoch: -1}
}

// fakeConn is one API client of the fake VPP.
type fakeConn struct {
	vpp   *fakeVPP
	mu    sync.Mutex
	cb    adapter.MsgCallback
	index uint32
	epoch int
	// hung: VPP stopped answering this client. Requests are still applied
	// (VPP gets to them once it runs again), but no reply is delivered.
	hung bool
}

var _ adapter.VppAPI = (*fakeConn)(nil)

func (c *fakeConn) Connect() error {
	f := c.vpp
	f.mu.Lock()
	gate := f.gate
	f.mu.Unlock()
	if gate != nil {
		<-gate
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.connects++
	c.mu.Lock()
	c.index, c.epoch = uint32(f.connects), f.epoch
	c.mu.Unlock()
	return nil
}

func (c *fakeConn) Disconnect() error {
	c.vpp.mu.Lock()
	defer c.vpp.mu.Unlock()
	c.vpp.disconnects++
	return nil
}

func (c *fakeConn) GetMsgID(name, crc string) (uint16, error) {
	f := c.vpp
	f.mu.Lock()
	defer f.mu.Unlock()
	id, ok := f.ids[name+"_"+crc]
	if !ok || f.broken[name] {
		return 0, &adapter.UnknownMsgError{MsgName: name, MsgCrc: crc}
	}
	return id, nil
}

func (c *fakeConn) SetMsgCallback(cb adapter.MsgCallback) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cb = cb
}

func (c *fakeConn) WaitReady() error { return nil }

// SendMsg handles one request and delivers its replies before returning, so
// replies come in request order as from VPP's single API thread.
func (c *fakeConn) SendMsg(context uint32, data []byte) error {
	if len(data) < 10 {
		return fmt.Errorf("fake VPP: message of %d bytes", len(data))
	}
	c.mu.Lock()
	cb, index, epoch, hung := c.cb, c.index, c.epoch, c.hung
	c.mu.Unlock()
	// Build the header as the socket client does, then read it back as VPP.
	req := append([]byte(nil), data...)
	binary.BigEndian.PutUint32(req[2:6], index)
	binary.BigEndian.PutUint32(req[6:10], context)
	msgID := binary.BigEndian.Uint16(req[0:2])
	reqContext := binary.BigEndian.Uint32(req[6:10])

	f := c.vpp
	f.mu.Lock()
	if epoch != f.epoch {
		f.mu.Unlock()
		return errors.New("fake VPP: connection reset (VPP restarted)")
	}
	typ, ok := f.types[msgID]
	if !ok {
		f.mu.Unlock()
		return fmt.Errorf("fake VPP: unknown message id %d", msgID)
	}
	msg := reflect.New(typ).Interface().(api.Message)
	if err := codec.DefaultCodec.DecodeMsg(req, msg); err != nil {
		f.mu.Unlock()
		return fmt.Errorf("fake VPP: decoding %s: %w", msg.GetMessageName(), err)
	}
	var replies []api.Message
	var err error
	if hung {
		if name := msg.GetMessageName(); name != "control_ping" {
			f.requests = append(f.requests, name)
		}
		_, err = f.apply(msg)
	} else {
		replies, err = f.handle(msg)
		if f.hangFired {
			f.hangFired = false
			c.mu.Lock()
			c.hung = true
			c.mu.Unlock()
		}
	}
	f.mu.Unlock()
	if err != nil {
		f.t.Errorf("fake VPP: %v", err)
		return err
	}
	for _, r := range replies {
		id := f.ids[r.GetMessageName()+"_"+r.GetCrcString()]
		out, err := codec.DefaultCodec.EncodeMsg(r, id)
		if err != nil {
			return fmt.Errorf("fake VPP: encoding %s: %w", r.GetMessageName(), err)
		}
		binary.BigEndian.PutUint32(out[2:6], reqContext)
		cb(id, out)
	}
	return nil
}

// handle applies one request; f.mu is held.
func (f *fakeVPP) handle(msg api.Message) ([]api.Message, error) {
	name := msg.GetMessageName()
	if name != "control_ping" {
		f.requests = append(f.requests, name)
	}
	var fire *injection
	kept := f.injections[:0]
	for _, inj := range f.injections {
		if inj.name == name {
			if inj.left--; inj.left == 0 && fire == nil {
				fire = inj
				continue
			}
		}
		kept = append(kept, inj)
	}
	f.injections = kept
	switch {
	case fire != nil && fire.hang:
		// VPP does the work; the reply never reaches the client.
		if _, err := f.apply(msg); err != nil {
			return nil, err
		}
		f.hangFired = true
		return nil, nil
	case fire != nil && fire.before != nil:
		fire.before(f.st)
	case fire != nil:
		reply, err := f.replyWithRetval(name, fire.retval)
		if err != nil {
			return nil, err
		}
		return []api.Message{reply}, nil
	}
	return f.apply(msg)
}

// apply handles one request on the state and returns the replies.
func (f *fakeVPP) apply(msg api.Message) ([]api.Message, error) {
	name := msg.GetMessageName()
	s := f.st
	one := func(m api.Message) ([]api.Message, error) { return []api.Message{m}, nil }
	switch m := msg.(type) {
	case *memclnt.ControlPing:
		return one(&memclnt.ControlPingReply{VpePID: 4242})
	case *vppmemif.MemifSocketFilenameAddDelV2:
		id, rv := s.socketAddDel(m)
		return one(&vppmemif.MemifSocketFilenameAddDelV2Reply{Retval: rv, SocketID: id})
	case *vppmemif.MemifCreateV2:
		idx, rv := s.memifCreate(m)
		return one(&vppmemif.MemifCreateV2Reply{Retval: rv, SwIfIndex: interface_types.InterfaceIndex(idx)})
	case *vppmemif.MemifDelete:
		return one(&vppmemif.MemifDeleteReply{Retval: s.memifDelete(uint32(m.SwIfIndex))})
	case *vppmemif.MemifDump:
		return s.memifDump(), nil
	case *vppmemif.MemifSocketFilenameDump:
		return s.socketDump(), nil
	case *interfaces.SwInterfaceDump:
		return s.ifDump(m), nil
	case *interfaces.SwInterfaceSetFlags:
		rv := rvNoSuchIf
		if i := s.ifs[uint32(m.SwIfIndex)]; i != nil {
			i.adminUp, rv = m.Flags&interface_types.IF_STATUS_API_FLAG_ADMIN_UP != 0, 0
		}
		return one(&interfaces.SwInterfaceSetFlagsReply{Retval: rv})
	case *interfaces.SwInterfaceTagAddDel:
		return one(&interfaces.SwInterfaceTagAddDelReply{Retval: s.tagAddDel(m)})
	case *interfaces.SwInterfaceAddDelAddress:
		return one(&interfaces.SwInterfaceAddDelAddressReply{Retval: s.addrAddDel(m)})
	case *l2.BridgeDomainAddDelV2:
		id, rv := s.bdAddDel(m)
		return one(&l2.BridgeDomainAddDelV2Reply{Retval: rv, BdID: id})
	case *l2.BridgeDomainDump:
		return s.bdDump(m), nil
	case *l2.SwInterfaceSetL2Bridge:
		return one(&l2.SwInterfaceSetL2BridgeReply{Retval: s.setL2Bridge(m)})
	case *vhost_user.CreateVhostUserIfV2:
		idx, rv := s.vhostCreate(m)
		return one(&vhost_user.CreateVhostUserIfV2Reply{Retval: rv, SwIfIndex: interface_types.InterfaceIndex(idx)})
	case *vhost_user.DeleteVhostUserIf:
		return one(&vhost_user.DeleteVhostUserIfReply{Retval: s.vhostDelete(uint32(m.SwIfIndex))})
	case *vhost_user.SwInterfaceVhostUserDump:
		return s.vhostDump(uint32(m.SwIfIndex)), nil
	}
	return nil, fmt.Errorf("request %s is not handled", name)
}

// replyWithRetval is the reply to a request named name carrying retval.
func (f *fakeVPP) replyWithRetval(name string, retval int32) (api.Message, error) {
	typ, ok := f.byName[name+"_reply"]
	if !ok {
		return nil, fmt.Errorf("cannot inject a failure into %s: it has no _reply (dumps cannot fail)", name)
	}
	v := reflect.New(typ)
	v.Elem().FieldByName("Retval").SetInt(int64(retval))
	return v.Interface().(api.Message), nil
}

// vppTag is what VPP keeps of a 64-byte tag field: it NUL-terminates the
// last byte.
func vppTag(t string) string {
	if len(t) > 63 {
		return t[:63]
	}
	return t
}

func (s *fakeState) newIf(name string) *fakeIf {
	i := &fakeIf{index: s.nextIndex, name: name}
	s.nextIndex++
	s.ifs[i.index] = i
	return i
}

// removeIf deletes an interface, taking it out of its bridge domain as VPP
// does.
func (s *fakeState) removeIf(idx uint32) {
	for _, bd := range s.bds {
		bd.members = slices.DeleteFunc(bd.members, func(m uint32) bool { return m == idx })
	}
	delete(s.ifs, idx)
}

func (s *fakeState) socketAddDel(m *vppmemif.MemifSocketFilenameAddDelV2) (uint32, int32) {
	id := m.SocketID
	if id == 0 {
		return 0, rvInvalidArg
	}
	if !m.IsAdd {
		// VPP's memif_delete_socket_file: unknown id is INVALID_ARGUMENT.
		sock, ok := s.sockets[id]
		if !ok || id == allIndexes {
			return id, rvInvalidArg
		}
		if sock.refs > 0 {
			return id, rvInUse
		}
		delete(s.sockets, id)
		return id, 0
	}
	if m.SocketFilename == "" {
		return id, rvInvalidArg
	}
	if id == allIndexes {
		for {
			s.seed = 1664525*s.seed + 1013904223
			if _, taken := s.sockets[s.seed]; !taken && s.seed != 0 && s.seed != allIndexes {
				id = s.seed
				break
			}
		}
	}
	if old, ok := s.sockets[id]; ok {
		if old.path == m.SocketFilename {
			return id, 0
		}
		return id, rvEntryExists
	}
	s.sockets[id] = &fakeSocket{path: m.SocketFilename}
	return id, 0
}

var errNotSocket = errors.New("a file that is not a socket is in the way")

// listen binds a unix socket at path like VPP: a stale socket file is
// replaced, any other file refused; the file outlives the listener.
func listen(path, network string) (*net.UnixListener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&fs.ModeSocket == 0 {
			return nil, errNotSocket
		}
		_ = os.Remove(path)
	}
	ln, err := net.ListenUnix(network, &net.UnixAddr{Name: path, Net: network})
	if err != nil {
		return nil, err
	}
	ln.SetUnlinkOnClose(false)
	return ln, nil
}

func (s *fakeState) memifCreate(m *vppmemif.MemifCreateV2) (uint32, int32) {
	sock, ok := s.sockets[m.SocketID]
	if !ok {
		return 0, rvInvalidArg
	}
	if m.RingSize != 0 && m.RingSize&(m.RingSize-1) != 0 {
		return 0, rvInvalidArg
	}
	if m.Mode > vppmemif.MEMIF_MODE_API_PUNT_INJECT {
		return 0, rvInvalidValue
	}
	master := m.Role == vppmemif.MEMIF_ROLE_API_MASTER
	if sock.refs > 0 {
		for _, i := range s.ifs {
			if i.memif == nil || i.memif.socketID != m.SocketID {
				continue
			}
			if (i.memif.role == vppmemif.MEMIF_ROLE_API_MASTER) != master || i.memif.id == m.ID {
				return 0, rvSubifExists
			}
		}
	}
	if master && sock.refs == 0 && filepath.IsAbs(sock.path) {
		// A master listens from creation on, before admin up.
		ln, err := listen(sock.path, "unixpacket")
		if errors.Is(err, errNotSocket) {
			return 0, rvValueExist
		}
		if err != nil {
			return 0, rvSyscall4
		}
		sock.ln = ln
	}
	sock.refs++
	i := s.newIf(fmt.Sprintf("memif%d/%d", m.SocketID, m.ID))
	i.mac = m.HwAddr
	if i.mac == (ethernet_types.MacAddress{}) {
		i.mac = ethernet_types.MacAddress{0x02, 0xfe, 0, 0, byte(i.index >> 8), byte(i.index)}
	}
	// VPP keeps at most 23 bytes of the 24-byte secret field.
	secret := m.Secret
	if len(secret) > 23 {
		secret = secret[:23]
	}
	i.memif = &fakeMemif{id: m.ID, socketID: m.SocketID, role: m.Role, mode: m.Mode, secret: secret,
		ring: m.RingSize, buffer: m.BufferSize, queues: m.RxQueues}
	return i.index, 0
}

// memifDelete removes a memif; the socket file stays (VPP never unlinks a
// master's socket).
func (s *fakeState) memifDelete(idx uint32) int32 {
	i := s.ifs[idx]
	if i == nil || i.memif == nil {
		return rvNoSuchIf
	}
	if sock := s.sockets[i.memif.socketID]; sock != nil {
		if sock.refs--; sock.refs == 0 && sock.ln != nil {
			_ = sock.ln.Close()
			sock.ln = nil
		}
	}
	s.removeIf(idx)
	return 0
}

func (s *fakeState) sortedIfs() []*fakeIf {
	out := make([]*fakeIf, 0, len(s.ifs))
	for _, i := range s.ifs {
		out = append(out, i)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].index < out[b].index })
	return out
}

func flags(i *fakeIf) interface_types.IfStatusFlags {
	if i.adminUp {
		return interface_types.IF_STATUS_API_FLAG_ADMIN_UP
	}
	return 0
}

func (s *fakeState) memifDump() []api.Message {
	var out []api.Message
	for _, i := range s.sortedIfs() {
		if i.memif == nil {
			continue
		}
		// Until connected VPP reports ring size 1 and buffer size 0.
		out = append(out, &vppmemif.MemifDetails{
			SwIfIndex: interface_types.InterfaceIndex(i.index), HwAddr: i.mac, ID: i.memif.id,
			Role: i.memif.role, Mode: i.memif.mode, ZeroCopy: true, SocketID: i.memif.socketID,
			RingSize: 1, BufferSize: 0, Flags: flags(i), IfName: i.name,
		})
	}
	return out
}

func (s *fakeState) socketDump() []api.Message {
	ids := make([]uint32, 0, len(s.sockets))
	for id := range s.sockets {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var out []api.Message
	for _, id := range ids {
		out = append(out, &vppmemif.MemifSocketFilenameDetails{SocketID: id, SocketFilename: s.sockets[id].path})
	}
	return out
}

func (s *fakeState) ifDump(m *interfaces.SwInterfaceDump) []api.Message {
	var out []api.Message
	for _, i := range s.sortedIfs() {
		if uint32(m.SwIfIndex) != allIndexes && uint32(m.SwIfIndex) != i.index {
			continue
		}
		if m.NameFilterValid && !strings.Contains(i.name, m.NameFilter) {
			continue
		}
		dev := "Local"
		switch {
		case i.memif != nil:
			dev = "memif"
		case i.vhost != nil:
			dev = "vhost-user"
		}
		out = append(out, &interfaces.SwInterfaceDetails{
			SwIfIndex: interface_types.InterfaceIndex(i.index), SupSwIfIndex: i.index, L2Address: i.mac,
			Flags: flags(i), Type: interface_types.IF_API_TYPE_HARDWARE, LinkMtu: 9000,
			InterfaceName: i.name, InterfaceDevType: dev, Tag: i.tag,
		})
	}
	return out
}

func (s *fakeState) tagAddDel(m *interfaces.SwInterfaceTagAddDel) int32 {
	i := s.ifs[uint32(m.SwIfIndex)]
	if i == nil {
		return rvNoSuchIf
	}
	if !m.IsAdd {
		i.tag = ""
		return 0
	}
	if m.Tag == "" {
		return rvInvalidValue
	}
	i.tag = vppTag(m.Tag)
	return 0
}

func (s *fakeState) addrAddDel(m *interfaces.SwInterfaceAddDelAddress) int32 {
	i := s.ifs[uint32(m.SwIfIndex)]
	if i == nil {
		return rvNoSuchIf
	}
	p := m.Prefix.String()
	switch {
	case m.DelAll:
		i.addrs = nil
	case m.IsAdd:
		if slices.Contains(i.addrs, p) {
			return int32(api.ADDRESS_FOUND_FOR_INTERFACE)
		}
		i.addrs = append(i.addrs, p)
	default:
		n := len(i.addrs)
		if i.addrs = slices.DeleteFunc(i.addrs, func(a string) bool { return a == p }); len(i.addrs) == n {
			return int32(api.ADDRESS_NOT_FOUND_FOR_INTERFACE)
		}
	}
	return 0
}

func (s *fakeState) bdAddDel(m *l2.BridgeDomainAddDelV2) (uint32, int32) {
	id := m.BdID
	if id == 0 {
		return 0, rvBDNotModify
	}
	if !m.IsAdd {
		bd, ok := s.bds[id]
		switch {
		case !ok:
			return id, rvNoSuchEntry
		case len(bd.members) > 0:
			return id, rvBDInUse
		}
		delete(s.bds, id)
		return id, 0
	}
	if id == allIndexes {
		for id = 1; s.bds[id] != nil; id++ {
		}
	}
	if _, ok := s.bds[id]; ok {
		return id, rvBDExists
	}
	s.bds[id] = &fakeBD{id: id, tag: vppTag(m.BdTag), flood: m.Flood, uuFlood: m.UuFlood, forward: m.Forward, learn: m.Learn}
	return id, 0
}

func (s *fakeState) bdDump(m *l2.BridgeDomainDump) []api.Message {
	ids := make([]uint32, 0, len(s.bds))
	for id := range s.bds {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var out []api.Message
	for _, id := range ids {
		bd := s.bds[id]
		if m.BdID != allIndexes && m.BdID != id {
			continue
		}
		if idx := uint32(m.SwIfIndex); idx != allIndexes && !slices.Contains(bd.members, idx) {
			continue
		}
		d := &l2.BridgeDomainDetails{
			BdID: id, Flood: bd.flood, UuFlood: bd.uuFlood, Forward: bd.forward, Learn: bd.learn,
			BdTag: bd.tag, BviSwIfIndex: interface_types.InterfaceIndex(allIndexes),
			UuFwdSwIfIndex: interface_types.InterfaceIndex(allIndexes), NSwIfs: uint32(len(bd.members)),
		}
		for _, mem := range bd.members {
			d.SwIfDetails = append(d.SwIfDetails, l2.BridgeDomainSwIf{SwIfIndex: interface_types.InterfaceIndex(mem)})
		}
		out = append(out, d)
	}
	return out
}

// setL2Bridge follows VPP: a missing bridge domain is created on the fly
// (untagged, default flags), and an interface is in at most one domain.
func (s *fakeState) setL2Bridge(m *l2.SwInterfaceSetL2Bridge) int32 {
	idx := uint32(m.RxSwIfIndex)
	i := s.ifs[idx]
	if i == nil {
		return rvNoSuchIf
	}
	if m.PortType > l2.L2_API_PORT_TYPE_UU_FWD {
		return rvInvalidValue
	}
	for _, bd := range s.bds {
		bd.members = slices.DeleteFunc(bd.members, func(x uint32) bool { return x == idx })
	}
	if !m.Enable {
		return 0
	}
	if i.memif != nil && i.memif.mode != vppmemif.MEMIF_MODE_API_ETHERNET {
		return rvNonEthernet
	}
	bd := s.bds[m.BdID]
	if bd == nil {
		bd = &fakeBD{id: m.BdID, flood: true, uuFlood: true, forward: true, learn: true}
		s.bds[m.BdID] = bd
	}
	bd.members = append(bd.members, idx)
	return 0
}

// vhostCreate: a server listens on its socket from creation on.
func (s *fakeState) vhostCreate(m *vhost_user.CreateVhostUserIfV2) (uint32, int32) {
	for _, i := range s.ifs {
		if i.vhost != nil && i.vhost.path == m.SockFilename {
			return 0, rvIfExists
		}
	}
	v := &fakeVhost{path: m.SockFilename, server: m.IsServer}
	if m.IsServer {
		ln, err := listen(m.SockFilename, "unix")
		if err != nil {
			return 0, rvSyscall1
		}
		v.ln = ln
	}
	i := s.newIf(fmt.Sprintf("VirtualEthernet0/0/%d", s.vhostInst))
	s.vhostInst++
	i.vhost = v
	i.tag = vppTag(m.Tag)
	i.mac = ethernet_types.MacAddress{0x02, 0xfe, 0x11, 0, byte(i.index >> 8), byte(i.index)}
	return i.index, 0
}

// vhostDelete removes the interface and, for a server, its socket file.
func (s *fakeState) vhostDelete(idx uint32) int32 {
	i := s.ifs[idx]
	if i == nil || i.vhost == nil {
		return rvNoSuchIf
	}
	if i.vhost.ln != nil {
		_ = i.vhost.ln.Close()
		_ = os.Remove(i.vhost.path)
	}
	s.removeIf(idx)
	return 0
}

func (s *fakeState) vhostDump(filter uint32) []api.Message {
	var out []api.Message
	for _, i := range s.sortedIfs() {
		if i.vhost == nil || filter != allIndexes && filter != i.index {
			continue
		}
		out = append(out, &vhost_user.SwInterfaceVhostUserDetails{
			SwIfIndex: interface_types.InterfaceIndex(i.index), InterfaceName: i.name,
			IsServer: i.vhost.server, SockFilename: i.vhost.path, VirtioNetHdrSz: 12,
		})
	}
	return out
}

// Test helpers reading the state.

// byTag is the interface with the tag, or nil.
func (s *fakeState) byTag(tag string) *fakeIf {
	for _, i := range s.ifs {
		if i.tag == tag {
			return i
		}
	}
	return nil
}

// addForeignMemif adds a memif someone else configured: its own socket,
// slave role (no listener), the given tag, optionally in a bridge domain.
func (s *fakeState) addForeignMemif(path, tag string, bd uint32) *fakeIf {
	id, _ := s.socketAddDel(&vppmemif.MemifSocketFilenameAddDelV2{IsAdd: true, SocketID: allIndexes, SocketFilename: path})
	idx, rv := s.memifCreate(&vppmemif.MemifCreateV2{Role: vppmemif.MEMIF_ROLE_API_SLAVE, SocketID: id})
	if rv != 0 {
		panic(fmt.Sprintf("foreign memif: retval %d", rv))
	}
	i := s.ifs[idx]
	i.tag, i.adminUp = tag, true
	if bd != 0 {
		s.setL2Bridge(&l2.SwInterfaceSetL2Bridge{RxSwIfIndex: interface_types.InterfaceIndex(idx), BdID: bd, Enable: true})
	}
	return i
}

// leftovers describes what is configured beyond a fresh VPP, "" if nothing.
func (s *fakeState) leftovers() string {
	var b strings.Builder
	for _, i := range s.sortedIfs() {
		if i.index != 0 {
			fmt.Fprintf(&b, "interface %d %s tag %q; ", i.index, i.name, i.tag)
		}
	}
	for id, sock := range s.sockets {
		if id != 0 {
			fmt.Fprintf(&b, "socket %d %s; ", id, sock.path)
		}
	}
	for id, bd := range s.bds {
		fmt.Fprintf(&b, "bridge domain %d tag %q members %v; ", id, bd.tag, bd.members)
	}
	return b.String()
}
