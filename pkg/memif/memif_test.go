package memif_test

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.fd.io/govpp/api"
	"go.fd.io/govpp/binapi/ethernet_types"
	"go.fd.io/govpp/binapi/interface_types"
	vppmemif "go.fd.io/govpp/binapi/memif"

	"github.com/userspace-cni/userspace/pkg/memif"
	"github.com/userspace-cni/userspace/pkg/netconf"
)

// fakeChannel is an api.Channel over a tiny memif-only VPP: each request
// is applied when sent, as VPP handles one client's requests in order, and
// its reply read back later like govpp's.
type fakeChannel struct {
	sent    []api.Message
	sockets map[uint32]string
	memifs  map[uint32]*vppmemif.MemifDetails
	next    uint32
	// fail maps a request name to the retval its next occurrence gets.
	fail map[string]int32
	// dumpErr makes dumps fail with it.
	dumpErr error
}

func newFakeChannel() *fakeChannel {
	return &fakeChannel{sockets: map[uint32]string{0: "/run/vpp/memif.sock"}, memifs: map[uint32]*vppmemif.MemifDetails{}, next: 1, fail: map[string]int32{}}
}

type reply struct {
	msg    api.Message
	retval int32
}

func (r reply) ReceiveReply(msg api.Message) error {
	if reflect.TypeOf(msg) != reflect.TypeOf(r.msg) {
		return fmt.Errorf("reply %T read as %T", r.msg, msg)
	}
	reflect.ValueOf(msg).Elem().Set(reflect.ValueOf(r.msg).Elem())
	if r.retval != 0 {
		return api.VPPApiError(r.retval)
	}
	return nil
}

type multiReply struct {
	msgs []api.Message
	err  error
}

func (m *multiReply) ReceiveReply(msg api.Message) (bool, error) {
	if m.err != nil {
		return false, m.err
	}
	if len(m.msgs) == 0 {
		return true, nil
	}
	reflect.ValueOf(msg).Elem().Set(reflect.ValueOf(m.msgs[0]).Elem())
	m.msgs = m.msgs[1:]
	return false, nil
}

func (c *fakeChannel) SendRequest(msg api.Message) api.RequestCtx {
	c.sent = append(c.sent, msg)
	if rv, ok := c.fail[msg.GetMessageName()]; ok {
		delete(c.fail, msg.GetMessageName())
		switch msg.(type) {
		case *vppmemif.MemifSocketFilenameAddDelV2:
			return reply{&vppmemif.MemifSocketFilenameAddDelV2Reply{Retval: rv}, rv}
		case *vppmemif.MemifCreateV2:
			return reply{&vppmemif.MemifCreateV2Reply{Retval: rv}, rv}
		case *vppmemif.MemifDelete:
			return reply{&vppmemif.MemifDeleteReply{Retval: rv}, rv}
		}
	}
	switch m := msg.(type) {
	case *vppmemif.MemifSocketFilenameAddDelV2:
		r := &vppmemif.MemifSocketFilenameAddDelV2Reply{SocketID: m.SocketID}
		switch {
		case m.IsAdd && m.SocketID == memif.AllocateID:
			r.SocketID = 1013904223 + uint32(len(c.sockets))
			c.sockets[r.SocketID] = m.SocketFilename
		case m.IsAdd:
			c.sockets[m.SocketID] = m.SocketFilename
		case c.sockets[m.SocketID] == "":
			r.Retval = memif.RetvalNoSuchSocket
		default:
			for _, d := range c.memifs {
				if d.SocketID == m.SocketID {
					r.Retval = memif.RetvalInUse
				}
			}
			if r.Retval == 0 {
				delete(c.sockets, m.SocketID)
			}
		}
		return reply{r, r.Retval}
	case *vppmemif.MemifCreateV2:
		r := &vppmemif.MemifCreateV2Reply{}
		if _, ok := c.sockets[m.SocketID]; !ok {
			r.Retval = int32(api.INVALID_ARGUMENT)
			return reply{r, r.Retval}
		}
		r.SwIfIndex = interface_types.InterfaceIndex(c.next)
		c.memifs[c.next] = &vppmemif.MemifDetails{
			SwIfIndex: r.SwIfIndex, ID: m.ID, Role: m.Role, Mode: m.Mode, SocketID: m.SocketID,
			IfName: fmt.Sprintf("memif%d/%d", m.SocketID, m.ID), HwAddr: m.HwAddr,
		}
		c.next++
		return reply{r, 0}
	case *vppmemif.MemifDelete:
		r := &vppmemif.MemifDeleteReply{}
		if c.memifs[uint32(m.SwIfIndex)] == nil {
			r.Retval = memif.RetvalNoSuchInterface
		}
		delete(c.memifs, uint32(m.SwIfIndex))
		return reply{r, r.Retval}
	}
	return reply{msg, int32(api.UNSPECIFIED)}
}

func (c *fakeChannel) SendMultiRequest(msg api.Message) api.MultiRequestCtx {
	c.sent = append(c.sent, msg)
	out := &multiReply{err: c.dumpErr}
	switch msg.(type) {
	case *vppmemif.MemifDump:
		for _, idx := range slices.Sorted(mapKeys(c.memifs)) {
			d := *c.memifs[idx]
			out.msgs = append(out.msgs, &d)
		}
	case *vppmemif.MemifSocketFilenameDump:
		for _, id := range slices.Sorted(mapKeys(c.sockets)) {
			out.msgs = append(out.msgs, &vppmemif.MemifSocketFilenameDetails{SocketID: id, SocketFilename: c.sockets[id]})
		}
	}
	return out
}

func mapKeys[V any](m map[uint32]V) func(func(uint32) bool) {
	return func(yield func(uint32) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func (c *fakeChannel) SubscribeNotification(chan api.Message, api.Message) (api.SubscriptionCtx, error) {
	return nil, errors.New("not supported")
}
func (c *fakeChannel) SetReplyTimeout(time.Duration)          {}
func (c *fakeChannel) CheckCompatiblity(...api.Message) error { return nil }
func (c *fakeChannel) Close()                                 {}

func (c *fakeChannel) names() []string {
	var out []string
	for _, m := range c.sent {
		out = append(out, m.GetMessageName())
	}
	return out
}

func TestSocketName(t *testing.T) {
	for cid, want := range map[string]string{
		"0123456789abcdef0123": "memif-0123456789ab-net1.sock",
		"abc":                  "memif-abc-net1.sock",
		"":                     "memif--net1.sock",
	} {
		if got := memif.SocketName(cid, "net1"); got != want {
			t.Errorf("SocketName(%q) = %q, want %q", cid, got, want)
		}
	}
}

func TestRoleAndMode(t *testing.T) {
	roles := map[string]vppmemif.MemifRole{
		netconf.MemifMaster: vppmemif.MEMIF_ROLE_API_MASTER,
		netconf.MemifSlave:  vppmemif.MEMIF_ROLE_API_SLAVE,
	}
	for name, want := range roles {
		got, err := memif.Role(name)
		if err != nil || got != want || memif.RoleName(got) != name {
			t.Errorf("role %q: %v, %v, back %q", name, got, err, memif.RoleName(got))
		}
	}
	if r, err := memif.Role(""); err != nil || r != vppmemif.MEMIF_ROLE_API_MASTER {
		t.Errorf(`Role("") = %v, %v`, r, err)
	}
	if _, err := memif.Role("server"); err == nil || !strings.Contains(err.Error(), `"server"`) {
		t.Errorf("Role(server) error %v", err)
	}

	modes := map[string]vppmemif.MemifMode{
		netconf.MemifEthernet:   vppmemif.MEMIF_MODE_API_ETHERNET,
		netconf.MemifIP:         vppmemif.MEMIF_MODE_API_IP,
		netconf.MemifInjectPunt: vppmemif.MEMIF_MODE_API_PUNT_INJECT,
	}
	for name, want := range modes {
		got, err := memif.Mode(name)
		if err != nil || got != want || memif.ModeName(got) != name {
			t.Errorf("mode %q: %v, %v, back %q", name, got, err, memif.ModeName(got))
		}
	}
	if m, err := memif.Mode(""); err != nil || m != vppmemif.MEMIF_MODE_API_ETHERNET {
		t.Errorf(`Mode("") = %v, %v`, m, err)
	}
	if _, err := memif.Mode("l3"); err == nil || !strings.Contains(err.Error(), `"l3"`) {
		t.Errorf("Mode(l3) error %v", err)
	}
}

func TestSpecFrom(t *testing.T) {
	got := memif.SpecFrom(netconf.MemifConf{Role: "slave", Mode: "ip", Socketfile: "ignored", RingSize: 1024,
		BufferSize: 2048, Queues: 4, Secret: "s", MAC: "02:00:00:00:00:01"}, "/run/x.sock")
	want := memif.Spec{Role: "slave", Mode: "ip", SocketPath: "/run/x.sock", RingSize: 1024, BufferSize: 2048,
		Queues: 4, Secret: "s", MAC: "02:00:00:00:00:01"}
	if got != want {
		t.Errorf("SpecFrom = %+v", got)
	}
}

func TestRequests(t *testing.T) {
	// binapi default= values are not applied: every field must be explicit.
	if r := memif.RegisterSocketRequest("/p.sock"); !r.IsAdd || r.SocketID != ^uint32(0) || r.SocketFilename != "/p.sock" {
		t.Errorf("register %+v", r)
	}
	if r := memif.UnregisterSocketRequest(7); r.IsAdd || r.SocketID != 7 {
		t.Errorf("unregister %+v", r)
	}
	if r := memif.DeleteRequest(3); r.SwIfIndex != 3 {
		t.Errorf("delete %+v", r)
	}
}

func TestCreateRequest(t *testing.T) {
	s := memif.Spec{Role: "slave", Mode: "inject-punt", ID: 2, RingSize: 4096, BufferSize: 9000, Queues: 3,
		Secret: strings.Repeat("s", netconf.MaxMemifSecret), MAC: "02:AB:cd:00:00:01"}
	got, err := memif.CreateRequest(s, 42)
	if err != nil {
		t.Fatal(err)
	}
	want := &vppmemif.MemifCreateV2{
		Role: vppmemif.MEMIF_ROLE_API_SLAVE, Mode: vppmemif.MEMIF_MODE_API_PUNT_INJECT, ID: 2, SocketID: 42,
		RingSize: 4096, BufferSize: 9000, RxQueues: 3, TxQueues: 3, Secret: s.Secret,
		HwAddr: ethernet_types.MacAddress{0x02, 0xab, 0xcd, 0, 0, 1},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("CreateRequest:\n got %+v\nwant %+v", got, want)
	}
	if got, _ := memif.CreateRequest(memif.Spec{}, 1); got.HwAddr != (ethernet_types.MacAddress{}) || got.Role != vppmemif.MEMIF_ROLE_API_MASTER {
		t.Errorf("defaults %+v", got)
	}

	for name, c := range map[string]struct {
		spec memif.Spec
		want string
	}{
		"secret": {memif.Spec{Secret: strings.Repeat("s", netconf.MaxMemifSecret+1)}, "25 bytes, at most 24"},
		"mac":    {memif.Spec{MAC: "zz:00:00:00:00:00"}, "not a 48-bit MAC"},
		"eui64":  {memif.Spec{MAC: "02:00:00:00:00:00:00:01"}, "not a 48-bit MAC"},
		"role":   {memif.Spec{Role: "boss"}, "unknown memif role"},
		"mode":   {memif.Spec{Mode: "l3"}, "unknown memif mode"},
	} {
		if _, err := memif.CreateRequest(c.spec, 1); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", name, err, c.want)
		}
	}
}

func TestIsRetval(t *testing.T) {
	err := fmt.Errorf("deleting: %w", api.VPPApiError(-2))
	if !memif.IsRetval(err, -2) || memif.IsRetval(err, -74) {
		t.Error("wrapped retval not recognised")
	}
	if !memif.IsRetval(errors.Join(errors.New("x"), err), -2) {
		t.Error("joined retval not recognised")
	}
	if memif.IsRetval(errors.New("-2"), -2) || memif.IsRetval(nil, 0) {
		t.Error("non-VPP error taken for a retval")
	}
	if !memif.IsSocketGone(api.VPPApiError(-73)) || !memif.IsSocketGone(api.VPPApiError(-2)) || memif.IsSocketGone(api.VPPApiError(-74)) {
		t.Error("IsSocketGone")
	}
}

// TestMessagesCRC pins the CRCs observed identical in VPP 23.06 to 26.10.
func TestMessagesCRC(t *testing.T) {
	want := map[string]string{
		"memif_socket_filename_add_del_v2": "34223bdf", "memif_create_v2": "8c7de5f7", "memif_delete": "f9e6675e",
		"memif_dump": "51077d14", "memif_details": "da34feb9",
		"memif_socket_filename_details": "7ff326f7",
	}
	seen := map[string]bool{}
	for _, m := range memif.Messages() {
		if crc, ok := want[m.GetMessageName()]; ok && crc != m.GetCrcString() {
			t.Errorf("%s CRC %s, want %s", m.GetMessageName(), m.GetCrcString(), crc)
		}
		seen[m.GetMessageName()] = true
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("Messages lacks %s", name)
		}
	}
}

func TestCreate(t *testing.T) {
	c := newFakeChannel()
	idx, id, err := memif.Create(c, memif.Spec{Role: "master", SocketPath: "/run/a.sock"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.names(), []string{"memif_socket_filename_add_del_v2", "memif_create_v2"}) {
		t.Errorf("requests %v", c.names())
	}
	if c.sockets[id] != "/run/a.sock" || c.memifs[uint32(idx)] == nil || c.memifs[uint32(idx)].SocketID != id {
		t.Errorf("state: index %d socket %d: %v %v", idx, id, c.sockets, c.memifs)
	}
	if create := c.sent[1].(*vppmemif.MemifCreateV2); create.SocketID != id {
		t.Errorf("created on socket %d, registered %d", create.SocketID, id)
	}
}

func TestCreateFailures(t *testing.T) {
	t.Run("create", func(t *testing.T) {
		c := newFakeChannel()
		c.fail["memif_create_v2"] = int32(api.SYSCALL_ERROR_4)
		_, _, err := memif.Create(c, memif.Spec{Role: "master", SocketPath: "/run/a.sock"})
		if err == nil || !strings.Contains(err.Error(), "creating memif master on /run/a.sock") || !memif.IsRetval(err, int32(api.SYSCALL_ERROR_4)) {
			t.Fatalf("error %v", err)
		}
		// The registration made for it is undone.
		if !slices.Equal(c.names(), []string{"memif_socket_filename_add_del_v2", "memif_create_v2", "memif_socket_filename_add_del_v2"}) || len(c.sockets) != 1 {
			t.Errorf("requests %v, sockets %v", c.names(), c.sockets)
		}
	})
	t.Run("register", func(t *testing.T) {
		c := newFakeChannel()
		c.fail["memif_socket_filename_add_del_v2"] = int32(api.INVALID_ARGUMENT)
		_, _, err := memif.Create(c, memif.Spec{SocketPath: "/run/a.sock"})
		if err == nil || !strings.Contains(err.Error(), "registering memif socket /run/a.sock") || len(c.sent) != 1 {
			t.Errorf("error %v, requests %v", err, c.names())
		}
	})
	t.Run("invalid spec", func(t *testing.T) {
		c := newFakeChannel()
		if _, _, err := memif.Create(c, memif.Spec{MAC: "x"}); err == nil || len(c.sent) != 0 {
			t.Errorf("error %v, requests %v", err, c.names())
		}
	})
}

func TestDelete(t *testing.T) {
	c := newFakeChannel()
	idx, id, err := memif.Create(c, memif.Spec{SocketPath: "/run/a.sock"})
	if err != nil {
		t.Fatal(err)
	}
	c.sent = nil
	if err := memif.Delete(c, idx, id); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.names(), []string{"memif_delete", "memif_socket_filename_add_del_v2"}) || len(c.memifs) != 0 || len(c.sockets) != 1 {
		t.Errorf("requests %v, state %v %v", c.names(), c.memifs, c.sockets)
	}
	// Both already gone (an earlier DEL, a VPP restart): -2 and -73.
	if err := memif.Delete(c, idx, id); err != nil {
		t.Errorf("second Delete: %v", err)
	}
	// Socket id 0 is VPP's default: never unregistered.
	c.sent = nil
	if err := memif.Delete(c, idx, 0); err != nil || len(c.sent) != 1 {
		t.Errorf("Delete without socket: %v, %v", err, c.names())
	}
}

func TestDeleteErrors(t *testing.T) {
	c := newFakeChannel()
	idx, id, _ := memif.Create(c, memif.Spec{SocketPath: "/run/a.sock"})
	other, _, _ := memif.Create(c, memif.Spec{SocketPath: "/run/b.sock"})
	c.memifs[uint32(other)].SocketID = id // another memif still uses the socket
	c.fail["memif_delete"] = int32(api.UNSPECIFIED)
	err := memif.Delete(c, idx, id)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("deleting memif %d", idx)) ||
		!strings.Contains(err.Error(), fmt.Sprintf("unregistering memif socket %d: %v", id, api.VPPApiError(memif.RetvalInUse))) {
		t.Errorf("error %v", err)
	}
}

func TestList(t *testing.T) {
	c := newFakeChannel()
	a, ida, _ := memif.Create(c, memif.Spec{Role: "master", Mode: "ip", SocketPath: "/run/a.sock"})
	b, idb, _ := memif.Create(c, memif.Spec{Role: "slave", SocketPath: "/run/b.sock"})
	c.memifs[uint32(a)].Flags = interface_types.IF_STATUS_API_FLAG_ADMIN_UP | interface_types.IF_STATUS_API_FLAG_LINK_UP
	c.sent = nil
	ifs, sockets, err := memif.List(c)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.names(), []string{"memif_dump", "memif_socket_filename_dump"}) {
		t.Errorf("requests %v", c.names())
	}
	want := []memif.Interface{
		{SwIfIndex: a, Name: fmt.Sprintf("memif%d/0", ida), SocketID: ida, SocketPath: "/run/a.sock", Role: "master", Mode: "ip", AdminUp: true, LinkUp: true},
		{SwIfIndex: b, Name: fmt.Sprintf("memif%d/0", idb), SocketID: idb, SocketPath: "/run/b.sock", Role: "slave", Mode: "ethernet"},
	}
	if !slices.Equal(ifs, want) {
		t.Errorf("List:\n got %+v\nwant %+v", ifs, want)
	}
	if len(sockets) != 3 || sockets[0] != "/run/vpp/memif.sock" || sockets[idb] != "/run/b.sock" {
		t.Errorf("sockets %v", sockets)
	}

	c.dumpErr = errors.New("connection lost")
	if _, _, err := memif.List(c); err == nil || !strings.Contains(err.Error(), "memif_dump: connection lost") {
		t.Errorf("List error %v", err)
	}
}
