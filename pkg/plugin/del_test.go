package plugin_test

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/userspace-cni/userspace/pkg/engine"
)

// assertGone checks nothing of the attachment is left but (if keepRecord)
// its record.
func (e *testEnv) assertGone(id, ifName string, keepRecord bool) {
	e.t.Helper()
	if p := e.sw.port(id, ifName); p != nil {
		e.t.Errorf("port %s/%s left on the switch", id[:12], ifName)
	}
	if exists(e.configDataPath(id, ifName)) {
		e.t.Errorf("config data of %s left", id[:12])
	}
	if exists(e.sockDir(id)) {
		e.t.Errorf("socket directory of %s left: %v", id[:12], dirEntries(e.t, e.sockDir(id)))
	}
	if a := e.allocations("net1"); len(a) != 0 {
		e.t.Errorf("IP allocations left: %v", a)
	}
	rec := exists(e.recordPath(id, ifName))
	if keepRecord && !rec {
		e.t.Errorf("record removed though DEL was incomplete")
	} else if !keepRecord && rec {
		e.t.Errorf("record left")
	}
}

func TestDel(t *testing.T) {
	unavailable := fmt.Errorf("dial: %w", engine.ErrUnavailable)
	for _, tc := range []struct {
		name string
		// before runs after the ADD (if any) and before the DEL.
		noAdd  bool
		before func(e *testEnv, id string)
		// wantErr is the CNI code of the expected error, 0 for success.
		wantErr uint
		// recordKept: the record survives a failed DEL.
		recordKept bool
		// wantDetachData says the engine data reached Detach (a record
		// was readable).
		wantDetachData bool
		wantDetaches   int
		// noLayout: the attachment owns no socket path (never added), so
		// the engine must not touch any.
		noLayout bool
	}{
		{name: "with record", wantDetachData: true, wantDetaches: 1},
		{name: "without record uses the configuration", before: func(e *testEnv, id string) {
			if err := os.Remove(e.recordPath(id, "net1")); err != nil {
				t.Fatal(err)
			}
		}, wantDetaches: 1},
		{name: "corrupt record", before: func(e *testEnv, id string) {
			mustWrite(t, e.recordPath(id, "net1"), "{garbage")
		}, wantDetaches: 1},
		{name: "never added", noAdd: true, wantDetaches: 1, noLayout: true},
		{name: "Detach fails", before: func(e *testEnv, _ string) {
			e.sw.setFail("Detach", errors.New("transaction failed"))
		}, wantErr: uint(types.ErrInternal), recordKept: true, wantDetachData: true, wantDetaches: 1},
		{name: "OpenEngine fails", before: func(e *testEnv, _ string) {
			e.sw.setOpenErr(unavailable)
		}, wantErr: uint(types.ErrPluginNotAvailable), recordKept: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			id := containerID("del-" + tc.name)
			conf := e.conf("1.0.0")
			if !tc.noAdd {
				e.add(id, "net1", conf)
			}
			var addData string
			if p := e.sw.port(id, "net1"); p != nil {
				addData = string(p.data)
			}
			if tc.before != nil {
				tc.before(e, id)
			}
			out, err := run(t, e.p.Del, e.args(id, "net1", conf))
			if out != "" {
				t.Errorf("DEL printed %q", out)
			}
			if tc.wantErr == 0 && err != nil {
				t.Fatalf("DEL: %v", err)
			}
			if tc.wantErr != 0 {
				if err == nil {
					t.Fatal("DEL succeeded")
				}
				if got := cniCode(err); got != tc.wantErr {
					t.Errorf("error code %d, want %d: %v", got, tc.wantErr, err)
				}
			}
			detaches := e.sw.callsOf("Detach")
			if len(detaches) != tc.wantDetaches {
				t.Fatalf("Detach called %d times, want %d", len(detaches), tc.wantDetaches)
			}
			for _, d := range detaches {
				if d.att.ContainerID != id || d.att.IfName != "net1" || d.att.Network != "net1" {
					t.Errorf("Detach of %+v", d.att)
				}
				if tc.noLayout {
					if d.att.Layout != nil {
						t.Errorf("Detach of an attachment that owns nothing with layout %+v", d.att.Layout)
					}
				} else if d.att.Layout == nil || d.att.Layout.SocketPath() != e.sockDir(id)+"/"+id[:12]+"-net1" {
					t.Errorf("Detach without the socket layout: %+v", d.att.Layout)
				}
				if tc.wantDetachData && !jsonEqual(d.data, []byte(addData)) {
					t.Errorf("Detach with data %s, want the record's %s", d.data, addData)
				}
				if !tc.wantDetachData && d.data != nil {
					t.Errorf("Detach with data %s though there was no readable record", d.data)
				}
			}
			// Files and IPAM go whatever failed; the record only on success.
			if tc.wantErr == 0 {
				e.assertGone(id, "net1", false)
			} else {
				if exists(e.configDataPath(id, "net1")) || exists(e.sockDir(id)) {
					t.Errorf("files left after a failed DEL")
				}
				if a := e.allocations("net1"); len(a) != 0 {
					t.Errorf("IPAM not released by a failed DEL: %v", a)
				}
				if rec := exists(e.recordPath(id, "net1")); rec != tc.recordKept {
					t.Errorf("record exists %v, want %v", rec, tc.recordKept)
				}
			}
			e.assertClosedOnce()
			e.assertNoUseAfterClose()

			// DEL again (after the engine recovered) succeeds and removes
			// everything, the record last.
			e.sw.setFail("Detach", nil)
			e.sw.setOpenErr(nil)
			if _, err := run(t, e.p.Del, e.args(id, "net1", conf)); err != nil {
				t.Fatalf("second DEL: %v", err)
			}
			e.assertGone(id, "net1", false)
			if keys := e.sw.portKeys(); len(keys) != 0 {
				t.Errorf("ports left: %v", keys)
			}
			e.assertClosedOnce()
		})
	}
}

// TestDelRetryUsesRecord: after a failed DEL, the retry still has the record
// and hands the engine the data Attach returned, not a guess.
func TestDelRetryUsesRecord(t *testing.T) {
	e := newEnv(t)
	id := containerID("del-retry")
	conf := e.conf("1.1.0")
	e.add(id, "net1", conf)
	data := string(e.sw.port(id, "net1").data)
	e.sw.setFail("Detach", errors.New("switch busy"))
	if _, err := run(t, e.p.Del, e.args(id, "net1", conf)); err == nil || !strings.Contains(err.Error(), "switch busy") {
		t.Fatalf("want the Detach error, got %v", err)
	}
	if e.sw.port(id, "net1") == nil {
		t.Fatal("the fake removed the port though Detach failed")
	}
	e.sw.setFail("Detach", nil)
	if _, err := run(t, e.p.Del, e.args(id, "net1", conf)); err != nil {
		t.Fatal(err)
	}
	d := e.sw.callsOf("Detach")
	if len(d) != 2 || !jsonEqual(d[1].data, []byte(data)) {
		t.Fatalf("retry Detach calls %d, data %s; want the record's %s", len(d), d[len(d)-1].data, data)
	}
	e.assertGone(id, "net1", false)
}

// TestDelRecordLayoutWins: DEL removes what the record says ADD created,
// even when the configuration now names another shared directory.
func TestDelRecordLayoutWins(t *testing.T) {
	e := newEnv(t)
	id := containerID("del-layout")
	e.add(id, "net1", e.conf("1.0.0"))
	rec := e.loadRecord(id, "net1")
	other := e.conf("1.0.0", withSharedDir(e.shared+"/other"))
	if _, err := run(t, e.p.Del, e.args(id, "net1", other)); err != nil {
		t.Fatal(err)
	}
	d := e.sw.callsOf("Detach")
	if len(d) != 1 || !reflect.DeepEqual(d[0].att.Layout, rec.Layout) {
		t.Fatalf("Detach layout %+v, want the record's %+v", d[0].att.Layout, rec.Layout)
	}
	e.assertGone(id, "net1", false)
}
