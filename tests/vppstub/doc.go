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
// interface (dump, flags, tags, addresses, MAC), ip_address_dump, l2 (bridge
// domains v1/v2, membership, dump) and vhost_user (create v1/v2, delete,
// dump). Every other registered request is answered with its reply carrying
// UNIMPLEMENTED (-9); other dumps return no details. Each handler documents
// its retvals, which are VPP's (govpp's api.VPPApiError constants).
//
// Master memifs accept real peers (DPDK's memif PMD, gomemif, libmemif) and
// frames are switched between the connected members of a bridge domain; see
// memifdp.go. Slave memifs never connect and vhost-user interfaces have no
// data path. Read-only snapshots (Interfaces, Memifs, SocketFiles,
// BridgeDomains, VhostUsers, Counters, Calls) let tests assert the state.
package vppstub
