// Package podvpp configures a pod's own VPP for the attachments the
// userspace CNI plugin published: the pod side of each memif (normally the
// slave) on the published socket, with the IPAM addresses and routes, up.
// It is what vpp-app runs, and it is idempotent: run again, it finds what
// it made by tag and only adds what is missing.
package podvpp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"go.fd.io/govpp/adapter"
	"go.fd.io/govpp/api"
	"go.fd.io/govpp/binapi/fib_types"
	interfaces "go.fd.io/govpp/binapi/interface"
	"go.fd.io/govpp/binapi/interface_types"
	"go.fd.io/govpp/binapi/ip"
	"go.fd.io/govpp/binapi/ip_types"
	vppmemif "go.fd.io/govpp/binapi/memif"

	"github.com/userspace-cni/userspace/pkg/configdata"
	"github.com/userspace-cni/userspace/pkg/memif"
	"github.com/userspace-cni/userspace/pkg/netconf"
	"github.com/userspace-cni/userspace/pkg/vppapi"
)

// clientName is how vpp-app appears in VPP's "show api clients".
const clientName = "vpp-app"

// Messages are the VPP API messages Apply uses, checked at connect time.
func Messages() []api.Message {
	return append(memif.Messages(),
		(*interfaces.SwInterfaceDump)(nil), (*interfaces.SwInterfaceDetails)(nil),
		(*interfaces.SwInterfaceTagAddDel)(nil), (*interfaces.SwInterfaceTagAddDelReply)(nil),
		(*interfaces.SwInterfaceSetFlags)(nil), (*interfaces.SwInterfaceSetFlagsReply)(nil),
		(*interfaces.SwInterfaceAddDelAddress)(nil), (*interfaces.SwInterfaceAddDelAddressReply)(nil),
		(*ip.IPAddressDump)(nil), (*ip.IPAddressDetails)(nil),
		(*ip.IPRouteAddDel)(nil), (*ip.IPRouteAddDelReply)(nil),
	)
}

// Tag marks the interface vpp-app made for an attachment, so a second run
// finds it instead of making another.
func Tag(containerID, ifName string) string {
	return "vpp-app:" + configdata.ShortID(containerID) + ":" + ifName
}

// Client is a connection to the pod's VPP.
type Client struct {
	socket string
	ch     *vppapi.Conn
}

// Connect waits (within ctx) for the API socket to appear, since the pod
// starts VPP and vpp-app together, then connects and checks that VPP speaks
// the messages Apply uses. vppAPI replaces the socket client in tests.
func Connect(ctx context.Context, socket string, vppAPI adapter.VppAPI) (*Client, error) {
	if socket == "" {
		socket = configdata.DefaultVPPAPISocket
	}
	if vppAPI == nil {
		if err := waitForSocket(ctx, socket); err != nil {
			return nil, err
		}
	}
	ch, err := vppapi.Dial(ctx, socket, clientName, vppAPI)
	if err != nil {
		return nil, err
	}
	c := &Client{socket: socket, ch: ch}
	if err := vppapi.CheckCompatible(ch, socket, "vpp-app", Messages()); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func waitForSocket(ctx context.Context, socket string) error {
	for {
		_, err := os.Stat(socket)
		if err == nil {
			return nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("VPP API socket: %w", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("VPP API socket %s did not appear: is VPP running with socksvr { socket-name %s }? (%w)", socket, socket, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Close releases the connection.
func (c *Client) Close() { c.ch.Disconnect() }

// Applied is what Apply configured for one attachment.
type Applied struct {
	IfName    string
	VPPName   string
	SwIfIndex uint32
	// Created is false when a previous run's interface was found and kept.
	Created    bool
	SocketPath string
	Role, Mode string
	Addresses  []netip.Prefix
	Routes     []Route
}

// Route is a route Apply installed.
type Route struct {
	Dst netip.Prefix
	// Via is the next hop; invalid for a route through the interface alone.
	Via netip.Addr
}

func (r Route) String() string {
	if r.Via.IsValid() {
		return r.Dst.String() + " via " + r.Via.String()
	}
	return r.Dst.String()
}

// String is one line for the log of a pod.
func (a *Applied) String() string {
	verb := "created"
	if !a.Created {
		verb = "kept"
	}
	var addrs, routes []string
	for _, p := range a.Addresses {
		addrs = append(addrs, p.String())
	}
	for _, r := range a.Routes {
		routes = append(routes, r.String())
	}
	s := fmt.Sprintf("%s: %s %s (sw_if_index %d), memif %s/%s on %s, up", a.IfName, verb, a.VPPName, a.SwIfIndex, a.Role, a.Mode, a.SocketPath)
	if len(addrs) > 0 {
		s += ", addresses " + strings.Join(addrs, " ")
	}
	if len(routes) > 0 {
		s += ", routes " + strings.Join(routes, "; ")
	}
	return s
}

// plan is what one attachment asks of the pod's VPP.
type plan struct {
	tag    string
	spec   memif.Spec
	addrs  []netip.Prefix
	routes []Route
}

func planFor(a *configdata.Attachment) (*plan, error) {
	if a.Config.IfType != netconf.IfTypeMemif {
		return nil, fmt.Errorf("interface %s: config.iftype %q: vpp-app sets up memif interfaces; use a DPDK app (dpdk-args) for vhost-user", a.IfName, a.Config.IfType)
	}
	spec := memif.SpecFrom(a.Config.Memif, a.SocketPath)
	if spec.Role == "" {
		spec.Role = netconf.MemifSlave
	}
	if spec.MAC == "" {
		spec.MAC = a.ResultMAC()
	}
	// Validate role, mode, secret and MAC before touching VPP.
	if _, err := memif.CreateRequest(spec, 0); err != nil {
		return nil, fmt.Errorf("interface %s: %w", a.IfName, err)
	}
	p := &plan{tag: Tag(a.ContainerID, a.IfName), spec: spec}
	if a.IPResult == nil {
		return p, nil
	}
	gw := map[bool]netip.Addr{}
	for _, ipc := range a.IPResult.IPs {
		if ipc == nil || !forInterface(a, ipc.Interface) {
			continue
		}
		pfx, ok := prefixOf(ipc.Address)
		if !ok {
			return nil, fmt.Errorf("interface %s: ipResult address %q is not an IP prefix", a.IfName, ipc.Address.String())
		}
		p.addrs = append(p.addrs, pfx)
		if g, ok := netip.AddrFromSlice(ipc.Gateway); ok && !gw[pfx.Addr().Is4()].IsValid() {
			gw[pfx.Addr().Is4()] = g.Unmap()
		}
	}
	for _, r := range a.IPResult.Routes {
		if r == nil {
			continue
		}
		dst, ok := prefixOf(r.Dst)
		if !ok {
			return nil, fmt.Errorf("interface %s: ipResult route %q is not an IP prefix", a.IfName, r.Dst.String())
		}
		via, _ := netip.AddrFromSlice(r.GW)
		via = via.Unmap()
		if !via.IsValid() {
			// CNI: a route without a gateway uses the interface's.
			via = gw[dst.Addr().Is4()]
		}
		if via.IsValid() && via.Is4() != dst.Addr().Is4() {
			return nil, fmt.Errorf("interface %s: ipResult route %s via %s mixes address families", a.IfName, dst, via)
		}
		p.routes = append(p.routes, Route{Dst: dst, Via: via})
	}
	return p, nil
}

// forInterface reports whether an IPConfig belongs to the attachment's
// interface: the plugin points them at its only interface, index 0.
func forInterface(a *configdata.Attachment, idx *int) bool {
	if idx == nil {
		return true
	}
	ifs := a.IPResult.Interfaces
	return *idx >= 0 && *idx < len(ifs) && ifs[*idx] != nil && (ifs[*idx].Name == a.IfName || ifs[*idx].Name == "")
}

func prefixOf(n net.IPNet) (netip.Prefix, bool) {
	addr, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	addr = addr.Unmap()
	ones, bits := n.Mask.Size()
	if bits != addr.BitLen() {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(addr, ones), true
}

// state is what the pod's VPP has, read in one round trip.
type state struct {
	tags    map[string]interfaces.SwInterfaceDetails
	tagged  map[interface_types.InterfaceIndex]bool
	memifs  map[interface_types.InterfaceIndex]memif.Interface
	sockets map[uint32]string
}

func (c *Client) read() (*state, error) {
	ifCtx := c.ch.SendMultiRequest(&interfaces.SwInterfaceDump{SwIfIndex: ^interface_types.InterfaceIndex(0)})
	memCtx := c.ch.SendMultiRequest(&vppmemif.MemifDump{})
	sockCtx := c.ch.SendMultiRequest(&vppmemif.MemifSocketFilenameDump{})
	st := &state{tags: map[string]interfaces.SwInterfaceDetails{}, tagged: map[interface_types.InterfaceIndex]bool{},
		memifs: map[interface_types.InterfaceIndex]memif.Interface{}}
	errIf := vppapi.ReadDump(ifCtx, "sw_interface_dump", func(d *interfaces.SwInterfaceDetails) {
		if d.Tag != "" {
			st.tags[d.Tag] = *d
			st.tagged[d.SwIfIndex] = true
		}
	})
	mems, errMem := memif.ReadInterfaces(memCtx)
	socks, errSock := memif.ReadSockets(sockCtx)
	if err := errors.Join(errIf, errMem, errSock); err != nil {
		return nil, fmt.Errorf("reading the pod's VPP: %w", err)
	}
	for _, m := range mems {
		m.SocketPath = socks[m.SocketID]
		st.memifs[m.SwIfIndex] = m
	}
	st.sockets = socks
	return st, nil
}

// Apply sets up one attachment in the pod's VPP: the memif on the published
// socket, its tag, the addresses and routes from the IPAM result, and
// admin up. What a previous run made is kept when it still matches.
func (c *Client) Apply(a *configdata.Attachment) (*Applied, error) {
	p, err := planFor(a)
	if err != nil {
		return nil, err
	}
	st, err := c.read()
	if err != nil {
		return nil, err
	}
	out := &Applied{IfName: a.IfName, SocketPath: p.spec.SocketPath, Role: p.spec.Role, Mode: p.spec.Mode, Addresses: p.addrs, Routes: p.routes}
	if out.Mode == "" {
		out.Mode = netconf.MemifEthernet
	}

	idx, tagged, found := c.existing(st, p)
	if !found {
		if idx, err = c.create(st, p); err != nil {
			return nil, err
		}
		out.Created = true
	}
	out.SwIfIndex = uint32(idx)

	have := map[netip.Prefix]bool{}
	if !out.Created {
		if have, err = c.addresses(idx); err != nil {
			return nil, err
		}
	}
	type step struct {
		what  string
		ctx   api.RequestCtx
		reply api.Message
	}
	var steps []step
	if !tagged {
		steps = append(steps, step{"tagging " + p.tag, c.ch.SendRequest(&interfaces.SwInterfaceTagAddDel{IsAdd: true, SwIfIndex: idx, Tag: p.tag}),
			&interfaces.SwInterfaceTagAddDelReply{}})
	}
	for _, pfx := range p.addrs {
		if have[pfx] {
			continue
		}
		steps = append(steps, step{"setting address " + pfx.String(), c.ch.SendRequest(&interfaces.SwInterfaceAddDelAddress{
			SwIfIndex: idx, IsAdd: true, Prefix: ip_types.NewAddressWithPrefix(toIPNet(pfx)),
		}), &interfaces.SwInterfaceAddDelAddressReply{}})
	}
	for _, r := range p.routes {
		// is_multipath=false replaces the route's paths: running again
		// leaves the same route.
		steps = append(steps, step{"adding route " + r.String(), c.ch.SendRequest(&ip.IPRouteAddDel{
			IsAdd: true, Route: routeOf(r, idx),
		}), &ip.IPRouteAddDelReply{}})
	}
	steps = append(steps, step{"setting the interface up", c.ch.SendRequest(&interfaces.SwInterfaceSetFlags{
		SwIfIndex: idx, Flags: interface_types.IF_STATUS_API_FLAG_ADMIN_UP,
	}), &interfaces.SwInterfaceSetFlagsReply{}})
	// The interface's name, for the report, in the same round trip.
	nameCtx := c.ch.SendMultiRequest(&interfaces.SwInterfaceDump{SwIfIndex: idx})
	var errs []error
	for _, s := range steps {
		if err := s.ctx.ReceiveReply(s.reply); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.what, err))
		}
	}
	errs = append(errs, vppapi.ReadDump(nameCtx, "sw_interface_dump", func(d *interfaces.SwInterfaceDetails) { out.VPPName = d.InterfaceName }))
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("interface %s (sw_if_index %d): %w", a.IfName, idx, err)
	}
	return out, nil
}

// existing finds what a previous run made: the tagged interface, or an
// untagged memif on the same socket (a run that stopped before tagging).
// A tagged interface that no longer matches the plan (another socket, role
// or mode) is deleted so it can be made again.
func (c *Client) existing(st *state, p *plan) (interface_types.InterfaceIndex, bool, bool) {
	matches := func(m memif.Interface) bool {
		return m.SocketPath == p.spec.SocketPath && m.Role == p.spec.Role && (m.Mode == p.spec.Mode || p.spec.Mode == "" && m.Mode == netconf.MemifEthernet)
	}
	if d, ok := st.tags[p.tag]; ok {
		if m, ok := st.memifs[d.SwIfIndex]; ok && matches(m) {
			return d.SwIfIndex, true, true
		}
		c.remove(st, d.SwIfIndex)
	}
	for idx, m := range st.memifs {
		if matches(m) && m.ID == p.spec.ID && !st.tagged[idx] {
			return idx, false, true
		}
	}
	return 0, false, false
}

// remove deletes a stale interface; failing that, create reports the
// conflict VPP finds.
func (c *Client) remove(st *state, idx interface_types.InterfaceIndex) {
	_ = c.ch.SendRequest(memif.DeleteRequest(idx)).ReceiveReply(&vppmemif.MemifDeleteReply{})
	delete(st.memifs, idx)
}

// create registers the socket (unless VPP has it already) and creates the
// memif on it.
func (c *Client) create(st *state, p *plan) (interface_types.InterfaceIndex, error) {
	socketID, registered := uint32(0), false
	for id, path := range st.sockets {
		if path == p.spec.SocketPath {
			socketID, registered = id, true
			break
		}
	}
	if !registered {
		reply := &vppmemif.MemifSocketFilenameAddDelV2Reply{}
		if err := c.ch.SendRequest(memif.RegisterSocketRequest(p.spec.SocketPath)).ReceiveReply(reply); err != nil {
			return 0, fmt.Errorf("registering memif socket %s: %w", p.spec.SocketPath, err)
		}
		socketID = reply.SocketID
	}
	req, err := memif.CreateRequest(p.spec, socketID)
	if err != nil {
		return 0, err
	}
	reply := &vppmemif.MemifCreateV2Reply{}
	if err := c.ch.SendRequest(req).ReceiveReply(reply); err != nil {
		if !registered {
			_ = c.ch.SendRequest(memif.UnregisterSocketRequest(socketID)).ReceiveReply(&vppmemif.MemifSocketFilenameAddDelV2Reply{})
		}
		return 0, fmt.Errorf("creating memif (role %s) on %s: %w", p.spec.Role, p.spec.SocketPath, err)
	}
	return reply.SwIfIndex, nil
}

func (c *Client) addresses(idx interface_types.InterfaceIndex) (map[netip.Prefix]bool, error) {
	have := map[netip.Prefix]bool{}
	v4 := c.ch.SendMultiRequest(&ip.IPAddressDump{SwIfIndex: idx})
	v6 := c.ch.SendMultiRequest(&ip.IPAddressDump{SwIfIndex: idx, IsIPv6: true})
	add := func(d *ip.IPAddressDetails) {
		if pfx, ok := prefixOf(*d.Prefix.ToIPNet()); ok {
			have[pfx] = true
		}
	}
	if err := errors.Join(vppapi.ReadDump(v4, "ip_address_dump", add), vppapi.ReadDump(v6, "ip_address_dump", add)); err != nil {
		return nil, err
	}
	return have, nil
}

func toIPNet(p netip.Prefix) net.IPNet {
	return net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func routeOf(r Route, idx interface_types.InterfaceIndex) ip.IPRoute {
	path := fib_types.FibPath{SwIfIndex: uint32(idx), Weight: 1, Type: fib_types.FIB_API_PATH_TYPE_NORMAL, Proto: fib_types.FIB_API_PATH_NH_PROTO_IP4}
	if r.Dst.Addr().Is6() {
		path.Proto = fib_types.FIB_API_PATH_NH_PROTO_IP6
	}
	if r.Via.IsValid() {
		path.Nh.Address = ip_types.NewAddress(r.Via.AsSlice()).Un
	}
	return ip.IPRoute{Prefix: ip_types.NewPrefix(toIPNet(r.Dst)), NPaths: 1, Paths: []fib_types.FibPath{path}}
}
