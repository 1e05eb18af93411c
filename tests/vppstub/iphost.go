package vppstub

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sort"
	"time"
)

// The IP host of L3 interfaces (not in a bridge domain). It does what a pod
// needs from VPP to be pinged and to ping: it answers ARP requests for the
// interface's IPv4 addresses (from senders on one of its subnets, like VPP),
// learns neighbours from ARP requests to it and ARP replies, answers IPv6
// neighbour solicitations and learns from solicitations and advertisements,
// answers ICMP and ICMPv6 echo requests to any local address and delivers
// echo replies to Ping. Replies are routed through table 0 (see route.go);
// a reply whose neighbour is unknown is dropped while the neighbour is
// solicited, as VPP's glean does. Frames for other MACs, other protocols
// and packets that would need forwarding are dropped. IP-mode memifs carry
// bare IP packets: no ARP or ND.

const (
	etherTypeIPv4 = 0x0800
	etherTypeARP  = 0x0806
	etherTypeIPv6 = 0x86dd

	protoICMP   = 1
	protoICMPv6 = 58

	icmpEchoReply     = 0
	icmpEchoRequest   = 8
	icmp6EchoRequest  = 128
	icmp6EchoReply    = 129
	icmp6NeighSolicit = 135
	icmp6NeighAdvert  = 136

	pingPayload = 56
	arpRetry    = 250 * time.Millisecond
)

var broadcastMAC = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

type echoReply struct {
	id, seq uint16
	from    netip.Addr
}

// ipInput handles one frame received on an L3 interface (s.mu held) and
// returns outs with what the host sends in response.
func (st *state) ipInput(ifc *iface, f []byte, outs []output) []output {
	consumed := false
	var srcMAC [6]byte
	var etype uint16
	payload := f
	if ifc.hasMAC() {
		var dst [6]byte
		if len(f) >= 14 {
			copy(dst[:], f[0:6])
			copy(srcMAC[:], f[6:12])
			etype = binary.BigEndian.Uint16(f[12:14])
			payload = f[14:]
		}
		if len(f) < 14 || (dst != ifc.mac && dst != broadcastMAC && !(dst[0] == 0x33 && dst[1] == 0x33)) {
			etype = 0
		}
	} else if len(f) > 0 {
		switch f[0] >> 4 {
		case 4:
			etype = etherTypeIPv4
		case 6:
			etype = etherTypeIPv6
		}
	}
	switch etype {
	case etherTypeARP:
		outs, consumed = st.arpInput(ifc, payload, outs)
	case etherTypeIPv4:
		outs, consumed = st.ip4Input(ifc, payload, outs)
	case etherTypeIPv6:
		outs, consumed = st.ip6Input(ifc, srcMAC, payload, outs)
	}
	if consumed {
		ifc.cnt.hostRx.Add(1)
	} else {
		ifc.cnt.drops.Add(1)
	}
	return outs
}

func (ifc *iface) hasAddr(a netip.Addr) bool {
	for _, p := range ifc.addrs {
		if p.Addr() == a {
			return true
		}
	}
	return false
}

// onLink tells whether a is on one of the interface's subnets.
func (ifc *iface) onLink(a netip.Addr) bool {
	if !a.IsValid() || a.IsUnspecified() {
		return false
	}
	for _, p := range ifc.addrs {
		if p.Addr().Is4() == a.Is4() && p.Contains(a) {
			return true
		}
	}
	return false
}

// isLocal tells whether a is an address of an admin-up interface.
func (st *state) isLocal(a netip.Addr) bool {
	for _, ifc := range st.ifaces {
		if ifc.adminUp && ifc.hasAddr(a) {
			return true
		}
	}
	return false
}

// learn records a neighbour and wakes Ping calls waiting for one.
func (st *state) learn(ifc *iface, a netip.Addr, mac [6]byte) {
	if ifc.nbrs == nil {
		ifc.nbrs = map[netip.Addr][6]byte{}
	}
	if cur, ok := ifc.nbrs[a]; ok && cur == mac {
		return
	}
	ifc.nbrs[a] = mac
	close(st.s.nbrCh)
	st.s.nbrCh = make(chan struct{})
}

// hostOut wraps an IP packet (or ARP message) for the interface and
// addresses it to dst; nothing if the interface has no peer.
func (st *state) hostOut(ifc *iface, dst [6]byte, etype uint16, pkt []byte, outs []output) []output {
	p := ifc.port()
	if p == nil {
		return outs
	}
	if ifc.hasMAC() {
		f := make([]byte, 14+len(pkt))
		copy(f[0:6], dst[:])
		copy(f[6:12], ifc.mac[:])
		binary.BigEndian.PutUint16(f[12:], etype)
		copy(f[14:], pkt)
		pkt = f
	}
	return append(outs, output{dst: p, ifc: ifc, frame: pkt, host: true})
}

func (st *state) arpInput(ifc *iface, p []byte, outs []output) ([]output, bool) {
	if len(p) < 28 || binary.BigEndian.Uint16(p[0:]) != 1 || binary.BigEndian.Uint16(p[2:]) != etherTypeIPv4 ||
		p[4] != 6 || p[5] != 4 {
		return outs, false
	}
	var sha [6]byte
	copy(sha[:], p[8:14])
	spa, tpa := netip.AddrFrom4([4]byte(p[14:18])), netip.AddrFrom4([4]byte(p[24:28]))
	if !ifc.onLink(spa) {
		return outs, false // VPP: "IP4 source address not local to subnet"
	}
	switch binary.BigEndian.Uint16(p[6:]) {
	case 1: // request
		if !ifc.hasAddr(tpa) {
			return outs, false
		}
		st.learn(ifc, spa, sha)
		return st.hostOut(ifc, sha, etherTypeARP, arpMsg(2, ifc.mac, tpa, sha, spa), outs), true
	case 2: // reply
		st.learn(ifc, spa, sha)
		return outs, true
	}
	return outs, false
}

func arpMsg(op uint16, sha [6]byte, spa netip.Addr, tha [6]byte, tpa netip.Addr) []byte {
	b := make([]byte, 28)
	binary.BigEndian.PutUint16(b[0:], 1)
	binary.BigEndian.PutUint16(b[2:], etherTypeIPv4)
	b[4], b[5] = 6, 4
	binary.BigEndian.PutUint16(b[6:], op)
	copy(b[8:], sha[:])
	s4, t4 := spa.As4(), tpa.As4()
	copy(b[14:], s4[:])
	copy(b[18:], tha[:])
	copy(b[24:], t4[:])
	return b
}

func (st *state) ip4Input(ifc *iface, p []byte, outs []output) ([]output, bool) {
	if len(p) < 20 || p[0]>>4 != 4 {
		return outs, false
	}
	ihl, total := int(p[0]&0xf)*4, int(binary.BigEndian.Uint16(p[2:]))
	if ihl < 20 || total < ihl || total > len(p) || checksum(p[:ihl], 0) != 0 ||
		binary.BigEndian.Uint16(p[6:])&0x3fff != 0 || p[9] != protoICMP {
		return outs, false
	}
	src, dst := netip.AddrFrom4([4]byte(p[12:16])), netip.AddrFrom4([4]byte(p[16:20]))
	icmp := p[ihl:total]
	if !st.isLocal(dst) || len(icmp) < 8 || checksum(icmp, 0) != 0 {
		return outs, false
	}
	id, seq := binary.BigEndian.Uint16(icmp[4:]), binary.BigEndian.Uint16(icmp[6:])
	switch icmp[0] {
	case icmpEchoRequest:
		return st.ipOutput(echo4(dst, src, icmpEchoReply, id, seq, icmp[8:]), src, outs), true
	case icmpEchoReply:
		st.s.deliverEcho(echoReply{id: id, seq: seq, from: src})
		return outs, true
	}
	return outs, false
}

// echo4 builds an IPv4 ICMP echo request or reply.
func echo4(src, dst netip.Addr, typ uint8, id, seq uint16, data []byte) []byte {
	b := make([]byte, 28+len(data))
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	binary.BigEndian.PutUint16(b[4:], seq)
	b[8], b[9] = 64, protoICMP
	s4, d4 := src.As4(), dst.As4()
	copy(b[12:], s4[:])
	copy(b[16:], d4[:])
	binary.BigEndian.PutUint16(b[10:], checksum(b[:20], 0))
	icmp := b[20:]
	icmp[0] = typ
	binary.BigEndian.PutUint16(icmp[4:], id)
	binary.BigEndian.PutUint16(icmp[6:], seq)
	copy(icmp[8:], data)
	binary.BigEndian.PutUint16(icmp[2:], checksum(icmp, 0))
	return b
}

func (st *state) ip6Input(ifc *iface, srcMAC [6]byte, p []byte, outs []output) ([]output, bool) {
	if len(p) < 40 || p[0]>>4 != 6 {
		return outs, false
	}
	plen := int(binary.BigEndian.Uint16(p[4:]))
	if 40+plen > len(p) || p[6] != protoICMPv6 {
		return outs, false
	}
	hop := p[7]
	src, dst := netip.AddrFrom16([16]byte(p[8:24])), netip.AddrFrom16([16]byte(p[24:40]))
	body := p[40 : 40+plen]
	if len(body) < 8 || icmp6Checksum(src, dst, body) != 0 {
		return outs, false
	}
	switch body[0] {
	case icmp6NeighSolicit:
		if hop != 255 || len(body) < 24 {
			return outs, false
		}
		target := netip.AddrFrom16([16]byte(body[8:24]))
		if !ifc.hasAddr(target) || (dst != target && dst != solicitedNode(target)) {
			return outs, false
		}
		to, dstIP := srcMAC, src
		if mac, ok := ndOption(body[24:], 1); ok {
			to = mac
			if !src.IsUnspecified() {
				st.learn(ifc, src, mac)
			}
		}
		flags := byte(0x60) // solicited, override
		if src.IsUnspecified() {
			dstIP, flags = netip.MustParseAddr("ff02::1"), 0x20
			to = [6]byte{0x33, 0x33, 0, 0, 0, 1}
		}
		return st.hostOut(ifc, to, etherTypeIPv6, ndMsg(icmp6NeighAdvert, target, dstIP, target, flags, ifc.mac), outs), true
	case icmp6NeighAdvert:
		if hop != 255 || len(body) < 24 {
			return outs, false
		}
		target := netip.AddrFrom16([16]byte(body[8:24]))
		mac, ok := ndOption(body[24:], 2)
		if !ok {
			mac = srcMAC
		}
		if ifc.onLink(target) && !ifc.hasAddr(target) {
			st.learn(ifc, target, mac)
		}
		return outs, true
	case icmp6EchoRequest:
		if !st.isLocal(dst) {
			return outs, false
		}
		id, seq := binary.BigEndian.Uint16(body[4:]), binary.BigEndian.Uint16(body[6:])
		return st.ipOutput(echo6(dst, src, icmp6EchoReply, id, seq, body[8:]), src, outs), true
	case icmp6EchoReply:
		if !st.isLocal(dst) {
			return outs, false
		}
		st.s.deliverEcho(echoReply{id: binary.BigEndian.Uint16(body[4:]), seq: binary.BigEndian.Uint16(body[6:]), from: src})
		return outs, true
	}
	return outs, false
}

// ndOption finds a link-layer address option (1 source, 2 target).
func ndOption(opts []byte, typ byte) ([6]byte, bool) {
	for len(opts) >= 8 {
		l := int(opts[1]) * 8
		if l == 0 || l > len(opts) {
			break
		}
		if opts[0] == typ && l >= 8 {
			return [6]byte(opts[2:8]), true
		}
		opts = opts[l:]
	}
	return [6]byte{}, false
}

func solicitedNode(a netip.Addr) netip.Addr {
	b := a.As16()
	return netip.AddrFrom16([16]byte{0xff, 0x02, 10: 0, 11: 1, 12: 0xff, 13: b[13], 14: b[14], 15: b[15]})
}

func ipv6Packet(src, dst netip.Addr, hop uint8, body []byte) []byte {
	b := make([]byte, 40+len(body))
	b[0] = 0x60
	binary.BigEndian.PutUint16(b[4:], uint16(len(body)))
	b[6], b[7] = protoICMPv6, hop
	s16, d16 := src.As16(), dst.As16()
	copy(b[8:], s16[:])
	copy(b[24:], d16[:])
	copy(b[40:], body)
	binary.BigEndian.PutUint16(b[42:], icmp6Checksum(src, dst, b[40:]))
	return b
}

// ndMsg builds a neighbour solicitation or advertisement with our MAC as
// the source (type 1) or target (type 2) link-layer address option.
func ndMsg(typ uint8, src, dst, target netip.Addr, flags byte, mac [6]byte) []byte {
	body := make([]byte, 32)
	body[0] = typ
	body[4] = flags
	t := target.As16()
	copy(body[8:], t[:])
	body[24], body[25] = 1, 1
	if typ == icmp6NeighAdvert {
		body[24] = 2
	}
	copy(body[26:], mac[:])
	return ipv6Packet(src, dst, 255, body)
}

func echo6(src, dst netip.Addr, typ uint8, id, seq uint16, data []byte) []byte {
	body := make([]byte, 8+len(data))
	body[0] = typ
	binary.BigEndian.PutUint16(body[4:], id)
	binary.BigEndian.PutUint16(body[6:], seq)
	copy(body[8:], data)
	return ipv6Packet(src, dst, 64, body)
}

func onesSum(b []byte, sum uint32) uint32 {
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	return sum
}

// checksum is the Internet checksum of b (0 over data including a valid
// checksum field).
func checksum(b []byte, sum uint32) uint16 {
	sum = onesSum(b, sum)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

func icmp6Checksum(src, dst netip.Addr, body []byte) uint16 {
	s16, d16 := src.As16(), dst.As16()
	sum := onesSum(d16[:], onesSum(s16[:], 0))
	sum += uint32(len(body)) + protoICMPv6
	return checksum(body, sum)
}

// ipOutput routes an IP packet of the host to dst (s.mu held). Without a
// known neighbour the packet is dropped and the neighbour solicited.
func (st *state) ipOutput(pkt []byte, dst netip.Addr, outs []output) []output {
	egress, nh, ok := st.lookup(dst)
	if !ok || !egress.adminUp || egress.inBD {
		return outs
	}
	etype := uint16(etherTypeIPv4)
	if dst.Is6() {
		etype = etherTypeIPv6
	}
	if !egress.hasMAC() {
		return st.hostOut(egress, [6]byte{}, etype, pkt, outs)
	}
	if mac, ok := egress.nbrs[nh]; ok {
		return st.hostOut(egress, mac, etype, pkt, outs)
	}
	egress.cnt.drops.Add(1)
	if src, ok := egress.sourceFor(nh); ok {
		outs = st.solicit(egress, src, nh, outs)
	}
	return outs
}

// sourceFor picks the interface address to use towards nh: one on nh's
// subnet, else the first of its family.
func (ifc *iface) sourceFor(nh netip.Addr) (netip.Addr, bool) {
	var first netip.Addr
	for _, p := range ifc.addrs {
		if p.Addr().Is4() != nh.Is4() {
			continue
		}
		if p.Contains(nh) {
			return p.Addr(), true
		}
		if !first.IsValid() {
			first = p.Addr()
		}
	}
	return first, first.IsValid()
}

// solicit asks for nh's MAC: an ARP request or a neighbour solicitation.
func (st *state) solicit(ifc *iface, src, nh netip.Addr, outs []output) []output {
	if nh.Is4() {
		return st.hostOut(ifc, broadcastMAC, etherTypeARP, arpMsg(1, ifc.mac, src, [6]byte{}, nh), outs)
	}
	sn := solicitedNode(nh).As16()
	to := [6]byte{0x33, 0x33, sn[12], sn[13], sn[14], sn[15]}
	return st.hostOut(ifc, to, etherTypeIPv6, ndMsg(icmp6NeighSolicit, src, solicitedNode(nh), nh, 0, ifc.mac), outs)
}

// deliverEcho hands an echo reply to the Ping waiting for it (s.mu held).
func (s *Server) deliverEcho(r echoReply) {
	if ch, ok := s.pings[r.id]; ok {
		select {
		case ch <- r:
		default:
		}
	}
}

// Ping is the stand-in's "vppctl ping <dst> source <interface>": it
// resolves the neighbour on swIfIndex (ARP for IPv4, neighbour solicitation
// for IPv6; none on IP-mode memifs), then sends count ICMP echo requests one
// after the other, each waiting up to timeout for its reply, and returns
// how many were answered. The neighbour is dst itself when dst is on one of
// the interface's subnets (the source address is then the first interface
// address of that subnet), else the next hop of the table 0 route to dst,
// which must go out of swIfIndex. Neighbour resolution is retried every
// 250 ms for up to timeout and, unlike VPP (whose first echo request is
// dropped while it resolves), happens before the first request. Errors: an
// unknown, L2 (bridged), admin-down or disconnected interface, no route or
// source address, a local destination, an unresolved neighbour, or the
// interface going away.
func (s *Server) Ping(swIfIndex uint32, dst netip.Addr, count int, timeout time.Duration) (replies int, err error) {
	dst = dst.Unmap()
	if !dst.IsValid() || count < 1 || timeout <= 0 {
		return 0, fmt.Errorf("vppstub: Ping: invalid arguments %v, %d, %v", dst, count, timeout)
	}
	fail := func(err error) (int, error) {
		return 0, fmt.Errorf("vppstub: ping %s on sw_if_index %d: %w", dst, swIfIndex, err)
	}
	s.mu.Lock()
	ifc, src, nh, err := s.st.pingRoute(swIfIndex, dst)
	if err != nil {
		s.mu.Unlock()
		return fail(err)
	}
	id := s.nextPing
	for s.pings[id] != nil || id == 0 {
		id++
	}
	s.nextPing = id + 1
	ch := make(chan echoReply, 2*count+8)
	s.pings[id] = ch
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.pings, id)
		s.mu.Unlock()
	}()

	mac, err := s.resolve(ifc, src, nh, timeout)
	if err != nil {
		return fail(err)
	}
	data := make([]byte, pingPayload)
	for i := range data {
		data[i] = byte(i)
	}
	got := 0
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for i := 1; i <= count; i++ {
		seq := uint16(i)
		var pkt []byte
		etype := uint16(etherTypeIPv4)
		if dst.Is4() {
			pkt = echo4(src, dst, icmpEchoRequest, id, seq, data)
		} else {
			pkt, etype = echo6(src, dst, icmp6EchoRequest, id, seq, data), etherTypeIPv6
		}
		s.mu.Lock()
		var outs []output
		if s.st.ifaces[ifc.sw] == ifc {
			outs = s.st.hostOut(ifc, mac, etype, pkt, nil)
		}
		s.mu.Unlock()
		if len(outs) == 0 {
			return got, fmt.Errorf("vppstub: ping %s on sw_if_index %d: interface deleted or disconnected", dst, swIfIndex)
		}
		outs[0].transmit()
		timer.Reset(timeout)
	wait:
		for {
			select {
			case r := <-ch:
				if r.seq == seq && r.from == dst {
					got++
					break wait
				}
			case <-timer.C:
				break wait
			}
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
	return got, nil
}

// pingRoute chooses the source address and the neighbour for Ping (s.mu held).
func (st *state) pingRoute(sw uint32, dst netip.Addr) (ifc *iface, src, nh netip.Addr, err error) {
	ifc = st.ifaces[sw]
	switch {
	case ifc == nil:
		return nil, src, nh, errors.New("no such interface")
	case ifc.inBD:
		return nil, src, nh, fmt.Errorf("interface is in bridge domain %d (L2)", ifc.bdID)
	case !ifc.adminUp:
		return nil, src, nh, errors.New("interface is admin down")
	case ifc.port() == nil:
		return nil, src, nh, errors.New("interface is not connected (link down)")
	case st.isLocal(dst):
		return nil, src, nh, errors.New("destination is a local address")
	}
	for _, p := range ifc.addrs {
		if p.Addr().Is4() == dst.Is4() && p.Contains(dst) {
			return ifc, p.Addr(), dst, nil
		}
	}
	egress, nh, ok := st.lookup(dst)
	if !ok || egress != ifc {
		return nil, src, nh, errors.New("no route through this interface")
	}
	src, ok = ifc.sourceFor(nh)
	if !ok {
		return nil, src, nh, errors.New("no source address of the family")
	}
	return ifc, src, nh, nil
}

// resolve returns nh's MAC on ifc, soliciting it until timeout.
func (s *Server) resolve(ifc *iface, src, nh netip.Addr, timeout time.Duration) ([6]byte, error) {
	if !ifc.hasMAC() {
		return [6]byte{}, nil
	}
	deadline := time.Now().Add(timeout)
	var sentAt time.Time
	for {
		s.mu.Lock()
		if s.st.ifaces[ifc.sw] != ifc {
			s.mu.Unlock()
			return [6]byte{}, errors.New("interface deleted")
		}
		if mac, ok := ifc.nbrs[nh]; ok {
			s.mu.Unlock()
			return mac, nil
		}
		learnt := s.nbrCh
		var outs []output
		now := time.Now()
		if now.Sub(sentAt) >= arpRetry {
			outs = s.st.solicit(ifc, src, nh, nil)
			sentAt = now
		}
		s.mu.Unlock()
		for _, o := range outs {
			o.transmit()
		}
		left := time.Until(deadline)
		if left <= 0 {
			what := "ARP"
			if nh.Is6() {
				what = "neighbour discovery"
			}
			return [6]byte{}, fmt.Errorf("%s for %s unanswered after %v", what, nh, timeout)
		}
		t := time.NewTimer(min(left, arpRetry-time.Since(sentAt)))
		select {
		case <-learnt:
		case <-t.C:
		}
		t.Stop()
	}
}

// Addresses returns the IP addresses of an interface in the order they
// were added (nil if unknown).
func (s *Server) Addresses(swIfIndex uint32) []netip.Prefix {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ifc := s.st.ifaces[swIfIndex]; ifc != nil {
		return slices.Clone(ifc.addrs)
	}
	return nil
}

// Neighbor is a learnt IP neighbour (ARP or ND entry).
type Neighbor struct {
	IP  netip.Addr
	MAC net.HardwareAddr
}

// Neighbors returns the neighbours learnt on an interface, ordered by IP.
func (s *Server) Neighbors(swIfIndex uint32) []Neighbor {
	s.mu.Lock()
	defer s.mu.Unlock()
	ifc := s.st.ifaces[swIfIndex]
	if ifc == nil {
		return nil
	}
	var out []Neighbor
	for a, m := range ifc.nbrs {
		out = append(out, Neighbor{IP: a, MAC: net.HardwareAddr(slices.Clone(m[:]))})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].IP.Less(out[j].IP) })
	return out
}
