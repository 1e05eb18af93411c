package vpp_test

import (
	"context"
	"net"
	"strings"
	"testing"

	"github.com/userspace-cni/userspace/pkg/engine"
	"github.com/userspace-cni/userspace/pkg/netconf"
)

func TestRestore(t *testing.T) {
	for _, tc := range []struct {
		name string
		att  func(v *testEnv) *engine.Attachment
	}{
		{"master", func(v *testEnv) *engine.Attachment { return v.memifAtt(cidHex, "net1") }},
		{"slave", func(v *testEnv) *engine.Attachment {
			return v.memifAtt(cidHex, "net1", func(a *engine.Attachment) {
				a.Host.Memif.Role, a.Host.NetType = netconf.MemifSlave, netconf.NetTypeInterface
				_, n, _ := net.ParseCIDR("10.1.2.3/24")
				n.IP = net.ParseIP("10.1.2.3").To4()
				a.IPs = []net.IPNet{*n}
			})
		}},
		{"vhserver", func(v *testEnv) *engine.Attachment { return v.vhostAtt(cidHex, "net1", netconf.VhostServer) }},
		{"vhclient", func(v *testEnv) *engine.Attachment { return v.vhostAtt(cidHex, "net1", netconf.VhostClient) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := newEnv(t)
			a := tc.att(v)
			data := v.attach(v.engine(a.Host.IfType), a)
			v.f.restart()
			e := v.engine(a.Host.IfType)
			if err := e.Check(context.Background(), a, data); err == nil || !strings.Contains(err.Error(), "no interface tagged") {
				t.Fatalf("Check after the restart: %v", err)
			}
			restored, err := e.Restore(context.Background(), a, data)
			if err != nil {
				t.Fatalf("Restore: %v", err)
			}
			if err := e.Check(context.Background(), a, restored); err != nil {
				t.Fatalf("Check after Restore: %v", err)
			}
			before := v.leftovers()
			again, err := e.Restore(context.Background(), a, restored)
			if err != nil || string(again) != string(restored) || v.leftovers() != before {
				t.Fatalf("a second Restore changed something: %s, %v; VPP %s, was %s", again, err, v.leftovers(), before)
			}
			if err := e.Detach(context.Background(), a, restored); err != nil {
				t.Fatal(err)
			}
			if l := v.leftovers(); l != "" {
				t.Fatalf("left in VPP after DEL: %s", l)
			}
		})
	}
}

// A restore cut short (VPP restarted again half-way, or the agent killed)
// leaves an untagged memif and a socket registration: the next one removes
// them rather than adding a second memif on the socket.
func TestRestoreAfterHalfRestore(t *testing.T) {
	v := newEnv(t)
	a := v.memifAtt(cidHex, "net1")
	data := v.attach(v.engine(netconf.IfTypeMemif), a)
	v.f.restart()
	v.f.failNth(reqTag, 1, -1)
	if _, err := v.engine(netconf.IfTypeMemif).Restore(context.Background(), a, data); err == nil {
		t.Fatal("Restore succeeded with a failing tag request")
	}
	e := v.engine(netconf.IfTypeMemif)
	restored, err := e.Restore(context.Background(), a, data)
	if err != nil {
		t.Fatal(err)
	}
	l := v.leftovers()
	if strings.Count(l, "interface ") != 1 || strings.Count(l, "socket ") != 1 {
		t.Fatalf("after two restores VPP holds %s", l)
	}
	if err := e.Detach(context.Background(), a, restored); err != nil {
		t.Fatal(err)
	}
	if l := v.leftovers(); l != "" {
		t.Fatalf("left in VPP after DEL: %s", l)
	}
}
