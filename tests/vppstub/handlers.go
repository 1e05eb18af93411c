package vppstub

import (
	"os"

	"go.fd.io/govpp/api"
	interfaces "go.fd.io/govpp/binapi/interface"
	"go.fd.io/govpp/binapi/ip"
	"go.fd.io/govpp/binapi/l2"
	"go.fd.io/govpp/binapi/memclnt"
	"go.fd.io/govpp/binapi/memif"
	"go.fd.io/govpp/binapi/vhost_user"
	"go.fd.io/govpp/binapi/vpe"
)

// dispatch runs the handler of one request.
func (s *Server) dispatch(c *apiConn, msg api.Message, ctx uint32) result {
	switch msg.(type) {
	case *memclnt.SockclntCreate:
		return reply(&memclnt.SockclntCreateReply{Index: c.clientIndex,
			Count: uint16(len(s.table.entries)), MessageTable: s.table.entries})
	case *memclnt.SockclntDelete:
		return result{replies: []api.Message{&memclnt.SockclntDeleteReply{}}, close: true}
	case *memclnt.SockclntDeleteReply:
		// govpp picks sockclnt_delete's id by name prefix and may get this
		// one; VPP has no handler for it either, and govpp then times out.
		return result{}
	case *memclnt.ControlPing:
		return reply(&memclnt.ControlPingReply{ClientIndex: c.clientIndex, VpePID: uint32(os.Getpid())})
	case *memclnt.MemclntKeepalive:
		return reply(&memclnt.MemclntKeepaliveReply{})
	case *vpe.ShowVersion:
		return reply(&vpe.ShowVersionReply{Program: "vpe", Version: "25.10-release",
			BuildDate: "vppstub", BuildDirectory: "/vppstub"})
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.st
	switch m := msg.(type) {
	// memif
	case *memif.MemifSocketFilenameAddDelV2:
		rv, id := st.memifSocketAddDel(m.IsAdd, m.SocketID, m.SocketFilename, true)
		return reply(&memif.MemifSocketFilenameAddDelV2Reply{Retval: rv, SocketID: id})
	case *memif.MemifSocketFilenameAddDel:
		rv, _ := st.memifSocketAddDel(m.IsAdd, m.SocketID, m.SocketFilename, false)
		return reply(&memif.MemifSocketFilenameAddDelReply{Retval: rv})
	case *memif.MemifCreateV2:
		rv, sw := st.memifCreate(memifArgs(*m))
		return reply(&memif.MemifCreateV2Reply{Retval: rv, SwIfIndex: sw})
	case *memif.MemifCreate:
		rv, sw := st.memifCreate(memifArgs{Role: m.Role, Mode: m.Mode, RxQueues: m.RxQueues,
			TxQueues: m.TxQueues, ID: m.ID, SocketID: m.SocketID, RingSize: m.RingSize,
			BufferSize: m.BufferSize, NoZeroCopy: m.NoZeroCopy, HwAddr: m.HwAddr, Secret: m.Secret})
		return reply(&memif.MemifCreateReply{Retval: rv, SwIfIndex: sw})
	case *memif.MemifDelete:
		rv, after := st.memifDelete(uint32(m.SwIfIndex))
		return result{replies: []api.Message{&memif.MemifDeleteReply{Retval: rv}}, after: after}
	case *memif.MemifDump:
		return reply(st.memifDump()...)
	case *memif.MemifSocketFilenameDump:
		return reply(st.memifSocketDump()...)

	// interface
	case *interfaces.SwInterfaceDump:
		return reply(st.swInterfaceDump(m)...)
	case *interfaces.SwInterfaceSetFlags:
		return reply(&interfaces.SwInterfaceSetFlagsReply{Retval: st.setFlags(uint32(m.SwIfIndex), m.Flags)})
	case *interfaces.SwInterfaceTagAddDel:
		return reply(&interfaces.SwInterfaceTagAddDelReply{Retval: st.tagAddDel(m.IsAdd, uint32(m.SwIfIndex), m.Tag)})
	case *interfaces.SwInterfaceAddDelAddress:
		return reply(&interfaces.SwInterfaceAddDelAddressReply{Retval: st.addDelAddress(m)})
	case *interfaces.SwInterfaceSetMacAddress:
		return reply(&interfaces.SwInterfaceSetMacAddressReply{Retval: st.setMAC(uint32(m.SwIfIndex), m.MacAddress)})
	case *ip.IPAddressDump:
		return reply(st.ipAddressDump(uint32(m.SwIfIndex), m.IsIPv6)...)
	case *ip.IPRouteAddDel:
		r, idx := st.routeAddDel(routeArgs{isAdd: m.IsAdd, isMultipath: m.IsMultipath,
			tableID: m.Route.TableID, prefix: m.Route.Prefix, paths: m.Route.Paths})
		return reply(&ip.IPRouteAddDelReply{Retval: r, StatsIndex: idx})
	case *ip.IPRouteAddDelV2:
		r, idx := st.routeAddDel(routeArgs{isAdd: m.IsAdd, isMultipath: m.IsMultipath,
			tableID: m.Route.TableID, prefix: m.Route.Prefix, paths: m.Route.Paths})
		return reply(&ip.IPRouteAddDelV2Reply{Retval: r, StatsIndex: idx})
	case *ip.IPRouteDump:
		return reply(st.routeDump(m.Table, false)...)
	case *ip.IPRouteV2Dump:
		return reply(st.routeDump(m.Table, true)...)

	// l2
	case *l2.BridgeDomainAddDelV2:
		rv, id := st.bdAddDel(bdArgs{id: m.BdID, isAdd: m.IsAdd, allocate: true, flood: m.Flood,
			uuFlood: m.UuFlood, forward: m.Forward, learn: m.Learn, arpTerm: m.ArpTerm,
			arpUfwd: m.ArpUfwd, macAge: m.MacAge, tag: m.BdTag})
		return reply(&l2.BridgeDomainAddDelV2Reply{Retval: rv, BdID: id})
	case *l2.BridgeDomainAddDel:
		rv, _ := st.bdAddDel(bdArgs{id: m.BdID, isAdd: m.IsAdd, flood: m.Flood,
			uuFlood: m.UuFlood, forward: m.Forward, learn: m.Learn, arpTerm: m.ArpTerm,
			arpUfwd: m.ArpUfwd, macAge: m.MacAge, tag: m.BdTag})
		return reply(&l2.BridgeDomainAddDelReply{Retval: rv})
	case *l2.BridgeDomainDump:
		return reply(st.bdDump(m.BdID, uint32(m.SwIfIndex), ctx)...)
	case *l2.SwInterfaceSetL2Bridge:
		return reply(&l2.SwInterfaceSetL2BridgeReply{Retval: st.setL2Bridge(m)})

	// vhost-user
	case *vhost_user.CreateVhostUserIfV2:
		rv, sw := st.vhostCreate(vhostArgs{server: m.IsServer, socket: m.SockFilename, renumber: m.Renumber,
			instance: m.CustomDevInstance, customMAC: m.UseCustomMac, mac: m.MacAddress, tag: m.Tag})
		return reply(&vhost_user.CreateVhostUserIfV2Reply{Retval: rv, SwIfIndex: sw})
	case *vhost_user.CreateVhostUserIf:
		rv, sw := st.vhostCreate(vhostArgs{server: m.IsServer, socket: m.SockFilename, renumber: m.Renumber,
			instance: m.CustomDevInstance, customMAC: m.UseCustomMac, mac: m.MacAddress, tag: m.Tag})
		return reply(&vhost_user.CreateVhostUserIfReply{Retval: rv, SwIfIndex: sw})
	case *vhost_user.DeleteVhostUserIf:
		return reply(&vhost_user.DeleteVhostUserIfReply{Retval: st.vhostDelete(uint32(m.SwIfIndex))})
	case *vhost_user.SwInterfaceVhostUserDump:
		return reply(st.vhostDump(uint32(m.SwIfIndex))...)
	}
	return s.unimplemented(msg)
}

// retvals are VPP's (vnet/api_errno.h), as govpp names them.
func rv(e api.VPPApiError) int32 { return int32(e) }
