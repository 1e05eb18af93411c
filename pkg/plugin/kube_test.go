package plugin_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/userspace-cni/userspace/pkg/configdata"
)

// podsAPI is a minimal pods endpoint for the plugin's ADD and DEL: GET, and
// a JSON merge PATCH of annotations honouring the resourceVersion
// precondition. The real API server is exercised in tests/multus; this one
// lets the plugin's own tests make it fail at will.
type podsAPI struct {
	srv *httptest.Server

	mu          sync.Mutex
	rv          int
	pod         map[string]any // the one pod, as JSON
	down        bool           // answer 503 to everything
	gets, patch int
}

func newPodsAPI(t *testing.T, ns, name, uid, hostPath string) *podsAPI {
	a := &podsAPI{rv: 1}
	a.pod = map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"namespace": ns, "name": name, "uid": uid, "resourceVersion": "1"},
		"spec": map[string]any{
			"volumes": []any{map[string]any{"name": "shared-dir", "hostPath": map[string]any{"path": hostPath}}},
			"containers": []any{map[string]any{"name": "app", "image": "dpdk",
				"volumeMounts": []any{map[string]any{"name": "shared-dir", "mountPath": "/vhu"}}}},
		},
	}
	path := fmt.Sprintf("/api/v1/namespaces/%s/pods/%s", ns, name)
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		defer a.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch {
		case a.down:
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","code":503,"reason":"ServiceUnavailable"}`)
			return
		case r.URL.Path != path:
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","code":404,"reason":"NotFound"}`)
			return
		case r.Method == http.MethodPatch:
			a.patch++
			var p struct {
				Metadata struct {
					ResourceVersion string             `json:"resourceVersion"`
					Annotations     map[string]*string `json:"annotations"`
				} `json:"metadata"`
			}
			body, _ := io.ReadAll(r.Body)
			if err := json.Unmarshal(body, &p); err != nil {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			meta := a.pod["metadata"].(map[string]any)
			if p.Metadata.ResourceVersion != "" && p.Metadata.ResourceVersion != meta["resourceVersion"] {
				w.WriteHeader(http.StatusConflict)
				_, _ = io.WriteString(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","code":409,"reason":"Conflict"}`)
				return
			}
			ann, _ := meta["annotations"].(map[string]any)
			if ann == nil {
				ann = map[string]any{}
			}
			for k, v := range p.Metadata.Annotations {
				if v == nil {
					delete(ann, k)
				} else {
					ann[k] = *v
				}
			}
			meta["annotations"] = ann
			a.rv++
			meta["resourceVersion"] = strconv.Itoa(a.rv)
		default:
			a.gets++
		}
		_ = json.NewEncoder(w).Encode(a.pod)
	}))
	t.Cleanup(a.srv.Close)
	return a
}

// entries is the pod's configuration-data annotation.
func (a *podsAPI) entries(t *testing.T) []configdata.ConfigData {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	ann, _ := a.pod["metadata"].(map[string]any)["annotations"].(map[string]any)
	v, _ := ann[configdata.AnnotationConfigData].(string)
	if v == "" {
		return nil
	}
	var out []configdata.ConfigData
	if err := json.Unmarshal([]byte(v), &out); err != nil {
		t.Fatalf("annotation %q: %v", v, err)
	}
	return out
}

// kubeconfig writes a kubeconfig for the fake API under the policy's
// kubeconfig directory.
func (e *testEnv) kubeconfig(server string) string {
	e.t.Helper()
	dir := filepath.Join(e.root, "kube")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		e.t.Fatal(err)
	}
	path := filepath.Join(dir, "plugin.kubeconfig")
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: %q}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`, server)
	if err := os.WriteFile(path, []byte(kc), 0o600); err != nil {
		e.t.Fatal(err)
	}
	return path
}

func withKubeconfig(p string) confMod { return func(c map[string]any) { c["kubeconfig"] = p } }
func withDeviceInfo(p string) confMod {
	return func(c map[string]any) { c["runtimeConfig"] = map[string]any{"CNIDeviceInfoFile": p} }
}

// kubeEnv is a node whose plugin talks to a fake API about one pod with a
// hostPath shared-dir volume.
func kubeEnv(t *testing.T, id string) (*testEnv, *podsAPI, string) {
	e := newEnv(t)
	vol := filepath.Join(e.shared, "vol-"+id[:6])
	api := newPodsAPI(t, "tenant-a", "pod-"+id[:6], "uid-"+id[:8], vol)
	return e, api, e.kubeconfig(api.srv.URL)
}

// ADD with a kubeconfig: the socket goes into the pod's volume, the pod
// gets its annotation entry (one GET, one PATCH), DEL takes it back.
func TestAddKubernetes(t *testing.T) {
	id := containerID("kube-ok")
	e, api, kc := kubeEnv(t, id)
	conf := e.conf("1.0.0", withKubeconfig(kc), withoutIPAM())
	if _, err := run(t, e.p.Add, e.args(id, "net1", conf)); err != nil {
		t.Fatalf("ADD: %v", err)
	}
	if api.gets != 1 || api.patch != 1 {
		t.Errorf("ADD made %d GETs and %d PATCHes, want 1 and 1", api.gets, api.patch)
	}
	vol := filepath.Join(e.shared, "vol-"+id[:6])
	if got := e.sw.port(id, "net1"); got == nil || got.att.Layout.Dir != vol || got.att.Layout.OwnDir {
		t.Fatalf("attachment layout %+v: want the pod's volume %s, not owned", got, vol)
	}
	ents := api.entries(t)
	if len(ents) != 1 || ents[0].ContainerID != id || ents[0].IfName != "net1" || ents[0].Config.Vhost.Socketfile != id[:12]+"-net1" {
		t.Errorf("annotation entries %+v", ents)
	}
	if _, err := run(t, e.p.Del, e.args(id, "net1", conf)); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	if ents := api.entries(t); len(ents) != 0 {
		t.Errorf("DEL left annotation entries %+v", ents)
	}
	if _, err := os.Stat(vol); err != nil {
		t.Errorf("DEL removed the pod's volume directory: %v", err)
	}
}

// A failure after the annotation was written (here: the device-info file
// cannot be written, a directory stands where it goes) takes the entry back
// with everything else.
func TestAddKubernetesRollback(t *testing.T) {
	id := containerID("kube-rollback")
	e, api, kc := kubeEnv(t, id)
	devInfo := filepath.Join(e.root, "devinfo", "blocked")
	conf := e.conf("1.0.0", withKubeconfig(kc), withDeviceInfo(devInfo))
	mustMkdir(t, filepath.Join(devInfo, "blocker"))
	_, err := run(t, e.p.Add, e.args(id, "net1", conf))
	var cerr *types.Error
	if !errors.As(err, &cerr) || cerr.Code != types.ErrIOFailure {
		t.Fatalf("ADD whose device info cannot be written: %v", err)
	}
	if api.patch != 2 {
		t.Errorf("%d PATCHes, want the entry added and taken back (2)", api.patch)
	}
	if ents := api.entries(t); len(ents) != 0 {
		t.Errorf("rollback left annotation entries %+v", ents)
	}
	e.assertGone(id, "net1", false)
}

// A device-info path outside the policy is refused before anything is
// touched, naming the field.
func TestAddDeviceInfoOutsidePolicy(t *testing.T) {
	id := containerID("kube-devinfo")
	e, api, kc := kubeEnv(t, id)
	conf := e.conf("1.0.0", withKubeconfig(kc), withDeviceInfo("/etc/evil"))
	_, err := run(t, e.p.Add, e.args(id, "net1", conf))
	var cerr *types.Error
	if !errors.As(err, &cerr) || !strings.Contains(cerr.Msg, `runtimeConfig.CNIDeviceInfoFile "/etc/evil"`) {
		t.Fatalf("ADD with a device-info path outside the policy: %v", err)
	}
	if api.gets+api.patch != 0 {
		t.Errorf("the API was asked %d times for a configuration refused up front", api.gets+api.patch)
	}
	e.assertGone(id, "net1", false)
}

// The API down at ADD: CNI 11 and nothing left (IPAM released, no port);
// at DEL: DEL still succeeds.
func TestAddDelKubernetesDown(t *testing.T) {
	id := containerID("kube-down")
	e, api, kc := kubeEnv(t, id)
	conf := e.conf("1.0.0", withKubeconfig(kc))
	api.down = true
	_, err := run(t, e.p.Add, e.args(id, "net1", conf))
	var cerr *types.Error
	if !errors.As(err, &cerr) || cerr.Code != types.ErrTryAgainLater || !strings.Contains(cerr.Msg, "pod-"+id[:6]) {
		t.Fatalf("ADD with the API down: %v, want CNI 11 naming the pod", err)
	}
	e.assertGone(id, "net1", false)

	api.down = false
	if _, err := run(t, e.p.Add, e.args(id, "net1", conf)); err != nil {
		t.Fatalf("ADD: %v", err)
	}
	api.down = true
	if _, err := run(t, e.p.Del, e.args(id, "net1", conf)); err != nil {
		t.Fatalf("DEL with the API down: %v", err)
	}
	e.assertGone(id, "net1", false)
}
