package agent

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/userspace-cni/userspace/pkg/ovsdb"
)

// fakeOVS answers a probe's Identity with what the test sets; a timeout
// stands for an ovsdb-server slow under load.
type fakeOVS struct {
	id      ovsdb.Identity
	timeout bool
	dials   int
}

type fakeOVSConn struct{ f *fakeOVS }

func (c fakeOVSConn) Identity(context.Context) (ovsdb.Identity, error) {
	if c.f.timeout {
		return ovsdb.Identity{}, context.DeadlineExceeded
	}
	return c.f.id, nil
}
func (fakeOVSConn) Close() {}

// TestOVSIdentityIgnoresOwnReconnects: the agent's probe timing out and
// reconnecting finds the same switch, and the identity stays; a restarted
// ovs-vswitchd (its lock lost, seen by the watcher or by a probe) and an
// empty database (a new root) change it.
func TestOVSIdentityIgnoresOwnReconnects(t *testing.T) {
	f := &fakeOVS{id: ovsdb.Identity{Root: "root-1", NextCfg: 5, Vswitchd: true}}
	p := &ovsProber{endpoint: "unix:/fake/db.sock", connect: func(context.Context) (ovsConn, error) {
		f.dials++
		return fakeOVSConn{f}, nil
	}}
	ctx := context.Background()
	probe := func(what string) string {
		t.Helper()
		id, err := p.probe(ctx)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return id
	}
	first := probe("first probe")

	// Under load: the probe times out, closes its connection and dials
	// again on the next turn. The same switch answers.
	f.timeout = true
	if _, err := p.probe(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a probe that timed out: %v", err)
	}
	f.timeout = false
	f.id.NextCfg++ // an ovs-vsctl change meanwhile: no restart either
	if got := probe("after the agent's reconnect"); got != first {
		t.Errorf("the agent's own reconnect changed the identity: %q, was %q", got, first)
	}
	if f.dials != 2 {
		t.Errorf("the probe dialled %d times, want a new connection after the timeout", f.dials)
	}

	// ovs-vswitchd killed and restarted between two probes: the lock
	// watcher saw it die.
	p.deaths.Add(1)
	second := probe("after a death the watcher saw")
	if second == first {
		t.Errorf("ovs-vswitchd's death left the identity %q", second)
	}
	// A probe that finds ovs-vswitchd gone, then back.
	f.id.Vswitchd = false
	if _, err := p.probe(ctx); err == nil {
		t.Fatal("a probe without ovs-vswitchd succeeded")
	}
	f.id.Vswitchd = true
	third := probe("after ovs-vswitchd was seen gone")
	if third == second {
		t.Errorf("ovs-vswitchd seen gone and back left the identity %q", third)
	}
	// ovsdb-server restarted with an empty database.
	f.id.Root = "root-2"
	if got := probe("after a new database"); got == third {
		t.Errorf("a new database left the identity %q", got)
	}
}

// TestProbeFailureIsNoRestart: a switch that misses a probe (ovsdb-server
// slow under load) and answers again as the same run is not counted as
// restarted and gets no pass over its attachments; a new identity is.
func TestProbeFailureIsNoRestart(t *testing.T) {
	e := newEnv(t)
	e.add("alpha")
	var probeErr error
	e.a.cfg.Probe = func(context.Context, string, string) (string, error) { return e.identity, probeErr }
	ctx := context.Background()
	e.a.Step(ctx)
	backs := func() float64 {
		return testutil.ToFloat64(e.a.m.switchBacks.WithLabelValues("ovs-dpdk", "unix:"+filepath.Join(e.dir, "ovs", "db.sock")))
	}
	passes := testutil.ToFloat64(e.a.m.reconciles)
	probeErr = context.DeadlineExceeded
	e.a.Step(ctx)
	probeErr = nil
	e.a.Step(ctx)
	if n := backs(); n != 0 {
		t.Errorf("a missed probe counted as %v restarts", n)
	}
	if n := testutil.ToFloat64(e.a.m.reconciles) - passes; n != 0 {
		t.Errorf("a missed probe caused %v passes", n)
	}
	e.identity = "run2"
	e.a.Step(ctx)
	if n := backs(); n != 1 {
		t.Errorf("a new identity counted as %v restarts, want 1", n)
	}
}
