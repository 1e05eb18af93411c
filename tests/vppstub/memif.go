package vppstub

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"go.fd.io/govpp/api"
	"go.fd.io/govpp/binapi/ethernet_types"
	"go.fd.io/govpp/binapi/interface_types"
	"go.fd.io/govpp/binapi/memif"
)

// memifArgs are the fields of memif_create_v2 (memif_create lacks use_dma).
type memifArgs memif.MemifCreateV2

const (
	memifDefaultRingSize   = 1024
	memifDefaultBufferSize = 2048
)

// memifSocketAddDel implements memif_socket_filename_add_del(_v2). Retvals:
// socket id 0 (both versions), ~0 (v1, or v2 delete), unknown id on delete
// or empty filename: INVALID_ARGUMENT (-73); delete while used by a memif:
// UNEXPECTED_INTF_STATE (-74); an existing id with another filename:
// ENTRY_ALREADY_EXISTS (-116), the same filename: 0.
func (st *state) memifSocketAddDel(isAdd bool, id uint32, filename string, v2 bool) (int32, uint32) {
	if id == 0 {
		return rv(api.INVALID_ARGUMENT), id
	}
	if v2 && isAdd && id == ^uint32(0) {
		id = st.unusedSocketID()
	}
	if id == ^uint32(0) {
		return rv(api.INVALID_ARGUMENT), id
	}
	sock := st.sockets[id]
	if !isAdd {
		switch {
		case sock == nil:
			return rv(api.INVALID_ARGUMENT), id
		case sock.refCnt > 0:
			return rv(api.UNEXPECTED_INTF_STATE), id
		}
		delete(st.sockets, id)
		return 0, id
	}
	if filename == "" {
		return rv(api.INVALID_ARGUMENT), id
	}
	if !strings.HasPrefix(filename, "abstract:") && !filepath.IsAbs(filename) {
		// Relative names land under the runtime dir, created on demand.
		filename = filepath.Join(st.s.opts.RuntimeDir, filename)
		if err := os.MkdirAll(filepath.Dir(filename), 0o755); err != nil {
			st.s.logf("memif socket %d: %v", id, err)
			return rv(api.SYSCALL_ERROR_1), id
		}
	}
	// An absolute path's directory is not checked here: VPP 25.10 fails
	// later, when a master binds.
	if sock != nil {
		if sock.filename == filename {
			return 0, id
		}
		return rv(api.ENTRY_ALREADY_EXISTS), id
	}
	st.sockets[id] = &memifSocket{id: id, filename: filename, byID: map[uint32]uint32{}}
	return 0, id
}

// unusedSocketID is VPP's memif_get_unused_socket_id: the generator restarts
// from the same seed every time, so the first free value is returned.
func (st *state) unusedSocketID() uint32 {
	seed := uint32(st.s.opts.Seed)
	for range 0xffff {
		id := lcg(&seed)
		if _, used := st.sockets[id]; !used && id != ^uint32(0) {
			return id
		}
	}
	return ^uint32(0)
}

// memifCreate implements memif_create(_v2). Retvals: ring size not a power
// of two or unknown socket id: INVALID_ARGUMENT (-73); id already used on the
// socket, or a master and a slave on one socket: SUBIF_ALREADY_EXISTS (-68);
// mode other than ethernet/ip: SYSCALL_ERROR_2 (-12, VPP has no punt/inject
// memif); a master's listener: a non-socket file in the way: VALUE_EXIST
// (-81), bind/listen failure (e.g. missing directory): SYSCALL_ERROR_4 (-14).
// On error nothing is created.
func (st *state) memifCreate(a memifArgs) (int32, interface_types.InterfaceIndex) {
	ringSize := uint32(memifDefaultRingSize)
	if a.RingSize != 0 {
		ringSize = a.RingSize
	}
	if ringSize&(ringSize-1) != 0 {
		return rv(api.INVALID_ARGUMENT), 0
	}
	bufferSize := uint16(memifDefaultBufferSize)
	if a.BufferSize != 0 {
		bufferSize = a.BufferSize
	}
	isMaster := a.Role == memif.MEMIF_ROLE_API_MASTER
	rxq, txq := a.RxQueues, a.TxQueues
	if !isMaster {
		rxq, txq = max(rxq, 1), max(txq, 1)
	}
	sock := st.sockets[a.SocketID]
	if sock == nil {
		return rv(api.INVALID_ARGUMENT), 0
	}
	if sock.refCnt > 0 {
		if sock.isListener != isMaster {
			return rv(api.SUBIF_ALREADY_EXISTS), 0
		}
		if _, dup := sock.byID[a.ID]; dup {
			return rv(api.SUBIF_ALREADY_EXISTS), 0
		}
	}
	if a.Mode != memif.MEMIF_MODE_API_ETHERNET && a.Mode != memif.MEMIF_MODE_API_IP {
		return rv(api.SYSCALL_ERROR_2), 0
	}
	if isMaster && sock.refCnt == 0 {
		ln, code, err := listenMemif(sock.filename)
		if err != nil {
			st.s.logf("memif master on %s: %v", sock.filename, err)
			return code, 0
		}
		sock.ln = ln
		st.s.wg.Add(1)
		go st.s.acceptMemif(st, sock, ln)
	}
	ifc := &iface{sw: st.allocSw(), name: fmt.Sprintf("memif%d/%d", sock.id, a.ID), devType: "memif",
		memif: &memifIf{socketID: sock.id, id: a.ID, role: a.Role, mode: a.Mode, rxQueues: rxq, txQueues: txq,
			ringSize: ringSize, bufferSize: bufferSize, secret: a.Secret, noZeroCopy: a.NoZeroCopy}}
	if a.Mode == memif.MEMIF_MODE_API_ETHERNET {
		if a.HwAddr == (ethernet_types.MacAddress{}) {
			ifc.mac = st.randomMAC()
		} else {
			ifc.mac = a.HwAddr
		}
	}
	st.ifaces[ifc.sw] = ifc
	sock.refCnt++
	sock.isListener = isMaster
	sock.byID[a.ID] = ifc.sw
	if !isMaster {
		l := st.newSlaveLink(ifc, sock)
		ifc.memif.slave = l
		if st.s.closing {
			close(l.done) // the state is being thrown away: never connects
		} else {
			st.s.slaves[l] = struct{}{}
			st.s.wg.Add(1)
			go l.run()
		}
	}
	return 0, interface_types.InterfaceIndex(ifc.sw)
}

// memifDelete implements memif_delete: not a memif (or gone):
// INVALID_SW_IF_INDEX (-2). The socket file stays on disk; the peer is
// disconnected before the reply.
func (st *state) memifDelete(sw uint32) (int32, []func()) {
	ifc := st.ifaces[sw]
	if ifc == nil || ifc.memif == nil {
		return rv(api.INVALID_SW_IF_INDEX), nil
	}
	m := ifc.memif
	st.removeIface(ifc)
	var after []func()
	if sock := st.sockets[m.socketID]; sock != nil {
		delete(sock.byID, m.id)
		sock.refCnt--
		if sock.refCnt == 0 {
			if sock.ln != nil {
				_ = sock.ln.Close() // the file stays, as with VPP
				sock.ln = nil
			}
			sock.isListener = false
		}
	}
	if c := m.conn; c != nil {
		m.conn = nil
		after = append(after, func() {
			c.kill("interface deleted")
			<-c.done
		})
	}
	if l := m.slave; l != nil {
		after = append(after, func() {
			l.kill("interface deleted")
			<-l.done
		})
	}
	return 0, after
}

func (st *state) sortedIfaces() []*iface {
	out := make([]*iface, 0, len(st.ifaces))
	for _, ifc := range st.ifaces {
		out = append(out, ifc)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].sw < out[j].sw })
	return out
}

// memifDump reports what VPP reports: its negotiated "run" ring and buffer
// sizes, not the configuration. They are never set for a master (ring 1,
// buffer 0); a slave has them from its first hello on.
func (st *state) memifDump() []api.Message {
	var out []api.Message
	for _, ifc := range st.sortedIfaces() {
		m := ifc.memif
		if m == nil {
			continue
		}
		d := &memif.MemifDetails{SwIfIndex: interface_types.InterfaceIndex(ifc.sw), ID: m.id,
			Role: m.role, Mode: m.mode, SocketID: m.socketID, RingSize: 1, BufferSize: 0,
			ZeroCopy: m.role == memif.MEMIF_ROLE_API_SLAVE && !m.noZeroCopy,
			Flags:    ifc.statusFlags(), IfName: ifc.name}
		if m.runSet {
			d.RingSize, d.BufferSize = 1<<m.runLog2, m.runBuf
		}
		if ifc.hasMAC() {
			d.HwAddr = ifc.mac
		}
		out = append(out, d)
	}
	return out
}

func (st *state) memifSocketDump() []api.Message {
	ids := make([]uint32, 0, len(st.sockets))
	for id := range st.sockets {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	var out []api.Message
	for _, id := range ids {
		out = append(out, &memif.MemifSocketFilenameDetails{SocketID: id, SocketFilename: st.sockets[id].filename})
	}
	return out
}

func (ifc *iface) statusFlags() interface_types.IfStatusFlags {
	var f interface_types.IfStatusFlags
	if ifc.adminUp {
		f |= interface_types.IF_STATUS_API_FLAG_ADMIN_UP
	}
	if ifc.linkUp {
		f |= interface_types.IF_STATUS_API_FLAG_LINK_UP
	}
	return f
}
