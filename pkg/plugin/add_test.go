package plugin_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/userspace-cni/userspace/pkg/configdata"
	"github.com/userspace-cni/userspace/pkg/engine"
	"github.com/userspace-cni/userspace/pkg/netconf"
	"github.com/userspace-cni/userspace/pkg/sockdir"
)

// decodeOnly decodes stdout as exactly one JSON object: anything else on
// stdout (a log line, a second document) corrupts the runtime's result.
func decodeOnly(t *testing.T, out string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(out))
	var res map[string]any
	if err := dec.Decode(&res); err != nil {
		t.Fatalf("stdout is not a JSON result: %v\n%s", err, out)
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); err != io.EOF {
		t.Fatalf("stdout holds more than the result (%v): %q", err, out)
	}
	return res
}

func TestAddSuccess(t *testing.T) {
	for _, version := range netconf.SupportedVersions {
		t.Run(version, func(t *testing.T) {
			e := newEnv(t)
			id := containerID("add-" + version)
			id12 := id[:12]
			out := e.add(id, "net1", e.conf(version))

			// stdout: the result alone, in the requested version.
			res := decodeOnly(t, out)
			if res["cniVersion"] != version {
				t.Errorf("result cniVersion %v, want %s", res["cniVersion"], version)
			}
			wantSocket := filepath.Join(e.shared, id12, id12+"-net1")
			ifaces, _ := res["interfaces"].([]any)
			if len(ifaces) != 1 {
				t.Fatalf("want one interface in the result, got %v", res["interfaces"])
			}
			iface := ifaces[0].(map[string]any)
			if iface["name"] != "net1" || iface["sandbox"] != "/var/run/netns/pod-"+id[:8] {
				t.Errorf("result interface %v", iface)
			}
			sp, hasSP := iface["socketPath"]
			if version == "1.1.0" {
				if sp != wantSocket {
					t.Errorf("1.1.0 socketPath %v, want %s", sp, wantSocket)
				}
			} else if hasSP || strings.Contains(out, "socketPath") {
				t.Errorf("socketPath in a %s result: %s", version, out)
			}
			if !strings.Contains(out, `"10.56.217.`) {
				t.Errorf("result lacks the IPAM address: %s", out)
			}
			// Logs went to Stderr (logLevel debug logs the timings).
			if !strings.Contains(e.stderr.String(), "ADD timings") {
				t.Errorf("no debug log on Stderr: %q", e.stderr.String())
			}

			// The engine: one Attach with the whole attachment.
			attaches := e.sw.callsOf("Attach")
			if len(attaches) != 1 {
				t.Fatalf("Attach called %d times, want 1", len(attaches))
			}
			want := &engine.Attachment{
				ContainerID:  id,
				IfName:       "net1",
				Netns:        "/var/run/netns/pod-" + id[:8],
				Network:      "net1",
				PodNamespace: "tenant-a",
				PodName:      "pod-" + id[:6],
				PodUID:       "uid-" + id[:8],
				Host: netconf.UserSpaceConf{Engine: "ovs-dpdk", IfType: "vhostuser", NetType: "bridge",
					Vhost: netconf.VhostConf{Mode: "client"}, Bridge: netconf.BridgeConf{BridgeName: "br-4"}},
				Layout: &sockdir.Layout{Base: e.shared, Dir: filepath.Join(e.shared, id12), OwnDir: true, SocketName: id12 + "-net1", PodCreates: true},
				MTU:    9000,
			}
			// A bridged attachment does not wait for IPAM: the engine gets no
			// addresses (only netType "interface" needs them).
			if got := attaches[0].att; !reflect.DeepEqual(got, want) {
				t.Errorf("Attach got\n%+v (layout %+v)\nwant\n%+v (layout %+v)", got, got.Layout, want, want.Layout)
			}
			if got := attaches[0].att.Layout.SocketPath(); got != wantSocket {
				t.Errorf("socket path %s, want %s", got, wantSocket)
			}
			if n := len(e.sw.callsOf("Detach")); n != 0 {
				t.Errorf("Detach called %d times on a successful ADD", n)
			}
			e.assertClosedOnce()
			if len(e.sw.conns) != 1 {
				t.Errorf("%d engine connections opened, want 1", len(e.sw.conns))
			}

			// The socket directory, open to the pod's app.
			fi, err := os.Stat(e.sockDir(id))
			if err != nil || !fi.IsDir() {
				t.Fatalf("socket directory: %v", err)
			}
			if fi.Mode().Perm() != 0o777 || fi.Mode()&os.ModeSticky == 0 {
				t.Errorf("socket directory mode %v, want drwxrwxrwt", fi.Mode())
			}

			// The config data: the container side, inverted.
			raw, err := os.ReadFile(e.configDataPath(id, "net1"))
			if err != nil {
				t.Fatalf("config data: %v", err)
			}
			var cd configdata.ConfigData
			if err := json.Unmarshal(raw, &cd); err != nil {
				t.Fatalf("config data: %v\n%s", err, raw)
			}
			if cd.ContainerID != id || cd.IfName != "net1" || cd.Name != "net1" {
				t.Errorf("config data ids: %+v", cd)
			}
			wantCt := netconf.UserSpaceConf{Engine: "ovs-dpdk", IfType: "vhostuser", NetType: "bridge",
				Vhost:  netconf.VhostConf{Mode: "server", Socketfile: id12 + "-net1"},
				Bridge: netconf.BridgeConf{BridgeName: "br-4"}}
			if !reflect.DeepEqual(cd.Config, wantCt) {
				t.Errorf("config data container side %+v, want %+v", cd.Config, wantCt)
			}
			if cd.IPResult == nil || len(cd.IPResult.IPs) != 1 || !strings.HasPrefix(cd.IPResult.IPs[0].Address.IP.String(), "10.56.217.") {
				t.Errorf("config data ipResult %+v", cd.IPResult)
			}

			// The record, with the engine's data.
			rec := e.loadRecord(id, "net1")
			if rec == nil {
				t.Fatal("no record saved")
			}
			port := e.sw.port(id, "net1")
			if port == nil {
				t.Fatal("no port on the fake switch")
			}
			if !jsonEqual(rec.EngineData, port.data) {
				t.Errorf("record engine data %s, want %s", rec.EngineData, port.data)
			}
			if rec.Network != "net1" || rec.PodNamespace != "tenant-a" || rec.PodName != "pod-"+id[:6] ||
				rec.PodUID != "uid-"+id[:8] || rec.Engine != "ovs-dpdk" || rec.IPAM != "host-local" ||
				rec.Netns != "/var/run/netns/pod-"+id[:8] || rec.ConfigDataFile != configdata.FileName(id, "net1") {
				t.Errorf("record %+v", rec)
			}
			if !reflect.DeepEqual(rec.Layout, want.Layout) {
				t.Errorf("record layout %+v, want %+v", rec.Layout, want.Layout)
			}

			// IPAM: one allocation.
			if a := e.allocations("net1"); len(a) != 1 {
				t.Errorf("host-local allocations %v, want one", a)
			}
		})
	}
}

// TestAddLongSocketPath: a socket path beyond sun_path goes through a short
// link, which the 1.1.0 result and the engine see, and DEL removes.
func TestAddLongSocketPath(t *testing.T) {
	e := newEnv(t)
	deep := filepath.Join(e.shared, strings.Repeat("d", 60), strings.Repeat("e", 40))
	id := containerID("long")
	conf := e.conf("1.1.0", withSharedDir(deep))
	res := decodeOnly(t, e.add(id, "net1", conf))
	att := e.sw.callsOf("Attach")[0].att
	if att.Layout.ShortLink == "" || !strings.HasPrefix(att.Layout.ShortLink, e.shortDir+"/") {
		t.Fatalf("layout %+v: want a short link under %s", att.Layout, e.shortDir)
	}
	sp := res["interfaces"].([]any)[0].(map[string]any)["socketPath"]
	if sp != att.Layout.ConnectPath() || len(att.Layout.ConnectPath()) > sockdir.MaxSocketPath {
		t.Errorf("socketPath %v, want the short %s", sp, att.Layout.ConnectPath())
	}
	if target, err := os.Readlink(att.Layout.ShortLink); err != nil || target != att.Layout.Dir {
		t.Errorf("short link -> %q (%v), want %s", target, err, att.Layout.Dir)
	}
	if _, err := run(t, e.p.Del, e.args(id, "net1", conf)); err != nil {
		t.Fatal(err)
	}
	if exists(att.Layout.ShortLink) || exists(att.Layout.Dir) {
		t.Errorf("DEL left the short link or the socket directory")
	}
}

// TestAddRollback makes each step of ADD fail in turn and checks that
// nothing is left behind, that the port was removed through a connection
// still open, and that the connection was closed once, at the end.
func TestAddRollback(t *testing.T) {
	unavailable := fmt.Errorf("dial unix db.sock: connection refused: %w", engine.ErrUnavailable)
	for _, tc := range []struct {
		name string
		// ipam is the IPAM plugin type ("" for host-local).
		ipam string
		// break_ plants the failure; it returns a path it planted that
		// must survive the rollback (the plugin removes only its own).
		break_   func(e *testEnv, id string) string
		wantCode uint
		// attached says Attach succeeded before the failure.
		attached bool
		// opened says the engine was connected.
		opened bool
		// dirLeft lists what may remain in the socket directory.
		dirLeft []string
	}{
		// IPAM runs alongside the attach, so its failure rolls the attach back.
		{name: "IPAM fails", ipam: "failing-ipam", break_: func(*testEnv, string) string { return "" }, wantCode: 11, opened: true, attached: true},
		{name: "socket directory cannot be prepared", break_: func(e *testEnv, id string) string {
			// A regular file where the per-pod directory goes.
			mustMkdir(t, e.shared)
			mustWrite(t, e.sockDir(id), "not a directory")
			return e.sockDir(id)
		}, wantCode: uint(types.ErrIOFailure)},
		{name: "stale non-socket at the socket path", break_: func(e *testEnv, id string) string {
			mustMkdir(t, e.sockDir(id))
			p := filepath.Join(e.sockDir(id), id[:12]+"-net1")
			mustWrite(t, p, "a pod's file")
			return p
		}, wantCode: uint(types.ErrInvalidNetworkConfig), dirLeft: []string{"<socket>"}},
		{name: "OpenEngine fails", break_: func(e *testEnv, _ string) string {
			e.sw.setOpenErr(unavailable)
			return ""
		}, wantCode: uint(types.ErrPluginNotAvailable)},
		{name: "Attach fails", break_: func(e *testEnv, _ string) string {
			e.sw.setFail("Attach", errors.New("transaction failed: constraint violation"))
			return ""
		}, wantCode: uint(types.ErrInternal), opened: true},
		{name: "Attach fails unavailable", break_: func(e *testEnv, _ string) string {
			e.sw.setFail("Attach", fmt.Errorf("ovs-vswitchd is not running: %w", engine.ErrUnavailable))
			return ""
		}, wantCode: uint(types.ErrPluginNotAvailable), opened: true},
		{name: "config data cannot be written", break_: func(e *testEnv, id string) string {
			// A directory where the config-data file goes: the rename fails.
			p := e.configDataPath(id, "net1")
			mustMkdir(t, p)
			return p
		}, wantCode: uint(types.ErrIOFailure), opened: true, attached: true, dirLeft: []string{"<configdata>"}},
		// The record is written first, before anything else.
		{name: "record cannot be saved", break_: func(e *testEnv, id string) string {
			p := e.recordPath(id, "net1")
			mustMkdir(t, p)
			return p
		}, wantCode: uint(types.ErrIOFailure)},
		{name: "device info cannot be written", break_: func(e *testEnv, id string) string {
			p := filepath.Join(e.root, "devinfo", "blocked")
			mustMkdir(t, filepath.Join(p, "blocker"))
			return p
		}, wantCode: uint(types.ErrIOFailure), opened: true, attached: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			id := containerID("rollback-" + tc.name)
			var mods []confMod
			if tc.ipam != "" {
				mods = append(mods, withIPAM(tc.ipam))
			}
			if tc.name == "device info cannot be written" {
				mods = append(mods, withDeviceInfo(filepath.Join(e.root, "devinfo", "blocked")))
			}
			planted := tc.break_(e, id)
			out, err := run(t, e.p.Add, e.args(id, "net1", e.conf("1.0.0", mods...)))
			if err == nil {
				t.Fatal("ADD succeeded")
			}
			if got := cniCode(err); got != tc.wantCode {
				t.Errorf("error code %d, want %d: %v", got, tc.wantCode, err)
			}
			if strings.Contains(err.Error(), "rollback also failed") {
				t.Errorf("rollback failed: %v", err)
			}
			if out != "" {
				t.Errorf("a failed ADD printed %q on stdout", out)
			}

			// Nothing left: no record, no config data, no port, no address.
			if tc.name != "record cannot be saved" {
				if r := e.loadRecord(id, "net1"); r != nil {
					t.Errorf("record left: %+v", r)
				}
			} else if fi, err := os.Stat(planted); err != nil || !fi.IsDir() {
				t.Errorf("the planted directory at the record path is gone: %v", err)
			}
			if left := dirEntries(t, filepath.Join(e.stateDir, "attachments")); len(left) > 1 ||
				len(left) == 1 && filepath.Join(e.stateDir, "attachments", left[0]) != planted {
				t.Errorf("attachments directory holds %v", left)
			}
			if keys := e.sw.portKeys(); len(keys) != 0 {
				t.Errorf("ports left on the switch: %v", keys)
			}
			if a := e.allocations("net1"); len(a) != 0 {
				t.Errorf("IP allocations left: %v", a)
			}
			if planted != "" && !exists(planted) {
				t.Errorf("the rollback removed %s, which the plugin did not create", planted)
			}
			var want []string
			for _, d := range tc.dirLeft {
				switch d {
				case "<socket>":
					want = append(want, id[:12]+"-net1")
				case "<configdata>":
					want = append(want, configdata.FileName(id, "net1"))
				}
			}
			if planted == e.sockDir(id) {
				// The planted file stands where the directory would be.
			} else if got := dirEntries(t, e.sockDir(id)); len(want) == 0 && exists(e.sockDir(id)) {
				t.Errorf("socket directory %s left, holding %v", e.sockDir(id), got)
			} else if len(want) > 0 && !reflect.DeepEqual(got, want) {
				t.Errorf("socket directory holds %v, want only %v", got, want)
			}

			// The engine: the port removed through an open connection, and
			// every connection closed exactly once.
			wantConns := 0
			if tc.opened {
				wantConns = 1
			}
			if len(e.sw.conns) != wantConns {
				t.Errorf("%d engine connections, want %d", len(e.sw.conns), wantConns)
			}
			detaches := e.sw.callsOf("Detach")
			if tc.attached {
				if len(detaches) != 1 {
					t.Fatalf("Detach called %d times, want 1", len(detaches))
				}
				d := detaches[0]
				if d.closed {
					t.Errorf("rollback detached through a connection already closed")
				}
				attach := e.sw.callsOf("Attach")[0]
				if d.att.ContainerID != id || d.att.IfName != "net1" || !reflect.DeepEqual(d.att.Layout, attach.att.Layout) {
					t.Errorf("Detach of %+v, want the attachment added", d.att)
				}
				if d.data == nil {
					t.Errorf("rollback Detach without the engine data Attach returned")
				}
			} else if len(detaches) != 0 {
				t.Errorf("Detach called %d times though nothing was attached", len(detaches))
			}
			e.assertClosedOnce()
			e.assertNoUseAfterClose()
		})
	}
}

func mustMkdir(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
}

func mustWrite(t *testing.T, p, content string) {
	t.Helper()
	mustMkdir(t, filepath.Dir(p))
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestAddRollbackDetachFails: when the rollback cannot remove the port, the
// error says so, and the connection is still closed once.
func TestAddRollbackDetachFails(t *testing.T) {
	e := newEnv(t)
	id := containerID("rollback-detach-fails")
	devInfo := filepath.Join(e.root, "devinfo", "blocked")
	mustMkdir(t, filepath.Join(devInfo, "blocker"))
	e.sw.setFail("Detach", errors.New("switch went away"))
	_, err := run(t, e.p.Add, e.args(id, "net1", e.conf("1.0.0", withDeviceInfo(devInfo))))
	if err == nil || !strings.Contains(err.Error(), "rollback also failed") || !strings.Contains(err.Error(), "switch went away") {
		t.Fatalf("want the rollback failure reported, got %v", err)
	}
	// The other undo steps still ran.
	if a := e.allocations("net1"); len(a) != 0 {
		t.Errorf("IP allocations left: %v", a)
	}
	if exists(e.configDataPath(id, "net1")) {
		t.Errorf("config data left")
	}
	e.assertClosedOnce()
	e.assertNoUseAfterClose()
}

// TestAddInvalidConfigTouchesNothing: a configuration refused by validation
// opens nothing and allocates nothing.
func TestAddInvalidConfigTouchesNothing(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  confMod
	}{
		{"sharedDir outside the policy", withSharedDir("/var/lib/elsewhere")},
		{"bad socketfile", func(c map[string]any) {
			c["host"].(map[string]any)["vhost"] = map[string]any{"mode": "client", "socketfile": "../x"}
		}},
		{"unsupported version", func(c map[string]any) { c["cniVersion"] = "0.2.0" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			id := containerID(tc.name)
			out, err := run(t, e.p.Add, e.args(id, "net1", e.conf("1.0.0", tc.mod)))
			if err == nil || cniCode(err) == 0 {
				t.Fatalf("want a CNI error, got %v", err)
			}
			if out != "" || e.sw.opens != 0 || len(e.allocations("net1")) != 0 || exists(e.stateDir) || exists(e.shared) {
				t.Errorf("a refused configuration touched something: stdout %q, opens %d", out, e.sw.opens)
			}
		})
	}
}

// TestAddRepeated: a second ADD of the same attachment (no DEL in between)
// replaces the first: the old port is detached, and one port, one record and
// one address remain.
func TestAddRepeated(t *testing.T) {
	for _, ipam := range []string{"host-local", "none"} {
		t.Run(ipam, func(t *testing.T) {
			e := newEnv(t)
			id := containerID("repeat")
			var mods []confMod
			if ipam == "none" {
				mods = append(mods, withoutIPAM())
			}
			conf := e.conf("1.0.0", mods...)
			e.add(id, "net1", conf)
			first := e.loadRecord(id, "net1")
			e.add(id, "net1", conf)

			attaches, detaches := e.sw.callsOf("Attach"), e.sw.callsOf("Detach")
			if len(attaches) != 2 || len(detaches) != 1 {
				t.Fatalf("Attach %d, Detach %d times; want 2 and 1", len(attaches), len(detaches))
			}
			if !jsonEqual(detaches[0].data, first.EngineData) || detaches[0].att.ContainerID != id {
				t.Errorf("Detach of %s with %s, want the first port's data %s", detaches[0].att.ContainerID, detaches[0].data, first.EngineData)
			}
			if detaches[0].closed {
				t.Errorf("replacement detached through a closed connection")
			}
			if keys := e.sw.portKeys(); len(keys) != 1 {
				t.Errorf("ports %v, want one", keys)
			}
			second := e.loadRecord(id, "net1")
			if second == nil || jsonEqual(second.EngineData, first.EngineData) {
				t.Errorf("record not replaced: %+v", second)
			}
			if p := e.sw.port(id, "net1"); p == nil || !jsonEqual(p.data, second.EngineData) {
				t.Errorf("the record does not describe the port on the switch")
			}
			if recs, _ := e.store().List(); len(recs) != 1 {
				t.Errorf("%d records, want 1", len(recs))
			}
			if !exists(e.configDataPath(id, "net1")) {
				t.Errorf("config data missing after the second ADD")
			}
			if ipam == "host-local" {
				if a := e.allocations("net1"); len(a) != 1 {
					t.Errorf("allocations %v, want one", a)
				}
			}
			e.assertClosedOnce()
			e.assertNoUseAfterClose()
		})
	}
}

// TestAddRepeatedTeardownFails: when the earlier attachment cannot be
// removed, the second ADD fails before creating anything, and the earlier
// attachment keeps its record, port and address for DEL.
func TestAddRepeatedTeardownFails(t *testing.T) {
	e := newEnv(t)
	id := containerID("repeat-fails")
	conf := e.conf("1.0.0")
	e.add(id, "net1", conf)
	first := e.loadRecord(id, "net1")
	e.sw.setFail("Detach", errors.New("switch busy"))
	out, err := run(t, e.p.Add, e.args(id, "net1", conf))
	if err == nil || !strings.Contains(err.Error(), "switch busy") {
		t.Fatalf("want the teardown error, got %v", err)
	}
	if out != "" {
		t.Errorf("failed ADD printed %q", out)
	}
	if n := len(e.sw.callsOf("Attach")); n != 1 {
		t.Errorf("Attach called %d times, want only the first ADD's", n)
	}
	if rec := e.loadRecord(id, "net1"); rec == nil || !jsonEqual(rec.EngineData, first.EngineData) {
		t.Errorf("the earlier record was lost: %+v", rec)
	}
	if a := e.allocations("net1"); len(a) != 1 {
		t.Errorf("allocations %v, want the earlier one", a)
	}
	e.assertClosedOnce()
	e.sw.setFail("Detach", nil)
	if _, err := run(t, e.p.Del, e.args(id, "net1", conf)); err != nil {
		t.Fatal(err)
	}
	e.assertGone(id, "net1", false)
}

// TestAddConcurrent: ADDs of different pods through one Plugin value all
// succeed; each has its own sandbox lock.
func TestAddConcurrent(t *testing.T) {
	e := newEnv(t)
	const n = 8
	conf := e.conf("1.1.0", withoutIPAM())
	var wg sync.WaitGroup
	errs := make([]error, n)
	ids := make([]string, n)
	for i := range ids {
		ids[i] = containerID(fmt.Sprintf("concurrent-%d", i))
	}
	e.sw.attachDelay = 5 * time.Millisecond
	start := make(chan struct{})
	out := captureStdout(t, func() {
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				errs[i] = e.p.Add(e.args(ids[i], "net1", conf))
			}()
		}
		close(start)
		wg.Wait()
	})
	for i, err := range errs {
		if err != nil {
			t.Errorf("ADD %d: %v", i, err)
		}
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(out)))
	results := 0
	for {
		var r map[string]any
		if err := dec.Decode(&r); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("stdout: %v\n%s", err, out)
		}
		results++
	}
	if results != n {
		t.Errorf("%d results printed, want %d", results, n)
	}
	if keys := e.sw.portKeys(); len(keys) != n {
		t.Errorf("ports %v, want %d", keys, n)
	}
	recs, err := e.store().List()
	if err != nil || len(recs) != n {
		t.Errorf("%d records (%v), want %d", len(recs), err, n)
	}
	for _, id := range ids {
		if !exists(e.configDataPath(id, "net1")) {
			t.Errorf("config data of %s missing", id[:12])
		}
	}
	// Sandboxes do not wait for each other: there is no node lock.
	if e.sw.maxLive < 2 {
		t.Errorf("%d ADDs of different sandboxes used the switch at once, want them to overlap (attach takes %v)", e.sw.maxLive, e.sw.attachDelay)
	}
	e.assertClosedOnce()
}

// TestSameSandboxSerialized: verbs of one sandbox (its attachments share a
// socket directory, and ADD must never race DEL of the same attachment) run
// one at a time, from their first side effect to their last.
func TestSameSandboxSerialized(t *testing.T) {
	e := newEnv(t)
	e.sw.attachDelay = 30 * time.Millisecond
	id := containerID("same-sandbox")
	conf := e.conf("1.0.0")
	const n = 6
	var wg sync.WaitGroup
	errs := make([]error, 2*n)
	captureStdout(t, func() {
		for i := 0; i < n; i++ {
			ifName := fmt.Sprintf("net%d", i+1)
			wg.Add(2)
			go func() { defer wg.Done(); errs[2*i] = e.p.Add(e.args(id, ifName, conf)) }()
			go func() { defer wg.Done(); errs[2*i+1] = e.p.Del(e.args(id, ifName, conf)) }()
		}
		wg.Wait()
	})
	for i, err := range errs {
		if err != nil {
			t.Errorf("verb %d: %v", i, err)
		}
	}
	if e.sw.maxLive != 1 {
		t.Errorf("%d verbs of one sandbox used the switch at once, want 1", e.sw.maxLive)
	}
	e.assertClosedOnce()
}
