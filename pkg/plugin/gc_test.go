package plugin_test

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/userspace-cni/userspace/pkg/configdata"
	"github.com/userspace-cni/userspace/pkg/engine"
	"github.com/userspace-cni/userspace/pkg/netconf"
	"github.com/userspace-cni/userspace/pkg/sockdir"
	"github.com/userspace-cni/userspace/pkg/state"
)

// gcArgs are GC's and STATUS's arguments: no container.
func gcArgs(conf []byte) *skel.CmdArgs {
	return &skel.CmdArgs{Path: cniPath, StdinData: conf}
}

// makeSocket leaves a unix socket file nothing listens on at path.
func makeSocket(t *testing.T, path string) {
	t.Helper()
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
}

// gcNode is a node with, for network net1 unless said otherwise:
//
//	valid      ADDed, in valid-attachments
//	stale1/2   ADDed, not in valid-attachments
//	other      ADDed on network net2
//	lost       a net1 port on the switch whose record was lost, with its
//	           socket and config data in a pod volume
//	lostValid  like lost, but in valid-attachments
//	lostOther  a net2 port without a record
//	vpp        a net1 record of another engine
type gcNode struct {
	*testEnv
	ids       map[string]string
	lostDir   string
	lostData  string
	lostSock  string
	validArgs []string
}

func newGCNode(t *testing.T) *gcNode {
	e := newEnv(t)
	n := &gcNode{testEnv: e, ids: map[string]string{}}
	for _, name := range []string{"valid", "stale1", "stale2", "other", "lost", "lostValid", "lostOther", "vpp"} {
		n.ids[name] = containerID("gc-" + name)
	}
	conf := e.conf("1.1.0", withIPAM("recording-ipam"))
	for _, name := range []string{"valid", "stale1", "stale2"} {
		e.add(n.ids[name], "net1", conf)
	}
	e.add(n.ids["other"], "net1", e.conf("1.1.0", withIPAM("recording-ipam"), withName("net2")))

	// A pod volume (not a per-pod directory of the plugin) with the lost
	// attachment's socket and config data.
	n.lostDir = filepath.Join(e.shared, "volume-of-lost")
	mustMkdir(t, n.lostDir)
	n.lostSock = filepath.Join(n.lostDir, "lost.sock")
	makeSocket(t, n.lostSock)
	n.lostData = filepath.Join(n.lostDir, configdata.FileName(n.ids["lost"], "net1"))
	mustWrite(t, n.lostData, "{}")
	mustWrite(t, filepath.Join(n.lostDir, "pod-file"), "the pod's own file")
	e.sw.addPort(engine.Attachment{ContainerID: n.ids["lost"], IfName: "net1", Network: "net1",
		Layout: &sockdir.Layout{Base: e.shared, Dir: n.lostDir, SocketName: "lost.sock"}})
	for name, network := range map[string]string{"lostValid": "net1", "lostOther": "net2"} {
		id := n.ids[name]
		e.sw.addPort(engine.Attachment{ContainerID: id, IfName: "net1", Network: network,
			Layout: &sockdir.Layout{Base: e.shared, Dir: e.sockDir(id), OwnDir: true, SocketName: id[:12] + "-net1"}})
	}
	vppID := n.ids["vpp"]
	if err := e.store().Save(&state.Record{ContainerID: vppID, IfName: "net1", Network: "net1", Engine: netconf.EngineVPP,
		Layout:  &sockdir.Layout{Base: e.shared, Dir: e.sockDir(vppID), OwnDir: true, SocketName: vppID[:12] + "-net1"},
		Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	n.validArgs = []string{n.ids["valid"], "net1", n.ids["lostValid"], "net1"}
	return n
}

func (n *gcNode) gc() error {
	n.t.Helper()
	conf := n.conf("1.1.0", withIPAM("recording-ipam"), withValid(n.validArgs...))
	out, err := run(n.t, n.p.GC, gcArgs(conf))
	if out != "" {
		n.t.Errorf("GC printed %q", out)
	}
	return err
}

func (n *gcNode) records() []string {
	n.t.Helper()
	recs, err := n.store().List()
	if err != nil {
		n.t.Fatal(err)
	}
	var out []string
	for _, r := range recs {
		out = append(out, n.name(r.ContainerID))
	}
	sort.Strings(out)
	return out
}

func (n *gcNode) ports() []string {
	var out []string
	for _, k := range n.sw.portKeys() {
		out = append(out, n.name(strings.TrimSuffix(k, "/net1")))
	}
	sort.Strings(out)
	return out
}

func (n *gcNode) name(id string) string {
	for name, i := range n.ids {
		if i == id {
			return name
		}
	}
	return id
}

func (n *gcNode) detached() []string {
	var out []string
	for _, c := range n.sw.callsOf("Detach") {
		out = append(out, n.name(c.att.ContainerID))
	}
	sort.Strings(out)
	return out
}

func TestGC(t *testing.T) {
	n := newGCNode(t)
	stale1 := n.loadRecord(n.ids["stale1"], "net1")
	if err := n.gc(); err != nil {
		t.Fatalf("GC: %v", err)
	}
	if got, want := n.records(), []string{"other", "valid", "vpp"}; !reflect.DeepEqual(got, want) {
		t.Errorf("records %v, want %v", got, want)
	}
	if got, want := n.ports(), []string{"lostOther", "lostValid", "other", "valid"}; !reflect.DeepEqual(got, want) {
		t.Errorf("ports %v, want %v", got, want)
	}
	if got, want := n.detached(), []string{"lost", "stale1", "stale2"}; !reflect.DeepEqual(got, want) {
		t.Errorf("detached %v, want %v", got, want)
	}
	// Collected in container id order, so that an incomplete GC's error
	// lists them alike on every run.
	var order []string
	for _, c := range n.sw.callsOf("Detach") {
		order = append(order, c.att.ContainerID)
	}
	if !slices.IsSorted(order) {
		t.Errorf("stale attachments collected in the order %v, not by container id", order)
	}
	for _, c := range n.sw.callsOf("Detach") {
		switch n.name(c.att.ContainerID) {
		case "stale1":
			if !jsonEqual(c.data, stale1.EngineData) || !reflect.DeepEqual(c.att.Layout, stale1.Layout) {
				t.Errorf("stale1 detached with %s %+v, want the record's %s %+v", c.data, c.att.Layout, stale1.EngineData, stale1.Layout)
			}
		case "lost":
			if c.data != nil {
				t.Errorf("lost detached with data %s though its record is gone", c.data)
			}
			if c.att.Layout == nil || c.att.Layout.SocketPath() != n.lostSock || c.att.Layout.OwnDir {
				t.Errorf("lost detached with layout %+v, want the socket the switch recorded, not owned", c.att.Layout)
			}
		}
		if c.att.Network != "net1" {
			t.Errorf("detached %s of network %q", n.name(c.att.ContainerID), c.att.Network)
		}
	}
	// Files: the stale per-pod directories go; in the lost pod's volume only
	// the plugin's files go.
	for _, name := range []string{"stale1", "stale2"} {
		if exists(n.sockDir(n.ids[name])) {
			t.Errorf("socket directory of %s left", name)
		}
	}
	for _, name := range []string{"valid", "other"} {
		if !exists(n.configDataPath(n.ids[name], "net1")) {
			t.Errorf("config data of %s removed", name)
		}
	}
	if got, want := dirEntries(t, n.lostDir), []string{"pod-file"}; !reflect.DeepEqual(got, want) {
		t.Errorf("lost pod's volume holds %v, want %v", got, want)
	}
	// IPAM collects its own, told which attachments are valid.
	calls := ipamCalls(t)
	if len(calls) == 0 || !strings.HasPrefix(calls[len(calls)-1], "GC|") {
		t.Errorf("IPAM GC not delegated: %v", calls)
	}
	stdin := ipamStdin(t)
	if last := stdin[len(stdin)-1]; !strings.Contains(last, "cni.dev/valid-attachments") || !strings.Contains(last, n.ids["valid"]) {
		t.Errorf("IPAM GC stdin lacks the valid attachments: %s", last)
	}
	n.assertClosedOnce()
	n.assertNoUseAfterClose()

	// A second GC finds nothing more to do.
	before := len(n.sw.callsOf("Detach"))
	if err := n.gc(); err != nil {
		t.Fatalf("second GC: %v", err)
	}
	if after := len(n.sw.callsOf("Detach")); after != before {
		t.Errorf("second GC detached %d more", after-before)
	}
}

func TestGCFailures(t *testing.T) {
	for _, tc := range []struct {
		name     string
		breakIt  func(n *gcNode)
		wantCode uint
		wantErr  string
		records  []string
		ports    []string
	}{
		{name: "OpenEngine fails", breakIt: func(n *gcNode) {
			n.sw.setOpenErr(fmt.Errorf("dial: %w", engine.ErrUnavailable))
		}, wantCode: uint(types.ErrPluginNotAvailable), wantErr: "switch unavailable",
			records: []string{"other", "stale1", "stale2", "valid", "vpp"},
			ports:   []string{"lost", "lostOther", "lostValid", "other", "stale1", "stale2", "valid"}},
		{name: "ListOwned fails", breakIt: func(n *gcNode) {
			n.sw.setFail("ListOwned", errors.New("monitor failed"))
		}, wantCode: uint(types.ErrInternal), wantErr: "monitor failed",
			// What the records name is still collected.
			records: []string{"other", "valid", "vpp"},
			ports:   []string{"lost", "lostOther", "lostValid", "other", "valid"}},
		{name: "Detach fails", breakIt: func(n *gcNode) {
			n.sw.setFail("Detach", errors.New("transaction failed"))
		}, wantCode: uint(types.ErrInternal), wantErr: "transaction failed",
			// Records stay until their ports are gone.
			records: []string{"other", "stale1", "stale2", "valid", "vpp"},
			ports:   []string{"lost", "lostOther", "lostValid", "other", "stale1", "stale2", "valid"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newGCNode(t)
			tc.breakIt(n)
			err := n.gc()
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("want an error about %q, got %v", tc.wantErr, err)
			}
			if got := cniCode(err); got != tc.wantCode {
				t.Errorf("error code %d, want %d: %v", got, tc.wantCode, err)
			}
			if got := n.records(); !reflect.DeepEqual(got, tc.records) {
				t.Errorf("records %v, want %v", got, tc.records)
			}
			if got := n.ports(); !reflect.DeepEqual(got, tc.ports) {
				t.Errorf("ports %v, want %v", got, tc.ports)
			}
			n.assertClosedOnce()
			n.assertNoUseAfterClose()

			// Once the switch recovers, GC completes.
			n.sw.setOpenErr(nil)
			n.sw.setFail("ListOwned", nil)
			n.sw.setFail("Detach", nil)
			if err := n.gc(); err != nil {
				t.Fatalf("GC after recovery: %v", err)
			}
			if got, want := n.records(), []string{"other", "valid", "vpp"}; !reflect.DeepEqual(got, want) {
				t.Errorf("records after recovery %v, want %v", got, want)
			}
			if got, want := n.ports(), []string{"lostOther", "lostValid", "other", "valid"}; !reflect.DeepEqual(got, want) {
				t.Errorf("ports after recovery %v, want %v", got, want)
			}
		})
	}
}
