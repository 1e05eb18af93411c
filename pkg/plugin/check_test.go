package plugin_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/userspace-cni/userspace/pkg/engine"
)

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name string
		// prev edits the prevResult ADD printed; nil leaves it out.
		prev   func(map[string]any)
		before func(e *testEnv, id string)
		// wantErr is a substring of the expected error, "" for success.
		wantErr  string
		wantCode uint
		// wantCheck says the engine's Check must have run.
		wantCheck bool
	}{
		{name: "passes", prev: func(map[string]any) {}, wantCheck: true},
		{name: "interface without sandbox passes", prev: func(r map[string]any) {
			delete(r["interfaces"].([]any)[0].(map[string]any), "sandbox")
		}, wantCheck: true},
		{name: "no prevResult", wantErr: "prevResult", wantCode: uint(types.ErrInvalidNetworkConfig)},
		{name: "prevResult lacks the interface", prev: func(r map[string]any) {
			r["interfaces"].([]any)[0].(map[string]any)["name"] = "eth9"
		}, wantErr: `no interface "net1"`, wantCode: uint(types.ErrInvalidNetworkConfig)},
		{name: "prevResult interface in another sandbox", prev: func(r map[string]any) {
			r["interfaces"].([]any)[0].(map[string]any)["sandbox"] = "/var/run/netns/other"
		}, wantErr: `no interface "net1"`, wantCode: uint(types.ErrInvalidNetworkConfig)},
		{name: "record missing", prev: func(map[string]any) {}, before: func(e *testEnv, id string) {
			if err := os.Remove(e.recordPath(id, "net1")); err != nil {
				t.Fatal(err)
			}
		}, wantErr: "no record", wantCode: uint(types.ErrInternal)},
		{name: "config data missing", prev: func(map[string]any) {}, before: func(e *testEnv, id string) {
			if err := os.Remove(e.configDataPath(id, "net1")); err != nil {
				t.Fatal(err)
			}
		}, wantErr: "config data", wantCode: uint(types.ErrInternal)},
		{name: "engine Check fails", prev: func(map[string]any) {}, before: func(e *testEnv, _ string) {
			e.sw.setFail("Check", errors.New("Interface.error: could not open network device"))
		}, wantErr: "could not open network device", wantCode: uint(types.ErrInternal), wantCheck: true},
		{name: "port gone from the switch", prev: func(map[string]any) {}, before: func(e *testEnv, id string) {
			delete(e.sw.ports, portKey{id, "net1"})
		}, wantErr: "no port", wantCode: uint(types.ErrInternal), wantCheck: true},
		{name: "switch unavailable", prev: func(map[string]any) {}, before: func(e *testEnv, _ string) {
			e.sw.setOpenErr(fmt.Errorf("dial: %w", engine.ErrUnavailable))
		}, wantErr: "switch unavailable", wantCode: uint(types.ErrPluginNotAvailable)},
		{name: "IPAM allocation missing", prev: func(map[string]any) {}, before: func(e *testEnv, _ string) {
			for _, a := range e.allocations("net1") {
				if err := os.Remove(filepath.Join(e.ipamDir, "net1", a)); err != nil {
					t.Fatal(err)
				}
			}
		}, wantErr: "Failed to find address", wantCheck: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			id := containerID("check-" + tc.name)
			out := e.add(id, "net1", e.conf("1.0.0"))
			if tc.before != nil {
				tc.before(e, id)
			}
			var mods []confMod
			if tc.prev != nil {
				// As libcni does: the ADD result goes into the configuration.
				var prev map[string]any
				if err := json.Unmarshal([]byte(out), &prev); err != nil {
					t.Fatal(err)
				}
				tc.prev(prev)
				raw, err := json.Marshal(prev)
				if err != nil {
					t.Fatal(err)
				}
				mods = append(mods, withPrevResult(raw))
			}
			out, err := run(t, e.p.Check, e.args(id, "net1", e.conf("1.0.0", mods...)))
			if out != "" {
				t.Errorf("CHECK printed %q", out)
			}
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("CHECK: %v", err)
				}
			} else {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("want an error about %q, got %v", tc.wantErr, err)
				}
				if tc.wantCode != 0 && cniCode(err) != tc.wantCode {
					t.Errorf("error code %d, want %d: %v", cniCode(err), tc.wantCode, err)
				}
			}
			checks := e.sw.callsOf("Check")
			if tc.wantCheck {
				if len(checks) != 1 {
					t.Fatalf("engine Check called %d times, want 1", len(checks))
				}
				rec := e.loadRecord(id, "net1")
				if c := checks[0]; !jsonEqual(c.data, rec.EngineData) || c.att.ContainerID != id ||
					c.att.Layout == nil || *c.att.Layout != *rec.Layout {
					t.Errorf("Check of %+v with %s, want the record's layout and data %s", c.att, c.data, rec.EngineData)
				}
			} else if len(checks) != 0 {
				t.Errorf("engine Check called %d times, want none", len(checks))
			}
			e.assertClosedOnce()
			e.assertNoUseAfterClose()
		})
	}
}
