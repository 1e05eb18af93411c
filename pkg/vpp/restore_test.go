package vpp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/userspace-cni/userspace/pkg/engine"
	"github.com/userspace-cni/userspace/pkg/netconf"
	"github.com/userspace-cni/userspace/pkg/vpp"
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

// TestRestoreUnreadableRecord: a Restore that finds the attachment in
// place with a record it cannot decode says so in the log and returns the
// record rewritten from what VPP has.
func TestRestoreUnreadableRecord(t *testing.T) {
	v := newEnv(t)
	a := v.memifAtt(cidHex, "net1")
	v.attach(v.engine(netconf.IfTypeMemif), a)
	var logs bytes.Buffer
	e, err := vpp.Connect(context.Background(), vpp.Config{Socket: "/fake/api.sock", IfType: netconf.IfTypeMemif,
		Adapter: v.f.newConn(), Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(e.Close)
	restored, err := e.Restore(context.Background(), a, json.RawMessage(`{"swIfIndex":`))
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "unreadable engine record") {
		t.Errorf("the unreadable record is not logged: %q", logs.String())
	}
	if err := e.Check(context.Background(), a, restored); err != nil {
		t.Fatalf("Check with the rewritten record %s: %v", restored, err)
	}
	if err := e.Detach(context.Background(), a, restored); err != nil {
		t.Fatal(err)
	}
	if l := v.leftovers(); l != "" {
		t.Fatalf("left in VPP after DEL: %s", l)
	}
}
