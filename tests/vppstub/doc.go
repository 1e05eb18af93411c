// Package vppstub is a test-only stand-in for VPP 25.10: it listens on a unix
// socket and speaks VPP's binary API socket protocol to govpp's real client,
// with the behaviour of a real VPP (allocated ids, retvals, socket files,
// state lost on restart) as observed in /work/shared/reference/vpp.md.
//
//	s, err := vppstub.Start(vppstub.Options{Socket: dir + "/api.sock"})
//	...
//	defer s.Stop()
//	conn, err := govpp.Connect(s.SocketPath())
//
// Implemented: memclnt (sockclnt_create/delete, control_ping, keepalive),
// vpe show_version, memif (socket filenames, create v1/v2, delete, dumps),
// interface (dump, flags, tags, addresses, MAC), ip (ip_address_dump,
// ip_route_add_del v1/v2, ip_route_dump, ip_route_v2_dump), l2 (bridge
// domains v1/v2, membership, dump) and vhost_user (create v1/v2, delete,
// dump). Every other registered request is answered with its reply carrying
// UNIMPLEMENTED (-9); other dumps return no details. Each handler documents
// its retvals, which are VPP's (govpp's api.VPPApiError constants).
//
// Data path: master memifs accept real peers (DPDK's memif PMD, gomemif,
// libmemif, another stand-in's slave; see memifdp.go); slave memifs that are
// admin up connect to their socket as real memif slaves and retry while
// disconnected (see memifslave.go). Frames are switched between the
// connected members of a bridge domain. An interface in no bridge domain is
// an IP host (see iphost.go): it answers ARP, IPv6 neighbour solicitations
// and ICMP/ICMPv6 echo requests for its addresses and routes its replies
// through table 0 (connected, special and API routes, see route.go).
// Server.Ping is the stand-in's "vppctl ping". Vhost-user interfaces have no
// data path.
//
// Read-only snapshots let tests assert the state: Interfaces, Memifs
// (connection state, peer names, disconnect reason), SocketFiles,
// BridgeDomains, VhostUsers, Addresses, Neighbors, Routes, Counters and
// Calls.
//
// To play a pod's VPP next to the host's, start one Server per VPP (each on
// its own API socket): the pod's slave memif connects to the socket file the
// host's master created.
package vppstub
