package plugin_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/userspace-cni/userspace/pkg/engine"
)

func TestStatus(t *testing.T) {
	for _, tc := range []struct {
		name    string
		ipam    string
		breakIt func(e *testEnv)
		// wantErr is a substring of the expected error ("" for success),
		// which must be CNI error 50.
		wantErr    string
		wantStatus bool
		wantIPAM   bool
	}{
		{name: "ok", ipam: "recording-ipam", wantStatus: true, wantIPAM: true},
		{name: "ok with host-local", ipam: "host-local", wantStatus: true},
		{name: "engine Status fails", ipam: "recording-ipam", breakIt: func(e *testEnv) {
			e.sw.setFail("Status", errors.New("DPDK is not initialized"))
		}, wantErr: "DPDK is not initialized", wantStatus: true},
		{name: "OpenEngine fails", ipam: "recording-ipam", breakIt: func(e *testEnv) {
			e.sw.setOpenErr(fmt.Errorf("dial unix db.sock: %w", engine.ErrUnavailable))
		}, wantErr: "switch unavailable"},
		{name: "OpenEngine fails with a plain error", ipam: "recording-ipam", breakIt: func(e *testEnv) {
			e.sw.setOpenErr(errors.New("host.engine \"vpp\" is not available"))
		}, wantErr: "not available"},
		{name: "IPAM unavailable", ipam: "failing-ipam", wantErr: "failing-ipam", wantStatus: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			if tc.breakIt != nil {
				tc.breakIt(e)
			}
			out, err := run(t, e.p.Status, gcArgs(e.conf("1.1.0", withIPAM(tc.ipam))))
			if out != "" {
				t.Errorf("STATUS printed %q", out)
			}
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("STATUS: %v", err)
				}
			} else {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("want an error about %q, got %v", tc.wantErr, err)
				}
				if got := cniCode(err); got != types.ErrPluginNotAvailable {
					t.Errorf("error code %d, want %d (plugin not available): %v", got, types.ErrPluginNotAvailable, err)
				}
			}
			if got := len(e.sw.callsOf("Status")); (got == 1) != tc.wantStatus || got > 1 {
				t.Errorf("engine Status called %d times", got)
			}
			calls := ipamCalls(t)
			if tc.wantIPAM && (len(calls) != 1 || !strings.HasPrefix(calls[0], "STATUS|")) {
				t.Errorf("IPAM STATUS not delegated: %v", calls)
			}
			e.assertClosedOnce()
			// STATUS changes nothing on the node.
			if exists(e.stateDir) || exists(e.shared) {
				t.Errorf("STATUS created state or socket directories")
			}
		})
	}
}
