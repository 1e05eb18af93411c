package ovsdb

import (
	"encoding/json"
	"maps"
	"slices"
	"testing"

	"github.com/userspace-cni/userspace/pkg/engine"
	"github.com/userspace-cni/userspace/pkg/netconf"
)

func TestRestoreAfterVswitchdRestart(t *testing.T) {
	h := newHarness(t)
	e := h.connect(0)
	a := h.attachment(cidA, "net1", netconf.VhostServer)
	data := attachOK(t, e, a)
	if err := a.Layout.RememberSocket(); err != nil {
		t.Fatal(err)
	}
	rec := decodeRecord(t, data)

	h.restartSwitch()
	waitFor(t, "the restarted switch to apply the port", func() bool {
		i := h.interfaces()[rec.Port]
		return i != nil && i.Ofport != nil && *i.Ofport > 0
	})
	// The pod's name still holds the old switch's socket: CHECK says so.
	err := e.Check(ctxT(t), a, data)
	errorContains(t, err, "not the one ovs-vswitchd listens on")

	restored, err := e.Restore(ctxT(t), a, data)
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	checkExposed(t, a, rec.SwitchSocket)
	if err := e.Check(ctxT(t), a, restored); err != nil {
		t.Fatalf("Check after Restore: %v", err)
	}
	if err := a.Layout.RememberSocket(); err != nil {
		t.Fatal(err)
	}
	// The same port: the database kept it, nothing was added.
	if got := h.pluginPorts(); !slices.Equal(got, []string{rec.Port}) {
		t.Fatalf("ports after Restore: %v", got)
	}
	again, err := e.Restore(ctxT(t), a, restored)
	if err != nil || string(again) != string(restored) {
		t.Fatalf("a second Restore changed something: %s, %v", again, err)
	}
	if err := e.Detach(ctxT(t), a, restored); err != nil {
		t.Fatal(err)
	}
	h.assertNoPort(rec.Port)
	if a.Layout.Exists(a.Layout.SocketName) {
		t.Fatal("Detach after Restore left the exposed socket")
	}
}

func TestRestoreAfterEmptyDatabase(t *testing.T) {
	h := newHarness(t)
	e := h.connect(0)
	client := h.attachment(cidA, "net1", netconf.VhostClient)
	client.MTU, client.Host.Bridge.VlanID = 9000, 7
	server := h.attachment(cidB, "net1", netconf.VhostServer)
	datas := map[string]json.RawMessage{}
	ids := map[string]map[string]string{}
	for name, a := range map[string]*engine.Attachment{"client": client, "server": server} {
		datas[name] = attachOK(t, e, a)
		if err := a.Layout.RememberSocket(); err != nil {
			t.Fatal(err)
		}
		ids[name] = h.ports()[PortName(a.ContainerID, a.IfName)].ExternalIDs
	}
	h.emptyDatabase()
	waitFor(t, "the switch to drop the ports", func() bool { return len(h.pluginPorts()) == 0 })
	for name, a := range map[string]*engine.Attachment{"client": client, "server": server} {
		err := e.Check(ctxT(t), a, datas[name])
		errorContains(t, err, "no port")
		restored, err := e.Restore(ctxT(t), a, datas[name])
		if err != nil {
			t.Fatalf("Restore %s: %v", name, err)
		}
		if err := e.Check(ctxT(t), a, restored); err != nil {
			t.Fatalf("Check %s after Restore: %v", name, err)
		}
		port := h.ports()[PortName(a.ContainerID, a.IfName)]
		if port == nil || !maps.Equal(port.ExternalIDs, ids[name]) {
			t.Fatalf("%s: restored port's ownership %v, want %v", name, port, ids[name])
		}
		if name == "server" {
			checkExposed(t, a, decodeRecord(t, restored).SwitchSocket)
		}
	}
	if b := h.bridges()["br0"]; b == nil || b.DatapathType != "netdev" {
		t.Fatalf("bridge br0 not restored: %+v", b)
	}
	for name, a := range map[string]*engine.Attachment{"client": client, "server": server} {
		if err := e.Detach(ctxT(t), a, datas[name]); err != nil {
			t.Fatal(err)
		}
	}
	if got := h.pluginPorts(); len(got) != 0 {
		t.Fatalf("ports left: %v", got)
	}
	if _, ok := h.bridges()["br0"]; ok {
		t.Fatal("the bridge the restore created is left after the last DEL")
	}
}
