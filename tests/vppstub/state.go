package vppstub

import (
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"sort"
	"sync/atomic"

	"go.fd.io/govpp/binapi/memif"
)

// l2BDIDMax is VPP's L2_BD_ID_MAX: bridge domain ids are 24 bits.
const l2BDIDMax = 1<<24 - 1

// state is everything a VPP run knows; Restart replaces it.
type state struct {
	s       *Server
	ifaces  map[uint32]*iface
	nextSw  uint32
	freeSw  []uint32 // freed indices, reused last-freed first like a VPP pool
	sockets map[uint32]*memifSocket
	bds     map[uint32]*bridgeDomain

	vhostNext uint32
	vhostFree []uint32

	routes  map[netip.Prefix]*apiRoute // table 0, source API
	fibIdx  map[netip.Prefix]uint32    // stats_index of every prefix seen
	nextFib uint32

	bdSeed, macSeed uint32
}

type iface struct {
	sw      uint32
	name    string
	devType string
	tag     string
	adminUp bool
	linkUp  bool
	mac     [6]byte
	addrs   []netip.Prefix
	inBD    bool
	bdID    uint32
	shg     uint8
	memif   *memifIf
	vhost   *vhostIf
	nbrs    map[netip.Addr][6]byte // learnt by ARP / ND (L3 interfaces)
	cnt     counters
}

type counters struct {
	rxPkts, rxBytes, txPkts, txBytes, drops atomic.Uint64
	hostRx, hostTx                          atomic.Uint64
}

type memifIf struct {
	socketID   uint32
	id         uint32
	role       memif.MemifRole
	mode       memif.MemifMode
	rxQueues   uint8
	txQueues   uint8
	ringSize   uint32
	bufferSize uint16
	secret     string
	noZeroCopy bool
	conn       *memifConn // master: connected (or connecting) peer
	slave      *slaveLink // slave: its connection manager

	// What VPP shows of the last connection: the "run" ring and buffer
	// sizes a slave negotiated (memif_details), the peer's names, the
	// reason of the last disconnect.
	runSet      bool
	runLog2     uint8
	runBuf      uint16
	remoteName  string
	remoteIf    string
	discReason  string
	connections int
}

type memifSocket struct {
	id         uint32
	filename   string
	refCnt     int
	isListener bool
	ln         *net.UnixListener
	byID       map[uint32]uint32 // memif id -> sw_if_index
}

type bridgeDomain struct {
	id                                               uint32
	flood, uuFlood, forward, learn, arpTerm, arpUfwd bool
	macAge                                           uint8
	tag                                              string
	members                                          []uint32
	fib                                              map[[6]byte]uint32
}

type vhostIf struct {
	instance uint32
	socket   string
	server   bool
	ln       *net.UnixListener
}

func newState(s *Server) *state {
	st := &state{
		s: s, ifaces: map[uint32]*iface{}, nextSw: 1,
		sockets: map[uint32]*memifSocket{}, bds: map[uint32]*bridgeDomain{},
		bdSeed: uint32(s.opts.Seed) ^ 0x5bd1e995, macSeed: uint32(s.opts.Seed) ^ 0x9e3779b9 ^ fnv32(s.opts.Socket),
	}
	st.ifaces[0] = &iface{sw: 0, name: "local0", devType: "local"}
	st.sockets[0] = &memifSocket{id: 0, filename: filepath.Join(s.opts.RuntimeDir, "memif.sock"),
		byID: map[uint32]uint32{}}
	st.routes, st.fibIdx = map[netip.Prefix]*apiRoute{}, map[netip.Prefix]uint32{}
	for _, e := range specialRoutes {
		st.fibIndex(e.prefix)
	}
	return st
}

// lcg is VPP's random_u32 (clib): a 32-bit linear congruential generator.
func lcg(seed *uint32) uint32 {
	*seed = *seed*1664525 + 1013904223
	return *seed
}

func (st *state) allocSw() uint32 {
	if n := len(st.freeSw); n > 0 {
		sw := st.freeSw[n-1]
		st.freeSw = st.freeSw[:n-1]
		return sw
	}
	sw := st.nextSw
	st.nextSw++
	return sw
}

// fnv32 is FNV-1a: it makes the MACs of stand-ins on different API sockets
// differ (VPP seeds them from the time), so several stand-ins can share a
// bridge domain.
func fnv32(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h = (h ^ uint32(s[i])) * 16777619
	}
	return h
}

// randomMAC is what VPP gives an ethernet memif or vhost-user interface
// without a configured address: 02:fe plus 4 random bytes.
func (st *state) randomMAC() [6]byte {
	r := lcg(&st.macSeed)
	return [6]byte{0x02, 0xfe, byte(r >> 24), byte(r >> 16), byte(r >> 8), byte(r)}
}

// removeIface forgets an interface: bridge domain membership, tag and
// addresses go with it, and its sw_if_index becomes reusable.
func (st *state) removeIface(ifc *iface) {
	st.leaveBD(ifc)
	delete(st.ifaces, ifc.sw)
	st.freeSw = append(st.freeSw, ifc.sw)
}

func (st *state) leaveBD(ifc *iface) {
	if !ifc.inBD {
		return
	}
	if bd := st.bds[ifc.bdID]; bd != nil {
		bd.members = slices.DeleteFunc(bd.members, func(sw uint32) bool { return sw == ifc.sw })
		for mac, sw := range bd.fib {
			if sw == ifc.sw {
				delete(bd.fib, mac)
			}
		}
	}
	ifc.inBD, ifc.bdID, ifc.shg = false, 0, 0
}

// closeListeners closes every listening socket of this run without removing
// the files, as a killed VPP leaves them behind.
func (st *state) closeListeners() {
	for _, sock := range st.sockets {
		if sock.ln != nil {
			_ = sock.ln.Close()
			sock.ln = nil
		}
	}
	for _, ifc := range st.ifaces {
		if ifc.vhost != nil && ifc.vhost.ln != nil {
			_ = ifc.vhost.ln.Close()
			ifc.vhost.ln = nil
		}
	}
}

// Interface is a snapshot of one interface.
type Interface struct {
	SwIfIndex uint32
	Name      string
	DevType   string // "local", "memif" or "vhost-user"
	Tag       string
	AdminUp   bool
	LinkUp    bool             // a memif peer is connected
	MAC       net.HardwareAddr // nil for IP-mode memifs and local0
	Addresses []netip.Prefix
	// InBridgeDomain tells whether BridgeDomain is meaningful.
	InBridgeDomain bool
	BridgeDomain   uint32
}

// Memif is a snapshot of a memif interface, with sizes as configured (the
// API reports what a real VPP reports instead: ring 1, buffer 0).
type Memif struct {
	SwIfIndex  uint32
	Name       string
	SocketID   uint32
	ID         uint32
	Role       memif.MemifRole
	Mode       memif.MemifMode
	RxQueues   uint8
	TxQueues   uint8
	RingSize   uint32
	BufferSize uint16
	Secret     string
	NoZeroCopy bool
	Connected  bool
	// SocketFilename is the socket file the memif listens on (master) or
	// connects to (slave), as VPP reports it.
	SocketFilename string
	// RemoteName is the peer application's name (from its hello or init),
	// RemoteInterface the peer interface's name (slaves only: from the
	// connected message), both kept after a disconnect like VPP's.
	RemoteName, RemoteInterface string
	// DisconnectReason says why the last connection or attempt ended.
	DisconnectReason string
	// Connections counts the connections established so far.
	Connections int
}

// SocketFile is a snapshot of a registered memif socket filename.
type SocketFile struct {
	ID        uint32
	Filename  string // as VPP reports it (relative names made absolute)
	Users     int    // memif interfaces using it
	Listening bool   // a master's listener is open
}

// BridgeDomain is a snapshot of a bridge domain.
type BridgeDomain struct {
	ID                                               uint32
	Flood, UuFlood, Forward, Learn, ArpTerm, ArpUfwd bool
	MacAge                                           uint8
	Tag                                              string
	Members                                          []uint32 // sw_if_index, in join order
}

// VhostUser is a snapshot of a vhost-user interface.
type VhostUser struct {
	SwIfIndex uint32
	Name      string
	Socket    string
	Server    bool
}

// Counters are per-interface packet counters of the memif data path
// (masters and slaves alike).
type Counters struct {
	RxPackets, RxBytes, TxPackets, TxBytes uint64
	// Drops counts frames received but neither forwarded nor consumed by
	// the IP host (admin down, no destination, not for us, malformed) and
	// frames a full or disconnected peer could not take.
	Drops uint64
	// HostRx counts received frames the interface's IP host consumed (ARP,
	// ND, ICMP echo requests and replies); HostTx the frames it sent (ARP
	// and ND requests and replies, echo requests and replies). Both are
	// included in RxPackets and TxPackets.
	HostRx, HostTx uint64
}

// Interfaces returns all interfaces ordered by sw_if_index.
func (s *Server) Interfaces() []Interface {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Interface
	for _, ifc := range s.st.ifaces {
		x := Interface{SwIfIndex: ifc.sw, Name: ifc.name, DevType: ifc.devType, Tag: ifc.tag,
			AdminUp: ifc.adminUp, LinkUp: ifc.linkUp, Addresses: slices.Clone(ifc.addrs),
			InBridgeDomain: ifc.inBD, BridgeDomain: ifc.bdID}
		if ifc.hasMAC() {
			x.MAC = net.HardwareAddr(slices.Clone(ifc.mac[:]))
		}
		out = append(out, x)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].SwIfIndex < out[j].SwIfIndex })
	return out
}

// Memifs returns all memif interfaces ordered by sw_if_index.
func (s *Server) Memifs() []Memif {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Memif
	for _, ifc := range s.st.ifaces {
		m := ifc.memif
		if m == nil {
			continue
		}
		x := Memif{SwIfIndex: ifc.sw, Name: ifc.name, SocketID: m.socketID, ID: m.id,
			Role: m.role, Mode: m.mode, RxQueues: m.rxQueues, TxQueues: m.txQueues,
			RingSize: m.ringSize, BufferSize: m.bufferSize, Secret: m.secret,
			NoZeroCopy: m.noZeroCopy, Connected: ifc.linkUp, RemoteName: m.remoteName,
			RemoteInterface: m.remoteIf, DisconnectReason: m.discReason, Connections: m.connections}
		if sock := s.st.sockets[m.socketID]; sock != nil {
			x.SocketFilename = sock.filename
		}
		out = append(out, x)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].SwIfIndex < out[j].SwIfIndex })
	return out
}

// SocketFiles returns the registered memif socket filenames ordered by id.
func (s *Server) SocketFiles() []SocketFile {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []SocketFile
	for _, sock := range s.st.sockets {
		out = append(out, SocketFile{ID: sock.id, Filename: sock.filename, Users: sock.refCnt,
			Listening: sock.ln != nil})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// BridgeDomains returns all bridge domains (bd 0 excluded) ordered by id.
func (s *Server) BridgeDomains() []BridgeDomain {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []BridgeDomain
	for _, bd := range s.st.bds {
		out = append(out, bd.snapshot())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (bd *bridgeDomain) snapshot() BridgeDomain {
	return BridgeDomain{ID: bd.id, Flood: bd.flood, UuFlood: bd.uuFlood, Forward: bd.forward,
		Learn: bd.learn, ArpTerm: bd.arpTerm, ArpUfwd: bd.arpUfwd, MacAge: bd.macAge, Tag: bd.tag,
		Members: slices.Clone(bd.members)}
}

// VhostUsers returns all vhost-user interfaces ordered by sw_if_index.
func (s *Server) VhostUsers() []VhostUser {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []VhostUser
	for _, ifc := range s.st.ifaces {
		if v := ifc.vhost; v != nil {
			out = append(out, VhostUser{SwIfIndex: ifc.sw, Name: ifc.name, Socket: v.socket, Server: v.server})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].SwIfIndex < out[j].SwIfIndex })
	return out
}

// Counters returns the packet counters of an interface (zero if unknown).
func (s *Server) Counters(swIfIndex uint32) Counters {
	s.mu.Lock()
	ifc := s.st.ifaces[swIfIndex]
	s.mu.Unlock()
	if ifc == nil {
		return Counters{}
	}
	return Counters{RxPackets: ifc.cnt.rxPkts.Load(), RxBytes: ifc.cnt.rxBytes.Load(),
		TxPackets: ifc.cnt.txPkts.Load(), TxBytes: ifc.cnt.txBytes.Load(), Drops: ifc.cnt.drops.Load(),
		HostRx: ifc.cnt.hostRx.Load(), HostTx: ifc.cnt.hostTx.Load()}
}

func (ifc *iface) hasMAC() bool {
	return ifc.devType != "local" && !(ifc.memif != nil && ifc.memif.mode != memif.MEMIF_MODE_API_ETHERNET)
}
