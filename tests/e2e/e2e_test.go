// Package e2e runs the plugin on a real single-node Kubernetes cluster:
// etcd, kube-apiserver, kube-controller-manager, kube-scheduler, containerd
// with runc and the kubelet, the real Multus thin plugin, the DaemonSet of
// deploy/ with the installer image built from docker/installer, and the
// application notes' pods from examples/ on the test bed's private OVS-DPDK.
//
// Binaries come from hack/node-assets.sh and images from
// hack/node-images.sh (USERSPACE_NODE_ASSETS and USERSPACE_NODE_IMAGES name
// their folders; without them the test runs the scripts). A missing
// prerequisite fails the test. Every file of the cluster is under one
// directory in /tmp; the fixed host paths it touches are the notes'
// /var/lib/cni/vhostuser, Multus's /var/run/k8s.cni.cncf.io/devinfo and
// containerd's shim sockets in /run/containerd, restored after.
package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/userspace-cni/userspace/pkg/policy"
	"github.com/userspace-cni/userspace/tests/testbed"
)

const (
	cniLibDir    = "/var/lib/cni"
	vhostuserDir = "/var/lib/cni/vhostuser"
	vppCNIDir    = "/var/run/vpp/cni"
	devinfoTop   = "/var/run/k8s.cni.cncf.io"
)

func scriptOutput(env, script string) (string, error) {
	if v := os.Getenv(env); v != "" {
		return v, nil
	}
	cmd := exec.Command(script)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s: %w", script, err)
	}
	return strings.TrimSpace(string(out)), nil
}

func TestNode(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("the node test needs root")
	}
	if err := testbed.EnsurePackages(testbed.RequiredPackages()...); err != nil {
		t.Fatal(err)
	}
	assets, err := scriptOutput("USERSPACE_NODE_ASSETS", "../../hack/node-assets.sh")
	if err != nil {
		t.Fatal(err)
	}
	images, err := scriptOutput("USERSPACE_NODE_IMAGES", "../../hack/node-images.sh")
	if err != nil {
		t.Fatal(err)
	}
	// Under /var/lib/cni, where the agent's DaemonSet mounts one host
	// directory for the plugin's state, the notes' socket directory,
	// host-local's allocations and (here) OVS's run directory: see
	// deployManifest.
	if err := os.MkdirAll(cniLibDir, 0o755); err != nil {
		t.Fatal(err)
	}
	base, err := os.MkdirTemp(cniLibDir, "usp-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	// Host state the test may change, to put back as it was.
	_, devinfoErr := os.Stat(devinfoTop)
	_, getPrefixErr := os.Stat(filepath.Join(vhostuserDir, "get-prefix.sh"))
	vhuInfo, vhuErr := os.Stat(vhostuserDir)
	_, vppCNIErr := os.Stat(vppCNIDir)

	c := &cluster{base: base, assets: assets, images: images, node: "localhost",
		bridge: testbed.UniqueName("usp")[:12]}
	var ovs *testbed.OVS
	var vpp *testbed.VPP
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range c.procs {
				t.Logf("--- %s log (tail):\n%s", p.name, p.tail())
			}
			if ovs != nil {
				t.Logf("--- ovs-vswitchd log:\n%s", ovs.Logs())
			}
		}
		// Pods first, while the plugin and the switch can still DEL them.
		if c.admin != "" {
			_, _ = c.kubectl(nil, "delete", "pods", "--all", "-A", "--wait=true", "--timeout=60s")
		}
		for _, err := range c.stop() {
			t.Error(err)
		}
		if ovs != nil {
			if err := ovs.Stop(); err != nil {
				t.Error(err)
			}
		}
		if vpp != nil {
			if err := vpp.Stop(); err != nil {
				t.Error(err)
			}
		}
		if errors.Is(vppCNIErr, os.ErrNotExist) {
			_ = os.RemoveAll(vppCNIDir)
		}
		if errors.Is(devinfoErr, os.ErrNotExist) {
			_ = os.RemoveAll(devinfoTop)
		}
		if errors.Is(getPrefixErr, os.ErrNotExist) {
			_ = os.Remove(filepath.Join(vhostuserDir, "get-prefix.sh"))
		}
		if vhuErr == nil {
			_ = os.Chmod(vhostuserDir, vhuInfo.Mode().Perm())
		}
		if !t.Failed() {
			_ = os.RemoveAll(base)
		} else {
			t.Logf("left %s for inspection", base)
		}
	})

	start := time.Now()
	if err := c.startCluster(); err != nil {
		t.Fatal(err)
	}
	t.Logf("node Ready in %v", time.Since(start).Round(time.Millisecond))
	if _, err := c.kubectl(nil, "apply", "-f", "../../deploy/crd-network-attachment-definition.yaml"); err != nil {
		t.Fatal(err)
	}
	if ovs, err = testbed.StartOVS(testbed.OVSOptions{BaseDir: base}); err != nil {
		t.Fatal(err)
	}

	if vpp, err = testbed.StartVPP(testbed.VPPOptions{BaseDir: base}); err != nil {
		t.Fatal(err)
	}
	c.vppSock = vpp.APISocket

	if !t.Run("DaemonSet installs the plugin", func(t *testing.T) { testDaemonSet(t, c, ovs) }) {
		t.FailNow()
	}
	if dir := os.Getenv(demoEnv); dir != "" {
		demo(t, c, ovs, dir)
		return
	}
	t.Run("OVS-DPDK l3fwd and pktgen pods", func(t *testing.T) { testOVSPods(t, c, ovs) })
	t.Run("agent collects an orphan", func(t *testing.T) { testOrphan(t, c, ovs) })
	t.Run("VPP memif pods ping", func(t *testing.T) { testVPPPods(t, c, vpp) })
	t.Run("deleting the DaemonSet", func(t *testing.T) { testDaemonSetDelete(t, c) })
}

// demoEnv names a directory (make demo-k8s): instead of the tests after the
// DaemonSet's, TestNode applies the notes' pods, writes there its PID
// (pid) and what to try (commands, with the admin kubeconfig), then keeps
// the node running until SIGTERM or SIGINT, and cleans up as after a test.
const demoEnv = "USERSPACE_E2E_DEMO"

func demo(t *testing.T, c *cluster, ovs *testbed.OVS, dir string) {
	for _, m := range [][]byte{c.notesNAD(t), notesPods(t), c.vppNAD(t), vppPods(t)} {
		if _, err := c.kubectl(m, "apply", "-f", "-"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.kubectl(nil, "wait", "--for=condition=Ready", "pod/dpdk-l3fwd", "pod/dpdk-pktgen",
		"pod/vpp-app-1", "pod/vpp-app-2", "--timeout=180s"); err != nil {
		out, _ := c.kubectl(nil, "describe", "pods")
		t.Fatalf("%v\n%s", err, out)
	}
	cmds := fmt.Sprintf(`The node is up: the DaemonSets (installer, node agent), the notes' OVS-DPDK
pods (dpdk-l3fwd, dpdk-pktgen) on the test bed's br0, and two VPP pods (vpp-app-1,
vpp-app-2) on bridge domain 4 (their VPPs answer vppctl up to a minute later). Try:

  export KUBECONFIG=%[1]s PATH=%[2]s:$PATH
  kubectl get pods -A -o wide
  kubectl get pod dpdk-pktgen -o jsonpath='{.metadata.annotations.k8s\.v1\.cni\.cncf\.io/network-status}'
  kubectl logs dpdk-pktgen --tail=20
  kubectl exec vpp-app-2 -- vppctl -s /run/vpp/cli.sock show interface addr
  kubectl exec vpp-app-1 -- vppctl -s /run/vpp/cli.sock ping <vpp-app-2's memif address>
  kubectl -n kube-system logs daemonset/userspace-cni-agent
  curl -s http://127.0.0.1:%[3]d/metrics | grep ^userspace_cni
  ovs-appctl --target=%[4]s dpctl/dump-flows

Stop it, and clean up everything: make demo-k8s-down
`, c.admin, filepath.Dir(c.bin("kubectl")), c.agentPort, filepath.Join(ovs.Dir, "ovs-vswitchd.ctl"))
	if err := os.WriteFile(filepath.Join(dir, "commands"), []byte(cmds), 0o644); err != nil {
		t.Fatal(err)
	}
	// The PID last: make demo-k8s waits for it as the sign that all is up.
	if err := os.WriteFile(filepath.Join(dir, "pid"), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	<-ctx.Done()
	t.Log("demo: stopping")
}

// nodePolicy is the policy the DaemonSet's ConfigMap carries: the test bed's
// switch, state and kubeconfig under base.
func (c *cluster) nodePolicy(ovs *testbed.OVS) *policy.Policy {
	p := ovs.NodePolicy(c.path("plugin"), c.vppSock)
	p.KubeconfigDirs = []string{c.path("etc/cni/net.d/userspace.d")}
	p.KubeletRoot = c.path("kubelet")
	p.SharedDirs = append(p.SharedDirs, c.path("kubelet/pods"))
	p.LogDirs = []string{c.path("logs")}
	return p
}

// deployManifest is deploy/userspace-cni.yaml with the test's adaptations:
// the host paths of the CNI bin dir, the kubeconfig dir and the policy dir
// moved under base; the node agent's host directories (VPP's socket
// directory, the kubelet's pods, the CNI bin dir) moved to the test bed's,
// at the same paths in the container; its /var/lib/cni mount kept, which
// holds base, so the plugin's state and host-local's allocations under base
// and the test bed's OVS run directory are reached through it; the
// ovs-run-dir volume left out, as deploy/README.md says for an OVS whose
// run directory is under /var/lib/cni (a mount of its own would keep the
// agent from hard-linking its server-mode sockets into the notes' socket
// directory); the orphan grace and pod listing shortened (3 s, 2 s) for
// testOrphan; the agent's port a free one; the policy ConfigMap naming the
// test bed's switch; and the API server's address (KUBERNETES_API_URL for
// the installer, KUBERNETES_SERVICE_HOST/PORT for the agent's in-cluster
// client), since nothing here routes the kubernetes Service's ClusterIP (no
// kube-proxy) to the API server.
func (c *cluster) deployManifest(t *testing.T, ovs *testbed.OVS) []byte {
	data, err := os.ReadFile("../../deploy/userspace-cni.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	api, err := url.Parse(c.apiURL)
	if err != nil {
		t.Fatal(err)
	}
	pol := c.nodePolicy(ovs)
	agentPort := strconv.Itoa(c.agentPort)
	for _, d := range []string{pol.StateDir, ovs.RunDir, c.path("var/lib/cni/networks")} {
		if !strings.HasPrefix(d, cniLibDir+"/") {
			t.Fatalf("the test bed's %s is not under %s, which the agent mounts", d, cniLibDir)
		}
	}
	if n := strings.Count(s, "path: /opt/cni/bin\n"); n != 2 {
		t.Fatalf("deploy/userspace-cni.yaml: %d volumes of /opt/cni/bin, want the installer's and the agent's", n)
	}
	s = strings.ReplaceAll(s, "path: /opt/cni/bin\n", "path: "+c.cniBin+"\n")
	reps := [][2]string{
		{"mountPath: /opt/cni/bin\n", "mountPath: " + c.cniBin + "\n"},
		{"        - name: ovs-run-dir\n          mountPath: /var/run/openvswitch\n", ""},
		{"      - name: ovs-run-dir\n        hostPath:\n          path: /var/run/openvswitch\n          type: DirectoryOrCreate\n", ""},
		{"path: /etc/cni/net.d/userspace.d\n", "path: " + c.path("etc/cni/net.d/userspace.d") + "\n"},
		{"path: /etc/cni/userspace\n", "path: " + c.path("etc/cni/userspace") + "\n"},
		{"        env:\n", "        env:\n        - name: KUBERNETES_API_URL\n          value: " + c.apiURL + "\n"},
		{"        - name: NODE_NAME\n", "        - name: KUBERNETES_SERVICE_HOST\n          value: " + api.Hostname() +
			"\n        - name: KUBERNETES_SERVICE_PORT\n          value: \"" + api.Port() + "\"\n        - name: NODE_NAME\n"},
		{`"-listen=:9731"`, `"-listen=:` + agentPort + `", "-orphan-grace=3s", "-orphan-interval=2s"`},
	}
	for _, d := range [][2]string{
		{"/run/vpp", filepath.Dir(c.vppSock)},
		{"/var/lib/kubelet/pods", c.path("kubelet/pods")},
	} {
		reps = append(reps, [2]string{"path: " + d[0] + "\n", "path: " + d[1] + "\n"},
			[2]string{"mountPath: " + d[0] + "\n", "mountPath: " + d[1] + "\n"})
	}
	for _, r := range reps {
		if !strings.Contains(s, r[0]) {
			t.Fatalf("deploy/userspace-cni.yaml no longer has %q", r[0])
		}
		s = strings.Replace(s, r[0], r[1], 1)
	}
	if n := strings.Count(s, "port: 9731\n"); n != 2 {
		t.Fatalf("deploy/userspace-cni.yaml: %d probes on port 9731, want 2", n)
	}
	s = strings.ReplaceAll(s, "port: 9731\n", "port: "+agentPort+"\n")
	s = strings.Replace(s, "containerPort: 9731\n", "containerPort: "+agentPort+"\n", 1)
	if ovs.RunDir != ovs.Dir || pol.OVSRunDir != ovs.RunDir {
		t.Fatalf("the test bed's OVSDB socket (%s) and run directory (%s) differ: the manifest mounts one", ovs.Dir, ovs.RunDir)
	}
	pj, err := json.Marshal(pol)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?s)  policy.json: \|\n    \{.*?\n    \}\n`)
	if !re.MatchString(s) {
		t.Fatal("deploy/userspace-cni.yaml: no policy.json in the ConfigMap")
	}
	s = re.ReplaceAllLiteralString(s, "  policy.json: |\n    "+string(pj)+"\n")
	return []byte(s)
}

func testDaemonSet(t *testing.T, c *cluster, ovs *testbed.OVS) {
	// The plugin's state directory as a hostPath volume would create it
	// before the plugin ever ran: the agent must leave it 0700.
	stateDir := c.nodePolicy(ovs).StateDir
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(stateDir, 0o755); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := c.kubectl(c.deployManifest(t, ovs), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	for _, ds := range []string{"userspace-cni", "userspace-cni-agent"} {
		if _, err := c.kubectl(nil, "-n", "kube-system", "rollout", "status", "daemonset/"+ds, "--timeout=180s"); err != nil {
			out, _ := c.kubectl(nil, "-n", "kube-system", "describe", "pods")
			t.Fatalf("%v\n%s", err, out)
		}
	}
	// The installer's files on the node, as deploy/README.md lists them.
	kc := c.path("etc/cni/net.d/userspace.d/userspace.kubeconfig")
	if err := c.waitFor("installed files", 60*time.Second, func() error {
		for _, f := range []string{filepath.Join(c.cniBin, "userspace"), kc, c.policyFile,
			filepath.Join(vhostuserDir, "get-prefix.sh")} {
			if _, err := os.Stat(f); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("DaemonSet applied to files installed: %v", time.Since(start).Round(time.Millisecond))
	c.checkAgent(t, start)
	if fi, err := os.Stat(stateDir); err != nil {
		t.Error(err)
	} else if fi.Mode().Perm() != 0o700 {
		t.Errorf("the plugin's state directory %s has mode %#o with the agent running, want 0700", stateDir, fi.Mode().Perm())
	}
	// Two identities: the plugin's kubeconfig on the node carries the
	// installer's ServiceAccount, and the agent runs as its own.
	for ds, sa := range map[string]string{"userspace-cni": "userspace-cni", "userspace-cni-agent": "userspace-cni-agent"} {
		out, err := c.kubectl(nil, "-n", "kube-system", "get", "daemonset", ds, "-o", "jsonpath={.spec.template.spec.serviceAccountName}")
		if err != nil || strings.TrimSpace(out) != sa {
			t.Errorf("DaemonSet %s runs as %q (%v), want %s", ds, out, err, sa)
		}
	}
	for _, check := range []struct {
		verb, resource, sa string
		want               string
	}{
		{"get", "pods", "userspace-cni", "yes"}, {"patch", "pods", "userspace-cni", "yes"},
		{"list", "pods", "userspace-cni", "no"}, {"create", "events", "userspace-cni", "no"},
		{"list", "pods", "userspace-cni-agent", "yes"}, {"create", "events", "userspace-cni-agent", "yes"},
		{"get", "pods", "userspace-cni-agent", "no"}, {"patch", "pods", "userspace-cni-agent", "no"},
	} {
		out, _ := c.kubectl(nil, "auth", "can-i", check.verb, check.resource, "--as=system:serviceaccount:kube-system:"+check.sa)
		if strings.TrimSpace(out) != check.want {
			t.Errorf("can %s %s %s: %q, want %s", check.sa, check.verb, check.resource, out, check.want)
		}
	}
	got, err := policy.Load(testbed.PolicyGetenv(c.policyFile))
	if err != nil {
		t.Fatal(err)
	}
	if got.OVSDBSocket != ovs.DBEndpoint() {
		t.Errorf("installed policy names OVSDB %q, want %q", got.OVSDBSocket, ovs.DBEndpoint())
	}
	out, err := exec.Command(filepath.Join(c.cniBin, "userspace")).CombinedOutput()
	if !strings.Contains(string(out), "CNI") {
		t.Errorf("installed plugin does not run: %v %s", err, out)
	}
	kcData, err := os.ReadFile(kc)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(kcData), c.apiURL) {
		t.Errorf("installed kubeconfig does not name %s:\n%s", c.apiURL, kcData)
	}
}

// checkAgent checks the agent DaemonSet's container: Ready (its
// readiness probe is /readyz), /readyz and /healthz answer ok on the host
// and /metrics carries the agent's metrics.
func (c *cluster) checkAgent(t *testing.T, start time.Time) {
	t.Helper()
	if err := c.waitFor("agent container Ready", 120*time.Second, func() error {
		var pods struct {
			Items []struct {
				Status struct {
					ContainerStatuses []struct {
						Name         string `json:"name"`
						Ready        bool   `json:"ready"`
						RestartCount int    `json:"restartCount"`
					} `json:"containerStatuses"`
				} `json:"status"`
			} `json:"items"`
		}
		if err := c.getJSON(&pods, "-n", "kube-system", "pods", "-l", "app.kubernetes.io/name=userspace-cni-agent"); err != nil {
			return err
		}
		if len(pods.Items) != 1 {
			return fmt.Errorf("%d DaemonSet pods", len(pods.Items))
		}
		for _, cs := range pods.Items[0].Status.ContainerStatuses {
			if cs.Name == "agent" {
				if cs.RestartCount != 0 {
					return fmt.Errorf("agent restarted %d times", cs.RestartCount)
				}
				if !cs.Ready {
					return errors.New("agent not Ready")
				}
				return nil
			}
		}
		return errors.New("no agent container status")
	}); err != nil {
		out := c.agentLogs()
		t.Fatalf("%v\nagent log:\n%s", err, out)
	}
	t.Logf("DaemonSet applied to agent Ready: %v", time.Since(start).Round(time.Millisecond))
	for _, path := range []string{"/readyz", "/healthz"} {
		body, err := c.agentGet(path)
		if err != nil {
			t.Error(err)
		} else if strings.TrimSpace(body) != "ok" {
			t.Errorf("agent %s: %q", path, body)
		}
	}
	if m, err := c.agentMetrics(); err != nil {
		t.Error(err)
	} else if !strings.Contains(m, "userspace_cni_reconciles_total") {
		t.Errorf("agent /metrics lacks userspace_cni_reconciles_total:\n%s", m)
	}
}

// agentLogs is the tail of the agent's log, of its previous run too when
// its container was restarted (in one run on a loaded machine it was, with
// the cause not in the current log), and its pod's status.
func (c *cluster) agentLogs() string {
	out, _ := c.kubectl(nil, "-n", "kube-system", "logs", "daemonset/userspace-cni-agent", "--tail=40")
	if prev, err := c.kubectl(nil, "-n", "kube-system", "logs", "daemonset/userspace-cni-agent", "--previous", "--tail=40"); err == nil {
		out = "previous run:\n" + prev + "\ncurrent run:\n" + out
	}
	status, _ := c.kubectl(nil, "-n", "kube-system", "get", "pods", "-l", "app.kubernetes.io/name=userspace-cni-agent",
		"-o", "jsonpath={.items[*].status.containerStatuses}")
	return out + "\ncontainer status: " + status
}

// agentGet GETs path from the node agent on the host's network.
func (c *cluster) agentGet(path string) (string, error) {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d%s", c.agentPort, path))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("agent %s: %s %s", path, resp.Status, body)
	}
	return string(body), nil
}

func (c *cluster) agentMetrics() (string, error) { return c.agentGet("/metrics") }

// grepLines returns the lines of s that start with one of prefixes.
func grepLines(s string, prefixes ...string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		for _, p := range prefixes {
			if strings.HasPrefix(l, p) {
				out = append(out, l)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}

// notesNAD is examples/nad-ovs-dpdk-notes.yaml with the kubeconfig the
// installer wrote (so the plugin annotates the pod) and the
// CNIDeviceInfoFile capability (so Multus passes the device-info path and
// copies the plugin's device-info into network-status).
func (c *cluster) notesNAD(t *testing.T) []byte {
	data, err := os.ReadFile("../../examples/nad-ovs-dpdk-notes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	old := `"type": "userspace", `
	if !strings.Contains(string(data), old) {
		t.Fatalf("examples/nad-ovs-dpdk-notes.yaml no longer has %q", old)
	}
	return []byte(strings.Replace(string(data), old, fmt.Sprintf(`"type": "userspace", "kubeconfig": %q, "capabilities": {"CNIDeviceInfoFile": true}, `,
		c.path("etc/cni/net.d/userspace.d/userspace.kubeconfig")), 1))
}

// notesPods is examples/pod-l3fwd-pktgen.yaml with each pod's CPU request
// halved (two pods of 1 CPU and the DaemonSet do not fit a 2-CPU node) and a
// deviceID in each network selection, which makes Multus name a
// CNIDeviceInfoFile (it does so only for a device).
func notesPods(t *testing.T) []byte {
	data, err := os.ReadFile("../../examples/pod-l3fwd-pktgen.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	for _, r := range [][2]string{
		{`requests: {cpu: "1", memory: 512Mi}`, `requests: {cpu: "500m", memory: 512Mi}`},
		{`"name": "userspace-ovs-notes", "mac"`, `"name": "userspace-ovs-notes", "deviceID": "vhu-net1", "mac"`},
	} {
		if strings.Count(s, r[0]) != 2 {
			t.Fatalf("examples/pod-l3fwd-pktgen.yaml no longer has %q twice", r[0])
		}
		s = strings.ReplaceAll(s, r[0], r[1])
	}
	return []byte(s)
}

// The MACs examples/pod-l3fwd-pktgen.yaml gives the pods' net1.
const (
	l3fwdMAC  = "02:00:00:00:00:01"
	pktgenMAC = "02:00:00:00:00:02"
)

var (
	dpFlowRE = regexp.MustCompile(`in_port\((\d+)\),.*eth\(src=([0-9a-f:]+),dst=[0-9a-f:]+\).*packets:(\d+),.*actions:(\d+)$`)
	dpPortRE = regexp.MustCompile(`(?m)^\s*port (\d+): (\S+)`)
)

// flowPackets sums, by source MAC, the packets of br0's datapath flows
// that go from one of ports to another of them.
func flowPackets(ovs *testbed.OVS, ports []string) (map[string]uint64, error) {
	show, err := ovs.Appctl("dpctl/show")
	if err != nil {
		return nil, err
	}
	mine := map[string]bool{}
	for _, m := range dpPortRE.FindAllStringSubmatch(show, -1) {
		for _, p := range ports {
			if m[2] == p {
				mine[m[1]] = true
			}
		}
	}
	if len(mine) != len(ports) {
		return nil, fmt.Errorf("ports %q not all in dpctl/show:\n%s", ports, show)
	}
	flows, err := ovs.Appctl("dpctl/dump-flows")
	if err != nil {
		return nil, err
	}
	res := map[string]uint64{}
	for _, l := range strings.Split(flows, "\n") {
		m := dpFlowRE.FindStringSubmatch(strings.TrimSpace(l))
		if m == nil || !mine[m[1]] || !mine[m[4]] || m[1] == m[4] {
			continue
		}
		n, _ := strconv.ParseUint(m[3], 10, 64)
		res[m[2]] += n
	}
	return res, nil
}

type pod struct {
	Metadata struct {
		Name        string
		UID         string
		Annotations map[string]string
	}
	Status struct {
		Phase  string
		PodIPs []struct{ IP string } `json:"podIPs"`
	}
}

func testOVSPods(t *testing.T, c *cluster, ovs *testbed.OVS) {
	if _, err := c.kubectl(c.notesNAD(t), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := c.kubectl(notesPods(t), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.kubectl(nil, "wait", "--for=condition=Ready", "pod/dpdk-l3fwd", "pod/dpdk-pktgen", "--timeout=180s"); err != nil {
		out, _ := c.kubectl(nil, "describe", "pods")
		t.Fatalf("%v\n%s", err, out)
	}
	ready := time.Since(start)

	// Packets cross br0 both ways: testpmd's packets go from the pktgen
	// pod's port to the l3fwd pod's, and l3fwd routes them back from its
	// port to the pktgen pod's (l3fwd sends only what it received). OVS 3.1
	// has no packet counters on dpdkvhostuser ports (it is the vhost-user
	// server; Interface statistics hold only its drop counters), so the
	// datapath's flows count them, as in the demo.
	ports, err := ovs.Vsctl("list-ports", "br0")
	if err != nil {
		t.Fatal(err)
	}
	names := strings.Fields(ports)
	if len(names) != 2 {
		t.Fatalf("br0 has ports %q, want the two pods'", names)
	}
	const want = 1000
	var crossed map[string]uint64
	err = c.waitFor("packets both ways across br0", 120*time.Second, func() error {
		if crossed, err = flowPackets(ovs, names); err != nil {
			return err
		}
		for _, src := range []string{pktgenMAC, l3fwdMAC} {
			if crossed[src] < want {
				return fmt.Errorf("packets across br0 by source MAC: %v", crossed)
			}
		}
		return nil
	})
	if err != nil {
		for _, n := range []string{"dpdk-l3fwd", "dpdk-pktgen"} {
			out, _ := c.kubectl(nil, "logs", n, "--tail=40")
			t.Logf("--- %s:\n%s", n, out)
		}
		out, _ := ovs.Appctl("dpctl/dump-flows")
		t.Logf("--- dpctl/dump-flows:\n%s", out)
		t.Fatal(err)
	}
	t.Logf("pods created -> Ready %v -> packets both ways across br0 %v (pktgen -> l3fwd %d, l3fwd -> pktgen %d)",
		ready.Round(time.Millisecond), time.Since(start).Round(time.Millisecond), crossed[pktgenMAC], crossed[l3fwdMAC])
	// testpmd's own TX counter in the pktgen pod. (Its RX stays 0: txonly
	// never reads its receive queue.)
	if err := c.waitFor("testpmd TX", 30*time.Second, func() error {
		out, err := c.kubectl(nil, "logs", "dpdk-pktgen", "--tail=30")
		if err != nil {
			return err
		}
		m := regexp.MustCompile(`TX-packets:\s+(\d+)`).FindAllStringSubmatch(out, -1)
		if len(m) == 0 {
			return errors.New("no TX-packets line yet")
		}
		if n, _ := strconv.ParseUint(m[len(m)-1][1], 10, 64); n == 0 {
			return errors.New("pktgen TX-packets 0")
		}
		return nil
	}); err != nil {
		t.Error(err)
	}

	// What Multus and the plugin published.
	var sandboxDirs, sockets []string
	for _, name := range []string{"dpdk-l3fwd", "dpdk-pktgen"} {
		var p pod
		if err := c.getJSON(&p, "pod", name); err != nil {
			t.Fatal(err)
		}
		var status []struct {
			Name       string
			Interface  string
			DeviceInfo *struct {
				Type      string
				VhostUser *struct{ Mode, Path string } `json:"vhost-user"`
			} `json:"device-info"`
		}
		if err := json.Unmarshal([]byte(p.Metadata.Annotations["k8s.v1.cni.cncf.io/network-status"]), &status); err != nil {
			t.Fatalf("%s network-status: %v", name, err)
		}
		found := false
		for _, s := range status {
			if s.Name == "default/userspace-ovs-notes" {
				found = true
				if s.Interface != "net1" || s.DeviceInfo == nil || s.DeviceInfo.Type != "vhost-user" || s.DeviceInfo.VhostUser == nil ||
					!strings.HasPrefix(s.DeviceInfo.VhostUser.Path, vhostuserDir+"/") {
					t.Errorf("%s network-status entry: %+v", name, s)
				} else {
					sandboxDirs = append(sandboxDirs, filepath.Dir(s.DeviceInfo.VhostUser.Path))
					sockets = append(sockets, s.DeviceInfo.VhostUser.Path)
				}
			}
		}
		if !found {
			t.Errorf("%s network-status has no userspace-ovs-notes: %s", name, p.Metadata.Annotations["k8s.v1.cni.cncf.io/network-status"])
		}
		if p.Metadata.Annotations["userspace/configuration-data"] == "" {
			t.Errorf("%s has no userspace/configuration-data annotation", name)
		}
	}

	// The plugin asked the agent, not its helper, for each pod's ADD: the
	// agent answers on its socket in the state directory with the plugin's
	// kubeconfig, both seen through its mounts.
	served := `userspace_cni_podapi_sessions_total{result="served"}`
	unserved := `userspace_cni_podapi_sessions_total{result="unserved"}`
	if m, err := c.agentMetrics(); err != nil {
		t.Error(err)
	} else if n, u := testbed.SeriesValue(m, served), testbed.SeriesValue(m, unserved); n < 2 || u != 0 {
		t.Errorf("%s = %v, %s = %v: want the two pods' ADDs served by the agent:\n%s\nagent log:\n%s",
			served, n, unserved, u, grepLines(m, "userspace_cni_podapi"), c.agentLogs())
	} else {
		t.Logf("%s = %v", served, n)
	}

	// The agent container reads the plugin's records and reaches the
	// switch through its mounts: it counts both attachments as intact
	// (within its resync, 30 s).
	agentStart := time.Now()
	if err := c.waitFor("agent's metrics show the two attachments", 90*time.Second, func() error {
		m, err := c.agentMetrics()
		if err != nil {
			return err
		}
		if !strings.Contains(m, `userspace_cni_attachments{engine="ovs-dpdk",state="ok"} 2`+"\n") {
			return fmt.Errorf("agent metrics:\n%s", grepLines(m, "userspace_cni_attachments", "userspace_cni_switch_up"))
		}
		return nil
	}); err != nil {
		t.Error(err)
	} else {
		t.Logf("agent saw both attachments ok %v after the packets", time.Since(agentStart).Round(time.Millisecond))
		c.restartVswitchd(t, ovs, []string{"dpdk-l3fwd", "dpdk-pktgen"}, sockets)
	}

	// Deleting the pods leaves nothing of theirs.
	if _, err := c.kubectl(nil, "delete", "pod", "dpdk-l3fwd", "dpdk-pktgen", "--wait=true", "--timeout=120s"); err != nil {
		t.Fatal(err)
	}
	if err := c.waitFor("pods' traces gone", 60*time.Second, func() error { return c.leftovers(ovs, sandboxDirs) }); err != nil {
		t.Error(err)
	}
}

// restartVswitchd kills the node's ovs-vswitchd (the test bed's, by PID)
// as a crash would, starts it again, and checks the agent in its container
// did its work: its metrics count the two restores, each pod got a
// UserspaceAttachmentLost and a UserspaceAttachmentRestored Event (read
// from the API server), and each pod's socket (the notes' server mode: a
// hard link the agent made again to the restarted switch's socket)
// connects. The pods' DPDK apps are not asked to reconnect: a virtio-user
// client does not redial.
func (c *cluster) restartVswitchd(t *testing.T, ovs *testbed.OVS, pods, sockets []string) {
	t.Helper()
	restored := `userspace_cni_restores_total{engine="ovs-dpdk",result="restored"}`
	m, err := c.agentMetrics()
	if err != nil {
		t.Fatal(err)
	}
	before := testbed.SeriesValue(m, restored)
	start := time.Now()
	if err := ovs.KillVswitchd(); err != nil {
		t.Fatal(err)
	}
	// The agent, queued for ovs-vswitchd's lock, removes the sockets the
	// killed switch left before the restarted one can bind them.
	if err := ovs.StartVswitchd(); err != nil {
		t.Fatalf("restarting ovs-vswitchd: %v", err)
	}
	t.Logf("ovs-vswitchd killed and restarted in %v", time.Since(start).Round(time.Millisecond))
	err = c.waitFor("the agent's restores after the restart", 60*time.Second, func() error {
		m, err := c.agentMetrics()
		if err != nil {
			return err
		}
		if n := testbed.SeriesValue(m, restored); n < before+float64(len(pods)) {
			return fmt.Errorf("%s = %v, was %v:\n%s", restored, n, before, grepLines(m, "userspace_cni_restores_total", "userspace_cni_attachments", "userspace_cni_agent_errors_total"))
		}
		for _, sock := range sockets {
			conn, err := net.DialTimeout("unix", sock, time.Second)
			if err != nil {
				return fmt.Errorf("the pod's socket: %w", err)
			}
			_ = conn.Close()
		}
		return nil
	})
	if err != nil {
		out := c.agentLogs()
		t.Fatalf("%v\nagent log:\n%s", err, out)
	}
	t.Logf("kill -> restores counted and the pods' sockets connect: %v", time.Since(start).Round(time.Millisecond))
	err = c.waitFor("the pods' Events", 30*time.Second, func() error {
		for _, pod := range pods {
			for _, reason := range []string{"UserspaceAttachmentLost", "UserspaceAttachmentRestored"} {
				out, err := c.kubectl(nil, "get", "events", "--field-selector",
					"involvedObject.kind=Pod,involvedObject.name="+pod+",reason="+reason, "-o", "name")
				if err != nil {
					return err
				}
				if strings.TrimSpace(out) == "" {
					return fmt.Errorf("no %s Event on pod %s", reason, pod)
				}
			}
		}
		return nil
	})
	if err != nil {
		out, _ := c.kubectl(nil, "get", "events", "-A")
		t.Errorf("%v\nevents:\n%s", err, out)
	}
}

// testOrphan adds an attachment the way a runtime would, with host-local
// IPAM, for a pod that does not exist, and checks that the agent in its
// container tears it down after its grace (3 s here): the switch port, the
// record and the IP allocation go, and the metric counts it.
func testOrphan(t *testing.T, c *cluster, ovs *testbed.OVS) {
	ns, err := testbed.NewNetNS(testbed.UniqueName("usp-orphan"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ns.Close() })
	dataDir := c.path("var/lib/cni/networks")
	conf := map[string]any{"cniVersion": "1.0.0", "name": "orphan-net", "type": "userspace",
		"host": map[string]any{"engine": "ovs-dpdk", "iftype": "vhostuser", "netType": "bridge",
			"vhost": map[string]any{"mode": "client"}, "bridge": map[string]any{"bridgeName": "br-orphan"}},
		"container": map[string]any{"engine": "ovs-dpdk", "iftype": "vhostuser", "netType": "interface",
			"vhost": map[string]any{"mode": "server"}},
		"ipam": map[string]any{"type": "host-local", "subnet": "10.99.0.0/24", "dataDir": dataDir}}
	stdin, err := json.Marshal(conf)
	if err != nil {
		t.Fatal(err)
	}
	cid := fmt.Sprintf("%064x", time.Now().UnixNano())
	run := func(command string) ([]byte, error) {
		cmd := exec.Command(filepath.Join(c.cniBin, "userspace"))
		cmd.Stdin = strings.NewReader(string(stdin))
		cmd.Env = append(os.Environ(), "CNI_COMMAND="+command, "CNI_CONTAINERID="+cid, "CNI_NETNS="+ns.Path(), "CNI_IFNAME=net1",
			"CNI_PATH="+c.cniBin, "CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=ghost;K8S_POD_UID=00000000-0000-0000-0000-0000000000aa",
			policy.PathEnv+"="+c.policyFile)
		return cmd.Output()
	}
	// Whatever the agent left (nothing, when it passes): DEL is idempotent.
	t.Cleanup(func() {
		if out, err := run("DEL"); err != nil {
			t.Errorf("DEL of the orphan in the cleanup: %v %s", err, out)
		}
	})
	out, err := run("ADD")
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("ADD of the orphan: %v\n%s%s", err, out, stderr)
	}
	// host-local's allocations: one file per address, named by it.
	allocated := func() []string {
		var ips []string
		ents, _ := os.ReadDir(filepath.Join(dataDir, "orphan-net"))
		for _, e := range ents {
			if e.Name() != "lock" && !strings.HasPrefix(e.Name(), "last_reserved_ip") {
				ips = append(ips, e.Name())
			}
		}
		return ips
	}
	if ips := allocated(); len(ips) != 1 {
		t.Fatalf("host-local's allocations after ADD: %v (result %s)", ips, out)
	}
	orphanPorts := func() (string, error) {
		brs, err := ovs.Vsctl("list-br")
		if err != nil || !slices.Contains(strings.Fields(brs), "br-orphan") {
			return "", err
		}
		ports, err := ovs.Vsctl("list-ports", "br-orphan")
		return strings.TrimSpace(ports), err
	}
	if ports, err := orphanPorts(); err != nil || ports == "" {
		t.Fatalf("br-orphan ports after ADD: %q %v", ports, err)
	}
	start := time.Now()
	err = c.waitFor("the orphan collected", 60*time.Second, func() error {
		if ips := allocated(); len(ips) != 0 {
			return fmt.Errorf("host-local still holds %v", ips)
		}
		if recs, _ := filepath.Glob(c.nodePolicy(ovs).StateDir + "/attachments/" + cid + "*"); len(recs) > 0 {
			return fmt.Errorf("records left: %v", recs)
		}
		if ports, err := orphanPorts(); err != nil || ports != "" {
			return fmt.Errorf("br-orphan ports: %q %v", ports, err)
		}
		m, err := c.agentMetrics()
		if err != nil {
			return err
		}
		if n := testbed.SeriesValue(m, `userspace_cni_orphans_collected_total{engine="ovs-dpdk"}`); n != 1 {
			return fmt.Errorf("orphans collected %v", n)
		}
		return nil
	})
	if err != nil {
		out := c.agentLogs()
		t.Fatalf("%v\nagent log:\n%s", err, out)
	}
	t.Logf("orphan (port, record, IP) collected %v after its ADD", time.Since(start).Round(time.Millisecond))
}

// leftovers names what a deleted pod might leave: switch ports, the given
// paths (an OVS pod's socket directory; a VPP pod's memif socket, in the
// shared directory that stays), the plugin's records, Multus's device-info
// files, host-local allocations of the cluster network.
func (c *cluster) leftovers(ovs *testbed.OVS, gone []string) error {
	// The plugin removes br0 with its last port when it made the bridge;
	// a br0 that stays must have no ports left.
	if ovs != nil {
		brs, err := ovs.Vsctl("list-br")
		if err != nil {
			return err
		}
		if slices.Contains(strings.Fields(brs), "br0") {
			if out, err := ovs.Vsctl("list-ports", "br0"); err != nil || strings.TrimSpace(out) != "" {
				return fmt.Errorf("br0 ports: %q %v", out, err)
			}
		}
	}
	var left []string
	add := func(dir string, keep func(string) bool) {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if !keep(e.Name()) {
				left = append(left, filepath.Join(dir, e.Name()))
			}
		}
	}
	none := func(string) bool { return false }
	for _, d := range gone {
		if _, err := os.Lstat(d); err == nil {
			left = append(left, d)
		}
	}
	add(c.path("plugin/state/attachments"), none)
	add(filepath.Join(devinfoTop, "devinfo/cni"), none)
	for _, net := range []string{"e2e-cluster", "memif-network"} {
		add(c.path("var/lib/cni/networks", net), func(n string) bool { return n == "lock" || strings.HasPrefix(n, "last_reserved_ip") })
	}
	if len(left) > 0 {
		return fmt.Errorf("left: %s", strings.Join(left, " "))
	}
	return nil
}

// vppNAD is examples/nad-vpp-memif.yaml with the installed kubeconfig, the
// CNIDeviceInfoFile capability, and host-local's allocations under base
// rather than the machine's /var/lib/cni/networks.
func (c *cluster) vppNAD(t *testing.T) []byte {
	data, err := os.ReadFile("../../examples/nad-vpp-memif.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	for _, r := range [][2]string{
		{`"type": "userspace",`, fmt.Sprintf(`"type": "userspace", "kubeconfig": %q, "capabilities": {"CNIDeviceInfoFile": true},`,
			c.path("etc/cni/net.d/userspace.d/userspace.kubeconfig"))},
		{`"type": "host-local",`, fmt.Sprintf(`"type": "host-local", "dataDir": %q,`, c.path("var/lib/cni/networks"))},
	} {
		if !strings.Contains(s, r[0]) {
			t.Fatalf("examples/nad-vpp-memif.yaml no longer has %q", r[0])
		}
		s = strings.Replace(s, r[0], r[1], 1)
	}
	return []byte(s)
}

// vppPods is examples/pod-vpp-memif.yaml with a deviceID in the network
// selection (for Multus's device-info, as for the OVS pods).
func vppPods(t *testing.T) []byte {
	data, err := os.ReadFile("../../examples/pod-vpp-memif.yaml")
	if err != nil {
		t.Fatal(err)
	}
	old := "k8s.v1.cni.cncf.io/networks: memif-network\n"
	if strings.Count(string(data), old) != 2 {
		t.Fatalf("examples/pod-vpp-memif.yaml no longer has %q twice", old)
	}
	return []byte(strings.ReplaceAll(string(data), old, `k8s.v1.cni.cncf.io/networks: '[{"name": "memif-network", "deviceID": "memif-net1"}]'`+"\n"))
}

type netStatus struct {
	Name       string
	Interface  string
	IPs        []string
	DeviceInfo *struct {
		Type  string
		Memif *struct{ Role, Path, Mode string }
	} `json:"device-info"`
}

func testVPPPods(t *testing.T, c *cluster, vpp *testbed.VPP) {
	if _, err := c.kubectl(c.vppNAD(t), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := c.kubectl(vppPods(t), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.kubectl(nil, "wait", "--for=condition=Ready", "pod/vpp-app-1", "pod/vpp-app-2", "--timeout=180s"); err != nil {
		out, _ := c.kubectl(nil, "describe", "pods")
		t.Fatalf("%v\n%s", err, out)
	}
	ready := time.Since(start)
	var ips, sockets []string
	for _, name := range []string{"vpp-app-1", "vpp-app-2"} {
		var p pod
		if err := c.getJSON(&p, "pod", name); err != nil {
			t.Fatal(err)
		}
		var status []netStatus
		if err := json.Unmarshal([]byte(p.Metadata.Annotations["k8s.v1.cni.cncf.io/network-status"]), &status); err != nil {
			t.Fatalf("%s network-status: %v", name, err)
		}
		var mine *netStatus
		for i := range status {
			if status[i].Name == "default/memif-network" {
				mine = &status[i]
			}
		}
		if mine == nil || len(mine.IPs) == 0 || mine.DeviceInfo == nil || mine.DeviceInfo.Type != "memif" ||
			mine.DeviceInfo.Memif == nil || mine.DeviceInfo.Memif.Role != "slave" {
			t.Fatalf("%s network-status: %s", name, p.Metadata.Annotations["k8s.v1.cni.cncf.io/network-status"])
		}
		ips = append(ips, mine.IPs[0])
		sockets = append(sockets, mine.DeviceInfo.Memif.Path)
		if p.Metadata.Annotations["userspace/configuration-data"] == "" {
			t.Errorf("%s has no userspace/configuration-data annotation", name)
		}
	}
	// The notes' check: one pod's VPP pings the other's across bridge
	// domain 4 of the host VPP. The first may be lost to ARP.
	var out string
	err := c.waitFor("ping across bridge domain 4", 60*time.Second, func() error {
		var err error
		out, err = c.kubectl(nil, "exec", "vpp-app-1", "--", "vppctl", "-s", "/run/vpp/cli.sock", "ping", ips[1], "repeat", "5", "interval", "0.5")
		if err != nil {
			return err
		}
		m := regexp.MustCompile(`(\d+) sent, (\d+) received`).FindStringSubmatch(out)
		if m == nil {
			return fmt.Errorf("no ping statistics: %q", out)
		}
		if n, _ := strconv.Atoi(m[2]); n < 4 {
			return fmt.Errorf("ping: %s", m[0])
		}
		return nil
	})
	if err != nil {
		for _, n := range []string{"vpp-app-1", "vpp-app-2"} {
			logs, _ := c.kubectl(nil, "logs", n, "--tail=40")
			t.Logf("--- %s:\n%s", n, logs)
		}
		t.Fatalf("%v\n%s", err, out)
	}
	t.Logf("pods created -> Ready %v -> ping %s -> %s answered %v", ready.Round(time.Millisecond), ips[0], ips[1], time.Since(start).Round(time.Millisecond))

	if _, err := c.kubectl(nil, "delete", "pod", "vpp-app-1", "vpp-app-2", "--wait=true", "--timeout=120s"); err != nil {
		t.Fatal(err)
	}
	if err := c.waitFor("pods' traces gone", 60*time.Second, func() error {
		st, err := vpp.State()
		if err != nil {
			return err
		}
		for _, i := range st.Interfaces {
			if strings.HasPrefix(i.Name, "memif") {
				return fmt.Errorf("host VPP still has %s", i.Name)
			}
		}
		return c.leftovers(nil, sockets)
	}); err != nil {
		t.Error(err)
	}
}

func testDaemonSetDelete(t *testing.T, c *cluster) {
	if _, err := c.kubectl(nil, "-n", "kube-system", "delete", "daemonset", "userspace-cni", "userspace-cni-agent", "--wait=true", "--timeout=60s"); err != nil {
		t.Fatal(err)
	}
	if err := c.waitFor("installer pod gone", 60*time.Second, func() error {
		out, err := c.kubectl(nil, "-n", "kube-system", "get", "pods", "-o", "name")
		if err != nil {
			return err
		}
		if strings.TrimSpace(out) != "" {
			return fmt.Errorf("pods: %s", out)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// deploy/README.md: the plugin and its files stay, for the DELs of the
	// pods it attached.
	for _, f := range []string{filepath.Join(c.cniBin, "userspace"), c.policyFile,
		c.path("etc/cni/net.d/userspace.d/userspace.kubeconfig")} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("after the DaemonSet's deletion: %v", err)
		}
	}
}
