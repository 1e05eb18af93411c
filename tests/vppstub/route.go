package vppstub

import (
	"net"
	"net/netip"
	"sort"

	"go.fd.io/govpp/api"
	"go.fd.io/govpp/binapi/fib_types"
	"go.fd.io/govpp/binapi/ip"
	"go.fd.io/govpp/binapi/ip_types"
)

// The FIB of table 0 (IPv4 and IPv6), as ip_route_dump shows it: one entry
// per prefix with the paths of its best source. Sources, best first:
//   - special: 0.0.0.0/32, 224.0.0.0/4, 240.0.0.0/4, 255.255.255.255/32 (drop)
//     and fe80::/10 (link-local, no interface), present from start;
//   - interface: for each address of an admin-up interface, the attached
//     prefix (path: the interface, no next hop), the address itself (local
//     path with the address as next hop) and, for IPv4 prefixes up to /30,
//     the network and broadcast addresses (drop);
//   - API: ip_route_add_del(_v2);
//   - adjacency: /32 or /128 entries for learnt neighbours (path: the
//     interface and the neighbour);
//   - default route: 0.0.0.0/0 and ::/0 (drop).
//
// Paths are encoded like VPP's fib_api_path_encode: weight 1 unless set,
// sw_if_index ~0 without an interface, proto IP4/IP6.

type fibSource int

const (
	srcSpecial fibSource = iota
	srcInterface
	srcAPI
	srcAdjacency
	srcDefaultRoute
)

type fibPath struct {
	sw     uint32     // ^0: none
	nh     netip.Addr // invalid: none
	typ    fib_types.FibPathType
	proto  fib_types.FibPathNhProto
	flags  fib_types.FibPathFlags
	weight uint8
	pref   uint8
}

type apiRoute struct {
	prefix netip.Prefix
	paths  []fibPath
}

type fibEntry struct {
	prefix netip.Prefix
	src    fibSource
	paths  []fibPath
}

func dropPath(v6 bool) fibPath {
	return fibPath{sw: ^uint32(0), typ: fib_types.FIB_API_PATH_TYPE_DROP, proto: nhProto(v6), weight: 1}
}

func nhProto(v6 bool) fib_types.FibPathNhProto {
	if v6 {
		return fib_types.FIB_API_PATH_NH_PROTO_IP6
	}
	return fib_types.FIB_API_PATH_NH_PROTO_IP4
}

// specialRoutes exist in every table 0 from start, in VPP's creation order
// (which fixes their stats_index).
var specialRoutes = []fibEntry{
	{netip.MustParsePrefix("0.0.0.0/0"), srcDefaultRoute, []fibPath{dropPath(false)}},
	{netip.MustParsePrefix("0.0.0.0/32"), srcDefaultRoute, []fibPath{dropPath(false)}},
	{netip.MustParsePrefix("240.0.0.0/4"), srcSpecial, []fibPath{dropPath(false)}},
	{netip.MustParsePrefix("224.0.0.0/4"), srcSpecial, []fibPath{dropPath(false)}},
	{netip.MustParsePrefix("255.255.255.255/32"), srcSpecial, []fibPath{dropPath(false)}},
	{netip.MustParsePrefix("::/0"), srcDefaultRoute, []fibPath{dropPath(true)}},
	{netip.MustParsePrefix("fe80::/10"), srcSpecial, []fibPath{{sw: ^uint32(0),
		typ: fib_types.FIB_API_PATH_TYPE_NORMAL, proto: fib_types.FIB_API_PATH_NH_PROTO_IP6, weight: 1}}},
}

// fibIndex is a prefix's stats_index (VPP's FIB entry index); indices are
// allocated on first use and kept.
func (st *state) fibIndex(p netip.Prefix) uint32 {
	if i, ok := st.fibIdx[p]; ok {
		return i
	}
	i := st.nextFib
	st.nextFib++
	st.fibIdx[p] = i
	return i
}

// fibEntries is table 0 of one address family, sorted like VPP's dump (by
// address, then prefix length).
func (st *state) fibEntries(v6 bool) []fibEntry {
	best := map[netip.Prefix]fibEntry{}
	add := func(e fibEntry) {
		if e.prefix.Addr().Is6() != v6 {
			return
		}
		if cur, ok := best[e.prefix]; !ok || e.src < cur.src {
			best[e.prefix] = e
		}
	}
	for _, e := range specialRoutes {
		add(e)
	}
	for _, ifc := range st.sortedIfaces() {
		if !ifc.adminUp {
			continue
		}
		for _, p := range ifc.addrs {
			a, bitsMax := p.Addr(), p.Addr().BitLen()
			attached := fibPath{sw: ifc.sw, typ: fib_types.FIB_API_PATH_TYPE_NORMAL, proto: nhProto(a.Is6()), weight: 1}
			if p.Bits() < bitsMax {
				add(fibEntry{p.Masked(), srcInterface, []fibPath{attached}})
			}
			if a.Is4() && p.Bits() <= 30 {
				add(fibEntry{netip.PrefixFrom(p.Masked().Addr(), 32), srcInterface, []fibPath{dropPath(false)}})
				add(fibEntry{netip.PrefixFrom(broadcast(p), 32), srcInterface, []fibPath{dropPath(false)}})
			}
			local := fibPath{sw: ifc.sw, nh: a, typ: fib_types.FIB_API_PATH_TYPE_LOCAL, proto: nhProto(a.Is6()), weight: 1}
			add(fibEntry{netip.PrefixFrom(a, bitsMax), srcInterface, []fibPath{local}})
		}
		for a := range ifc.nbrs {
			add(fibEntry{netip.PrefixFrom(a, a.BitLen()), srcAdjacency, []fibPath{{sw: ifc.sw, nh: a,
				typ: fib_types.FIB_API_PATH_TYPE_NORMAL, proto: nhProto(a.Is6()), weight: 1}}})
		}
	}
	for _, r := range st.routes {
		add(fibEntry{r.prefix, srcAPI, r.paths})
	}
	out := make([]fibEntry, 0, len(best))
	for _, e := range best {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool {
		if c := out[i].prefix.Addr().Compare(out[j].prefix.Addr()); c != 0 {
			return c < 0
		}
		return out[i].prefix.Bits() < out[j].prefix.Bits()
	})
	return out
}

func broadcast(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// lookup resolves dst in table 0 (longest prefix match, first path): the
// egress interface and the neighbour to send to (dst itself on an attached
// prefix). ok is false for a drop, local or unresolvable entry.
func (st *state) lookup(dst netip.Addr) (egress *iface, nh netip.Addr, ok bool) {
	return st.lookupDepth(dst, 0)
}

func (st *state) lookupDepth(dst netip.Addr, depth int) (*iface, netip.Addr, bool) {
	if depth > 4 {
		return nil, netip.Addr{}, false
	}
	var best *fibEntry
	entries := st.fibEntries(dst.Is6())
	for i := range entries {
		e := &entries[i]
		if e.prefix.Contains(dst) && (best == nil || e.prefix.Bits() > best.prefix.Bits()) {
			best = e
		}
	}
	if best == nil || len(best.paths) == 0 {
		return nil, netip.Addr{}, false
	}
	p := best.paths[0]
	if p.typ != fib_types.FIB_API_PATH_TYPE_NORMAL {
		return nil, netip.Addr{}, false
	}
	hasNH := p.nh.IsValid() && !p.nh.IsUnspecified()
	if p.sw != ^uint32(0) {
		ifc := st.ifaces[p.sw]
		if ifc == nil {
			return nil, netip.Addr{}, false
		}
		if hasNH {
			return ifc, p.nh, true
		}
		return ifc, dst, true
	}
	if !hasNH {
		return nil, netip.Addr{}, false
	}
	// Recursive: the next hop is resolved through the table.
	return st.lookupDepth(p.nh, depth+1)
}

// noPathsInRoute is VPP's NO_PATHS_IN_ROUTE (-52), which govpp names
// PREFIX_MATCHES_NEXT_HOP.
const noPathsInRoute = api.PREFIX_MATCHES_NEXT_HOP

type routeArgs struct {
	isAdd, isMultipath bool
	tableID            uint32
	prefix             ip_types.Prefix
	paths              []fib_types.FibPath
}

// routeAddDel follows ip_route_add_del(_v2) and fib_api_route_add_del:
// is_multipath=false with is_add replaces the API paths of the prefix and
// without is_add deletes the API entry (deleting a missing one succeeds);
// is_multipath=true adds or removes the given paths. Retvals: table other
// than 0: NO_SUCH_FIB (-3); no paths when adding or with is_multipath:
// NO_PATHS_IN_ROUTE (-52); a path's unknown sw_if_index:
// NO_MATCHING_INTERFACE (-54); a recursive path (sw_if_index ~0) in another
// table: NO_SUCH_FIB; an invalid next-hop protocol: -1. Unlike VPP, a
// prefix length beyond the address size is INVALID_VALUE (-7), and MPLS,
// BIER and Ethernet paths or path types other than normal, local, drop and
// ICMP unreachable/prohibit are UNIMPLEMENTED (-9). The reply's stats_index
// is the entry's index when adding, ~0 otherwise. Host bits of the prefix
// are cleared.
func (st *state) routeAddDel(a routeArgs) (int32, uint32) {
	const noStats = ^uint32(0)
	addr, ok := netip.AddrFromSlice(a.prefix.Address.ToIP())
	if !ok || int(a.prefix.Len) > addr.Unmap().BitLen() {
		return rv(api.INVALID_VALUE), noStats
	}
	p := netip.PrefixFrom(addr.Unmap(), int(a.prefix.Len)).Masked()
	if a.tableID != 0 {
		return rv(api.NO_SUCH_FIB), noStats
	}
	paths, r := st.decodePaths(a.paths)
	if r != 0 {
		return r, noStats
	}
	if (a.isAdd || a.isMultipath) && len(paths) == 0 {
		return rv(noPathsInRoute), noStats
	}
	cur := st.routes[p]
	switch {
	case a.isAdd && !a.isMultipath:
		st.routes[p] = &apiRoute{prefix: p, paths: addPaths(nil, paths)}
	case !a.isAdd && !a.isMultipath:
		delete(st.routes, p)
	case a.isAdd:
		if cur == nil {
			cur = &apiRoute{prefix: p}
			st.routes[p] = cur
		}
		cur.paths = addPaths(cur.paths, paths)
	case cur != nil:
		var left []fibPath
		for _, x := range cur.paths {
			if !containsPath(paths, x) {
				left = append(left, x)
			}
		}
		cur.paths = left
		if len(left) == 0 {
			delete(st.routes, p)
		}
	}
	if a.isAdd {
		return 0, st.fibIndex(p)
	}
	return 0, noStats
}

func addPaths(to, paths []fibPath) []fibPath {
	for _, x := range paths {
		if !containsPath(to, x) {
			to = append(to, x)
		}
	}
	return to
}

func containsPath(list []fibPath, x fibPath) bool {
	for _, y := range list {
		if y == x {
			return true
		}
	}
	return false
}

// decodePaths follows fib_api_path_decode.
func (st *state) decodePaths(in []fib_types.FibPath) ([]fibPath, int32) {
	var out []fibPath
	for _, a := range in {
		p := fibPath{sw: ^uint32(0), typ: a.Type, proto: a.Proto, weight: a.Weight, pref: a.Preference,
			flags: a.Flags & (fib_types.FIB_API_PATH_FLAG_RESOLVE_VIA_ATTACHED | fib_types.FIB_API_PATH_FLAG_RESOLVE_VIA_HOST)}
		if p.weight == 0 {
			p.weight = 1
		}
		switch a.Proto {
		case fib_types.FIB_API_PATH_NH_PROTO_IP4, fib_types.FIB_API_PATH_NH_PROTO_IP6:
		case fib_types.FIB_API_PATH_NH_PROTO_MPLS, fib_types.FIB_API_PATH_NH_PROTO_BIER,
			fib_types.FIB_API_PATH_NH_PROTO_ETHERNET:
			return nil, rv(api.UNIMPLEMENTED)
		default:
			return nil, rv(api.UNSPECIFIED)
		}
		switch a.Type {
		case fib_types.FIB_API_PATH_TYPE_DROP, fib_types.FIB_API_PATH_TYPE_ICMP_UNREACH,
			fib_types.FIB_API_PATH_TYPE_ICMP_PROHIBIT:
		case fib_types.FIB_API_PATH_TYPE_LOCAL:
			p.sw = a.SwIfIndex
		case fib_types.FIB_API_PATH_TYPE_NORMAL:
			if a.Proto == fib_types.FIB_API_PATH_NH_PROTO_IP6 {
				p.nh = netip.AddrFrom16(a.Nh.Address.GetIP6())
			} else {
				p.nh = netip.AddrFrom4(a.Nh.Address.GetIP4())
			}
			p.sw = a.SwIfIndex
			if p.sw == ^uint32(0) {
				if a.TableID != 0 {
					return nil, rv(api.NO_SUCH_FIB)
				}
			} else if st.ifaces[p.sw] == nil {
				return nil, rv(api.NO_MATCHING_INTERFACE)
			}
		default:
			return nil, rv(api.UNIMPLEMENTED)
		}
		out = append(out, p)
	}
	return out, 0
}

func (p fibPath) encode() fib_types.FibPath {
	out := fib_types.FibPath{SwIfIndex: p.sw, Weight: p.weight, Preference: p.pref, Type: p.typ,
		Flags: p.flags, Proto: p.proto}
	if p.nh.IsValid() {
		if p.proto == fib_types.FIB_API_PATH_NH_PROTO_IP6 {
			out.Nh.Address.SetIP6(p.nh.As16())
		} else if p.nh.Is4() {
			out.Nh.Address.SetIP4(p.nh.As4())
		}
	}
	return out
}

func apiPrefix(p netip.Prefix) ip_types.Prefix {
	return ip_types.Prefix{Address: ip_types.NewAddress(net.IP(p.Addr().AsSlice())), Len: uint8(p.Bits())}
}

// routeDump follows ip_route_dump / ip_route_v2_dump: a table other than 0
// returns nothing. The v2 details carry src 0 (the stand-in does not number
// VPP's FIB sources) and the v2 src filter is ignored.
func (st *state) routeDump(t ip.IPTable, v2 bool) []api.Message {
	if t.TableID != 0 {
		return nil
	}
	var out []api.Message
	for _, e := range st.fibEntries(t.IsIP6) {
		var paths []fib_types.FibPath
		for _, p := range e.paths {
			paths = append(paths, p.encode())
		}
		idx, pfx, n := st.fibIndex(e.prefix), apiPrefix(e.prefix), uint8(len(paths))
		if v2 {
			out = append(out, &ip.IPRouteV2Details{Route: ip.IPRouteV2{StatsIndex: idx, Prefix: pfx,
				NPaths: n, Paths: paths}})
		} else {
			out = append(out, &ip.IPRouteDetails{Route: ip.IPRoute{StatsIndex: idx, Prefix: pfx,
				NPaths: n, Paths: paths}})
		}
	}
	return out
}

// Route is one path of a route added through the API (table 0).
type Route struct {
	Prefix    netip.Prefix
	NextHop   netip.Addr // the zero Addr when the path has none
	SwIfIndex uint32     // ^uint32(0) for a recursive (or drop) path
	Type      fib_types.FibPathType
	Weight    uint8
	// Preference is the path's preference (0 is best).
	Preference uint8
}

// Routes returns the routes added through ip_route_add_del(_v2), one
// element per path, ordered by prefix (connected, special and neighbour
// entries are not included: see ip_route_dump for the whole table).
func (s *Server) Routes() []Route {
	s.mu.Lock()
	defer s.mu.Unlock()
	var rs []*apiRoute
	for _, r := range s.st.routes {
		rs = append(rs, r)
	}
	sort.Slice(rs, func(i, j int) bool {
		a, b := rs[i].prefix, rs[j].prefix
		if a.Addr().Is4() != b.Addr().Is4() {
			return a.Addr().Is4()
		}
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c < 0
		}
		return a.Bits() < b.Bits()
	})
	var out []Route
	for _, r := range rs {
		for _, p := range r.paths {
			x := Route{Prefix: r.prefix, SwIfIndex: p.sw, Type: p.typ, Weight: p.weight, Preference: p.pref}
			if p.nh.IsValid() && !p.nh.IsUnspecified() {
				x.NextHop = p.nh
			}
			out = append(out, x)
		}
	}
	return out
}
