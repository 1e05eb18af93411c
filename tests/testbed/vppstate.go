package testbed

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"go.fd.io/govpp/adapter/socketclient"
	"go.fd.io/govpp/api"
	interfaces "go.fd.io/govpp/binapi/interface"
	"go.fd.io/govpp/binapi/interface_types"
	"go.fd.io/govpp/binapi/ip"
	"go.fd.io/govpp/binapi/l2"
	vppmemif "go.fd.io/govpp/binapi/memif"
	"go.fd.io/govpp/binapi/vhost_user"
	"go.fd.io/govpp/core"

	"github.com/userspace-cni/userspace/pkg/vppapi"
)

// What tests inspect of a VPP, read over its binary API (an independent
// client, not the plugin's engine) and, for counters and ping, its CLI.

// VPPInterface is one interface as sw_interface_dump reports it, with its
// addresses and bridge domain.
type VPPInterface struct {
	SwIfIndex uint32
	Name      string
	Tag       string
	DevType   string // "memif", "VhostEthernet"...
	AdminUp   bool
	LinkUp    bool
	MAC       string
	Addresses []netip.Prefix
	// BridgeDomain is the domain the interface is a member of, 0 if none.
	BridgeDomain uint32
}

// VPPMemif is one memif as memif_dump reports it.
type VPPMemif struct {
	SwIfIndex uint32
	Name      string
	ID        uint32
	SocketID  uint32
	Master    bool
	Ethernet  bool
	LinkUp    bool
}

// VPPBridgeDomain is one bridge domain and its members.
type VPPBridgeDomain struct {
	ID                             uint32
	Tag                            string
	Flood, UuFlood, Forward, Learn bool
	Members                        []uint32
}

// VPPVhost is one vhost-user interface.
type VPPVhost struct {
	SwIfIndex uint32
	Socket    string
	Server    bool
}

// VPPRoute is one path of an IPv4 route.
type VPPRoute struct {
	Prefix    netip.Prefix
	NextHop   netip.Addr
	SwIfIndex uint32
}

// VPPState is what a VPP holds that the tests look at.
type VPPState struct {
	Interfaces    []VPPInterface
	Memifs        []VPPMemif
	MemifSockets  map[uint32]string // socket id -> file name
	BridgeDomains []VPPBridgeDomain
	Vhosts        []VPPVhost
}

// State reads the VPP's interfaces, memifs, memif sockets, bridge domains,
// vhost-user interfaces and interface addresses in one connection.
func (v *VPP) State() (*VPPState, error) {
	conn, ch, err := v.dial()
	if err != nil {
		return nil, err
	}
	defer conn.Disconnect()
	defer ch.Close()
	all := interface_types.InterfaceIndex(^uint32(0))
	st := &VPPState{MemifSockets: map[uint32]string{}}
	byIdx := map[uint32]int{}
	errs := []error{
		vppapi.ReadDump(ch.SendMultiRequest(&interfaces.SwInterfaceDump{SwIfIndex: all}), "sw_interface_dump", func(d *interfaces.SwInterfaceDetails) {
			byIdx[uint32(d.SwIfIndex)] = len(st.Interfaces)
			st.Interfaces = append(st.Interfaces, VPPInterface{
				SwIfIndex: uint32(d.SwIfIndex), Name: d.InterfaceName, Tag: d.Tag, DevType: d.InterfaceDevType,
				AdminUp: d.Flags&interface_types.IF_STATUS_API_FLAG_ADMIN_UP != 0,
				LinkUp:  d.Flags&interface_types.IF_STATUS_API_FLAG_LINK_UP != 0,
				MAC:     d.L2Address.String(),
			})
		}),
		vppapi.ReadDump(ch.SendMultiRequest(&vppmemif.MemifDump{}), "memif_dump", func(d *vppmemif.MemifDetails) {
			st.Memifs = append(st.Memifs, VPPMemif{SwIfIndex: uint32(d.SwIfIndex), Name: d.IfName, ID: d.ID, SocketID: d.SocketID,
				Master: d.Role == vppmemif.MEMIF_ROLE_API_MASTER, Ethernet: d.Mode == vppmemif.MEMIF_MODE_API_ETHERNET,
				LinkUp: d.Flags&interface_types.IF_STATUS_API_FLAG_LINK_UP != 0})
		}),
		vppapi.ReadDump(ch.SendMultiRequest(&vppmemif.MemifSocketFilenameDump{}), "memif_socket_filename_dump", func(d *vppmemif.MemifSocketFilenameDetails) {
			st.MemifSockets[d.SocketID] = d.SocketFilename
		}),
		vppapi.ReadDump(ch.SendMultiRequest(&l2.BridgeDomainDump{BdID: ^uint32(0), SwIfIndex: all}), "bridge_domain_dump", func(d *l2.BridgeDomainDetails) {
			b := VPPBridgeDomain{ID: d.BdID, Tag: d.BdTag, Flood: d.Flood, UuFlood: d.UuFlood, Forward: d.Forward, Learn: d.Learn}
			for _, m := range d.SwIfDetails {
				b.Members = append(b.Members, uint32(m.SwIfIndex))
			}
			slices.Sort(b.Members)
			st.BridgeDomains = append(st.BridgeDomains, b)
		}),
		vppapi.ReadDump(ch.SendMultiRequest(&vhost_user.SwInterfaceVhostUserDump{SwIfIndex: all}), "sw_interface_vhost_user_dump", func(d *vhost_user.SwInterfaceVhostUserDetails) {
			st.Vhosts = append(st.Vhosts, VPPVhost{SwIfIndex: uint32(d.SwIfIndex), Socket: d.SockFilename, Server: d.IsServer})
		}),
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("reading VPP %s: %w", v.APISocket, err)
	}
	for _, b := range st.BridgeDomains {
		for _, m := range b.Members {
			if i, ok := byIdx[m]; ok {
				st.Interfaces[i].BridgeDomain = b.ID
			}
		}
	}
	for i := range st.Interfaces {
		for _, v6 := range []bool{false, true} {
			err := vppapi.ReadDump(ch.SendMultiRequest(&ip.IPAddressDump{SwIfIndex: interface_types.InterfaceIndex(st.Interfaces[i].SwIfIndex), IsIPv6: v6}),
				"ip_address_dump", func(d *ip.IPAddressDetails) {
					if p, err := netip.ParsePrefix(d.Prefix.String()); err == nil {
						st.Interfaces[i].Addresses = append(st.Interfaces[i].Addresses, p)
					}
				})
			if err != nil {
				return nil, fmt.Errorf("reading VPP %s: %w", v.APISocket, err)
			}
		}
	}
	return st, nil
}

// Routes lists the IPv4 routes of table 0 with a path through an interface.
func (v *VPP) Routes() ([]VPPRoute, error) {
	conn, ch, err := v.dial()
	if err != nil {
		return nil, err
	}
	defer conn.Disconnect()
	defer ch.Close()
	var out []VPPRoute
	err = vppapi.ReadDump(ch.SendMultiRequest(&ip.IPRouteDump{}), "ip_route_dump", func(d *ip.IPRouteDetails) {
		p, err := netip.ParsePrefix(d.Route.Prefix.String())
		if err != nil {
			return
		}
		for _, path := range d.Route.Paths {
			if path.SwIfIndex == ^uint32(0) {
				continue
			}
			nh, _ := netip.AddrFromSlice(path.Nh.Address.GetIP4().ToIP())
			out = append(out, VPPRoute{Prefix: p, NextHop: nh, SwIfIndex: path.SwIfIndex})
		}
	})
	return out, err
}

// quietGovpp keeps govpp's logrus output (package globals, set once) off
// the tests' stderr.
var quietGovpp = sync.OnceFunc(func() {
	l := logrus.New()
	l.SetOutput(io.Discard)
	core.SetLogger(l)
	socketclient.SetLogger(l)
})

// dial connects with govpp's own socket client and core, not the plugin's
// (pkg/vppapi): the test bed checks the plugin's work through another
// implementation.
func (v *VPP) dial() (*core.Connection, api.Channel, error) {
	quietGovpp()
	sc := socketclient.NewVppClient(v.APISocket)
	sc.SetClientName("testbed")
	conn, err := core.Connect(sc)
	if err != nil {
		return nil, nil, fmt.Errorf("connecting to VPP %s: %w", v.APISocket, err)
	}
	ch, err := conn.NewAPIChannel()
	if err != nil {
		conn.Disconnect()
		return nil, nil, err
	}
	ch.SetReplyTimeout(10 * time.Second)
	return conn, ch, nil
}

// WaitMemifUp waits until the memif named name (any memif, when name is
// empty) has its link up: its peer connected.
func (v *VPP) WaitMemifUp(name string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		st, err := v.State()
		if err == nil {
			for _, m := range st.Memifs {
				if (name == "" || m.Name == name) && m.LinkUp {
					return nil
				}
			}
		}
		if time.Now().After(deadline) {
			show, serr := v.Vppctl("show", "memif")
			if serr != nil {
				show = serr.Error()
			}
			return fmt.Errorf("memif %q of %s not connected after %v (%v):\n%s", name, v.Dir, timeout, err, show)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// ByTag is the interface with the tag, if any.
func (s *VPPState) ByTag(tag string) (VPPInterface, bool) {
	for _, i := range s.Interfaces {
		if i.Tag == tag {
			return i, true
		}
	}
	return VPPInterface{}, false
}

// Memif is the memif with the index, if any.
func (s *VPPState) Memif(sw uint32) (VPPMemif, bool) {
	for _, m := range s.Memifs {
		if m.SwIfIndex == sw {
			return m, true
		}
	}
	return VPPMemif{}, false
}

// Bridge is the bridge domain with the id, if any.
func (s *VPPState) Bridge(id uint32) (VPPBridgeDomain, bool) {
	for _, b := range s.BridgeDomains {
		if b.ID == id {
			return b, true
		}
	}
	return VPPBridgeDomain{}, false
}

// String lists what a VPP holds beyond local0 and memif socket 0, sorted:
// two equal strings mean nothing changed.
func (s *VPPState) String() string {
	var lines []string
	for _, i := range s.Interfaces {
		if i.SwIfIndex != 0 {
			lines = append(lines, fmt.Sprintf("if %d %s tag %q bd %d", i.SwIfIndex, i.Name, i.Tag, i.BridgeDomain))
		}
	}
	for id, f := range s.MemifSockets {
		if id != 0 {
			lines = append(lines, fmt.Sprintf("memif socket %d %s", id, f))
		}
	}
	for _, b := range s.BridgeDomains {
		if b.ID != 0 {
			lines = append(lines, fmt.Sprintf("bd %d tag %q members %v", b.ID, b.Tag, b.Members))
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// Counters are an interface's packet counters from "show interface".
type Counters map[string]uint64

// Counters reads every interface's counters by name ("rx packets", "tx
// packets", "drops"...) from "show interface".
func (v *VPP) Counters() (map[string]Counters, error) {
	out, err := v.Vppctl("show", "interface")
	if err != nil {
		return nil, err
	}
	return parseShowInterface(out), nil
}

// parseShowInterface reads vppctl's "show interface" table: a line per
// interface (name, index, state, MTU, first counter) and a line per further
// counter.
func parseShowInterface(out string) map[string]Counters {
	res := map[string]Counters{}
	var cur Counters
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(line, " ") && cur == nil {
			continue
		}
		if !strings.HasPrefix(line, " ") {
			if len(f) < 4 || f[0] == "Name" {
				cur = nil
				continue
			}
			cur = Counters{}
			res[f[0]] = cur
			f = f[4:]
		}
		if len(f) >= 2 {
			if n, err := strconv.ParseUint(f[len(f)-1], 10, 64); err == nil {
				cur[strings.Join(f[:len(f)-1], " ")] = n
			}
		}
	}
	return res
}

var pingRe = regexp.MustCompile(`(\d+) sent, (\d+) received`)

// Ping runs vppctl ping in this VPP and returns how many replies came back.
func (v *VPP) Ping(addr netip.Addr, count int) (sent, received int, out string, err error) {
	out, err = v.Vppctl("ping", addr.String(), "repeat", strconv.Itoa(count), "interval", "0.5")
	m := pingRe.FindStringSubmatch(out)
	if m == nil {
		return 0, 0, out, errors.Join(err, fmt.Errorf("vppctl ping printed no statistics: %q", out))
	}
	sent, _ = strconv.Atoi(m[1])
	received, _ = strconv.Atoi(m[2])
	return sent, received, out, nil
}
