package kubetest_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cnitypes "github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/userspace-cni/userspace/pkg/agent"
	"github.com/userspace-cni/userspace/pkg/configdata"
	"github.com/userspace-cni/userspace/pkg/kube"
	"github.com/userspace-cni/userspace/pkg/netconf"
	"github.com/userspace-cni/userspace/pkg/podapi"
	"github.com/userspace-cni/userspace/pkg/policy"
	"github.com/userspace-cni/userspace/tests/kubetest"
	"github.com/userspace-cni/userspace/tests/testbed"
)

const clientTimeout = 5 * time.Second

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// namespace creates a namespace of the test's own.
func namespace(t testing.TB, e *kubetest.Env) string {
	t.Helper()
	name := "t-" + randomHex(6)
	if err := e.CreateNamespace(testCtx(t), name); err != nil {
		t.Fatal(err)
	}
	return name
}

func createPod(t testing.TB, e *kubetest.Env, ns, name string, mutate func(*corev1.Pod)) *corev1.Pod {
	t.Helper()
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if mutate != nil {
		mutate(p)
	}
	p, err := e.CreatePod(testCtx(t), p)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// pluginClient is the plugin's client as a CNI process makes it: from the
// kubeconfig of the identity the manifests' RBAC grants.
func pluginClient(t testing.TB, e *kubetest.Env) *kube.Client {
	t.Helper()
	c, err := kube.New(e.PluginKubeconfig, clientTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func podAnnotations(t testing.TB, e *kubetest.Env, ns, name string) map[string]string {
	t.Helper()
	p, err := e.Clientset.CoreV1().Pods(ns).Get(testCtx(t), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p.Annotations
}

// entries decodes the configuration-data annotation.
func entries(t testing.TB, value string) []configdata.ConfigData {
	t.Helper()
	if value == "" {
		return nil
	}
	var out []configdata.ConfigData
	if err := json.Unmarshal([]byte(value), &out); err != nil {
		t.Fatalf("annotation %s = %q: %v", configdata.AnnotationConfigData, value, err)
	}
	return out
}

func simpleEntry(cid, ifName string) *configdata.ConfigData {
	return &configdata.ConfigData{
		ContainerID: cid, IfName: ifName, Name: "userspace-ovs-net-1",
		Config: netconf.UserSpaceConf{Engine: netconf.EngineOVSDPDK, IfType: netconf.IfTypeVhostUser, NetType: netconf.NetTypeInterface,
			Vhost: netconf.VhostConf{Mode: netconf.VhostServer, Socketfile: configdata.ShortID(cid) + "-" + ifName}},
		IPResult: &types100.Result{CNIVersion: "1.0.0", Interfaces: []*types100.Interface{{Name: ifName}}},
	}
}

func TestPodLookup(t *testing.T) {
	e := needEnv(t)
	ns := namespace(t, e)
	created := createPod(t, e, ns, "dpdk-app", nil)
	c := pluginClient(t, e)
	pod, err := c.Pod(testCtx(t), ns, "dpdk-app", string(created.UID))
	if err != nil {
		t.Fatal(err)
	}
	if pod.UID != created.UID || pod.Name != "dpdk-app" || pod.Namespace != ns || pod.ResourceVersion == "" {
		t.Errorf("got pod %s/%s uid %s rv %q, created uid %s", pod.Namespace, pod.Name, pod.UID, pod.ResourceVersion, created.UID)
	}
	if n := c.Requests(); n != 1 {
		t.Errorf("Pod sent %d requests, want 1", n)
	}
}

func TestPodUIDMismatch(t *testing.T) {
	e := needEnv(t)
	ns := namespace(t, e)
	created := createPod(t, e, ns, "dpdk-app", nil)
	c := pluginClient(t, e)
	const stale = "00000000-0000-0000-0000-000000000000"
	_, err := c.Pod(testCtx(t), ns, "dpdk-app", stale)
	if !podapi.IsUIDMismatch(err) {
		t.Fatalf("want a UID mismatch, got %v", err)
	}
	for _, s := range []string{string(created.UID), stale, ns + "/dpdk-app"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not name %s", err, s)
		}
	}
}

func TestPodNotFound(t *testing.T) {
	e := needEnv(t)
	ns := namespace(t, e)
	c := pluginClient(t, e)
	_, err := c.Pod(testCtx(t), ns, "nobody", "")
	if !podapi.IsNotFound(err) || !apierrors.IsNotFound(err) {
		t.Fatalf("want not found, got %v", err)
	}
	if !strings.Contains(err.Error(), "get pod "+ns+"/nobody") {
		t.Errorf("error %q does not name the verb and pod", err)
	}
	if podapi.IsForbidden(err) || podapi.IsUnreachable(err) {
		t.Errorf("not-found error also matches another kind: %v", err)
	}
}

func TestRBACDenied(t *testing.T) {
	e := needEnv(t)
	ns := namespace(t, e)
	created := createPod(t, e, ns, "dpdk-app", nil)
	ctx := testCtx(t)

	// A user the manifests never bound: get is refused.
	kc, err := e.UserKubeconfig("unbound-" + randomHex(4))
	if err != nil {
		t.Fatal(err)
	}
	c, err := kube.New(kc, clientTimeout)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Pod(ctx, ns, "dpdk-app", "")
	if !podapi.IsForbidden(err) || !strings.Contains(err.Error(), "get pod "+ns+"/dpdk-app") || !strings.Contains(err.Error(), "RBAC") {
		t.Errorf("unbound user: %v", err)
	}
	if podapi.IsNotFound(err) || podapi.IsUnreachable(err) {
		t.Errorf("forbidden error also matches another kind: %v", err)
	}
	t.Logf("unbound user: %v", err)

	// A user allowed to get but not to patch: the PATCH is refused and
	// the error says so.
	reader := "reader-" + randomHex(4)
	if _, err := e.Clientset.RbacV1().ClusterRoles().Create(ctx, readOnlyRole(reader), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := e.BindUser(ctx, reader, reader, reader, "get"); err != nil {
		t.Fatal(err)
	}
	kc, err = e.UserKubeconfig(reader)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := kube.New(kc, clientTimeout)
	if err != nil {
		t.Fatal(err)
	}
	pod, err := rc.Pod(ctx, ns, "dpdk-app", string(created.UID))
	if err != nil {
		t.Fatalf("get with a get-only role: %v", err)
	}
	err = rc.AddConfigData(ctx, pod, simpleEntry(testbed.SandboxID(), "net1"), "")
	if !podapi.IsForbidden(err) || !strings.Contains(err.Error(), "patch pod "+ns+"/dpdk-app") {
		t.Errorf("patch without the verb: %v", err)
	}
	err = rc.RemoveConfigData(ctx, ns, "dpdk-app", "x", "net1")
	if err != nil {
		t.Errorf("nothing to remove needs no patch: %v", err)
	}
}

// TestLeastPrivilege asks the real authorizer what each of the manifests'
// identities may do: the plugin's get and patch on pods, the node agent's
// list on pods and create on events, and neither anything of the other's
// or beyond.
func TestLeastPrivilege(t *testing.T) {
	e := needEnv(t)
	ctx := testCtx(t)
	pluginSA, pluginGroups := kubetest.ServiceAccountUser(kubetest.PluginIdentity)
	agentSA, agentGroups := kubetest.ServiceAccountUser(kubetest.AgentIdentity)
	type verb [2]string
	all := []verb{{"get", "pods"}, {"patch", "pods"}, {"list", "pods"}, {"create", "events"},
		{"watch", "pods"}, {"update", "pods"}, {"delete", "pods"}, {"create", "pods"}, {"get", "pods/log"},
		{"create", "pods/exec"}, {"patch", "pods/status"}, {"get", "secrets"}, {"list", "secrets"},
		{"get", "nodes"}, {"list", "nodes"}, {"get", "events"}, {"list", "events"}, {"update", "events"},
		{"patch", "events"}, {"delete", "events"}, {"create", "configmaps"}, {"get", "configmaps"},
		{"create", "serviceaccounts/token"}}
	for _, id := range []struct {
		user    string
		groups  []string
		allowed []verb
	}{
		{kubetest.PluginUser, []string{"system:authenticated"}, []verb{{"get", "pods"}, {"patch", "pods"}}},
		{pluginSA, pluginGroups, []verb{{"get", "pods"}, {"patch", "pods"}}},
		{agentSA, agentGroups, []verb{{"list", "pods"}, {"create", "events"}}},
	} {
		for _, v := range all {
			want := slices.Contains(id.allowed, v)
			for _, ns := range []string{"default", "any-namespace"} {
				ok, err := e.Allowed(ctx, id.user, id.groups, v[0], v[1], ns)
				if err != nil {
					t.Fatal(err)
				}
				if ok != want {
					t.Errorf("%s may %s %s in %s: %v, want %v", id.user, v[0], v[1], ns, ok, want)
				}
			}
		}
	}
}

// TestAgentIdentity runs the node agent's own Kubernetes client
// (pkg/agent) with its DaemonSet's ServiceAccount token, as the agent
// container gets it: it lists this node's pods and records an Event, and
// the same token cannot delete a pod, read a secret, list events, or do
// the plugin's get and patch on a pod.
func TestAgentIdentity(t *testing.T) {
	e := needEnv(t)
	ctx := testCtx(t)
	ns := namespace(t, e)
	node := "node-" + randomHex(4)
	mine := createPod(t, e, ns, "on-node", func(p *corev1.Pod) { p.Spec.NodeName = node })
	createPod(t, e, ns, "elsewhere", func(p *corev1.Pod) { p.Spec.NodeName = node + "-other" })
	if _, err := e.Clientset.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "s"}, StringData: map[string]string{"k": "v"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// The authorizer's cache lags behind the manifests' binding.
	agentSA, agentGroups := kubetest.ServiceAccountUser(kubetest.AgentIdentity)
	if err := e.WaitAllowed(ctx, agentSA, agentGroups, "list", "pods", ns); err != nil {
		t.Fatal(err)
	}
	token, err := e.ServiceAccountToken(ctx, kubetest.IdentityNamespace, kubetest.AgentIdentity)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &rest.Config{Host: e.Admin.Host, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{CAData: e.Admin.CAData}}
	kc, err := e.WriteKubeconfig("agent-"+randomHex(4), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ac, err := agent.NewKubeClient(kc, node)
	if err != nil {
		t.Fatal(err)
	}
	pods, err := ac.Pods(ctx)
	if err != nil {
		t.Fatalf("the agent lists its node's pods: %v", err)
	}
	if want := map[string]string{ns + "/on-node": string(mine.UID)}; !maps.Equal(pods, want) {
		t.Errorf("the agent's pods of %s: %v, want %v", node, pods, want)
	}
	ref := agent.PodRef{Namespace: ns, Name: mine.Name, UID: string(mine.UID)}
	if err := ac.Event(ctx, ref, corev1.EventTypeWarning, "UserspaceAttachmentLost", "test"); err != nil {
		t.Fatalf("the agent records an Event: %v", err)
	}
	evs, err := e.Clientset.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs.Items) != 1 || evs.Items[0].InvolvedObject.UID != mine.UID || evs.Items[0].Reason != "UserspaceAttachmentLost" {
		t.Errorf("events in %s: %+v", ns, evs.Items)
	}

	// The same token, beyond the agent's needs: refused.
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := cs.CoreV1().Pods(ns).Delete(ctx, mine.Name, metav1.DeleteOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("the agent's identity deletes a pod: %v", err)
	}
	if _, err := cs.CoreV1().Secrets(ns).Get(ctx, "s", metav1.GetOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("the agent's identity reads a secret: %v", err)
	}
	if _, err := cs.CoreV1().Events(ns).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("the agent's identity lists events: %v", err)
	}
	if _, err := cs.CoreV1().Pods(ns).Get(ctx, mine.Name, metav1.GetOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("the agent's identity gets a pod (the plugin's verb): %v", err)
	}
	patch := []byte(`{"metadata":{"annotations":{"x":"y"}}}`)
	if _, err := cs.CoreV1().Pods(ns).Patch(ctx, mine.Name, types.MergePatchType, patch, metav1.PatchOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("the agent's identity patches a pod (the plugin's verb): %v", err)
	}
}

func readOnlyRole(name string) *rbacv1.ClusterRole {
	return &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get"}}},
	}
}

func TestUnreachable(t *testing.T) {
	e := needEnv(t)
	// The envtest CA and a port nobody listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cfg := rest.CopyConfig(e.Admin)
	cfg.Host = "https://" + addr
	kc, err := e.WriteKubeconfig("down-"+randomHex(4), cfg)
	if err != nil {
		t.Fatal(err)
	}
	c, err := kube.New(kc, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	start := time.Now()
	_, err = c.Pod(ctx, "default", "dpdk-app", "")
	if !podapi.IsUnreachable(err) || !strings.Contains(err.Error(), "get pod default/dpdk-app") || !strings.Contains(err.Error(), "unreachable") {
		t.Errorf("API down: %v", err)
	}
	// DEL must return, bounded, with an error the caller logs.
	delCtx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := c.RemoveConfigData(delCtx, "default", "dpdk-app", testbed.SandboxID(), "net1"); !podapi.IsUnreachable(err) {
		t.Errorf("RemoveConfigData with the API down: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("API down: the calls took %v", d)
	}
	t.Logf("API down: %v (after %v)", err, time.Since(start))
}

func TestSharedDir(t *testing.T) {
	e := needEnv(t)
	ns := namespace(t, e)
	hp := createPod(t, e, ns, "hostpath", func(p *corev1.Pod) {
		p.Spec.Volumes = []corev1.Volume{{Name: "shared-dir", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/var/lib/cni/usrspcni"}}}}
		p.Spec.Containers = []corev1.Container{{Name: "app", Image: "dpdk-app", VolumeMounts: []corev1.VolumeMount{{Name: "shared-dir", MountPath: "/var/lib/cni/usrspcni"}}}}
	})
	ed := createPod(t, e, ns, "emptydir", func(p *corev1.Pod) {
		p.Spec.Volumes = []corev1.Volume{{Name: "shared-dir", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
		p.Spec.Containers = []corev1.Container{{Name: "app", Image: "dpdk-app", VolumeMounts: []corev1.VolumeMount{{Name: "shared-dir", MountPath: "/sockets"}}}}
	})
	none := createPod(t, e, ns, "plain", nil)
	c := pluginClient(t, e)
	ctx := testCtx(t)
	for _, tc := range []struct {
		pod         *corev1.Pod
		host, mount string
		ok          bool
	}{
		{hp, "/var/lib/cni/usrspcni", "/var/lib/cni/usrspcni", true},
		{ed, "/var/lib/kubelet/pods/" + string(ed.UID) + "/volumes/kubernetes.io~empty-dir/shared-dir", "/sockets", true},
		{none, "", "", false},
	} {
		pod, err := c.Pod(ctx, ns, tc.pod.Name, string(tc.pod.UID))
		if err != nil {
			t.Fatal(err)
		}
		host, mount, ok, err := kube.SharedDir(pod, "", "")
		if err != nil || ok != tc.ok || host != tc.host || mount != tc.mount {
			t.Errorf("%s: SharedDir = %q, %q, %v, %v; want %q, %q, %v", tc.pod.Name, host, mount, ok, err, tc.host, tc.mount, tc.ok)
		}
	}
}

// The published examples (compatibility contract), as NetworkAttachmentDefinitions.
const (
	ovsExample = `{"cniVersion": "0.3.1", "type": "userspace", "name": "userspace-ovs-net-1",
  "host": {"engine": "ovs-dpdk", "iftype": "vhostuser", "netType": "bridge", "vhost": {"mode": "client"}, "bridge": {"bridgeName": "br-4"}},
  "container": {"engine": "ovs-dpdk", "iftype": "vhostuser", "netType": "interface", "vhost": {"mode": "server"}}}`
	vppExample = `{"cniVersion": "0.3.1", "type": "userspace", "name": "memif-network",
  "host": {"engine": "vpp", "iftype": "memif", "netType": "bridge", "memif": {"role": "master", "mode": "ethernet"}, "bridge": {"bridgeId": 4}},
  "container": {"engine": "vpp", "iftype": "memif", "netType": "interface", "memif": {"role": "slave", "mode": "ethernet"}},
  "ipam": {"type": "host-local", "subnet": "172.22.0.0/24", "rangeStart": "172.22.0.2", "rangeEnd": "172.22.0.254",
    "routes": [{"dst": "0.0.0.0/0"}], "gateway": "172.22.0.1"}}`
)

func TestAddConfigDataPublishedExamples(t *testing.T) {
	e := needEnv(t)
	ns := namespace(t, e)
	ctx := testCtx(t)
	for _, tc := range []struct {
		nad, config string
		socket      func(cid string) string
		ipResult    func(ifName, netns string) *types100.Result
		want        map[string]any // expected "config" of the element
		wantIP      string
	}{
		{
			nad: "userspace-ovs-net-1", config: ovsExample,
			socket: func(cid string) string { return configdata.ShortID(cid) + "-net1" },
			ipResult: func(ifName, netns string) *types100.Result {
				return &types100.Result{CNIVersion: "1.0.0", Interfaces: []*types100.Interface{{Name: ifName, Sandbox: netns}}}
			},
			want: map[string]any{"engine": "ovs-dpdk", "iftype": "vhostuser", "netType": "interface", "vhost": map[string]any{"mode": "server"}},
		},
		{
			nad: "memif-network", config: vppExample,
			socket: func(cid string) string { return "memif-" + configdata.ShortID(cid) + "-net1.sock" },
			ipResult: func(ifName, netns string) *types100.Result {
				zero := 0
				ip, ipnet, _ := net.ParseCIDR("172.22.0.2/24")
				ipnet.IP = ip
				_, all, _ := net.ParseCIDR("0.0.0.0/0")
				return &types100.Result{CNIVersion: "1.0.0",
					Interfaces: []*types100.Interface{{Name: ifName, Sandbox: netns}},
					IPs:        []*types100.IPConfig{{Interface: &zero, Address: *ipnet, Gateway: net.ParseIP("172.22.0.1")}},
					Routes:     []*cnitypes.Route{{Dst: *all}},
				}
			},
			want:   map[string]any{"engine": "vpp", "iftype": "memif", "netType": "interface", "memif": map[string]any{"role": "slave", "mode": "ethernet"}},
			wantIP: "172.22.0.2/24",
		},
	} {
		t.Run(tc.nad, func(t *testing.T) {
			// The configuration as Multus would read it from the API.
			if err := e.CreateNAD(ctx, ns, tc.nad, tc.config); err != nil {
				t.Fatal(err)
			}
			config, err := e.NADConfig(ctx, ns, tc.nad)
			if err != nil {
				t.Fatal(err)
			}
			conf, err := netconf.Parse([]byte(config))
			if err == nil {
				err = policy.Default().Admit(conf)
			}
			if err != nil {
				t.Fatalf("published example does not parse: %v", err)
			}
			pod := createPod(t, e, ns, "app-"+tc.nad, func(p *corev1.Pod) {
				p.Spec.Volumes = []corev1.Volume{{Name: "shared-dir", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/var/lib/cni/usrspcni"}}}}
				p.Spec.Containers = []corev1.Container{{Name: "app", Image: "dpdk-app", VolumeMounts: []corev1.VolumeMount{{Name: "shared-dir", MountPath: "/var/lib/cni/usrspcni"}}}}
			})
			c := pluginClient(t, e)
			cid := testbed.SandboxID()
			got, err := c.Pod(ctx, ns, pod.Name, string(pod.UID))
			if err != nil {
				t.Fatal(err)
			}
			_, mapped, _, err := kube.SharedDir(got, "", "")
			if err != nil {
				t.Fatal(err)
			}
			ct := conf.Container
			ct.Vhost.Socketfile, ct.Memif.Socketfile = "", ""
			if ct.IfType == netconf.IfTypeVhostUser {
				ct.Vhost.Socketfile = tc.socket(cid)
			} else {
				ct.Memif.Socketfile = tc.socket(cid)
			}
			entry := &configdata.ConfigData{ContainerID: cid, IfName: "net1", Name: conf.Name, Config: ct,
				IPResult: tc.ipResult("net1", "/var/run/netns/cni-"+randomHex(8))}
			if err := c.AddConfigData(ctx, got, entry, mapped); err != nil {
				t.Fatal(err)
			}
			if n := c.Requests(); n != 2 {
				t.Errorf("ADD sent %d requests, want 2 (GET, PATCH)", n)
			}

			ann := podAnnotations(t, e, ns, pod.Name)
			if ann[configdata.AnnotationMappedDir] != "/var/lib/cni/usrspcni" {
				t.Errorf("mapped-dir annotation %q", ann[configdata.AnnotationMappedDir])
			}
			var elems []map[string]any
			if err := json.Unmarshal([]byte(ann[configdata.AnnotationConfigData]), &elems); err != nil || len(elems) != 1 {
				t.Fatalf("annotation %q: %v", ann[configdata.AnnotationConfigData], err)
			}
			el := elems[0]
			if el["containerId"] != cid || el["ifName"] != "net1" || el["name"] != tc.nad {
				t.Errorf("element identity: containerId %v ifName %v name %v", el["containerId"], el["ifName"], el["name"])
			}
			cfg, _ := el["config"].(map[string]any)
			for k, v := range tc.want {
				if sub, ok := v.(map[string]any); ok {
					gotSub, _ := cfg[k].(map[string]any)
					for sk, sv := range sub {
						if gotSub[sk] != sv {
							t.Errorf("config.%s.%s = %v, want %v", k, sk, gotSub[sk], sv)
						}
					}
					if gotSub["socketfile"] != tc.socket(cid) {
						t.Errorf("config.%s.socketfile = %v, want %s", k, gotSub["socketfile"], tc.socket(cid))
					}
				} else if cfg[k] != v {
					t.Errorf("config.%s = %v, want %v", k, cfg[k], v)
				}
			}
			ipr, _ := el["ipResult"].(map[string]any)
			ips, _ := ipr["ips"].([]any)
			if tc.wantIP == "" {
				if len(ips) != 0 {
					t.Errorf("ipResult.ips = %v, want none", ips)
				}
			} else if len(ips) != 1 || ips[0].(map[string]any)["address"] != tc.wantIP || ips[0].(map[string]any)["gateway"] != "172.22.0.1" {
				t.Errorf("ipResult.ips = %v, want %s via 172.22.0.1", ips, tc.wantIP)
			}
			// The element is the entry, byte for byte.
			want, _ := json.Marshal([]*configdata.ConfigData{entry})
			if ann[configdata.AnnotationConfigData] != string(want) {
				t.Errorf("annotation\n%s\nwant\n%s", ann[configdata.AnnotationConfigData], want)
			}
		})
	}
}

func TestConcurrentAddConfigData(t *testing.T) {
	e := needEnv(t)
	ns := namespace(t, e)
	const n = 10
	for round := range 3 {
		name := fmt.Sprintf("multi-%d", round)
		createPod(t, e, ns, name, nil)
		cid := testbed.SandboxID()
		var (
			wg       sync.WaitGroup
			read     sync.WaitGroup
			errs     = make([]error, n)
			requests = make([]int64, n)
		)
		read.Add(n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Each its own client and connections, as ten plugin
				// processes have.
				c, err := kube.New(e.PluginKubeconfig, clientTimeout)
				if err != nil {
					errs[i] = err
					read.Done()
					return
				}
				defer c.Close()
				ctx := testCtx(t)
				pod, err := c.Pod(ctx, ns, name, "")
				// All read the same version before any writes: nine
				// of the ten PATCHes must conflict.
				read.Done()
				read.Wait()
				if err == nil {
					err = c.AddConfigData(ctx, pod, simpleEntry(cid, fmt.Sprintf("net%d", i+1)), "/var/lib/cni/usrspcni")
				}
				errs[i] = err
				requests[i] = c.Requests()
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		es := entries(t, podAnnotations(t, e, ns, name)[configdata.AnnotationConfigData])
		seen := map[string]int{}
		for _, x := range es {
			if x.ContainerID != cid {
				t.Errorf("element of another sandbox: %+v", x)
			}
			seen[x.IfName]++
		}
		for i := 1; i <= n; i++ {
			if seen[fmt.Sprintf("net%d", i)] != 1 {
				t.Errorf("round %d: net%d appears %d times in %d elements", round, i, seen[fmt.Sprintf("net%d", i)], len(es))
			}
		}
		var total int64
		for _, r := range requests {
			total += r
		}
		// 10 GETs and 10 successful PATCHes, plus a PATCH and a GET for
		// every conflict; at least 9 conflicts.
		if total < 2*n+2*(n-1) {
			t.Errorf("round %d: %d requests in all: the conflict path was not exercised", round, total)
		}
		t.Logf("round %d: 10 concurrent ADDs, %d elements, %d requests (%d conflicts)", round, len(es), total, (total-2*n)/2)
	}
}

func TestRemoveConfigDataExact(t *testing.T) {
	e := needEnv(t)
	ns := namespace(t, e)
	ctx := testCtx(t)
	pod := createPod(t, e, ns, "app", func(p *corev1.Pod) {
		p.Annotations = map[string]string{"userspace/mappedDir": "/set/by/hand", "other": "x"}
	})
	c := pluginClient(t, e)
	a, b := testbed.SandboxID(), testbed.SandboxID()
	for _, x := range []*configdata.ConfigData{simpleEntry(a, "net1"), simpleEntry(a, "net2"), simpleEntry(b, "net3")} {
		addEntry(t, ctx, c, ns, pod, x, "/var/lib/cni/usrspcni")
	}
	before := c.Requests()
	if err := c.RemoveConfigData(ctx, ns, pod.Name, a, "net1"); err != nil {
		t.Fatal(err)
	}
	if n := c.Requests() - before; n != 2 {
		t.Errorf("DEL sent %d requests, want 2 (GET, PATCH)", n)
	}
	ann := podAnnotations(t, e, ns, pod.Name)
	es := entries(t, ann[configdata.AnnotationConfigData])
	if len(es) != 2 || es[0].ContainerID != a || es[0].IfName != "net2" || es[1].ContainerID != b || es[1].IfName != "net3" {
		t.Errorf("after removing (a, net1): %+v", es)
	}
	if ann["other"] != "x" || ann["userspace/mappedDir"] != "/set/by/hand" || ann[configdata.AnnotationMappedDir] != "/var/lib/cni/usrspcni" {
		t.Errorf("other annotations changed: %v", ann)
	}
	// (b, net2) does not exist: net2 of a stays.
	if err := c.RemoveConfigData(ctx, ns, pod.Name, b, "net2"); err != nil {
		t.Fatal(err)
	}
	if es := entries(t, podAnnotations(t, e, ns, pod.Name)[configdata.AnnotationConfigData]); len(es) != 2 {
		t.Errorf("removing an absent element changed the annotation: %+v", es)
	}
	for _, x := range [][2]string{{a, "net2"}, {b, "net3"}} {
		if err := c.RemoveConfigData(ctx, ns, pod.Name, x[0], x[1]); err != nil {
			t.Fatal(err)
		}
	}
	if v, ok := podAnnotations(t, e, ns, pod.Name)[configdata.AnnotationConfigData]; ok {
		t.Errorf("annotation left after the last DEL: %q", v)
	}
}

func TestStaleSandboxEntryReplaced(t *testing.T) {
	e := needEnv(t)
	ns := namespace(t, e)
	ctx := testCtx(t)
	pod := createPod(t, e, ns, "app", nil)
	c := pluginClient(t, e)
	old, cur := testbed.SandboxID(), testbed.SandboxID()
	for _, x := range []*configdata.ConfigData{simpleEntry(old, "net1"), simpleEntry(old, "net2"), simpleEntry(cur, "net1")} {
		addEntry(t, ctx, c, ns, pod, x, "")
	}
	es := entries(t, podAnnotations(t, e, ns, pod.Name)[configdata.AnnotationConfigData])
	if len(es) != 2 || es[0].ContainerID != cur || es[0].IfName != "net1" || es[1].ContainerID != old || es[1].IfName != "net2" {
		t.Errorf("after the new sandbox's net1: %+v", es)
	}
	// The old sandbox's late DEL of net1 leaves the new one's alone.
	if err := c.RemoveConfigData(ctx, ns, pod.Name, old, "net1"); err != nil {
		t.Fatal(err)
	}
	if es := entries(t, podAnnotations(t, e, ns, pod.Name)[configdata.AnnotationConfigData]); len(es) != 2 || es[0].ContainerID != cur {
		t.Errorf("a stale DEL removed the current element: %+v", es)
	}
}

func TestRemoveConfigDataPodDeleted(t *testing.T) {
	e := needEnv(t)
	ns := namespace(t, e)
	ctx := testCtx(t)
	pod := createPod(t, e, ns, "app", nil)
	c := pluginClient(t, e)
	cid := testbed.SandboxID()
	addEntry(t, ctx, c, ns, pod, simpleEntry(cid, "net1"), "")
	if err := e.DeletePod(ctx, ns, pod.Name); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Clientset.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("pod still there: %v", err)
	}
	before := c.Requests()
	if err := c.RemoveConfigData(ctx, ns, pod.Name, cid, "net1"); err != nil {
		t.Errorf("DEL after the pod went: %v", err)
	}
	if n := c.Requests() - before; n != 1 {
		t.Errorf("DEL of a deleted pod sent %d requests, want 1", n)
	}
	// ADD for a pod deleted after it was read: a clear not-found.
	pod2 := createPod(t, e, ns, "app2", nil)
	p2, err := c.Pod(ctx, ns, pod2.Name, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.DeletePod(ctx, ns, pod2.Name); err != nil {
		t.Fatal(err)
	}
	if err := c.AddConfigData(ctx, p2, simpleEntry(cid, "net1"), ""); !podapi.IsNotFound(err) {
		t.Errorf("ADD to a deleted pod: %v", err)
	}
}

func TestAddConfigDataPodRecreated(t *testing.T) {
	e := needEnv(t)
	ns := namespace(t, e)
	ctx := testCtx(t)
	pod := createPod(t, e, ns, "app", nil)
	c := pluginClient(t, e)
	p, err := c.Pod(ctx, ns, pod.Name, string(pod.UID))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.DeletePod(ctx, ns, pod.Name); err != nil {
		t.Fatal(err)
	}
	createPod(t, e, ns, "app", nil)
	if err := c.AddConfigData(ctx, p, simpleEntry(testbed.SandboxID(), "net1"), ""); !podapi.IsUIDMismatch(err) {
		t.Errorf("ADD for the old pod onto its successor: %v", err)
	}
	if v := podAnnotations(t, e, ns, "app")[configdata.AnnotationConfigData]; v != "" {
		t.Errorf("successor pod got %s", v)
	}
}

func TestNetworkAttachmentDefinition(t *testing.T) {
	e := needEnv(t)
	ns := namespace(t, e)
	ctx := testCtx(t)
	if err := e.CreateNAD(ctx, ns, "memif-network", vppExample); err != nil {
		t.Fatal(err)
	}
	got, err := e.NADConfig(ctx, ns, "memif-network")
	if err != nil {
		t.Fatal(err)
	}
	if got != vppExample {
		t.Errorf("spec.config changed on the way: %q", got)
	}
	// The plugin's identity has no business with NADs.
	if ok, err := e.Allowed(ctx, kubetest.PluginUser, nil, "get", "network-attachment-definitions", ns); err != nil || ok {
		t.Errorf("plugin user may read NADs (err %v)", err)
	}
}

// TestInstallerKubeconfig runs deploy/userspace-cni-install.sh as the
// DaemonSet does, with a real token of the manifests' ServiceAccount, and
// uses the kubeconfig it writes.
func TestInstallerKubeconfig(t *testing.T) {
	e := needEnv(t)
	ctx := testCtx(t)
	ns := namespace(t, e)
	pod := createPod(t, e, ns, "app", nil)

	dir := t.TempDir()
	host, saDir := dir+"/host", dir+"/sa"
	binary, helper := dir+"/userspace", dir+"/userspace-kube"
	for _, d := range []string{host, saDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile := func(p, content string, mode os.FileMode) {
		t.Helper()
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
	token, err := e.ServiceAccountToken(ctx, kubetest.IdentityNamespace, kubetest.PluginIdentity)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(saDir+"/token", token, 0o600)
	writeFile(saDir+"/ca.crt", string(e.Admin.CAData), 0o644)
	writeFile(binary, "#!/bin/sh\necho plugin\n", 0o755)
	writeFile(helper, "#!/bin/sh\necho helper\n", 0o755)
	run := func() string {
		t.Helper()
		out, err := runInstaller(e.RepoRoot, map[string]string{
			"HOST_ROOT": host, "SA_DIR": saDir, "PLUGIN_BINARY": binary, "KUBE_HELPER": helper, "ONESHOT": "true",
			"POLICY_SOURCE": dir + "/no-configmap/policy.json", "KUBERNETES_API_URL": e.Admin.Host,
			"GET_PREFIX": e.RepoRoot + "/deploy/get-prefix.sh",
		})
		if err != nil {
			t.Fatalf("installer: %v\n%s", err, out)
		}
		return out
	}
	t.Logf("installer: %s", run())

	kubeconfig := host + "/etc/cni/net.d/userspace.d/userspace.kubeconfig"
	for p, mode := range map[string]os.FileMode{
		kubeconfig: 0o600, host + "/etc/cni/net.d/userspace.d/token": 0o600,
		host + "/etc/cni/net.d/userspace.d": 0o700 | os.ModeDir, host + "/opt/cni/bin/userspace": 0o755,
		host + "/opt/cni/bin/userspace-kube":    0o755,
		host + "/etc/cni/userspace/policy.json": 0o644, host + "/var/lib/cni/vhostuser/get-prefix.sh": 0o755,
		host + "/var/lib/cni/vhostuser": 0o711 | os.ModeDir,
	} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode() != mode {
			t.Errorf("%s has mode %v, want %v", p, st.Mode(), mode)
		}
	}
	pf := host + "/etc/cni/userspace/policy.json"
	pol, err := policy.Load(testbed.PolicyGetenv(pf))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := pol.Match(policy.Kubeconfig, "/etc/cni/net.d/userspace.d/userspace.kubeconfig"); err != nil {
		t.Errorf("the installed policy refuses the installed kubeconfig: %v", err)
	}

	use := func() {
		t.Helper()
		c, err := kube.New(kubeconfig, clientTimeout)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		p, err := c.Pod(ctx, ns, pod.Name, string(pod.UID))
		if err != nil {
			t.Fatalf("the service account's kubeconfig: %v", err)
		}
		cid := testbed.SandboxID()
		if err := c.AddConfigData(ctx, p, simpleEntry(cid, "net1"), ""); err != nil {
			t.Fatalf("the service account's kubeconfig: %v", err)
		}
		if err := c.RemoveConfigData(ctx, ns, pod.Name, cid, "net1"); err != nil {
			t.Fatalf("the service account's kubeconfig: %v", err)
		}
	}
	use()

	// The node's kubeconfig carries the plugin's identity only: the node
	// agent's verbs are refused.
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("the plugin's kubeconfig lists pods: %v", err)
	}
	ev := &corev1.Event{ObjectMeta: metav1.ObjectMeta{GenerateName: "x."}, InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: pod.Name}}
	if _, err := cs.CoreV1().Events(ns).Create(ctx, ev, metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("the plugin's kubeconfig creates events: %v", err)
	}

	// The kubelet rotates the token: the installer's next pass installs
	// the new one, and it works.
	token2, err := e.ServiceAccountToken(ctx, kubetest.IdentityNamespace, kubetest.PluginIdentity)
	if err != nil {
		t.Fatal(err)
	}
	if token2 == token {
		t.Fatal("TokenRequest returned the same token twice")
	}
	writeFile(saDir+"/token", token2, 0o600)
	run()
	if got, _ := os.ReadFile(host + "/etc/cni/net.d/userspace.d/token"); string(got) != token2 {
		t.Error("the rotated token was not installed")
	}
	use()
	if entries, _ := os.ReadDir(host + "/etc/cni/net.d/userspace.d"); len(entries) != 3 {
		t.Errorf("kubeconfig directory holds %d files, want 3 (no temporary files left)", len(entries))
	}
}

// runInstaller runs the installer script with env added to a minimal
// environment.
func runInstaller(root string, env map[string]string) (string, error) {
	cmd := exec.Command("sh", root+"/deploy/userspace-cni-install.sh")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// addEntry is the plugin's ADD step against the API: read the pod, then
// add the entry to its annotation.
func addEntry(t *testing.T, ctx context.Context, c *kube.Client, ns string, pod *corev1.Pod, x *configdata.ConfigData, mappedDir string) {
	t.Helper()
	p, err := c.Pod(ctx, ns, pod.Name, string(pod.UID))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.AddConfigData(ctx, p, x, mappedDir); err != nil {
		t.Fatal(err)
	}
}
