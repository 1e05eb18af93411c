package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/userspace-cni/userspace/pkg/engine"
	"github.com/userspace-cni/userspace/pkg/netconf"
	"github.com/userspace-cni/userspace/pkg/plugin"
	"github.com/userspace-cni/userspace/pkg/policy"
	"github.com/userspace-cni/userspace/pkg/state"
)

// fakeSwitch is an in-memory switch for the agent's unit tests; the agent
// against the real OVS-DPDK and VPP is in tests/integration.
type fakeSwitch struct {
	mu       sync.Mutex
	ports    map[string]bool
	restores int
	down     error
	// late makes Restore put the port back but answer as a switch whose
	// reply did not come in time (it executed the request late).
	late bool
}

func (s *fakeSwitch) open(context.Context, *netconf.NetConf, *policy.Policy, *slog.Logger) (engine.Engine, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down != nil {
		return nil, s.down
	}
	return &fakeConn{s}, nil
}

func (s *fakeSwitch) has(cid string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ports[cid]
}

func (s *fakeSwitch) lose() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ports = map[string]bool{}
}

type fakeConn struct{ s *fakeSwitch }

func (c *fakeConn) Attach(_ context.Context, a *engine.Attachment) (json.RawMessage, error) {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	c.s.ports[a.ContainerID] = true
	return json.RawMessage(`{"port":1}`), nil
}

func (c *fakeConn) Detach(_ context.Context, a *engine.Attachment, _ json.RawMessage) error {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	delete(c.s.ports, a.ContainerID)
	return nil
}

func (c *fakeConn) Check(_ context.Context, a *engine.Attachment, _ json.RawMessage) error {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	if !c.s.ports[a.ContainerID] {
		return fmt.Errorf("no port of %s", a.ContainerID)
	}
	return nil
}

func (c *fakeConn) Restore(_ context.Context, a *engine.Attachment, _ json.RawMessage) (json.RawMessage, error) {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	c.s.ports[a.ContainerID] = true
	c.s.restores++
	if c.s.late {
		return nil, fmt.Errorf("%w: no reply in time", engine.ErrUnavailable)
	}
	return json.RawMessage(`{"port":2}`), nil
}

func (c *fakeConn) ListOwned(context.Context) ([]engine.Owned, error) { return nil, nil }
func (c *fakeConn) Status(context.Context) error                      { return nil }
func (c *fakeConn) Close()                                            {}

type fakeKube struct {
	mu     sync.Mutex
	pods   map[string]string
	events []string
}

func (k *fakeKube) Pods(context.Context) (map[string]string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := map[string]string{}
	for n, u := range k.pods {
		out[n] = u
	}
	return out, nil
}

func (k *fakeKube) Event(_ context.Context, ref PodRef, typ, reason, _ string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.events = append(k.events, ref.Namespace+"/"+ref.Name+" "+typ+" "+reason)
	return nil
}

type env struct {
	t        *testing.T
	dir      string
	sw       *fakeSwitch
	kube     *fakeKube
	p        *plugin.Plugin
	identity string
	a        *Agent
}

func newEnv(t *testing.T) *env {
	root := t.TempDir()
	pol := map[string]any{
		"sharedDirs": []string{filepath.Join(root, "shared")}, "stateDir": filepath.Join(root, "state"),
		"shortSocketDir": filepath.Join(root, "s"), "ovsdbSocketDirs": []string{filepath.Join(root, "ovs")},
		"ovsdbSocket": "unix:" + filepath.Join(root, "ovs", "db.sock"),
	}
	data, _ := json.Marshal(pol)
	polPath := filepath.Join(root, "policy.json")
	if err := os.WriteFile(polPath, data, 0o600); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, dir: root, sw: &fakeSwitch{ports: map[string]bool{}}, kube: &fakeKube{pods: map[string]string{}}, identity: "run1"}
	getenv := func(k string) string {
		if k == policy.PathEnv {
			return polPath
		}
		return ""
	}
	e.p = &plugin.Plugin{Getenv: getenv, Stderr: io.Discard, OpenEngine: e.sw.open}
	e.a = New(Config{Plugin: e.p, Kube: e.kube, OrphanGrace: time.Nanosecond, OrphanInterval: time.Nanosecond,
		Resync: time.Hour, RetryInterval: time.Nanosecond,
		Probe: func(context.Context, string, string) (string, error) { return e.identity, nil }})
	return e
}

func (e *env) add(name string) string {
	e.t.Helper()
	cid := strings.Repeat(name[:1], 12) + name
	conf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"net1","type":"userspace","sharedDir":%q,
		"host":{"engine":"ovs-dpdk","iftype":"vhostuser","vhost":{"mode":"client"}}}`, filepath.Join(e.dir, "shared"))
	args := &skel.CmdArgs{ContainerID: cid, IfName: "net1", Netns: "/var/run/netns/x", StdinData: []byte(conf),
		Args: "K8S_POD_NAMESPACE=ns;K8S_POD_NAME=pod-" + name + ";K8S_POD_UID=uid-" + name}
	stdout := os.Stdout
	os.Stdout, _ = os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	err := e.p.Add(args)
	os.Stdout = stdout
	if err != nil {
		e.t.Fatalf("ADD: %v", err)
	}
	e.kube.pods["ns/pod-"+name] = "uid-" + name
	return cid
}

func (e *env) store() *state.Store { return state.New(filepath.Join(e.dir, "state")) }

// restartFailing restarts the switch as the run identity, losing every
// port; the agent's next step finds it answering with err.
func (e *env) restartFailing(ctx context.Context, identity string, err error) {
	e.sw.lose()
	e.sw.down = err
	e.identity = identity
	e.a.Step(ctx)
}

func TestRestoresAfterSwitchRestart(t *testing.T) {
	e := newEnv(t)
	a, b := e.add("alpha"), e.add("bravo")
	ctx := context.Background()
	e.a.Step(ctx)
	if !e.a.ready.Load() || e.sw.restores != 0 {
		t.Fatalf("after the first step: ready %v, restores %d", e.a.ready.Load(), e.sw.restores)
	}
	srv := httptest.NewServer(e.a.Handler())
	defer srv.Close()
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %v %v", path, resp, err)
		}
		resp.Body.Close()
	}

	// The switch restarts and loses both; DEL of b has begun (and failed).
	rec, _ := e.store().Load(b, "net1")
	rec.Deleting = true
	if err := e.store().Save(rec); err != nil {
		t.Fatal(err)
	}
	// A corrupt record is logged and skipped; the rest is restored.
	if err := os.WriteFile(filepath.Join(e.dir, "state", "attachments", "x@net1.json"), []byte("{garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.sw.lose()
	e.identity = "run2"
	e.a.Step(ctx)
	if !e.sw.has(a) || e.sw.has(b) || e.sw.restores != 1 {
		t.Fatalf("after the restart: a %v, b %v, restores %d", e.sw.has(a), e.sw.has(b), e.sw.restores)
	}
	if r, _ := e.store().Load(a, "net1"); string(r.EngineData) != `{"port":2}` && !strings.Contains(string(r.EngineData), "2") {
		t.Fatalf("the record keeps the old engine data: %s", r.EngineData)
	}
	if n := testutil.ToFloat64(e.a.m.restores.WithLabelValues("ovs-dpdk", "restored")); n != 1 {
		t.Fatalf("restores_total{restored} = %v", n)
	}
	if n := testutil.CollectAndCount(e.a.m.restoreTime); n != 1 {
		t.Fatalf("restore duration series = %d", n)
	}
	if n := testutil.ToFloat64(e.a.m.errors.WithLabelValues("read_record")); n < 1 {
		t.Fatalf("errors_total{read_record} = %v", n)
	}
	if n := testutil.ToFloat64(e.a.m.switchBacks.WithLabelValues("ovs-dpdk", "unix:"+filepath.Join(e.dir, "ovs", "db.sock"))); n != 1 {
		t.Fatalf("switch_restarts_total = %v", n)
	}
	if n := testutil.ToFloat64(e.a.m.attachments.WithLabelValues("ovs-dpdk", stateDeleting)); n != 1 {
		t.Fatalf("attachments{deleting} = %v", n)
	}
	want := []string{"ns/pod-alpha Warning " + ReasonLost, "ns/pod-alpha Normal " + ReasonRestored}
	if strings.Join(e.kube.events, ",") != strings.Join(want, ",") {
		t.Fatalf("events %v, want %v", e.kube.events, want)
	}
	// Nothing more to do: no new restore, no new event.
	e.a.Step(ctx)
	if e.sw.restores != 1 || len(e.kube.events) != 2 {
		t.Fatalf("a quiet step restored %d, events %v", e.sw.restores, e.kube.events)
	}
}

func TestSwitchNotReadyIsRetried(t *testing.T) {
	e := newEnv(t)
	a := e.add("alpha")
	ctx := context.Background()
	e.a.Step(ctx)
	e.restartFailing(ctx, "run2", fmt.Errorf("dial: %w", engine.ErrUnavailable))
	if e.sw.has(a) {
		t.Fatal("restored on a switch that is down")
	}
	e.sw.down = nil
	e.a.Step(ctx)
	if !e.sw.has(a) {
		t.Fatal("not restored once the switch answered")
	}
}

// A pass the switch was not ready for (ovs-vswitchd still initialising
// DPDK) is tried again at the probes' pace, not after RetryInterval: with
// 1 s, 100 attachments of a killed ovs-vswitchd took 1.1-1.2 s to come
// back, the first pass having come while DPDK initialised. A restore that
// failed otherwise still waits RetryInterval.
func TestNotReadyRetriedAtProbePace(t *testing.T) {
	e := newEnv(t)
	e.a.cfg.RetryInterval, e.a.cfg.ProbeInterval = time.Hour, time.Millisecond
	a := e.add("alpha")
	ctx := context.Background()
	e.a.Step(ctx)
	e.restartFailing(ctx, "run2", fmt.Errorf("dpdk_initialized is false: %w", engine.ErrUnavailable))
	e.sw.down = nil
	time.Sleep(5 * time.Millisecond)
	e.a.Step(ctx)
	if !e.sw.has(a) {
		t.Fatal("not restored a probe after the switch became ready")
	}

	e.restartFailing(ctx, "run3", fmt.Errorf("a broken switch"))
	e.sw.down = nil
	time.Sleep(5 * time.Millisecond)
	e.a.Step(ctx)
	if e.sw.has(a) {
		t.Fatal("a failed restore was tried again before RetryInterval")
	}
}

// A restore whose reply did not come in time but that the switch carried
// out is counted, and told to the pod, when the attachment is found intact.
func TestLateRestoreCounted(t *testing.T) {
	e := newEnv(t)
	a := e.add("alpha")
	ctx := context.Background()
	e.a.Step(ctx)
	e.sw.lose()
	e.sw.late = true
	e.identity = "run2"
	e.a.Step(ctx)
	if !e.sw.has(a) {
		t.Fatal("the late restore did not put the port back")
	}
	if n := testutil.ToFloat64(e.a.m.restores.WithLabelValues("ovs-dpdk", "restored")); n != 0 {
		t.Fatalf("restores_total{restored} = %v before the attachment was seen back", n)
	}
	e.a.Step(ctx)
	if n := testutil.ToFloat64(e.a.m.restores.WithLabelValues("ovs-dpdk", "restored")); n != 1 {
		t.Fatalf("restores_total{restored} = %v, want 1", n)
	}
	if e.sw.restores != 1 {
		t.Fatalf("restored %d times, want once", e.sw.restores)
	}
	want := []string{"ns/pod-alpha Warning " + ReasonLost, "ns/pod-alpha Normal " + ReasonRestored}
	if strings.Join(e.kube.events, ",") != strings.Join(want, ",") {
		t.Fatalf("events %v, want %v", e.kube.events, want)
	}
	e.a.Step(ctx)
	if n := testutil.ToFloat64(e.a.m.restores.WithLabelValues("ovs-dpdk", "restored")); n != 1 {
		t.Fatalf("a quiet step counted again: %v", n)
	}
}

func TestOrphans(t *testing.T) {
	e := newEnv(t)
	a, b := e.add("alpha"), e.add("bravo")
	ctx := context.Background()
	e.a.Step(ctx)
	delete(e.kube.pods, "ns/pod-bravo")
	e.kube.pods["ns/pod-alpha"] = "uid-alpha" // still there
	e.a.Step(ctx)                             // first seen gone
	if !e.sw.has(b) {
		t.Fatal("collected before the grace period")
	}
	time.Sleep(time.Millisecond)
	e.a.Step(ctx)
	if e.sw.has(b) || !e.sw.has(a) {
		t.Fatalf("after the grace period: a %v, b %v", e.sw.has(a), e.sw.has(b))
	}
	if r, err := e.store().Load(b, "net1"); r != nil || err != nil {
		t.Fatalf("the orphan's record is left: %v %v", r, err)
	}
	if n := testutil.ToFloat64(e.a.m.orphans.WithLabelValues("ovs-dpdk")); n != 1 {
		t.Fatalf("orphans_collected_total = %v", n)
	}
	// A pod recreated under the same name is another pod: its UID differs.
	e.kube.pods["ns/pod-alpha"] = "uid-other"
	e.a.Step(ctx)
	time.Sleep(time.Millisecond)
	e.a.Step(ctx)
	if e.sw.has(a) {
		t.Fatal("an attachment of a pod whose UID changed was kept")
	}
}
