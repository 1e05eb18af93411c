package kube

import (
	"encoding/json"
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

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// fakeAPI is a minimal pods endpoint: GET, and JSON merge PATCH of
// annotations with the resourceVersion precondition. The real API server is
// exercised in tests/kubetest; this one lets unit tests inject failures.
type fakeAPI struct {
	t   *testing.T
	srv *httptest.Server

	mu   sync.Mutex
	pods map[string]*corev1.Pod
	rv   int
	// status, when set, answers every request with that HTTP status.
	status int
	// beforePatch runs (locked) before each PATCH is applied.
	beforePatch func(*fakeAPI)
	patches     int
}

func newFakeAPI(t *testing.T) *fakeAPI {
	f := &fakeAPI{t: t, pods: map[string]*corev1.Pod{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAPI) addPod(ns, name, uid string, ann map[string]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rv++
	f.pods[ns+"/"+name] = &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{Kind: "Pod", APIVersion: "v1"},
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(uid), ResourceVersion: strconv.Itoa(f.rv), Annotations: ann},
	}
}

func (f *fakeAPI) pod(ns, name string) *corev1.Pod {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pods[ns+"/"+name].DeepCopy()
}

// bumpLocked changes the pod (as another writer would), moving its version
// on. The caller holds f.mu.
func (f *fakeAPI) bumpLocked(key, annKey, annValue string) {
	p := f.pods[key]
	if p.Annotations == nil {
		p.Annotations = map[string]string{}
	}
	p.Annotations[annKey] = annValue
	f.rv++
	p.ResourceVersion = strconv.Itoa(f.rv)
}

func (f *fakeAPI) fail(w http.ResponseWriter, code int, reason metav1.StatusReason, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(&metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure, Message: msg, Reason: reason, Code: int32(code),
	})
}

func (f *fakeAPI) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.status != 0 {
		f.fail(w, f.status, "", fmt.Sprintf("injected %d", f.status))
		return
	}
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/api/v1/namespaces/"), "/")
	if len(parts) != 3 || parts[1] != "pods" {
		f.fail(w, http.StatusNotFound, metav1.StatusReasonNotFound, "no such path "+r.URL.Path)
		return
	}
	key := parts[0] + "/" + parts[2]
	p, ok := f.pods[key]
	if !ok {
		f.fail(w, http.StatusNotFound, metav1.StatusReasonNotFound, fmt.Sprintf("pods %q not found", parts[2]))
		return
	}
	switch r.Method {
	case http.MethodGet:
	case http.MethodPatch:
		f.patches++
		if ct := r.Header.Get("Content-Type"); ct != "application/merge-patch+json" {
			f.fail(w, http.StatusUnsupportedMediaType, "", "content type "+ct)
			return
		}
		if f.beforePatch != nil {
			f.beforePatch(f)
		}
		body, _ := io.ReadAll(r.Body)
		var patch struct {
			Metadata struct {
				ResourceVersion string             `json:"resourceVersion"`
				Annotations     map[string]*string `json:"annotations"`
			} `json:"metadata"`
		}
		if err := json.Unmarshal(body, &patch); err != nil {
			f.fail(w, http.StatusBadRequest, metav1.StatusReasonBadRequest, err.Error())
			return
		}
		if rv := patch.Metadata.ResourceVersion; rv != "" && rv != p.ResourceVersion {
			f.fail(w, http.StatusConflict, metav1.StatusReasonConflict, "the object has been modified")
			return
		}
		for k, v := range patch.Metadata.Annotations {
			if p.Annotations == nil {
				p.Annotations = map[string]string{}
			}
			if v == nil {
				delete(p.Annotations, k)
			} else {
				p.Annotations[k] = *v
			}
		}
		f.rv++
		p.ResourceVersion = strconv.Itoa(f.rv)
	default:
		f.fail(w, http.StatusMethodNotAllowed, metav1.StatusReasonMethodNotAllowed, r.Method)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(p)
}

// writeKubeconfig writes a kubeconfig for server (no credentials).
func writeKubeconfig(t *testing.T, server string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "kubeconfig")
	data := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: c
  cluster:
    server: %s
users:
- name: u
  user: {}
contexts:
- name: ctx
  context: {cluster: c, user: u}
current-context: ctx
`, server)
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
