package vpp_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/userspace-cni/userspace/pkg/engine"
	"github.com/userspace-cni/userspace/pkg/netconf"
	"github.com/userspace-cni/userspace/pkg/vpp"
)

// The bound a hung VPP gets in these tests: long enough that a loaded
// machine running -race still answers the calls that are not hung.
const callTimeout = time.Second

// boundedEngine connects with a short per-call bound.
func (v *testEnv) boundedEngine(ifType string) *vpp.Engine {
	v.t.Helper()
	e, err := vpp.Connect(context.Background(), vpp.Config{Socket: "/fake/api.sock", IfType: ifType, Adapter: v.f.newConn(), CallTimeout: callTimeout})
	if err != nil {
		v.t.Fatalf("Connect: %v", err)
	}
	v.t.Cleanup(e.Close)
	return e
}

// wantHung checks err is the error of a VPP that stopped answering: marked
// unavailable, naming the socket and what was being done.
func wantHung(t *testing.T, err error, doing string) {
	t.Helper()
	if !errors.Is(err, engine.ErrUnavailable) || !strings.Contains(err.Error(), "VPP at /fake/api.sock did not answer within") ||
		!strings.Contains(err.Error(), doing) {
		t.Errorf("error %v: want ErrUnavailable naming the socket and %q", err, doing)
	}
}

// TestAttachHung: VPP stops answering at each request of ADD in turn. Attach
// fails as unavailable, sends nothing after the unanswered request (no
// rollback can succeed), and a later DEL without a record removes what VPP
// committed.
func TestAttachHung(t *testing.T) {
	for _, tc := range []struct {
		name, req, doing string
	}{
		{"sock", reqSockAddDel, "registering memif socket"},
		{"bd", reqBDAddDel, "configuring interface"},
		{"create", reqMemifAdd, "creating memif"},
		{"tag", reqTag, "configuring interface"},
		{"up", reqFlags, "configuring interface"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := newEnv(t)
			a := v.memifAtt(cidHex, "net1")
			e := v.boundedEngine(netconf.IfTypeMemif)
			v.f.hangNth(tc.req, 1)
			_, err := e.Attach(context.Background(), a)
			wantHung(t, err, tc.doing)
			reqs := v.f.takeRequests()
			last := -1
			for i, r := range reqs {
				if r == tc.req {
					last = i
				}
			}
			// Requests sent in the same batch come after it; no rollback.
			if after := strings.Join(reqs[last+1:], " "); last < 0 || strings.Contains(after, reqMemifDel) || strings.Contains(after, reqMemifAdd) {
				t.Errorf("requests after the unanswered %s: %v", tc.req, reqs)
			}
			if err := v.engine(netconf.IfTypeMemif).Detach(context.Background(), a, nil); err != nil {
				t.Fatalf("DEL once VPP answers: %v", err)
			}
			if left := v.leftovers(); left != "" {
				t.Errorf("left after DEL: %s", left)
			}
		})
	}
}

// TestVerbsHung: DEL, CHECK and GC's listing fail as unavailable when VPP
// stops answering, and the verb's own deadline ends a call before the bound.
func TestVerbsHung(t *testing.T) {
	v := newEnv(t)
	a := v.memifAtt(cidHex, "net1")
	data := v.attach(v.engine(netconf.IfTypeMemif), a)
	for _, tc := range []struct {
		name, req string
		call      func(e *vpp.Engine) error
	}{
		{"del", reqIfDump, func(e *vpp.Engine) error { return e.Detach(context.Background(), a, data) }},
		{"del-norecord", reqMemifDump, func(e *vpp.Engine) error { return e.Detach(context.Background(), a, nil) }},
		{"del-deleting", reqMemifDel, func(e *vpp.Engine) error { return e.Detach(context.Background(), a, data) }},
		{"check", reqIfDump, func(e *vpp.Engine) error { return e.Check(context.Background(), a, data) }},
		{"list", reqSockDump, func(e *vpp.Engine) error { _, err := e.ListOwned(context.Background()); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "del-deleting" {
				// Re-create what the previous cases left in place.
				if v.leftovers() == "" {
					data = v.attach(v.engine(netconf.IfTypeMemif), a)
				}
			}
			e := v.boundedEngine(netconf.IfTypeMemif)
			v.f.hangNth(tc.req, 1)
			wantHung(t, tc.call(e), "while")
		})
	}
	t.Run("deadline", func(t *testing.T) {
		e, err := vpp.Connect(context.Background(), vpp.Config{Socket: "/fake/api.sock", IfType: netconf.IfTypeMemif,
			Adapter: v.f.newConn(), CallTimeout: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		v.f.hangNth(reqIfDump, 1)
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- e.Check(ctx, a, json.RawMessage(nil)) }()
		select {
		case err := <-done:
			wantHung(t, err, "reading interfaces")
		case <-time.After(time.Minute):
			t.Fatal("CHECK ignored its context's deadline")
		}
		// Once the deadline passed, nothing more is sent.
		if err := e.Detach(ctx, a, data); !errors.Is(err, engine.ErrUnavailable) {
			t.Errorf("DEL on a connection whose VPP did not answer: %v", err)
		}
	})
}
