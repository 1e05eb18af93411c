package kube

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	types100 "github.com/containernetworking/cni/pkg/types/100"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/userspace-cni/userspace/pkg/configdata"
	"github.com/userspace-cni/userspace/pkg/netconf"
	"github.com/userspace-cni/userspace/pkg/podapi"
)

func newTestClient(t *testing.T, f *fakeAPI) *Client {
	t.Helper()
	c, err := New(writeKubeconfig(t, f.srv.URL), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func entry(containerID, ifName string) *configdata.ConfigData {
	return &configdata.ConfigData{
		ContainerID: containerID, IfName: ifName, Name: "net",
		Config:   netconf.UserSpaceConf{Engine: "ovs-dpdk", IfType: "vhostuser", NetType: "interface", Vhost: netconf.VhostConf{Mode: "server", Socketfile: containerID[:4] + "-" + ifName}},
		IPResult: &types100.Result{CNIVersion: "1.0.0"},
	}
}

// annotationEntries decodes the pod's configuration-data annotation.
func annotationEntries(t *testing.T, value string) []configdata.ConfigData {
	t.Helper()
	var out []configdata.ConfigData
	if value == "" {
		return nil
	}
	if err := json.Unmarshal([]byte(value), &out); err != nil {
		t.Fatalf("annotation %q: %v", value, err)
	}
	return out
}

func TestNewRefuses(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage")
	if err := os.WriteFile(garbage, []byte("{not yaml: ["), 0o600); err != nil {
		t.Fatal(err)
	}
	// Even with the in-cluster variables set, an empty kubeconfig must
	// not fall back to the in-cluster configuration.
	t.Setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
	t.Setenv("KUBERNETES_SERVICE_PORT", "443")
	for _, p := range []string{"", filepath.Join(dir, "missing"), empty, garbage} {
		c, err := New(p, time.Second)
		if err == nil {
			t.Errorf("New(%q) succeeded: %+v", p, c)
			continue
		}
		if p != "" && !strings.Contains(err.Error(), p) {
			t.Errorf("New(%q) error does not name the file: %v", p, err)
		}
	}
}

func TestPodAndUID(t *testing.T) {
	f := newFakeAPI(t)
	f.addPod("ns1", "p1", "uid-1", nil)
	c := newTestClient(t, f)
	ctx := context.Background()
	pod, err := c.Pod(ctx, "ns1", "p1", "uid-1")
	if err != nil {
		t.Fatal(err)
	}
	if pod.Name != "p1" || pod.UID != "uid-1" {
		t.Errorf("got pod %s/%s uid %s", pod.Namespace, pod.Name, pod.UID)
	}
	if _, err := c.Pod(ctx, "ns1", "p1", ""); err != nil {
		t.Errorf("no UID to check: %v", err)
	}
	_, err = c.Pod(ctx, "ns1", "p1", "uid-2")
	if !podapi.IsUIDMismatch(err) || !strings.Contains(err.Error(), "uid-1") || !strings.Contains(err.Error(), "uid-2") || !strings.Contains(err.Error(), "ns1/p1") {
		t.Errorf("UID mismatch error: %v", err)
	}
	if n := c.Requests(); n != 3 {
		t.Errorf("3 Pod calls sent %d requests", n)
	}
	if _, err := c.Pod(ctx, "", "p1", ""); err == nil {
		t.Error("empty namespace accepted")
	}
}

func TestErrorKinds(t *testing.T) {
	f := newFakeAPI(t)
	c := newTestClient(t, f)
	ctx := context.Background()

	_, err := c.Pod(ctx, "ns1", "gone", "")
	if !podapi.IsNotFound(err) || !apierrors.IsNotFound(err) || !strings.Contains(err.Error(), "get pod ns1/gone") {
		t.Errorf("missing pod: %v", err)
	}
	for code, kind := range map[int]error{
		http.StatusForbidden:           podapi.ErrForbidden,
		http.StatusUnauthorized:        podapi.ErrUnauthorized,
		http.StatusInternalServerError: podapi.ErrUnreachable,
		http.StatusServiceUnavailable:  podapi.ErrUnreachable,
		http.StatusBadRequest:          podapi.ErrAPI,
	} {
		f.mu.Lock()
		f.status = code
		f.mu.Unlock()
		_, err := c.Pod(ctx, "ns1", "p1", "")
		if !errors.Is(err, kind) {
			t.Errorf("HTTP %d: got %v, want kind %v", code, err, kind)
		}
		var e *podapi.Error
		if !errors.As(err, &e) || e.Verb != "get" || e.Namespace != "ns1" || e.Name != "p1" {
			t.Errorf("HTTP %d: not an *Error naming the pod and verb: %#v", code, err)
		}
		for _, other := range []error{podapi.ErrNotFound, podapi.ErrForbidden, podapi.ErrUnauthorized, podapi.ErrUnreachable, podapi.ErrAPI, podapi.ErrUIDMismatch, podapi.ErrConflict} {
			if other != kind && errors.Is(err, other) {
				t.Errorf("HTTP %d: error also matches %v", code, other)
			}
		}
	}
}

func TestUnreachableIsBoundedAndClear(t *testing.T) {
	// A port nobody listens on: refused at once.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c, err := New(writeKubeconfig(t, "http://"+addr), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = c.Pod(context.Background(), "ns1", "p1", "")
	if !podapi.IsUnreachable(err) || !strings.Contains(err.Error(), "ns1/p1") {
		t.Errorf("refused: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("refused connection took %v", d)
	}
	if err := c.RemoveConfigData(context.Background(), "ns1", "p1", "cid", "net1"); !podapi.IsUnreachable(err) {
		t.Errorf("RemoveConfigData with the API down: %v", err)
	}

	// A server that accepts and never answers: bounded by the timeout.
	hang := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(hang)
	c2, err := New(writeKubeconfig(t, srv.URL), 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	_, err = c2.Pod(context.Background(), "ns1", "p1", "")
	d := time.Since(start)
	if !podapi.IsUnreachable(err) {
		t.Errorf("hanging server: %v", err)
	}
	if d > 2*time.Second {
		t.Errorf("hanging server: returned after %v with a 300ms timeout", d)
	}
	t.Logf("refused and hanging API: %v", err)
}

func TestAddConfigDataOneGetOnePatch(t *testing.T) {
	f := newFakeAPI(t)
	f.addPod("ns1", "p1", "uid-1", map[string]string{"other": "kept"})
	c := newTestClient(t, f)
	ctx := context.Background()
	pod, err := c.Pod(ctx, "ns1", "p1", "uid-1")
	if err != nil {
		t.Fatal(err)
	}
	e := entry("aaaa1111", "net1")
	if err := c.AddConfigData(ctx, pod, e, "/var/lib/cni/usrspcni"); err != nil {
		t.Fatal(err)
	}
	if n := c.Requests(); n != 2 {
		t.Errorf("ADD sent %d requests, want 2 (GET, PATCH)", n)
	}
	got := f.pod("ns1", "p1")
	es := annotationEntries(t, got.Annotations[configdata.AnnotationConfigData])
	if len(es) != 1 || es[0].ContainerID != "aaaa1111" || es[0].IfName != "net1" || es[0].Config.Vhost.Socketfile != "aaaa-net1" {
		t.Errorf("annotation: %+v", es)
	}
	if got.Annotations[configdata.AnnotationMappedDir] != "/var/lib/cni/usrspcni" || got.Annotations["other"] != "kept" {
		t.Errorf("annotations: %v", got.Annotations)
	}
	// The same data again: nothing to send.
	if err := c.AddConfigData(ctx, got, e, "/var/lib/cni/usrspcni"); err != nil {
		t.Fatal(err)
	}
	if n := c.Requests(); n != 2 {
		t.Errorf("an unchanged ADD sent %d more requests", n-2)
	}
}

func TestAddConfigDataRetriesOnConflict(t *testing.T) {
	f := newFakeAPI(t)
	f.addPod("ns1", "p1", "uid-1", nil)
	c := newTestClient(t, f)
	ctx := context.Background()
	pod, err := c.Pod(ctx, "ns1", "p1", "")
	if err != nil {
		t.Fatal(err)
	}
	// Another process publishes net2 between our GET and our PATCH.
	other := entry("bbbb2222", "net2")
	otherJSON, _ := json.Marshal([]*configdata.ConfigData{other})
	f.beforePatch = func(f *fakeAPI) {
		f.beforePatch = nil
		f.bumpLocked("ns1/p1", configdata.AnnotationConfigData, string(otherJSON))
	}
	if err := c.AddConfigData(ctx, pod, entry("aaaa1111", "net1"), ""); err != nil {
		t.Fatal(err)
	}
	es := annotationEntries(t, f.pod("ns1", "p1").Annotations[configdata.AnnotationConfigData])
	if len(es) != 2 || es[0].IfName != "net2" || es[1].IfName != "net1" {
		t.Errorf("lost an update: %+v", es)
	}
	// GET, PATCH (409), GET, PATCH.
	if n := c.Requests(); n != 4 {
		t.Errorf("sent %d requests, want 4", n)
	}
}

func TestAddConfigDataGivesUp(t *testing.T) {
	f := newFakeAPI(t)
	f.addPod("ns1", "p1", "uid-1", nil)
	c := newTestClient(t, f)
	c.attempts = 3
	f.beforePatch = func(f *fakeAPI) { f.bumpLocked("ns1/p1", "x", "y") }
	pod := f.pod("ns1", "p1")
	err := c.AddConfigData(context.Background(), pod, entry("aaaa1111", "net1"), "")
	if !podapi.IsConflict(err) || !strings.Contains(err.Error(), "patch pod ns1/p1") {
		t.Errorf("endless conflicts: %v", err)
	}
	if f.patches != 3 {
		t.Errorf("%d PATCH attempts, want 3", f.patches)
	}
}

func TestAddConfigDataPodReplaced(t *testing.T) {
	f := newFakeAPI(t)
	f.addPod("ns1", "p1", "uid-1", nil)
	c := newTestClient(t, f)
	pod := f.pod("ns1", "p1")
	// The pod is deleted and re-created under the same name meanwhile.
	f.addPod("ns1", "p1", "uid-2", nil)
	err := c.AddConfigData(context.Background(), pod, entry("aaaa1111", "net1"), "")
	if !podapi.IsUIDMismatch(err) {
		t.Errorf("published on a re-created pod: %v", err)
	}
	if v := f.pod("ns1", "p1").Annotations[configdata.AnnotationConfigData]; v != "" {
		t.Errorf("the new pod got %s", v)
	}
}

func TestRemoveConfigData(t *testing.T) {
	f := newFakeAPI(t)
	a, b := entry("aaaa1111", "net1"), entry("aaaa1111", "net2")
	both, _ := json.Marshal([]*configdata.ConfigData{a, b})
	f.addPod("ns1", "p1", "uid-1", map[string]string{configdata.AnnotationConfigData: string(both)})
	c := newTestClient(t, f)
	ctx := context.Background()

	// Another sandbox's entry for net1 is not ours to remove.
	if err := c.RemoveConfigData(ctx, "ns1", "p1", "cccc3333", "net1"); err != nil {
		t.Fatal(err)
	}
	if n := c.Requests(); n != 1 {
		t.Errorf("removing nothing sent %d requests, want 1 GET", n)
	}
	if err := c.RemoveConfigData(ctx, "ns1", "p1", "aaaa1111", "net1"); err != nil {
		t.Fatal(err)
	}
	es := annotationEntries(t, f.pod("ns1", "p1").Annotations[configdata.AnnotationConfigData])
	if len(es) != 1 || es[0].IfName != "net2" {
		t.Errorf("after removing net1: %+v", es)
	}
	if err := c.RemoveConfigData(ctx, "ns1", "p1", "aaaa1111", "net2"); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.pod("ns1", "p1").Annotations[configdata.AnnotationConfigData]; ok {
		t.Error("empty annotation left behind")
	}
	before := c.Requests()
	if err := c.RemoveConfigData(ctx, "ns1", "gone", "aaaa1111", "net1"); err != nil {
		t.Errorf("pod gone: %v", err)
	}
	if n := c.Requests() - before; n != 1 {
		t.Errorf("pod gone: %d requests, want 1", n)
	}
}

func TestWithEntry(t *testing.T) {
	key := entryKey{ContainerID: "new", IfName: "net1"}
	e := json.RawMessage(`{"containerId":"new","ifName":"net1"}`)
	for _, tc := range []struct{ in, want string }{
		{"", `[{"containerId":"new","ifName":"net1"}]`},
		{"null", `[{"containerId":"new","ifName":"net1"}]`},
		{"garbage", `[{"containerId":"new","ifName":"net1"}]`},
		// an earlier sandbox's net1 is replaced in place, others kept
		{`[{"containerId":"a","ifName":"net0"},{"containerId":"old","ifName":"net1"},{"containerId":"old","ifName":"net2"}]`,
			`[{"containerId":"a","ifName":"net0"},{"containerId":"new","ifName":"net1"},{"containerId":"old","ifName":"net2"}]`},
		// duplicates of net1 (left by the original plugin) collapse
		{`[{"containerId":"x","ifName":"net1"},{"containerId":"y","ifName":"net1"}]`, `[{"containerId":"new","ifName":"net1"}]`},
		// elements that are not ours are kept byte for byte
		{`[1,{"foo":"bar"},{"containerId":"a","ifName":"net2","extra":true}]`,
			`[1,{"foo":"bar"},{"containerId":"a","ifName":"net2","extra":true},{"containerId":"new","ifName":"net1"}]`},
	} {
		got, changed, err := withEntry(tc.in, key, e)
		if err != nil || got != tc.want || !changed {
			t.Errorf("withEntry(%s) = %s, %v, %v; want %s", tc.in, got, changed, err, tc.want)
		}
	}
	same := `[{"containerId":"new","ifName":"net1"}]`
	if _, changed, _ := withEntry(same, key, e); changed {
		t.Error("unchanged value reported as changed")
	}
}

func TestWithoutEntry(t *testing.T) {
	key := entryKey{ContainerID: "a", IfName: "net1"}
	for _, tc := range []struct {
		in, want string
		removed  bool
	}{
		{"", "", false},
		{"garbage", "garbage", false},
		{`[{"containerId":"b","ifName":"net1"}]`, `[{"containerId":"b","ifName":"net1"}]`, false},
		{`[{"containerId":"a","ifName":"net10"}]`, `[{"containerId":"a","ifName":"net10"}]`, false},
		{`[{"containerId":"a","ifName":"net1"}]`, "", true},
		{`[{"containerId":"a","ifName":"net1"},{"containerId":"a","ifName":"net10"},7]`, `[{"containerId":"a","ifName":"net10"},7]`, true},
	} {
		got, removed, err := withoutEntry(tc.in, key)
		if err != nil || got != tc.want || removed != tc.removed {
			t.Errorf("withoutEntry(%s) = %q, %v, %v; want %q, %v", tc.in, got, removed, err, tc.want, tc.removed)
		}
	}
}

func TestRetriesAreBounded(t *testing.T) {
	// An API server shedding load answers 429 with Retry-After forever.
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Retry-After", "0")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = w.Write([]byte(`{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"TooManyRequests","code":429}`))
	}))
	defer srv.Close()
	c, err := New(writeKubeconfig(t, srv.URL), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Pod(context.Background(), "ns1", "p1", "")
	if !podapi.IsUnreachable(err) {
		t.Errorf("overloaded API: %v", err)
	}
	if n := hits.Load(); n != 1+maxRetries || c.Requests() != n {
		t.Errorf("%d requests reached the server (client counted %d), want %d", n, c.Requests(), 1+maxRetries)
	}
}
