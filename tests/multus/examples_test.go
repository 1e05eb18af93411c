package multus

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/userspace-cni/userspace/tests/kubetest"
)

// TestExamplePods: every pod under examples/ is accepted by the API
// server, selects networks the example NADs define, and calls dpdk-args or
// vpp-app only with flags those commands have.
func TestExamplePods(t *testing.T) {
	nads := map[string]bool{}
	nadFiles, _ := filepath.Glob(filepath.Join(bed.kube.RepoRoot, "examples", "nad-*.yaml"))
	for _, f := range nadFiles {
		objs, err := kubetest.LoadManifests(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			nads[o.GetName()] = true
		}
	}
	files, err := filepath.Glob(filepath.Join(bed.kube.RepoRoot, "examples", "pod-*.yaml"))
	if err != nil || len(files) < 2 {
		t.Fatalf("example pods: %v %v", files, err)
	}
	if err := bed.kube.CreateNamespace(ctx(), "example-pods"); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		objs, err := kubetest.LoadManifests(f)
		if err != nil || len(objs) < 2 {
			t.Fatalf("%s: %d objects, %v", f, len(objs), err)
		}
		for _, o := range objs {
			var pod corev1.Pod
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &pod); err != nil || pod.Kind != "Pod" {
				t.Fatalf("%s: %s is not a pod: %v", f, o.GetName(), err)
			}
			pod.Namespace = "example-pods"
			if _, err := bed.kube.CreatePod(ctx(), &pod); err != nil {
				t.Errorf("%s: %v", f, err)
			}
			for _, n := range selectedNetworks(t, pod.Annotations["k8s.v1.cni.cncf.io/networks"]) {
				if !nads[n] {
					t.Errorf("%s: pod %s selects network %q, which no examples/nad-*.yaml defines", f, pod.Name, n)
				}
			}
			for _, c := range pod.Spec.Containers {
				checkHelperFlags(t, f, c)
			}
		}
	}
}

// selectedNetworks reads a Multus network selection: a comma-separated
// list of names or a JSON list of {"name": ...}.
func selectedNetworks(t *testing.T, sel string) []string {
	t.Helper()
	sel = strings.TrimSpace(sel)
	if sel == "" {
		t.Error("pod selects no network")
		return nil
	}
	if !strings.HasPrefix(sel, "[") {
		return strings.Split(sel, ",")
	}
	var list []struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal([]byte(sel), &list); err != nil {
		t.Errorf("network selection %q: %v", sel, err)
	}
	var out []string
	for _, e := range list {
		out = append(out, e.Name)
	}
	return out
}

// checkHelperFlags runs the helper with the container's flags and -h:
// Go's flag package rejects an unknown flag before it reaches -h.
func checkHelperFlags(t *testing.T, file string, c corev1.Container) {
	t.Helper()
	argv := append(append([]string{}, c.Command...), c.Args...)
	bin, flags := "", []string(nil)
	switch {
	case len(argv) > 0 && argv[0] == "dpdk-args":
		bin, flags = "dpdk-args", argv[1:]
		for i, a := range flags {
			if a == "exec" {
				if app := flags[i+2]; app != "dpdk-l3fwd" && app != "dpdk-testpmd" {
					t.Errorf("%s: container %s runs %q, which the dpdk-app image does not ship", file, c.Name, app)
				}
				flags = flags[:i]
				break
			}
		}
	case strings.Contains(c.Image, "vpp-app"):
		bin, flags = "vpp-app", c.Args
	default:
		return
	}
	out, err := exec.Command(filepath.Join(bed.bin, bin), append(flags, "-h")...).CombinedOutput()
	if err != nil {
		t.Errorf("%s: container %s: %s %q: %v\n%s", file, c.Name, bin, flags, err, out)
	}
}
