package plugin_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/userspace-cni/userspace/pkg/engine"
	"github.com/userspace-cni/userspace/pkg/plugin"
	"github.com/userspace-cni/userspace/pkg/state"
)

func (e *testEnv) restore(id, ifName string) (*plugin.RestoreResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10e9)
	defer cancel()
	return e.p.Restore(ctx, slog.New(slog.DiscardHandler), id, ifName)
}

func TestRecordCarriesWhatRestoreNeeds(t *testing.T) {
	e := newEnv(t)
	id := containerID("record-v3")
	conf := e.conf("1.0.0")
	e.add(id, "net1", conf)
	rec := e.loadRecord(id, "net1")
	if rec.Version != 3 || !jsonEqual(rec.NetConf, conf) || rec.CNIPath != cniPath || rec.Args != multusArgs(id) {
		t.Fatalf("record: version %d, netConf %s, cniPath %q, args %q", rec.Version, rec.NetConf, rec.CNIPath, rec.Args)
	}
	if !rec.Restorable() {
		t.Fatal("a completed ADD's record is not restorable")
	}
}

func TestRestore(t *testing.T) {
	e := newEnv(t)
	id := containerID("restore")
	conf := e.conf("1.0.0")
	out := e.add(id, "net1", conf)
	before := e.loadRecord(id, "net1").EngineData
	checkConf := e.conf("1.0.0", withPrevResult(json.RawMessage(out)))

	res, err := e.restore(id, "net1")
	if err != nil || res.Outcome != plugin.Intact {
		t.Fatalf("restore of an intact attachment: %+v, %v", res, err)
	}
	if n := len(e.sw.callsOf("Restore")); n != 0 {
		t.Fatalf("an intact attachment was restored %d times", n)
	}

	e.sw.losePorts()
	// CHECK reports what the switch lost, until it is restored.
	if _, err := run(t, e.p.Check, e.args(id, "net1", checkConf)); err == nil || !strings.Contains(err.Error(), "no port") {
		t.Fatalf("CHECK of a lost attachment: %v", err)
	}
	res, err = e.restore(id, "net1")
	if err != nil || res.Outcome != plugin.Restored || res.Lost == nil {
		t.Fatalf("restore of a lost attachment: %+v, %v", res, err)
	}
	calls := e.sw.callsOf("Restore")
	if len(calls) != 1 || calls[0].att.Layout == nil || calls[0].att.Network != "net1" || calls[0].att.Host.Bridge.BridgeName != "br-4" ||
		calls[0].att.PodName == "" || !jsonEqual(calls[0].data, before) {
		t.Fatalf("Restore calls: %+v", calls)
	}
	if e.sw.port(id, "net1") == nil {
		t.Fatal("the port is not back")
	}
	after := e.loadRecord(id, "net1")
	if jsonEqual(after.EngineData, before) || !jsonEqual(after.EngineData, e.sw.port(id, "net1").data) {
		t.Fatalf("the record keeps the old engine data %s", after.EngineData)
	}
	if _, err := run(t, e.p.Check, e.args(id, "net1", checkConf)); err != nil {
		t.Fatalf("CHECK of the restored attachment: %v", err)
	}
	// Again: nothing to do.
	if res, err := e.restore(id, "net1"); err != nil || res.Outcome != plugin.Intact {
		t.Fatalf("second restore: %+v, %v", res, err)
	}
	// And DEL removes the restored port with the restored data.
	if _, err := run(t, e.p.Del, e.args(id, "net1", conf)); err != nil {
		t.Fatal(err)
	}
	if e.sw.port(id, "net1") != nil {
		t.Fatal("DEL left the restored port")
	}
}

func TestRestoreNeverResurrects(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(r *state.Record)
	}{
		{"DEL begun", func(r *state.Record) { r.Deleting = true }},
		{"ADD incomplete", func(r *state.Record) { r.Incomplete = true }},
		{"record of an older plugin", func(r *state.Record) { r.NetConf, r.CNIPath, r.Args = nil, "", "" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			id := containerID("resurrect-" + tc.name)
			e.add(id, "net1", e.conf("1.0.0"))
			rec := e.loadRecord(id, "net1")
			tc.edit(rec)
			if err := e.store().Save(rec); err != nil {
				t.Fatal(err)
			}
			e.sw.losePorts()
			res, err := e.restore(id, "net1")
			if err != nil || res.Outcome != plugin.Skipped {
				t.Fatalf("restore: %+v, %v", res, err)
			}
			if e.sw.port(id, "net1") != nil || len(e.sw.callsOf("Restore")) != 0 {
				t.Fatal("restored an attachment it must not")
			}
		})
	}
	t.Run("no record", func(t *testing.T) {
		e := newEnv(t)
		res, err := e.restore(containerID("none"), "net1")
		if err != nil || res.Outcome != plugin.Skipped {
			t.Fatalf("restore: %+v, %v", res, err)
		}
	})
}

// A DEL that fails half-way leaves its record marked, so that it is never
// restored while the runtime retries.
func TestDelMarksRecordFirst(t *testing.T) {
	e := newEnv(t)
	id := containerID("del-mark")
	conf := e.conf("1.0.0")
	e.add(id, "net1", conf)
	e.sw.setFail("Detach", errors.New("transaction failed"))
	if _, err := run(t, e.p.Del, e.args(id, "net1", conf)); err == nil {
		t.Fatal("DEL succeeded with a failing Detach")
	}
	rec := e.loadRecord(id, "net1")
	if rec == nil || !rec.Deleting || rec.Restorable() {
		t.Fatalf("record after a failed DEL: %+v", rec)
	}
	e.sw.losePorts()
	if res, err := e.restore(id, "net1"); err != nil || res.Outcome != plugin.Skipped {
		t.Fatalf("restore after a failed DEL: %+v, %v", res, err)
	}
}

func TestRestoreSwitchNotReady(t *testing.T) {
	e := newEnv(t)
	id := containerID("restore-unavailable")
	e.add(id, "net1", e.conf("1.0.0"))
	e.sw.losePorts()
	e.sw.setOpenErr(fmt.Errorf("dial: %w", engine.ErrUnavailable))
	if _, err := e.restore(id, "net1"); !errors.Is(err, engine.ErrUnavailable) {
		t.Fatalf("restore with the switch down: %v", err)
	}
	e.sw.setOpenErr(nil)
	e.sw.setFail("Restore", errors.New("transaction failed"))
	if _, err := e.restore(id, "net1"); err == nil || !strings.Contains(err.Error(), "transaction failed") {
		t.Fatalf("restore with a failing engine: %v", err)
	}
	e.sw.setFail("Restore", nil)
	if res, err := e.restore(id, "net1"); err != nil || res.Outcome != plugin.Restored {
		t.Fatalf("restore once the switch works: %+v, %v", res, err)
	}
}

func TestTeardown(t *testing.T) {
	e := newEnv(t)
	id := containerID("teardown")
	e.add(id, "net1", e.conf("1.0.0"))
	if len(e.allocations("net1")) != 1 {
		t.Fatal("no allocation after ADD")
	}
	rec := e.loadRecord(id, "net1")
	setCNIEnv(e.args(id, "net1", rec.NetConf))
	if err := e.p.Teardown(rec); err != nil {
		t.Fatal(err)
	}
	if e.sw.port(id, "net1") != nil || e.loadRecord(id, "net1") != nil || len(e.allocations("net1")) != 0 || exists(e.sockDir(id)) {
		t.Fatal("teardown left the port, the record, the address or the directory")
	}
}
