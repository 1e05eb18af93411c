package ovsdb

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	ovs "github.com/ovn-kubernetes/libovsdb/ovsdb"
	"golang.org/x/sys/unix"

	"github.com/userspace-cni/userspace/pkg/engine"
	"github.com/userspace-cni/userspace/pkg/netconf"
	"github.com/userspace-cni/userspace/pkg/ovsdb/vswitch"
)

const (
	cidA = "aaaaaaaaaaaa0000000000000000000000000000000000000000000000000001"
	cidB = "bbbbbbbbbbbb0000000000000000000000000000000000000000000000000002"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func attachOK(t *testing.T, e *Engine, a *engine.Attachment) json.RawMessage {
	t.Helper()
	data, err := e.Attach(ctxT(t), a)
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	return data
}

func decodeRecord(t *testing.T, data json.RawMessage) record {
	t.Helper()
	var rec record
	if err := json.Unmarshal(data, &rec); err != nil {
		t.Fatalf("record %s does not decode: %v", data, err)
	}
	return rec
}

// pluginPorts lists the plugin's Ports (by their ownership keys).
func (h *harness) pluginPorts() []string {
	var names []string
	for name, p := range h.ports() {
		if p.ExternalIDs[KeyContainerID] != "" {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

func (h *harness) assertNoPort(name string) {
	h.t.Helper()
	if p := h.ports()[name]; p != nil {
		h.t.Errorf("port %s is still in the database", name)
	}
	if i := h.interfaces()[name]; i != nil {
		h.t.Errorf("interface %s is still in the database", name)
	}
}

func TestAttachClientMode(t *testing.T) {
	cases := []struct {
		name    string
		mtu     int
		vlan    int
		longDir bool
	}{
		{name: "plain"},
		{name: "mtu and vlan", mtu: 9000, vlan: 100},
		{name: "long socket path uses the short link", longDir: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.addBridge("br0", "netdev")
			e := h.connect(0)
			a := h.attachment(cidA, "net1", netconf.VhostClient)
			if tc.longDir {
				dir := filepath.Join(h.shared, strings.Repeat("d", 60), strings.Repeat("e", 40))
				a = h.attachmentIn(cidA, "net1", netconf.VhostClient, dir, true, "vhost-user-socket")
				if a.Layout.ShortLink == "" {
					t.Fatalf("layout %+v has no short link", a.Layout)
				}
			}
			a.MTU = tc.mtu
			a.Host.Bridge.VlanID = tc.vlan
			txs := h.recordTransactions()

			rec := decodeRecord(t, attachOK(t, e, a))

			port := PortName(cidA, "net1")
			if want := (record{Bridge: "br0", Port: port, Type: TypeVhostClient}); rec != want {
				t.Errorf("record = %+v, want %+v", rec, want)
			}
			if got := txs(); len(got) != 1 {
				t.Errorf("Attach wrote in %d transactions, want 1: %v", len(got), got)
			}
			iface := h.interfaces()[port]
			if iface == nil {
				t.Fatalf("no interface %s", port)
			}
			if iface.Type != TypeVhostClient {
				t.Errorf("interface type %q", iface.Type)
			}
			if got := iface.Options[optServerPath]; got != a.Layout.ConnectPath() {
				t.Errorf("vhost-server-path = %q, want %q", got, a.Layout.ConnectPath())
			}
			if tc.longDir && len(iface.Options[optServerPath]) > 107 {
				t.Errorf("vhost-server-path %q exceeds sun_path", iface.Options[optServerPath])
			}
			if tc.mtu == 0 && iface.MTURequest != nil {
				t.Errorf("mtu_request = %d, want none", *iface.MTURequest)
			}
			if tc.mtu != 0 && (iface.MTURequest == nil || *iface.MTURequest != tc.mtu) {
				t.Errorf("mtu_request = %v, want %d", deref(iface.MTURequest), tc.mtu)
			}
			wantIDs := map[string]string{
				KeyContainerID:  cidA,
				KeyIfName:       "net1",
				KeyNetwork:      "net1",
				KeyPodNamespace: "ns1",
				KeyPodName:      a.PodName,
				KeyPodUID:       a.PodUID,
				KeySocket:       a.Layout.SocketPath(),
				KeyBridge:       "br0",
			}
			if fmt.Sprint(iface.ExternalIDs) != fmt.Sprint(wantIDs) {
				t.Errorf("interface external_ids = %v, want %v", iface.ExternalIDs, wantIDs)
			}
			p := h.ports()[port]
			if p == nil {
				t.Fatalf("no port %s", port)
			}
			if len(p.Interfaces) != 1 || p.Interfaces[0] != iface.UUID {
				t.Errorf("port interfaces = %v, want [%s]", p.Interfaces, iface.UUID)
			}
			if fmt.Sprint(p.ExternalIDs) != fmt.Sprint(wantIDs) {
				t.Errorf("port external_ids = %v, want %v", p.ExternalIDs, wantIDs)
			}
			if tc.vlan == 0 && p.Tag != nil {
				t.Errorf("tag = %d, want none", *p.Tag)
			}
			if tc.vlan != 0 && (p.Tag == nil || *p.Tag != tc.vlan) {
				t.Errorf("tag = %v, want %d", deref(p.Tag), tc.vlan)
			}
			if got, want := h.bridgePortNames("br0"), []string{port, "br0"}; !slices.Equal(got, want) {
				t.Errorf("br0 ports = %v, want %v", got, want)
			}
			if b := h.bridges()["br0"]; b.ExternalIDs[KeyCreatedBy] != "" {
				t.Errorf("an existing bridge got the created-by marker")
			}
			waitFor(t, "the switch to apply the port", func() bool {
				i := h.interfaces()[port]
				return i.Ofport != nil && *i.Ofport > 0
			})
			if err := e.Check(ctxT(t), a, nil); err != nil {
				t.Errorf("Check: %v", err)
			}
		})
	}
}

func TestAttachCreatesBridge(t *testing.T) {
	h := newHarness(t)
	e := h.connect(0)
	a := h.attachment(cidA, "net1", netconf.VhostClient)
	txs := h.recordTransactions()
	rec := decodeRecord(t, attachOK(t, e, a))
	if rec.Bridge != "br0" {
		t.Errorf("record bridge %q", rec.Bridge)
	}
	if got := txs(); len(got) != 1 {
		t.Errorf("Attach wrote in %d transactions, want 1: %v", len(got), got)
	}
	b := h.bridges()["br0"]
	if b == nil {
		t.Fatal("bridge br0 not created")
	}
	if b.DatapathType != "netdev" {
		t.Errorf("datapath_type %q, want netdev", b.DatapathType)
	}
	if b.ExternalIDs[KeyCreatedBy] != createdByValue {
		t.Errorf("bridge external_ids %v lack the created-by marker", b.ExternalIDs)
	}
	if got, want := h.bridgePortNames("br0"), []string{PortName(cidA, "net1"), "br0"}; !slices.Equal(got, want) {
		t.Errorf("br0 ports = %v, want %v", got, want)
	}
	local := h.interfaces()["br0"]
	if local == nil || local.Type != "internal" {
		t.Errorf("local interface = %+v, want type internal", local)
	}
	if root := h.root(); !slices.Contains(root.Bridges, b.UUID) {
		t.Errorf("Open_vSwitch bridges %v do not include br0 %s", root.Bridges, b.UUID)
	}
}

func TestAttachRefusesSystemBridge(t *testing.T) {
	h := newHarness(t)
	h.addBridge("br0", "system")
	e := h.connect(0)
	_, err := e.Attach(ctxT(t), h.attachment(cidA, "net1", netconf.VhostClient))
	errorContains(t, err, `bridge "br0"`, `datapath_type "system"`, "netdev")
	if got, want := h.bridgePortNames("br0"), []string{"br0"}; !slices.Equal(got, want) {
		t.Errorf("br0 ports = %v, want %v", got, want)
	}
	h.assertNoPort(PortName(cidA, "net1"))
}

func TestAttachPreflight(t *testing.T) {
	cases := []struct {
		name        string
		root        ovs.Row
		mode        string
		want        []string
		unavailable bool
	}{
		{name: "dpdk not initialised", root: ovs.Row{"dpdk_initialized": false}, mode: netconf.VhostClient,
			want: []string{"dpdk_initialized"}, unavailable: true},
		{name: "no vhost-user client type", mode: netconf.VhostClient,
			root: ovs.Row{"iface_types": ovs.OvsSet{GoSet: []any{"internal", "dpdkvhostuser"}}},
			want: []string{"dpdkvhostuserclient"}},
		{name: "no vhost-user server type", mode: netconf.VhostServer,
			root: ovs.Row{"iface_types": ovs.OvsSet{GoSet: []any{"internal", "dpdkvhostuserclient"}}},
			want: []string{"does not support dpdkvhostuser ports"}},
		{name: "no types at all", mode: netconf.VhostClient,
			root: ovs.Row{"iface_types": ovs.OvsSet{GoSet: []any{}}},
			want: []string{"does not support dpdkvhostuserclient"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.setRoot(tc.root)
			e := h.connect(0)
			_, err := e.Attach(ctxT(t), h.attachment(cidA, "net1", tc.mode))
			errorContains(t, err, tc.want...)
			if tc.unavailable && !errors.Is(err, engine.ErrUnavailable) {
				t.Errorf("error %v does not wrap engine.ErrUnavailable", err)
			}
			if len(h.bridges()) != 0 || len(h.ports()) != 0 || len(h.interfaces()) != 0 {
				t.Errorf("pre-flight failure left rows: bridges %v ports %v", h.bridges(), h.ports())
			}
		})
	}
}

func TestAttachDuplicateSocket(t *testing.T) {
	// Both attachments use one socket path: a shared directory with a
	// fixed socket file name, as a misconfigured network would.
	for _, mode := range []string{netconf.VhostClient, netconf.VhostServer} {
		t.Run("plugin port/"+mode, func(t *testing.T) {
			h := newHarness(t)
			e := h.connect(0)
			dir := filepath.Join(h.shared, "common")
			first := h.attachmentIn(cidA, "net1", mode, dir, false, "vhost.sock")
			second := h.attachmentIn(cidB, "net1", mode, dir, false, "vhost.sock")
			firstData := attachOK(t, e, first)
			_, err := e.Attach(ctxT(t), second)
			errorContains(t, err, "socket "+first.Layout.SocketPath(), PortName(cidA, "net1"))
			h.assertNoPort(PortName(cidB, "net1"))
			if got, want := h.pluginPorts(), []string{PortName(cidA, "net1")}; !slices.Equal(got, want) {
				t.Errorf("plugin ports %v, want %v", got, want)
			}
			if err := e.Check(ctxT(t), first, firstData); err != nil {
				t.Errorf("the first attachment broke: %v", err)
			}
		})
	}
	t.Run("foreign interface on the path", func(t *testing.T) {
		h := newHarness(t)
		h.addBridge("br0", "netdev")
		e := h.connect(0)
		a := h.attachment(cidA, "net1", netconf.VhostClient)
		h.addForeignPort("br0", ovs.Row{"name": "vhu-foreign", "type": TypeVhostClient,
			"options": ovsMap(map[string]string{optServerPath: a.Layout.ConnectPath()})})
		_, err := e.Attach(ctxT(t), a)
		errorContains(t, err, "socket "+a.Layout.SocketPath(), `"vhu-foreign"`)
		h.assertNoPort(PortName(cidA, "net1"))
		if got, want := h.bridgePortNames("br0"), []string{"br0", "vhu-foreign"}; !slices.Equal(got, want) {
			t.Errorf("br0 ports = %v, want %v", got, want)
		}
	})
	t.Run("foreign interface with our name", func(t *testing.T) {
		h := newHarness(t)
		h.addBridge("br0", "netdev")
		e := h.connect(0)
		port := PortName(cidA, "net1")
		h.addForeignPort("br0", ovs.Row{"name": port, "type": "internal"})
		_, err := e.Attach(ctxT(t), h.attachment(cidA, "net1", netconf.VhostClient))
		errorContains(t, err, fmt.Sprintf("%q already exists", port), "does not belong")
		if i := h.interfaces()[port]; i == nil || i.Type != "internal" {
			t.Errorf("the foreign interface was changed: %+v", i)
		}
	})
}

// TestAttachSocketRace makes another writer take the socket path between
// the engine's read and its write: only the wait operations inside the
// write transaction (onlyOneOp) can catch that.
func TestAttachSocketRace(t *testing.T) {
	cases := []struct {
		name  string
		mode  string
		other func(a *engine.Attachment) ovs.Row
	}{
		{name: "switch-side path taken by a foreign interface", mode: netconf.VhostClient,
			other: func(a *engine.Attachment) ovs.Row {
				return ovs.Row{"name": "vhu-racer", "type": TypeVhostClient,
					"options": ovsMap(map[string]string{optServerPath: a.Layout.ConnectPath()})}
			}},
		{name: "socket taken by another plugin invocation", mode: netconf.VhostServer,
			other: func(a *engine.Attachment) ovs.Row {
				return ovs.Row{"name": "vhu-racer", "type": TypeVhostServer,
					"external_ids": ovsMap(map[string]string{KeyContainerID: cidB, KeyIfName: "net9", KeySocket: a.Layout.SocketPath()})}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.addBridge("br0", "netdev")
			e := h.connect(0)
			a := h.attachment(cidA, "net1", tc.mode)
			port := PortName(cidA, "net1")
			fired := false
			h.setHook(func(ops []ovs.Operation) {
				for _, op := range ops {
					if !fired && op.Op == ovs.OperationInsert && op.Table == vswitch.InterfaceTable && op.Row["name"] == port {
						fired = true
						if _, err := h.db.execLocked(foreignPortOps("br0", tc.other(a))...); err != nil {
							t.Errorf("racing insert: %v", err)
						}
					}
				}
			})
			_, err := e.Attach(ctxT(t), a)
			errorContains(t, err, "socket "+a.Layout.SocketPath(), "taken by another interface")
			if !fired {
				t.Fatal("the racing writer never ran")
			}
			h.assertNoPort(port)
			if got, want := h.bridgePortNames("br0"), []string{"br0", "vhu-racer"}; !slices.Equal(got, want) {
				t.Errorf("br0 ports = %v, want %v", got, want)
			}
		})
	}
}

func TestAttachRetryReplaces(t *testing.T) {
	for _, mode := range []string{netconf.VhostClient, netconf.VhostServer} {
		t.Run(mode, func(t *testing.T) {
			h := newHarness(t)
			e := h.connect(0)
			a := h.attachment(cidA, "net1", mode)
			attachOK(t, e, a)
			old := h.ports()[PortName(cidA, "net1")]
			a.MTU = 2000
			data := attachOK(t, e, a)
			if got, want := h.pluginPorts(), []string{PortName(cidA, "net1")}; !slices.Equal(got, want) {
				t.Fatalf("plugin ports %v, want %v", got, want)
			}
			p := h.ports()[PortName(cidA, "net1")]
			if p.UUID == old.UUID {
				t.Errorf("the old port was kept, not replaced")
			}
			if got, want := h.bridgePortNames("br0"), []string{PortName(cidA, "net1"), "br0"}; !slices.Equal(got, want) {
				t.Errorf("br0 ports = %v, want %v", got, want)
			}
			if n := len(h.interfaces()); n != 2 {
				t.Errorf("%d interfaces, want 2 (ours and the bridge's)", n)
			}
			waitFor(t, "the switch to apply the port", func() bool {
				i := h.interfaces()[PortName(cidA, "net1")]
				return i.Ofport != nil && *i.Ofport > 0
			})
			if err := e.Check(ctxT(t), a, data); err != nil {
				t.Errorf("Check after the retried ADD: %v", err)
			}
		})
	}
}

func TestAttachConfirm(t *testing.T) {
	cases := []struct {
		name     string
		bridge   bool // br0 exists beforehand
		verdict  verdict
		timeout  time.Duration
		want     []string
		unavail  bool
		maxDelay time.Duration
	}{
		{name: "applied", bridge: true, timeout: 2 * time.Second},
		{name: "applied on a new bridge", timeout: 2 * time.Second},
		{name: "refused", bridge: true, timeout: 2 * time.Second,
			verdict: verdict{Error: "could not open vhost-user socket: No such file or directory"},
			want:    []string{"rejected port", "could not open vhost-user socket: No such file or directory"}},
		{name: "refused on a new bridge", timeout: 2 * time.Second,
			verdict: verdict{Error: "mempool failure"}, want: []string{"mempool failure"}},
		{name: "never applied", bridge: true, timeout: 300 * time.Millisecond, verdict: verdict{Never: true},
			want: []string{"ovs-vswitchd", "300ms"}, unavail: true, maxDelay: 2 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			if tc.bridge {
				h.addBridge("br0", "netdev")
			}
			h.setVerdict(func(i *vswitch.Interface) verdict {
				if i.Type == "internal" {
					return verdict{}
				}
				return tc.verdict
			})
			e := h.connect(tc.timeout)
			a := h.attachment(cidA, "net1", netconf.VhostClient)
			port := PortName(cidA, "net1")
			start := time.Now()
			_, err := e.Attach(ctxT(t), a)
			took := time.Since(start)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Attach: %v", err)
				}
				// Attach returned after the switch applied the port.
				if i := h.interfaces()[port]; i.Ofport == nil || *i.Ofport <= 0 {
					t.Errorf("Attach returned before ofport was set: %v", deref(i.Ofport))
				}
				return
			}
			errorContains(t, err, tc.want...)
			if tc.unavail != errors.Is(err, engine.ErrUnavailable) {
				t.Errorf("errors.Is(%v, ErrUnavailable) = %v, want %v", err, !tc.unavail, tc.unavail)
			}
			if tc.maxDelay > 0 && (took < tc.timeout || took > tc.maxDelay) {
				t.Errorf("Attach failed after %s, want about %s", took, tc.timeout)
			}
			h.assertNoPort(port)
			if tc.bridge {
				if got, want := h.bridgePortNames("br0"), []string{"br0"}; !slices.Equal(got, want) {
					t.Errorf("br0 ports = %v, want %v", got, want)
				}
			} else if len(h.bridges()) != 0 || len(h.interfaces()) != 0 {
				t.Errorf("rollback left the bridge it created: %v", h.bridges())
			}
		})
	}
}

// isMounted reports whether path is a mount point in this mount namespace.
func isMounted(t *testing.T, path string) bool {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == path {
			return true
		}
	}
	return false
}

func checkExposed(t *testing.T, a *engine.Attachment, switchSocket string) {
	t.Helper()
	pod := a.Layout.SocketPath()
	fi, err := os.Lstat(pod)
	if err != nil {
		t.Fatalf("the socket is not in the pod directory: %v", err)
	}
	if fi.Mode()&fs.ModeSocket == 0 {
		t.Errorf("%s is %v, not a socket", pod, fi.Mode())
	}
	if perm := fi.Mode().Perm(); perm != 0o666 {
		t.Errorf("%s has mode %o, want 666", pod, perm)
	}
	sw, err := os.Stat(switchSocket)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(fi, sw) {
		t.Errorf("%s is not the switch's socket %s", pod, switchSocket)
	}
	c, err := net.DialTimeout("unix", a.Layout.ConnectPath(), time.Second)
	if err != nil {
		t.Errorf("the pod cannot connect to the exposed socket: %v", err)
	} else {
		_ = c.Close()
	}
}

func TestServerMode(t *testing.T) {
	for _, sub := range []string{"", "vhost"} {
		t.Run("hard link/vhost-sock-dir="+sub, func(t *testing.T) {
			h := newHarness(t)
			if sub != "" {
				if err := os.Mkdir(filepath.Join(h.runDir, sub), 0o755); err != nil {
					t.Fatal(err)
				}
				h.setRoot(ovs.Row{"other_config": ovsMap(map[string]string{"vhost-sock-dir": sub})})
			}
			e := h.connect(0) // server mode waits for the switch anyway
			a := h.attachment(cidA, "net1", netconf.VhostServer)
			data := attachOK(t, e, a)
			rec := decodeRecord(t, data)
			port := PortName(cidA, "net1")
			want := record{Bridge: "br0", Port: port, Type: TypeVhostServer,
				SwitchSocket: filepath.Join(h.runDir, sub, port)}
			if rec != want {
				t.Errorf("record = %+v, want %+v", rec, want)
			}
			if i := h.interfaces()[port]; i.Options[optServerPath] != "" {
				t.Errorf("a server-mode interface got vhost-server-path %q", i.Options[optServerPath])
			}
			checkExposed(t, a, rec.SwitchSocket)
			if err := e.Check(ctxT(t), a, data); err != nil {
				t.Errorf("Check: %v", err)
			}
			if err := e.Detach(ctxT(t), a, data); err != nil {
				t.Fatalf("Detach: %v", err)
			}
			if _, err := os.Lstat(a.Layout.SocketPath()); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("Detach left the pod's socket link: %v", err)
			}
			h.assertNoPort(port)
			waitFor(t, "the switch to remove its socket", func() bool {
				_, err := os.Lstat(rec.SwitchSocket)
				return errors.Is(err, fs.ErrNotExist)
			})
		})
	}

	t.Run("a file in the exposed socket's place is left and logged", func(t *testing.T) {
		h := newHarness(t)
		var logs bytes.Buffer
		e, err := Connect(ctxT(t), Config{Endpoint: h.endpoint, RunDir: h.runDir, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(e.Close)
		a := h.attachment(cidA, "net1", netconf.VhostServer)
		data := attachOK(t, e, a)
		pod := a.Layout.SocketPath()
		if err := os.Remove(pod); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(pod, []byte("the pod's"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := e.Detach(ctxT(t), a, data); err != nil {
			t.Fatalf("Detach: %v", err)
		}
		if b, err := os.ReadFile(pod); err != nil || string(b) != "the pod's" {
			t.Errorf("the pod's file at %s: %q, %v", pod, b, err)
		}
		if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "left alone") {
			t.Errorf("leaving the file is not logged: %q", logs.String())
		}
		h.assertNoPort(PortName(cidA, "net1"))
	})

	t.Run("bind mount across file systems", func(t *testing.T) {
		h := newHarness(t)
		// The switch's run directory on another file system: a link fails
		// with EXDEV and the engine falls back to a bind mount.
		if err := unix.Mount("tmpfs", h.runDir, "tmpfs", 0, "size=1m"); err != nil {
			t.Fatalf("mounting a tmpfs on %s: %v", h.runDir, err)
		}
		t.Cleanup(func() { _ = unix.Unmount(h.runDir, unix.MNT_DETACH) })
		e := h.connect(0)
		a := h.attachment(cidA, "net1", netconf.VhostServer)
		pod := a.Layout.SocketPath()
		t.Cleanup(func() {
			for isMounted(t, pod) {
				if err := unix.Unmount(pod, unix.MNT_DETACH); err != nil {
					t.Errorf("cleanup: unmounting %s: %v", pod, err)
					return
				}
			}
		})
		data := attachOK(t, e, a)
		rec := decodeRecord(t, data)
		if !rec.Mounted {
			t.Errorf("record %+v does not say mounted", rec)
		}
		if !isMounted(t, pod) {
			t.Errorf("%s is not a mount point", pod)
		}
		checkExposed(t, a, rec.SwitchSocket)
		if err := e.Check(ctxT(t), a, data); err != nil {
			t.Errorf("Check: %v", err)
		}
		if err := e.Detach(ctxT(t), a, data); err != nil {
			t.Fatalf("Detach: %v", err)
		}
		if isMounted(t, pod) {
			t.Errorf("Detach left %s mounted", pod)
		}
		if _, err := os.Lstat(pod); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Detach left the mount point: %v", err)
		}
		h.assertNoPort(PortName(cidA, "net1"))
	})

	t.Run("socket never appears", func(t *testing.T) {
		h := newHarness(t)
		h.addBridge("br0", "netdev")
		h.setVerdict(func(*vswitch.Interface) verdict { return verdict{NoSocket: true} })
		e := h.connect(0)
		a := h.attachment(cidA, "net1", netconf.VhostServer)
		_, err := e.Attach(ctxT(t), a)
		errorContains(t, err, "did not appear", filepath.Join(h.runDir, PortName(cidA, "net1")))
		h.assertNoPort(PortName(cidA, "net1"))
		if a.Layout.Exists(a.Layout.SocketName) {
			t.Errorf("a failed Attach left a file in the pod directory")
		}
	})

	t.Run("switch refuses", func(t *testing.T) {
		h := newHarness(t)
		h.addBridge("br0", "netdev")
		h.setVerdict(func(i *vswitch.Interface) verdict { return verdict{Error: "vhost-user server: bind failed"} })
		e := h.connect(0)
		a := h.attachment(cidA, "net1", netconf.VhostServer)
		_, err := e.Attach(ctxT(t), a)
		errorContains(t, err, "bind failed")
		h.assertNoPort(PortName(cidA, "net1"))
	})
}

func TestDetach(t *testing.T) {
	t.Run("removes port and interface, idempotent", func(t *testing.T) {
		h := newHarness(t)
		h.addBridge("br0", "netdev")
		e := h.connect(0)
		a := h.attachment(cidA, "net1", netconf.VhostClient)
		data := attachOK(t, e, a)
		for i := range 2 {
			if err := e.Detach(ctxT(t), a, data); err != nil {
				t.Fatalf("Detach #%d: %v", i+1, err)
			}
		}
		h.assertNoPort(PortName(cidA, "net1"))
		if got, want := h.bridgePortNames("br0"), []string{"br0"}; !slices.Equal(got, want) {
			t.Errorf("br0 ports = %v, want %v", got, want)
		}
		if n := len(h.interfaces()); n != 1 {
			t.Errorf("%d interfaces left, want only br0's", n)
		}
	})

	t.Run("without a record, deletes the bridge it created", func(t *testing.T) {
		h := newHarness(t)
		e := h.connect(0)
		a := h.attachment(cidA, "net1", netconf.VhostClient)
		attachOK(t, e, a)
		if err := e.Detach(ctxT(t), a, nil); err != nil {
			t.Fatalf("Detach: %v", err)
		}
		if len(h.bridges()) != 0 || len(h.ports()) != 0 || len(h.interfaces()) != 0 {
			t.Errorf("left bridges %v ports %v", h.bridges(), h.ports())
		}
		if r := h.root(); len(r.Bridges) != 0 {
			t.Errorf("Open_vSwitch bridges = %v", r.Bridges)
		}
		if err := e.Detach(ctxT(t), a, nil); err != nil {
			t.Errorf("second Detach: %v", err)
		}
	})

	t.Run("keeps a bridge it did not create", func(t *testing.T) {
		h := newHarness(t)
		h.addBridge("br0", "netdev")
		e := h.connect(0)
		a := h.attachment(cidA, "net1", netconf.VhostClient)
		data := attachOK(t, e, a)
		if err := e.Detach(ctxT(t), a, data); err != nil {
			t.Fatalf("Detach: %v", err)
		}
		if got, want := h.bridgePortNames("br0"), []string{"br0"}; !slices.Equal(got, want) {
			t.Errorf("br0 ports = %v, want %v", got, want)
		}
	})

	t.Run("keeps a created bridge until its last plugin port goes", func(t *testing.T) {
		h := newHarness(t)
		e := h.connect(0)
		a := h.attachment(cidA, "net1", netconf.VhostClient)
		b := h.attachment(cidB, "net1", netconf.VhostClient)
		dataA := attachOK(t, e, a)
		dataB := attachOK(t, e, b)
		if err := e.Detach(ctxT(t), a, dataA); err != nil {
			t.Fatalf("Detach: %v", err)
		}
		if got, want := h.bridgePortNames("br0"), []string{PortName(cidB, "net1"), "br0"}; !slices.Equal(got, want) {
			t.Errorf("br0 ports = %v, want %v", got, want)
		}
		if err := e.Detach(ctxT(t), b, dataB); err != nil {
			t.Fatalf("Detach: %v", err)
		}
		if len(h.bridges()) != 0 || len(h.interfaces()) != 0 {
			t.Errorf("the created bridge outlived its last port: %v", h.bridges())
		}
	})

	t.Run("keeps a created bridge with a foreign port", func(t *testing.T) {
		h := newHarness(t)
		e := h.connect(0)
		a := h.attachment(cidA, "net1", netconf.VhostClient)
		data := attachOK(t, e, a)
		h.addForeignPort("br0", ovs.Row{"name": "dpdk0", "type": "dpdk"})
		if err := e.Detach(ctxT(t), a, data); err != nil {
			t.Fatalf("Detach: %v", err)
		}
		if got, want := h.bridgePortNames("br0"), []string{"br0", "dpdk0"}; !slices.Equal(got, want) {
			t.Errorf("br0 ports = %v, want %v", got, want)
		}
	})

	t.Run("keeps a created bridge that gains a port meanwhile", func(t *testing.T) {
		// Another writer adds a port to the bridge between Detach's read and
		// its write: the wait guarding the bridge's deletion must fail and
		// Detach must still remove its own port.
		h := newHarness(t)
		e := h.connect(0)
		a := h.attachment(cidA, "net1", netconf.VhostClient)
		data := attachOK(t, e, a)
		fired := false
		h.setHook(func(ops []ovs.Operation) {
			for _, op := range ops {
				if !fired && op.Op == ovs.OperationMutate && op.Table == vswitch.OpenvSwitchTable {
					fired = true
					if _, err := h.db.execLocked(foreignPortOps("br0", ovs.Row{"name": "late0", "type": "dpdk"})...); err != nil {
						t.Errorf("racing insert: %v", err)
					}
				}
			}
		})
		if err := e.Detach(ctxT(t), a, data); err != nil {
			t.Fatalf("Detach: %v", err)
		}
		if !fired {
			t.Fatal("Detach never tried to delete the bridge")
		}
		if got, want := h.bridgePortNames("br0"), []string{"br0", "late0"}; !slices.Equal(got, want) {
			t.Errorf("br0 ports = %v, want %v", got, want)
		}
		h.assertNoPort(PortName(cidA, "net1"))
	})
}

func TestCheck(t *testing.T) {
	type env struct {
		h    *harness
		e    *Engine
		a    *engine.Attachment
		data json.RawMessage
		port *vswitch.Port
		ifc  *vswitch.Interface
	}
	setIface := func(row ovs.Row) func(*env) {
		return func(v *env) { v.h.exec(testUpdateOp(vswitch.InterfaceTable, v.ifc.UUID, row)) }
	}
	cases := []struct {
		name   string
		mode   string
		change func(*env)
		want   []string
	}{
		{name: "healthy"},
		{name: "healthy server mode", mode: netconf.VhostServer},
		{name: "healthy without a record", change: func(v *env) { v.data = nil }},
		{name: "port missing", change: func(v *env) {
			if err := v.e.Detach(ctxT(v.h.t), v.a, v.data); err != nil {
				v.h.t.Fatal(err)
			}
		}, want: []string{"no port of container " + cidA + " interface net1"}},
		{name: "wrong type", change: setIface(ovs.Row{"type": TypeVhostServer}),
			want: []string{`has type "dpdkvhostuser", want "dpdkvhostuserclient"`}},
		{name: "wrong vhost-server-path", change: setIface(ovs.Row{"options": ovsMap(map[string]string{optServerPath: "/elsewhere/sock"})}),
			want: []string{`connects to "/elsewhere/sock"`}},
		{name: "not on the bridge", change: func(v *env) {
			v.h.addBridge("br1", "netdev")
			v.h.exec(
				removePortOp(v.port.UUID),
				ovs.Operation{Op: ovs.OperationMutate, Table: vswitch.BridgeTable,
					Where:     []ovs.Condition{cond("name", ovs.ConditionEqual, "br1")},
					Mutations: []ovs.Mutation{*ovs.NewMutation("ports", ovs.MutateOperationInsert, uuidSet(v.port.UUID))}})
		}, want: []string{"is not on bridge \"br0\""}},
		// Check gives a port the switch has not applied yet a moment
		// (checkApplyTimeout) before failing.
		{name: "ofport unset", change: setIface(ovs.Row{"ofport": ovs.OvsSet{GoSet: []any{}}}),
			want: []string{"ovs-vswitchd did not apply port"}},
		{name: "ofport set while checking", change: func(v *env) {
			setIface(ovs.Row{"ofport": ovs.OvsSet{GoSet: []any{}}})(v)
			go func() {
				time.Sleep(100 * time.Millisecond)
				if _, err := v.h.db.exec(testUpdateOp(vswitch.InterfaceTable, v.ifc.UUID, ovs.Row{"ofport": 7})); err != nil {
					v.h.t.Error(err)
				}
			}()
		}},
		{name: "ofport -1", change: setIface(ovs.Row{"ofport": -1}), want: []string{"could not open port", "ofport -1"}},
		{name: "interface error", change: setIface(ovs.Row{"error": "could not add network device: No such device"}),
			want: []string{"rejected port", "No such device"}},
		{name: "vlan tag changed", change: func(v *env) {
			v.h.exec(testUpdateOp(vswitch.PortTable, v.port.UUID, ovs.Row{"tag": 20}))
		}, want: []string{"VLAN tag 20, want 10"}},
		{name: "vlan tag removed", change: func(v *env) {
			v.h.exec(testUpdateOp(vswitch.PortTable, v.port.UUID, ovs.Row{"tag": ovs.OvsSet{GoSet: []any{}}}))
		}, want: []string{"VLAN tag none, want 10"}},
		{name: "vlan expected none", change: func(v *env) { v.a.Host.Bridge.VlanID = 0 },
			want: []string{"VLAN tag 10, want 0"}},
		{name: "mtu changed", change: setIface(ovs.Row{"mtu_request": 9000}), want: []string{"mtu_request 9000, want 1500"}},
		{name: "mtu removed", change: setIface(ovs.Row{"mtu_request": ovs.OvsSet{GoSet: []any{}}}), want: []string{"mtu_request none, want 1500"}},
		{name: "dpdk gone", change: func(v *env) { v.h.setRoot(ovs.Row{"dpdk_initialized": false}) },
			want: []string{"dpdk_initialized"}},
		{name: "server-mode socket missing", mode: netconf.VhostServer, change: func(v *env) {
			if err := os.Remove(v.a.Layout.SocketPath()); err != nil {
				v.h.t.Fatal(err)
			}
		}, want: []string{"socket of interface", "is missing from " + "SOCKET"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			e := h.connect(time.Second)
			mode := tc.mode
			if mode == "" {
				mode = netconf.VhostClient
			}
			a := h.attachment(cidA, "net1", mode)
			a.MTU = 1500
			a.Host.Bridge.VlanID = 10
			v := &env{h: h, e: e, a: a, data: attachOK(t, e, a)}
			v.port = h.ports()[PortName(cidA, "net1")]
			v.ifc = h.interfaces()[PortName(cidA, "net1")]
			if tc.change != nil {
				tc.change(v)
			}
			err := e.Check(ctxT(t), v.a, v.data)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				return
			}
			want := slices.Clone(tc.want)
			for i := range want {
				want[i] = strings.ReplaceAll(want[i], "SOCKET", a.Layout.SocketPath())
			}
			errorContains(t, err, want...)
		})
	}
}

func TestVswitchdNotRunning(t *testing.T) {
	for _, mode := range []string{netconf.VhostClient, netconf.VhostServer} {
		t.Run("attach/"+mode, func(t *testing.T) {
			h := newHarness(t)
			h.addBridge("br0", "netdev")
			h.stopSwitch()
			e := h.connect(0)
			_, err := e.Attach(ctxT(t), h.attachment(cidA, "net1", mode))
			errorContains(t, err, "ovs-vswitchd is not running")
			if !errors.Is(err, engine.ErrUnavailable) {
				t.Errorf("%v does not wrap engine.ErrUnavailable", err)
			}
			if got, want := h.bridgePortNames("br0"), []string{"br0"}; !slices.Equal(got, want) {
				t.Errorf("br0 ports = %v, want %v", got, want)
			}
		})
	}
	t.Run("status", func(t *testing.T) {
		h := newHarness(t)
		e := h.connect(0)
		if err := e.Status(ctxT(t)); err != nil {
			t.Fatalf("Status with the switch running: %v", err)
		}
		h.stopSwitch()
		err := e.Status(ctxT(t))
		errorContains(t, err, "ovs-vswitchd is not running")
		if !errors.Is(err, engine.ErrUnavailable) {
			t.Errorf("%v does not wrap engine.ErrUnavailable", err)
		}
		h.startSwitch()
		if err := e.Status(ctxT(t)); err != nil {
			t.Errorf("Status after the switch came back: %v", err)
		}
	})
}

func TestListOwned(t *testing.T) {
	h := newHarness(t)
	h.addBridge("br0", "netdev")
	e := h.connect(0)
	a := h.attachment(cidA, "net1", netconf.VhostClient)
	b := h.attachment(cidB, "net2", netconf.VhostServer)
	b.Network = "other-net"
	attachOK(t, e, a)
	attachOK(t, e, b)
	h.addForeignPort("br0", ovs.Row{"name": "dpdk0", "type": "dpdk",
		"external_ids": ovsMap(map[string]string{"owner": "someone-else"})})
	h.addForeignPort("br0", ovs.Row{"name": "vhu-half", "type": TypeVhostClient,
		"external_ids": ovsMap(map[string]string{KeyContainerID: cidA})}) // no ifname: not an attachment

	owned, err := e.ListOwned(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(owned, func(x, y engine.Owned) int { return strings.Compare(x.ContainerID, y.ContainerID) })
	want := []engine.Owned{
		{ContainerID: cidA, IfName: "net1", Network: "net1", SocketPath: a.Layout.SocketPath()},
		{ContainerID: cidB, IfName: "net2", Network: "other-net", SocketPath: b.Layout.SocketPath()},
	}
	if !slices.Equal(owned, want) {
		t.Errorf("ListOwned = %+v, want %+v", owned, want)
	}
}

func TestStatus(t *testing.T) {
	t.Run("ok", func(t *testing.T) {
		h := newHarness(t)
		if err := h.connect(0).Status(ctxT(t)); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("dpdk not initialised", func(t *testing.T) {
		h := newHarness(t)
		h.setRoot(ovs.Row{"dpdk_initialized": false})
		err := h.connect(0).Status(ctxT(t))
		errorContains(t, err, "dpdk_initialized")
		if !errors.Is(err, engine.ErrUnavailable) {
			t.Errorf("%v does not wrap engine.ErrUnavailable", err)
		}
	})
	t.Run("no vhost-user support", func(t *testing.T) {
		h := newHarness(t)
		h.setRoot(ovs.Row{"iface_types": ovs.OvsSet{GoSet: []any{"internal"}}})
		err := h.connect(0).Status(ctxT(t))
		errorContains(t, err, "dpdkvhostuserclient")
		if !errors.Is(err, engine.ErrUnavailable) {
			t.Errorf("%v does not wrap engine.ErrUnavailable", err)
		}
	})
	t.Run("no Open_vSwitch row", func(t *testing.T) {
		h := newHarness(t)
		h.exec(ovs.Operation{Op: ovs.OperationDelete, Table: vswitch.OpenvSwitchTable, Where: []ovs.Condition{}})
		err := h.connect(0).Status(ctxT(t))
		errorContains(t, err, "no Open_vSwitch row")
		if !errors.Is(err, engine.ErrUnavailable) {
			t.Errorf("%v does not wrap engine.ErrUnavailable", err)
		}
	})
	t.Run("no server", func(t *testing.T) {
		sock := filepath.Join(shortTempDir(t, "ovsdbt"), "db.sock")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		start := time.Now()
		e, err := Connect(ctx, Config{Endpoint: "unix:" + sock})
		if err == nil {
			e.Close()
			t.Fatal("Connect to a missing socket succeeded")
		}
		if !errors.Is(err, engine.ErrUnavailable) {
			t.Errorf("%v does not wrap engine.ErrUnavailable", err)
		}
		errorContains(t, err, sock)
		if took := time.Since(start); took > time.Second {
			t.Errorf("Connect took %s to fail", took)
		}
	})
}

// TestConcurrentAttach has several invocations, each with its own
// connection, race to create the same bridge: all must succeed (the losers
// of the bridge creation retry on the constraint violation) and the switch
// must end up with one bridge holding every port.
func TestConcurrentAttach(t *testing.T) {
	h := newHarness(t)
	const n = 8
	engines := make([]*Engine, n)
	atts := make([]*engine.Attachment, n)
	for i := range n {
		engines[i] = h.connect(0)
		atts[i] = h.attachment(fmt.Sprintf("%012d%052d", i, i), "net1", netconf.VhostClient)
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			_, errs[i] = engines[i].Attach(ctxT(t), atts[i])
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("attachment %d: %v", i, err)
		}
	}
	if got := len(h.bridges()); got != 1 {
		t.Fatalf("%d bridges, want 1", got)
	}
	if got := len(h.pluginPorts()); got != n {
		t.Errorf("%d plugin ports, want %d", got, n)
	}
	if got := len(h.bridgePortNames("br0")); got != n+1 {
		t.Errorf("br0 has %d ports, want %d", got, n+1)
	}
	if r := h.root(); len(r.Bridges) != 1 {
		t.Errorf("Open_vSwitch bridges = %v", r.Bridges)
	}
}

// TestConcurrentDetach: all of a bridge's ports removed at once, each DEL
// on its own connection: each first sees the others' ports, yet the bridge
// the plugin created goes with the last of them.
func TestConcurrentDetach(t *testing.T) {
	for round := 0; round < 5; round++ {
		h := newHarness(t)
		const n = 8
		engines := make([]*Engine, n)
		atts := make([]*engine.Attachment, n)
		for i := range n {
			engines[i] = h.connect(0)
			atts[i] = h.attachment(fmt.Sprintf("%012d%052d", i, i), "net1", netconf.VhostClient)
			if _, err := engines[i].Attach(ctxT(t), atts[i]); err != nil {
				t.Fatal(err)
			}
		}
		var wg sync.WaitGroup
		errs := make([]error, n)
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				errs[i] = engines[i].Detach(ctxT(t), atts[i], nil)
			})
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("round %d: detach %d: %v", round, i, err)
			}
		}
		if got := len(h.pluginPorts()); got != 0 {
			t.Errorf("round %d: %d plugin ports left", round, got)
		}
		if got := len(h.bridges()); got != 0 {
			t.Errorf("round %d: %d bridges left, want the plugin's bridge gone", round, got)
		}
	}
}
