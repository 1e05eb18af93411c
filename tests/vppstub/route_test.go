package vppstub

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"testing"

	"go.fd.io/govpp/api"
	"go.fd.io/govpp/binapi/fib_types"
	"go.fd.io/govpp/binapi/ip"
	"go.fd.io/govpp/binapi/ip_types"
	"go.fd.io/govpp/core"
)

// path is a next-hop path as vpp-app builds it.
func path(nh string, sw uint32) fib_types.FibPath {
	a := netip.MustParseAddr(nh)
	p := fib_types.FibPath{SwIfIndex: sw, Proto: nhProto(a.Is6())}
	if a.Is4() {
		p.Nh.Address.SetIP4(a.As4())
	} else {
		p.Nh.Address.SetIP6(a.As16())
	}
	return p
}

func routeAdd(t *testing.T, conn *core.Connection, isAdd, multipath bool, prefix string, paths ...fib_types.FibPath) (*ip.IPRouteAddDelReply, error) {
	t.Helper()
	pfx, err := ip_types.ParsePrefix(prefix)
	if err != nil {
		t.Fatal(err)
	}
	return ip.NewServiceClient(conn).IPRouteAddDel(ctx(t), &ip.IPRouteAddDel{IsAdd: isAdd, IsMultipath: multipath,
		Route: ip.IPRoute{Prefix: pfx, NPaths: uint8(len(paths)), Paths: paths}})
}

func dumpRoutes(t *testing.T, conn *core.Connection, v6 bool) map[string][]fib_types.FibPath {
	t.Helper()
	d := drain(t, must[ip.RPCService_IPRouteDumpClient](t, "route dump")(ip.NewServiceClient(conn).IPRouteDump(ctx(t),
		&ip.IPRouteDump{Table: ip.IPTable{IsIP6: v6}})).Recv)
	out := map[string][]fib_types.FibPath{}
	for _, r := range d {
		if int(r.Route.NPaths) != len(r.Route.Paths) {
			t.Errorf("%s: n_paths %d, %d paths", r.Route.Prefix, r.Route.NPaths, len(r.Route.Paths))
		}
		out[r.Route.Prefix.String()] = r.Route.Paths
	}
	return out
}

func pathString(p fib_types.FibPath) string {
	nh := netip.AddrFrom4(p.Nh.Address.GetIP4())
	if p.Proto == fib_types.FIB_API_PATH_NH_PROTO_IP6 {
		nh = netip.AddrFrom16(p.Nh.Address.GetIP6())
	}
	return fmt.Sprintf("sw %d nh %s type %d w %d", int32(p.SwIfIndex), nh, p.Type, p.Weight)
}

func wantPaths(t *testing.T, table map[string][]fib_types.FibPath, prefix string, want ...string) {
	t.Helper()
	var got []string
	for _, p := range table[prefix] {
		got = append(got, pathString(p))
	}
	if !slices.Equal(got, want) {
		t.Errorf("%s: paths %q, want %q", prefix, got, want)
	}
}

// ip_route_add_del replaces, adds and removes paths; ip_route_dump shows the
// whole table 0 like VPP's, special and connected entries included.
func TestRoutes(t *testing.T) {
	s, dir := startStub(t, Options{})
	conn := connect(t, s)
	sw := podSlave(t, conn, filepath.Join(dir, "nobody.sock"), "172.22.0.2/24", "fd00::2/64")

	v4 := dumpRoutes(t, conn, false)
	wantPaths(t, v4, "0.0.0.0/0", "sw -1 nh 0.0.0.0 type 2 w 1")
	wantPaths(t, v4, "224.0.0.0/4", "sw -1 nh 0.0.0.0 type 2 w 1")
	wantPaths(t, v4, "172.22.0.0/24", "sw 1 nh 0.0.0.0 type 0 w 1")
	wantPaths(t, v4, "172.22.0.0/32", "sw -1 nh 0.0.0.0 type 2 w 1")
	wantPaths(t, v4, "172.22.0.2/32", "sw 1 nh 172.22.0.2 type 1 w 1")
	wantPaths(t, v4, "172.22.0.255/32", "sw -1 nh 0.0.0.0 type 2 w 1")
	if len(v4) != 9 {
		t.Errorf("IPv4 table: %d entries, want 9: %v", len(v4), v4)
	}
	v6 := dumpRoutes(t, conn, true)
	wantPaths(t, v6, "::/0", "sw -1 nh :: type 2 w 1")
	wantPaths(t, v6, "fe80::/10", "sw -1 nh :: type 0 w 1")
	wantPaths(t, v6, "fd00::/64", "sw 1 nh :: type 0 w 1")
	wantPaths(t, v6, "fd00::2/128", "sw 1 nh fd00::2 type 1 w 1")
	if len(v6) != 4 {
		t.Errorf("IPv6 table: %d entries, want 4: %v", len(v6), v6)
	}

	// Add, then replace (is_multipath=false).
	r := must[*ip.IPRouteAddDelReply](t, "add")(routeAdd(t, conn, true, false, "10.10.0.0/16", path("172.22.0.1", sw)))
	if r.StatsIndex == ^uint32(0) {
		t.Error("no stats_index")
	}
	r2 := must[*ip.IPRouteAddDelReply](t, "replace")(routeAdd(t, conn, true, false, "10.10.0.0/16", path("172.22.0.254", sw)))
	if r2.StatsIndex != r.StatsIndex {
		t.Errorf("stats_index changed on replace: %d -> %d", r.StatsIndex, r2.StatsIndex)
	}
	if rs := s.Routes(); len(rs) != 1 || rs[0].Prefix.String() != "10.10.0.0/16" || rs[0].NextHop.String() != "172.22.0.254" ||
		rs[0].SwIfIndex != sw || rs[0].Weight != 1 {
		t.Errorf("routes after replace %+v", rs)
	}
	// Multipath add and remove.
	must[*ip.IPRouteAddDelReply](t, "multipath add")(routeAdd(t, conn, true, true, "10.10.0.0/16", path("172.22.0.253", sw)))
	wantPaths(t, dumpRoutes(t, conn, false), "10.10.0.0/16", "sw 1 nh 172.22.0.254 type 0 w 1", "sw 1 nh 172.22.0.253 type 0 w 1")
	must[*ip.IPRouteAddDelReply](t, "multipath del")(routeAdd(t, conn, false, true, "10.10.0.0/16", path("172.22.0.254", sw)))
	wantPaths(t, dumpRoutes(t, conn, false), "10.10.0.0/16", "sw 1 nh 172.22.0.253 type 0 w 1")

	// A default route overrides the drop entry; deleting it restores it.
	must[*ip.IPRouteAddDelReply](t, "default")(routeAdd(t, conn, true, false, "0.0.0.0/0", path("172.22.0.1", sw)))
	wantPaths(t, dumpRoutes(t, conn, false), "0.0.0.0/0", "sw 1 nh 172.22.0.1 type 0 w 1")
	del := must[*ip.IPRouteAddDelReply](t, "delete")(routeAdd(t, conn, false, false, "0.0.0.0/0"))
	if del.StatsIndex != ^uint32(0) {
		t.Errorf("delete reply stats_index %d, want ~0", del.StatsIndex)
	}
	wantPaths(t, dumpRoutes(t, conn, false), "0.0.0.0/0", "sw -1 nh 0.0.0.0 type 2 w 1")
	if _, err := routeAdd(t, conn, false, false, "0.0.0.0/0"); err != nil {
		t.Errorf("deleting a missing route: %v (VPP allows it)", err)
	}
	// Host bits are cleared; IPv6 routes need the IP6 next-hop proto.
	must[*ip.IPRouteAddDelReply](t, "v6")(routeAdd(t, conn, true, false, "2001:db8::1/32", path("fd00::1", sw)))
	wantPaths(t, dumpRoutes(t, conn, true), "2001:db8::/32", "sw 1 nh fd00::1 type 0 w 1")

	// Misuse answers with VPP's retvals.
	_, err := routeAdd(t, conn, true, false, "10.20.0.0/16")
	wantRetval(t, "add without paths", err, noPathsInRoute)
	_, err = routeAdd(t, conn, true, false, "10.20.0.0/16", path("172.22.0.1", 42))
	wantRetval(t, "unknown interface", err, api.NO_MATCHING_INTERFACE)
	pfx, _ := ip_types.ParsePrefix("10.30.0.0/16")
	_, err = ip.NewServiceClient(conn).IPRouteAddDel(ctx(t), &ip.IPRouteAddDel{IsAdd: true,
		Route: ip.IPRoute{TableID: 7, Prefix: pfx, NPaths: 1, Paths: []fib_types.FibPath{path("172.22.0.1", sw)}}})
	wantRetval(t, "table 7", err, api.NO_SUCH_FIB)
	if d := drain(t, must[ip.RPCService_IPRouteDumpClient](t, "dump")(ip.NewServiceClient(conn).IPRouteDump(ctx(t),
		&ip.IPRouteDump{Table: ip.IPTable{TableID: 7}})).Recv); len(d) != 0 {
		t.Errorf("dump of table 7: %d entries", len(d))
	}

	// v2 shares the table.
	v2 := must[*ip.IPRouteAddDelV2Reply](t, "v2 add")(ip.NewServiceClient(conn).IPRouteAddDelV2(ctx(t), &ip.IPRouteAddDelV2{
		IsAdd: true, Route: ip.IPRouteV2{Prefix: pfx, NPaths: 1, Paths: []fib_types.FibPath{path("172.22.0.1", sw)}}}))
	d2 := drain(t, must[ip.RPCService_IPRouteV2DumpClient](t, "v2 dump")(ip.NewServiceClient(conn).IPRouteV2Dump(ctx(t),
		&ip.IPRouteV2Dump{})).Recv)
	found := false
	for _, d := range d2 {
		if d.Route.Prefix.String() == "10.30.0.0/16" && d.Route.StatsIndex == v2.StatsIndex && len(d.Route.Paths) == 1 {
			found = true
		}
	}
	if !found || len(s.Routes()) != 3 {
		t.Errorf("v2 route missing: %+v; routes %+v", d2, s.Routes())
	}

	// Admin down withdraws the connected entries; a restart forgets routes.
	setAdmin(t, conn, sw, false)
	if v4 := dumpRoutes(t, conn, false); v4["172.22.0.0/24"] != nil || v4["10.10.0.0/16"] == nil {
		t.Errorf("after admin down: %v", v4)
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if len(s.Routes()) != 0 {
		t.Error("routes survived a restart")
	}
}
