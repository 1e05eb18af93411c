package vppstub

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"

	"go.fd.io/govpp/api"
	"go.fd.io/govpp/binapi/ethernet_types"
	interfaces "go.fd.io/govpp/binapi/interface"
	"go.fd.io/govpp/binapi/interface_types"
	"go.fd.io/govpp/binapi/ip"
	"go.fd.io/govpp/binapi/ip_types"
	"go.fd.io/govpp/binapi/l2"
	"go.fd.io/govpp/binapi/vhost_user"
)

const tagMax = 63 // tags are string[64] with a terminating NUL

// swInterfaceDump: a given sw_if_index returns that interface only (nothing
// if unknown; the name filter is then ignored); ~0 returns all, filtered by
// a case-insensitive substring when name_filter_valid.
func (st *state) swInterfaceDump(m *interfaces.SwInterfaceDump) []api.Message {
	if sw := uint32(m.SwIfIndex); sw != ^uint32(0) {
		if ifc := st.ifaces[sw]; ifc != nil {
			return []api.Message{ifc.details()}
		}
		return nil
	}
	filter := ""
	if m.NameFilterValid {
		filter = strings.ToLower(m.NameFilter)
	}
	var out []api.Message
	for _, ifc := range st.sortedIfaces() {
		if filter != "" && !strings.Contains(strings.ToLower(ifc.name), filter) {
			continue
		}
		out = append(out, ifc.details())
	}
	return out
}

func (ifc *iface) details() *interfaces.SwInterfaceDetails {
	d := &interfaces.SwInterfaceDetails{SwIfIndex: interface_types.InterfaceIndex(ifc.sw),
		SupSwIfIndex: ifc.sw, Flags: ifc.statusFlags(), Type: interface_types.IF_API_TYPE_HARDWARE,
		Mtu: []uint32{0, 0, 0, 0}, InterfaceName: ifc.name, InterfaceDevType: ifc.devType, Tag: ifc.tag}
	if ifc.devType != "local" {
		d.LinkMtu = 9000
		d.Mtu = []uint32{9000, 0, 0, 0}
	}
	if ifc.hasMAC() {
		d.L2Address = ifc.mac
	}
	return d
}

// setFlags: unknown index INVALID_SW_IF_INDEX (-2); only admin up is kept.
func (st *state) setFlags(sw uint32, flags interface_types.IfStatusFlags) int32 {
	ifc := st.ifaces[sw]
	if ifc == nil {
		return rv(api.INVALID_SW_IF_INDEX)
	}
	ifc.adminUp = flags&interface_types.IF_STATUS_API_FLAG_ADMIN_UP != 0
	if m := ifc.memif; m != nil && m.slave != nil {
		m.slave.kick()
	}
	return 0
}

// tagAddDel: unknown index -2; adding an empty tag INVALID_VALUE (-7).
func (st *state) tagAddDel(isAdd bool, sw uint32, tag string) int32 {
	ifc := st.ifaces[sw]
	if ifc == nil {
		return rv(api.INVALID_SW_IF_INDEX)
	}
	if !isAdd {
		ifc.tag = ""
		return 0
	}
	if tag == "" {
		return rv(api.INVALID_VALUE)
	}
	ifc.tag = truncate(tag, tagMax)
	return 0
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// addDelAddress follows ip4/ip6_add_del_interface_address: unknown index
// -2; a bad prefix length INVALID_VALUE (-7); adding an address that overlaps
// one on any interface (the same address included) ADDRESS_IN_USE (-105),
// except another address of the same subnet on the same interface; deleting
// an absent one ADDRESS_NOT_FOUND_FOR_INTERFACE (-60); del_all clears all.
func (st *state) addDelAddress(m *interfaces.SwInterfaceAddDelAddress) int32 {
	ifc := st.ifaces[uint32(m.SwIfIndex)]
	if ifc == nil {
		return rv(api.INVALID_SW_IF_INDEX)
	}
	if m.DelAll {
		ifc.addrs = nil
		return 0
	}
	p, ok := toPrefix(m.Prefix)
	if !ok {
		return rv(api.INVALID_VALUE)
	}
	if !m.IsAdd {
		i := slices.Index(ifc.addrs, p)
		if i < 0 {
			return rv(api.ADDRESS_NOT_FOUND_FOR_INTERFACE)
		}
		ifc.addrs = slices.Delete(ifc.addrs, i, i+1)
		return 0
	}
	for _, other := range st.ifaces {
		for _, q := range other.addrs {
			if q.Addr().Is4() != p.Addr().Is4() || !(q.Masked().Contains(p.Addr()) || p.Masked().Contains(q.Addr())) {
				continue
			}
			if other == ifc && q.Bits() == p.Bits() && q.Addr() != p.Addr() {
				continue
			}
			return rv(api.ADDRESS_IN_USE)
		}
	}
	ifc.addrs = append(ifc.addrs, p)
	return 0
}

func toPrefix(a ip_types.AddressWithPrefix) (netip.Prefix, bool) {
	addr, ok := netip.AddrFromSlice(a.Address.ToIP())
	if !ok {
		return netip.Prefix{}, false
	}
	p := netip.PrefixFrom(addr.Unmap(), int(a.Len))
	return p, p.IsValid()
}

// setMAC: unknown index -2; an interface without a MAC INVALID_VALUE (-7).
func (st *state) setMAC(sw uint32, mac ethernet_types.MacAddress) int32 {
	ifc := st.ifaces[sw]
	if ifc == nil {
		return rv(api.INVALID_SW_IF_INDEX)
	}
	if !ifc.hasMAC() {
		return rv(api.INVALID_VALUE)
	}
	ifc.mac = mac
	return 0
}

func (st *state) ipAddressDump(sw uint32, v6 bool) []api.Message {
	ifc := st.ifaces[sw]
	if ifc == nil {
		return nil
	}
	var out []api.Message
	for _, p := range ifc.addrs {
		if p.Addr().Is6() != v6 {
			continue
		}
		out = append(out, &ip.IPAddressDetails{SwIfIndex: interface_types.InterfaceIndex(sw),
			Prefix: ip_types.AddressWithPrefix{Address: ip_types.NewAddress(net.IP(p.Addr().AsSlice())),
				Len: uint8(p.Bits())}})
	}
	return out
}

type bdArgs struct {
	id                                               uint32
	isAdd, allocate                                  bool
	flood, uuFlood, forward, learn, arpTerm, arpUfwd bool
	macAge                                           uint8
	tag                                              string
}

// bdAddDel follows bd_add_del. Adding: ~0 with v2 allocates a pseudo-random
// id below 2^24 (none free: EAGAIN -165); an existing id, bd 0 included
// (it always exists): BD_ALREADY_EXISTS (-119); above 2^24-1:
// BD_ID_EXCEED_MAX (-122). Deleting: bd 0 BD_NOT_MODIFIABLE (-121); unknown
// NO_SUCH_ENTRY (-6); with members BD_IN_USE (-120).
func (st *state) bdAddDel(a bdArgs) (int32, uint32) {
	id := a.id
	if a.isAdd && a.allocate && id == ^uint32(0) {
		id = st.unusedBDID()
		if id == ^uint32(0) {
			return rv(api.EAGAIN), id
		}
	}
	bd := st.bds[id]
	if !a.isAdd {
		switch {
		case id == 0:
			return rv(api.BD_NOT_MODIFIABLE), id
		case bd == nil:
			return rv(api.NO_SUCH_ENTRY), id
		case len(bd.members) > 0:
			return rv(api.BD_IN_USE), id
		}
		delete(st.bds, id)
		return 0, id
	}
	switch {
	case id == 0 || bd != nil:
		return rv(api.BD_ALREADY_EXISTS), id
	case id > l2BDIDMax:
		return rv(api.BD_ID_EXCEED_MAX), id
	}
	st.bds[id] = &bridgeDomain{id: id, flood: a.flood, uuFlood: a.uuFlood, forward: a.forward, learn: a.learn,
		arpTerm: a.arpTerm, arpUfwd: a.arpUfwd, macAge: a.macAge, tag: truncate(a.tag, tagMax),
		fib: map[[6]byte]uint32{}}
	return 0, id
}

// unusedBDID is VPP's bd_get_unused_id: random ids below L2_BD_ID_MAX.
func (st *state) unusedBDID() uint32 {
	for range 1 << 16 {
		id := lcg(&st.bdSeed) % l2BDIDMax
		if _, used := st.bds[id]; id != 0 && !used {
			return id
		}
	}
	return ^uint32(0)
}

// bdDump: bd_id 0 returns nothing; ~0 all bridge domains; sw_if_index other
// than ~0 (mind that 0 is local0) only the domain of that interface.
func (st *state) bdDump(id, sw uint32, ctx uint32) []api.Message {
	if id == 0 {
		return nil
	}
	var out []api.Message
	for _, b := range st.bridgeDomainsSorted() {
		if id != ^uint32(0) && b.id != id {
			continue
		}
		if sw != ^uint32(0) && !slices.Contains(b.members, sw) {
			continue
		}
		d := &l2.BridgeDomainDetails{BdID: b.id, Flood: b.flood, UuFlood: b.uuFlood, Forward: b.forward,
			Learn: b.learn, ArpTerm: b.arpTerm, ArpUfwd: b.arpUfwd, MacAge: b.macAge, BdTag: b.tag,
			BviSwIfIndex: ^interface_types.InterfaceIndex(0), UuFwdSwIfIndex: ^interface_types.InterfaceIndex(0),
			NSwIfs: uint32(len(b.members))}
		for _, m := range b.members {
			d.SwIfDetails = append(d.SwIfDetails, l2.BridgeDomainSwIf{Context: ctx,
				SwIfIndex: interface_types.InterfaceIndex(m), Shg: st.ifaces[m].shg})
		}
		out = append(out, d)
	}
	return out
}

func (st *state) bridgeDomainsSorted() []*bridgeDomain {
	out := make([]*bridgeDomain, 0, len(st.bds))
	for _, b := range st.bds {
		out = append(out, b)
	}
	slices.SortFunc(out, func(a, b *bridgeDomain) int { return int(int64(a.id) - int64(b.id)) })
	return out
}

// setL2Bridge follows sw_interface_set_l2_bridge: unknown index -2; port
// type other than normal/bvi/uu-fwd INVALID_VALUE (-7); bd id above 2^24-1
// BD_ID_EXCEED_MAX (-122); an interface without ethernet (local0, IP-mode
// memif) NON_ETHERNET (-151). Like VPP, enabling creates a missing bridge
// domain with the default flags (flood, uu-flood, forward, learn). Unlike
// VPP, bd 0 is refused with BD_NOT_MODIFIABLE (-121). Disabling an
// interface that is in no bridge domain succeeds.
func (st *state) setL2Bridge(m *l2.SwInterfaceSetL2Bridge) int32 {
	ifc := st.ifaces[uint32(m.RxSwIfIndex)]
	if ifc == nil {
		return rv(api.INVALID_SW_IF_INDEX)
	}
	if m.PortType > l2.L2_API_PORT_TYPE_UU_FWD {
		return rv(api.INVALID_VALUE)
	}
	if !m.Enable {
		st.leaveBD(ifc)
		return 0
	}
	switch {
	case m.BdID > l2BDIDMax:
		return rv(api.BD_ID_EXCEED_MAX)
	case m.BdID == 0:
		return rv(api.BD_NOT_MODIFIABLE)
	case !ifc.hasMAC():
		return rv(api.NON_ETHERNET)
	}
	bd := st.bds[m.BdID]
	if bd == nil {
		bd = &bridgeDomain{id: m.BdID, flood: true, uuFlood: true, forward: true, learn: true,
			fib: map[[6]byte]uint32{}}
		st.bds[m.BdID] = bd
	}
	st.leaveBD(ifc)
	ifc.inBD, ifc.bdID, ifc.shg = true, m.BdID, m.Shg
	bd.members = append(bd.members, ifc.sw)
	return 0
}

type vhostArgs struct {
	server    bool
	socket    string
	renumber  bool
	instance  uint32
	customMAC bool
	mac       ethernet_types.MacAddress
	tag       string
}

// vhostCreate follows vhost_user_create_if: empty filename INVALID_ARGUMENT
// (-73); a filename another vhost-user interface uses IF_ALREADY_EXISTS
// (-79); in server mode an existing file is unlinked, then bind failure is
// SYSCALL_ERROR_2 (-12) and listen failure SYSCALL_ERROR_3 (-13).
func (st *state) vhostCreate(a vhostArgs) (int32, interface_types.InterfaceIndex) {
	if a.socket == "" {
		return rv(api.INVALID_ARGUMENT), 0
	}
	for _, ifc := range st.ifaces {
		if ifc.vhost != nil && ifc.vhost.socket == a.socket {
			return rv(api.IF_ALREADY_EXISTS), 0
		}
	}
	v := &vhostIf{socket: a.socket, server: a.server}
	if a.server {
		_ = os.Remove(a.socket)
		ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: a.socket, Net: "unix"})
		if err != nil {
			st.s.logf("vhost-user server %s: %v", a.socket, err)
			return rv(api.SYSCALL_ERROR_2), 0
		}
		ln.SetUnlinkOnClose(false) // deleting the interface removes it, a crash does not
		v.ln = ln
	}
	if n := len(st.vhostFree); n > 0 {
		v.instance = st.vhostFree[n-1]
		st.vhostFree = st.vhostFree[:n-1]
	} else {
		v.instance = st.vhostNext
		st.vhostNext++
	}
	shown := v.instance
	if a.renumber {
		shown = a.instance
	}
	ifc := &iface{sw: st.allocSw(), name: fmt.Sprintf("VirtualEthernet0/0/%d", shown), devType: "vhost-user",
		vhost: v, tag: truncate(a.tag, tagMax)}
	if a.customMAC {
		ifc.mac = a.mac
	} else {
		ifc.mac = st.randomMAC()
	}
	st.ifaces[ifc.sw] = ifc
	return 0, interface_types.InterfaceIndex(ifc.sw)
}

// vhostDelete: not a vhost-user interface (or gone) -2; a server's socket
// file is removed.
func (st *state) vhostDelete(sw uint32) int32 {
	ifc := st.ifaces[sw]
	if ifc == nil || ifc.vhost == nil {
		return rv(api.INVALID_SW_IF_INDEX)
	}
	v := ifc.vhost
	if v.ln != nil {
		_ = v.ln.Close()
		v.ln = nil
	}
	if v.server {
		_ = os.Remove(v.socket)
	}
	st.vhostFree = append(st.vhostFree, v.instance)
	st.removeIface(ifc)
	return 0
}

func (st *state) vhostDump(sw uint32) []api.Message {
	var out []api.Message
	for _, ifc := range st.sortedIfaces() {
		v := ifc.vhost
		if v == nil || (sw != ^uint32(0) && sw != ifc.sw) {
			continue
		}
		out = append(out, &vhost_user.SwInterfaceVhostUserDetails{SwIfIndex: interface_types.InterfaceIndex(ifc.sw),
			InterfaceName: ifc.name, IsServer: v.server, SockFilename: v.socket})
	}
	return out
}
